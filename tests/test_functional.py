"""Functional transforms (API §3), forward mode and higher order, against closed forms."""

import numpy as np
import pytest

import tape as tp

X = np.linspace(-1.0, 1.0, 5)


def f_readme(x):
    """The issue's example: plain NumPy code."""
    return np.sum(np.tanh(x) ** 2) + np.sum(x[:-1] * x[1:])


def grad_readme(x):
    t = np.tanh(x)
    g = 2 * t * (1 - t**2)
    g[:-1] += x[1:]
    g[1:] += x[:-1]
    return g


def hessian_readme(x):
    t = np.tanh(x)
    s = 1 - t**2
    h = np.diag(2 * s**2 - 4 * t**2 * s)
    h += np.diag(np.ones(len(x) - 1), 1) + np.diag(np.ones(len(x) - 1), -1)
    return h


def test_grad_of_plain_numpy_code():
    np.testing.assert_allclose(tp.grad(f_readme)(X), grad_readme(X), rtol=1e-12)


def test_second_derivative_by_composition():
    assert float(tp.grad(tp.grad(np.sin))(0.3)) == pytest.approx(-np.sin(0.3), rel=1e-12)
    third = tp.grad(tp.grad(tp.grad(lambda x: x**4)))(2.0)
    assert float(third) == pytest.approx(24 * 2.0, rel=1e-12)


def test_hessian_and_hvp_closed_forms():
    np.testing.assert_allclose(tp.hessian(f_readme)(X), hessian_readme(X), rtol=1e-10, atol=1e-12)
    v = np.random.default_rng(0).standard_normal(5)
    np.testing.assert_allclose(tp.hvp(f_readme, (X,), (v,)), hessian_readme(X) @ v, rtol=1e-10)


def test_quadratic_form_hessian_is_a_plus_a_transpose():
    a = np.random.default_rng(1).standard_normal((4, 4))
    x = np.random.default_rng(2).standard_normal(4)
    quad = lambda x: x @ tp.tensor(a) @ x  # noqa: E731
    np.testing.assert_allclose(tp.hessian(quad)(x), a + a.T, rtol=1e-12)
    np.testing.assert_allclose(tp.hvp(quad, (x,), (np.ones(4),)), (a + a.T) @ np.ones(4), rtol=1e-12)


def test_jvp_is_forward_mode_without_a_tape():
    v = np.random.default_rng(3).standard_normal(5)
    with tp.record() as t:
        out, tangent = tp.jvp(f_readme, (X,), (v,))
    assert len(t) == 0  # dual numbers only: nothing recorded
    assert float(out) == pytest.approx(f_readme(X))
    assert float(tangent) == pytest.approx(grad_readme(X) @ v, rel=1e-12)


def test_nested_jvp_gives_second_directional_derivatives():
    # d²/ds² sin(x + s v) at s = 0 = -sin(x) v², with two jvps one inside the other
    def d1(x):
        return tp.jvp(tp.sin, (x,), (tp.tensor(2.0),))[1]

    _, second = tp.jvp(d1, (tp.tensor(0.7),), (tp.tensor(2.0),))
    assert float(second) == pytest.approx(-np.sin(0.7) * 4.0, rel=1e-12)


def test_jacobians_forward_and_reverse_agree_with_the_closed_form():
    f = lambda x: tp.sin(x) * x[::-1]  # noqa: E731
    x = np.array([0.2, -0.5, 1.1])
    expected = np.diag(np.cos(x) * x[::-1]) + np.diag(np.sin(x))[:, ::-1]
    np.testing.assert_allclose(tp.jacobian(f)(x), expected, rtol=1e-12)
    np.testing.assert_allclose(tp.jacrev(f)(x), expected, rtol=1e-12)
    np.testing.assert_allclose(tp.jacfwd(f)(x), expected, rtol=1e-12)
    assert tp.jacfwd(lambda m: m.T)(np.ones((2, 3))).shape == (3, 2, 2, 3)


def test_value_and_grad_with_argnums_and_pytrees():
    def loss(params, x):
        return tp.sum((x @ params["w"] + params["b"]) ** 2)

    params = {"w": np.array([[1.0], [2.0]]), "b": np.array([0.5])}
    x = np.array([[1.0, -1.0], [0.5, 2.0]])
    value, g = tp.value_and_grad(loss)(params, x)
    r = x @ params["w"] + params["b"]
    assert float(value) == pytest.approx(float(np.sum(r**2)))
    np.testing.assert_allclose(g["w"], 2 * x.T @ r)
    np.testing.assert_allclose(g["b"], [2 * r.sum()])
    gp, gx = tp.grad(loss, argnums=(0, 1))(params, x)
    np.testing.assert_allclose(gx, 2 * r @ params["w"].T)
    assert set(gp) == {"w", "b"}


def test_vjp_returns_one_entry_per_primal_and_zeros_for_unused():
    out, vjp_fn = tp.vjp(lambda x, y, z: x * y, np.array([1.0, 2.0]), np.array([3.0, 4.0]), np.array([5.0]))
    gx, gy, gz = vjp_fn(np.array([1.0, 10.0]))
    np.testing.assert_array_equal(gx, [3.0, 40.0])
    np.testing.assert_array_equal(gy, [1.0, 20.0])
    np.testing.assert_array_equal(gz, [0.0])
    np.testing.assert_array_equal(vjp_fn(np.array([1.0, 0.0]))[0], [3.0, 0.0])  # callable again
    np.testing.assert_array_equal(out, [3.0, 8.0])


def test_grad_requires_a_scalar_and_gives_zeros_when_unconnected():
    with pytest.raises(TypeError, match=r"scalar.*\(2,\)"):
        tp.grad(lambda x: x * 2)(np.ones(2))
    np.testing.assert_array_equal(tp.grad(lambda x: tp.tensor(3.0))(np.ones(2)), [0.0, 0.0])


def test_integers_are_wrapped_as_floats():
    assert float(tp.grad(lambda x: x**3)(2)) == 12.0


def test_create_graph_backward_twice():
    x = tp.tensor([0.5, -1.0], requires_grad=True)
    with tp.record():
        y = tp.sum(x**3)
    y.backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    np.testing.assert_allclose(g.numpy(), 3 * x.numpy() ** 2)
    x.zero_grad()
    with tp.record():
        s = tp.sum(g)
    s.backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * x.numpy())


def test_forward_over_reverse_gives_the_second_derivative():
    # d/dx (3 x^2) = 6 x: the jvp of the gradient at x = 1.5 along 2 is 18
    g, hv = tp.jvp(tp.grad(lambda x: x**3), (tp.tensor(1.5),), (tp.tensor(2.0),))
    assert float(g) == 3 * 1.5**2 and float(hv) == 6 * 1.5 * 2.0


def test_the_plain_sweep_records_nothing():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record() as t:
        y = tp.sum(tp.exp(x) * x)
    n, appended = len(t), t._store.next
    y.backward()
    assert len(t) == n and not x.grad.requires_grad
    assert t._store.next == appended  # no entry was appended by the sweep (len(t) alone is a closed block's)
