"""Numba kernels that run a whole compiled program: the 0-d (scalar) programs first.

A program whose every slot is a float64 scalar (W1's 6,000-term chain, a scalar ODE step) runs as
two `@njit` loops over its columns: `scalar_forward` writes one value buffer, `scalar_reverse`
walks the entries down accumulating into one adjoint buffer, each switching on the opcode the way
ADOL-C's `zos_forward`/`fos_reverse` do. The kernels are compiled once per process (cached on
disk), not per program: the program is data. Their formulas are the op table's rules on scalars
(`tests/test_compiled.py` checks them against the Python replay, `replay.py`, which stays the spec).

A program with any other entry (arrays, integers, draws, ops without a formula here) replays in
Python; `Program.stats()["fallback_ops"]` lists what did.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ..ops.registry import Op

# Opcodes with a scalar formula below (SUM and IDENTITY of a scalar are the identity).
SCALAR_OPS = frozenset(
    int(o)
    for o in (
        Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAXIMUM, Op.MINIMUM, Op.ARCTAN2,
        Op.NEG, Op.EXP, Op.LOG, Op.LOG1P, Op.EXPM1, Op.SQRT, Op.ABS, Op.SIGN, Op.SIN, Op.COS, Op.TAN,
        Op.ARCSIN, Op.ARCCOS, Op.ARCTAN, Op.SINH, Op.COSH, Op.TANH, Op.SUM, Op.IDENTITY,
    )
)  # fmt: skip

ADD, SUB, MUL, DIV, POW, MAXIMUM, MINIMUM, ARCTAN2 = 1, 2, 3, 4, 5, 6, 7, 8
NEG, EXP, LOG, LOG1P, EXPM1, SQRT, ABS, SIGN, SIN, COS, TAN = 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30
ARCSIN, ARCCOS, ARCTAN, SINH, COSH, TANH = 31, 32, 33, 34, 35, 36
SUM, IDENTITY = 50, 99


@njit(cache=True, error_model="numpy")
def scalar_forward(op, ins, out, v):  # pragma: no cover - compiled (tested through the replay)
    for k in range(op.shape[0]):
        c = op[k]
        x = v[ins[k, 0]]
        y = v[ins[k, 1]] if ins[k, 1] >= 0 else 0.0
        if c == ADD:
            r = x + y
        elif c == SUB:
            r = x - y
        elif c == MUL:
            r = x * y
        elif c == DIV:
            r = x / y
        elif c == POW:
            r = x**y
        elif c == MAXIMUM:
            r = max(x, y) if not (math.isnan(x) or math.isnan(y)) else math.nan
        elif c == MINIMUM:
            r = min(x, y) if not (math.isnan(x) or math.isnan(y)) else math.nan
        elif c == ARCTAN2:
            r = math.atan2(x, y)
        elif c == NEG:
            r = -x
        elif c == EXP:
            r = math.exp(x)
        elif c == LOG:
            r = math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan)
        elif c == LOG1P:
            r = math.log1p(x) if x > -1 else (-math.inf if x == -1 else math.nan)
        elif c == EXPM1:
            r = math.expm1(x)
        elif c == SQRT:
            r = math.sqrt(x) if x >= 0 else math.nan
        elif c == ABS:
            r = abs(x)
        elif c == SIGN:
            r = (x > 0) - (x < 0) if not math.isnan(x) else math.nan
        elif c == SIN:
            r = math.sin(x)
        elif c == COS:
            r = math.cos(x)
        elif c == TAN:
            r = math.tan(x)
        elif c == ARCSIN:
            r = math.asin(x) if -1 <= x <= 1 else math.nan
        elif c == ARCCOS:
            r = math.acos(x) if -1 <= x <= 1 else math.nan
        elif c == ARCTAN:
            r = math.atan(x)
        elif c == SINH:
            r = math.sinh(x)
        elif c == COSH:
            r = math.cosh(x)
        elif c == TANH:
            r = math.tanh(x)
        else:  # SUM, IDENTITY
            r = x
        v[out[k]] = r


@njit(cache=True, error_model="numpy")
def _share(g, a, b):
    if a > b:
        return g
    if a == b:
        return 0.5 * g
    return 0.0 * g


@njit(cache=True, error_model="numpy")
def scalar_reverse(op, ins, out, v, adj, want, hit):  # pragma: no cover - compiled
    """`want[s]`: slot s takes a cotangent (on a path from a wanted input); `hit[s]`: one reached it
    (an entry no cotangent reached is skipped, as the Python replay skips it)."""
    for k in range(op.shape[0] - 1, -1, -1):
        o = out[k]
        if not (want[o] and hit[o]):
            continue
        g = adj[o]
        adj[o] = 0.0
        c = op[k]
        i = ins[k, 0]
        j = ins[k, 1]
        x = v[i]
        y = v[j] if j >= 0 else 0.0
        r = v[o]
        gx = 0.0
        gy = 0.0
        if c == ADD:
            gx = g
            gy = g
        elif c == SUB:
            gx = g
            gy = -g
        elif c == MUL:
            gx = g * y
            gy = g * x
        elif c == DIV:
            gx = g / y
            gy = -g * r / y
        elif c == POW:
            gx = 0.0 if y == 0 else g * y * x ** (y - 1)
            if x == 0 and y >= 0:
                gy = 0.0
            else:
                gy = g * r * (math.log(x) if x > 0 else (-math.inf if x == 0 else math.nan))
        elif c == MAXIMUM:
            gx = _share(g, x, y)
            gy = _share(g, y, x)
        elif c == MINIMUM:
            gx = _share(g, y, x)
            gy = _share(g, x, y)
        elif c == ARCTAN2:
            gx = g * y / (y * y + x * x)
            gy = -g * x / (y * y + x * x)
        elif c == NEG:
            gx = -g
        elif c == EXP:
            gx = g * r
        elif c == LOG:
            gx = g / x
        elif c == LOG1P:
            gx = g / (1 + x)
        elif c == EXPM1:
            gx = g * (r + 1)
        elif c == SQRT:
            gx = g / (2 * r)
        elif c == ABS:
            gx = g * ((x > 0) - (x < 0))
        elif c == SIGN:
            gx = 0.0
        elif c == SIN:
            gx = g * math.cos(x)
        elif c == COS:
            gx = -g * math.sin(x)
        elif c == TAN:
            gx = g * (1 + r * r)
        elif c == ARCSIN:
            gx = g / math.sqrt(1 - x * x)
        elif c == ARCCOS:
            gx = -g / math.sqrt(1 - x * x)
        elif c == ARCTAN:
            gx = g / (1 + x * x)
        elif c == SINH:
            gx = g * math.cosh(x)
        elif c == COSH:
            gx = g * math.sinh(x)
        elif c == TANH:
            gx = g * (1 - r * r)
        else:
            gx = g
        if want[i] and c != SIGN:
            adj[i] += gx
            hit[i] = True
        if j >= 0 and want[j]:
            adj[j] += gy
            hit[j] = True


class ScalarKernel:
    """A program of float64 scalars, run by the two kernels above on one value and one adjoint buffer."""

    __slots__ = ("op", "ins", "out", "template", "guards", "outputs", "vbuf", "n_buffers")

    @staticmethod
    def covers(program) -> bool:
        f8 = np.dtype(np.float64)
        return (
            len(program.opcode) > 0
            and all(sh == () for sh in program.shapes)
            and all(dt == f8 for dt in program.dtypes)
            and set(program._op_list) <= SCALAR_OPS
            and int(program.nin.max()) <= 2
        )

    def __init__(self, program, plan):
        self.op = program.opcode.astype(np.int32)
        ins = np.full((len(program.opcode), 2), -1, np.int32)
        ins[:, : min(2, program.ins.shape[1])] = program.ins[:, :2]
        self.ins = ins
        self.out = program.output.astype(np.int32)
        self.template = np.zeros(program.n_slots)
        for k, c in enumerate(program.consts):
            self.template[program.n_inputs + k] = float(c)
        self.guards = [(int(s), v) for s, v in program.guards]
        self.outputs = [int(s) for s in program.outputs]
        self.vbuf, self.n_buffers = plan.vbuf, plan.n_buffers

    def forward(self, arrays, keep_saved):
        from .replay import GuardFailed, _same

        v = self.template.copy()
        for k, a in enumerate(arrays):
            v[k] = a
        scalar_forward(self.op, self.ins, self.out, v)
        for s, value in self.guards:
            if not _same(value, np.asarray(v[s])):
                raise GuardFailed(s)
        vals = [None] * self.n_buffers
        for s in self.outputs:
            vals[self.vbuf[s]] = np.array(v[s])
        return vals, (v if keep_saved else None)

    def reverse(self, rplan, v, seeds):
        want = rplan.want
        if want is None:
            want = rplan.want = np.zeros(len(v), np.bool_)
            for s in rplan.abuf:
                want[s] = True
        adj = np.zeros(len(v))
        hit = np.zeros(len(v), np.bool_)
        for s, g in seeds.items():
            if g is not None and want[s]:
                adj[s] += float(g)
                hit[s] = True
        scalar_reverse(self.op, self.ins, self.out, v, adj, want, hit)
        return [np.array(adj[s]) if b is not None and hit[s] else None for s, b in enumerate(rplan.input_abufs)]
