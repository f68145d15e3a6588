"""Numba kernels that run a whole compiled program, forward and reverse (issue 10).

A program of float64 (or float32) values whose entries are elementwise ops (on scalars, or on
arrays of up to `MAX_ELEMENTS`, broadcasting through precomputed index maps), sums (along any axes)
and small 1-D/2-D matmuls runs as two `@njit` loops over its columns (specialised by Numba per
arena dtype): `flat_forward` fills one arena (each slot at its offset), `flat_reverse` walks the
entries down accumulating into an adjoint arena, each switching on the opcode as ADOL-C's
`zos_forward`/`fos_reverse` do. That covers W1 (6,000 scalar ops), W2 (201 ops on 100 floats)
and W5 (a 10,000-step recurrent loop, 40,001 entries). The kernels are compiled once per process
and cached on disk, not per program: the program is data. Their formulas are the op table's rules
on scalars; `tests/test_compiled_kernels.py` checks them against the Python replay (`replay.py`,
the spec) and against eager.

A program the kernels cover only in part runs in *runs*: each maximal run of covered entries is
one kernel call over its slice of the columns, and every other entry (big matmuls, which want BLAS;
big arrays, where NumPy's vectorised loops win; other reductions; integers; draws; values of the
arena's other float dtype) replays through the op table's Python rules between them, reading and
writing the same arena. `Program.stats()["fallback_ops"]` lists those entries.

The arena holds a slot for the whole pass only where something needs it then (the reverse pass, a
Python entry, the caller); the other slots share places (`_arena_layout`: W5's 41 MB became 21 MB),
and each kernel keeps its last value and adjoint arenas for the next call.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ops.registry import Op
from ..sweep import fit
from .lower import assign_buffers
from .replay import GuardFailed, _same, step_value

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
SUM, IDENTITY, MATMUL = int(Op.SUM), int(Op.IDENTITY), int(Op.MATMUL)


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


@njit(cache=True, error_model="numpy")
def flat_forward(op, ins, out, off, z, mkn, bix, pool, v):  # pragma: no cover - compiled
    """Slot s lives in v[off[s]:off[s+1]] (z[s]: a scalar, element off[s] only). A matmul entry
    multiplies an (m, k) by a (k, n) block, its shapes in mkn[k] (a vector operand as m or n = 1).
    Index maps, precomputed per entry at `pool[bix[k, 0]:]` and `pool[bix[k, 1]:]` (-1: none): an
    elementwise entry that broadcasts reads operand element `map[e]` for output element e; a sum
    along axes adds input element e into output element `map[e]`."""
    for k in range(op.shape[0]):
        c = op[k]
        i = ins[k, 0]
        j = ins[k, 1]
        o = out[k]
        oi, oj, oo = off[i], off[j] if j >= 0 else 0, off[o]
        if c == MATMUL:
            _matmul_forward(v, oi, oj, oo, mkn[k, 0], mkn[k, 1], mkn[k, 2])
            continue
        bi = bix[k, 0]
        if c == SUM and not z[i]:
            if bi < 0:
                acc = 0.0
                for e in range(off[i + 1] - oi):
                    acc += v[oi + e]
                v[oo] = acc
            else:
                for e in range(off[o + 1] - oo):
                    v[oo + e] = 0.0
                for e in range(off[i + 1] - oi):
                    v[oo + pool[bi + e]] += v[oi + e]
            continue
        m = off[o + 1] - oo
        if bi >= 0:
            bj = bix[k, 1]
            for e in range(m):
                x = v[oi + pool[bi + e]]
                y = v[oj + pool[bj + e]] if j >= 0 else 0.0
                v[oo + e] = _value(c, x, y)
            continue
        for e in range(m):
            x = v[oi if z[i] else oi + e]
            y = v[oj if z[j] else oj + e] if j >= 0 else 0.0
            v[oo + e] = _value(c, x, y)


@njit(cache=True, error_model="numpy")
def flat_reverse(op, ins, out, off, z, mkn, bix, pool, v, adj, want, hit):  # pragma: no cover - compiled
    """`want[s]`: slot s takes a cotangent (on a path from a wanted input); `hit[s]`: one reached it
    (an entry no cotangent reached is skipped, as the Python replay skips it). An operand read by a
    broadcasting entry gets the sum of its cotangents (broadcasting undone, as `sweep.fit` does)."""
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
        wi = want[i] and c != SIGN
        wj = j >= 0 and want[j]
        bi = bix[k, 0]
        if c == MATMUL:
            _matmul_reverse(v, adj, oi, oj, oo, mkn[k, 0], mkn[k, 1], mkn[k, 2], wi, wj, mkn[k, 3], pend, hold)
        elif c == SUM and not z[i]:
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
                for e in range(off[o + 1] - oo):
                    adj[oo + e] = 0.0
        else:
            m = off[o + 1] - oo
            bj = bix[k, 1]
            for e in range(m):
                if bi >= 0:
                    ei = oi + pool[bi + e]
                    ej = oj + pool[bj + e] if j >= 0 else 0
                else:
                    ei = oi if z[i] else oi + e
                    ej = (oj if z[j] else oj + e) if j >= 0 else 0
                x = v[ei]
                y = v[ej] if j >= 0 else 0.0
                gx, gy = _partials(c, x, y, v[oo + e], adj[oo + e])
                adj[oo + e] = 0.0
                if wi:
                    adj[ei] += gx
                if wj:
                    adj[ej] += gy
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


#: Largest value arena (slots × elements × 8 bytes) a flat kernel allocates; bigger programs replay in Python.
ARENA_LIMIT = 64 * 2**20
#: Largest array a flat kernel takes. Its loop calls libm once per element (no SIMD `exp`/`tanh`
#: without Intel's SVML), so past a few hundred elements NumPy's vectorised ufuncs in the Python
#: replay win. Measured on W2's chain (201 ops, fwd+bwd, 2-core EPYC): 100 elements 0.64 ms here vs
#: 3.4 ms in Python; 400 elements 6.3 ms vs 4.1 ms.
MAX_ELEMENTS = 128


#: Fewest entries worth a kernel call (per run of covered entries): below this, the call's fixed
#: cost exceeds the Python replay's few µs per entry (measured on W5's 4-entry step).
MIN_ENTRIES = 16
#: Largest input of a sum along axes a kernel does (its index map is as long as the input).
MAX_REDUCE = 2**16
#: Largest matmul (m·k·n multiply-adds) a kernel does with its own loops; bigger ones want BLAS.
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


def entry_covered(program, k, dtype=_F8) -> bool:
    """Whether entry `k` has a kernel: an elementwise op on one shape (a scalar operand broadcast),
    a full sum, or a small 1-D/2-D matmul, all of whose values have the arena's `dtype`."""
    code = program._op_list[k]
    if code not in SCALAR_OPS and code != MATMUL:
        return False
    ins, out = program._ins_lists[k], program._out_list[k]
    if not 1 <= len(ins) <= 2 or program.dtypes[out] != dtype:
        return False
    n_in, base = program.n_inputs, program._base
    for s in ins:
        if n_in <= s < base:
            if not _exact_constant(program.consts[s - n_in], dtype):
                return False
        elif program.dtypes[s] != dtype:
            return False
    shapes = program.shapes
    if code == MATMUL:
        mkn = _matmul_dims(shapes[ins[0]], shapes[ins[1]]) if len(ins) == 2 else None
        return mkn is not None and math.prod(mkn) <= MAX_MATMUL
    if code == SUM:
        if shapes[out] == ():  # a full sum
            return True
        return set(program.params[k]) <= {"axis", "keepdims", "shape"} and math.prod(shapes[ins[0]]) <= MAX_REDUCE
    if math.prod(shapes[out]) > MAX_ELEMENTS:
        return False
    try:
        return np.broadcast_shapes(*[shapes[s] for s in ins]) == shapes[out]
    except ValueError:
        return False


