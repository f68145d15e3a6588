"""Reduction primitives: sum, prod, max, min, and the Euclidean norm.

`axis` is normalised to a tuple of non-negative ints before recording, so the rules can put the
reduced axes back with `expand_dims` and broadcast the cotangent to the input's shape.
The public functions (`tp.sum`, ...) are generated from the rows; `_reduce_args` reads their arguments.
"""

from __future__ import annotations

import builtins

import numpy as np

from .registry import Op, Sample, defop
from .shape import RESHAPE


def normalize_axis(axis, ndim: int, what: str) -> tuple:
    """`axis` (None, int or sequence) as a sorted tuple of non-negative ints."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if np.ndim(axis) == 0 else tuple(axis)
    out = []
    for a in axes:
        a = int(a)
        if not -ndim <= a < builtins.max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise np.exceptions.AxisError(f"{what}: axis {a} is out of bounds for an array of dimension {ndim}")
        out.append(a % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{what}: repeated axis in {axis}")
    return tuple(sorted(out)) if ndim else ()


def keep(g, axis, keepdims):
    """`g` with the reduced axes put back as size-1 axes (a 0-d g, all axes reduced, broadcasts as
    it is: expand_dims would cost more than the rest of a small rule)."""
    if keepdims or not axis or getattr(g, "ndim", 0) == 0:
        return g
    return np.expand_dims(g, axis)


def _sum_vjp(g, o, x, axis, keepdims, shape):
    return np.broadcast_to(keep(g, axis, keepdims), shape)


def _prod_others(x, axis):
    """For each element, the product of the others in its reduction group (exact at zeros)."""
    n = len(axis)
    moved = np.moveaxis(x, axis, tuple(range(x.ndim - n, x.ndim)))
    flat = moved.reshape(moved.shape[: x.ndim - n] + (-1,))
    ones = np.ones_like(flat[..., :1])
    left = np.cumprod(np.concatenate([ones, flat[..., :-1]], axis=-1), axis=-1)
    right = np.cumprod(np.concatenate([ones, flat[..., :0:-1]], axis=-1), axis=-1)[..., ::-1]
    return np.moveaxis((left * right).reshape(moved.shape), tuple(range(x.ndim - n, x.ndim)), axis)


def _others(o, x, axis, keepdims):
    """The product of the other elements of each group: exact (cumulative products) on arrays.

    On Tensors (forward mode, the differentiable sweep) prod/x is used, which is differentiable,
    so second derivatives are right; where an element is 0 that would be 0/0, so there the exact
    product is used instead, as a constant (first derivatives stay exact, second ones are not).
    """
    if isinstance(x, np.ndarray):
        return _prod_others(x, axis)
    raw = x.array
    if (raw == 0).any():
        return _prod_others(raw, axis)
    return keep(o, axis, keepdims) / x


def _prod_vjp(g, o, x, axis, keepdims, shape):
    return keep(g, axis, keepdims) * _others(o, x, axis, keepdims)


def _extreme_vjp(g, o, x, axis, keepdims, shape):
    # Ties share the gradient equally: each of the k tied maxima gets g / k.
    hit = x == keep(o, axis, keepdims)
    count = np.sum(hit, axis=axis, keepdims=True)
    return np.where(hit, keep(g, axis, keepdims) / count, 0.0)


def _norm_forward(x, axis, keepdims, shape):
    return np.sqrt(np.sum(x * x, axis=axis, keepdims=keepdims))


def _norm_vjp(g, o, x, axis, keepdims, shape):
    # The subgradient 0 at x = 0 (PyTorch), instead of 0/0.
    ok = keep(o, axis, keepdims)
    return np.where(ok == 0, 0.0, keep(g, axis, keepdims) * x / np.where(ok == 0, 1.0, ok))


def _prod_jvp(ts, o, x, axis, keepdims, shape):
    return np.sum(ts[0] * _others(o, x, axis, keepdims), axis=axis, keepdims=keepdims)


def _extreme_jvp(ts, o, x, axis, keepdims, shape):
    hit = x == keep(o, axis, keepdims)
    count = np.sum(hit, axis=axis, keepdims=True)
    return np.sum(np.where(hit, ts[0] / count, 0.0), axis=axis, keepdims=keepdims)


def _norm_jvp(ts, o, x, axis, keepdims, shape):
    return np.where(o == 0, 0.0, np.sum(x * ts[0], axis=axis, keepdims=keepdims) / np.where(o == 0, 1.0, o))


def _reduce_forward(fn):
    return lambda x, axis, keepdims, shape: fn(x, axis=axis, keepdims=keepdims)


def _reduce_args(name):
    def args(x, axis=None, keepdims=False):
        shape = tuple(np.shape(getattr(x, "array", x)))
        return (x,), {"axis": normalize_axis(axis, len(shape), name), "keepdims": bool(keepdims), "shape": shape}

    return args


def _reduce_samples(rng, domain=(0.5, 2.0), ref=None):
    """A 0-d input, then every axis (None, int, negative, tuple) with and without keepdims."""
    yield Sample((rng.uniform(0.5, 2.0, ()),), None, "scalar", ref)
    for axis in [None, 0, 1, -1, (0, 2)]:
        for keepdims in (False, True):
            x = rng.uniform(*domain, (2, 3, 4))
            r = None if ref is None else lambda x, a=axis, k=keepdims: ref(x, axis=a, keepdims=k)
            yield Sample(
                (x,), lambda f, x, a=axis, k=keepdims: f(x, axis=a, keepdims=k), f"axis{axis}-keep{keepdims}", r
            )


# fmt: off
#            opcode   name    forward                      vjp            save  public function, NumPy's, method
SUM  = defop(Op.SUM,  "sum",  _reduce_forward(np.sum),  (_sum_vjp,),     "",   numpy=np.sum,  method=True, args=_reduce_args("sum"),  linearity="linear", samples=lambda rng: _reduce_samples(rng, (-2, 2)),
             doc="Sum over `axis` (all by default).\n\n>>> import tape as tp\n>>> tp.sum(tp.ones((2, 3)), axis=0)\ntensor([2., 2., 2.])")
PROD = defop(Op.PROD, "prod", _reduce_forward(np.prod), (_prod_vjp,),    "xo", numpy=np.prod, method=True, args=_reduce_args("prod"), jvp=_prod_jvp, samples=_reduce_samples,
             doc="Product over `axis`; its gradient is exact where elements are zero.")
MAX  = defop(Op.MAX,  "max",  _reduce_forward(np.max),  (_extreme_vjp,), "xo", numpy=(np.max, np.amax), method=True, args=_reduce_args("max"), jvp=_extreme_jvp, samples=lambda rng: _reduce_samples(rng, (-2, 2)),
             doc="Largest element over `axis`; tied maxima share the gradient equally.")
MIN  = defop(Op.MIN,  "min",  _reduce_forward(np.min),  (_extreme_vjp,), "xo", numpy=(np.min, np.amin), method=True, args=_reduce_args("min"), jvp=_extreme_jvp, samples=lambda rng: _reduce_samples(rng, (-2, 2)),
             doc="Smallest element over `axis`; tied minima share the gradient equally.")
NORM = defop(Op.NORM, "norm", _norm_forward,            (_norm_vjp,),    "xo", public="norm2", args=_reduce_args("norm"), numpy=None, jvp=_norm_jvp, samples=lambda rng: _reduce_samples(rng, (-2, 2), np.linalg.norm),
             doc="sqrt(sum(x**2)) over `axis`: the Euclidean (and Frobenius) norm, gradient 0 at 0.")
# fmt: on


# -- scans (issue 12) -----------------------------------------------------------------------------
def _scan_args(name):
    def args(a, axis=None):
        shape = tuple(np.shape(getattr(a, "array", a)))
        if axis is None:  # NumPy scans the flattened array
            return (RESHAPE.function(a, -1) if len(shape) != 1 else a,), {"axis": 0}
        return (a,), {"axis": normalize_axis(axis, len(shape), name)[0]}

    args.__doc__ = (
        f"np.{name} along `axis` (of the flattened array by default).\n\n"
        f">>> import tape as tp\n>>> tp.{name}(tp.tensor([[1.0, 2.0], [3.0, 4.0]]), axis=1)\n"
        + {"cumsum": "tensor([[1., 3.],\n        [3., 7.]])", "cumprod": "tensor([[ 1.,  2.],\n        [ 3., 12.]])"}[
            name
        ]
    )
    return args


def _reverse_cumsum(g, axis):
    """sum over k >= i of g[k]: cumsum's transpose (flip and cumsum dispatch on Tensors too)."""
    return np.flip(np.cumsum(np.flip(g, axis), axis=axis), axis)


