"""Linear-algebra primitives: matmul, dot, tensordot, einsum, solve, inv, det.

Batch dimensions that matmul broadcast are summed away by the sweep, like any broadcast.
The public functions are generated from the rows; the `_*_args` functions read their arguments.
"""

from __future__ import annotations

import string
from collections import Counter

import numpy as np

from .registry import Op, Sample, defop


def _swap(a):
    return np.swapaxes(a, -1, -2)


def _inverse(order) -> tuple:
    """The permutation that undoes `order`."""
    return tuple(int(i) for i in np.argsort(order))


# -- matmul / dot ---------------------------------------------------------------------------------
def _matmul_da(g, o, a, b):
    if b.ndim == 1:
        return g * b if a.ndim == 1 else g[..., None] * b
    if a.ndim == 1:
        return (g[..., None, :] @ _swap(b))[..., 0, :]
    return g @ _swap(b)


def _matmul_db(g, o, a, b):
    if a.ndim == 1:
        return g * a if b.ndim == 1 else a[:, None] * g[..., None, :]
    if b.ndim == 1:  # a matrix-vector product: a^T g, written g @ a for a plain matrix
        return g @ a if a.ndim == 2 else (_swap(a) @ g[..., None])[..., 0]
    return _swap(a) @ g


def _dot_axes(a, b):
    return ((a.ndim - 1,), (b.ndim - 2,))


def _dot_da(g, o, a, b):
    if a.ndim == 0 or b.ndim == 0:
        return g * b
    if b.ndim <= 2:
        return _matmul_da(g, o, a, b)
    return _tensordot_da(g, o, a, b, _dot_axes(a, b))


def _dot_db(g, o, a, b):
    if a.ndim == 0 or b.ndim == 0:
        return g * a
    if b.ndim <= 2:
        return _matmul_db(g, o, a, b)
    return _tensordot_db(g, o, a, b, _dot_axes(a, b))


# -- tensordot --------------------------------------------------------------------------------
def _free(ndim, axes):
    return [i for i in range(ndim) if i not in axes]


def _tensordot_da(g, o, a, b, axes):
    ax_a, ax_b = axes
    free_a, free_b = _free(a.ndim, ax_a), _free(b.ndim, ax_b)
    ga = np.tensordot(g, b, axes=(list(range(len(free_a), g.ndim)), free_b))
    # ga's axes: a's free axes, then b's contracted axes in b's order, each standing for its a-axis
    return np.transpose(ga, _inverse(free_a + [ax_a[ax_b.index(j)] for j in sorted(ax_b)]))


def _tensordot_db(g, o, a, b, axes):
    ax_a, ax_b = axes
    free_a, free_b = _free(a.ndim, ax_a), _free(b.ndim, ax_b)
    gb = np.tensordot(a, g, axes=(free_a, list(range(len(free_a)))))
    return np.transpose(gb, _inverse([ax_b[ax_a.index(i)] for i in sorted(ax_a)] + free_b))


# -- einsum -------------------------------------------------------------------------------------
def _einsum_forward(*operands, ins, result):
    return np.einsum(",".join(ins) + "->" + result, *operands)


def _einsum_vjp(g, o, *operands, ins, result):
    cts = []
    for k, sub in enumerate(ins):
        others = [x for j, x in enumerate(operands) if j != k]
        other_subs = [s for j, s in enumerate(ins) if j != k]
        avail = set(result).union(*other_subs)
        uniq = "".join(dict.fromkeys(sub))
        target = "".join(c for c in uniq if c in avail)
        ct = np.einsum(",".join([result, *other_subs]) + "->" + target, g, *others)
        size = dict(zip(sub, operands[k].shape))
        if len(target) < len(uniq):  # letters summed within this operand alone: broadcast back
            lone = "".join(c for c in uniq if c not in avail)
            ones = np.ones_like(g, shape=tuple(size[c] for c in lone))
            ct = np.einsum(f"{target},{lone}->{uniq}", ct, ones)
        if len(uniq) < len(sub):  # a repeated letter (a diagonal): put the cotangent back on it
            fresh = iter(c for c in string.ascii_letters if c not in sub + result + "".join(other_subs))
            expanded, deltas, seen = "", [], set()
            for c in sub:
                if c in seen:
                    f = next(fresh)
                    expanded += f
                    deltas.append(c + f)
                else:
                    seen.add(c)
                    expanded += c
            eyes = [np.eye(size[d[0]], dtype=g.dtype) for d in deltas]
            ct = np.einsum(",".join([uniq, *deltas]) + "->" + expanded, ct, *eyes)
        cts.append(ct)
    return tuple(cts)


