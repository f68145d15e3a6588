"""More of NumPy as composites (issue 12): functions that NumPy itself defines by composition.

`hstack` is `concatenate` of `atleast_1d`, `degrees` is a product, `sort` is `take_along_axis` with
the permutation `argsort` finds, `repeat`/`take`/`diagonal` are indexing with integer arrays, and so
on: each is built from the primitives, so its reverse and forward rules (and their derivatives)
come from theirs. Index arrays (argsort, argpartition, the positions of a diagonal) are computed
on the raw values: they carry no gradient, only the values they pick do.
"""

from __future__ import annotations

import builtins

import numpy as np

from .composite import _arr, _shape, flip, getitem, mean, moveaxis, split
from .ops import (
    abs,
    broadcast_to,
    concatenate,
    maximum,
    minimum,
    multiply,
    reshape,
    sin,
    subtract,
    sum,
    transpose,
    where,
)
from .ops.elementwise import REMAINDER, ROUND
from .ops.reduce import normalize_axis
from .ops.registry import export, exported
from .ops.shape import INDEX_ADD
from .tensor import Tensor, _new_tensor


def _tensor(x):
    """A Tensor as it is; anything else as a constant Tensor (what NumPy's asanyarray does)."""
    return x if isinstance(x, Tensor) else _new_tensor(np.asarray(x))


def _axis(axis, nd: int, what: str) -> int:
    return normalize_axis(axis, nd, what)[0]


def _along(axis: int, index) -> tuple:
    """An index that applies `index` along `axis` and takes everything else."""
    return (slice(None),) * axis + (index,)


def _one_or_list(results):
    return results[0] if len(results) == 1 else list(results)


# -- elementwise ----------------------------------------------------------------------------------
@exported(numpy=np.fabs)
def fabs(x):
    """|x| for real x (np.fabs)."""
    return abs(x)


@exported(numpy=(np.degrees, np.rad2deg))
def degrees(x):
    """Radians to degrees: x * 180 / pi."""
    return multiply(x, 180.0 / np.pi)


@exported(numpy=(np.radians, np.deg2rad))
def radians(x):
    """Degrees to radians: x * pi / 180."""
    return multiply(x, np.pi / 180.0)


export(REMAINDER.function, name="mod")  # np.mod is np.remainder
export(ROUND.function, name="around")
export(degrees, name="rad2deg")
export(radians, name="deg2rad")


@exported(numpy=np.sinc)
def sinc(x):
    """sin(pi x) / (pi x), 1 at 0 (np.sinc).

    Near 0 (|x| < 1e-3) it is its Taylor polynomial 1 - (pi x)^2/6 + (pi x)^4/120, equal to it in
    float64 there, so that every derivative at 0 is right too, not 0/0.

    >>> import tape as tp
    >>> tp.sinc(tp.tensor([0.0, 0.5]))
    tensor([1.        , 0.63661977])
    """
    small = np.abs(_arr(x)) < 1e-3
    y = multiply(where(small, 1.0, x), np.pi)  # the other branch away from 0 (no 0/0 in its gradient)
    y2 = multiply(where(small, x, 0.0), np.pi) ** 2
    return where(small, 1.0 - y2 / 6.0 + y2 * y2 / 120.0, sin(y) / y)


@exported(numpy=np.fmax)
def fmax(x1, x2):
    """Elementwise maximum that ignores NaNs (np.fmax); ties share the gradient, as in `maximum`."""
    return where(np.isnan(_arr(x2)), x1, where(np.isnan(_arr(x1)), x2, maximum(x1, x2)))


@exported(numpy=np.fmin)
def fmin(x1, x2):
    """Elementwise minimum that ignores NaNs (np.fmin)."""
    return where(np.isnan(_arr(x2)), x1, where(np.isnan(_arr(x1)), x2, minimum(x1, x2)))


@exported(numpy=np.nan_to_num)
def nan_to_num(x, copy=True, nan=0.0, posinf=None, neginf=None):
    """NaN and infinities replaced by finite numbers (np.nan_to_num); gradient 0 where replaced."""
    raw = _arr(x)
    return where(np.isfinite(raw), x, np.nan_to_num(raw, nan=nan, posinf=posinf, neginf=neginf))


