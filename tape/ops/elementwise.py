"""Elementwise primitives: forward, one vjp rule per input, what to save, the test domain.

Each rule is ``rule(g, out, *inputs)``. Broadcasting is undone by the sweep, not here.
Ties in maximum/minimum share the gradient equally; `pow` follows PyTorch at x = 0.
"""

from __future__ import annotations

import numpy as np

from .registry import Op, apply, defop


def _pow_dx(g, o, x, y):
    # PyTorch: d/dx x**y = y * x**(y-1), taken as 0 where y == 0 (so 0**0 has gradient 0).
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y == 0, 0.0, g * y * x ** (y - 1))


def _pow_dy(g, o, x, y):
    # PyTorch: d/dy x**y = x**y * log(x), taken as 0 where x == 0 and y >= 0.
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((x == 0) & (y >= 0), 0.0, g * o * np.log(x))


def _tie_share(g, a, b):
    """g where a wins, g/2 where a ties with b (a gets its half), 0 where b wins."""
    return np.where(a > b, g, np.where(a == b, 0.5 * g, 0.0 * g))


POSITIVE = (0.5, 2.0)  # test domain of ops that need x > 0 or a denominator away from 0

# One row per primitive: opcode, name, forward, one vjp rule per input (g: cotangent, o: output),
# what the rules need saved (x, y, z: inputs; o: output), and the domain the tests draw from.
# Every jvp is derived from these vjp rules (tape/forward.py): the Jacobians are diagonal.
# fmt: off
ADD     = defop(Op.ADD,     "add",     np.add,      (lambda g, o, x, y: g,        lambda g, o, x, y: g))
SUB     = defop(Op.SUB,     "sub",     np.subtract, (lambda g, o, x, y: g,        lambda g, o, x, y: -g))
MUL     = defop(Op.MUL,     "mul",     np.multiply, (lambda g, o, x, y: g * y,    lambda g, o, x, y: g * x),          "xy")
DIV     = defop(Op.DIV,     "div",     np.divide,   (lambda g, o, x, y: g / y,    lambda g, o, x, y: -g * o / y),     "oy",  domain=POSITIVE)
POW     = defop(Op.POW,     "pow",     np.power,    (_pow_dx,                     _pow_dy),                           "xyo", domain=POSITIVE)
MAXIMUM = defop(Op.MAXIMUM, "maximum", np.maximum,  (lambda g, o, x, y: _tie_share(g, x, y), lambda g, o, x, y: _tie_share(g, y, x)), "xy")
MINIMUM = defop(Op.MINIMUM, "minimum", np.minimum,  (lambda g, o, x, y: _tie_share(g, y, x), lambda g, o, x, y: _tie_share(g, x, y)), "xy")
ARCTAN2 = defop(Op.ARCTAN2, "arctan2", np.arctan2,  (lambda g, o, y, x: g * x / (x * x + y * y), lambda g, o, y, x: -g * y / (x * x + y * y)), "xy", domain=POSITIVE)
WHERE   = defop(Op.WHERE,   "where",   np.where,    (None, lambda g, o, c, x, y: np.where(c, g, 0.0 * g), lambda g, o, c, x, y: np.where(c, 0.0 * g, g)), "x")

