"""scipy.special's functions as op-table rows: forward is SciPy's ufunc, so `scipy.special.erf(x)`
on a Tensor dispatches here through `__array_ufunc__` like `np.exp(x)` does.

This module imports SciPy, so `tape` never imports it: `tape.scipy` does, and the rows join the op
table then (SciPy stays an optional dependency, the `scipy` extra). The rules call SciPy's ufuncs
too, which on Tensors (create_graph, forward mode) dispatch back to these rows; `polygamma` is a
Python function in SciPy, not a ufunc, so the rules reach its row through `call`. Integer orders
(`polygamma`'s n, the Bessel functions' order) and `gammainc`'s and `betainc`'s shape parameters
are not differentiated (their rule is None), as in HIPS autograd.
"""

from __future__ import annotations

import numpy as np
import scipy.special as sc

from .registry import Op, Sample, call, defop

_SQRT_PI = np.sqrt(np.pi)
_SQRT_2PI = np.sqrt(2 * np.pi)
POSITIVE = (0.5, 3.0)
UNIT = (0.1, 0.9)


def _polygamma(n, x):
    return call(POLYGAMMA, n, x)


def _fixed_first(*values, domain=POSITIVE, ref=None):
    """Samples for a row whose leading arguments are not differentiated: they are fixed in `call`
    (`ref`: SciPy's function, where the row stands for no ufunc)."""

    def samples(rng):
        for v in values:
            for shape in [(), (3,), (2, 3)]:
                expected = None if ref is None else (lambda x, v=v: ref(*v, x))
                yield Sample((rng.uniform(*domain, shape),), lambda f, x, v=v: f(*v, x), f"{v}-{shape}", expected)

    return samples


def _no_rule(name, arg):
    """The rule of an argument SciPy's function is differentiable in but tape (like HIPS autograd)
    has no derivative for: raising beats the silently zero gradient a None rule would give."""

    def rule(g, o, *xs):
        raise NotImplementedError(f"scipy.special.{name}: no derivative with respect to {arg}; pass it as a constant")

    return rule