# The complex family on real tensors (tape differentiates real floats only): real and conj are the
# identity, imag is 0 and angle is 0 or pi, constants. A complex value with history is refused.
def _complex_part(name, fn, real_case):
    def part(x, *args):
        raw = _arr(x)
        if np.iscomplexobj(raw):
            if isinstance(x, Tensor) and x.requires_grad:
                raise TypeError(
                    f"{name}: complex tensors are not differentiable in tape (shape {x.shape}, {raw.dtype})"
                )
            return _new_tensor(fn(raw, *args))
        return real_case(x, raw, *args)

    part.__name__ = part.__qualname__ = name
    part.__doc__ = f"np.{fn.__name__} (real tensors are differentiable; complex ones only as constants)."
    return part


real = export(_complex_part("real", np.real, lambda x, raw: x), numpy=np.real)
imag = export(_complex_part("imag", np.imag, lambda x, raw: _new_tensor(np.zeros_like(raw))), numpy=np.imag)
conj = export(_complex_part("conj", np.conj, lambda x, raw: x), numpy=np.conjugate)
export(conj, name="conjugate")
real_if_close = export(
    _complex_part("real_if_close", np.real_if_close, lambda x, raw, tol=100: x), numpy=np.real_if_close
)
_angle = _complex_part("angle", np.angle, lambda x, raw, deg: _new_tensor(np.angle(raw, deg)))


@exported(numpy=np.angle)
def angle(z, deg=False):
    """np.angle: 0 or pi (180 with deg=True) for real tensors, a constant; complex ones as constants."""
    return _angle(z, bool(deg))


# -- shape and assembly -----------------------------------------------------------------------------
@exported(numpy=np.atleast_1d)
def atleast_1d(*arys):
    """Each input with at least one axis (a list when there are several)."""
    return _one_or_list([reshape(a, (1,)) if len(_shape(a)) == 0 else _tensor(a) for a in arys])


def _at2(a):
    nd = len(_shape(a))
    return reshape(a, (1,) * (2 - nd) + _shape(a)) if nd < 2 else _tensor(a)


def _at3(a):
    s = _shape(a)
    new = {0: (1, 1, 1), 1: (1, *s, 1), 2: (*s, 1)}.get(len(s))
    return reshape(a, new) if new else _tensor(a)


@exported(numpy=np.atleast_2d)
def atleast_2d(*arys):
    """Each input with at least two axes: (n,) becomes (1, n)."""
    return _one_or_list([_at2(a) for a in arys])


@exported(numpy=np.atleast_3d)
def atleast_3d(*arys):
    """Each input with at least three axes: (n,) becomes (1, n, 1), (m, n) becomes (m, n, 1)."""
    return _one_or_list([_at3(a) for a in arys])


def _sequence(tup, what):
    arrays = list(tup)
    if not arrays:
        raise ValueError(f"{what}: need at least one array to concatenate")
    return arrays


@exported(numpy=np.vstack)
def vstack(tup):
    """Stack along the first axis, 1-D inputs as rows.

    >>> import tape as tp
    >>> tp.vstack([tp.tensor([1.0, 2.0]), tp.tensor([3.0, 4.0])]).shape
    (2, 2)
    """
    return concatenate([_at2(a) for a in _sequence(tup, "vstack")], axis=0)


@exported(numpy=np.hstack)
def hstack(tup):
    """Stack along the second axis (the first for 1-D inputs)."""
    arrays = [atleast_1d(a) for a in _sequence(tup, "hstack")]
    return concatenate(arrays, axis=0 if len(_shape(arrays[0])) == 1 else 1)


@exported(numpy=np.dstack)
def dstack(tup):
    """Stack along the third axis."""
    return concatenate([_at3(a) for a in _sequence(tup, "dstack")], axis=2)


@exported(numpy=np.column_stack)
def column_stack(tup):
    """1-D inputs as columns of a 2-D result, 2-D inputs as they are, joined along axis 1."""
    cols = [reshape(a, (-1, 1)) if len(_shape(a)) < 2 else a for a in _sequence(tup, "column_stack")]
    return concatenate(cols, axis=1)


