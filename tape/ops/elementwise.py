"""Elementwise primitives: forward, one vjp rule per input, what to save, the test domain.

Each rule is ``rule(g, out, *inputs)``. Broadcasting is undone by the sweep, not here.
Ties in maximum/minimum share the gradient equally; `pow` follows PyTorch at x = 0.
The public functions (`tp.add`, `tp.exp`, ...), their NumPy-dispatch entries and the Tensor methods
are generated from these rows (`defop`).
"""

from __future__ import annotations

import operator

import numpy as np

from ..tensor import Tensor
from .registry import UNARY_SHAPES, Op, Sample, defop


def _pow_dx(g, o, x, y):
    # PyTorch: d/dx x**y = y * x**(y-1), and 0 where y == 0 (x**0 is the constant 1; 0**0 has
    # gradient 0). A constant Python exponent (x ** 2, PyTorch's Scalar overload) needs no where().
    if type(y) is int or type(y) is float:
        if y == 0:
            return np.zeros_like(g)
        # x ** 2 is the common case: x itself, not x ** 1 (one op fewer when the rule is itself
        # differentiated: create_graph, tp.hvp)
        return g * y * (x if y == 2 else x ** (y - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = y == 0
        # x**(y-1) is taken at x = 1 where y == 0: the branch where() discards must stay finite,
        # or its derivative (0 * inf at x = 0) makes the second derivative NaN.
        return np.where(zero, 0.0, g * y * np.where(zero, 1.0, x) ** (y - 1))


def _pow_dy(g, o, x, y):
    # PyTorch: d/dy x**y = x**y * log(x), and 0 where x == 0 and y >= 0 (by continuity from y > 0,
    # where 0**y is 0); -inf where x == 0 and y < 0. log is taken at 1 there, as in _pow_dx.
    with np.errstate(divide="ignore", invalid="ignore"):
        zero = (x == 0) & (y >= 0)
        return np.where(zero, 0.0, g * o * np.log(np.where(zero, 1.0, x)))


def _tie_share(g, a, b):
    """g where a wins, g/2 where a ties with b (a gets its half), 0 where b wins."""
    return np.where(a > b, g, np.where(a == b, 0.5 * g, 0.0 * g))


POSITIVE = (0.5, 2.0)  # test domain of ops that need x > 0 or a denominator away from 0


def _where_args(condition, x, y):
    """x where `condition` holds, else y; differentiable in x and y (not in the condition).

    >>> import tape as tp
    >>> tp.where(tp.tensor([True, False]), 1.0, 2.0)
    tensor([1., 2.])
    """
    # A condition with history (only a compiled function's recording makes one: see composite.PLAIN)
    # stays an input, so that a replay computes it anew; the op is not differentiable in it.
    keep = isinstance(condition, Tensor) and condition.requires_grad
    return (condition if keep else getattr(condition, "array", condition), x, y), None


def _where_samples(rng):
    for sc, sx, sy in [((3,), (3,), (3,)), ((2, 3), (3,), ()), ((2, 1), (1, 3), (2, 3))]:
        c = rng.uniform(size=sc) > 0.5
        yield Sample(
            (rng.uniform(-2, 2, sx), rng.uniform(-2, 2, sy)), lambda f, x, y, c=c: f(c, x, y), f"{sc}-{sx}-{sy}"
        )


# One row per primitive: opcode, name, forward (the NumPy ufunc it stands for), one vjp rule per
# input (g: cotangent, o: output), what the rules need saved (x, y, z: inputs; o: output; a tuple:
# per input), and the domain the tests draw from. Every jvp is derived from these vjp rules
# (registry.derived_jvp): the Jacobians are diagonal. `scalar`: the Python operator, which NumPy runs on
# two float64 scalars ten times faster than the ufunc (same bits).
# fmt: off
ADD     = defop(Op.ADD,     "add",     np.add,      (lambda g, o, x, y: g,        lambda g, o, x, y: g),                        numpy=np.add, scalar=operator.add)
SUB     = defop(Op.SUB,     "sub",     np.subtract, (lambda g, o, x, y: g,        lambda g, o, x, y: -g),                       numpy=np.subtract, public="subtract", scalar=operator.sub)
MUL     = defop(Op.MUL,     "mul",     np.multiply, (lambda g, o, x, y: g * y,    lambda g, o, x, y: g * x),          ("y", "x"),  numpy=np.multiply, public="multiply", scalar=operator.mul)
DIV     = defop(Op.DIV,     "div",     np.divide,   (lambda g, o, x, y: g / y,    lambda g, o, x, y: -g * o / y),     ("y", "oy"), numpy=np.divide, public="divide", domain=POSITIVE, scalar=operator.truediv)
POW     = defop(Op.POW,     "pow",     np.power,    (_pow_dx,                     _pow_dy),                           "xyo", numpy=np.power, public="power", domain=POSITIVE)
MAXIMUM = defop(Op.MAXIMUM, "maximum", np.maximum,  (lambda g, o, x, y: _tie_share(g, x, y), lambda g, o, x, y: _tie_share(g, y, x)), "xy", numpy=np.maximum)
MINIMUM = defop(Op.MINIMUM, "minimum", np.minimum,  (lambda g, o, x, y: _tie_share(g, y, x), lambda g, o, x, y: _tie_share(g, x, y)), "xy", numpy=np.minimum)
ARCTAN2 = defop(Op.ARCTAN2, "arctan2", np.arctan2,  (lambda g, o, y, x: g * x / (x * x + y * y), lambda g, o, y, x: -g * y / (x * x + y * y)), "xy", numpy=np.arctan2, domain=POSITIVE)
WHERE   = defop(Op.WHERE,   "where",   np.where,    (None, lambda g, o, c, x, y: np.where(c, g, 0.0 * g), lambda g, o, c, x, y: np.where(c, 0.0 * g, g)), "x", numpy=np.where, args=_where_args, samples=_where_samples)

NEG     = defop(Op.NEG,     "neg",     np.negative, (lambda g, o, x: -g,),                               numpy=np.negative, public="negative")
EXP     = defop(Op.EXP,     "exp",     np.exp,      (lambda g, o, x: g * o,),                     "o",   numpy=np.exp, method=True)
LOG     = defop(Op.LOG,     "log",     np.log,      (lambda g, o, x: g / x,),                     "x",   numpy=np.log, method=True, domain=(0.2, 3.0))
LOG1P   = defop(Op.LOG1P,   "log1p",   np.log1p,    (lambda g, o, x: g / (1 + x),),               "x",   numpy=np.log1p, domain=(-0.5, 2.0))
EXPM1   = defop(Op.EXPM1,   "expm1",   np.expm1,    (lambda g, o, x: g * (o + 1),),               "o",   numpy=np.expm1)
SQRT    = defop(Op.SQRT,    "sqrt",    np.sqrt,     (lambda g, o, x: g / (2 * o),),               "o",   numpy=np.sqrt, method=True, domain=(0.2, 3.0))
ABS     = defop(Op.ABS,     "abs",     np.abs,      (lambda g, o, x: g * np.sign(x),),            "x",   numpy=np.absolute, method=True)
SIGN    = defop(Op.SIGN,    "sign",    np.sign,     (None,),                                             numpy=np.sign, method=True)
SIN     = defop(Op.SIN,     "sin",     np.sin,      (lambda g, o, x: g * np.cos(x),),             "x",   numpy=np.sin, method=True)
COS     = defop(Op.COS,     "cos",     np.cos,      (lambda g, o, x: -g * np.sin(x),),            "x",   numpy=np.cos, method=True)
TAN     = defop(Op.TAN,     "tan",     np.tan,      (lambda g, o, x: g * (1 + o * o),),           "o",   numpy=np.tan, method=True, domain=(-1.2, 1.2))
ARCSIN  = defop(Op.ARCSIN,  "arcsin",  np.arcsin,   (lambda g, o, x: g / np.sqrt(1 - x * x),),    "x",   numpy=np.arcsin, domain=(-0.9, 0.9))
ARCCOS  = defop(Op.ARCCOS,  "arccos",  np.arccos,   (lambda g, o, x: -g / np.sqrt(1 - x * x),),   "x",   numpy=np.arccos, domain=(-0.9, 0.9))
ARCTAN  = defop(Op.ARCTAN,  "arctan",  np.arctan,   (lambda g, o, x: g / (1 + x * x),),           "x",   numpy=np.arctan)
SINH    = defop(Op.SINH,    "sinh",    np.sinh,     (lambda g, o, x: g * np.cosh(x),),            "x",   numpy=np.sinh, method=True)
COSH    = defop(Op.COSH,    "cosh",    np.cosh,     (lambda g, o, x: g * np.sinh(x),),            "x",   numpy=np.cosh, method=True)
TANH    = defop(Op.TANH,    "tanh",    np.tanh,     (lambda g, o, x: g * (1 - o * o),),           "o",   numpy=np.tanh, method=True)
# fmt: on


# -- NumPy's other elementwise functions (issue 12) ----------------------------------------------
_LN2, _LN10 = float(np.log(2.0)), float(np.log(10.0))


def _round_args(x, decimals=0):
    """x rounded to `decimals` places (np.round, halves to even); its gradient is 0.

    >>> import tape as tp
    >>> tp.round(tp.tensor([0.5, 1.5, 2.26]), 1)
    tensor([0.5, 1.5, 2.3])
    """
    return (x,), {"decimals": int(decimals)}


def _away_from_zero(rng):
    """cbrt's samples: both signs, kept away from 0 where its derivative is infinite."""
    for s in UNARY_SHAPES:
        yield Sample((rng.choice([-1.0, 1.0], s) * rng.uniform(0.3, 2.0, s),), None, str(s))


def _mod_samples(rng):
    # x mod y jumps where x/y is an integer: draws that come near one are drawn again.
    for sx, sy in [((), ()), ((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3))]:
        while True:
            x, y = rng.uniform(-3, 3, sx), rng.choice([-1.0, 1.0], sy) * rng.uniform(0.5, 2.0, sy)
            q = x / y
            if np.all(np.abs(q - np.round(q)) > 0.05):
                yield Sample((x, y), None, f"{sx}-{sy}")
                break


def _finite_top(o):
    """o with -inf (logaddexp of two -infs) as 0, so that exp(x - o) is exp(-inf) = 0, not nan."""
    raw = getattr(o, "array", o)
    return np.where(raw == -np.inf, 0.0, o) if (raw == -np.inf).any() else o


# Rounding has derivative 0 almost everywhere (None: no rule, zero cotangent and tangent); mod's
# derivative in x is 1 and in y -floor(x / y), HIPS autograd's. Each rule uses only functions that
# dispatch on Tensors (floor, exp2, ...), so the rules can themselves be differentiated.
# fmt: off
HYPOT      = defop(Op.HYPOT,      "hypot",      np.hypot,      (lambda g, o, x, y: g * x / o, lambda g, o, x, y: g * y / o),               ("xo", "yo"), numpy=np.hypot)
LOGADDEXP  = defop(Op.LOGADDEXP,  "logaddexp",  np.logaddexp,  (lambda g, o, x, y: g * np.exp(x - _finite_top(o)), lambda g, o, x, y: g * np.exp(y - _finite_top(o))),   ("xo", "yo"), numpy=np.logaddexp)
LOGADDEXP2 = defop(Op.LOGADDEXP2, "logaddexp2", np.logaddexp2, (lambda g, o, x, y: g * np.exp2(x - _finite_top(o)), lambda g, o, x, y: g * np.exp2(y - _finite_top(o))), ("xo", "yo"), numpy=np.logaddexp2)
REMAINDER  = defop(Op.REMAINDER,  "remainder",  np.remainder,  (lambda g, o, x, y: g, lambda g, o, x, y: -g * np.floor(x / y)),                   ("", "xy"),   numpy=np.remainder, samples=_mod_samples)

ARCCOSH    = defop(Op.ARCCOSH,    "arccosh",    np.arccosh,    (lambda g, o, x: g / np.sqrt(x * x - 1),),  "x", numpy=np.arccosh, domain=(1.2, 3.0))
ARCSINH    = defop(Op.ARCSINH,    "arcsinh",    np.arcsinh,    (lambda g, o, x: g / np.sqrt(x * x + 1),),  "x", numpy=np.arcsinh)
ARCTANH    = defop(Op.ARCTANH,    "arctanh",    np.arctanh,    (lambda g, o, x: g / (1 - x * x),),         "x", numpy=np.arctanh, domain=(-0.9, 0.9))
EXP2       = defop(Op.EXP2,       "exp2",       np.exp2,       (lambda g, o, x: g * o * _LN2,),            "o", numpy=np.exp2)
LOG2       = defop(Op.LOG2,       "log2",       np.log2,       (lambda g, o, x: g / (x * _LN2),),          "x", numpy=np.log2, domain=(0.2, 3.0))
LOG10      = defop(Op.LOG10,      "log10",      np.log10,      (lambda g, o, x: g / (x * _LN10),),         "x", numpy=np.log10, domain=(0.2, 3.0))
CBRT       = defop(Op.CBRT,       "cbrt",       np.cbrt,       (lambda g, o, x: g / (3 * o * o),),         "o", numpy=np.cbrt, samples=_away_from_zero)
RECIPROCAL = defop(Op.RECIPROCAL, "reciprocal", np.reciprocal, (lambda g, o, x: -g * o * o,),              "o", numpy=np.reciprocal, domain=POSITIVE)
FLOOR      = defop(Op.FLOOR,      "floor",      np.floor,      (None,),                                         numpy=np.floor)
CEIL       = defop(Op.CEIL,       "ceil",       np.ceil,       (None,),                                         numpy=np.ceil)
ROUND      = defop(Op.ROUND,      "round",      lambda x, decimals: np.round(x, decimals), (None,),             numpy=(np.round, np.around), method=True, args=_round_args)
TRUNC      = defop(Op.TRUNC,      "trunc",      np.trunc,      (None,),                                         numpy=np.trunc)
RINT       = defop(Op.RINT,       "rint",       np.rint,       (None,),                                         numpy=np.rint)
# fmt: on