# fmt: off
#        opcode         name         forward          vjp rules                                                                     save    NumPy dispatch, test domain
GAMMALN   = defop(Op.GAMMALN,   "gammaln",   sc.gammaln,  (lambda g, o, x: g * sc.digamma(x),),                                     "x",  numpy=sc.gammaln, public="scipy.special.gammaln", domain=POSITIVE)
DIGAMMA   = defop(Op.DIGAMMA,   "digamma",   sc.digamma,  (lambda g, o, x: g * _polygamma(1, x),),                                  "x",  numpy=sc.digamma, public="scipy.special.digamma", domain=POSITIVE)
GAMMA     = defop(Op.GAMMA,     "gamma",     sc.gamma,    (lambda g, o, x: g * o * sc.digamma(x),),                                 "xo", numpy=sc.gamma, public="scipy.special.gamma", domain=POSITIVE)
RGAMMA    = defop(Op.RGAMMA,    "rgamma",    sc.rgamma,   (lambda g, o, x: -g * o * sc.digamma(x),),                                "xo", numpy=sc.rgamma, public="scipy.special.rgamma", domain=POSITIVE)
GAMMASGN  = defop(Op.GAMMASGN,  "gammasgn",  sc.gammasgn, (None,),                                                                        numpy=sc.gammasgn, public="scipy.special.gammasgn", domain=POSITIVE)
ERF       = defop(Op.ERF,       "erf",       sc.erf,      (lambda g, o, x: g * (2 / _SQRT_PI) * np.exp(-x * x),),                   "x",  numpy=sc.erf, public="scipy.special.erf")
ERFC      = defop(Op.ERFC,      "erfc",      sc.erfc,     (lambda g, o, x: g * (-2 / _SQRT_PI) * np.exp(-x * x),),                  "x",  numpy=sc.erfc, public="scipy.special.erfc")
ERFINV    = defop(Op.ERFINV,    "erfinv",    sc.erfinv,   (lambda g, o, x: g * (_SQRT_PI / 2) * np.exp(o * o),),                    "o",  numpy=sc.erfinv, public="scipy.special.erfinv", domain=(-0.9, 0.9))
ERFCINV   = defop(Op.ERFCINV,   "erfcinv",   sc.erfcinv,  (lambda g, o, x: g * (-_SQRT_PI / 2) * np.exp(o * o),),                   "o",  numpy=sc.erfcinv, public="scipy.special.erfcinv", domain=(0.1, 1.9))
EXPIT     = defop(Op.EXPIT,     "expit",     sc.expit,    (lambda g, o, x: g * o * (1 - o),),                                       "o",  numpy=sc.expit, public="scipy.special.expit", domain=(-4.0, 4.0))
LOGIT     = defop(Op.LOGIT,     "logit",     sc.logit,    (lambda g, o, x: g / (x * (1 - x)),),                                     "x",  numpy=sc.logit, public="scipy.special.logit", domain=UNIT)
NDTR      = defop(Op.NDTR,      "ndtr",      sc.ndtr,     (lambda g, o, x: g * np.exp(-0.5 * x * x) / _SQRT_2PI,),                  "x",  numpy=sc.ndtr, public="scipy.special.ndtr", domain=(-3.0, 3.0))
LOG_NDTR  = defop(Op.LOG_NDTR,  "log_ndtr",  sc.log_ndtr, (lambda g, o, x: g * np.exp(-0.5 * x * x - o) / _SQRT_2PI,),              "xo", numpy=sc.log_ndtr, public="scipy.special.log_ndtr", domain=(-3.0, 3.0))
NDTRI     = defop(Op.NDTRI,     "ndtri",     sc.ndtri,    (lambda g, o, x: g * _SQRT_2PI * np.exp(0.5 * o * o),),                   "o",  numpy=sc.ndtri, public="scipy.special.ndtri", domain=UNIT)
J0        = defop(Op.J0,        "j0",        sc.j0,       (lambda g, o, x: -g * sc.j1(x),),                                         "x",  numpy=sc.j0, public="scipy.special.j0")
J1        = defop(Op.J1,        "j1",        sc.j1,       (lambda g, o, x: g * (sc.j0(x) - sc.jv(2, x)) / 2,),                      "x",  numpy=sc.j1, public="scipy.special.j1")
Y0        = defop(Op.Y0,        "y0",        sc.y0,       (lambda g, o, x: -g * sc.y1(x),),                                         "x",  numpy=sc.y0, public="scipy.special.y0", domain=POSITIVE)
Y1        = defop(Op.Y1,        "y1",        sc.y1,       (lambda g, o, x: g * (sc.y0(x) - sc.yn(2, x)) / 2,),                      "x",  numpy=sc.y1, public="scipy.special.y1", domain=POSITIVE)
I0        = defop(Op.I0,        "i0",        sc.i0,       (lambda g, o, x: g * sc.i1(x),),                                          "x",  numpy=sc.i0, public="scipy.special.i0")
I1        = defop(Op.I1,        "i1",        sc.i1,       (lambda g, o, x: g * (sc.i0(x) + sc.iv(2, x)) / 2,),                      "x",  numpy=sc.i1, public="scipy.special.i1")
XLOGY     = defop(Op.XLOGY,     "xlogy",     sc.xlogy,    (lambda g, o, x, y: g * np.log(y),   lambda g, o, x, y: g * x / y),       "xy", numpy=sc.xlogy, public="scipy.special.xlogy", domain=(0.2, 2.0))
XLOG1PY   = defop(Op.XLOG1PY,   "xlog1py",   sc.xlog1py,  (lambda g, o, x, y: g * np.log1p(y), lambda g, o, x, y: g * x / (1 + y)), "xy", numpy=sc.xlog1py, public="scipy.special.xlog1py", domain=(0.2, 2.0))
BETA      = defop(Op.BETA,      "beta",      sc.beta,     (lambda g, o, a, b: g * o * (sc.digamma(a) - sc.digamma(a + b)), lambda g, o, a, b: g * o * (sc.digamma(b) - sc.digamma(a + b))), "xyo", numpy=sc.beta, public="scipy.special.beta", domain=POSITIVE)
BETALN    = defop(Op.BETALN,    "betaln",    sc.betaln,   (lambda g, o, a, b: g * (sc.digamma(a) - sc.digamma(a + b)), lambda g, o, a, b: g * (sc.digamma(b) - sc.digamma(a + b))), "xy", numpy=sc.betaln, public="scipy.special.betaln", domain=POSITIVE)
POLYGAMMA = defop(Op.POLYGAMMA, "polygamma", sc.polygamma, (None, lambda g, o, n, x: g * _polygamma(n + 1, x)),          "xy", public="scipy.special.polygamma", samples=_fixed_first((0,), (1,), (2,), ref=sc.polygamma))
GAMMAINC  = defop(Op.GAMMAINC,  "gammainc",  sc.gammainc, (_no_rule("gammainc", "a"), lambda g, o, a, x: g * np.exp(-x) * x ** (a - 1) * sc.rgamma(a)),  "xy", numpy=sc.gammainc, public="scipy.special.gammainc", samples=_fixed_first((0.7,), (2.5,)))
GAMMAINCC = defop(Op.GAMMAINCC, "gammaincc", sc.gammaincc, (_no_rule("gammaincc", "a"), lambda g, o, a, x: -g * np.exp(-x) * x ** (a - 1) * sc.rgamma(a)), "xy", numpy=sc.gammaincc, public="scipy.special.gammaincc", samples=_fixed_first((0.7,), (2.5,)))
JN        = defop(Op.JN,        "jn",        sc.jv,       (_no_rule("jn", "the order"), lambda g, o, n, x: g * (sc.jv(n - 1, x) - sc.jv(n + 1, x)) / 2),  "xy", numpy=sc.jv, public="scipy.special.jn", samples=_fixed_first((0,), (1,), (2.5,)))
YN        = defop(Op.YN,        "yn",        sc.yn,       (None, lambda g, o, n, x: g * (sc.yn(n - 1, x) - sc.yn(n + 1, x)) / 2),  "xy", numpy=sc.yn, public="scipy.special.yn", samples=_fixed_first((1,), (2,)))
IV        = defop(Op.IV,        "iv",        sc.iv,       (_no_rule("iv", "the order"), lambda g, o, v, x: g * (sc.iv(v - 1, x) + sc.iv(v + 1, x)) / 2),  "xy", numpy=sc.iv, public="scipy.special.iv", samples=_fixed_first((0,), (1.5,)))
IVE       = defop(Op.IVE,       "ive",       sc.ive,      (_no_rule("ive", "the order"), lambda g, o, v, x: g * (o * (v / x - np.sign(x)) + sc.ive(v + 1, x))), "xyo", numpy=sc.ive, public="scipy.special.ive", samples=_fixed_first((0,), (1.5,)))
BETAINC   = defop(Op.BETAINC,   "betainc",   sc.betainc,  (_no_rule("betainc", "a"), _no_rule("betainc", "b"), lambda g, o, a, b, x: g * x ** (a - 1) * (1 - x) ** (b - 1) / sc.beta(a, b)), "xyz", numpy=sc.betainc, public="scipy.special.betainc", samples=_fixed_first((2.0, 3.0), (0.7, 1.5), domain=UNIT))
# fmt: on

for _op in (GAMMALN, DIGAMMA, GAMMA, RGAMMA, GAMMASGN, ERF, ERFC, ERFINV, ERFCINV, EXPIT, LOGIT, NDTR, LOG_NDTR, NDTRI,
            J0, J1, Y0, Y1, I0, I1, XLOGY, XLOG1PY, BETA, BETALN, POLYGAMMA, GAMMAINC, GAMMAINCC, JN, YN, IV, IVE,
            BETAINC):  # fmt: skip
    _args = {1: "0.5", 2: "1, 0.5", 3: "2.0, 3.0, 0.5"}[_op.nin]
    _op.function.__doc__ = (
        f"scipy.special.{_op.name} on Tensors, differentiable in reverse and forward mode.\n\n"
        f">>> import numpy as np, scipy.special, tape.scipy.special as sp\n"
        f">>> bool(np.isclose(sp.{_op.name}({_args}), scipy.special.{'jv' if _op.name == 'jn' else _op.name}({_args})))\nTrue"
    )
