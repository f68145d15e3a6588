"""tape.scipy (API §4): scipy.special on Tensors (the rows are tested with the op table, in
tests/test_ops.py), its composites, and scipy.stats' distributions, against SciPy's values and
finite differences."""

# ruff: noqa: E501  (the cases are a table, one per line, like the op tables)
import subprocess
import sys

import numpy as np
import pytest
import scipy.special as sc
import scipy.stats as ss

import tape as tp
from tape.scipy import special, stats
from tape.testing import check_grads

rng = np.random.default_rng(7)
X = rng.uniform(0.2, 0.8, size=3)  # inside every support below
POS = rng.uniform(0.5, 2.5, size=3)

# (id, tape's function, SciPy's, arguments): every argument is differentiated, unless fixed in a lambda
CASES = [
    ("norm.logpdf", stats.norm.logpdf, ss.norm.logpdf, [X, 0.3, 1.7]),
    ("norm.pdf", stats.norm.pdf, ss.norm.pdf, [X, 0.3, 1.7]),
    ("norm.cdf", stats.norm.cdf, ss.norm.cdf, [X, 0.3, 1.7]),
    ("norm.logcdf", stats.norm.logcdf, ss.norm.logcdf, [X - 3, 0.3, 1.7]),
    ("norm.sf", stats.norm.sf, ss.norm.sf, [X, 0.3, 1.7]),
    ("norm.logsf", stats.norm.logsf, ss.norm.logsf, [X + 3, 0.3, 1.7]),
    ("norm.ppf", stats.norm.ppf, ss.norm.ppf, [X, 0.3, 1.7]),
    ("t.logpdf", stats.t.logpdf, ss.t.logpdf, [X, 3.5, 0.1, 1.4]),
    ("t.pdf", stats.t.pdf, ss.t.pdf, [X, 3.5, 0.1, 1.4]),
    ("t.cdf", lambda x, loc, s: stats.t.cdf(x, 3.5, loc, s), lambda x, loc, s: ss.t.cdf(x, 3.5, loc, s), [X - 0.5, 0.1, 1.4]),
    ("t.logcdf", lambda x: stats.t.logcdf(x, 2.5), lambda x: ss.t.logcdf(x, 2.5), [X - 0.5]),
    ("gamma.logpdf", stats.gamma.logpdf, ss.gamma.logpdf, [POS, 2.5, 0.1, 1.3]),
    ("gamma.pdf", stats.gamma.pdf, ss.gamma.pdf, [POS, 2.5, 0.1, 1.3]),
    ("gamma.cdf", lambda x, loc, s: stats.gamma.cdf(x, 2.5, loc, s), lambda x, loc, s: ss.gamma.cdf(x, 2.5, loc, s), [POS, 0.1, 1.3]),
    ("chi2.logpdf", stats.chi2.logpdf, ss.chi2.logpdf, [POS, 3.5]),
    ("chi2.pdf", stats.chi2.pdf, ss.chi2.pdf, [POS, 3.5]),
    ("chi2.cdf", lambda x: stats.chi2.cdf(x, 3.5), lambda x: ss.chi2.cdf(x, 3.5), [POS]),
    ("beta.logpdf", stats.beta.logpdf, ss.beta.logpdf, [X, 2.5, 1.5]),
    ("beta.pdf", stats.beta.pdf, ss.beta.pdf, [X, 2.5, 1.5]),
    ("beta.cdf", lambda x: stats.beta.cdf(x, 2.5, 1.5), lambda x: ss.beta.cdf(x, 2.5, 1.5), [X]),
    ("poisson.logpmf", lambda mu: stats.poisson.logpmf(np.array([0.0, 2.0, 5.0]), mu), lambda mu: ss.poisson.logpmf([0, 2, 5], mu), [POS]),
    ("poisson.pmf", lambda mu: stats.poisson.pmf(np.array([0.0, 2.0, 5.0]), mu), lambda mu: ss.poisson.pmf([0, 2, 5], mu), [POS]),
    ("poisson.cdf", lambda mu: stats.poisson.cdf(np.array([0.0, 2.0, 5.0]), mu), lambda mu: ss.poisson.cdf([0, 2, 5], mu), [POS]),
    ("dirichlet.logpdf", stats.dirichlet.logpdf, ss.dirichlet.logpdf, [np.array([0.2, 0.3, 0.5]), np.array([1.5, 2.0, 3.0])]),
    ("dirichlet.pdf-batch", stats.dirichlet.pdf, ss.dirichlet.pdf, [np.array([[0.2, 0.3], [0.3, 0.3], [0.5, 0.4]]), np.array([1.5, 2.0, 3.0])]),
    ("mvn.logpdf", stats.multivariate_normal.logpdf, ss.multivariate_normal.logpdf,
     [rng.standard_normal((4, 2)), np.array([0.1, -0.2]), np.array([[2.0, 0.3], [0.3, 1.0]])]),
    ("mvn.pdf-one-point", stats.multivariate_normal.pdf, ss.multivariate_normal.pdf,
     [np.array([0.5, 1.0]), np.array([0.1, -0.2]), np.array([[2.0, 0.3], [0.3, 1.0]])]),
    ("mvn.logpdf-diagonal", lambda x, c: stats.multivariate_normal.logpdf(x, np.zeros(3), c),
     lambda x, c: ss.multivariate_normal.logpdf(x, np.zeros(3), c), [rng.standard_normal((2, 3)), POS]),
    ("mvn.entropy", stats.multivariate_normal.entropy, ss.multivariate_normal.entropy,
     [np.array([0.1, -0.2]), np.array([[2.0, 0.3], [0.3, 1.0]])]),
    ("logsumexp-b", lambda a, b: special.logsumexp(a, axis=1, b=b), lambda a, b: sc.logsumexp(a, axis=1, b=b),
     [rng.standard_normal((2, 3)), POS]),
    ("logsumexp-keepdims", lambda a: special.logsumexp(a, axis=0, keepdims=True), lambda a: sc.logsumexp(a, axis=0, keepdims=True),
     [rng.standard_normal((2, 3))]),
    ("softmax", special.softmax, sc.softmax, [rng.standard_normal((2, 3))]),
    ("log_softmax-axis", lambda x: special.log_softmax(x, axis=1), lambda x: sc.log_softmax(x, axis=1), [rng.standard_normal((2, 3))]),
    ("multigammaln", lambda a: special.multigammaln(a, 3), lambda a: sc.multigammaln(a, 3), [POS + 1.5]),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_matches_scipy_and_finite_differences(case):
    _, fn, ref, args = case
    got = fn(*[tp.tensor(a) for a in args])
    np.testing.assert_allclose(np.asarray(got.numpy()), ref(*args), rtol=1e-10, atol=1e-12)
    # the mvn covariance is perturbed symmetrically: its cholesky reads the lower triangle
    sym = [(lambda c: (c + c.T) / 2) if np.ndim(a) == 2 and a.shape[0] == a.shape[1] and "mvn" in case[0] else None
           for a in args]  # fmt: skip

    def f(*xs):
        return fn(*[s(x) if s else x for s, x in zip(sym, xs)])

    check_grads(f, args, modes=("rev", "fwd"), order=2)


def test_logsumexp_return_sign_matches_scipy():
    a, b = np.array([1.0, 2.0]), np.array([1.0, -3.0])
    out, sign = special.logsumexp(tp.tensor(a), b=b, return_sign=True)
    ref_out, ref_sign = sc.logsumexp(a, b=b, return_sign=True)
    assert float(out) == pytest.approx(ref_out, rel=1e-12) and float(sign) == ref_sign
    check_grads(lambda a: special.logsumexp(a, b=b, return_sign=True)[0], [a], modes=("rev", "fwd"))


@pytest.mark.parametrize("axis", [None, 1])
def test_log_softmax_keeps_float32_precision_for_large_logits(axis):
    # as tp.log_softmax: the shift is exact and the result rounded once, at its own scale (x - (log(sum)
    # + m) rounds at m's: half an ulp of 1000, ~250 float32 ulps of a value near 1)
    x = (1000.0 + np.random.default_rng(2).uniform(-3, 3, (4, 5))).astype(np.float32)
    expected = sc.log_softmax(x.astype(np.float64), axis=axis)
    got = special.log_softmax(tp.tensor(x), axis=axis).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(np.float32).eps, atol=0)
    check_grads(lambda v: special.log_softmax(v, axis=axis), [x.astype(np.float64) - 998.0])


