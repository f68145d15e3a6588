"""The NumPy backend: the executable specification, plus in-place rules.

Its kernels *are* the op table's forward functions and rules (tape/ops/*.py), written with NumPy
calls. What it adds is one thing the rules cannot do, because they do not know who holds `g`: when
the sweep owns the cotangent (it allocated it and nobody else holds it), the cotangent of a unary
op is written into `g` itself (``np.multiply(g, o, out=g)`` for exp) instead of into a fresh array.
On large arrays a fresh array costs page faults, more than the arithmetic (2**22 float64: 5-8 ms
each). Every other backend's kernels are tested against the rules, and these too.

A kernel is ``kernel(g, saved, input slots, g_owned) -> cotangents, or None`` (None: the rules run).
It carries two attributes, which the sweep reads to skip a call that would only decline: `min_size`
(it declines a g with fewer elements) and `owned_only` (it declines a g the sweep does not own).
"""

from __future__ import annotations

import numpy as np

from ..opcodes import Op


def into_g(rule):
    """A kernel that runs `rule(g, out, x)`, which writes its result into `g`, when the sweep owns g."""

    def kernel(g, saved, ins, g_owned=False):
        if not g_owned or type(g) is not np.ndarray:
            return None
        return (rule(g, *saved),)

    kernel.min_size, kernel.owned_only = 0, True
    return kernel


def _cos_rule(g, o, x):
    np.multiply(g, np.sin(x), out=g)
    return np.negative(g, out=g)


#: In-place backward rules by opcode, for a cotangent the sweep owns (unary ops; `g` keeps its dtype,
#: which is the output's, which for these ops is the input's).
VJP_KERNELS = {
    Op.NEG: into_g(lambda g, o, x: np.negative(g, out=g)),
    Op.EXP: into_g(lambda g, o, x: np.multiply(g, o, out=g)),
    Op.LOG: into_g(lambda g, o, x: np.divide(g, x, out=g)),
    Op.SIN: into_g(lambda g, o, x: np.multiply(g, np.cos(x), out=g)),
    Op.COS: into_g(_cos_rule),
    Op.SQRT: into_g(lambda g, o, x: np.multiply(np.divide(g, o, out=g), 0.5, out=g)),
}
