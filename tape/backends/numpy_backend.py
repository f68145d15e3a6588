"""The NumPy backend: the executable specification, plus in-place rules.

Its kernels *are* the op table's forward functions and rules (tape/ops/*.py), written with NumPy
calls. What it adds is one thing the rules cannot do, because they do not know who holds `g`: when
the sweep owns the cotangent (it allocated it and nobody else holds it), the cotangent of a unary
op is written into `g` itself (``np.multiply(g, o, out=g)`` for exp) instead of into a fresh array.
On large arrays a fresh array costs page faults, more than the arithmetic (2**22 float64: 5-8 ms
each). Every other backend's kernels are tested against the rules, and these too.

It adds one more thing, for the weight of a matrix-vector product (``W @ x``, ``x @ W``, ``np.dot``):
the weight's cotangent, the outer product g xᵀ, is handed to the sweep as the pair (g, x), a
`sweep.LowRank`, which the sweep's adjoint buffer adds up many at a time with one matrix product
(a loop that multiplies by the same weight at every step would otherwise make and add an m x n
array per step). Consumers of kernels turn a `LowRank` into an array with `.dense()` where they
want one (the compiled replay does).

A kernel is ``kernel(g, saved, input slots, g_owned) -> cotangents, or None`` (None: the rules run).
"""

from __future__ import annotations

import numpy as np

from ..opcodes import Op
from ..sweep import LowRank


def into_g(rule):
    """A kernel that runs `rule(g, out, x)`, which writes its result into `g`, when the sweep owns g."""

    def kernel(g, saved, ins, g_owned=False):
        if not g_owned or type(g) is not np.ndarray:
            return None
        return (rule(g, *saved),)

    return kernel


def _cos_rule(g, o, x):
    np.multiply(g, np.sin(x), out=g)
    return np.negative(g, out=g)


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def matvec_vjp(g, saved, ins, g_owned=False):
    """matmul / dot of a matrix and a vector, either way round: the matrix's cotangent as the pair
    (g, x) (a `LowRank`), the vector's as the matrix-vector product of the rules. None (the rules
    run) for anything else: batched or matrix-matrix products, mixed dtypes, a constant matrix."""
    _, a, b = saved
    if type(a) is not np.ndarray or type(b) is not np.ndarray or g.ndim != 1:
        return None
    dtype = g.dtype
    if a.dtype != dtype or b.dtype != dtype or dtype not in _FLOATS:
        return None
    if a.ndim == 2 and b.ndim == 1 and ins[0] >= 0:  # W @ x: dW = g xᵀ, dx = Wᵀ g
        return LowRank(g, b), (g @ a if ins[1] >= 0 else None)
    if a.ndim == 1 and b.ndim == 2 and ins[1] >= 0:  # x @ W: dx = W g, dW = x gᵀ
        return (b @ g if ins[0] >= 0 else None), LowRank(a, g)
    return None


#: In-place backward rules by opcode, for a cotangent the sweep owns (unary ops; `g` keeps its dtype,
#: which is the output's, which for these ops is the input's).
IN_PLACE_KERNELS = {
    Op.NEG: into_g(lambda g, o, x: np.negative(g, out=g)),
    Op.EXP: into_g(lambda g, o, x: np.multiply(g, o, out=g)),
    Op.LOG: into_g(lambda g, o, x: np.divide(g, x, out=g)),
    Op.SIN: into_g(lambda g, o, x: np.multiply(g, np.cos(x), out=g)),
    Op.COS: into_g(_cos_rule),
    Op.SQRT: into_g(lambda g, o, x: np.multiply(np.divide(g, o, out=g), 0.5, out=g)),
}

#: Every kernel of this backend: the in-place rules, and the matrix-vector products' low-rank rule.
VJP_KERNELS = {**IN_PLACE_KERNELS, Op.MATMUL: matvec_vjp, Op.DOT: matvec_vjp}
