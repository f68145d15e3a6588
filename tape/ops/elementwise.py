"""Elementwise primitives: forward, one vjp rule per input, what to save, the test domain.

Each rule is ``rule(g, out, *inputs)``. Broadcasting is undone by the sweep, not here.
Ties in maximum/minimum share the gradient equally; `pow` follows PyTorch at x = 0.
The public functions (`tp.add`, `tp.exp`, ...), their NumPy-dispatch entries and the Tensor methods
are generated from these rows (`defop`).
"""

from __future__ import annotations

import numpy as np

from .registry import Op, Sample, defop


def _pow_dx(g, o, x, y):
    # PyTorch: d/dx x**y = y * x**(y-1), and 0 where y == 0 (x**0 is the constant 1; 0**0 has
    # gradient 0). A constant Python exponent (x ** 2, PyTorch's Scalar overload) needs no where().
    if type(y) is int or type(y) is float:
        return np.zeros_like(g) if y == 0 else g * y * x ** (y - 1)
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
    return (getattr(condition, "array", condition), x, y), None


def _where_samples(rng):
    for sc, sx, sy in [((3,), (3,), (3,)), ((2, 3), (3,), ()), ((2, 1), (1, 3), (2, 3))]:
        c = rng.uniform(size=sc) > 0.5
        yield Sample(
            (rng.uniform(-2, 2, sx), rng.uniform(-2, 2, sy)), lambda f, x, y, c=c: f(c, x, y), f"{sc}-{sx}-{sy}"
        )


# One row per primitive: opcode, name, forward (the NumPy ufunc it stands for), one vjp rule per
# input (g: cotangent, o: output), what the rules need saved (x, y, z: inputs; o: output; a tuple:
# per input), and the domain the tests draw from. Every jvp is derived from these vjp rules
# (registry.derived_jvp): the Jacobians are diagonal.
# fmt: off
ADD     = defop(Op.ADD,     "add",     np.add,      (lambda g, o, x, y: g,        lambda g, o, x, y: g),                        numpy=np.add)
SUB     = defop(Op.SUB,     "sub",     np.subtract, (lambda g, o, x, y: g,        lambda g, o, x, y: -g),                       numpy=np.subtract, public="subtract")
MUL     = defop(Op.MUL,     "mul",     np.multiply, (lambda g, o, x, y: g * y,    lambda g, o, x, y: g * x),          ("y", "x"),  numpy=np.multiply, public="multiply")
DIV     = defop(Op.DIV,     "div",     np.divide,   (lambda g, o, x, y: g / y,    lambda g, o, x, y: -g * o / y),     ("y", "oy"), numpy=np.divide, public="divide", domain=POSITIVE)
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