def parse_einsum(subscripts: str, shapes) -> tuple[tuple, str]:
    """Explicit per-operand subscripts and output, with '...' spelled out as letters."""
    subs = subscripts.replace(" ", "")
    lhs, arrow, rhs = subs.partition("->")
    ins = lhs.split(",")
    if len(ins) != len(shapes):
        raise ValueError(f"einsum: {len(ins)} operand subscripts for {len(shapes)} operands")
    unused = [c for c in string.ascii_letters if c not in subs]
    spans = [len(shape) - (len(s) - 3) for s, shape in zip(ins, shapes) if "..." in s]
    width = max(spans, default=0)
    ell = "".join(unused[:width])
    explicit = [
        s.replace("...", ell[width - (len(shape) - (len(s) - 3)) :]) if "..." in s else s
        for s, shape in zip(ins, shapes)
    ]
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = Counter("".join(ins).replace("...", ""))
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1))
    return tuple(explicit), out


def _solve_db(g, o, a, b, vec):
    return np.linalg.solve(_swap(a), g[..., None])[..., 0] if vec else np.linalg.solve(_swap(a), g)


def _solve_da(g, o, a, b, vec):
    gb = _solve_db(g, o, a, b, vec)
    return -gb[..., :, None] * o[..., None, :] if vec else -(gb @ _swap(o))


def _solve_jvp(ts, o, a, b, vec):
    # d(a x = b): a dx = db - da x
    ta, tb = ts
    x = o[..., None] if vec else o
    rhs = None if tb is None else (tb[..., None] if vec else tb)
    if ta is not None:
        rhs = -(ta @ x) if rhs is None else rhs - ta @ x
    dx = np.linalg.solve(a, rhs)
    return dx[..., 0] if vec else dx


def _solve_forward(a, b, vec):
    return np.linalg.solve(a, b)


def _tensordot_forward(a, b, axes):
    return np.tensordot(a, b, axes=axes)


def _inv_vjp(g, o, a):
    return -(_swap(o) @ g @ _swap(o))


def _inv_jvp(ts, o, a):
    return -(o @ ts[0] @ o)


def _det_vjp(g, o, a):
    return (g * o)[..., None, None] * _swap(np.linalg.inv(a))


def _det_jvp(ts, o, a):
    return o * np.sum(_swap(np.linalg.inv(a)) * ts[0], axis=(-2, -1))


def _tensordot_args(a, b, axes=2):
    """np.tensordot: contract `axes` of a with `axes` of b."""
    nd_a, nd_b = np.ndim(getattr(a, "array", a)), np.ndim(getattr(b, "array", b))
    if np.ndim(axes) == 0:
        n = int(axes)
        ax_a, ax_b = tuple(range(nd_a - n, nd_a)), tuple(range(n))
    else:
        ax_a, ax_b = axes
        ax_a = (ax_a,) if np.ndim(ax_a) == 0 else tuple(ax_a)
        ax_b = (ax_b,) if np.ndim(ax_b) == 0 else tuple(ax_b)
        if len(ax_a) != len(ax_b):
            raise ValueError(f"tensordot: axes {ax_a} and {ax_b} have different lengths")
        ax_a = tuple(int(i) % max(nd_a, 1) for i in ax_a)
        ax_b = tuple(int(i) % max(nd_b, 1) for i in ax_b)
    return (a, b), {"axes": (ax_a, ax_b)}


def _einsum_args(subscripts, *operands):
    """np.einsum with explicit or implicit output and '...'; differentiable in every operand.

    >>> import tape as tp
    >>> tp.einsum("ii", tp.eye(3))
    tensor(3.)
    """
    if not isinstance(subscripts, str):
        raise TypeError("einsum: only the subscripts-string form is supported, e.g. einsum('ij,jk->ik', a, b)")
    ins, out = parse_einsum(subscripts, [np.shape(getattr(x, "array", x)) for x in operands])
    return operands, {"ins": ins, "result": out}


def _solve_args(a, b):
    """The x with a @ x = b (np.linalg.solve; b is a vector only when it is 1-D)."""
    return (a, b), {"vec": np.ndim(getattr(b, "array", b)) == 1}


def _u(rng, *shape):
    return rng.uniform(-1, 1, size=shape)