@exported(numpy=np.repeat, method=True)
def repeat(a, repeats, axis=None):
    """Each element repeated `repeats` times (an int, or one count per element) along `axis`.

    >>> import tape as tp
    >>> tp.repeat(tp.tensor([[1.0, 2.0]]), [2, 1], axis=1)
    tensor([[1., 1., 2.]])
    """
    if axis is None:
        a, axis = reshape(a, -1), 0
    shape = _shape(a)
    ax = _axis(axis, len(shape), "repeat")
    counts = np.asarray(_arr(repeats))
    if counts.ndim == 0:  # a broadcast along a new axis (its gradient is a sum), then merged
        r = int(counts)
        wide = broadcast_to(
            reshape(a, shape[: ax + 1] + (1,) + shape[ax + 1 :]), shape[: ax + 1] + (r,) + shape[ax + 1 :]
        )
        return reshape(wide, shape[:ax] + (shape[ax] * r,) + shape[ax + 1 :])
    return getitem(a, _along(ax, np.repeat(np.arange(shape[ax]), counts)))


@exported(numpy=np.tile)
def tile(A, reps):
    """A repeated `reps` times along each axis, as a broadcast (whose gradient is a sum)."""
    reps = (int(reps),) if np.ndim(reps) == 0 else tuple(int(r) for r in reps)
    shape = _shape(A)
    d = max(len(reps), len(shape))
    shape, reps = (1,) * (d - len(shape)) + shape, (1,) * (d - len(reps)) + reps
    spread = reshape(A, tuple(v for n in shape for v in (1, n)))
    tiled = broadcast_to(spread, tuple(v for r, n in zip(reps, shape) for v in (r, n)))
    return reshape(tiled, tuple(r * n for r, n in zip(reps, shape)))


@exported(numpy=np.roll)
def roll(a, shift, axis=None):
    """Elements shifted by `shift` along `axis` (of the flattened array by default), wrapping round.

    >>> import numpy as np, tape as tp
    >>> np.roll(tp.tensor([1.0, 2.0, 3.0]), 1)
    tensor([3., 1., 2.])
    """
    if axis is None:
        return reshape(roll(reshape(a, -1), shift, 0), _shape(a))
    nd = len(_shape(a))
    out = a
    for s, ax in np.broadcast(np.asarray(shift), np.asarray(axis)):
        ax = _axis(int(ax), nd, "roll")
        n = _shape(a)[ax]
        k = int(s) % n if n else 0
        if k:
            out = concatenate(
                [getitem(out, _along(ax, slice(n - k, None))), getitem(out, _along(ax, slice(0, n - k)))], axis=ax
            )
    return out


@exported(numpy=np.rot90)
def rot90(m, k=1, axes=(0, 1)):
    """Rotation by 90 degrees `k` times in the plane of `axes` (NumPy's definition: flips and a transpose)."""
    nd = len(_shape(m))
    axes = tuple(axes)
    if len(axes) != 2 or nd < 2:
        raise ValueError(
            f"rot90: axes must be two axes of an array of at least 2 dimensions (got {axes}, shape {_shape(m)})"
        )
    a0, a1 = _axis(axes[0], nd, "rot90"), _axis(axes[1], nd, "rot90")
    if a0 == a1:
        raise ValueError(f"rot90: axes must be different (got {axes})")
    k %= 4
    if k == 0:
        return _tensor(m)
    if k == 2:
        return flip(flip(m, a0), a1)
    order = list(range(nd))
    order[a0], order[a1] = order[a1], order[a0]
    return transpose(flip(m, a1), order) if k == 1 else flip(transpose(m, order), a1)


@exported(numpy=np.rollaxis)
def rollaxis(a, axis, start=0):
    """Axis `axis` moved to position `start` (np.rollaxis; prefer moveaxis)."""
    nd = len(_shape(a))
    axis = _axis(axis, nd, "rollaxis")
    if not -nd <= start <= nd:
        raise np.exceptions.AxisError(f"rollaxis: start {start} is out of bounds for an array of dimension {nd}")
    start = start % nd if start < 0 else start
    if axis < start:
        start -= 1
    if axis == start:
        return _tensor(a)
    order = [i for i in range(nd) if i != axis]
    order.insert(start, axis)
    return transpose(a, order)


@exported(numpy=np.fliplr)
def fliplr(m):
    """Columns in reverse order (axis 1)."""
    if len(_shape(m)) < 2:
        raise ValueError(f"fliplr: the input must have at least 2 dimensions (shape {_shape(m)})")
    return flip(m, 1)