NEG     = defop(Op.NEG,     "neg",     np.negative, (lambda g, o, x: -g,),)
EXP     = defop(Op.EXP,     "exp",     np.exp,      (lambda g, o, x: g * o,),                     "o")
LOG     = defop(Op.LOG,     "log",     np.log,      (lambda g, o, x: g / x,),                     "x", domain=(0.2, 3.0))
LOG1P   = defop(Op.LOG1P,   "log1p",   np.log1p,    (lambda g, o, x: g / (1 + x),),               "x", domain=(-0.5, 2.0))
EXPM1   = defop(Op.EXPM1,   "expm1",   np.expm1,    (lambda g, o, x: g * (o + 1),),               "o")
SQRT    = defop(Op.SQRT,    "sqrt",    np.sqrt,     (lambda g, o, x: g / (2 * o),),               "o", domain=(0.2, 3.0))
ABS     = defop(Op.ABS,     "abs",     np.abs,      (lambda g, o, x: g * np.sign(x),),            "x")
SIGN    = defop(Op.SIGN,    "sign",    np.sign,     (None,))
SIN     = defop(Op.SIN,     "sin",     np.sin,      (lambda g, o, x: g * np.cos(x),),             "x")
COS     = defop(Op.COS,     "cos",     np.cos,      (lambda g, o, x: -g * np.sin(x),),            "x")
TAN     = defop(Op.TAN,     "tan",     np.tan,      (lambda g, o, x: g * (1 + o * o),),           "o", domain=(-1.2, 1.2))
ARCSIN  = defop(Op.ARCSIN,  "arcsin",  np.arcsin,   (lambda g, o, x: g / np.sqrt(1 - x * x),),    "x", domain=(-0.9, 0.9))
ARCCOS  = defop(Op.ARCCOS,  "arccos",  np.arccos,   (lambda g, o, x: -g / np.sqrt(1 - x * x),),   "x", domain=(-0.9, 0.9))
ARCTAN  = defop(Op.ARCTAN,  "arctan",  np.arctan,   (lambda g, o, x: g / (1 + x * x),),           "x")
SINH    = defop(Op.SINH,    "sinh",    np.sinh,     (lambda g, o, x: g * np.cosh(x),),            "x")
COSH    = defop(Op.COSH,    "cosh",    np.cosh,     (lambda g, o, x: g * np.sinh(x),),            "x")
TANH    = defop(Op.TANH,    "tanh",    np.tanh,     (lambda g, o, x: g * (1 - o * o),),           "o")
# fmt: on


# -- public functions (NumPy names and signatures) ------------------------------------------------


def add(x, y):
    """x + y, broadcasting. ``tp.add(tp.ones(2), 1.0)`` -> ``tensor([2., 2.])``."""
    return apply(ADD, (x, y))


def subtract(x, y):
    """x - y, broadcasting."""
    return apply(SUB, (x, y))


def multiply(x, y):
    """x * y, broadcasting."""
    return apply(MUL, (x, y))


def divide(x, y):
    """x / y, broadcasting."""
    return apply(DIV, (x, y))


def power(x, y):
    """x ** y, broadcasting (PyTorch's gradient conventions at x = 0 and y = 0)."""
    return apply(POW, (x, y))


def maximum(x, y):
    """Elementwise max; where x == y each gets half the gradient."""
    return apply(MAXIMUM, (x, y))


def minimum(x, y):
    """Elementwise min; where x == y each gets half the gradient."""
    return apply(MINIMUM, (x, y))


def arctan2(y, x):
    """Elementwise arctan(y / x) with the quadrant from the signs."""
    return apply(ARCTAN2, (y, x))


def where(condition, x, y):
    """x where `condition` holds, else y; differentiable in x and y.

    >>> import tape as tp
    >>> tp.where(tp.tensor([True, False]), 1.0, 2.0)
    tensor([1., 2.])
    """
    from ..tensor import Tensor

    # A condition with history (only a compiled function's recording makes one: see composite.PLAIN)
    # stays an input, so that a replay computes it anew; the op is not differentiable in it.
    c = condition.array if isinstance(condition, Tensor) and not condition.requires_grad else condition
    return apply(WHERE, (c, x, y))


def _unary(d, doc):
    def fn(x):
        return apply(d, (x,))

    fn.__name__ = fn.__qualname__ = d.name if d.name != "neg" else "negative"
    fn.__doc__ = doc
    return fn


negative = _unary(NEG, "-x")
exp = _unary(EXP, "e**x. ``tp.exp(tp.tensor(0.0))`` -> ``tensor(1.)``")
log = _unary(LOG, "Natural logarithm.")
log1p = _unary(LOG1P, "log(1 + x), accurate near 0.")
expm1 = _unary(EXPM1, "e**x - 1, accurate near 0.")
sqrt = _unary(SQRT, "Square root.")
abs = _unary(ABS, "|x| (gradient sign(x), 0 at 0).")  # noqa: A001 (NumPy's name)
sign = _unary(SIGN, "-1, 0 or 1 (zero gradient).")
sin = _unary(SIN, "Sine.")
cos = _unary(COS, "Cosine.")
tan = _unary(TAN, "Tangent.")
arcsin = _unary(ARCSIN, "Inverse sine.")
arccos = _unary(ARCCOS, "Inverse cosine.")
arctan = _unary(ARCTAN, "Inverse tangent.")
sinh = _unary(SINH, "Hyperbolic sine.")
cosh = _unary(COSH, "Hyperbolic cosine.")
tanh = _unary(TANH, "Hyperbolic tangent.")
