"""The decompositions beyond the generated op tests: closed forms, the degenerate cases the rules
are written for, their errors, and a NumPy program (a Gaussian process, as HIPS autograd's
example) differentiated unchanged."""

import numpy as np
import pytest

import tape as tp
from tape.scipy.stats import multivariate_normal
from tape.testing import check_grads

rng = np.random.default_rng(11)


def _spd(n):
    b = rng.standard_normal((n, n))
    return b @ b.T / n + np.eye(n)


def test_log_det_gradients_are_the_inverse_transpose():
    # d log det(a) / da = inv(a)^T: through slogdet, and through 2 sum log diag(cholesky(a))
    a = _spd(4)
    g_slogdet = tp.grad(lambda a: np.linalg.slogdet(a)[1])(a)
    np.testing.assert_allclose(g_slogdet, np.linalg.inv(a).T, rtol=1e-10)
    g_chol = tp.grad(lambda a: 2 * np.sum(np.log(np.einsum("ii->i", np.linalg.cholesky(a)))))(a)
    np.testing.assert_allclose(g_chol, np.linalg.inv(a), rtol=1e-10)  # symmetric: (a + a^T) / 2 read


def test_eigenvalue_functions_are_finite_at_repeated_eigenvalues():
    # sum(w) = trace(a): gradient I, also at the identity, where the eigenvectors are not unique
    g = tp.grad(lambda a: np.sum(np.linalg.eigh(a)[0]))(np.eye(3))
    np.testing.assert_allclose(g, np.eye(3), atol=1e-12)
    g = tp.grad(lambda a: np.sum(np.linalg.svd(a, compute_uv=False)))(np.diag([2.0, 2.0, 1.0]))
    np.testing.assert_allclose(g, np.eye(3), atol=1e-12)  # nuclear norm of a positive diagonal


def test_gauge_invariant_functions_of_the_vectors():
    a = _spd(3)
    for fn in (lambda a: np.sum(np.abs(np.linalg.eigh(a)[1]) * np.linalg.eigh(a)[0]),
               lambda a: np.sum(np.abs(np.linalg.svd(a)[0] @ np.linalg.svd(a)[2])),
               lambda a: np.sum(np.abs(np.linalg.eig(a)[1]) * np.linalg.eig(a)[0])):  # fmt: skip
        check_grads(lambda a, fn=fn: fn((a + a.T) / 2), [a], modes=("rev", "fwd"))


@pytest.mark.parametrize("ord", [2, -2, "nuc"])
def test_singular_value_matrix_norms(ord):
    x = rng.uniform(-1, 1, (2, 4, 3))
    got = tp.norm(tp.tensor(x), ord=ord, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(got.numpy(), np.linalg.norm(x, ord=ord, axis=(1, 2), keepdims=True), rtol=1e-12)
    check_grads(lambda x: tp.norm(x, ord=ord, axis=(2, 1)), [x], modes=("rev", "fwd"), order=2)
    m = x[0]
    assert float(np.linalg.norm(tp.tensor(m), ord=ord)) == pytest.approx(np.linalg.norm(m, ord=ord), rel=1e-12)


def test_results_are_namedtuples_like_numpy():
    a = tp.tensor(_spd(3))
    w, v = tp.linalg.eigh(a)
    assert tp.linalg.eigh(a).eigenvalues.shape == (3,) and v.shape == (3, 3)
    assert tp.linalg.svd(a).Vh.shape == (3, 3) and tp.linalg.qr(a).R.shape == (3, 3)
    x = tp.tensor(_spd(3), requires_grad=True)
    with tp.record():
        sign, logdet = np.linalg.slogdet(x)
    assert not sign.requires_grad and logdet.requires_grad


def test_errors_name_the_operation_and_the_shapes():
    with pytest.raises(ValueError, match=r"linalg\.eigh: expected square matrices, got shape \(2, 3\)"):
        tp.linalg.eigh(tp.ones((2, 3)))
    with pytest.raises(ValueError, match=r"linalg\.eig: the matrix of shape \(2, 2\) has complex eigenvalues"):
        np.linalg.eig(tp.tensor([[0.0, -1.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"linalg\.qr: mode must be"):
        tp.linalg.qr(tp.ones((2, 2)), mode="raw")
    x = tp.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    with tp.record():
        u, s, vh = np.linalg.svd(x)  # full_matrices=True: u is 3 x 3
        total = tp.sum(u)
    assert u.shape == (3, 3)
    with pytest.raises(NotImplementedError, match=r"full_matrices=True for a non-square matrix \(3x2\)"):
        total.backward()
    y = tp.tensor(rng.standard_normal((2, 3)), requires_grad=True)
    with tp.record():
        q, r = np.linalg.qr(y)
        total = tp.sum(r)
    with pytest.raises(NotImplementedError, match=r"linalg\.qr: derivatives are implemented for m >= n"):
        total.backward()


# A Gaussian process's log marginal likelihood, written for NumPy (HIPS autograd's example, with its
# import lines changed): an RBF kernel, then the multivariate normal density.
def gp_log_likelihood(params, x, y):
    log_amp, log_length, log_noise = params[0], params[1], params[2]
    sq = (x[:, None] - x[None, :]) ** 2
    cov = np.exp(log_amp) * np.exp(-0.5 * sq / np.exp(2 * log_length)) + np.exp(log_noise) * np.eye(len(x))
    return multivariate_normal.logpdf(y, np.zeros(len(x)), cov)


def test_a_gaussian_process_fit_differentiates_unchanged():
    x = np.linspace(-2, 2, 6)
    y = np.sin(x) + 0.1 * rng.standard_normal(6)
    params = np.array([0.1, -0.2, -1.5])
    g = tp.grad(gp_log_likelihood)(params, x, y)
    assert type(g) is np.ndarray and g.shape == (3,)
    eps = 1e-6
    fd = [(gp_log_likelihood(params + eps * e, x, y) - gp_log_likelihood(params - eps * e, x, y)) / (2 * eps)
          for e in np.eye(3)]  # fmt: skip
    np.testing.assert_allclose(g, np.array([float(v) for v in fd]), rtol=1e-6)
    check_grads(lambda p: gp_log_likelihood(p, x, y), [params], modes=("rev", "fwd"), order=2)
