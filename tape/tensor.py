"""`Tensor`: a thin handle on an array (NumPy or CuPy) and, when recorded, a slot on the tape.

A Tensor does no math of its own: its operators and methods are bound to the ops by
`tape/methods.py`, a module above the ops (as HIPS autograd's `numpy_boxes.py` sits above its op
table), so that this module imports nothing of the engine. It is a handle, like a PyTorch tensor or
a flashlight Variable: ``b = a`` shares the array.

`_role` says how the Tensor takes part in differentiation (`Role`): a CONSTANT carries no
gradient, a LEAF requires grad (backward fills its `.grad`), a RESULT is the output of a recorded
op and holds a reference on its entry; dropping the last handle on an entry (and every entry that
reads it) releases the history.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from . import devices

_FLOAT_KINDS = "f"
#: The reference-count column of a tape entry (tape.RC): a handle's __del__ decrements it.
RC_COLUMN = 6
_F64 = np.float64
_F64_DTYPE = np.dtype(np.float64)

#: Set by `tape.compiled` while some thread records a compiled function (else None, and the
#: conversions below cost one global lookup): a recorded value turned into a Python bool, int or
#: float there becomes a *guard* of the program (API §9). Nothing here knows what a program is.
_capture = None


class Role(IntEnum):
    """How a Tensor takes part in differentiation."""

    CONSTANT = 0  # no gradient
    LEAF = 1  # an input that requires grad
    RESULT = 2  # the output of a recorded op: it has history


CONSTANT, TRACKED_LEAF, RESULT = Role.CONSTANT, Role.LEAF, Role.RESULT


class Tensor:
    """An array with optional gradient tracking. Build one with `tp.tensor` or a factory.

    >>> import tape as tp
    >>> x = tp.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    >>> with tp.record():
    ...     y = 2 * tp.dot(x, x)
    >>> y.backward()
    >>> x.grad
    tensor([ 0.,  4.,  8., 12.])
    """

    # `_a` is the value: an array, or, for a 0-d float64 value (an op's result or made by `tensor`), a
    # NumPy float64 scalar (a ufunc on a 0-d array costs 5-10 times what it costs on the scalar, with
    # the same bits; see `array`). `_scalar` is set only once such a scalar was turned into an array (see `array`).
    __slots__ = ("_a", "_scalar", "_slot", "_store", "_role", "grad", "__weakref__")

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
        t = tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)
        self._a, self._slot, self._store, self._role, self.grad = t._a, -1, None, t._role, None

    @property
    def array(self):
        """The underlying NumPy (or CuPy) array, no copy: writing into it changes the tensor.

        A 0-d float64 value is kept as a NumPy float64 scalar, internally; the first time one is
        asked for here, it becomes a 0-d array (kept, so later reads and in-place changes see the same
        array). The scalar is remembered in `_scalar`, for the in-place check (`Store.mark_overwritten`):
        entries recorded before saved that scalar.
        """
        a = self._a
        if type(a) is _F64:
            self._scalar = a
            a = self._a = np.array(a)
        return a

    @array.setter
    def array(self, value):
        self._a = value
        if getattr(self, "_role", None) is RESULT and self._store is not None:  # (a tensor being made has no role)
            # the entry's VALUE column is where later entries read this input's shape and dtype
            self._store.revalue(self._slot, value)

    def __del__(self):
        if self._role is RESULT:
            # Store.release's common case inline (the entry is still read by a later entry): this
            # runs once per recorded result, and the call would cost as much as the work. The last
            # handle on the store's results takes the whole history with it (Store.drop_history).
            try:
                store = self._store
                n = store.n_handles - 1
                store.n_handles = n
                if not n:
                    store.drop_history()
                    return
                entry = store.entries.get(self._slot)
                if entry is not None and entry[RC_COLUMN] > 1:
                    entry[RC_COLUMN] -= 1
                else:
                    store.release(self._slot)
            except Exception:  # interpreter shutdown: the store may be gone already
                pass

    def __copy__(self):
        """Another handle on the same array and history (as ``b = a``): a result's copy counts as one
        of its entry's handles, so the history lives as long as either does."""
        if self._role is RESULT:
            return self._store.handle(self._slot, self._a)
        t = _new_tensor(self._a)
        t._role, t.grad = self._role, self.grad
        return t

    def __deepcopy__(self, memo):
        """A copy of the values: a leaf stays a leaf (its `.grad` copied too), a constant a constant. A
        result with history cannot be copied with it, as in PyTorch: copy ``x.detach()`` instead."""
        if self._role is RESULT:
            raise RuntimeError(
                f"deepcopy of a tensor with history (shape {self.shape}, {self.dtype}) is not supported: "
                "its history cannot be copied; deepcopy x.detach() for its values"
            )
        t = _new_tensor(self._a.copy())
        t._role = self._role
        t.grad = None if self.grad is None else self.grad.__deepcopy__(memo)
        memo[id(self)] = t
        return t

    # -- what it is ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self._a.shape

    @property
    def dtype(self):
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def device(self) -> str:
        return devices.device_of(self._a)

    @property
    def requires_grad(self) -> bool:
        return self._role is not CONSTANT

    @property
    def is_leaf(self) -> bool:
        return self._role is not RESULT

    def __len__(self):
        if self._a.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._a.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __hash__(self):
        return id(self)

    def __repr__(self):
        a = devices.to_host(self.array)
        body = np.array2string(a, separator=", ", prefix="tensor(")
        extra = ""
        if a.dtype not in (np.float64, np.int64, np.bool_):
            extra += f", dtype={a.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self._role:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    __str__ = __repr__

    def __format__(self, spec):
        """A 0-d Tensor formats like its value (``f"{loss:.4f}"``); others only with an empty spec,
        as NumPy arrays.

        >>> import tape as tp
        >>> f"{tp.tensor(0.123456):.3f}"
        '0.123'
        """
        if not spec:
            return str(self)
        if self.ndim == 0:
            return format(self.item(), spec)
        raise TypeError(
            f"unsupported format string {spec!r} passed to Tensor.__format__: a Tensor of shape {self.shape} "
            "formats only with an empty spec (format a 0-d Tensor or its elements instead)"
        )

    # -- ways out -----------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A host (NumPy) copy of the values, without history."""
        a = np.array(devices.to_host(self._a), copy=True)
        if _capture is not None and self._role:
            _capture.guard(self, a)
        return a

    def item(self):
        v = self._a.item()
        if _capture is not None and self._role:
            _capture.guard(self, v)
        return v

    def tolist(self):
        return self._a.tolist()

    def __bool__(self):
        v = bool(self._a)
        if _capture is not None and self._role:
            _capture.guard(self, v)
        return v

    def __float__(self):
        v = float(self._a)
        if _capture is not None and self._role:
            _capture.guard(self, v)
        return v

    def __int__(self):
        v = int(self._a)
        if _capture is not None and self._role:
            _capture.guard(self, v)
        return v

    def __index__(self):
        if self.array.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        v = int(self.array)
        if _capture is not None and self._role:
            _capture.guard(self, v)
        return v

    def detach(self) -> Tensor:
        """The same values (shared array), without history."""
        if _capture is not None and self._role:  # a compiled function's recording: an entry, not a constant
            t = _capture.plain("stop_gradient", (self,), [self.array], self.array, {})
            if t is not None:
                return t
        return _new_tensor(self.array)

    # -- gradients ----------------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Mark this leaf as needing `.grad` (in place); returns self."""
        if self._role is RESULT:
            if flag:
                return self
            raise RuntimeError(
                "requires_grad_(False) on a result with history: use x.detach() to get a tensor without it"
            )
        if flag:
            _check_grad_dtype(self._a.dtype, "requires_grad_")
        self._role = TRACKED_LEAF if flag else CONSTANT
        return self

    def zero_grad(self) -> None:
        """Set `.grad` back to None."""
        self.grad = None


