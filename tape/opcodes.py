"""Opcodes: the small grouped integer enum every layer shares (tinygrad's `Ops` / `GroupOp`).

An entry of the tape names its op by an `OpDef` row (tape/ops/registry.py) whose `code` is one of
these; a compiled program stores the same codes in an integer column that a kernel switches on.
The groups are ranges, so a family is recognised by one comparison. Custom primitives get codes
from 1000 up.
"""

from __future__ import annotations

from enum import IntEnum


class Op(IntEnum):
    """Opcodes of the built-in primitives, grouped like the modules that define them."""

    LEAF = 0  # an input of the tape, not an operation
    # elementwise binary (1-49)
    ADD = 1
    SUB = 2
    MUL = 3
    DIV = 4
    POW = 5
    MAXIMUM = 6
    MINIMUM = 7
    ARCTAN2 = 8
    HYPOT = 9
    LOGADDEXP = 10
    LOGADDEXP2 = 11
    REMAINDER = 12
    # elementwise ternary (50-59)
    WHERE = 50
    # elementwise unary (60-149)
    NEG = 60
    EXP = 61
    LOG = 62
    LOG1P = 63
    EXPM1 = 64
    SQRT = 65
    ABS = 66
    SIGN = 67
    SIN = 68
    COS = 69
    TAN = 70
    ARCSIN = 71
    ARCCOS = 72
    ARCTAN = 73
    SINH = 74
    COSH = 75
    TANH = 76
    ARCCOSH = 80
    ARCSINH = 81
    ARCTANH = 82
    EXP2 = 83
    LOG2 = 84
    LOG10 = 85
    CBRT = 86
    RECIPROCAL = 87
    FLOOR = 88
    CEIL = 89
    ROUND = 90
    TRUNC = 91
    RINT = 92
    # reductions and scans (150-199)
    SUM = 150
    PROD = 151
    MAX = 152
    MIN = 153
    NORM = 154
    CUMSUM = 155
    CUMPROD = 156
    # linear algebra (200-299)
    MATMUL = 200
    DOT = 201
    TENSORDOT = 202
    EINSUM = 203
    SOLVE = 204
    INV = 205
    DET = 206
    # shape and movement (300-399)
    RESHAPE = 300
    TRANSPOSE = 301
    BROADCAST_TO = 302
    GETITEM = 303
    INDEX_ADD = 304
    CONCATENATE = 305
    PAD = 306
    ASTYPE = 307
    TO_DEVICE = 308
    IDENTITY = 309


#: Codes from here up belong to users' custom primitives and to entries (checkpoints, compiled
#: calls) whose parameters are live Python objects.
FIRST_CUSTOM = 1000


class GroupOp:
    """Families of opcodes, for code (tests, backends, lowering) that treats a family alike."""

    BINARY = frozenset(range(1, 50))
    TERNARY = frozenset(range(50, 60))
    UNARY = frozenset(range(60, 150))
    ELEMENTWISE = BINARY | TERNARY | UNARY
    REDUCE = frozenset(range(150, 200))
    LINALG = frozenset(range(200, 300))
    SHAPE = frozenset(range(300, 400))
