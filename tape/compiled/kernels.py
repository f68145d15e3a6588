"""Numba kernels that run a whole compiled program, forward and reverse (issue 10, first step).

A program whose slots are float64 scalars, or float64 arrays of one shape, and whose entries are
elementwise ops (a scalar operand broadcast) or full sums, runs as two `@njit` loops over its
columns: `flat_forward` fills one arena row per slot, `flat_reverse` walks the entries down
accumulating into an adjoint arena, each switching on the opcode as ADOL-C's
`zos_forward`/`fos_reverse` do (W1's 6,000-term scalar chain; W2's 201 ops on 100 floats). The
kernels are compiled once per process and cached on disk, not per program: the program is data.
Their formulas are the op table's rules on scalars; `tests/test_compiled_kernels.py` checks them
against the Python replay (`replay.py`, the spec) and against eager.

Any other program (matmuls, reductions along an axis, integers, draws, mixed shapes) replays in
Python; `Program.stats()["fallback_ops"]` lists what did. Per-run fallback inside one program and
array kernels over a liveness-planned arena are the next steps.
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
SUM, IDENTITY = int(Op.SUM), int(Op.IDENTITY)


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


@njit(cache=True, error_model="numpy")
def flat_forward(op, ins, out, z, v):  # pragma: no cover - compiled
    """Row s of `v` holds slot s: all its elements, or (z[s]: a scalar) its element 0 only."""
    n = v.shape[1]
    for k in range(op.shape[0]):
        c = op[k]
        i = ins[k, 0]
        j = ins[k, 1]
        o = out[k]
        if c == SUM and not z[i]:
            acc = 0.0
            for e in range(n):
                acc += v[i, e]
            v[o, 0] = acc
            continue
        m = 1 if z[o] else n
        for e in range(m):
            x = v[i, 0 if z[i] else e]
            y = v[j, 0 if z[j] else e] if j >= 0 else 0.0
            v[o, e] = _value(c, x, y)


@njit(cache=True, error_model="numpy")
def flat_reverse(op, ins, out, z, v, adj, want, hit):  # pragma: no cover - compiled
    """`want[s]`: slot s takes a cotangent (on a path from a wanted input); `hit[s]`: one reached it
    (an entry no cotangent reached is skipped, as the Python replay skips it). A scalar read by an
    elementwise entry gets the sum of its cotangents (broadcasting undone, as `sweep.fit` does)."""
    n = v.shape[1]
    for k in range(op.shape[0] - 1, -1, -1):
        o = out[k]
        if not (want[o] and hit[o]):
            continue
        c = op[k]
        i = ins[k, 0]
        j = ins[k, 1]
        wi = want[i] and c != SIGN
        wj = j >= 0 and want[j]
        if c == SUM and not z[i]:
            g = adj[o, 0]
            if wi:
                for e in range(n):
                    adj[i, e] += g
                hit[i] = True
            adj[o, 0] = 0.0
            continue
        m = 1 if z[o] else n
        for e in range(m):
            ei = 0 if z[i] else e
            ej = 0 if (j < 0 or z[j]) else e
            x = v[i, ei]
            y = v[j, ej] if j >= 0 else 0.0
            gx, gy = _partials(c, x, y, v[o, e], adj[o, e])
            adj[o, e] = 0.0
            if wi:
                adj[i, ei] += gx
            if wj:
                adj[j, ej] += gy
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


class FlatKernel:
    """A program whose slots are float64 scalars or float64 arrays of one shape, every entry an
    elementwise op (a scalar operand broadcast) or a full `sum`: run by `flat_forward` and
    `flat_reverse` over one arena row per slot (`kind` "scalar" when every slot is a scalar)."""

    __slots__ = ("op", "ins", "out", "z", "shape", "template", "guards", "outputs", "vbuf", "n_buffers", "kind")

    @staticmethod
    def covers(program) -> bool:
        f8 = np.dtype(np.float64)
        if not len(program.opcode) or int(program.nin.max()) > 2 or not set(program._op_list) <= SCALAR_OPS:
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
        shapes = {sh for sh in program.shapes if sh != ()}
        if len(shapes) > 1:
            return False
        size = math.prod(next(iter(shapes))) if shapes else 1
        if size > MAX_ELEMENTS or program.n_slots * size * 8 > ARENA_LIMIT:
            return False
        for k, code in enumerate(program._op_list):
            out = program._out_list[k]
            if code == SUM and program.shapes[out] != ():  # a partial sum: not elementwise
                return False
        return True

    def __init__(self, program, plan):
        shapes = {sh for sh in program.shapes if sh != ()}
        self.shape = next(iter(shapes)) if shapes else ()
        self.kind = "elementwise" if shapes else "scalar"
        size = math.prod(self.shape)
        self.op = program.opcode.astype(np.int32)
        ins = np.full((len(program.opcode), 2), -1, np.int32)
        ins[:, : min(2, program.ins.shape[1])] = program.ins[:, :2]
        self.ins = ins
        self.out = program.output.astype(np.int32)
        self.z = np.array([sh == () for sh in program.shapes], np.bool_)
        self.template = np.zeros((program.n_slots, size))
        for k, c in enumerate(program.consts):
            self.template[program.n_inputs + k] = np.ravel(c) if np.ndim(c) else float(c)
        self.guards = [(int(s), v) for s, v in program.guards]
        self.outputs = [int(s) for s in program.outputs]
        self.vbuf, self.n_buffers = plan.vbuf, plan.n_buffers

    def _value(self, v, s):
        return np.array(v[s, 0]) if self.z[s] else v[s].reshape(self.shape).copy()

    def forward(self, arrays, keep_saved):
        v = self.template.copy()
        for k, a in enumerate(arrays):
            if self.z[k]:
                v[k, 0] = a
            else:
                v[k] = np.ravel(a)
        flat_forward(self.op, self.ins, self.out, self.z, v)
        for s, value in self.guards:
            if not _same(value, self._value(v, s)):
                raise GuardFailed(s)
        vals = [None] * self.n_buffers
        for s in self.outputs:
            vals[self.vbuf[s]] = self._value(v, s)
        return vals, (v if keep_saved else None)

    def reverse(self, rplan, v, seeds):
        want = rplan.want
        if want is None:
            want = rplan.want = np.zeros(len(v), np.bool_)
            for s in rplan.abuf:
                want[s] = True
        adj = np.zeros_like(v)
        hit = np.zeros(len(v), np.bool_)
        for s, g in seeds.items():
            if g is not None and want[s]:
                adj[s, : 1 if self.z[s] else adj.shape[1]] += np.ravel(g)
                hit[s] = True
        flat_reverse(self.op, self.ins, self.out, self.z, v, adj, want, hit)
        return [self._value(adj, s) if b is not None and hit[s] else None for s, b in enumerate(rplan.input_abufs)]
