"""`tape.scipy.stats`: the distributions HIPS autograd differentiates, with SciPy's signatures
(`logpdf`, `pdf`, `cdf`, `logcdf`, ...), as composites of tape's ops: differentiable in every
argument whose derivative the underlying special function has (a shape parameter that only enters
through `gammainc` or `betainc`, as in `gamma.cdf` or `t.cdf`, raises NotImplementedError when
it is differentiated instead of giving a silently wrong zero).

>>> import tape as tp
>>> from tape.scipy.stats import norm
>>> round(float(tp.grad(norm.logpdf)(1.5)), 6)  # -(x - loc) / scale**2
-1.5
"""

from __future__ import annotations

import numpy as np

from ..composite import _arr, _shape
from ..ops import einsum, exp, log, log1p, sum, where
from ..ops.linalg import CHOLESKY, SOLVE, slogdet
from ..ops.registry import export
from . import special as sp

_LOG_2PI = float(np.log(2 * np.pi))


class _Distribution:
    """A namespace of functions, printed by name (scipy.stats.norm and friends are objects too)."""

    def __init__(self, name, **functions):
        self.name = name
        for fname, fn in functions.items():
            fn.__name__ = fn.__qualname__ = fname
            fn.__doc__ = fn.__doc__ or f"scipy.stats.{name}.{fname} on Tensors, with SciPy's signature."
            setattr(self, fname, fn)
            export(fn, name=f"scipy.stats.{name}.{fname}")

    def __repr__(self):
        return f"<tape.scipy.stats.{self.name}>"


# -- norm -----------------------------------------------------------------------------------------
def _norm_logpdf(x, loc=0.0, scale=1.0):
    z = (x - loc) / scale
    return -0.5 * z * z - log(scale) - 0.5 * _LOG_2PI


norm = _Distribution(
    "norm",
    logpdf=_norm_logpdf,
    pdf=lambda x, loc=0.0, scale=1.0: exp(_norm_logpdf(x, loc, scale)),
    cdf=lambda x, loc=0.0, scale=1.0: sp.ndtr((x - loc) / scale),
    logcdf=lambda x, loc=0.0, scale=1.0: sp.log_ndtr((x - loc) / scale),
    sf=lambda x, loc=0.0, scale=1.0: sp.ndtr((loc - x) / scale),
    logsf=lambda x, loc=0.0, scale=1.0: sp.log_ndtr((loc - x) / scale),
    ppf=lambda q, loc=0.0, scale=1.0: loc + scale * sp.ndtri(q),
)


# -- multivariate_normal -----------------------------------------------------------------------------
def _cov_matrix(cov, d):
    if np.ndim(_arr(cov)) == 0:
        return cov * np.eye(d)
    if np.ndim(_arr(cov)) == 1:
        return cov * np.eye(d)  # a diagonal given as a vector
    return cov


def _mvn_logpdf(x, mean=None, cov=1, allow_singular=False):
    if allow_singular:
        raise NotImplementedError("multivariate_normal.logpdf: allow_singular=True is not supported")
    xs = _shape(x)
    d = int(np.size(_arr(mean))) if mean is not None else (xs[-1] if len(xs) else 1)
    if mean is not None and np.ndim(_arr(mean)) == 0:
        mean = mean * np.ones(d)
    if d == 1 and (len(xs) == 0 or xs[-1] != 1):
        x = x[..., None] if len(xs) else x * np.ones(1)  # SciPy reads 1-D x of a univariate as points
    c = _cov_matrix(cov, d)
    if np.shape(_arr(c)) != (d, d):
        raise ValueError(f"multivariate_normal.logpdf: cov of shape {np.shape(_arr(cov))} for dimension {d}")
    chol = CHOLESKY.function(c)
    diff = x if mean is None else x - mean
    z = SOLVE.function(chol, diff[..., None])[..., 0] if len(_shape(diff)) > 1 else SOLVE.function(chol, diff)
    half_logdet = sum(log(einsum("ii->i", chol)))
    return -0.5 * sum(z * z, axis=-1) - half_logdet - 0.5 * d * _LOG_2PI


def _mvn_entropy(mean=None, cov=1):
    d = int(np.size(_arr(mean))) if mean is not None else (np.shape(_arr(cov)) or (1,))[0]
    return 0.5 * (d * (1 + _LOG_2PI) + slogdet(_cov_matrix(cov, d))[1])


