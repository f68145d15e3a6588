"""Shape and movement primitives: reshape, transpose, broadcast_to, indexing, concatenate, pad,
astype, and moving between devices. None of them keeps an input array for its rule.
"""

from __future__ import annotations

import numpy as np

from .. import devices
from .. import tensor as _tensor
from ..tensor import Tensor, _new_tensor
from .registry import Op, Sample, apply, call, defop, export


def _index_arrays(index):
    """An index with Tensors and lists turned into arrays (what NumPy indexing expects)."""
    if isinstance(index, tuple):
        return tuple(_index_arrays(i) for i in index)
    if isinstance(index, Tensor):
        if index.requires_grad and _tensor._capture is not None:
            # a compiled function's recording: an index computed from values is a guard (see tape.compiled)
            _tensor._capture.index(index)
        return index.array
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _has_int_array(index) -> bool:
    """True if `index` holds an integer array, which may pick the same element twice."""
    items = index if isinstance(index, tuple) else (index,)
    return any(hasattr(i, "dtype") and i.dtype.kind in "iu" and i.ndim > 0 for i in items)


def _index_add_forward(g, idx, shape):
    z = np.zeros_like(g, shape=shape)
    if _has_int_array(idx):
        np.add.at(z, idx, g)  # repeated indices add up
    else:
        z[idx] = g
    return z


def _pad_slices(pad_width):
    return tuple(slice(lo, -hi if hi else None) for lo, hi in pad_width)


def _inverse_transpose(g, o, x, axes):
    return np.transpose(g, tuple(int(i) for i in np.argsort(axes)))


def _split_back(g, o, *xs, axis, sizes):
    return tuple(np.split(g, np.cumsum(sizes)[:-1].tolist(), axis=axis))


def _pad_jvp(ts, o, x, pad_width, value):
    return call(PAD, ts[0], pad_width=pad_width, value=0)  # padding with a constant adds no tangent


def _shape_of(x):
    return tuple(getattr(x, "shape", np.shape(x)))


def _reshape_args(x, *shape):
    """x with a new shape (a tuple or separate ints; one entry may be -1)."""
    if len(shape) == 1 and not isinstance(shape[0], (int, np.integer)):
        shape = tuple(shape[0])
    return (x,), {"shape": tuple(int(s) for s in shape), "in_shape": _shape_of(x)}


def _transpose_args(x, axes=None):
    """Permute the axes (reverse them by default)."""
    nd = len(_shape_of(x))
    axes = tuple(range(nd))[::-1] if axes is None else tuple(int(a) % max(nd, 1) for a in axes)
    if sorted(axes) != list(range(nd)):
        raise ValueError(f"transpose: axes {axes} are not a permutation of the {nd} axes of shape {_shape_of(x)}")
    return (x,), {"axes": axes}


def _broadcast_to_args(x, shape):
    """x broadcast to `shape` (the gradient is summed back)."""
    shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    return (x,), {"shape": shape}


def _getitem_args(x, index):
    """x[index]: slices, integers, None, Ellipsis, integer arrays and boolean masks."""
    return (x,), {"idx": _index_arrays(index), "shape": _shape_of(x)}


def _concatenate_args(arrays, axis=0):
    """Join a sequence of tensors along an existing axis."""
    arrays = tuple(arrays)
    if not arrays:
        raise ValueError("concatenate: need at least one array to concatenate")
    if axis is None:
        arrays = tuple(RESHAPE.function(a, -1) for a in arrays)
        axis = 0
    nd = len(_shape_of(arrays[0]))
    if nd == 0:
        raise ValueError("concatenate: zero-dimensional arrays cannot be concatenated")
    ax = int(axis) % nd
    sizes = tuple(_shape_of(a)[ax] if len(_shape_of(a)) == nd else -1 for a in arrays)
    return arrays, {"axis": ax, "sizes": sizes}


def _pad_args(x, pad_width, mode="constant", constant_values=0):
    """np.pad with mode='constant' (the gradient drops the padding)."""
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported; only mode='constant' is differentiable here")
    nd = len(_shape_of(x))
    widths = np.broadcast_to(np.asarray(pad_width, dtype=int), (nd, 2))
    return (x,), {"pad_width": tuple((int(lo), int(hi)) for lo, hi in widths), "value": constant_values}


def _u(rng, *shape):
    return rng.uniform(-1, 1, size=shape)


def _samples(*items):
    """Samples from (id, call, shapes[, ref]) tuples, inputs uniform on (-1, 1)."""
    return lambda rng: [Sample(tuple(_u(rng, *s) for s in it[2]), it[1], it[0], *it[3:]) for it in items]


_MASK = np.random.default_rng(7).uniform(size=(3, 4)) > 0.4
_INDICES = [("slice", np.s_[1:]), ("reverse", np.s_[::-1]), ("int", np.s_[1]), ("slice-int", np.s_[:, 2]),
            ("newaxis-ellipsis", np.s_[None, ..., 1:3]), ("int-array-repeats", np.array([0, 2, 0])),
            ("bool-mask", _MASK), ("int-array-slice", (np.array([2, 0, 2]), np.s_[1:3])),
            ("two-int-arrays", (np.array([0, 1, 1]), np.array([3, 3, 0])))]  # fmt: skip
_INDEX = np.array([0, 2, 0])

