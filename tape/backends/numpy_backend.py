"""The NumPy backend: the executable specification, plus in-place rules.

Its kernels *are* the op table's forward functions and rules (tape/ops/*.py), written with NumPy
calls. What it adds is one thing the rules cannot do, because they do not know who holds `g`: when
the sweep owns the cotangent (it allocated it and nobody else holds it), the cotangent of a unary
op is written into `g` itself (``np.multiply(g, o, out=g)`` for exp) instead of into a fresh array.
On large arrays a fresh array costs page faults, more than the arithmetic (2**22 float64: 5-8 ms
each). Every other backend's kernels are tested against the rules, and these too.

And one thing the rules need not know: a cotangent that is the value 1 broadcast (what `sum` hands
back to the op before it when `backward()` seeds 1) times an array is that array, so `mul`'s
cotangents are then its saved inputs themselves, with no pass over them and nothing allocated; the
sweep never writes into a saved value, so the op before allocates when it needs to, as it would have.

A kernel is ``kernel(g, saved, input slots, g_owned) -> cotangents, or None`` (None: the rules run).
It returns new arrays, g itself (only when the sweep owns g, for one input at most), or a saved
value (which the sweep then treats as held by others).
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

    return kernel


def unit_broadcast(g) -> bool:
    """True when g is the value 1 broadcast to its shape (every stride 0), as sum's rule returns it
    for a `backward()` seed."""
    return type(g) is np.ndarray and g.size > 1 and not any(g.strides) and g.flat[0] == 1


def mul_by_unit(g, saved, ins, g_owned=False):
    """x * y with g = 1 broadcast: x's cotangent is y and y's is x, when they have g's shape (else
    a sum over broadcast axes is needed: the rules do it). None when this does not apply."""
    if not unit_broadcast(g):
        return None
    _, x, y = saved
    if (ins[0] >= 0 and np.shape(y) != g.shape) or (ins[1] >= 0 and np.shape(x) != g.shape):
        return None
    return (y if ins[0] >= 0 else None), (x if ins[1] >= 0 else None)


def _cos_rule(g, o, x):
    np.multiply(g, np.sin(x), out=g)
    return np.negative(g, out=g)


#: In-place backward rules by opcode, for a cotangent the sweep owns (unary ops; `g` keeps its dtype,
#: which is the output's, which for these ops is the input's).
IN_PLACE = {
    Op.NEG: into_g(lambda g, o, x: np.negative(g, out=g)),
    Op.EXP: into_g(lambda g, o, x: np.multiply(g, o, out=g)),
    Op.LOG: into_g(lambda g, o, x: np.divide(g, x, out=g)),
    Op.SIN: into_g(lambda g, o, x: np.multiply(g, np.cos(x), out=g)),
    Op.COS: into_g(_cos_rule),
    Op.SQRT: into_g(lambda g, o, x: np.multiply(np.divide(g, o, out=g), 0.5, out=g)),
}

#: This backend's kernels by opcode: the in-place rules, and mul's by a unit cotangent.
VJP_KERNELS = {**IN_PLACE, Op.MUL: mul_by_unit}