def test_scipy_special_ufuncs_dispatch_to_tape():
    x = tp.tensor([0.3, 0.7], requires_grad=True)
    with tp.record() as t:
        y = tp.sum(sc.erf(x) * sc.gammaln(x + 1))
    assert [e.op for e in t.entries][:3] == ["erf", "add", "gammaln"]
    y.backward()
    xs = np.array([0.3, 0.7])
    expected = 2 / np.sqrt(np.pi) * np.exp(-(xs**2)) * sc.gammaln(xs + 1) + sc.erf(xs) * sc.digamma(xs + 1)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


def test_a_scipy_ufunc_tape_lacks_is_refused_by_name():
    x = tp.tensor([1.5, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"the ufunc struve is not implemented by tape"):
        with tp.record():
            sc.struve(x, x)


def test_a_shape_parameter_without_a_derivative_raises():
    a = tp.tensor(2.5, requires_grad=True)
    with tp.record():
        y = stats.gamma.cdf(1.0, a)
    with pytest.raises(NotImplementedError, match="gammainc: no derivative with respect to a"):
        y.backward()


def _run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


def test_tape_imports_without_scipy_and_tape_scipy_names_the_extra():
    blocked = "import sys; sys.modules['scipy'] = None\n"
    ok = _run(
        blocked + "import tape, sys; assert 'tape.ops.special' not in sys.modules; print(tape.grad(tape.sin)(0.0))"
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "1.0"
    missing = _run(blocked + "import tape.scipy")
    assert missing.returncode != 0
    assert "ImportError: tape.scipy needs SciPy" in missing.stderr and "wengert-tape[scipy]" in missing.stderr
