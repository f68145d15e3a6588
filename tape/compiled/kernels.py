"""Numba kernels that run a whole compiled program, forward and reverse (issue 10, first steps).

A program of float64 values whose entries are elementwise ops (on scalars, or on arrays of up to
`MAX_ELEMENTS` of one shape, a scalar operand broadcast), full sums and small 1-D/2-D matmuls runs
as two `@njit` loops over its columns: `flat_forward` fills one arena (each slot at its offset),
`flat_reverse` walks the entries down accumulating into an adjoint arena, each switching on the
opcode as ADOL-C's `zos_forward`/`fos_reverse` do. That covers W1 (6,000 scalar ops), W2 (201 ops
on 100 floats) and W5 (a 10,000-step recurrent loop, 40,001 entries). The kernels are compiled once
per process and cached on disk, not per program: the program is data. Their formulas are the op
table's rules on scalars; `tests/test_compiled_kernels.py` checks them against the Python replay
(`replay.py`, the spec) and against eager.

Any other program (big matmuls, which want BLAS; reductions along an axis; integers; draws; mixed
shapes) replays in Python; `Program.stats()["fallback_ops"]` lists what did. Per-run fallback
inside one program is the next step.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ops.registry import Op
from .replay import GuardFailed, _same

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
_REASSOC = {"reassoc", "contract"}


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def _matmul_forward(v, oi, oj, oo, m, kk, n):  # pragma: no cover - compiled
    A = v[oi : oi + m * kk]
    B = v[oj : oj + kk * n]
    C = v[oo : oo + m * n]
    if n == 1:
        for a in range(m):
            row = A[a * kk : (a + 1) * kk]
            acc = 0.0
            for q in range(kk):
                acc += row[q] * B[q]
            C[a] = acc
        return
    for a in range(m):
        c = C[a * n : (a + 1) * n]
        c[:] = 0.0
        for q in range(kk):
            x = A[a * kk + q]
            b = B[q * n : (q + 1) * n]
            for e in range(n):
                c[e] += x * b[e]


@njit(cache=True, error_model="numpy", fastmath=_REASSOC)
def _matmul_reverse(v, adj, oi, oj, oo, m, kk, n, wi, wj):  # pragma: no cover - compiled
    A = v[oi : oi + m * kk]
    B = v[oj : oj + kk * n]
    G = adj[oo : oo + m * n]
    GA = adj[oi : oi + m * kk]
    GB = adj[oj : oj + kk * n]
    for a in range(m):
        ga = GA[a * kk : (a + 1) * kk]
        ar = A[a * kk : (a + 1) * kk]
        for b in range(n):
            g = G[a * n + b]
            if wi:
                if n == 1:
                    for q in range(kk):
                        ga[q] += g * B[q]
                else:
                    for q in range(kk):
                        ga[q] += g * B[q * n + b]
            if wj:
                if n == 1:
                    for q in range(kk):
                        GB[q] += ar[q] * g
                else:
                    for q in range(kk):
                        GB[q * n + b] += ar[q] * g
    G[:] = 0.0


@njit(cache=True, error_model="numpy")
def flat_forward(op, ins, out, off, z, mkn, v):  # pragma: no cover - compiled
    """Slot s lives in v[off[s]:off[s+1]] (z[s]: a scalar, element off[s] only). A matmul entry
    multiplies an (m, k) by a (k, n) block, its shapes in mkn[k] (a vector operand as m or n = 1)."""
    for k in range(op.shape[0]):
        c = op[k]
        i = ins[k, 0]
        j = ins[k, 1]
        o = out[k]
        oi, oj, oo = off[i], off[j] if j >= 0 else 0, off[o]
        if c == MATMUL:
            _matmul_forward(v, oi, oj, oo, mkn[k, 0], mkn[k, 1], mkn[k, 2])
            continue
        if c == SUM and not z[i]:
            acc = 0.0
            for e in range(off[i + 1] - oi):
                acc += v[oi + e]
            v[oo] = acc
            continue
        m = off[o + 1] - oo
        for e in range(m):
            x = v[oi if z[i] else oi + e]
            y = v[oj if z[j] else oj + e] if j >= 0 else 0.0
            v[oo + e] = _value(c, x, y)


@njit(cache=True, error_model="numpy")
def flat_reverse(op, ins, out, off, z, mkn, v, adj, want, hit):  # pragma: no cover - compiled
    """`want[s]`: slot s takes a cotangent (on a path from a wanted input); `hit[s]`: one reached it
    (an entry no cotangent reached is skipped, as the Python replay skips it). A scalar read by an
    elementwise entry gets the sum of its cotangents (broadcasting undone, as `sweep.fit` does)."""
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
        if c == MATMUL:
            _matmul_reverse(v, adj, oi, oj, oo, mkn[k, 0], mkn[k, 1], mkn[k, 2], wi, wj)
        elif c == SUM and not z[i]:
            g = adj[oo]
            adj[oo] = 0.0
            if wi:
                for e in range(off[i + 1] - oi):
                    adj[oi + e] += g
        else:
            m = off[o + 1] - oo
            for e in range(m):
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


#: Largest value arena (slots × elements × 8 bytes) a flat kernel allocates; bigger programs replay in Python.
ARENA_LIMIT = 64 * 2**20
#: Largest array a flat kernel takes. Its loop calls libm once per element (no SIMD `exp`/`tanh`
#: without Intel's SVML), so past a few hundred elements NumPy's vectorised ufuncs in the Python
#: replay win. Measured on W2's chain (201 ops, fwd+bwd, 2-core EPYC): 100 elements 0.64 ms here vs
#: 3.4 ms in Python; 400 elements 6.3 ms vs 4.1 ms.
MAX_ELEMENTS = 128


#: Fewest entries worth a kernel call: below this, the call's fixed cost (argument checks, arena
#: setup, about 40 µs) exceeds the Python replay's few µs per entry (measured on W5's 4-entry step).
MIN_ENTRIES = 16
#: Largest matmul (m·k·n multiply-adds) a kernel does with its own loops; bigger ones want BLAS.
MAX_MATMUL = 2**16


def _matmul_dims(a, b):
    """(m, k, n) of a small 1-D/2-D matmul, None for anything else."""
    if len(a) not in (1, 2) or len(b) not in (1, 2):
        return None
    m, k = (1, a[0]) if len(a) == 1 else a
    k2, n = (b[0], 1) if len(b) == 1 else b
    return (m, k, n) if k == k2 else None


class FlatKernel:
    """A program of float64 values whose entries are elementwise ops on one shape (a scalar
    operand broadcast), full sums, or small 1-D/2-D matmuls: run by `flat_forward` and
    `flat_reverse` over one arena, each slot at its offset (`kind` "scalar" when every slot is a
    scalar, else "arrays")."""

    __slots__ = ("op", "ins", "out", "off", "z", "mkn", "shapes", "template", "guards", "outputs", "vbuf")
    __slots__ += ("n_buffers", "kind")

    @staticmethod
    def covers(program) -> bool:
        f8 = np.dtype(np.float64)
        ops = set(program._op_list)
        if len(program.opcode) < MIN_ENTRIES or int(program.nin.max()) > 2 or not ops <= SCALAR_OPS | {MATMUL}:
            return False
        base = program.n_inputs + len(program.consts)
        # every value float64; a constant of another numeric dtype (`x * 2`) is exact as a float64
        if any(dt != f8 for dt in program.dtypes[: program.n_inputs] + program.dtypes[base:]):
            return False
        if any(dt.kind not in "biuf" for dt in program.dtypes[program.n_inputs : base]):
            return False
        for c in program.consts:
            a = np.asarray(c)
            if a.dtype.kind in "iu" and a.size and int(np.abs(a).max()) > 2**53:
                return False
        if sum(program._sizes) > ARENA_LIMIT:
            return False
        shapes = program.shapes
        for k, code in enumerate(program._op_list):
            out, ins = program._out_list[k], program._ins_lists[k]
            if code == MATMUL:
                mkn = _matmul_dims(shapes[ins[0]], shapes[ins[1]])
                if mkn is None or math.prod(mkn) > MAX_MATMUL:
                    return False
            elif code == SUM:
                if shapes[out] != ():  # a partial sum: not covered
                    return False
            elif math.prod(shapes[out]) > MAX_ELEMENTS or any(shapes[s] not in ((), shapes[out]) for s in ins):
                return False
        return True

    def __init__(self, program, plan):
        n = len(program.opcode)
        self.shapes = program.shapes
        sizes = [math.prod(sh) for sh in program.shapes]
        self.off = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=self.off[1:])
        self.kind = "arrays" if any(sh != () for sh in program.shapes) else "scalar"
        self.op = program.opcode.astype(np.int32)
        ins = np.full((n, 2), -1, np.int32)
        ins[:, : min(2, program.ins.shape[1])] = program.ins[:, :2]
        self.ins = ins
        self.out = program.output.astype(np.int32)
        self.z = np.array([sh == () for sh in program.shapes], np.bool_)
        self.mkn = np.zeros((n, 3), np.int64)
        for k, code in enumerate(program._op_list):
            if code == MATMUL:
                a, b = program._ins_lists[k]
                self.mkn[k] = _matmul_dims(program.shapes[a], program.shapes[b])
        self.template = np.zeros(int(self.off[-1]))
        for k, c in enumerate(program.consts):
            s = program.n_inputs + k
            self.template[self.off[s] : self.off[s + 1]] = np.ravel(c)
        self.guards = [(int(s), v) for s, v in program.guards]
        self.outputs = [int(s) for s in program.outputs]
        self.vbuf, self.n_buffers = plan.vbuf, plan.n_buffers

    def _value(self, v, s):
        if self.z[s]:
            return np.array(v[self.off[s]])
        return v[self.off[s] : self.off[s + 1]].reshape(self.shapes[s]).copy()

    def forward(self, arrays, keep_saved):
        v = self.template.copy()
        off = self.off
        for k, a in enumerate(arrays):
            v[off[k] : off[k + 1]] = np.ravel(a)
        flat_forward(self.op, self.ins, self.out, off, self.z, self.mkn, v)
        for s, value in self.guards:
            if not _same(value, self._value(v, s)):
                raise GuardFailed(s)
        vals = [None] * self.n_buffers
        for s in self.outputs:
            vals[self.vbuf[s]] = self._value(v, s)
        return vals, (v if keep_saved else None)

    def reverse(self, rplan, v, seeds):
        want = rplan.want
        n_slots = len(self.z)
        if want is None:
            want = rplan.want = np.zeros(n_slots, np.bool_)
            for s in rplan.abuf:
                want[s] = True
        adj = np.zeros_like(v)
        hit = np.zeros(n_slots, np.bool_)
        off = self.off
        for s, g in seeds.items():
            if g is not None and want[s]:
                adj[off[s] : off[s + 1]] += np.ravel(g)
                hit[s] = True
        flat_reverse(self.op, self.ins, self.out, off, self.z, self.mkn, v, adj, want, hit)
        return [self._value(adj, s) if b is not None and hit[s] else None for s, b in enumerate(rplan.input_abufs)]
