"""Composite operations: built from the primitives, with no rules of their own.

Their gradients come from the primitives they are made of, so they need no tests of their own
beyond the generated gradient checks. Each is written for numerical stability first (logsumexp
subtracts the max; sigmoid goes through tanh; softplus never exponentiates a large number).
"""

from __future__ import annotations

import numpy as np

from . import tensor as _tensor
from .ops import (
    abs,
    concatenate,
    exp,
    log,
    log1p,
    max,
    maximum,
    multiply,
    norm2,
    reshape,
    sqrt,
    sum,
    tanh,
    tensordot,
    transpose,
    where,
)
from .ops.linalg import svd as _svd
from .ops.reduce import normalize_axis
from .ops.registry import FUNCTIONS, _as_array, export, exported  # noqa: F401
from .ops.shape import GETITEM
from .tensor import Tensor, _new_tensor

getitem = GETITEM.function


def _arr(x):
    return x.array if isinstance(x, Tensor) else _as_array(x)


def _shape(x) -> tuple:
    return x.shape if isinstance(x, Tensor) else tuple(np.shape(_as_array(x)))


def _probe(shape):
    """A zero-stride array of `shape`: lets NumPy work out shapes without allocating."""
    return np.broadcast_to(np.False_, shape)


def _reduced_shape(shape, axis) -> tuple:
    return np.sum(_probe(shape), axis=axis).shape


@exported()
def stop_gradient(x):
    """The same values without history (``x.detach()``)."""
    return x.detach() if isinstance(x, Tensor) else _new_tensor(_arr(x))


# -- elementwise --------------------------------------------------------------------------------
@exported(numpy=np.square)
def square(x):
    """x * x."""
    return multiply(x, x)


@exported()
def sigmoid(x):
    """1 / (1 + e**-x), computed as (1 + tanh(x/2)) / 2, which never overflows."""
    return 0.5 * tanh(0.5 * x) + 0.5


@exported()
def relu(x):
    """max(x, 0), with gradient 0 at 0 (as PyTorch)."""
    return where(greater(x, 0), x, 0.0)


@exported()
def softplus(x):
    """log(1 + e**x), stable for large |x| (its gradient at 0 is sigmoid(0) = 0.5)."""
    return maximum(x, 0.0) + log1p(exp(-abs(x)))


@exported(numpy=np.clip, method=True)
def clip(x, a_min=None, a_max=None, *, min=None, max=None):  # noqa: A002 (NumPy 2's keywords)
    """Values limited to [a_min, a_max]; gradient 1 inside (ends included), 0 outside."""
    a_min = min if a_min is None else a_min
    a_max = max if a_max is None else a_max
    out = x
    if a_min is not None:
        out = where(less(out, a_min), a_min, out)
    if a_max is not None:
        out = where(greater(out, a_max), a_max, out)
    return out


# -- reductions ---------------------------------------------------------------------------------
def _count(x, axis) -> int:
    shape = _shape(x)
    return int(np.prod([shape[a] for a in normalize_axis(axis, len(shape), "mean")]))


@exported(numpy=np.mean, method=True)
def mean(x, axis=None, keepdims=False):
    """Arithmetic mean over `axis`."""
    return sum(x, axis=axis, keepdims=keepdims) / _count(x, axis)


@exported(numpy=np.var, method=True)
def var(x, axis=None, ddof=0, keepdims=False):
    """Variance over `axis` with NumPy's `ddof`."""
    centred = x - mean(x, axis=axis, keepdims=True)
    return sum(centred * centred, axis=axis, keepdims=keepdims) / (_count(x, axis) - ddof)


