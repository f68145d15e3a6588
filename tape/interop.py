"""NumPy dispatch: `np.sin(x)`, `np.sum(x)`, `np.matmul(a, b)` on Tensors run tape's ops.

NumPy hands a call with a Tensor argument to `Tensor.__array_ufunc__` (ufuncs) or
`Tensor.__array_function__` (everything else, NEP 18). Both look the function up in
`registry.NUMPY`, which the op rows (`defop(..., numpy=np.tanh)`) and the composites
(`@exported(numpy=np.mean)`) fill; this module adds only the NumPy functions whose results carry no
gradient (shapes, `*_like`, comparisons of values) and NumPy's calling conventions. Anything not in
the table raises TypeError naming the function: a silently dropped gradient is worse than an error.
`out=`, `dtype=`, `where=` and ufunc methods (`np.add.reduce`) are refused for the same reason.

The same dispatch lets the op table's rules, written with NumPy calls, run on Tensors: that is how
the differentiable sweep (`create_graph=True`) and forward mode record their derivatives.
"""

from __future__ import annotations

import inspect

import numpy as np

from . import composite, numpy_extra  # noqa: F401  (their functions join the table)
from .ops import NUMPY, reshape, where
from .tensor import Tensor, _new_tensor

# ufunc keywords that change nothing about the result's value or gradient
_HARMLESS = {"casting": "same_kind", "order": "K", "subok": True}
_UNSET = object()


def array_ufunc(ufunc, method, inputs, kwargs):
    name = ufunc.__name__
    if method != "__call__":
        raise TypeError(
            f"np.{name}.{method} is not supported on tape Tensors (only np.{name}(...) itself); "
            "use the tp. reduction (e.g. tp.sum) instead"
        )
    if kwargs.get("out") is not None:
        raise TypeError(f"np.{name}(..., out=...) is not supported on tape Tensors: assign the result instead")
    extra = {k: v for k, v in kwargs.items() if k != "out" and _HARMLESS.get(k, _UNSET) != v}
    if extra:
        raise TypeError(f"np.{name}: keyword arguments {sorted(extra)} are not supported on tape Tensors")
    fn = NUMPY.get(ufunc)
    if fn is None:
        raise TypeError(f"np.{name} is not implemented by tape; applying it to a Tensor would drop the gradient")
    return fn(*inputs)


def array_function(func, types, args, kwargs):
    fn = NUMPY.get(func)
    if fn is None:
        name = getattr(func, "__module__", "numpy").replace("numpy", "np", 1) + "." + func.__name__
        raise TypeError(f"{name} is not implemented by tape; applying it to a Tensor would drop the gradient")
    if kwargs:
        kwargs = _accepted(fn, func.__name__, kwargs)
    return fn(*args, **kwargs)


def _accepted(fn, name, kwargs):
    """`kwargs` less NumPy's keywords that `fn` does not take, when they are left at their default
    (None, or False for keepdims-like flags); a keyword set to anything else is refused by name."""
    params = _parameters(fn)
    if params is None:
        return kwargs
    bad = sorted(k for k, v in kwargs.items() if k not in params and v is not None and v is not np._NoValue)
    if bad:
        raise TypeError(f"np.{name}: the arguments {bad} are not supported on tape Tensors")
    return {k: v for k, v in kwargs.items() if k in params}


_SIGNATURES: dict = {}


def _parameters(fn):
    """The keyword names `fn` accepts, or None if it takes **kwargs (cached per function)."""
    if fn not in _SIGNATURES:
        params = inspect.signature(fn).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        _SIGNATURES[fn] = None if takes_any else set(params)
    return _SIGNATURES[fn]


# -- NumPy functions whose results carry no gradient, and NumPy's own conventions -----------------


def _raw(x):
    return x.array if isinstance(x, Tensor) else x


def _values(fn):
    """A NumPy function whose result carries no gradient (shapes, indices, comparisons)."""

    def wrapped(*args, **kwargs):
        return fn(*[_raw(a) for a in args], **kwargs)

    return wrapped


def _constant_like(fill):
    def like(a, dtype=None, order="K", subok=True, shape=None, **kw):
        return _new_tensor(fill(_raw(a), dtype=dtype, shape=shape, **kw))

    return like


def _full_like(a, fill_value, dtype=None, order="K", subok=True, shape=None):
    return _new_tensor(np.full_like(_raw(a), fill_value, dtype=dtype, shape=shape))


def _where(condition, x=None, y=None):
    if x is None and y is None:  # np.where(c) is np.nonzero(c)
        return np.nonzero(_raw(condition))
    return where(condition, x, y)


def _reshape(a, shape=None, order="C", **kw):
    return reshape(a, kw.get("newshape", shape))


NUMPY.update(
    {
        np.positive: lambda x: x,
        np.where: _where,
        np.reshape: _reshape,
        np.ravel: lambda a, order="C": reshape(a, -1),
        np.zeros_like: _constant_like(np.zeros_like),
        np.ones_like: _constant_like(np.ones_like),
        np.empty_like: _constant_like(np.empty_like),
        np.full_like: _full_like,
        np.shape: _values(np.shape),
        np.ndim: _values(np.ndim),
        np.size: _values(np.size),
        np.allclose: _values(np.allclose),
        np.isclose: _values(np.isclose),
        np.array_equal: _values(np.array_equal),
        np.result_type: _values(np.result_type),
        np.may_share_memory: _values(np.may_share_memory),
    }
)
