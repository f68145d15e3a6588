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


#: Elements per block of tanh's in-place rule: its o·o temporary is one block, kept in cache.
_BLOCK = 1 << 15
#: Below this many elements (128 KiB of float64, glibc's default threshold for mapping fresh pages)
#: a temporary costs no page faults, and tanh's and mul's kernels leave the work to the rules.
MIN_SIZE = 1 << 14


def _same(a, g) -> bool:
    return type(a) is np.ndarray and a.shape == g.shape and a.dtype == g.dtype


def _one_value(a, g) -> bool:
    return type(a) is np.ndarray and a.size == 1 and a.dtype == g.dtype


def tanh_vjp(g, saved, ins, g_owned=False):
    """g·(1 − o·o) with one new array and no temporary when g is not owned (the rule makes three), and
    into g with one block-sized temporary when it is."""
    o = saved[0]
    if type(g) is not np.ndarray or g.size < MIN_SIZE or not _same(o, g):
        return None
    if not g_owned:
        out = np.multiply(o, o)
        np.subtract(1, out, out=out)
        return (np.multiply(g, out, out=out),)
    if not (g.flags.c_contiguous and o.flags.c_contiguous):
        return None
    fg, fo = g.reshape(-1), o.reshape(-1)
    tmp = np.empty(min(_BLOCK, fg.size), g.dtype)
    for start in range(0, fg.size, _BLOCK):
        gb, ob = fg[start : start + _BLOCK], fo[start : start + _BLOCK]
        t = tmp[: gb.size]
        np.multiply(ob, ob, out=t)
        np.subtract(1, t, out=t)
        np.multiply(gb, t, out=gb)
    return (g,)


def mul_vjp(g, saved, ins, g_owned=False):
    """x * y's cotangents where the rules would allocate more than needed: a unit g (`mul_by_unit`);
    `x * x`, one slot twice, 2·g·x once (the rules' g·x twice, then their sum); a product with one
    value `a` (a 0-d weight), Σ g·x as a dot product (no full-size product to sum) and g·a; and a
    one-value constant factor; each written into g when the sweep owns it. None elsewhere."""
    cts = mul_by_unit(g, saved, ins)
    if cts is not None or type(g) is not np.ndarray or g.size < MIN_SIZE:
        return cts
    _, x, y = saved
    out = g if g_owned else None
    if ins[0] < 0 or ins[1] < 0:  # one tracked factor: g times the other, if that is one value
        other = y if ins[0] >= 0 else x
        if not (_one_value(other, g) and g_owned):
            return None  # not owned: the rule allocates one array, as this would
        gx = np.multiply(g, other.reshape(()), out=g)
        return (gx, None) if ins[0] >= 0 else (None, gx)
    if ins[0] == ins[1] > 0 and x is y and _same(x, g):
        # Only the eager sweep passes slots (> 0 here); a compiled replay passes 0 for every input.
        gx = np.multiply(g, x, out=out)
        return np.multiply(gx, 2, out=gx), None
    for a, other, k in ((x, y, 0), (y, x, 1)):
        if _one_value(a, g) and _same(other, g) and g.flags.c_contiguous and other.flags.c_contiguous:
            ga = np.asarray(np.dot(g.reshape(-1), other.reshape(-1)), dtype=g.dtype).reshape(a.shape)
            gx = np.multiply(g, a.reshape(()), out=out)
            return (ga, gx) if k == 0 else (gx, ga)
    return None


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

#: This backend's kernels by opcode: the in-place rules, tanh's and mul's.
VJP_KERNELS = {**IN_PLACE, Op.TANH: tanh_vjp, Op.MUL: mul_vjp}