# One row per primitive: opcode, name, forward, vjp rule(s). None of them saves an array. All are
# linear, so forward mode applies the op itself to the tangents (pad: with zeros for the padding).
# `astype`'s and `broadcast_to`'s rules return g unchanged: the sweep casts it back and sums the
# broadcast away (sweep.Adjoints.add), in the one place that does so for every op.
# fmt: off
RESHAPE      = defop(Op.RESHAPE,      "reshape",      lambda x, shape, in_shape: np.reshape(x, shape),             (lambda g, o, x, shape, in_shape: np.reshape(g, in_shape),), linearity="linear", numpy=np.reshape, method=True, args=_reshape_args,
                     samples=_samples(("", lambda f, x: f(x, (3, 2)), [(2, 3)]), ("-1", lambda f, x: f(x, (2, -1)), [(6,)])))
TRANSPOSE    = defop(Op.TRANSPOSE,    "transpose",    lambda x, axes: np.transpose(x, axes),                       (_inverse_transpose,),                                      linearity="linear", numpy=np.transpose, args=_transpose_args,
                     samples=_samples(("", lambda f, x: f(x, (2, 0, 1)), [(2, 3, 4)]), ("T", lambda f, x: f(x), [(2, 3)])))
BROADCAST_TO = defop(Op.BROADCAST_TO, "broadcast_to", lambda x, shape: np.broadcast_to(x, shape),                  (lambda g, o, x, shape: g,),                                linearity="linear", numpy=np.broadcast_to, args=_broadcast_to_args,
                     samples=_samples(("", lambda f, x: f(x, (2, 3)), [(3,)]), ("col", lambda f, x: f(x, (2, 3)), [(2, 1)])))
GETITEM      = defop(Op.GETITEM,      "getitem",      lambda x, idx, shape: x[idx],                                (lambda g, o, x, idx, shape: call(INDEX_ADD, g, idx=idx, shape=shape),), linearity="linear", public=False, args=_getitem_args,
                     samples=_samples(*[(name, lambda f, x, i=i: f(x, i), [(3, 4)], lambda x, i=i: x[i]) for name, i in _INDICES]))
INDEX_ADD    = defop(Op.INDEX_ADD,    "index_add",    _index_add_forward,                                          (lambda g, o, x, idx, shape: g[idx],),                      linearity="linear", public=False,
                     args=lambda g, idx, shape: ((g,), {"idx": idx, "shape": shape}),
                     samples=_samples(("", lambda f, g: f(g, _INDEX, (4,)), [(3,)], lambda g: np.bincount(_INDEX, weights=g, minlength=4))))
CONCATENATE  = defop(Op.CONCATENATE,  "concatenate",  lambda *xs, axis, sizes: np.concatenate(xs, axis=axis),      None,                                                       linearity="linear", vjp_all=_split_back, numpy=np.concatenate, args=_concatenate_args,
                     samples=_samples(("0", lambda f, a, b: f([a, b]), [(2, 3), (1, 3)]), ("1", lambda f, a, b, c: f([a, b, c], axis=1), [(2, 3), (2, 2), (2, 1)])))
PAD          = defop(Op.PAD,          "pad",          lambda x, pad_width, value: np.pad(x, pad_width, constant_values=value), (lambda g, o, x, pad_width, value: g[_pad_slices(pad_width)],), jvp=_pad_jvp, numpy=np.pad, args=_pad_args,
                     samples=_samples(("1d", lambda f, x: f(x, (1, 2)), [(3,)]), ("2d", lambda f, x: f(x, ((1, 0), (0, 2))), [(2, 3)])))
ASTYPE       = defop(Op.ASTYPE,       "astype",       lambda x, dtype: x.astype(dtype),                            (lambda g, o, x, dtype: g,),                                linearity="linear", public=False,
                     args=lambda x, dtype: ((x,), {"dtype": dtype}),
                     samples=_samples(("", lambda f, x: f(x, np.float64) * 2, [(3,)], lambda x: x * 2)))
IDENTITY     = defop(Op.IDENTITY,     "identity",     lambda x: x,                                                 (lambda g, o, x: g,),                                       linearity="linear", public=False,
                     samples=_samples(("", lambda f, x: f(x) * 2, [(3,)], lambda x: x * 2)))  # a new slot, same value
TO_DEVICE    = defop(Op.TO_DEVICE,    "to",           lambda x, device, source: devices.to_device(x, device),      (lambda g, o, x, device, source: call(TO_DEVICE, g, device=source, source=device),), linearity="linear", public=False,
                     args=lambda x, device, source: ((x,), {"device": device, "source": source}),
                     samples=_samples(("cpu", lambda f, x: f(x, "cpu", "cpu") * 2, [(3,)], lambda x: x * 2)))
# fmt: on


@export
def astype(x, dtype):
    """A cast copy; recorded (differentiable) only between floating-point dtypes."""
    dtype = np.dtype(dtype)
    a = x.array if isinstance(x, Tensor) else np.asarray(x)
    if dtype.kind != "f" or a.dtype.kind != "f":
        return _new_tensor(a.astype(dtype))
    return apply(ASTYPE, (x,), {"dtype": dtype})


def to_device(x, device):
    """x on `device` ("cpu" or "cuda"); the gradient moves back."""
    devices.check_device(device, "to")
    source = devices.device_of(getattr(x, "array", x))
    if device == "cuda":
        devices.cupy()  # the clear error when CuPy or the GPU is missing
    return apply(TO_DEVICE, (x,), {"device": device, "source": source})