@exported(numpy=np.flipud)
def flipud(m):
    """Rows in reverse order (axis 0)."""
    if len(_shape(m)) < 1:
        raise ValueError("flipud: the input must have at least 1 dimension (got a 0-d array)")
    return flip(m, 0)


@exported(numpy=np.array_split)
def array_split(ary, indices_or_sections, axis=0):
    """np.array_split: like split, but the sections need not be equal (the first ones are longer)."""
    shape = _shape(ary)
    ax = _axis(axis, len(shape), "array_split")
    n = shape[ax]
    if np.ndim(indices_or_sections) == 0:
        k = int(indices_or_sections)
        if k <= 0:
            raise ValueError(f"array_split: number of sections must be larger than 0 (got {k})")
        each, extra = divmod(n, k)
        bounds = np.cumsum([0] + extra * [each + 1] + (k - extra) * [each]).tolist()
    else:
        bounds = [0, *[int(i) for i in indices_or_sections], n]
    return [getitem(ary, _along(ax, slice(lo, hi))) for lo, hi in zip(bounds[:-1], bounds[1:])]


def _split_at(what, axis_of, min_nd):
    def fn(ary, indices_or_sections):
        nd = len(_shape(ary))
        if nd < min_nd:
            raise ValueError(f"{what} only works on arrays of {min_nd} or more dimensions (shape {_shape(ary)})")
        return split(ary, indices_or_sections, axis=axis_of(nd))

    fn.__name__ = fn.__qualname__ = what
    fn.__doc__ = f"np.{what}: split along axis {axis_of(3)} (see `split`)."
    return fn


hsplit = export(_split_at("hsplit", lambda nd: 1 if nd > 1 else 0, 1), numpy=np.hsplit)
vsplit = export(_split_at("vsplit", lambda nd: 0, 2), numpy=np.vsplit)
dsplit = export(_split_at("dsplit", lambda nd: 2, 3), numpy=np.dsplit)


def _diagonal_index(n1, n2, offset):
    """Row and column indices of the `offset` diagonal of an n1 x n2 matrix."""
    length = max(0, min(n1, n2 - offset) if offset >= 0 else min(n1 + offset, n2))
    i = np.arange(length)
    return (i, i + offset) if offset >= 0 else (i - offset, i)


@exported(numpy=np.diagonal, method=True)
def diagonal(a, offset=0, axis1=0, axis2=1):
    """The `offset` diagonal over axis1 and axis2, as the last axis (np.diagonal)."""
    nd = len(_shape(a))
    if nd < 2:
        raise ValueError(f"diagonal: the input must have at least 2 dimensions (shape {_shape(a)})")
    a1, a2 = _axis(axis1, nd, "diagonal"), _axis(axis2, nd, "diagonal")
    if a1 == a2:
        raise ValueError(f"diagonal: axis1 and axis2 cannot be the same (got {axis1}, {axis2})")
    moved = moveaxis(a, (a1, a2), (-2, -1))
    rows, cols = _diagonal_index(*_shape(moved)[-2:], int(offset))
    return getitem(moved, (Ellipsis, rows, cols))


@exported(numpy=np.diag)
def diag(v, k=0):
    """The k-th diagonal of a 2-D input, or a square matrix with a 1-D input on its k-th diagonal."""
    shape = _shape(v)
    if len(shape) == 2:
        return diagonal(v, k)
    if len(shape) != 1:
        raise ValueError(f"diag: the input must be 1-D or 2-D (shape {shape})")
    n = shape[0] + builtins.abs(int(k))
    return INDEX_ADD.function(v, _diagonal_index(n, n, int(k)), (n, n))


def _triangle(m, keep, what):
    shape = _shape(m)
    if len(shape) == 0:
        raise ValueError(f"{what}: the input must have at least 1 dimension (got a 0-d array)")
    raw = _arr(m)
    return where(keep(*shape[-2:] if len(shape) > 1 else (shape[0], shape[0])), m, np.zeros((), raw.dtype))


@exported(numpy=np.tril)
def tril(m, k=0):
    """m with the elements above the k-th diagonal zeroed (over the last two axes)."""
    return _triangle(m, lambda r, c: np.tri(r, c, k, dtype=bool), "tril")