multivariate_normal = _Distribution(
    "multivariate_normal",
    logpdf=_mvn_logpdf,
    pdf=lambda x, mean=None, cov=1, allow_singular=False: exp(_mvn_logpdf(x, mean, cov, allow_singular)),
    entropy=_mvn_entropy,
)


# -- t ----------------------------------------------------------------------------------------------
def _t_logpdf(x, df, loc=0.0, scale=1.0):
    z = (x - loc) / scale
    return (
        sp.gammaln((df + 1) / 2)
        - sp.gammaln(df / 2)
        - 0.5 * log(df * np.pi)
        - log(scale)
        - (df + 1) / 2 * log1p(z * z / df)
    )


def _t_cdf(x, df, loc=0.0, scale=1.0):
    z = (x - loc) / scale
    tail = 0.5 * sp.betainc(df / 2, 0.5, df / (df + z * z))
    return where(_arr(z) < 0, tail, 1 - tail)


t = _Distribution(
    "t",
    logpdf=_t_logpdf,
    pdf=lambda x, df, loc=0.0, scale=1.0: exp(_t_logpdf(x, df, loc, scale)),
    cdf=_t_cdf,
    logcdf=lambda x, df, loc=0.0, scale=1.0: log(_t_cdf(x, df, loc, scale)),
)


# -- gamma, chi2 ---------------------------------------------------------------------------------------
def _gamma_logpdf(x, a, loc=0.0, scale=1.0):
    z = (x - loc) / scale
    return sp.xlogy(a - 1, z) - z - sp.gammaln(a) - log(scale)


gamma = _Distribution(
    "gamma",
    logpdf=_gamma_logpdf,
    pdf=lambda x, a, loc=0.0, scale=1.0: exp(_gamma_logpdf(x, a, loc, scale)),
    cdf=lambda x, a, loc=0.0, scale=1.0: sp.gammainc(a, (x - loc) / scale),
)

chi2 = _Distribution(
    "chi2",
    logpdf=lambda x, df, loc=0.0, scale=1.0: _gamma_logpdf(x, df / 2, loc, 2 * scale),
    pdf=lambda x, df, loc=0.0, scale=1.0: exp(_gamma_logpdf(x, df / 2, loc, 2 * scale)),
    cdf=lambda x, df, loc=0.0, scale=1.0: sp.gammainc(df / 2, (x - loc) / (2 * scale)),
)


# -- beta -----------------------------------------------------------------------------------------------
def _beta_logpdf(x, a, b, loc=0.0, scale=1.0):
    z = (x - loc) / scale
    return sp.xlogy(a - 1, z) + sp.xlog1py(b - 1, -z) - sp.betaln(a, b) - log(scale)


beta = _Distribution(
    "beta",
    logpdf=_beta_logpdf,
    pdf=lambda x, a, b, loc=0.0, scale=1.0: exp(_beta_logpdf(x, a, b, loc, scale)),
    cdf=lambda x, a, b, loc=0.0, scale=1.0: sp.betainc(a, b, (x - loc) / scale),
)


# -- poisson ----------------------------------------------------------------------------------------------
def _poisson_logpmf(k, mu, loc=0):
    k = k - loc
    return sp.xlogy(k, mu) - sp.gammaln(k + 1) - mu


poisson = _Distribution(
    "poisson",
    logpmf=_poisson_logpmf,
    pmf=lambda k, mu, loc=0: exp(_poisson_logpmf(k, mu, loc)),
    cdf=lambda k, mu, loc=0: sp.gammaincc(np.floor(_arr(k) - loc) + 1, mu),
)


# -- dirichlet ---------------------------------------------------------------------------------------------
def _dirichlet_logpdf(x, alpha):
    # SciPy's layout: the components on the first axis of x (K or K x N), alpha of shape (K,)
    a = alpha if np.ndim(_arr(x)) == 1 else alpha[:, None]
    return sum(sp.xlogy(a - 1, x), axis=0) + sp.gammaln(sum(alpha)) - sum(sp.gammaln(alpha))


dirichlet = _Distribution(
    "dirichlet",
    logpdf=_dirichlet_logpdf,
    pdf=lambda x, alpha: exp(_dirichlet_logpdf(x, alpha)),
)