def _square(rng, *shape):
    """A well-conditioned square matrix (or a batch of them): the domain of solve, inv and det."""
    return rng.uniform(-0.5, 0.5, size=shape) + 3 * np.eye(shape[-1])


def _pairs(*shape_pairs, call=None):
    return lambda rng: [Sample((_u(rng, *sa), _u(rng, *sb)), call, f"{sa}-{sb}") for sa, sb in shape_pairs]


_MATMUL_SHAPES = [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
                  ((5, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (4, 3, 2)), ((3,), (5, 3, 2))]  # fmt: skip
_DOT_SHAPES = [((), (3,)), ((3,), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((2, 3, 4), (5, 4, 2))]
_EINSUMS = [("ij,jk->ik", [(2, 3), (3, 4)]), ("ii", [(3, 3)]), ("ii->i", [(3, 3)]), ("i,i", [(3,), (3,)]),
            ("...ij,...jk->...ik", [(2, 2, 3), (2, 3, 4)]), ("ij->", [(2, 3)]), ("ijk->kj", [(2, 3, 4)]),
            ("i,j->ij", [(2,), (3,)]), ("bij,bjk", [(2, 2, 3), (2, 3, 2)])]  # fmt: skip


def _tensordot_samples(rng):
    for sa, sb, axes in [((2, 3, 4), (3, 4, 5), 2), ((3, 2, 4), (2, 3, 5), ([1, 0], [0, 1])), ((2, 3), (4,), 0)]:
        yield Sample((_u(rng, *sa), _u(rng, *sb)), lambda f, a, b, ax=axes: f(a, b, axes=ax), f"{sa}-{sb}-{axes}")


def _einsum_samples(rng):
    for spec, shapes in _EINSUMS:
        yield Sample(tuple(_u(rng, *s) for s in shapes), lambda f, *xs, s=spec: f(s, *xs), spec)


def _solve_samples(rng):
    for sa, sb in [((3, 3), (3,)), ((3, 3), (3, 2)), ((2, 3, 3), (2, 3, 1))]:
        yield Sample((_square(rng, *sa), _u(rng, *sb)), None, f"{sa}-{sb}")


def _square_samples(rng):
    for s in [(3, 3), (2, 3, 3)]:
        yield Sample((_square(rng, *s),), None, str(s))


# fmt: off
#        opcode        name         forward             vjp rules                         save          NumPy's function, how the public function reads its arguments, forward mode
MATMUL    = defop(Op.MATMUL,    "matmul",    np.matmul,          (_matmul_da, _matmul_db),       "xy",       numpy=np.matmul, linearity="multilinear", samples=_pairs(*_MATMUL_SHAPES),
                  doc="a @ b with NumPy's rules (1-D promotion, broadcast batch dimensions).\n\n>>> import tape as tp\n>>> tp.matmul(tp.eye(2), tp.tensor([1.0, 2.0]))\ntensor([1., 2.])")
DOT       = defop(Op.DOT,       "dot",       np.dot,             (_dot_da, _dot_db),             "xy",       numpy=np.dot, method=True, linearity="multilinear", samples=_pairs(*_DOT_SHAPES),
                  doc="np.dot: inner product of vectors, matrix product, sum over last/second-to-last axes.")
TENSORDOT = defop(Op.TENSORDOT, "tensordot", _tensordot_forward, (_tensordot_da, _tensordot_db), "xy",       numpy=np.tensordot, args=_tensordot_args, linearity="multilinear", samples=_tensordot_samples)
EINSUM    = defop(Op.EINSUM,    "einsum",    _einsum_forward,    None,                           "*",        numpy=np.einsum, args=_einsum_args, linearity="multilinear", vjp_all=_einsum_vjp, samples=_einsum_samples)
SOLVE     = defop(Op.SOLVE,     "solve",     _solve_forward,     (_solve_da, _solve_db),         "xo",       numpy=np.linalg.solve, public="linalg.solve", args=_solve_args, jvp=_solve_jvp, samples=_solve_samples)
INV       = defop(Op.INV,       "inv",       np.linalg.inv,      (_inv_vjp,),                    "o",        numpy=np.linalg.inv, public="linalg.inv", jvp=_inv_jvp, samples=_square_samples, doc="Matrix inverse (batched).")
DET       = defop(Op.DET,       "det",       np.linalg.det,      (_det_vjp,),                    "xo",       numpy=np.linalg.det, public="linalg.det", jvp=_det_jvp, samples=_square_samples, doc="Determinant (batched).")
# fmt: on
