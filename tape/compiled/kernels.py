"""Numba kernels that run a whole compiled program, forward and reverse (issue 10).

A program of float64 (or float32) values runs as two `@njit` loops over its columns (specialised
by Numba per arena dtype): `flat_forward` fills one arena (each slot at its offset), `flat_reverse`
walks the entries down accumulating into an adjoint arena, each switching on the opcode as ADOL-C's
`zos_forward`/`fos_reverse` do. Every elementwise, reduction and shape op of API §4 has a kernel:
elementwise ops (broadcasting through precomputed index maps; `where`, and the comparisons held as
0/1), reductions along axes (sum, max/min with shared ties, prod exact at zeros, norm, and softmax's
max shift) through a map from input element to output element, every shape op and indexing as one
GATHER through a map of arena positions (index_add as the matching scatter), small 1-D/2-D matmuls
in their own loops and BLAS-sized ones through numba's `np.dot`. That covers W1 (6,000 scalar ops),
W2 (201 ops on 100 floats), W4's ops and W5 (a 10,000-step recurrent loop, 40,001 entries). The
kernels are compiled once per process and cached on disk, not per program: the program is data.
Their formulas are the op table's rules; `tests/test_compiled_kernels.py` and
`tests/test_compiled_coverage.py` check them against the Python replay (`replay.py`, the spec)
and against eager, op case by op case.

A program runs in *runs*: each maximal run of kernel entries is one kernel call over its slice of
the columns, and every other entry replays through the op table's Python rules between them,
reading and writing the same arena. `Program.stats()` lists those entries in two keys:
`fallback_ops`, entries with no kernel (`entry_kind`: linear algebra, scans, the rarer unary ops,
integers, draws, values of the arena's other float dtype), and `numpy_ops`, entries NumPy runs by
choice (`by_choice`: big arrays, where NumPy's SIMD loops were measured faster; BLAS-sized
matmuls; runs shorter than `MIN_ENTRIES`). `FORCE_KERNELS` (TAPE_FORCE_KERNELS=1) lifts the size
choices.

The arena holds a slot for the whole pass only where something needs it then (the reverse pass, a
Python entry, the caller); the other slots share places (`_arena_layout`: W5's 41 MB became 21 MB),
and each kernel keeps its last value and adjoint arenas for the next call.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import njit

from ..ops.registry import Op
from .lower import PLAIN_CODE, assign_buffers, op_of
from .replay import GuardFailed, _holds_input_ref, _resolve, _same, step_cotangents, step_value

# Opcodes with a scalar formula below (SUM and IDENTITY of a scalar are the identity).
SCALAR_OPS = frozenset(
    int(o)
    for o in (
        Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAXIMUM, Op.MINIMUM, Op.ARCTAN2,
        Op.NEG, Op.EXP, Op.LOG, Op.LOG1P, Op.EXPM1, Op.SQRT, Op.ABS, Op.SIGN, Op.SIN, Op.COS, Op.TAN,
        Op.ARCSIN, Op.ARCCOS, Op.ARCTAN, Op.SINH, Op.COSH, Op.TANH, Op.SUM, Op.IDENTITY,
    )
)  # fmt: skip

# The opcodes as plain ints, which Numba compiles in as constants.
ADD, SUB, MUL, DIV, POW = int(Op.ADD), int(Op.SUB), int(Op.MUL), int(Op.DIV), int(Op.POW)
MAXIMUM, MINIMUM, ARCTAN2 = int(Op.MAXIMUM), int(Op.MINIMUM), int(Op.ARCTAN2)
NEG, EXP, LOG, LOG1P, EXPM1, SQRT = int(Op.NEG), int(Op.EXP), int(Op.LOG), int(Op.LOG1P), int(Op.EXPM1), int(Op.SQRT)
ABS, SIGN, SIN, COS, TAN = int(Op.ABS), int(Op.SIGN), int(Op.SIN), int(Op.COS), int(Op.TAN)
ARCSIN, ARCCOS, ARCTAN, SINH, COSH, TANH = (int(Op.ARCSIN), int(Op.ARCCOS), int(Op.ARCTAN), int(Op.SINH),
                                            int(Op.COSH), int(Op.TANH))  # fmt: skip
SUM, IDENTITY, MATMUL, INDEX_ADD = int(Op.SUM), int(Op.IDENTITY), int(Op.MATMUL), int(Op.INDEX_ADD)
WHERE, PROD, MAX, MIN, NORM = int(Op.WHERE), int(Op.PROD), int(Op.MAX), int(Op.MIN), int(Op.NORM)
# Codes of the kernels' op column only (a program's column keeps the op table's): every shape op and
# indexing is one GATHER through a map of arena positions; index_add is a SCATTER (a sum into mapped
# output elements); a matmul too big for the kernel's own loops is a BLAS call; the results without
# history (comparisons, max_shift) that the kernels compute get codes from 901 up (no cotangent).
GATHER, SCATTER, BLAS = 850, 851, 852
GREATER, GREATER_EQUAL, LESS, LESS_EQUAL, EQUAL, NOT_EQUAL, ISFINITE, ISNAN = range(901, 909)
MAX_SHIFT = 910
#: Plain (history-free) functions with a kernel, by name.
PLAIN_CODES = {"greater": GREATER, "greater_equal": GREATER_EQUAL, "less": LESS, "less_equal": LESS_EQUAL,
               "equal": EQUAL, "not_equal": NOT_EQUAL, "isfinite": ISFINITE, "isnan": ISNAN,
               "max_shift": MAX_SHIFT, "stop_gradient": GATHER}  # fmt: skip
#: Shape ops (and indexing) that run as a GATHER.
GATHER_OPS = frozenset(int(o) for o in (Op.RESHAPE, Op.TRANSPOSE, Op.BROADCAST_TO, Op.GETITEM, Op.CONCATENATE,
                                        Op.PAD, Op.ASTYPE))  # fmt: skip
#: Reductions along axes through a map from input element to output element.
REDUCE_OPS = frozenset((SUM, PROD, MAX, MIN, NORM))
#: Elementwise ops whose kernel calls libm per element: on arrays past `MAX_ELEMENTS` NumPy's SIMD
#: ufuncs are faster, so those entries run in NumPy by choice (`stats()["numpy_ops"]`).
TRANSCENDENTAL = frozenset(
    int(o)
    for o in (Op.POW, Op.ARCTAN2, Op.EXP, Op.LOG, Op.LOG1P, Op.EXPM1, Op.SIN, Op.COS, Op.TAN, Op.ARCSIN,
              Op.ARCCOS, Op.ARCTAN, Op.SINH, Op.COSH, Op.TANH)
)  # fmt: skip


@njit(cache=True, error_model="numpy", inline="always")
def _value(c, x, y):  # pragma: no cover - compiled
    if c == ADD:
        return x + y
    if c == SUB:
        return x - y
    if c == MUL:
        return x * y
    if c == DIV:
        return x / y
    if c == POW:
        return x**y
    if c == MAXIMUM:
        return max(x, y) if not (math.isnan(x) or math.isnan(y)) else math.nan
    if c == MINIMUM:
        return min(x, y) if not (math.isnan(x) or math.isnan(y)) else math.nan
    if c == ARCTAN2:
        return math.atan2(x, y)
    if c == NEG:
        return -x
    if c == EXP:
        return math.exp(x)
    if c == LOG:
        return math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
    if c == LOG1P:
        return math.log1p(x) if x > -1 else (-math.inf if x == -1 else math.nan)
    if c == EXPM1:
        return math.expm1(x)
    if c == SQRT:
        return math.sqrt(x) if x >= 0 else math.nan
    if c == ABS:
        return abs(x)
    if c == SIGN:
        return float((x > 0) - (x < 0)) if not math.isnan(x) else math.nan
    if c == SIN:
        return math.sin(x)
    if c == COS:
        return math.cos(x)
    if c == TAN:
        return math.tan(x)
    if c == ARCSIN:
        return math.asin(x) if -1 <= x <= 1 else math.nan
    if c == ARCCOS:
        return math.acos(x) if -1 <= x <= 1 else math.nan
    if c == ARCTAN:
        return math.atan(x)
    if c == SINH:
        return math.sinh(x)
    if c == COSH:
        return math.cosh(x)
    if c == TANH:
        return math.tanh(x)
    return x  # IDENTITY, and SUM of a scalar


@njit(cache=True, error_model="numpy", inline="always")
def _compare(c, x, y):  # pragma: no cover - compiled
    """The comparisons (results without history): 1.0 for True. Apart from `_value`, whose loop
    LLVM specialises per opcode only while the switch stays small."""
    if c == GREATER:
        return 1.0 if x > y else 0.0
    if c == GREATER_EQUAL:
        return 1.0 if x >= y else 0.0
    if c == LESS:
        return 1.0 if x < y else 0.0
    if c == LESS_EQUAL:
        return 1.0 if x <= y else 0.0
    if c == EQUAL:
        return 1.0 if x == y else 0.0
    if c == NOT_EQUAL:
        return 1.0 if x != y else 0.0
    if c == ISFINITE:
        return 1.0 if math.isfinite(x) else 0.0
    return 1.0 if math.isnan(x) else 0.0


@njit(cache=True, error_model="numpy", inline="always")
def _share(g, a, b):  # pragma: no cover - compiled
    if a > b:
        return g
    if a == b:
        return 0.5 * g
    return 0.0 * g


@njit(cache=True, error_model="numpy", inline="always")
def _partials(c, x, y, r, g):  # pragma: no cover - compiled
    """(cotangent of x, cotangent of y): the op table's rules on scalars."""
    if c == ADD:
        return g, g
    if c == SUB:
        return g, -g
    if c == MUL:
        return g * y, g * x
    if c == DIV:
        return g / y, -g * r / y
    if c == POW:
        gx = 0.0 if y == 0 else g * y * x ** (y - 1)
        if x == 0 and y >= 0:
            return gx, 0.0
        return gx, g * r * (math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan))
    if c == MAXIMUM:
        return _share(g, x, y), _share(g, y, x)
    if c == MINIMUM:
        return _share(g, y, x), _share(g, x, y)
    if c == ARCTAN2:
        return g * y / (y * y + x * x), -g * x / (y * y + x * x)
    if c == NEG:
        return -g, 0.0
    if c == EXP:
        return g * r, 0.0
    if c == LOG:
        return g / x, 0.0
    if c == LOG1P:
        return g / (1 + x), 0.0
    if c == EXPM1:
        return g * (r + 1), 0.0
    if c == SQRT:
        return g / (2 * r), 0.0
    if c == ABS:
        return g * ((x > 0) - (x < 0)), 0.0
    if c == SIN:
        return g * math.cos(x), 0.0
    if c == COS:
        return -g * math.sin(x), 0.0
    if c == TAN:
        return g * (1 + r * r), 0.0
    if c == ARCSIN:
        return g / math.sqrt(1 - x * x), 0.0
    if c == ARCCOS:
        return -g / math.sqrt(1 - x * x), 0.0
    if c == ARCTAN:
        return g / (1 + x * x), 0.0
    if c == SINH:
        return g * math.cosh(x), 0.0
    if c == COSH:
        return g * math.sinh(x), 0.0
    if c == TANH:
        return g * (1 - r * r), 0.0
    return g, 0.0  # IDENTITY, SUM of a scalar