class DualTensor(Tensor):
    """A Tensor carrying a tangent for forward mode (made by `tp.jvp`; never on the tape).

    `array` is the innermost primal value; `_primal` the primal one level down (a Tensor that may
    have history, or be a dual of an outer jvp), `_tangent` its tangent, `_level` which jvp owns it.
    """

    __slots__ = ("_primal", "_tangent", "_level")

    def __repr__(self):
        return f"dual({self._primal!r}, tangent={self._tangent!r})"


def _check_grad_dtype(dtype, what: str) -> None:
    if np.dtype(dtype).kind not in _FLOAT_KINDS:
        raise TypeError(
            f"{what}: only floating-point tensors (float16/32/64) can require gradients, not {np.dtype(dtype)}"
        )


def _new_tensor(array) -> Tensor:
    """A Tensor without history around `array` (no copy)."""
    t = object.__new__(Tensor)
    t._a = array
    t._slot = -1
    t._store = None
    t._role = CONSTANT
    t.grad = None
    return t


def _tensor_with_history(array, slot: int, store) -> Tensor:
    """A handle on `slot` of `store` (the caller has counted it in the entry's reference count)."""
    store.n_handles += 1
    t = object.__new__(Tensor)
    t._a = array
    t._slot = slot
    t._store = store
    t._role = RESULT
    t.grad = None
    return t


def tensor(data, dtype=None, requires_grad: bool = False, device: str | None = None) -> Tensor:
    """A new Tensor holding a copy of `data` (scalar, nested lists, NumPy/CuPy array, Tensor).

    dtype rules follow NumPy (Python floats -> float64). `device` defaults to where `data` is
    ("cpu" for everything but CuPy arrays).

    >>> import tape as tp
    >>> tp.tensor([1, 2]).dtype
    dtype('int64')
    >>> tp.tensor(2.0, requires_grad=True)
    tensor(2., requires_grad=True)
    """
    if isinstance(data, Tensor):
        data = data.array
    if dtype is not None:
        dtype = np.dtype(dtype)
    if device is None:
        device = devices.device_of(data) if devices.is_device_array(data) else "cpu"
    xp = devices.xp_of(device, "tensor")
    try:
        array = xp.array(data, dtype=dtype, copy=True)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"tensor: cannot make an array from {type(data).__name__}: {exc}") from exc
    if requires_grad:
        _check_grad_dtype(array.dtype, "tensor")
    if array.dtype is _F64_DTYPE and array.ndim == 0 and type(array) is np.ndarray:
        array = array[()]  # held as a float64 scalar, as ops hold their 0-d results (see `array`)
    t = _new_tensor(array)
    t._role = TRACKED_LEAF if requires_grad else CONSTANT
    return t
