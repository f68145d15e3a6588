"""Factories: zeros, ones, full, empty, arange, linspace, eye, rand, randn and the *_like ones.

They take NumPy's arguments plus ``dtype, requires_grad, device``; a shape may be a tuple or
separate ints. Random numbers come from one package-level generator, seeded by `manual_seed`,
and are drawn on the host so that a seed gives the same numbers on every device.
"""

from __future__ import annotations

import numpy as np

from . import devices
from . import tensor as _tensor
from .tensor import CONSTANT, TRACKED_LEAF, Tensor, _check_grad_dtype, _new_tensor

_rng = np.random.default_rng()
#: Bumped by every draw, seed and state change: an unchanged count means an unchanged generator.
_changes = 0
#: (_changes, state) when `get_rng_state` or `set_rng_state` last saw the state: reading NumPy's state
#: builds a dict, and setting it costs microseconds, which a checkpointed loop pays at every snapshot
#: and every restore although most steps draw nothing.
_known = (-1, None)


def manual_seed(seed: int) -> None:
    """Seed the generator behind `rand` and `randn`.

    >>> import tape as tp
    >>> tp.manual_seed(0); a = tp.rand(3); tp.manual_seed(0)
    >>> bool((tp.rand(3) == a).all())
    True
    """
    global _rng, _changes
    _rng = np.random.default_rng(seed)
    _changes += 1


def get_rng_state():
    """The generator's state (for re-running code that draws random numbers, e.g. checkpoints).

    Treat it as read-only: while nothing is drawn, the same object is handed out again."""
    global _known
    if _known[0] != _changes:
        _known = (_changes, _rng.bit_generator.state)
    return _known[1]


def set_rng_state(state) -> None:
    """Put the generator back to a `get_rng_state` (nothing to do if it is there already)."""
    global _known, _changes
    if _known[0] == _changes and _known[1] is state:
        return
    _rng.bit_generator.state = state
    _changes += 1
    _known = (_changes, state)


def _shape(shape) -> tuple:
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        return tuple(int(s) for s in shape[0])
    return tuple(int(s) for s in shape)


def _finish(array, dtype, requires_grad, device, what):
    if dtype is not None:
        array = array.astype(dtype, copy=False)
    if device not in (None, "cpu"):
        array = devices.to_device(array, devices.check_device(device, what))
    if requires_grad:
        _check_grad_dtype(array.dtype, what)
    t = _new_tensor(array)
    t._role = TRACKED_LEAF if requires_grad else CONSTANT
    return t


def _made(fn, name, doc, drawn=False):
    def factory(*shape, dtype=None, requires_grad=False, device=None):
        shape = _shape(shape)
        t = _finish(fn(shape, dtype), None, requires_grad, device, name)
        if drawn and _tensor._capture is not None and not requires_grad:
            # inside a compiled function's recording a draw is an entry, drawn anew at each replay
            entry = _tensor._capture.draw(name, shape, t)
            return t if entry is None else entry
        return t

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = doc
    return factory


zeros = _made(lambda s, dt: np.zeros(s, dt), "zeros", "A tensor of zeros. ``tp.zeros(2, 3)`` or ``tp.zeros((2, 3))``.")
ones = _made(lambda s, dt: np.ones(s, dt), "ones", "A tensor of ones.")
empty = _made(lambda s, dt: np.empty(s, dt), "empty", "An uninitialised tensor.")
rand = _made(lambda s, dt: draw("rand", s, dt), "rand", "Uniform samples on [0, 1).", True)
randn = _made(lambda s, dt: draw("randn", s, dt), "randn", "Standard normal samples.", True)


def draw(kind: str, shape, dtype=None):
    """`shape` samples from the package generator: "rand" uniform on [0, 1), "randn" standard normal."""
    global _changes
    _changes += 1
    a = _rng.random(shape) if kind == "rand" else _rng.standard_normal(shape)
    return a.astype(dtype or np.float64)


def full(shape, fill_value, dtype=None, requires_grad=False, device=None):
    """A tensor filled with `fill_value`."""
    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
    return _finish(np.full(shape, fill_value, dtype), None, requires_grad, device, "full")


def arange(*args, dtype=None, requires_grad=False, device=None):
    """np.arange: ``tp.arange(4.0)`` -> ``tensor([0., 1., 2., 3.])``."""
    return _finish(np.arange(*args, dtype=dtype), None, requires_grad, device, "arange")


def linspace(start, stop, num=50, endpoint=True, dtype=None, requires_grad=False, device=None):
    """np.linspace: `num` evenly spaced values."""
    return _finish(
        np.linspace(start, stop, num, endpoint=endpoint, dtype=dtype), None, requires_grad, device, "linspace"
    )


def eye(N, M=None, k=0, dtype=None, requires_grad=False, device=None):
    """np.eye: ones on the k-th diagonal."""
    return _finish(np.eye(N, M, k, dtype=dtype or np.float64), None, requires_grad, device, "eye")


def _like(fill, name):
    def factory(x, dtype=None, requires_grad=False, device=None):
        a = x.array if isinstance(x, Tensor) else np.asarray(x)
        dev = devices.device_of(a) if device is None else device
        return _finish(fill(a.shape, dtype or a.dtype), None, requires_grad, dev, name)

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"np.{name}: same shape (and dtype, device) as `x`."
    return factory


zeros_like = _like(np.zeros, "zeros_like")
ones_like = _like(np.ones, "ones_like")


def full_like(x, fill_value, dtype=None, requires_grad=False, device=None):
    """np.full_like: same shape (and dtype, device) as `x`, filled with `fill_value`."""
    a = x.array if isinstance(x, Tensor) else np.asarray(x)
    dev = devices.device_of(a) if device is None else device
    return _finish(np.full(a.shape, fill_value, dtype or a.dtype), None, requires_grad, dev, "full_like")