# Elementwise entries without broadcasting: the opcode switch hoisted out of the element loop, one loop per
# hot op (W2's chain: mul, add, tanh, exp, sin), each the same formula as `_value`/`_partials`, so results are
# the same bits; any other op loops over `_value`/`_partials`. Measured on W2's 200-entry forward chain
# (100 float64): 132 µs with the switch inside the loop, 95 µs hoisted (libm's exp/tanh/sin alone: ~84 µs).
# X/Y/R/G/GX/GY are slices of the arena; `sx`/`sy`: 1 for an array operand, 0 for a scalar one (element 0).


@njit(cache=True, error_model="numpy")
def _map_forward(c, X, Y, R, sx, sy):  # pragma: no cover - compiled
    n = R.shape[0]
    if c == EXP:
        for e in range(n):
            R[e] = math.exp(X[e])
    elif c == TANH:
        for e in range(n):
            R[e] = math.tanh(X[e])
    elif c == SIN:
        for e in range(n):
            R[e] = math.sin(X[e])
    elif c == COS:
        for e in range(n):
            R[e] = math.cos(X[e])
    elif c == NEG:
        for e in range(n):
            R[e] = -X[e]
    elif sx and sy and c == ADD:
        for e in range(n):
            R[e] = X[e] + Y[e]
    elif sx and sy and c == MUL:
        for e in range(n):
            R[e] = X[e] * Y[e]
    elif sx and not sy and c == MUL:
        y = Y[0]
        for e in range(n):
            R[e] = X[e] * y
    elif sx and not sy and c == ADD:
        y = Y[0]
        for e in range(n):
            R[e] = X[e] + y
    else:
        for e in range(n):
            R[e] = _value(c, X[e * sx], Y[e * sy])


@njit(cache=True, error_model="numpy")
def _map_reverse(c, X, Y, R, G, GX, GY, sx, sy, wi, wj):  # pragma: no cover - compiled
    """GX/GY += the partials times G, then G = 0 (a scalar operand's partials summed into element 0)."""
    n = R.shape[0]
    if wi and not wj and sx:
        if c == EXP:
            for e in range(n):
                GX[e] += G[e] * R[e]
        elif c == TANH:
            for e in range(n):
                GX[e] += G[e] * (1 - R[e] * R[e])
        elif c == SIN:
            for e in range(n):
                GX[e] += G[e] * math.cos(X[e])
        elif c == NEG:
            for e in range(n):
                GX[e] += -G[e]
        elif c == ADD or c == SUB:
            for e in range(n):
                GX[e] += G[e]
        elif c == MUL and sy:
            for e in range(n):
                GX[e] += G[e] * Y[e]
        elif c == MUL:
            y = Y[0]
            for e in range(n):
                GX[e] += G[e] * y
        else:
            for e in range(n):
                GX[e] += _partials(c, X[e], Y[e * sy], R[e], G[e])[0]
    elif wi and wj and sx and sy and c == ADD:
        for e in range(n):
            GX[e] += G[e]
        for e in range(n):
            GY[e] += G[e]
    elif wi or wj:
        for e in range(n):
            gx, gy = _partials(c, X[e * sx], Y[e * sy], R[e], G[e])
            if wi:
                GX[e * sx] += gx
            if wj:
                GY[e * sy] += gy
    G[:] = 0.0


# The matmul loops may reorder their sums (as BLAS does), so that LLVM vectorises them; nothing
# else in the kernels may (their results equal the Python replay's bit for bit at the edge points).
# They index slices, not the arena: a slice's index needs no wraparound check, so the loop vectorises.
# Every product is one of two shapes, each walking memory contiguously in its inner loop: `_matvec`
# (rows of a matrix dotted with a vector) and `_vecmat` (a vector's combination of a matrix's rows).
# Both take four rows per pass: `_matvec` loads the vector once for four dot products, `_vecmat`
# loads and stores its result row once for four rows; each pass is one vectorised inner loop.
_REASSOC = {"reassoc", "contract"}


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def _matvec(A, x, y, m, kk, acc):  # pragma: no cover - compiled
    """y[:m] (+)= A @ x for A (m, kk) and x (kk,), all C-contiguous; `acc`: add into y."""
    a = 0
    while a + 4 <= m:
        r0 = A[a * kk : (a + 1) * kk]
        r1 = A[(a + 1) * kk : (a + 2) * kk]
        r2 = A[(a + 2) * kk : (a + 3) * kk]
        r3 = A[(a + 3) * kk : (a + 4) * kk]
        s0 = s1 = s2 = s3 = 0.0
        for q in range(kk):
            xq = x[q]
            s0 += r0[q] * xq
            s1 += r1[q] * xq
            s2 += r2[q] * xq
            s3 += r3[q] * xq
        if acc:
            y[a] += s0
            y[a + 1] += s1
            y[a + 2] += s2
            y[a + 3] += s3
        else:
            y[a] = s0
            y[a + 1] = s1
            y[a + 2] = s2
            y[a + 3] = s3
        a += 4
    while a < m:
        r0 = A[a * kk : (a + 1) * kk]
        s0 = 0.0
        for q in range(kk):
            s0 += r0[q] * x[q]
        if acc:
            y[a] += s0
        else:
            y[a] = s0
        a += 1


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def _vecmat(x, xs, B, c, kk, n, acc):  # pragma: no cover - compiled
    """c[:n] (+)= sum_q x[q * xs] * B[q, :] for B (kk, n) C-contiguous (`xs`: x's stride, so that a
    column of a matrix can be x); `acc`: add into c."""
    if not acc:
        c[:n] = 0.0
    q = 0
    while q + 4 <= kk:
        x0, x1, x2, x3 = x[q * xs], x[(q + 1) * xs], x[(q + 2) * xs], x[(q + 3) * xs]
        b0 = B[q * n : (q + 1) * n]
        b1 = B[(q + 1) * n : (q + 2) * n]
        b2 = B[(q + 2) * n : (q + 3) * n]
        b3 = B[(q + 3) * n : (q + 4) * n]
        for e in range(n):
            c[e] += x0 * b0[e] + x1 * b1[e] + x2 * b2[e] + x3 * b3[e]
        q += 4
    while q < kk:
        x0 = x[q * xs]
        b0 = B[q * n : (q + 1) * n]
        for e in range(n):
            c[e] += x0 * b0[e]
        q += 1


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def _matmul_forward(v, oi, oj, oo, m, kk, n):  # pragma: no cover - compiled
    """C = A @ B for A (m, kk), B (kk, n) at offsets oi, oj of the arena, C at oo."""
    A = v[oi : oi + m * kk]
    B = v[oj : oj + kk * n]
    C = v[oo : oo + m * n]
    if n == 1:
        _matvec(A, B, C, m, kk, False)
        return
    for a in range(m):
        _vecmat(A[a * kk :], 1, B, C[a * n : (a + 1) * n], kk, n, False)


