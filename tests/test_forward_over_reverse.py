"""Forward over reverse (issue 13): tangents flow through the reverse sweep, so `tp.jvp` of a
function that calls `tp.grad` is a Hessian-vector product, and `tp.jacfwd(tp.jacrev(f))` a Hessian.

Every generated op case is checked against reverse over reverse (create_graph), an independent
path through the engine, and the Hessians of closed forms against their formulas.
"""

import numpy as np
import pytest

import tape as tp

from .op_cases import all_cases

CASES = [c for c in all_cases() if c.id not in ("to-cpu",)]


def _scalarised(case, u):
    """sum(u * f(x...)): a scalar function of all the case's inputs."""
    return lambda *xs: tp.sum(case.fn(*xs) * u)


def _fwd_over_rev(f, xs, vs):
    nums = tuple(range(len(xs)))
    _, hv = tp.jvp(lambda *a: tp.grad(f, nums)(*a), [tp.tensor(x) for x in xs], [tp.tensor(v) for v in vs])
    return [h.numpy() for h in hv]


def _rev_over_rev(f, xs, vs):
    nums = tuple(range(len(xs)))

    def inner(*a):
        gs = tp.grad(f, nums)(*a)
        return sum(tp.sum(g * tp.tensor(v)) for g, v in zip(gs, vs))

    return [g.numpy() for g in tp.grad(inner, nums)(*[tp.tensor(x) for x in xs])]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward_over_reverse_equals_reverse_over_reverse(case):
    rng = np.random.default_rng(7)
    xs = [np.asarray(a, dtype=np.float64) for a in case.args]
    with tp.no_grad():
        u = rng.standard_normal(case.fn(*[tp.tensor(x) for x in xs]).shape)
    vs = [rng.standard_normal(x.shape) for x in xs]
    f = _scalarised(case, u)
    for a, b in zip(_fwd_over_rev(f, xs, vs), _rev_over_rev(f, xs, vs)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_hessian_of_a_closed_form():
    # f = sum(x^3) + x0 x1: H = diag(6x) + [[0, 1], [1, 0]]
    f = lambda x: tp.sum(x**3) + x[0] * x[1]  # noqa: E731
    x = np.array([0.5, -2.0])
    expected = np.diag(6 * x) + np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(tp.jacfwd(tp.jacrev(f))(tp.tensor(x)).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(tp.hessian(f)(tp.tensor(x)).numpy(), expected, rtol=1e-12)
    v = np.array([1.0, 3.0])
    np.testing.assert_allclose(tp.hvp(f, (tp.tensor(x),), (tp.tensor(v),)).numpy(), expected @ v, rtol=1e-12)


def test_hvp_of_the_benchmark_function_against_finite_differences():
    # W6 of the harness: sum(tanh(x)^2) + sum(x[:-1] x[1:]); H v by central differences of the gradient
    f = lambda x: tp.sum(tp.tanh(x) ** 2) + tp.sum(x[:-1] * x[1:])  # noqa: E731
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(50), rng.standard_normal(50)
    grad = lambda z: tp.grad(f)(tp.tensor(z)).numpy()  # noqa: E731
    eps = 1e-6
    fd = (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(tp.hvp(f, (tp.tensor(x),), (tp.tensor(v),)).numpy(), fd, rtol=1e-6, atol=1e-7)


def test_the_tangent_of_the_gradient_is_not_zero_by_accident():
    # d/dx grad(sin(x) * y) = cos(x) y' ... along (1, 0): d/dx (cos(x) y) = -sin(x) y; along (0, 1): cos(x)
    f = lambda x, y: tp.sin(x) * y  # noqa: E731
    x, y = tp.tensor(0.7), tp.tensor(2.0)
    _, t = tp.jvp(lambda a, b: tp.grad(f)(a, b), (x, y), (tp.tensor(1.0), tp.tensor(0.0)))
    assert np.isclose(float(t), -np.sin(0.7) * 2.0, rtol=1e-14)
    _, t = tp.jvp(lambda a, b: tp.grad(f)(a, b), (x, y), (tp.tensor(0.0), tp.tensor(1.0)))
    assert np.isclose(float(t), np.cos(0.7), rtol=1e-14)


def test_jacfwd_of_jacrev_of_a_vector_function():
    # f(x) = A tanh(x): d2 f_i / dx_j dx_k = A_ij * tanh''(x_j) * [j == k]
    rng = np.random.default_rng(3)
    A, x = rng.standard_normal((2, 3)), rng.standard_normal(3)
    t = np.tanh(x)
    second = -2 * t * (1 - t**2)
    expected = np.einsum("ij,jk->ijk", A * second, np.eye(3))
    got = tp.jacfwd(tp.jacrev(lambda z: tp.tensor(A) @ tp.tanh(z)))(tp.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