def _sum_map(in_shape, out_shape, axis):
    """For each element of a sum's input (C order), the output element it adds into."""
    nd = len(in_shape)
    axes = range(nd) if axis is None else ((axis,) if isinstance(axis, int) else axis)
    axes = {int(a) % nd for a in axes}
    kept = tuple(1 if d in axes else n for d, n in enumerate(in_shape))
    if math.prod(kept) != math.prod(out_shape):
        raise AssertionError(f"sum over {axis} of {in_shape} gives {out_shape}")
    return np.broadcast_to(np.arange(math.prod(kept)).reshape(kept), in_shape).ravel()


def _broadcast_map(in_shape, out_shape):
    """For each element of a broadcast result (C order), the operand element it reads."""
    return np.broadcast_to(np.arange(math.prod(in_shape)).reshape(in_shape), out_shape).ravel()


# What `_partials` reads to make the cotangent of x and of y (bits: 1 x, 2 y, 4 the output r); an
# opcode missing here reads all three. tests/test_compiled_kernels.py checks it against `_partials`.
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


def kernel_runs(program) -> list:
    """[(first, end)] of the maximal runs of covered entries worth a kernel call each."""
    runs, start = [], None
    n = len(program.opcode)
    dtype = arena_dtype(program)
    for k in range(n + 1):
        if k < n and entry_covered(program, k, dtype):
            if start is None:
                start = k
        elif start is not None:
            if k - start >= MIN_ENTRIES:
                runs.append((start, k))
            start = None
    return runs