def _zero_split(raw, axis):
    """Masks of the positions before, and at, the first zero of each lane along `axis` (raw values)."""
    zero = raw == 0
    n = raw.shape[axis]
    first = np.where(zero.any(axis=axis, keepdims=True), np.argmax(zero, axis=axis, keepdims=True), n)
    pos = np.arange(n).reshape(tuple(-1 if i == axis else 1 for i in range(raw.ndim)))
    return pos < first, pos == first


# d o_k / d x_j = prod over i <= k, i != j of x_i. Without zeros that is o_k / x_j. With a zero at z
# (the first of its lane): before z it is still o_k / x_j (o_k = 0 from z on); at z it is the
# cumulative product with x_z taken as 1; after z it is 0. First derivatives are exact everywhere;
# second derivatives are exact where x has no zero (after a zero the rule is the constant 0, whose
# derivative misses the terms through x_z), as for prod.
def _cumprod_vjp(g, o, x, axis):
    raw = getattr(x, "array", x)
    if not (raw == 0).any():
        return _reverse_cumsum(g * o, axis) / x
    before, at = _zero_split(raw, axis)
    skip_zero = np.cumprod(np.where(at, 1.0, x), axis=axis)
    at_zero = np.where(at, _reverse_cumsum(g * skip_zero, axis), 0.0)
    return np.where(before, _reverse_cumsum(g * o, axis) / np.where(before, x, 1.0), at_zero)


