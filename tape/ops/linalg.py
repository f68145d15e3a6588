"""Linear-algebra primitives: matmul, dot, tensordot, einsum, solve, inv, det, and the decompositions
cholesky, eigh, eig, svd, qr, slogdet, with pinv (rows whose results are packed: see below).

Batch dimensions that matmul broadcast are summed away by the sweep, like any broadcast.
The public functions are generated from the rows; the `_*_args` functions read their arguments.
"""

from __future__ import annotations

import string
from collections import Counter, namedtuple

import numpy as np

from ..tensor import _new_tensor
from .registry import FUNCTIONS, Op, Sample, defop, export


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


# -- decompositions (cholesky, eigh, eig, svd, qr, slogdet) and pinv ------------------------------
# A row has one output array, so a decomposition's row returns its results packed along the last
# axis (each ravelled over its own trailing dimensions, batch dimensions kept), and its public
# function unpacks them by recorded slicing, as tape/checkpointing/segment.py's Layout does. One
# factorisation serves every result; a result the caller ignores gets a zero cotangent, which the
# rules below are written to tolerate (1/(w_j - w_i) is taken as 0 where eigenvalues or singular
# values coincide, as for a function of the eigenvalues alone: HIPS autograd skips that term then).
# The rules are NumPy calls only, so they run on Tensors too (create_graph, forward over reverse).


def _pack(parts, batch):
    return np.concatenate([np.reshape(p, tuple(batch) + (-1,)) for p in parts], axis=-1)


def _unpack(packed, shapes):
    batch, out, at = tuple(packed.shape[:-1]), [], 0
    for s in shapes:
        n = int(np.prod(s, dtype=int))
        out.append(np.reshape(packed[..., at : at + n], batch + tuple(s)))
        at += n
    return out


def _raw(x):
    return getattr(x, "array", x)


def _diag_of(x):
    return np.einsum("...ii->...i", x)


def _eye(n, like):
    """An identity of `like`'s dtype and array library (NumPy or CuPy: NEP 35's like=)."""
    return np.eye(n, dtype=like.dtype, like=_raw(like))


def _tri(n, like, k=0):
    return np.tri(n, k=k, dtype=like.dtype, like=_raw(like))


def _safe_recip(d):
    """1/d, and 0 where d == 0 (degenerate spectra; also the diagonal of w_j - w_i)."""
    nonzero = _raw(d) != 0
    return np.where(nonzero, 1.0 / np.where(nonzero, d, 1.0), 0.0 * d)


def _gaps(w):
    """F[..., i, j] = 1 / (w_j - w_i) off the diagonal, 0 on it and where values coincide."""
    return _safe_recip(w[..., None, :] - w[..., :, None])


def _sym(x):
    return (x + _swap(x)) / 2


def _rsolve(x, a):
    """x @ inv(a), by a solve."""
    return _swap(np.linalg.solve(_swap(a), _swap(x)))


# Cholesky (Murray, arXiv:1602.07527). NumPy reads the lower triangle; the rules treat `a` as the
# symmetric matrix it stands for (JAX's and PyTorch's convention), so the gradient is symmetric.
def _phi(x):
    n = x.shape[-1]
    return x * (_tri(n, x) - 0.5 * _eye(n, x))


def _cholesky_vjp(g, L, a):
    p = _phi(_swap(L) @ g)
    s = _rsolve(np.linalg.solve(_swap(L), p), L)  # L^-T p L^-1
    return _sym(s)


def _cholesky_jvp(ts, L, a):
    x = _rsolve(np.linalg.solve(L, _sym(ts[0])), _swap(L))  # L^-1 da L^-T
    return L @ _phi(x)


# eigh: w, v with a v = v diag(w) (Giles, "An extended collection of matrix derivative results").
def _eigh_forward(a, UPLO, n):
    w, v = np.linalg.eigh(a, UPLO)
    return _pack([w, v], w.shape[:-1])


def _eigh_vjp(g, o, a, UPLO, n):
    (w, v), (gw, gv) = _unpack(o, [(n,), (n, n)]), _unpack(g, [(n,), (n, n)])
    inner = gw[..., :, None] * _eye(n, g) + _gaps(w) * (_swap(v) @ gv)
    return _sym(v @ inner @ _swap(v))


