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
    # elementwise binary
    ADD = 1
    SUB = 2
    MUL = 3
    DIV = 4
    POW = 5
    MAXIMUM = 6
    MINIMUM = 7
    ARCTAN2 = 8
    # elementwise ternary
    WHERE = 15
    # elementwise unary
    NEG = 20
    EXP = 21
    LOG = 22
    LOG1P = 23
    EXPM1 = 24
    SQRT = 25
    ABS = 26
    SIGN = 27
    SIN = 28
    COS = 29
    TAN = 30
    ARCSIN = 31
    ARCCOS = 32
    ARCTAN = 33
    SINH = 34
    COSH = 35
    TANH = 36
    # reductions
    SUM = 150
    PROD = 151
    MAX = 152
    MIN = 153
    NORM = 154
    # linear algebra
    MATMUL = 200
    DOT = 201
    TENSORDOT = 202
    EINSUM = 203
    SOLVE = 204
    INV = 205
    DET = 206
    # shape and movement
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

    BINARY = frozenset(range(1, 15))
    TERNARY = frozenset(range(15, 20))
    UNARY = frozenset(range(20, 150))
    ELEMENTWISE = BINARY | TERNARY | UNARY
    REDUCE = frozenset(range(150, 200))
    LINALG = frozenset(range(200, 300))
    SHAPE = frozenset(range(300, 400))