#: Rank-1 weight gradients a reverse pass holds back, to add them DEFER at a time (see `_defer`).
DEFER = 16
_PEND = 5  # pend[:5]: count, target offset, rows, columns, 0: (cotangent, value) pairs / 1: (value, cotangent)


@njit(cache=True, error_model="numpy")
def _hold_size(mkn):  # pragma: no cover - compiled
    """Elements of the copies `_defer` keeps: DEFER cotangents of the longest matmul vector output."""
    most = 1
    for k in range(mkn.shape[0]):
        most = max(most, mkn[k, 0], mkn[k, 2])
    return DEFER * most


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def _flush(v, adj, pend, hold):  # pragma: no cover - compiled
    """Add the held rank-1 updates into their target block T (rows R, columns C) of `adj`, four per
    pass over a row of T, which stays in L1 across them: T[r, :] += sum_t u_t[r] * w_t[:] (the
    cotangents u_t in `hold`, the values w_t in `v`; with flip, the values u_t and cotangents w_t)."""
    cnt = pend[0]
    if cnt == 0:
        return
    t0, R, C, flip = pend[1], pend[2], pend[3], pend[4]
    U = v if flip else hold
    Wv = hold if flip else v
    for r in range(R):
        row = adj[t0 + r * C : t0 + (r + 1) * C]
        t = 0
        while t + 4 <= cnt:
            p = _PEND + 2 * t
            u0, u1, u2, u3 = U[pend[p] + r], U[pend[p + 2] + r], U[pend[p + 4] + r], U[pend[p + 6] + r]
            w0 = Wv[pend[p + 1] : pend[p + 1] + C]
            w1 = Wv[pend[p + 3] : pend[p + 3] + C]
            w2 = Wv[pend[p + 5] : pend[p + 5] + C]
            w3 = Wv[pend[p + 7] : pend[p + 7] + C]
            for q in range(C):
                row[q] += u0 * w0[q] + u1 * w1[q] + u2 * w2[q] + u3 * w3[q]
            t += 4
        while t < cnt:
            p = _PEND + 2 * t
            u0 = U[pend[p] + r]
            w0 = Wv[pend[p + 1] : pend[p + 1] + C]
            for q in range(C):
                row[q] += u0 * w0[q]
            t += 1
    pend[0] = 0