def _eigh_jvp(ts, o, a, UPLO, n):
    w, v = _unpack(o, [(n,), (n, n)])
    c = _swap(v) @ _sym(ts[0]) @ v
    return _pack([_diag_of(c), v @ (_gaps(w) * c)], o.shape[:-1])


# eig of a real matrix with real eigenvalues; eigenvectors of unit length, as NumPy returns them
# (the normalisation term is arXiv:1701.00392, eq. 4.77, which HIPS autograd follows).
def _eig_forward(a, n):
    w, v = np.linalg.eig(a)
    if np.iscomplexobj(w):
        raise ValueError(
            f"linalg.eig: the matrix of shape {a.shape} has complex eigenvalues; tape differentiates eig only "
            "for real matrices with real eigenvalues (use linalg.eigh for symmetric ones)"
        )
    return _pack([w, v], w.shape[:-1])


def _eig_vjp(g, o, a, n):
    (w, v), (gw, gv) = _unpack(o, [(n,), (n, n)]), _unpack(g, [(n,), (n, n)])
    eye = _eye(n, g)
    vtgv = _swap(v) @ gv
    inner = gw[..., :, None] * eye + _gaps(w) * (vtgv - (_swap(v) @ v) @ (eye * vtgv))
    return np.linalg.solve(_swap(v), inner @ _swap(v))  # v^-T inner v^T


def _eig_jvp(ts, o, a, n):
    w, v = _unpack(o, [(n,), (n, n)])
    c = np.linalg.solve(v, ts[0] @ v)  # v^-1 da v
    dv = v @ (_gaps(w) * c)
    dv = dv - v * np.sum(v * dv, axis=-2)[..., None, :]  # keep the columns of unit length
    return _pack([_diag_of(c), dv], o.shape[:-1])


# svd (Townsend, "Differentiating the singular value decomposition"; JAX's jvp).
def _svd_shapes(m, n, full):
    k = min(m, n)
    return [(m, m if full else k), (k,), (n if full else k, n)]


def _svd_forward(a, full, hermitian, m, n):
    u, s, vh = np.linalg.svd(a, full_matrices=full, hermitian=hermitian)
    return _pack([u, s, vh], s.shape[:-1])


def _svd_parts(full, m, n):
    if full and m != n:
        raise NotImplementedError(
            f"linalg.svd: no derivative with full_matrices=True for a non-square matrix ({m}x{n}): the extra "
            "singular vectors are not unique; pass full_matrices=False"
        )
    return m, n, min(m, n), _svd_shapes(m, n, False)


def _svd_vjp(g, o, a, full, hermitian, m, n):
    m, n, k, shapes = _svd_parts(full, m, n)
    (u, s, vh), (gu, gs, gvh) = _unpack(o, shapes), _unpack(g, shapes)
    v, gv = _swap(vh), _swap(gvh)
    f = _safe_recip(s[..., None, :] ** 2 - s[..., :, None] ** 2)
    utgu, vtgv = _swap(u) @ gu, vh @ gv
    t = f * (utgu - _swap(utgu)) * s[..., None, :] + gs[..., :, None] * _eye(k, g)
    t = t + s[..., :, None] * (f * (vtgv - _swap(vtgv)))
    ga = u @ t @ vh
    sinv = _safe_recip(s)
    if m > k:  # (1 - u u^T) gu s^-1 v^T
        ga = ga + ((gu - u @ utgu) * sinv[..., None, :]) @ vh
    if n > k:  # u s^-1 gv^T (1 - v v^T)
        ga = ga + u @ (sinv[..., :, None] * _swap(gv - v @ vtgv))
    return ga