class _Identity(dict):
    def __missing__(self, key):
        return key


_SLOTS = _Identity()  # slot -> itself: the kernel's Python entries address slots, not buffers


class _Saved:
    """What a kernel forward keeps for the reverse: the arena, and the saved tuples of the entries
    that replayed in Python (which hold the values their rules read). When the caller drops it, the
    arena goes back to `spare` (None: it may not, something else may still view it)."""

    __slots__ = ("v", "saved", "spare")

    def __init__(self, v, saved, spare):
        self.v, self.saved, self.spare = v, saved, spare

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

    @staticmethod
    def make(program, plan):
        """The kernel of `program`, or None where no run is worth one."""
        n_in = program.n_inputs
        if len(program.opcode) == 0 or any(program.shapes[k] is None for k in range(n_in)):
            return None
        runs = kernel_runs(program)
        if not runs:
            return None
        k = FlatKernel(program, plan, runs)
        return k if k.template.nbytes <= ARENA_LIMIT else None

    def __init__(self, program, plan, runs):
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
        # slots whose adjoint a kernel run sets back to zero once it has used it (the outputs of its
        # entries): after a reverse pass, the adjoint arena is zero but for the other slots it reached
        self.swept = np.zeros(len(program.shapes), np.bool_)
        self.swept[[program._out_list[k] for k in np.flatnonzero(covered).tolist()]] = True
        self.spare = []  # an adjoint arena, zeroed, kept from the last reverse pass
        self.spare_v = []  # a value arena a pass is done with: its constants are as in `template`
        sizes = [math.prod(sh) if a else 0 for sh, a in zip(program.shapes, in_arena.tolist())]
        self.start, self.end, self.n_arena = _arena_layout(program, covered, in_arena, sizes)
        # The kernels see slot s as slot 2s, and 2s + 1 as where it ends: they read a slot's size as
        # off[s + 1] - off[s], and slots that share a place in the arena are not laid out in order.
        n_slots = len(program.shapes)
        self.off = np.empty(2 * n_slots + 1, np.int64)
        self.off[0:-1:2], self.off[1:-1:2], self.off[-1] = self.start, self.end, self.n_arena
        one = len(runs) == 1 and runs[0] == (0, n)
        self.kind = ("arrays" if any(sh != () for sh in program.shapes) else "scalar") if one else "mixed"
        self.op = program.opcode.astype(np.int32)
        ins = np.full((n, 2), -1, np.int32)
        ins[:, : min(2, program.ins.shape[1])] = program.ins[:, :2]
        self.ins = np.where(ins >= 0, 2 * ins, -1).astype(np.int32)  # the kernels' slot numbers
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
            if code == MATMUL and covered[k]:
                a, b = program._ins_lists[k]
                m, kk, nn = _matmul_dims(program.shapes[a], program.shapes[b])
                start = runs[run_of[k]][0]
                before = [s < base or s - base < start for s in (a, b)]
                defer = 1 if nn == 1 and m > 1 and before[0] else (2 if m == 1 and nn > 1 and before[1] else 0)
                self.mkn[k] = (m, kk, nn, defer)
        self.bix = np.full((n, 2), -1, np.int64)
        maps, used = [], 0
        for k in np.flatnonzero(covered).tolist():
            code, out_slot, ins_k = program._op_list[k], program._out_list[k], program._ins_lists[k]
            out_shape = program.shapes[out_slot]
            if code == SUM and out_shape != () and program.shapes[ins_k[0]] != ():
                got = [_sum_map(program.shapes[ins_k[0]], out_shape, program.params[k].get("axis"))]
            elif code in SCALAR_OPS and code != SUM and any(program.shapes[s] not in ((), out_shape) for s in ins_k):
                got = [_broadcast_map(program.shapes[s], out_shape) for s in ins_k]
            else:
                continue
            for q, mp in enumerate(got):
                self.bix[k, q] = used
                maps.append(mp)
                used += len(mp)
        self.pool = np.concatenate(maps).astype(np.int64) if maps else np.zeros(1, np.int64)
        self.template = np.zeros(max(self.n_arena, 1), arena_dtype(program))
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
        self.pieces = sorted(
            [(a, b, 1, self._all_scalar(program, a, b)) for a, b in runs] + [(a, b, 0, 0) for a, b in gaps]
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
                program._op_list[k] != MATMUL and z[program._out_list[k]] and all(z[s] for s in program._ins_lists[k])
                for k in range(a, b)
            )
        )

    def _view(self, v, s):
        if self.zs[s]:
            return v[self.start[s] : self.start[s] + 1].reshape(())
        return v[self.start[s] : self.end[s]].reshape(self.shapes[s])

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
        for a, b, kernel, scalar in self.pieces:
            if scalar:
                scalar_forward(self.op[a:b], self.ins[a:b], self.kout[a:b], off, v)
                if self.guards_at:
                    self._check_guards(v, py, self.out[a:b].tolist())
                continue
            if kernel:
                flat_forward(
                    self.op[a:b], self.ins[a:b], self.kout[a:b], off, self.z, self.mkn[a:b], self.bix[a:b], self.pool, v
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
        return vals, _Saved(v, saved, spare)

    @staticmethod
    def _views(v, a) -> bool:
        return type(a) is np.ndarray and np.may_share_memory(a, v)

    def reverse(self, rplan, saved, seeds):
        want = rplan.want  # in the kernels' numbering (slot s is 2s), as `hit`; `ws`, `hs`: by slot
        n_slots = len(self.zs)
        if want is None:
            want = np.zeros(2 * n_slots, np.bool_)
            for s in rplan.abuf:
                want[2 * s] = True
            rplan.want = want  # a benign race: two threads make the same mask
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
            if kernel:
                flat_reverse(
                    self.op[a:b],
                    self.ins[a:b],
                    self.kout[a:b],
                    off,
                    self.z,
                    self.mkn[a:b],
                    self.bix[a:b],
                    self.pool,
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
                sv = sv or (None,) * (1 + len(rins))
                cts = None
                if d.kernel_vjp is not None and type(g) is np.ndarray:
                    cts = d.kernel_vjp(g, sv, kins)
                if cts is None and d.vjp_all is not None:
                    cts = d.vjp_all(g, *sv, **params)
                slots = self._slots[i]
                for j, (bj, meta) in enumerate(rins):
                    if bj is None:
                        continue
                    if cts is None:
                        rule = d.vjp[j]
                        if rule is None:
                            continue
                        ct = rule(g, *sv, **params)
                    else:
                        ct = cts[j]
                        if ct is None:
                            continue
                    if ct.shape != meta[0] or ct.dtype != meta[1]:
                        ct = fit(ct, meta)
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
