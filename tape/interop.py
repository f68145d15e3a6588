"""NumPy dispatch: `np.sin(x)`, `np.sum(x)`, `np.matmul(a, b)` on Tensors run tape's ops.

NumPy hands a call with a Tensor argument to `Tensor.__array_ufunc__` (ufuncs) or
`Tensor.__array_function__` (everything else, NEP 18). Both look the function up in the tables
below. Anything not in a table raises TypeError naming the function: a silently dropped gradient
is worse than an error. `out=` and ufunc methods (`np.add.reduce`) are refused for the same reason.

The same dispatch lets the op table's rules, written with NumPy calls, run on Tensors: that is how
the differentiable sweep (`create_graph=True`) and forward mode record their derivatives.
"""

from __future__ import annotations

import numpy as np

from . import composite as cp
from .ops import elementwise as ew
from .ops import linalg as la
from .ops import reduce as rd
from .ops import shape as sh

UFUNCS = {
    np.add: ew.add,
    np.subtract: ew.subtract,
    np.multiply: ew.multiply,
    np.divide: ew.divide,
    np.power: ew.power,
    np.maximum: ew.maximum,
    np.minimum: ew.minimum,
    np.arctan2: ew.arctan2,
    np.negative: ew.negative,
    np.positive: lambda x: x,
    np.exp: ew.exp,
    np.log: ew.log,
    np.log1p: ew.log1p,
    np.expm1: ew.expm1,
    np.sqrt: ew.sqrt,
    np.square: cp.square,
    np.absolute: ew.abs,
    np.sign: ew.sign,
    np.sin: ew.sin,
    np.cos: ew.cos,
    np.tan: ew.tan,
    np.arcsin: ew.arcsin,
    np.arccos: ew.arccos,
    np.arctan: ew.arctan,
    np.sinh: ew.sinh,
    np.cosh: ew.cosh,
    np.tanh: ew.tanh,
    np.matmul: la.matmul,
    np.equal: cp.equal,
    np.not_equal: cp.not_equal,
    np.less: cp.less,
    np.less_equal: cp.less_equal,
    np.greater: cp.greater,
    np.greater_equal: cp.greater_equal,
    np.isfinite: cp.isfinite,
    np.isnan: cp.isnan,
    np.logical_and: cp.logical_and,
    np.logical_or: cp.logical_or,
    np.logical_not: cp.logical_not,
    np.bitwise_and: cp.bitwise_and,
    np.bitwise_or: cp.bitwise_or,
    np.bitwise_xor: cp.bitwise_xor,
    np.invert: cp.invert,
}

# ufunc keywords that change nothing about the result's value or gradient
_HARMLESS_UFUNC_KWARGS = {"casting": "same_kind", "order": "K", "subok": True}


def array_ufunc(ufunc, method, inputs, kwargs):
    name = ufunc.__name__
    if method != "__call__":
        raise TypeError(
            f"np.{name}.{method} is not supported on tape Tensors (only np.{name}(...) itself); "
            "use the tp. reduction (e.g. tp.sum) instead"
        )
    if kwargs.get("out") is not None:
        raise TypeError(f"np.{name}(..., out=...) is not supported on tape Tensors: assign the result instead")
    extra = {k: v for k, v in kwargs.items() if k != "out" and _HARMLESS_UFUNC_KWARGS.get(k, object()) != v}
    if extra:
        raise TypeError(f"np.{name}: keyword arguments {sorted(extra)} are not supported on tape Tensors")
    fn = UFUNCS.get(ufunc)
    if fn is None:
        raise TypeError(f"np.{name} is not implemented by tape; applying it to a Tensor would drop the gradient")
    return fn(*inputs)


def _reject(name, **given):
    """TypeError for NumPy keywords tape does not implement (out=, dtype=, where=, ...)."""
    bad = sorted(k for k, v in given.items() if v is not None)
    if bad:
        raise TypeError(f"np.{name}: the arguments {bad} are not supported on tape Tensors")


def _reduction(fn, name):
    def wrapped(a, axis=None, dtype=None, out=None, keepdims=False, initial=None, where=None, **kw):
        _reject(name, dtype=dtype, out=out, initial=initial, where=where)
        return fn(a, axis=axis, keepdims=bool(keepdims), **kw)

    return wrapped


def _stat(fn, name):
    def wrapped(a, axis=None, dtype=None, out=None, ddof=0, keepdims=False, where=None, **kw):
        _reject(name, dtype=dtype, out=out, where=where)
        return fn(a, axis=axis, ddof=ddof, keepdims=bool(keepdims))

    return wrapped


def _mean(a, axis=None, dtype=None, out=None, keepdims=False, where=None):
    _reject("mean", dtype=dtype, out=out, where=where)
    return cp.mean(a, axis=axis, keepdims=bool(keepdims))


