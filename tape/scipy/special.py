"""`tape.scipy.special`: scipy.special's functions on Tensors, differentiable in both modes.

The ufuncs are rows of the op table (tape/ops/special.py); `logsumexp`, `softmax`, `log_softmax`
and `multigammaln` are composites with SciPy's signatures.

>>> import tape as tp
>>> from tape.scipy.special import erf
>>> round(float(tp.grad(erf)(0.0)), 6)  # 2 / sqrt(pi)
1.128379
"""

from __future__ import annotations

import numpy as np

from ..composite import _arr, _reduced_shape, _shape, stop_gradient
from ..composite import log_softmax as _log_softmax
from ..ops import exp, log, reshape, sign, sum
from ..ops import special as _rows
from ..ops.registry import export
from ..tensor import _new_tensor

gammaln = _rows.GAMMALN.function
digamma = psi = _rows.DIGAMMA.function
polygamma = _rows.POLYGAMMA.function
gamma = _rows.GAMMA.function
rgamma = _rows.RGAMMA.function
gammasgn = _rows.GAMMASGN.function
gammainc = _rows.GAMMAINC.function
gammaincc = _rows.GAMMAINCC.function
beta = _rows.BETA.function
betaln = _rows.BETALN.function
betainc = _rows.BETAINC.function
erf = _rows.ERF.function
erfc = _rows.ERFC.function
erfinv = _rows.ERFINV.function
erfcinv = _rows.ERFCINV.function
expit = _rows.EXPIT.function
logit = _rows.LOGIT.function
ndtr = _rows.NDTR.function
log_ndtr = _rows.LOG_NDTR.function
ndtri = _rows.NDTRI.function
xlogy = _rows.XLOGY.function
xlog1py = _rows.XLOG1PY.function
j0, j1, y0, y1 = _rows.J0.function, _rows.J1.function, _rows.Y0.function, _rows.Y1.function
jn = jv = _rows.JN.function
yn = _rows.YN.function
i0, i1 = _rows.I0.function, _rows.I1.function
iv, ive = _rows.IV.function, _rows.IVE.function


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False):
    """log(sum(b * exp(a))) over `axis`, without overflow (scipy.special.logsumexp).

    With ``return_sign=True`` returns ``(log|s|, sign(s))``, the sign without history.

    >>> from tape.scipy.special import logsumexp
    >>> round(float(logsumexp([1000.0, 1000.0], b=[1.0, 3.0])), 4)
    1001.3863
    """
    m = np.max(_arr(a), axis=axis, keepdims=True)
    m = stop_gradient(np.where(np.isfinite(m), m, 0.0))  # all -inf slices: shift by 0 instead of nan
    e = exp(a - m) if b is None else b * exp(a - m)
    s = sum(e, axis=axis, keepdims=True)
    if return_sign:
        sgn = _new_tensor(np.sign(_arr(s)))
        out = log(s * sign(_arr(s))) + m
    else:
        out = log(s) + m
    if not keepdims:
        shape = _reduced_shape(np.broadcast_shapes(_shape(a), np.shape(_arr(b)) if b is not None else ()), axis)
        out = reshape(out, shape)
        if return_sign:
            sgn = _new_tensor(np.reshape(sgn.array, shape))
    return (out, sgn) if return_sign else out


def softmax(x, axis=None):
    """exp(x) / sum(exp(x)) over `axis` (scipy.special.softmax: all of x by default)."""
    return exp(log_softmax(x, axis=axis))


def log_softmax(x, axis=None):
    """x - logsumexp(x) over `axis` (scipy.special.log_softmax: all of x by default): `tp.log_softmax`,
    whose default axis is the last one.

    >>> import numpy as np, tape as tp
    >>> from tape.scipy.special import log_softmax
    >>> log_softmax(tp.tensor(np.float32([1000.0, 1000.0]))).numpy()
    array([-0.6931472, -0.6931472], dtype=float32)
    """
    return _log_softmax(x, axis=axis)


def multigammaln(a, d):
    """The log of the multivariate gamma function of dimension `d` (scipy.special.multigammaln)."""
    d = int(d)
    if np.any(_arr(a) <= (d - 1) / 2):
        raise ValueError(f"multigammaln: every a must be > (d - 1) / 2 = {(d - 1) / 2}, got {_arr(a)}")
    total = d * (d - 1) / 4 * np.log(np.pi)
    for j in range(d):
        total = total + gammaln(a - j / 2)
    return total


for _fn in (logsumexp, softmax, log_softmax, multigammaln):
    export(_fn, name="scipy.special." + _fn.__name__)