def _svd_jvp(ts, o, a, full, hermitian, m, n):
    m, n, k, shapes = _svd_parts(full, m, n)
    u, s, vh = _unpack(o, shapes)
    da, v = ts[0], _swap(vh)
    dp = _swap(u) @ da @ v
    f = _safe_recip(s[..., None, :] ** 2 - s[..., :, None] ** 2)
    dss, sds = s[..., None, :] * dp, s[..., :, None] * dp
    du = u @ (f * (dss + _swap(dss)))
    dv = v @ (f * (sds + _swap(sds)))
    sinv = _safe_recip(s)
    if m > k:
        dav = da @ v
        du = du + (dav - u @ (_swap(u) @ dav)) * sinv[..., None, :]
    if n > k:
        dau = _swap(da) @ u
        dv = dv + (dau - v @ (vh @ dau)) * sinv[..., None, :]
    return _pack([du, _diag_of(dp), _swap(dv)], o.shape[:-1])


# qr, reduced, for m >= n (Walter and Lehmann; JAX's jvp, whose adjoint is the vjp).
def _qr_forward(a, mode, m, n):
    q, r = np.linalg.qr(a, mode=mode)
    return _pack([q, r], q.shape[:-2])


def _qr_parts(mode, m, n):
    if m < n or (mode == "complete" and m != n):
        raise NotImplementedError(
            f"linalg.qr: derivatives are implemented for m >= n with mode='reduced' (got a {m}x{n} matrix, "
            f"mode={mode!r}): the extra columns of a complete Q are not unique"
        )
    return n, [(m, n), (n, n)]


def _qr_vjp(g, o, a, mode, m, n):
    n, shapes = _qr_parts(mode, m, n)
    (q, r), (gq, gr) = _unpack(o, shapes), _unpack(g, shapes)
    mm = gr @ _swap(r) - _swap(q) @ gq
    cbar = mm + (_swap(mm) - mm) * _tri(n, g, k=-1)
    return _rsolve(gq + q @ cbar, _swap(r))  # (gq + q cbar) r^-T


def _qr_jvp(ts, o, a, mode, m, n):
    n, shapes = _qr_parts(mode, m, n)
    q, r = _unpack(o, shapes)
    dxr = _rsolve(ts[0], r)  # da r^-1
    c = _swap(q) @ dxr
    low = c * _tri(n, c, k=-1)
    omega = low - _swap(low)
    return _pack([q @ (omega - c) + dxr, (c - omega) @ r], o.shape[:-1])


# slogdet: (sign, log|det|) packed on a last axis of 2; the sign has no derivative.
def _slogdet_forward(a):
    sign, logdet = np.linalg.slogdet(a)
    return np.stack([sign, logdet], axis=-1)


def _slogdet_vjp(g, o, a):
    return g[..., 1][..., None, None] * _swap(np.linalg.inv(a))


def _slogdet_jvp(ts, o, a):
    d = np.einsum("...ii->...", np.linalg.solve(a, ts[0]))
    return np.stack([0.0 * d, d], axis=-1)


# pinv (Golub and Pereyra), for matrices of constant rank; the vjp is HIPS autograd's.
def _pinv_forward(a, rcond, hermitian):
    return np.linalg.pinv(a, hermitian=hermitian) if rcond is None else np.linalg.pinv(a, rcond, hermitian)


def _pinv_vjp(g, p, a, rcond, hermitian):
    m, n = a.shape[-2:]
    gt = _swap(g)
    return _swap(-(p @ gt @ p) + p @ _swap(p) @ g @ (_eye(m, g) - a @ p) + (_eye(n, g) - p @ a) @ g @ _swap(p) @ p)


def _pinv_jvp(ts, p, a, rcond, hermitian):
    m, n = a.shape[-2:]
    da = ts[0]
    dat = _swap(da)
    return -(p @ da @ p) + p @ _swap(p) @ dat @ (_eye(m, da) - a @ p) + (_eye(n, da) - p @ a) @ dat @ _swap(p) @ p


def _matrix_shape(a, what):
    shape = np.shape(_raw(a))
    if len(shape) < 2:
        raise ValueError(f"{what}: expected a matrix or a stack of matrices, got shape {shape}")
    return shape[-2:]


def _square_n(a, what):
    m, n = _matrix_shape(a, what)
    if m != n:
        raise ValueError(f"{what}: expected square matrices, got shape {np.shape(_raw(a))}")
    return n


