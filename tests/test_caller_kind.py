"""Arrays in, arrays out (API §3): the functional transforms return the caller's kind, and a 0-d
Tensor formats like a float (API §4)."""

import numpy as np
import pytest
import scipy.optimize

import tape as tp

X = np.array([0.3, -1.2, 2.0])


def rosen(x):
    return np.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2)


def rosen_grad(x):  # the closed form
    g = np.zeros_like(x)
    g[:-1] = -400 * x[:-1] * (x[1:] - x[:-1] ** 2) - 2 * (1 - x[:-1])
    g[1:] += 200 * (x[1:] - x[:-1] ** 2)
    return g


def test_numpy_in_numpy_out_for_every_transform():
    f = lambda x: np.sum(np.sin(x) * x)  # noqa: E731
    g = tp.grad(f)(X)
    assert type(g) is np.ndarray and g.shape == (3,)
    np.testing.assert_allclose(g, np.cos(X) * X + np.sin(X), rtol=1e-12)
    value, g2 = tp.value_and_grad(f)(X)
    assert isinstance(value, np.float64) and type(g2) is np.ndarray
    out, vjp_fn = tp.vjp(np.sin, X)
    assert type(out) is np.ndarray and type(vjp_fn(np.ones(3))[0]) is np.ndarray
    primal, tangent = tp.jvp(np.sin, (X,), (np.ones(3),))
    assert type(primal) is np.ndarray and type(tangent) is np.ndarray
    np.testing.assert_allclose(tangent, np.cos(X), rtol=1e-12)
    for jac in (tp.jacobian, tp.jacrev, tp.jacfwd):
        j = jac(np.sin)(X)
        assert type(j) is np.ndarray
        np.testing.assert_allclose(j, np.diag(np.cos(X)), rtol=1e-12)
    h = tp.hessian(f)(X)
    assert type(h) is np.ndarray and h.shape == (3, 3)
    hv = tp.hvp(f, (X,), (np.ones(3),))
    assert type(hv) is np.ndarray
    np.testing.assert_allclose(hv, h @ np.ones(3), rtol=1e-12)


def test_python_floats_in_floats_out_and_nesting_keeps_working():
    d = tp.grad(np.sin)(0.3)
    assert type(d) is float and d == pytest.approx(np.cos(0.3), rel=1e-15)
    d2 = tp.grad(tp.grad(np.sin))(0.3)  # only the outermost call converts
    assert type(d2) is float and d2 == pytest.approx(-np.sin(0.3), rel=1e-12)
    d3 = tp.grad(tp.grad(tp.grad(lambda x: x**4)))(2.0)
    assert d3 == pytest.approx(48.0, rel=1e-12)
    assert type(tp.grad(lambda x, y: x * y, argnums=(0, 1))(2.0, 3.0)[1]) is float
    assert type(tp.jacobian(lambda x: x**2)(3.0)) is float


def test_tensors_in_tensors_out():
    x = tp.tensor(X)
    assert isinstance(tp.grad(lambda x: tp.sum(x**2))(x), tp.Tensor)
    assert isinstance(tp.jacfwd(tp.sin)(x), tp.Tensor)
    assert isinstance(tp.jvp(tp.sin, (x,), (tp.ones(3),))[1], tp.Tensor)
    with tp.record():  # inside a record block a result may still need its history: Tensors
        assert isinstance(tp.grad(lambda x: tp.sum(x**2))(X), tp.Tensor)


def test_scipy_minimize_takes_tp_grad_as_jac():
    res = scipy.optimize.minimize(rosen, np.array([-1.0, 1.5, 0.5]), jac=tp.grad(rosen), method="BFGS")
    assert res.success
    np.testing.assert_allclose(res.x, np.ones(3), atol=1e-4)
    np.testing.assert_allclose(tp.grad(rosen)(res.x), rosen_grad(res.x), atol=1e-10)
    res2 = scipy.optimize.minimize(tp.value_and_grad(rosen), np.array([-1.0, 1.5, 0.5]), jac=True)
    np.testing.assert_allclose(res2.x, np.ones(3), atol=1e-4)


def test_inplace_numpy_update_with_a_gradient():
    weights = np.array([1.0, -2.0, 0.5])
    before = weights.copy()
    weights -= tp.grad(lambda w: np.sum(w**2))(weights) * 0.01
    np.testing.assert_allclose(weights, before * 0.98, rtol=1e-15)


def test_elementwise_grad_is_the_derivative_at_every_point():
    x = np.linspace(-3, 3, 7)
    d = tp.elementwise_grad(np.tanh)(x)
    assert type(d) is np.ndarray
    np.testing.assert_allclose(d, 1 - np.tanh(x) ** 2, rtol=1e-12)
    d2 = tp.elementwise_grad(tp.elementwise_grad(np.tanh))(x)
    np.testing.assert_allclose(d2, -2 * np.tanh(x) * (1 - np.tanh(x) ** 2), rtol=1e-12)
    assert isinstance(tp.elementwise_grad(tp.sin)(tp.tensor(x)), tp.Tensor)


def test_a_0d_tensor_formats_like_a_float():
    loss = tp.tensor(0.123456789, requires_grad=True)
    assert f"{loss:.4f}" == "0.1235" and f"{loss:e}" == f"{0.123456789:e}"
    assert f"{tp.tensor(3)}" == str(tp.tensor(3)) and f"{tp.tensor([1.0, 2.0])}" == str(tp.tensor([1.0, 2.0]))
    with pytest.raises(TypeError, match=r"Tensor\.__format__.*shape \(2,\)"):
        f"{tp.tensor([1.0, 2.0]):.2f}"
    with pytest.raises(TypeError):  # as NumPy does
        f"{np.array([1.0, 2.0]):.2f}"