def _root(s, p):
    """s ** (1/p) for s >= 0 (a sum of squares, or of |x|**p), with every derivative 0 where s == 0.

    At s == 0 the root has an infinite slope and the sum a zero gradient: 0 * inf = NaN. PyTorch
    masks the gradient of std and of norm to 0 there (the subgradient 0 at the tip of the cone), and
    so does this: where s == 0 the root is taken of 1 (so that no inf is ever made, even in the
    discarded branch that second derivatives go through) and then replaced by the constant 0. The
    mask is a comparison, not a Python decision on the values, so the same entries serve any input
    (a compiled program replays it with the new values).
    """
    zero = equal(s, 0.0)
    safe = where(zero, 1.0, s)
    return where(zero, 0.0, sqrt(safe) if p == 2 else safe ** (1.0 / p))


@exported(numpy=np.std, method=True)
def std(x, axis=None, ddof=0, keepdims=False):
    """Standard deviation over `axis` with NumPy's `ddof`; its gradient is 0 where every value of
    a group is the same (PyTorch's convention: sqrt has no finite slope at 0).

    >>> import tape as tp
    >>> tp.grad(tp.std)(tp.tensor([2.0, 2.0, 2.0]))
    tensor([0., 0., 0.])
    """
    return _root(var(x, axis=axis, ddof=ddof, keepdims=keepdims), 2)