@exported(numpy=np.triu)
def triu(m, k=0):
    """m with the elements below the k-th diagonal zeroed (over the last two axes)."""
    return _triangle(m, lambda r, c: ~np.tri(r, c, k - 1, dtype=bool), "triu")


@exported(numpy=np.take, method=True)
def take(a, indices, axis=None, mode="raise"):
    """Elements at `indices` along `axis` (of the flattened array by default); repeats add up in the gradient.

    >>> import tape as tp
    >>> tp.grad(lambda x: tp.sum(tp.take(x, [0, 2, 2])))(tp.tensor([1.0, 2.0, 3.0]))
    tensor([1., 0., 2.])
    """
    if axis is None:
        a, axis = reshape(a, -1), 0
    ax = _axis(axis, len(_shape(a)), "take")
    n = _shape(a)[ax]
    index = np.asarray(_arr(indices))
    if index.dtype.kind not in "iu":
        raise TypeError(f"take: indices must be integers (got {index.dtype})")
    if mode == "wrap":
        index = index % n
    elif mode == "clip":
        index = np.clip(index, 0, n - 1)
    elif mode != "raise":
        raise ValueError(f"take: mode must be 'raise', 'wrap' or 'clip' (got {mode!r})")
    return getitem(a, _along(ax, int(index) if index.ndim == 0 else index))


@exported(numpy=np.take_along_axis)
def take_along_axis(arr, indices, axis=-1):
    """arr's elements at `indices` along `axis`, the indices broadcast against the other axes."""
    index = np.asarray(_arr(indices))
    if axis is None:
        arr, axis = reshape(arr, -1), 0
    shape = _shape(arr)
    nd = len(shape)
    if index.ndim != nd:
        raise ValueError(
            f"take_along_axis: indices (shape {index.shape}) and arr (shape {shape}) need the same number of dimensions"
        )
    ax = _axis(axis, nd, "take_along_axis")
    grid = [np.arange(n).reshape((1,) * i + (n,) + (1,) * (nd - i - 1)) for i, n in enumerate(shape)]
    grid[ax] = index
    return getitem(arr, tuple(grid))


@exported(numpy=np.kron)
def kron(a, b):
    """Kronecker product: every element of a times the whole of b (np.kron)."""
    sa, sb = _shape(a), _shape(b)
    d = max(len(sa), len(sb))
    sa, sb = (1,) * (d - len(sa)) + sa, (1,) * (d - len(sb)) + sb
    wide = multiply(reshape(a, tuple(v for n in sa for v in (n, 1))), reshape(b, tuple(v for n in sb for v in (1, n))))
    return reshape(wide, tuple(m * n for m, n in zip(sa, sb)))