def _cumprod_jvp(ts, o, x, axis):
    t, raw = ts[0], getattr(x, "array", x)
    if not (raw == 0).any():
        return o * np.cumsum(t / x, axis=axis)
    before, at = _zero_split(raw, axis)
    skip_zero = np.cumprod(np.where(at, 1.0, x), axis=axis)
    t_zero = np.sum(np.where(at, t, 0.0), axis=axis, keepdims=True)
    head = o * np.cumsum(np.where(before, t, 0.0) / np.where(before, x, 1.0), axis=axis)
    return np.where(before, head, t_zero * skip_zero)


def _scan_samples(rng, domain=(-2.0, 2.0)):
    yield Sample((rng.uniform(*domain, ()),), None, "scalar")
    for shape, axis in [((4,), None), ((4,), 0), ((2, 3), None), ((2, 3), 0), ((2, 3), 1), ((2, 3, 2), -2)]:
        yield Sample((rng.uniform(*domain, shape),), lambda f, x, a=axis: f(x, axis=a), f"{shape}-axis{axis}")


# fmt: off
CUMSUM  = defop(Op.CUMSUM,  "cumsum",  lambda x, axis: np.cumsum(x, axis=axis),  (lambda g, o, x, axis: _reverse_cumsum(g, axis),), "",   numpy=np.cumsum,  method=True, args=_scan_args("cumsum"),  linearity="linear", samples=_scan_samples)
CUMPROD = defop(Op.CUMPROD, "cumprod", lambda x, axis: np.cumprod(x, axis=axis), (_cumprod_vjp,),                                   "xo", numpy=np.cumprod, method=True, args=_scan_args("cumprod"), jvp=_cumprod_jvp, samples=lambda rng: _scan_samples(rng, (0.5, 2.0)))
# fmt: on