@exported()
def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(exp(a))) over `axis` without overflow (SciPy's signature; `b` and
    `return_sign` are not supported).

    >>> import tape as tp
    >>> round(float(tp.logsumexp(tp.tensor([1000.0, 1000.0]))), 4)
    1000.6931
    """
    if b is not None or return_sign:
        raise NotImplementedError("logsumexp: the b= and return_sign= arguments are not supported")
    m = max_shift(a, axis=axis)
    out = log(sum(exp(a - m), axis=axis, keepdims=True)) + m
    if not keepdims:
        out = reshape(out, _reduced_shape(_shape(a), axis))
    return out


@exported()
def softmax(x, axis=-1):
    """e**x / sum(e**x) along `axis` (max-shifted for stability)."""
    m = max_shift(x, axis=axis)
    e = exp(x - m)
    return e / sum(e, axis=axis, keepdims=True)


@exported()
def log_softmax(x, axis=-1):
    """x - logsumexp(x) along `axis`, as (x - m) - log(sum(exp(x - m))) with m the max (PyTorch's and
    JAX's form): x - (log(sum) + m) would round log(sum) + m to m's precision, an absolute error of
    half an ulp of m in every result (~3e-5 for float32 logits near 1000), and records one op more.

    >>> import numpy as np, tape as tp
    >>> tp.log_softmax(tp.tensor(np.float32([1000.0, 1000.0]))).numpy()
    array([-0.6931472, -0.6931472], dtype=float32)
    """
    shifted = x - max_shift(x, axis=axis)
    return shifted - log(sum(exp(shifted), axis=axis, keepdims=True))


@exported(method=True)
def norm(x, ord=None, axis=None, keepdims=False):
    """np.linalg.norm: vector norms (any p, inf, -inf, 0) and matrix 1, -1, inf, -inf, 'fro', and
    2, -2, 'nuc' (through the singular values) norms.

    >>> import tape as tp
    >>> tp.norm(tp.tensor([[3.0, 0.0], [0.0, -4.0]]), ord="nuc")
    tensor(7.)
    """
    nd = len(_shape(x))
    if axis is None and ord is not None and nd not in (1, 2):
        raise ValueError(f"norm: improper number of dimensions to norm ({nd}) for ord={ord!r}")
    if axis is None:
        axes = tuple(range(nd))
    else:
        axes = (int(axis),) if np.ndim(axis) == 0 else tuple(int(a) for a in axis)
    if ord is None or (len(axes) == 2 and ord == "fro") or (len(axes) == 1 and ord == 2):
        return norm2(x, axis=None if axis is None else axes, keepdims=keepdims)
    if len(axes) == 1:
        if ord == np.inf:
            return max(abs(x), axis=axes, keepdims=keepdims)
        if ord == -np.inf:
            return -max(-abs(x), axis=axes, keepdims=keepdims)
        if ord == 0:
            return _new_tensor(np.sum(_arr(x) != 0, axis=axes, keepdims=keepdims).astype(_arr(x).dtype))
        if ord == 1:
            return sum(abs(x), axis=axes, keepdims=keepdims)
        return _root(sum(abs(x) ** ord, axis=axes, keepdims=keepdims), ord)  # gradient 0 at 0, as PyTorch
    if len(axes) == 2 and ord in (1, -1, np.inf, -np.inf):
        row, col = (a % nd for a in axes)
        inner_axis, outer_axis = (row, col) if ord in (1, -1) else (col, row)
        sums = sum(abs(x), axis=inner_axis, keepdims=True)
        pick = max(sums, axis=outer_axis, keepdims=True) if ord > 0 else -max(-sums, axis=outer_axis, keepdims=True)
        return pick if keepdims else reshape(pick, _reduced_shape(_shape(x), axes))
    if len(axes) == 2 and (ord == "nuc" or ord in (2, -2)):
        row, col = (a % nd for a in axes)
        s = _svd(transpose(x, [a for a in range(nd) if a not in (row, col)] + [row, col]), compute_uv=False)
        if ord == "nuc":
            out = sum(s, axis=-1)
        else:
            out = max(s, axis=-1) if ord == 2 else -max(-s, axis=-1)
        return reshape(out, np.sum(_probe(_shape(x)), axis=axes, keepdims=keepdims).shape)
    raise ValueError(f"norm: invalid norm order {ord!r} for the axes {axes} of an array of shape {_shape(x)}")


# -- linear algebra ---------------------------------------------------------------------------
@exported(numpy=np.inner)
def inner(a, b):
    """np.inner: sum over the last axes of a and b."""
    if len(_shape(a)) == 0 or len(_shape(b)) == 0:
        return multiply(a, b)
    return tensordot(a, b, axes=((-1,), (-1,)))


@exported(numpy=np.outer)
def outer(a, b):
    """np.outer: a.ravel()[:, None] * b.ravel()[None, :]."""
    return multiply(reshape(a, (-1, 1)), reshape(b, (1, -1)))


@exported(numpy=np.trace, method=True)
def trace(x, offset=0, axis1=0, axis2=1):
    """np.trace: sum of the (offset) diagonal over axis1, axis2."""
    shape = _shape(x)
    nd = len(shape)
    a1, a2 = axis1 % nd, axis2 % nd
    rest = [i for i in range(nd) if i not in (a1, a2)]
    moved = transpose(x, rest + [a1, a2])
    eye = np.eye(shape[a1], shape[a2], k=offset, dtype=_arr(x).dtype)
    return sum(moved * eye, axis=(-2, -1))


# -- shape ----------------------------------------------------------------------------------------
@exported(numpy=np.swapaxes, method=True)
def swapaxes(x, axis1, axis2):
    """Exchange two axes."""
    order = list(range(len(_shape(x))))
    order[axis1], order[axis2] = order[axis2], order[axis1]
    return transpose(x, order)


@exported(numpy=np.moveaxis)
def moveaxis(x, source, destination):
    """Move axes to new positions (np.moveaxis)."""
    nd = len(_shape(x))
    src = [s % nd for s in ((source,) if np.ndim(source) == 0 else source)]
    dst = [d % nd for d in ((destination,) if np.ndim(destination) == 0 else destination)]
    order = [i for i in range(nd) if i not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return transpose(x, order)


@exported(numpy=np.expand_dims)
def expand_dims(x, axis):
    """Insert size-1 axes at `axis`."""
    return reshape(x, np.expand_dims(_probe(_shape(x)), axis).shape)


@exported(numpy=np.squeeze, method=True)
def squeeze(x, axis=None):
    """Remove size-1 axes (all, or those in `axis`)."""
    return reshape(x, np.squeeze(_probe(_shape(x)), axis).shape)


@exported(numpy=np.stack)
def stack(arrays, axis=0):
    """Join tensors along a new axis."""
    arrays = list(arrays)
    if not arrays:
        raise ValueError("stack: need at least one array to stack")
    nd = len(_shape(arrays[0])) + 1
    return concatenate([expand_dims(a, axis % nd) for a in arrays], axis=axis % nd)


@exported(numpy=np.split)
def split(x, indices_or_sections, axis=0):
    """np.split: a list of sub-tensors (views along `axis`)."""
    shape = _shape(x)
    ax = axis % len(shape)
    n = shape[ax]
    if np.ndim(indices_or_sections) == 0:
        k = int(indices_or_sections)
        if n % k:
            raise ValueError(f"split: array split does not result in an equal division ({n} into {k})")
        bounds = list(range(0, n + 1, n // k)) if n else [0] * (k + 1)
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    lead = (slice(None),) * ax
    return [getitem(x, lead + (slice(lo, hi),)) for lo, hi in zip(bounds[:-1], bounds[1:])]


@exported(numpy=np.flip)
def flip(x, axis=None):
    """Reverse the order of elements along `axis` (all axes by default)."""
    nd = len(_shape(x))
    axes = range(nd) if axis is None else [a % nd for a in ((axis,) if np.ndim(axis) == 0 else axis)]
    return getitem(x, tuple(slice(None, None, -1) if i in axes else slice(None) for i in range(nd)))


# -- results without history --------------------------------------------------------------------
#: The functions behind the results without history, by name (a compiled program replays them).
PLAIN: dict = {}


def _plain(fn, name, method=False, dispatch=True, public=True):
    def op(*args, **kw):
        arrays = [_arr(a) for a in args]
        out = _as_array(fn(*arrays, **kw))
        if _tensor._capture is not None:  # a compiled function is being recorded: the value is an entry
            t = _tensor._capture.plain(name, args, arrays, out, kw)
            if t is not None:
                return t
        return _new_tensor(out)

    PLAIN[name] = fn

    op.__name__ = op.__qualname__ = name
    op.__doc__ = f"np.{fn.__name__}; the result is a Tensor without history."
    return export(op, numpy=fn if dispatch else None, method=method) if public else op


def _max_shift(a, axis=None):
    """The max along `axis` (kept), 0 where it is not finite: the stabilising shift of softmax."""
    m = np.max(a, axis=axis, keepdims=True)
    return np.where(np.isfinite(m), m, 0.0)  # all -inf (or inf) slices: shift by 0 instead of nan


max_shift = _plain(_max_shift, "max_shift", public=False)
PLAIN["stop_gradient"] = lambda a: a  # what `detach` records inside a compiled function
equal = _plain(np.equal, "equal")
not_equal = _plain(np.not_equal, "not_equal")
less = _plain(np.less, "less")
less_equal = _plain(np.less_equal, "less_equal")
greater = _plain(np.greater, "greater")
greater_equal = _plain(np.greater_equal, "greater_equal")
argmax = _plain(np.argmax, "argmax", method=True)
argmin = _plain(np.argmin, "argmin", method=True)
isfinite = _plain(np.isfinite, "isfinite")
isnan = _plain(np.isnan, "isnan")
logical_and = _plain(np.logical_and, "logical_and")
logical_or = _plain(np.logical_or, "logical_or")
logical_not = _plain(np.logical_not, "logical_not")
bitwise_and = _plain(np.bitwise_and, "bitwise_and")
bitwise_or = _plain(np.bitwise_or, "bitwise_or")
bitwise_xor = _plain(np.bitwise_xor, "bitwise_xor")
invert = _plain(np.invert, "invert")
all = _plain(np.all, "all", method=True, dispatch=False)  # noqa: A001 (NumPy's name)
any = _plain(np.any, "any", method=True, dispatch=False)  # noqa: A001

export(norm, name="linalg.norm", numpy=np.linalg.norm)