@exported(numpy=np.cross)
def cross(a, b, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross product of 3-vectors along the given axes (a 2-vector counts as z = 0; two 2-vectors give
    the z component alone, as NumPy does)."""
    if axis is not None:
        axisa = axisb = axisc = axis
    a = moveaxis(a, axisa, -1)
    b = moveaxis(b, axisb, -1)
    na, nb = _shape(a)[-1], _shape(b)[-1]
    if na not in (2, 3) or nb not in (2, 3):
        raise ValueError(
            f"cross: incompatible dimensions for cross product (dimension must be 2 or 3; got {na} and {nb})"
        )
    a0, a1, b0, b1 = (
        getitem(a, (Ellipsis, 0)),
        getitem(a, (Ellipsis, 1)),
        getitem(b, (Ellipsis, 0)),
        getitem(b, (Ellipsis, 1)),
    )
    z = subtract(a0 * b1, a1 * b0)
    if na == 2 and nb == 2:
        return z
    if na == 3 and nb == 3:
        a2, b2 = getitem(a, (Ellipsis, 2)), getitem(b, (Ellipsis, 2))
        x, y = a1 * b2 - a2 * b1, a2 * b0 - a0 * b2
    elif na == 3:  # b's z is 0
        a2 = getitem(a, (Ellipsis, 2))
        x, y = -(a2 * b1), a2 * b0
    else:  # a's z is 0
        b2 = getitem(b, (Ellipsis, 2))
        x, y = a1 * b2, -(a0 * b2)
    from_last = concatenate([reshape(c, _shape(c) + (1,)) for c in (x, y, z)], axis=-1)
    return moveaxis(from_last, -1, axisc)


# -- reductions and scans ---------------------------------------------------------------------------
@exported(numpy=np.diff)
def diff(a, n=1, axis=-1, prepend=np._NoValue, append=np._NoValue):
    """n-th differences along `axis` (np.diff), with optional values prepended/appended first."""
    nd = len(_shape(a))
    if nd == 0:
        raise ValueError("diff requires input that is at least one dimensional")
    ax = _axis(axis, nd, "diff")
    parts = []
    for extra in (prepend, a, append):
        if extra is np._NoValue:
            continue
        if extra is not a and len(_shape(extra)) == 0:
            shape = list(_shape(a))
            shape[ax] = 1
            extra = broadcast_to(extra, tuple(shape))
        parts.append(extra)
    out = concatenate(parts, axis=ax) if len(parts) > 1 else a
    for _ in range(int(n)):
        out = subtract(getitem(out, _along(ax, slice(1, None))), getitem(out, _along(ax, slice(None, -1))))
    return out


@exported(numpy=np.average)
def average(a, axis=None, weights=None, returned=False, *, keepdims=False):
    """Weighted mean over `axis` (np.average), differentiable in `a` and in `weights`."""
    if weights is None:
        avg = mean(a, axis=axis, keepdims=keepdims)
        count = np.prod([_shape(a)[i] for i in normalize_axis(axis, len(_shape(a)), "average")])
        scale = _new_tensor(np.full(_shape(avg), count, dtype=_arr(avg).dtype))
    else:
        sa, sw = _shape(a), _shape(weights)
        if sa != sw:
            if axis is None:
                raise TypeError(f"average: axis must be given when the shapes of a {sa} and weights {sw} differ")
            if len(sw) != 1:
                raise TypeError(f"average: 1-D weights expected when the shapes differ (a {sa}, weights {sw})")
            ax = _axis(axis, len(sa), "average")
            if sw[0] != sa[ax]:
                raise ValueError(
                    f"average: the length of weights ({sw[0]}) differs from that of a along axis {ax} ({sa[ax]})"
                )
            weights = reshape(weights, tuple(sw[0] if i == ax else 1 for i in range(len(sa))))
        scale = sum(broadcast_to(weights, sa) if _shape(weights) != sa else weights, axis=axis, keepdims=keepdims)
        avg = sum(multiply(a, weights), axis=axis, keepdims=keepdims) / scale
    if returned:
        if _shape(scale) != _shape(avg):
            scale = broadcast_to(scale, _shape(avg))
        return avg, scale
    return avg


@exported(numpy=np.nansum)
def nansum(a, axis=None, keepdims=False):
    """Sum over `axis` with NaNs counted as zero (their gradient is 0)."""
    return sum(where(np.isnan(_arr(a)), 0.0, a), axis=axis, keepdims=keepdims)


@exported(numpy=np.sort)
def sort(a, axis=-1, kind=None, order=None, *, stable=None):
    """A sorted copy along `axis` (of the flattened array for axis=None): the input taken in argsort's
    order, so each element's gradient goes back to where it came from.

    >>> import tape as tp
    >>> x = tp.tensor([3.0, 1.0, 2.0])
    >>> tp.grad(lambda x: tp.sort(x)[0])(x)  # the smallest element is x[1]
    tensor([0., 1., 0.])
    """
    kind = "stable" if stable else kind
    if order is not None:
        raise TypeError("sort: order= (structured arrays) is not supported on tape Tensors")
    if axis is None:
        a, axis = reshape(a, -1), 0
    return take_along_axis(a, np.argsort(_arr(a), axis=axis, kind=kind), axis)


@exported(numpy=np.partition)
def partition(a, kth, axis=-1, kind="introselect", order=None):
    """A partitioned copy (np.partition): the input taken in argpartition's order."""
    if order is not None:
        raise TypeError("partition: order= (structured arrays) is not supported on tape Tensors")
    if axis is None:
        a, axis = reshape(a, -1), 0
    return take_along_axis(a, np.argpartition(_arr(a), kth, axis=axis, kind=kind), axis)