@njit(cache=True, error_model="numpy")
def _defer(v, adj, pend, hold, target, R, C, flip, u, w):  # pragma: no cover - compiled
    """Hold back T += outer(u, w) (T at `target`, R x C; u the matmul's cotangent at offset u of adj
    and w a value at offset w of v, or with `flip` u a value and w the cotangent). The cotangent is
    copied into `hold`: the arena may give its place to another slot's before the flush. Flushes
    first what is held for another block, and when DEFER are held."""
    if pend[0] and (pend[1] != target or pend[4] != flip or pend[0] == DEFER):
        _flush(v, adj, pend, hold)
    if pend[0] == 0:
        pend[1], pend[2], pend[3], pend[4] = target, R, C, flip
    t = pend[0]
    p = _PEND + 2 * t
    size = C if flip else R
    h = t * (hold.shape[0] // DEFER)
    hold[h : h + size] = adj[w : w + size] if flip else adj[u : u + size]
    pend[p], pend[p + 1] = (u, h) if flip else (h, w)
    pend[0] += 1


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def _matmul_reverse(v, adj, oi, oj, oo, m, kk, n, wi, wj, defer, pend, hold):  # pragma: no cover - compiled
    """GA += G @ B.T (if `wi`) and GB += A.T @ G (if `wj`), G the cotangent of C = A @ B, which is
    zeroed after. Two separate passes, each vectorised; GA and GB may be one block (A @ A).

    `defer` (1: GA when B is a vector, 2: GB when A is one; 0: neither) says that operand is a
    weight, computed before this run: its gradient, a rank-1 update, is held back (`pend`, `hold`)
    and added with the next ones (a recurrent loop's W @ x_t: sum_t g_t x_t^T), reading and writing
    the weight's gradient once per DEFER steps instead of at every step."""
    A = v[oi : oi + m * kk]
    B = v[oj : oj + kk * n]
    G = adj[oo : oo + m * n]
    if wi and defer == 1:
        _defer(v, adj, pend, hold, oi, m, kk, 0, oo, oj)
        wi = False
    if wj and defer == 2:
        _defer(v, adj, pend, hold, oj, kk, n, 1, oi, oo)
        wj = False
    if wi:
        GA = adj[oi : oi + m * kk]
        for a in range(m):
            ga = GA[a * kk : (a + 1) * kk]
            if n == 1:  # a rank-1 update, row by row
                g = G[a]
                for q in range(kk):
                    ga[q] += g * B[q]
            else:
                _matvec(B, G[a * n : (a + 1) * n], ga, kk, n, True)
    if wj:
        GB = adj[oj : oj + kk * n]
        if n == 1:
            _vecmat(G, 1, A, GB, m, kk, True)
        else:
            for q in range(kk):
                _vecmat(A[q:], kk, G, GB[q * n : (q + 1) * n], m, n, True)
    G[:] = 0.0


try:  # numba's np.dot calls SciPy's BLAS: without SciPy, big matmuls replay in Python
    import scipy.linalg.cython_blas  # noqa: F401

    HAVE_BLAS = True
except ImportError:  # pragma: no cover - SciPy is in the dev and bench extras
    HAVE_BLAS = False

if HAVE_BLAS:

    @njit(cache=True, error_model="numpy")
    def _blas_forward(v, oi, oj, oo, m, kk, n):  # pragma: no cover - compiled
        A = v[oi : oi + m * kk].reshape((m, kk))
        B = v[oj : oj + kk * n].reshape((kk, n))
        v[oo : oo + m * n] = np.dot(A, B).ravel()

    @njit(cache=True, error_model="numpy")
    def _blas_reverse(v, adj, oi, oj, oo, m, kk, n, wi, wj):  # pragma: no cover - compiled
        G = adj[oo : oo + m * n].reshape((m, n))
        if wi:
            B = v[oj : oj + kk * n].reshape((kk, n))
            adj[oi : oi + m * kk] += np.dot(G, B.T).ravel()
        if wj:
            A = v[oi : oi + m * kk].reshape((m, kk))
            adj[oj : oj + kk * n] += np.dot(A.T, G).ravel()
        adj[oo : oo + m * n] = 0.0

else:  # pragma: no cover - entry_kind gives big matmuls no kernel without SciPy

    @njit(cache=True, error_model="numpy")
    def _blas_forward(v, oi, oj, oo, m, kk, n):
        pass

    @njit(cache=True, error_model="numpy")
    def _blas_reverse(v, adj, oi, oj, oo, m, kk, n, wi, wj):
        pass


@njit(cache=True, error_model="numpy", inline="always")
def _at(o, z, b, pool, e):  # pragma: no cover - compiled
    """Arena position of an elementwise operand's element for output element e (at o; z: a
    scalar; b >= 0: through the broadcast map at pool[b:])."""
    if b >= 0:
        return o + pool[b + e]
    return o if z else o + e


@njit(cache=True, error_model="numpy")
def flat_forward(op, ins, out, off, z, mkn, bix, pool, v):  # pragma: no cover - compiled
    """Slot s lives in v[off[s]:off[s+1]] (z[s]: a scalar, element off[s] only). A matmul entry
    multiplies an (m, k) by a (k, n) block, its shapes in mkn[k] (a vector operand as m or n = 1).
    Index maps, precomputed per entry at `pool[bix[k, q]:]` (-1: none): an elementwise entry that
    broadcasts reads operand q's element `map[e]` for output element e; a reduction along axes (and
    index_add) folds input element e into output element `map[e]`; a GATHER (every shape op and
    indexing) reads output element e from arena position `map[e]` (-1: a zero of the padding)."""
    for k in range(op.shape[0]):
        c = op[k]
        i = ins[k, 0]
        j = ins[k, 1]
        o = out[k]
        oi, oj, oo = off[i], off[j] if j >= 0 else 0, off[o]
        m = off[o + 1] - oo
        bi = bix[k, 0]
        if (c < SUM and c != WHERE) or c == IDENTITY or (c == SUM and z[i]):  # elementwise, the common case
            if bi >= 0:
                bj = bix[k, 1]
                for e in range(m):
                    x = v[oi + pool[bi + e]]
                    y = v[oj + pool[bj + e]] if j >= 0 else 0.0
                    v[oo + e] = _value(c, x, y)
            else:
                sx, sy = 0 if z[i] else 1, 0 if j < 0 or z[j] else 1
                _map_forward(c, v[oi : oi + m * sx + 1 - sx], v[oj : oj + m * sy + 1 - sy], v[oo : oo + m], sx, sy)
        elif c == MATMUL:
            _matmul_forward(v, oi, oj, oo, mkn[k, 0], mkn[k, 1], mkn[k, 2])
        elif c == GATHER:
            for e in range(m):
                p = pool[bi + e]
                v[oo + e] = v[p] if p >= 0 else 0.0
        elif (c == SUM and not z[i]) or c == SCATTER:
            if bi < 0:
                acc = 0.0
                for e in range(off[i + 1] - oi):
                    acc += v[oi + e]
                v[oo] = acc
            else:
                for e in range(m):
                    v[oo + e] = 0.0
                for e in range(off[i + 1] - oi):
                    v[oo + pool[bi + e]] += v[oi + e]
        elif c == MAX or c == MIN or c == MAX_SHIFT:
            big = c != MIN
            for e in range(m):
                v[oo + e] = -math.inf if big else math.inf
            for e in range(off[i + 1] - oi):
                x = v[oi + e]
                q = oo + pool[bi + e]
                if math.isnan(x) or ((x > v[q]) if big else (x < v[q])):
                    v[q] = x
                elif math.isnan(v[q]):
                    pass
            if c == MAX_SHIFT:  # the softmax shift: 0 where the max is not finite
                for e in range(m):
                    if not math.isfinite(v[oo + e]):
                        v[oo + e] = 0.0
        elif c == PROD:
            for e in range(m):
                v[oo + e] = 1.0
            for e in range(off[i + 1] - oi):
                v[oo + pool[bi + e]] *= v[oi + e]
        elif c == NORM:
            for e in range(m):
                v[oo + e] = 0.0
            for e in range(off[i + 1] - oi):
                x = v[oi + e]
                v[oo + pool[bi + e]] += x * x
            for e in range(m):
                v[oo + e] = math.sqrt(v[oo + e])
        elif c == WHERE:
            h = ins[k, 2]
            zc, zx, zy = z[i], z[j], z[h]
            bj, bh = bix[k, 1], bix[k, 2]
            oh = off[h]
            for e in range(m):
                if v[_at(oi, zc, bi, pool, e)] != 0:
                    v[oo + e] = v[_at(oj, zx, bj, pool, e)]
                else:
                    v[oo + e] = v[_at(oh, zy, bh, pool, e)]
        elif c >= GREATER:
            zi = z[i]
            zj = z[j] if j >= 0 else True
            bj = bix[k, 1]
            for e in range(m):
                x = v[_at(oi, zi, bi, pool, e)]
                y = v[_at(oj, zj, bj, pool, e)] if j >= 0 else 0.0
                v[oo + e] = _compare(c, x, y)


@njit(cache=True, error_model="numpy")
def flat_reverse(op, ins, out, off, z, mkn, bix, pool, v, adj, want, hit):  # pragma: no cover - compiled
    """`want[s]`: slot s takes a cotangent (on a path from a wanted input); `hit[s]`: one reached it
    (an entry no cotangent reached is skipped, as the Python replay skips it). An operand read by a
    broadcasting entry gets the sum of its cotangents (broadcasting undone, as `sweep.fit` does);
    a GATHER adds each output cotangent into the arena position it read."""
    pend = np.zeros(_PEND + 2 * DEFER, np.int64)  # the matmul weight gradients held back
    hold = np.empty(_hold_size(mkn), v.dtype)
    for k in range(op.shape[0] - 1, -1, -1):
        o = out[k]
        if not (want[o] and hit[o]):
            continue
        c = op[k]
        i = ins[k, 0]
        j = ins[k, 1]
        oi, oj, oo = off[i], off[j] if j >= 0 else 0, off[o]
        m = off[o + 1] - oo
        wi = want[i] and c != SIGN and c < GREATER
        wj = j >= 0 and want[j]
        bi = bix[k, 0]
        if (c < SUM and c != WHERE) or c == IDENTITY or (c == SUM and z[i]):  # elementwise, the common case
            if bi < 0:
                sx, sy = 0 if z[i] else 1, 0 if j < 0 or z[j] else 1
                X, GX = v[oi : oi + m * sx + 1 - sx], adj[oi : oi + m * sx + 1 - sx]
                Y, GY = v[oj : oj + m * sy + 1 - sy], adj[oj : oj + m * sy + 1 - sy]
                _map_reverse(c, X, Y, v[oo : oo + m], adj[oo : oo + m], GX, GY, sx, sy, wi, wj)
            else:
                bj = bix[k, 1]
                for e in range(m):
                    ei = oi + pool[bi + e]
                    ej = oj + pool[bj + e] if j >= 0 else 0
                    x = v[ei]
                    y = v[ej] if j >= 0 else 0.0
                    gx, gy = _partials(c, x, y, v[oo + e], adj[oo + e])
                    adj[oo + e] = 0.0
                    if wi:
                        adj[ei] += gx
                    if wj:
                        adj[ej] += gy
        elif c == MATMUL:
            _matmul_reverse(v, adj, oi, oj, oo, mkn[k, 0], mkn[k, 1], mkn[k, 2], wi, wj, mkn[k, 3], pend, hold)
        elif c == GATHER:
            for e in range(m):
                p = pool[bi + e]
                if p >= 0:
                    adj[p] += adj[oo + e]
                adj[oo + e] = 0.0
            for q in range(ins.shape[1]):  # every input (concatenate has several)
                s = ins[k, q]
                if s >= 0 and want[s]:
                    hit[s] = True
            continue
        elif (c == SUM and not z[i]) or c == SCATTER:
            if bi < 0:
                g = adj[oo]
                adj[oo] = 0.0
                if wi:
                    for e in range(off[i + 1] - oi):
                        adj[oi + e] += g
            else:
                if wi:
                    for e in range(off[i + 1] - oi):
                        adj[oi + e] += adj[oo + pool[bi + e]]
                for e in range(m):
                    adj[oo + e] = 0.0
        elif c == MAX or c == MIN:
            if wi:  # tied extremes share the cotangent equally
                count = np.zeros(m)
                for e in range(off[i + 1] - oi):
                    q = pool[bi + e]
                    if v[oi + e] == v[oo + q]:
                        count[q] += 1.0
                for e in range(off[i + 1] - oi):
                    q = pool[bi + e]
                    if v[oi + e] == v[oo + q]:
                        adj[oi + e] += adj[oo + q] / count[q]
            for e in range(m):
                adj[oo + e] = 0.0
        elif c == PROD:
            if wi:  # the product of the others, exact where elements are zero
                zeros = np.zeros(m)
                rest = np.ones_like(v[oo : oo + m])
                for e in range(off[i + 1] - oi):
                    q = pool[bi + e]
                    x = v[oi + e]
                    if x == 0:
                        zeros[q] += 1.0
                    else:
                        rest[q] *= x
                for e in range(off[i + 1] - oi):
                    q = pool[bi + e]
                    x = v[oi + e]
                    if zeros[q] == 0:
                        others = rest[q] / x
                    elif zeros[q] == 1 and x == 0:
                        others = rest[q]
                    else:
                        others = 0.0 * rest[q]
                    adj[oi + e] += adj[oo + q] * others
            for e in range(m):
                adj[oo + e] = 0.0
        elif c == NORM:
            if wi:
                for e in range(off[i + 1] - oi):
                    q = pool[bi + e]
                    r = v[oo + q]
                    adj[oi + e] += 0.0 if r == 0 else adj[oo + q] * v[oi + e] / r
            for e in range(m):
                adj[oo + e] = 0.0
        elif c == WHERE:
            h = ins[k, 2]
            zc, zx, zy = z[i], z[j], z[h]
            bj, bh = bix[k, 1], bix[k, 2]
            oh = off[h]
            wh = want[h]
            for e in range(m):
                g = adj[oo + e]
                adj[oo + e] = 0.0
                yes = v[_at(oi, zc, bi, pool, e)] != 0
                if wj:
                    adj[_at(oj, zx, bj, pool, e)] += g if yes else 0.0 * g
                if wh:
                    adj[_at(oh, zy, bh, pool, e)] += 0.0 * g if yes else g
            if wj:
                hit[j] = True
            if wh:
                hit[h] = True
            continue
        if wi:
            hit[i] = True
        if wj:
            hit[j] = True
    _flush(v, adj, pend, hold)


@njit(cache=True, error_model="numpy")
def scalar_forward(op, ins, out, off, v):  # pragma: no cover - compiled
    """`flat_forward` for a run whose every value is a scalar (W1): one element per slot."""
    for k in range(op.shape[0]):
        j = ins[k, 1]
        y = v[off[j]] if j >= 0 else 0.0
        v[off[out[k]]] = _value(op[k], v[off[ins[k, 0]]], y)


@njit(cache=True, error_model="numpy")
def scalar_reverse(op, ins, out, off, v, adj, want, hit):  # pragma: no cover - compiled
    """`flat_reverse` for a run whose every value is a scalar."""
    for k in range(op.shape[0] - 1, -1, -1):
        o = out[k]
        if not (want[o] and hit[o]):
            continue
        c = op[k]
        i = ins[k, 0]
        j = ins[k, 1]
        oi, oo = off[i], off[o]
        oj = off[j] if j >= 0 else 0
        gx, gy = _partials(c, v[oi], v[oj] if j >= 0 else 0.0, v[oo], adj[oo])
        adj[oo] = 0.0
        if want[i] and c != SIGN:
            adj[oi] += gx
            hit[i] = True
        if j >= 0 and want[j]:
            adj[oj] += gy
            hit[j] = True


@njit(cache=True, error_model="numpy")
def scalar_value_and_grad(op, ins, out, off, v, adj, want, hit, seed):  # pragma: no cover - compiled
    """A whole program of scalars (W1) in one call: `scalar_forward`, the adjoint of the output
    (`seed`, in the kernels' numbering) set to 1, then `scalar_reverse`."""
    scalar_forward(op, ins, out, off, v)
    if want[seed]:
        adj[off[seed]] = 1.0
        hit[seed] = True
        scalar_reverse(op, ins, out, off, v, adj, want, hit)


#: Largest value arena (slots × elements × 8 bytes) a flat kernel allocates; bigger programs replay in Python.
ARENA_LIMIT = 64 * 2**20
#: Largest array a transcendental elementwise op (`TRANSCENDENTAL`) runs on in a kernel. Its loop
#: calls libm once per element (no SIMD `exp`/`tanh` without Intel's SVML), so past a few hundred
#: elements NumPy's vectorised ufuncs in the Python replay win. Measured on W2's chain (201 ops,
#: fwd+bwd, 2-core EPYC): 100 elements 0.64 ms here vs 3.4 ms in Python; 400 elements 6.3 ms vs
#: 4.1 ms. Every other op runs in the kernel at any size.
MAX_ELEMENTS = 128
#: Largest array another elementwise op (add, mul, where, maximum, a comparison ...) runs on in a
#: kernel, and largest input or output of a reduction along axes (a sum: `MAX_REDUCE`), a shape op
#: or an indexing (through their index maps). Past these NumPy's loops win; measured fwd+bwd (2-core
#: EPYC, median of 7, kernel vs `TAPE_BACKEND=numpy`): a 41-entry chain of mul/add/maximum/div on n elements,
#: n = 512 0.32 ms here vs 0.44 ms in Python, n = 1024 0.88 vs 0.44 ms; max/min/prod along axes of
#: (64, 64) 0.21 vs 0.27 ms, of (100, 100) 0.44 vs 0.40 ms, of (300, 300) 9.0 vs 2.3 ms;
#: transpose/slices/concatenate of (64, 64) 0.16 vs 0.17 ms, of (300, 300) 3.6 vs 1.1 ms.
MAX_ARITH = 512
MAX_INDEXED = 8192
#: Largest input of a sum along axes a kernel does by choice (its index map is as long as the input).
MAX_REDUCE = 2**16
#: True: every entry with a kernel runs in it, at every size (tests use it to reach the big-array
#: paths); also set by the environment variable TAPE_FORCE_KERNELS=1.
FORCE_KERNELS = os.environ.get("TAPE_FORCE_KERNELS", "") not in ("", "0")


#: Fewest entries worth a kernel call (per run of covered entries): below this, the call's fixed
#: cost exceeds the Python replay's few µs per entry (measured on W5's 4-entry step).
MIN_ENTRIES = 16
#: Largest matmul (m·k·n multiply-adds) a kernel does with its own loops; bigger ones have a BLAS
#: kernel (numba's np.dot, which needs SciPy; without it they have none) that runs only when forced:
#: measured 20 % slower than NumPy's matmul on W4's float32 layers (its copies of the products).
MAX_MATMUL = 2**16

_F8 = np.dtype(np.float64)


def _matmul_dims(a, b):
    """(m, k, n) of a small 1-D/2-D matmul, None for anything else."""
    if len(a) not in (1, 2) or len(b) not in (1, 2):
        return None
    m, k = (1, a[0]) if len(a) == 1 else a
    k2, n = (b[0], 1) if len(b) == 1 else b
    return (m, k, n) if k == k2 else None


_F4 = np.dtype(np.float32)
_BOOL = np.dtype(np.bool_)


def arena_dtype(program):
    """The one float dtype a program's kernels run in: float32 where more of its entries compute
    float32 values than float64 ones (W4), else float64; entries of the other dtype run in Python."""
    dtypes = [program.dtypes[s] for s in program._out_list]
    return _F4 if dtypes.count(_F4) > dtypes.count(_F8) else _F8


def _exact_constant(c, dtype) -> bool:
    """A constant the arena holds as NumPy used it: a float (NumPy cast a Python float to a float32
    array's dtype, and a float64 one would have made the result float64), or a bool/integer the
    arena's dtype holds exactly."""
    a = np.asarray(c)
    if a.dtype.kind == "f":
        return True
    if a.dtype.kind not in "biu":
        return False
    limit = 2**53 if dtype == _F8 else 2**24
    return not a.size or int(np.abs(a.astype(np.int64)).max()) <= limit


def _code(program, k) -> int:
    """The code entry k runs under in a kernel (the op table's, or a kernel-only code), -1: none."""
    code = program._op_list[k]
    if code == PLAIN_CODE:
        params = program.params[k]
        if set(params) - {"fn", "axis"} or ("axis" in params and params["fn"] != "max_shift"):
            return -1
        return PLAIN_CODES.get(params["fn"], -1)
    if code in GATHER_OPS:
        return GATHER
    if code == INDEX_ADD:
        return SCATTER
    if code in SCALAR_OPS or code in REDUCE_OPS or code in (WHERE, MATMUL):
        return code
    return -1


def entry_kinds(program, dtype) -> list:
    """`entry_kind` of every entry, once: a long program's first call pays it per entry (W5: 40,001),
    and each constant is checked once, not once per entry reading it."""
    exact = {}
    return [entry_kind(program, k, dtype, exact) for k in range(len(program.opcode))]


def entry_kind(program, k, dtype=_F8, exact=None) -> int:
    """The kernel code entry `k` runs under in an arena of `dtype` (-1: it has no kernel there):
    elementwise ops (broadcasting through maps, a bool condition or comparison held as 0/1),
    reductions along axes, shape ops and indexing (a GATHER), index_add, 1-D/2-D matmuls.
    `exact`: a cache of `_exact_constant` by constant slot, for a walk over many entries."""
    code = _code(program, k)
    if code < 0:
        return -1
    ins, out = program._ins_lists[k], program._out_list[k]
    if not ins:
        return -1
    n_in, base = program.n_inputs, program._base
    shapes, dtypes = program.shapes, program.dtypes
    bool_out = GREATER <= code < MAX_SHIFT
    if dtypes[out] != (_BOOL if bool_out else dtype):
        return -1
    for q, s in enumerate(ins):
        if n_in <= s < base:
            ok = exact.get(s) if exact is not None else None
            if ok is None:
                ok = _exact_constant(program.consts[s - n_in], dtype)
                if exact is not None:
                    exact[s] = ok
            if not ok:
                return -1
        elif dtypes[s] != dtype and not (code == WHERE and q == 0 and dtypes[s] == _BOOL):
            return -1
    params = program.params[k]
    if code == MATMUL:
        mkn = _matmul_dims(shapes[ins[0]], shapes[ins[1]]) if len(ins) == 2 else None
        if mkn is None:
            return -1
        if math.prod(mkn) <= MAX_MATMUL:
            return MATMUL
        return BLAS if HAVE_BLAS else -1
    if code == GATHER:
        if program._op_list[k] == int(Op.PAD) and np.any(np.asarray(params["value"]) != 0):
            return -1
        return GATHER
    if code == SCATTER:
        return SCATTER if len(ins) == 1 else -1
    if code in REDUCE_OPS or code == MAX_SHIFT:
        if len(ins) != 1 or set(params) - {"axis", "keepdims", "shape", "fn"}:
            return -1
        return code
    if len(ins) > (3 if code == WHERE else 2):
        return -1
    in_shapes, out_shape = [shapes[s] for s in ins], shapes[out]
    if out_shape in in_shapes and all(sh == out_shape or sh == () for sh in in_shapes):
        return code  # no broadcasting but of scalars: the common case, without np.broadcast_shapes
    try:
        return code if np.broadcast_shapes(*[shapes[s] for s in ins]) == shapes[out] else -1
    except ValueError:
        return -1


def by_choice(program, k, code) -> bool:
    """Whether entry k, which has a kernel, runs in NumPy by choice, where NumPy was measured faster
    (unless `FORCE_KERNELS`): a transcendental elementwise op past `MAX_ELEMENTS`, another
    elementwise op past `MAX_ARITH`, a reduction (a sum: `MAX_REDUCE`), shape op or indexing past
    `MAX_INDEXED` elements, and a BLAS-sized matmul."""
    if FORCE_KERNELS:
        return False
    if code == BLAS:
        return True
    shapes = program.shapes
    size = max(math.prod(shapes[s]) for s in (program._out_list[k], *program._ins_lists[k]))
    if code in TRANSCENDENTAL:
        return size > MAX_ELEMENTS
    if code == SUM:
        return size > MAX_REDUCE
    if code in (GATHER, SCATTER, MAX_SHIFT) or code in REDUCE_OPS:
        return size > MAX_INDEXED
    if code == MATMUL:
        return False  # at most MAX_MATMUL multiply-adds
    return size > MAX_ARITH


def entry_covered(program, k, dtype=_F8) -> bool:
    """Whether entry `k` runs in a kernel: it has one (`entry_kind`) and NumPy is not chosen for it."""
    code = entry_kind(program, k, dtype)
    return code >= 0 and not by_choice(program, k, code)


def _sum_map(in_shape, out_shape, axis):
    """For each element of a sum's input (C order), the output element it adds into."""
    nd = len(in_shape)
    axes = range(nd) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    axes = {int(a) % nd for a in axes}
    kept = tuple(1 if d in axes else n for d, n in enumerate(in_shape))
    if math.prod(kept) != math.prod(out_shape):
        raise AssertionError(f"sum over {axis} of {in_shape} gives {out_shape}")
    return np.broadcast_to(np.arange(math.prod(kept)).reshape(kept), in_shape).ravel()


def _scatter_map(shape, idx):
    """For each element of index_add's input (C order), the output element of `shape` it adds into."""
    return np.arange(math.prod(shape)).reshape(shape)[idx].ravel()


def _gather_map(program, k, start, params):
    """For each element of a shape op's (or an indexing's) output, the arena position it reads
    (-1: padding): the op's own forward run on its inputs' arena positions (`start`: where each
    slot begins, by program slot, as `_arena_layout` places them)."""
    bases = []
    for s in program._ins_lists[k]:
        shape = program.shapes[s]
        bases.append(np.arange(start[s], start[s] + math.prod(shape), dtype=np.int64).reshape(shape))
    code = program._op_list[k]
    if code == int(Op.PAD):
        got = np.pad(bases[0], params["pad_width"], constant_values=-1)
    elif code in (int(Op.ASTYPE), PLAIN_CODE):  # a same-dtype cast, stop_gradient
        got = bases[0]
    else:
        got = op_of(code).forward(*bases, **params)
    got = np.asarray(got, dtype=np.int64).ravel()
    want = math.prod(program.shapes[program._out_list[k]])
    if got.size != want:
        raise ValueError(
            f"compiled program: {program._op_name(k)} gives {got.size} elements for this call's inputs, "
            f"{want} when it was recorded (an index passed in as an argument changed its count)"
        )
    return got


def _broadcast_map(in_shape, out_shape):
    """For each element of a broadcast result (C order), the operand element it reads."""
    return np.broadcast_to(np.arange(math.prod(in_shape)).reshape(in_shape), out_shape).ravel()


# What `_partials` reads to make the cotangent of x and of y (bits: 1 x, 2 y, 4 the output r); an
# opcode missing here reads all three. tests/test_compiled_kernels.py checks it against `_partials`.
# The other kernels' reverses (`where`, reductions along axes, gathers, scatters) are in `_reverse_reads`.
_X, _Y, _R = 1, 2, 4
_ALL = (_X | _Y | _R, _X | _Y | _R)
_REVERSE_READS = {
    ADD: (0, 0), SUB: (0, 0), MUL: (_Y, _X), DIV: (_Y, _Y | _R), POW: (_X | _Y, _X | _Y | _R),
    MAXIMUM: (_X | _Y, _X | _Y), MINIMUM: (_X | _Y, _X | _Y), ARCTAN2: (_X | _Y, _X | _Y),
    NEG: (0, 0), EXP: (_R, 0), LOG: (_X, 0), LOG1P: (_X, 0), EXPM1: (_R, 0), SQRT: (_R, 0),
    ABS: (_X, 0), SIGN: (0, 0), SIN: (_X, 0), COS: (_X, 0), TAN: (_R, 0), ARCSIN: (_X, 0),
    ARCCOS: (_X, 0), ARCTAN: (_X, 0), SINH: (_X, 0), COSH: (_X, 0), TANH: (_R, 0),
    IDENTITY: (0, 0), SUM: (0, 0),
}  # fmt: skip


def _reverse_reads(code, ins, out, n_in, base, shapes) -> tuple:
    """The slots whose values the kernels' reverse of a covered entry may read (any input that is not
    a constant, slots n_in to base, may want a cotangent)."""
    if code == MATMUL:  # dA = G @ B.T reads B, dB = A.T @ G reads A
        a, b = ins
        return ((b,) if not n_in <= a < base else ()) + ((a,) if not n_in <= b < base else ())
    if code == SUM and shapes[ins[0]] != ():  # a sum of an array: only its cotangent
        return ()
    if code in GATHER_OPS or code in (INDEX_ADD, PLAIN_CODE):
        return ()  # a gather/scatter moves cotangents through its map; a result without history takes none
    if all(n_in <= s < base for s in ins):
        return ()  # constants only: no cotangent is made
    if code == WHERE:  # which operand the cotangent goes to: the condition only
        return (ins[0],)
    if code in (MAX, MIN, NORM):  # along axes: the ties (the norm's quotient) read input and result
        return (ins[0], out)
    if code == PROD:  # the product of the others
        return (ins[0],)
    reads = _REVERSE_READS.get(code, _ALL)
    bits = 0
    for q, s in enumerate(ins):
        if not n_in <= s < base:
            bits |= reads[q]
    if not bits:
        return ()
    got = (ins[0],) if bits & _X else ()
    if bits & _Y and len(ins) > 1:
        got += (ins[1],)
    return got + (out,) if bits & _R else got


def _arena_layout(program, covered, in_arena, sizes):
    """(start, end, length) of the arena: where each slot lives (start = end for a slot outside it).

    Slots share a place when their values' lives do not overlap, as `assign_buffers` gives them out:
    a value the kernels' reverse does not read (`_reverse_reads`) lives from the entry that computes it
    to its last reader in the forward pass. Kept whole: inputs, constants, outputs, guarded values,
    every value a Python entry reads or writes (their saved tuples view the arena), and what the
    reverse reads. Adjoints live at the same places: a slot's cotangent lives, in the reverse pass,
    between the same entries as its value in the forward pass, so two slots that share a place never
    hold a cotangent at once.
    """
    base, n_in, shapes = program._base, program.n_inputs, program.shapes
    kept = set(range(base)) | {int(s) for s in program.outputs} | {int(s) for s, _ in program.guards}
    order = []
    arena = in_arena.tolist()
    for code, ins, out, cov in zip(program._op_list, program._ins_lists, program._out_list, covered.tolist()):
        if cov:
            kept.update(_reverse_reads(code, ins, out, n_in, base, shapes))
            order.append((out, ins))  # a covered entry's inputs are all in the arena
        else:
            kept.update(s for s in (*ins, out) if arena[s])
    written = {w for w, _ in order}
    first = [(s, ()) for s in range(len(sizes)) if arena[s] and s not in written]
    buf, count, _ = assign_buffers(first + order, sizes, kept)
    length = np.zeros(count + 1, np.int64)
    for s, b in buf.items():
        length[b + 1] = sizes[s]
    place = np.cumsum(length)
    start = np.zeros(len(sizes), np.int64)
    for s, b in buf.items():
        start[s] = place[b]
    return start, start + np.asarray(sizes, np.int64), int(place[-1])


def kernel_runs(program, kinds=None) -> list:
    """[(first, end)] of the maximal runs of covered entries worth a kernel call each; a BLAS-sized
    matmul is a run of its own (its own njit call, so that flat_forward/flat_reverse, and their
    cold compile, do not carry numba's BLAS glue). `kinds`: `entry_kinds` of the program."""
    runs, start = [], None
    n = len(program.opcode)
    if kinds is None:
        kinds = entry_kinds(program, arena_dtype(program))
    for k in range(n + 1):
        code = kinds[k] if k < n else -1
        covered = code >= 0 and not by_choice(program, k, code)
        if covered and code != BLAS:
            if start is None:
                start = k
            continue
        if start is not None and k - start >= MIN_ENTRIES:
            runs.append((start, k))
        start = None
        if covered:
            runs.append((k, k + 1))
    return runs


class _Identity(dict):
    def __missing__(self, key):
        return key


_SLOTS = _Identity()  # slot -> itself: the kernel's Python entries address slots, not buffers


class _Saved:
    """What a kernel forward keeps for the reverse: the arena, the saved tuples of the entries
    that replayed in Python (which hold the values their rules read), and the index maps. When the
    caller drops it, the arena goes back to `spare` (None: it may not, something else may still view
    it)."""

    __slots__ = ("v", "saved", "pool", "spare")

    def __init__(self, v, saved, pool, spare):
        self.v, self.saved, self.pool, self.spare = v, saved, pool, spare

    def __del__(self):
        if self.spare is not None and not self.spare:
            self.spare.append(self.v)


class FlatKernel:
    """A float64 or float32 program run by `flat_forward` and `flat_reverse` over one arena (each slot at its
    offset), one call per run of covered entries; the entries between runs replay through the op
    table's rules, as `replay.forward`/`replay.reverse` do (`kind`: "scalar" when one run covers a
    program of scalars, "arrays" when one run covers it all, "mixed" otherwise)."""

    __slots__ = ("op", "ins", "out", "off", "z", "mkn", "shapes", "template", "guards", "outputs", "vbuf")
    __slots__ += ("n_buffers", "kind", "runs", "steps", "arena_in", "guards_at", "n_inputs", "fallback")
    __slots__ += ("in_arena", "pieces", "_consts", "_plan_steps", "_slots", "_program", "bix", "pool")
    __slots__ += ("swept", "spare", "spare_v", "start", "end", "n_arena", "kout", "zs")
    __slots__ += ("dynamic", "dtypes", "arena")

    @staticmethod
    def make(program, plan):
        """The kernel of `program`, or None where no run is worth one."""
        n_in = program.n_inputs
        if len(program.opcode) == 0 or any(program.shapes[k] is None for k in range(n_in)):
            return None
        kinds = entry_kinds(program, arena_dtype(program))
        runs = kernel_runs(program, kinds)
        if not runs:
            return None
        k = FlatKernel(program, plan, runs, kinds)
        return k if k.template.nbytes <= ARENA_LIMIT else None

    def __init__(self, program, plan, runs, kinds):
        n = len(program.opcode)
        self.runs = runs
        self.shapes = program.shapes
        self.n_inputs = program.n_inputs
        covered = np.zeros(n, np.bool_)
        for a, b in runs:
            covered[a:b] = True
        # arena slots: those a covered entry reads or writes; every other slot has size 0 there
        in_arena = np.zeros(len(program.shapes), np.bool_)
        for k in np.flatnonzero(covered).tolist():
            in_arena[program._out_list[k]] = True
            in_arena[program._ins_lists[k]] = True
        self.in_arena = in_arena
        self.spare = []  # an adjoint arena, zeroed, kept from the last reverse pass
        self.spare_v = []  # a value arena a pass is done with: its constants are as in `template`
        sizes = [math.prod(sh) if a else 0 for sh, a in zip(program.shapes, in_arena.tolist())]
        self.start, self.end, self.n_arena = _arena_layout(program, covered, in_arena, sizes)
        # The kernels see slot s as slot 2s, and 2s + 1 as where it ends: they read a slot's size as
        # off[s + 1] - off[s], and slots that share a place in the arena are not laid out in order.
        n_slots = len(program.shapes)
        self.off = np.empty(2 * n_slots + 1, np.int64)
        self.off[0:-1:2], self.off[1:-1:2], self.off[-1] = self.start, self.end, self.n_arena
        one = bool(covered.all())  # every entry in a kernel (a BLAS matmul is a run of its own)
        self.kind = ("arrays" if any(sh != () for sh in program.shapes) else "scalar") if one else "mixed"
        dtype = arena_dtype(program)
        self.arena = dtype
        self.dtypes = program.dtypes
        self.op = program.opcode.astype(np.int32)
        for k in np.flatnonzero(covered).tolist():
            self.op[k] = kinds[k]  # the kernel's code (a GATHER for every shape op ...)
        width = max([2] + [len(program._ins_lists[k]) for k in np.flatnonzero(covered).tolist()])
        ins = np.full((n, width), -1, np.int32)
        for k in np.flatnonzero(covered).tolist():
            ins[k, : len(program._ins_lists[k])] = program._ins_lists[k]
        self.ins = np.where(ins >= 0, 2 * ins, -1).astype(np.int32)  # the kernels' slot numbers
        # slots whose adjoint a kernel run sets back to zero once it has used it (the outputs of its
        # entries; results without history, comparisons and max_shift, take no cotangent there): after
        # a reverse pass, the adjoint arena is zero but for the other slots it reached
        self.swept = np.zeros(len(program.shapes), np.bool_)
        self.swept[[program._out_list[k] for k in np.flatnonzero(covered).tolist() if self.op[k] < GREATER]] = True
        self.out = program.output.astype(np.int32)
        self.kout = 2 * self.out
        self.zs = np.array([sh == () for sh in program.shapes], np.bool_)
        self.z = np.zeros(2 * n_slots, np.bool_)
        self.z[::2] = self.zs
        # (m, k, n) of each matmul, and whether its reverse may hold back the gradient of a weight
        # (an operand computed before the entry's run: nothing in the run reads that gradient)
        self.mkn = np.zeros((n, 4), np.int64)
        run_of = np.full(n, -1, np.int64)
        for r, (a, b) in enumerate(runs):
            run_of[a:b] = r
        base = program._base
        for k, code in enumerate(program._op_list):
            if code == MATMUL and covered[k] and self.op[k] in (MATMUL, BLAS):
                a, b = program._ins_lists[k]
                m, kk, nn = _matmul_dims(program.shapes[a], program.shapes[b])
                start = runs[run_of[k]][0]
                before = [s < base or s - base < start for s in (a, b)]
                defer = 1 if nn == 1 and m > 1 and before[0] else (2 if m == 1 and nn > 1 and before[1] else 0)
                defer = defer if self.op[k] == MATMUL else 0  # a BLAS matmul adds its own
                self.mkn[k] = (m, kk, nn, defer)
        self.bix = np.full((n, width), -1, np.int64)
        maps, used = [], 0
        self.dynamic = []  # (pool start, entry, map maker) of the maps that depend on an input's values
        for k in np.flatnonzero(covered).tolist():
            code, out_slot, ins_k = int(self.op[k]), program._out_list[k], program._ins_lists[k]
            out_shape, params = program.shapes[out_slot], program.params[k]
            in_shape = program.shapes[ins_k[0]]
            make = None
            if code == SUM:
                if out_shape == () or in_shape == ():
                    continue
                got = [_sum_map(in_shape, out_shape, params.get("axis"))]
            elif code in REDUCE_OPS or code == MAX_SHIFT:
                got = [_sum_map(in_shape, out_shape, params.get("axis"))]
            elif code == SCATTER:
                make = lambda p: _scatter_map(p["shape"], p["idx"])  # noqa: E731
            elif code == GATHER:
                make = lambda p, k=k: _gather_map(program, k, self.start, p)  # noqa: E731
            elif code in (MATMUL, BLAS):
                continue
            elif any(program.shapes[s] not in ((), out_shape) for s in ins_k):
                got = [_broadcast_map(program.shapes[s], out_shape) for s in ins_k]
            else:
                continue
            if make is not None:
                if _holds_input_ref(params):
                    size = math.prod(in_shape) if code == SCATTER else math.prod(out_shape)
                    got = [np.zeros(size, np.int64)]
                    self.dynamic.append((used, k, make))
                else:
                    got = [make(params)]
            for q, mp in enumerate(got):
                self.bix[k, q] = used
                maps.append(mp)
                used += len(mp)
        self.pool = np.concatenate(maps).astype(np.int64) if maps else np.zeros(1, np.int64)
        self.template = np.zeros(max(self.n_arena, 1), dtype)
        for k, c in enumerate(program.consts):
            s = program.n_inputs + k
            if in_arena[s]:
                self.template[self.start[s] : self.end[s]] = np.ravel(c)
        self.arena_in = [k for k in range(program.n_inputs) if in_arena[k]]
        self.guards = [(int(s), v) for s, v in program.guards]
        self.guards_at = {}
        for s, v in self.guards:
            self.guards_at.setdefault(s, []).append(v)
        self.outputs = [int(s) for s in program.outputs]
        self.vbuf, self.n_buffers = plan.vbuf, plan.n_buffers
        # the Python entries between runs: (first, end) of each gap
        gaps, k = [], 0
        for a, b in runs:
            if a > k:
                gaps.append((k, a))
            k = b
        if k < n:
            gaps.append((k, n))
        self.steps = gaps
        self.fallback = [k for k in range(n) if not covered[k]]
        # a run is (first, end, 1 kernel / 0 Python, 1 all its values scalars)
        # kind 1: a flat (or scalar) kernel call; 2: one BLAS matmul; 0: entries replayed in Python
        kinds = [2 if self.op[a] == BLAS else 1 for a, _ in runs]
        self.pieces = sorted(
            [(a, b, kd, self._all_scalar(program, a, b)) for (a, b), kd in zip(runs, kinds)]
            + [(a, b, 0, 0) for a, b in gaps]
        )
        self._consts = list(program.consts)
        self._slots = [tuple(x) for x in program._ins_lists]
        self._plan_steps = {}  # the Python entries' steps, by slot rather than buffer
        for k in self.fallback:
            fwd, code, _, _, params, has_ref, _, saver = program._step(k, _SLOTS)
            self._plan_steps[k] = (fwd, code, self._slots[k], program._out_list[k], params, has_ref, saver)
        self._program = program

    def _all_scalar(self, program, a, b) -> int:
        z = self.zs
        return int(
            all(
                program._op_list[k] in SCALAR_OPS
                and z[program._out_list[k]]
                and all(z[s] for s in program._ins_lists[k])
                for k in range(a, b)
            )
        )

    def _view(self, v, s):
        if self.zs[s]:
            got = v[self.start[s] : self.start[s] + 1].reshape(())
        else:
            got = v[self.start[s] : self.end[s]].reshape(self.shapes[s])
        return got if self.dtypes[s] == self.arena else got.astype(self.dtypes[s])  # a bool held as 0/1

    def _get(self, v, py, s):
        got = py.get(s)
        return got if got is not None else self._view(v, s)

    def _check_guards(self, v, py, slots):
        for s in slots:
            for value in self.guards_at.get(s, ()):
                if not _same(value, self._get(v, py, s)):
                    raise GuardFailed(s)

    def forward(self, arrays, keep_saved, plan=None, program=None):
        # A used arena does as well as a copy of the template: no entry writes a constant's slot, and
        # every other slot is written (an input by the copy below, the rest by its entry) before it is
        # read. It saves the page faults of a fresh one (W5: 41 MB, ~3 ms a call).
        try:
            v = self.spare_v.pop()
        except IndexError:
            v = self.template.copy()
        off, start, end = self.off, self.start, self.end
        py = dict(enumerate(arrays))  # the values the Python side holds (a dict: most slots live in the arena)
        for k in self.arena_in:
            v[start[k] : end[k]] = np.ravel(arrays[k])
        n_in = self.n_inputs
        for k, c in enumerate(self._consts):
            py[n_in + k] = c
        if self.guards_at:
            self._check_guards(v, py, range(n_in + len(self._consts)))
        saved = {} if keep_saved else None  # entry -> its saved tuple, for the Python entries only
        steps = self._plan_steps
        pool = self.pool
        if self.dynamic:  # maps read from this call's index arrays: a copy per call (threads)
            pool = pool.copy()
            for at, k, make in self.dynamic:
                mp = make(_resolve(self._program.params[k], arrays))
                if at + mp.size > pool.size or self.bix[k, 0] != at:
                    raise AssertionError("index map outgrew its place")
                pool[at : at + mp.size] = mp
        for a, b, kernel, scalar in self.pieces:
            if scalar:
                scalar_forward(self.op[a:b], self.ins[a:b], self.kout[a:b], off, v)
                if self.guards_at:
                    self._check_guards(v, py, self.out[a:b].tolist())
                continue
            if kernel == 2:
                i, j, o = self.ins[a, 0], self.ins[a, 1], self.kout[a]
                _blas_forward(v, off[i], off[j], off[o], *self.mkn[a, :3])
                if self.guards_at:
                    self._check_guards(v, py, (int(self.out[a]),))
                continue
            if kernel:
                flat_forward(
                    self.op[a:b], self.ins[a:b], self.kout[a:b], off, self.z, self.mkn[a:b], self.bix[a:b], pool, v
                )
                if self.guards_at:
                    self._check_guards(v, py, self.out[a:b].tolist())
                continue
            for i in range(a, b):
                fwd, code, in_slots, out_slot, params, has_ref, saver = steps[i]
                args = [self._get(v, py, s) for s in in_slots]
                out, params = step_value(fwd, code, args, params, has_ref, arrays)
                py[out_slot] = out
                if self.in_arena[out_slot]:
                    v[start[out_slot] : end[out_slot]] = np.ravel(out)
                if keep_saved:
                    saved[i] = (saver(out, args, range(len(args))), params)
                if out_slot in self.guards_at:
                    self._check_guards(v, py, (out_slot,))
        vals = [None] * self.n_buffers
        for s in self.outputs:
            g = py.get(s)
            vals[self.vbuf[s]] = g if g is not None and not self.in_arena[s] else self._view(v, s).copy()
        # an output a Python entry computed may be a view of the arena (a reshape of a slot): then the
        # arena stays that output's, and no later pass may reuse it
        spare = self.spare_v if not any(self._views(v, py.get(s)) for s in self.outputs) else None
        if not keep_saved:
            if spare is not None and not spare:
                spare.append(v)
            return vals, None
        return vals, _Saved(v, saved, pool, spare)

    def scalar_value_and_grad(self, arrays, out_slot, rplan):
        """(value, input cotangents, None where none) of a program of scalars (`kind == "scalar"`,
        no guards) for the one scalar output `out_slot`: forward, seed and reverse in ONE kernel call,
        without `forward`/`reverse`'s bookkeeping (pieces, Python entries, kept arenas), which is
        most of W1's call otherwise."""
        v = self.template.copy()
        start = self.start
        for k in self.arena_in:
            v[start[k]] = arrays[k]
        want = rplan.want if rplan.want is not None else self._want(rplan)
        adj = np.zeros_like(v)
        hit = np.zeros(want.shape[0], np.bool_)
        scalar_value_and_grad(self.op, self.ins, self.kout, self.off, v, adj, want, hit, 2 * out_slot)
        got = [
            self._view(adj, s).copy() if b is not None and hit[2 * s] else None for s, b in enumerate(rplan.input_abufs)
        ]
        return self._view(v, out_slot).copy(), got

    def _want(self, rplan):
        """`rplan`'s wanted slots as a mask in the kernels' numbering (slot s is 2s)."""
        want = np.zeros(2 * len(self.zs), np.bool_)
        for s in rplan.abuf:
            want[2 * s] = True
        rplan.want = want  # a benign race: two threads make the same mask
        return want

    @staticmethod
    def _views(v, a) -> bool:
        return type(a) is np.ndarray and np.may_share_memory(a, v)

    def reverse(self, rplan, saved, seeds):
        want = rplan.want  # in the kernels' numbering (slot s is 2s), as `hit`; `ws`, `hs`: by slot
        n_slots = len(self.zs)
        if want is None:
            want = self._want(rplan)
        ws = want[::2]
        v, psaved = saved.v, saved.saved
        try:  # a fresh arena would cost a page fault per 4 KiB on first touch (W5: 41 MB, ~6 ms a call)
            adj = self.spare.pop()
        except IndexError:
            adj = np.zeros_like(v)
        hit = np.zeros(2 * n_slots, np.bool_)
        hs = hit[::2]
        pa = {}  # cotangents of slots outside the arena
        off, start, end = self.off, self.start, self.end
        in_arena = self.in_arena

        def add(s, ct):
            if in_arena[s]:
                adj[start[s] : end[s]] += np.ravel(ct)
            else:
                prev = pa.get(s)
                pa[s] = ct if prev is None else prev + ct
            hs[s] = True

        for s, g in seeds.items():
            if g is not None and ws[s]:
                add(s, g)
        rsteps = rplan.kernel_steps
        if rsteps is None:  # the reverse steps of the Python entries only
            rsteps = {k: self._program._rstep(k, rplan.abuf) for k in self.fallback}
            rplan.kernel_steps = rsteps  # a benign race: two threads make equal dicts
        for a, b, kernel, scalar in reversed(self.pieces):
            if scalar:
                scalar_reverse(self.op[a:b], self.ins[a:b], self.kout[a:b], off, v, adj, want, hit)
                continue
            if kernel == 2:
                i, j, o = self.ins[a, 0], self.ins[a, 1], self.kout[a]  # the kernels' numbering
                if want[o] and hit[o]:
                    _blas_reverse(v, adj, off[i], off[j], off[o], *self.mkn[a, :3], want[i], want[j])
                    hit[i] |= want[i]
                    hit[j] |= want[j]
                continue
            if kernel:
                flat_reverse(
                    self.op[a:b],
                    self.ins[a:b],
                    self.kout[a:b],
                    off,
                    self.z,
                    self.mkn[a:b],
                    self.bix[a:b],
                    saved.pool,
                    v,
                    adj,
                    want,
                    hit,
                )
                continue
            for i in range(b - 1, a - 1, -1):
                ob, d, rins, kins = rsteps[i]
                o = int(self.out[i])
                if ob is None or not hs[o]:
                    continue
                g = self._view(adj, o).copy() if in_arena[o] else pa.pop(o, None)
                sv, params = psaved[i]
                slots = self._slots[i]
                for j, ct in step_cotangents(d, rins, kins, g, sv or (None,) * (1 + len(rins)), params):
                    add(slots[j], ct)
        out = []
        for s, b in enumerate(rplan.input_abufs):
            if b is None or not hs[s]:
                out.append(None)
            elif in_arena[s]:
                out.append(self._view(adj, s).copy())
            else:
                ct = pa.get(s)  # a rule's result might view a value it read from the arena
                out.append(ct.copy() if self._views(v, ct) else ct)
        for s in np.flatnonzero(hs & ~self.swept).tolist():
            adj[start[s] : end[s]] = 0
        if not self.spare:  # only a pass that ran to the end leaves its arena, zeroed, for the next
            self.spare.append(adj)
        return out