def _eigh_args(a, UPLO="L"):
    return (a,), {"UPLO": UPLO, "n": _square_n(a, "linalg.eigh")}


def _eig_args(a):
    return (a,), {"n": _square_n(a, "linalg.eig")}


def _svd_args(a, full_matrices=True, hermitian=False):
    m, n = _matrix_shape(a, "linalg.svd")
    return (a,), {"full": bool(full_matrices) and m != n, "hermitian": hermitian, "m": m, "n": n}


def _qr_args(a, mode="reduced"):
    m, n = _matrix_shape(a, "linalg.qr")
    return (a,), {"mode": "reduced" if mode == "complete" and m == n else mode, "m": m, "n": n}


def _pinv_args(a, rcond=None, hermitian=False):
    """The Moore-Penrose pseudo-inverse (np.linalg.pinv); derivatives hold where the rank is constant."""
    _matrix_shape(a, "linalg.pinv")
    return (a,), {"rcond": rcond, "hermitian": hermitian}


# -- test inputs: symmetric positive definite, distinct spectra, full rank ------------------------
def _spd(rng, *shape):
    b = rng.uniform(-1, 1, size=shape)
    return b @ _swap(b) / shape[-1] + np.eye(shape[-1])


def _distinct_sym(rng, *shape):
    """A symmetric matrix with eigenvalues 1, 2.5, 4, ... (well apart) in a random basis."""
    n = shape[-1]
    q, _ = np.linalg.qr(rng.standard_normal(shape))
    return (q * (1 + 1.5 * np.arange(n))) @ _swap(q)


def _distinct_real(rng, *shape):
    """A non-symmetric matrix with real eigenvalues well apart: p diag(w) p^-1."""
    n = shape[-1]
    p = np.eye(n) + 0.3 * rng.uniform(-1, 1, size=shape)
    return (p * (1 + 1.5 * np.arange(n))) @ np.linalg.inv(p)


def _flat(*parts):
    return np.concatenate([np.reshape(p, -1) for p in parts])


# Eigenvectors and singular vectors are defined up to sign: the tests look at functions that do not
# depend on it (v * v, with the eigenvalues), as HIPS autograd's tests do.
def _eigh_probe(f, a, only_w=False):
    w, v = f(_sym(a))
    return w if only_w else _flat(w, v * v * w[..., None, :])


def _eig_probe(f, a):
    w, v = f(a)
    return _flat(w, v * v * w[..., None, :])


def _svd_probe(f, a, **kw):
    if kw.get("compute_uv") is False:
        return f(a, **kw)
    u, s, vh = f(a, **kw)
    return _flat(s, u * u * s[..., None, :], vh * vh)


def _qr_probe(f, a, **kw):
    out = f(a, **kw)
    return out if kw.get("mode") == "r" else _flat(*out)


def _slogdet_probe(f, a):
    sign, logdet = f(a)
    return sign * logdet


def _probe_samples(make, shapes, probe, public, numpy_fn, **kw):
    def samples(rng):
        for shape in shapes:
            yield Sample(
                (make(rng, *shape),),
                lambda f, a: probe(FUNCTIONS[public], a, **kw),
                "-".join([str(shape), *(f"{k}={v}" for k, v in kw.items())]),
                lambda a: probe(numpy_fn, a, **kw),
            )

    return samples


def _chain(*sample_fns):
    return lambda rng: [s for fn in sample_fns for s in fn(rng)]


def _cholesky_samples(rng):
    for shape in [(3, 3), (2, 3, 3)]:
        yield Sample((_spd(rng, *shape),), lambda f, a: f(_sym(a)), str(shape))


def _negative_det(rng, *shape):
    a = _square(rng, *shape)
    return a[..., ::-1, :].copy()  # a row swap: the determinant changes sign


def _pinv_samples(rng):
    for shape in [(3, 3), (4, 3), (3, 4), (2, 4, 3)]:
        yield Sample((_u(rng, *shape) + np.eye(*shape[-2:]),), None, str(shape))