def _constant_like(fill):
    def like(a, dtype=None, order="K", subok=True, shape=None, **kw):
        from .tensor import Tensor, _new_tensor

        arr = a.array if isinstance(a, Tensor) else a
        return _new_tensor(fill(arr, dtype=dtype, shape=shape, **kw))

    return like


def _where(condition, x=None, y=None):
    if x is None and y is None:
        return np.nonzero(cp._arr(condition))
    return ew.where(condition, x, y)


def _clip(a, a_min=None, a_max=None, out=None, **kw):
    _reject("clip", out=out)
    return cp.clip(a, kw.get("min", a_min), kw.get("max", a_max))


def _concatenate(arrays, axis=0, out=None, dtype=None, casting=None):
    _reject("concatenate", out=out, dtype=dtype)
    return sh.concatenate(arrays, axis=axis)


def _stack(arrays, axis=0, out=None, dtype=None, casting=None):
    _reject("stack", out=out, dtype=dtype)
    return cp.stack(arrays, axis=axis)


def _dot(a, b, out=None):
    _reject("dot", out=out)
    return la.dot(a, b)


def _outer(a, b, out=None):
    _reject("outer", out=out)
    return cp.outer(a, b)


def _einsum(subscripts, *operands, out=None, optimize=False, **kw):
    _reject("einsum", out=out, dtype=kw.get("dtype"))
    return la.einsum(subscripts, *operands)


def _trace(a, offset=0, axis1=0, axis2=1, dtype=None, out=None):
    _reject("trace", dtype=dtype, out=out)
    return cp.trace(a, offset, axis1, axis2)


def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    return _constant_like(np.full_like)(a, dtype=dtype, shape=shape, fill_value=fill_value)


def _values(fn):
    """A NumPy function whose result carries no gradient (shapes, indices, comparisons)."""

    def wrapped(*args, **kwargs):
        from .tensor import Tensor

        args = [a.array if isinstance(a, Tensor) else a for a in args]
        return fn(*args, **kwargs)

    return wrapped


FUNCTIONS = {
    np.sum: _reduction(rd.sum, "sum"),
    np.prod: _reduction(rd.prod, "prod"),
    np.max: _reduction(rd.max, "max"),
    np.min: _reduction(rd.min, "min"),
    np.amax: _reduction(rd.max, "amax"),
    np.amin: _reduction(rd.min, "amin"),
    np.mean: _mean,
    np.var: _stat(cp.var, "var"),
    np.std: _stat(cp.std, "std"),
    np.dot: _dot,
    np.inner: cp.inner,
    np.outer: _outer,
    np.tensordot: la.tensordot,
    np.einsum: _einsum,
    np.trace: _trace,
    np.reshape: lambda a, shape=None, order="C", **kw: sh.reshape(a, kw.get("newshape", shape)),
    np.ravel: lambda a, order="C": sh.reshape(a, -1),
    np.transpose: lambda a, axes=None: sh.transpose(a, axes),
    np.swapaxes: cp.swapaxes,
    np.moveaxis: cp.moveaxis,
    np.expand_dims: cp.expand_dims,
    np.squeeze: cp.squeeze,
    np.broadcast_to: lambda array, shape, subok=False: sh.broadcast_to(array, shape),
    np.concatenate: _concatenate,
    np.stack: _stack,
    np.split: cp.split,
    np.flip: cp.flip,
    np.pad: lambda array, pad_width, mode="constant", **kw: sh.pad(
        array, pad_width, mode, kw.get("constant_values", 0)
    ),
    np.where: _where,
    np.clip: _clip,
    np.linalg.solve: la.solve,
    np.linalg.inv: la.inv,
    np.linalg.det: la.det,
    np.linalg.norm: cp.norm,
    np.zeros_like: _constant_like(np.zeros_like),
    np.ones_like: _constant_like(np.ones_like),
    np.empty_like: _constant_like(np.empty_like),
    np.full_like: _full_like,
    np.shape: _values(np.shape),
    np.ndim: _values(np.ndim),
    np.size: _values(np.size),
    np.argmax: cp.argmax,
    np.argmin: cp.argmin,
    np.allclose: _values(np.allclose),
    np.isclose: _values(np.isclose),
    np.array_equal: _values(np.array_equal),
    np.result_type: _values(np.result_type),
    np.may_share_memory: _values(np.may_share_memory),
}


def array_function(func, types, args, kwargs):
    fn = FUNCTIONS.get(func)
    if fn is None:
        name = getattr(func, "__module__", "numpy").replace("numpy", "np", 1) + "." + func.__name__
        raise TypeError(f"{name} is not implemented by tape; applying it to a Tensor would drop the gradient")
    return fn(*args, **kwargs)