_eigh_samples = _chain(
    _probe_samples(_distinct_sym, [(3, 3), (2, 3, 3)], _eigh_probe, "linalg.eigh", np.linalg.eigh),
    _probe_samples(_distinct_sym, [(3, 3)], _eigh_probe, "linalg.eigh", np.linalg.eigh, only_w=True),
)
_eig_samples = _probe_samples(_distinct_real, [(3, 3), (2, 3, 3)], _eig_probe, "linalg.eig", np.linalg.eig)
_svd_samples = _chain(
    _probe_samples(_u, [(3, 3), (2, 3, 3)], _svd_probe, "linalg.svd", np.linalg.svd),
    _probe_samples(_u, [(4, 3), (3, 4), (2, 4, 3)], _svd_probe, "linalg.svd", np.linalg.svd, full_matrices=False),
    _probe_samples(_u, [(4, 3)], _svd_probe, "linalg.svd", np.linalg.svd, compute_uv=False),
)
_qr_samples = _chain(
    _probe_samples(_u, [(3, 3), (4, 3), (2, 4, 3)], _qr_probe, "linalg.qr", np.linalg.qr),
    _probe_samples(_u, [(4, 3)], _qr_probe, "linalg.qr", np.linalg.qr, mode="r"),
)
_slogdet_samples = _chain(
    _probe_samples(_square, [(3, 3), (2, 3, 3)], _slogdet_probe, "linalg.slogdet", np.linalg.slogdet),
    _probe_samples(_negative_det, [(3, 3)], _slogdet_probe, "linalg.slogdet", np.linalg.slogdet),
)

# fmt: off
#        opcode        name         forward             vjp rules                         save          NumPy's function, how the public function reads its arguments, forward mode
CHOLESKY  = defop(Op.CHOLESKY,  "cholesky",  np.linalg.cholesky, (_cholesky_vjp,),               "o",        numpy=np.linalg.cholesky, public="linalg.cholesky", jvp=_cholesky_jvp, samples=_cholesky_samples,
                  doc="The lower Cholesky factor of a symmetric positive definite matrix (batched); derivatives treat `a` as symmetric.\n\n>>> import tape as tp\n>>> tp.linalg.cholesky(tp.tensor([[4.0, 2.0], [2.0, 5.0]]))\ntensor([[2., 0.],\n        [1., 2.]])")
EIGH      = defop(Op.EIGH,      "eigh",      _eigh_forward,      (_eigh_vjp,),                   "o",        public=False, args=_eigh_args, jvp=_eigh_jvp, samples=_eigh_samples)
EIG       = defop(Op.EIG,       "eig",       _eig_forward,       (_eig_vjp,),                    "o",        public=False, args=_eig_args, jvp=_eig_jvp, samples=_eig_samples)
SVD       = defop(Op.SVD,       "svd",       _svd_forward,       (_svd_vjp,),                    "o",        public=False, args=_svd_args, jvp=_svd_jvp, samples=_svd_samples)
QR        = defop(Op.QR,        "qr",        _qr_forward,        (_qr_vjp,),                     "o",        public=False, args=_qr_args, jvp=_qr_jvp, samples=_qr_samples)
SLOGDET   = defop(Op.SLOGDET,   "slogdet",   _slogdet_forward,   (_slogdet_vjp,),                "x",        public=False, jvp=_slogdet_jvp, samples=_slogdet_samples)
PINV      = defop(Op.PINV,      "pinv",      _pinv_forward,      (_pinv_vjp,),                   "xo",       numpy=np.linalg.pinv, public="linalg.pinv", args=_pinv_args, jvp=_pinv_jvp, samples=_pinv_samples)
# fmt: on

EighResult = namedtuple("EighResult", "eigenvalues eigenvectors")
EigResult = namedtuple("EigResult", "eigenvalues eigenvectors")
SVDResult = namedtuple("SVDResult", "U S Vh")
QRResult = namedtuple("QRResult", "Q R")
SlogdetResult = namedtuple("SlogdetResult", "sign logabsdet")


def eigh(a, UPLO="L"):
    """Eigenvalues (ascending) and eigenvectors of a symmetric matrix (np.linalg.eigh, batched).

    Derivatives treat `a` as the symmetric matrix it stands for (the gradient is symmetric); they
    need distinct eigenvalues, except for functions of the eigenvalues alone.

    >>> import tape as tp
    >>> w, v = tp.linalg.eigh(tp.tensor([[2.0, 1.0], [1.0, 2.0]]))
    >>> w
    tensor([1., 3.])
    """
    n = _square_n(a, "linalg.eigh")
    return EighResult(*_unpack(EIGH.function(a, UPLO), [(n,), (n, n)]))


def eigvalsh(a, UPLO="L"):
    """The eigenvalues (ascending) of a symmetric matrix (np.linalg.eigvalsh): `eigh`'s first result.

    >>> import tape as tp
    >>> tp.linalg.eigvalsh(tp.tensor([[2.0, 1.0], [1.0, 2.0]]))
    tensor([1., 3.])
    """
    return eigh(a, UPLO).eigenvalues


def eig(a):
    """Eigenvalues and unit eigenvectors of a real matrix whose eigenvalues are real (np.linalg.eig).

    A matrix with complex eigenvalues raises ValueError: tape's arrays are real.

    >>> import tape as tp
    >>> tp.linalg.eig(tp.tensor([[2.0, 0.0], [1.0, 3.0]])).eigenvalues
    tensor([3., 2.])
    """
    n = _square_n(a, "linalg.eig")
    return EigResult(*_unpack(EIG.function(a), [(n,), (n, n)]))


def svd(a, full_matrices=True, compute_uv=True, hermitian=False):
    """Singular value decomposition (np.linalg.svd, batched): ``u, s, vh`` or, with
    ``compute_uv=False``, ``s``. Derivatives need distinct non-zero singular values where u or vh
    are used, and ``full_matrices=False`` for a non-square matrix.

    >>> import tape as tp
    >>> tp.linalg.svd(tp.tensor([[3.0, 0.0], [0.0, -2.0]]), compute_uv=False)
    tensor([3., 2.])
    """
    m, n = _matrix_shape(a, "linalg.svd")
    full = bool(full_matrices) and compute_uv
    parts = _unpack(SVD.function(a, full, hermitian), _svd_shapes(m, n, full and m != n))
    return SVDResult(*parts) if compute_uv else parts[1]


def qr(a, mode="reduced"):
    """QR decomposition (np.linalg.qr, batched), modes "reduced", "complete" and "r".
    Derivatives need m >= n (and a square matrix for "complete").

    >>> import tape as tp
    >>> q, r = tp.linalg.qr(tp.tensor([[3.0, 1.0], [4.0, 2.0]]))
    >>> r.shape
    (2, 2)
    """
    if mode not in ("reduced", "complete", "r"):
        raise ValueError(f"linalg.qr: mode must be 'reduced', 'complete' or 'r', got {mode!r}")
    m, n = _matrix_shape(a, "linalg.qr")
    row_mode = "reduced" if mode == "r" else mode
    full = row_mode == "complete" and m != n
    k = m if full else min(m, n)
    q, r = _unpack(QR.function(a, row_mode), [(m, k), (k, n)])
    return r if mode == "r" else QRResult(q, r)


def slogdet(a):
    """``(sign, log|det a|)`` (np.linalg.slogdet, batched); the sign carries no gradient.

    >>> import tape as tp
    >>> tp.linalg.slogdet(tp.tensor([[0.0, 2.0], [1.0, 0.0]]))
    SlogdetResult(sign=tensor(-1.), logabsdet=tensor(0.69314718))
    """
    _square_n(a, "linalg.slogdet")
    packed = SLOGDET.function(a)
    return SlogdetResult(_new_tensor(packed.array[..., 0]), packed[..., 1])


for _fn, _np_fn in [(eigh, np.linalg.eigh), (eigvalsh, np.linalg.eigvalsh), (eig, np.linalg.eig), (svd, np.linalg.svd), (qr, np.linalg.qr),
                    (slogdet, np.linalg.slogdet)]:  # fmt: skip
    export(_fn, name="linalg." + _fn.__name__, numpy=_np_fn)
