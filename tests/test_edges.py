"""Derivatives at the edges (issue 13, item 2): numbers, not NaN or None, where PyTorch gives one.

The oracles are independent of the code under test: central finite differences (`check_grads`)
where the function is differentiable, and closed forms written out here where the value is a
convention (PyTorch's, which these tests state and cite in words: torch is not installed here).
"""

import numpy as np
import pytest

import tape as tp
from tape.testing import check_grads


def _f(x):
    return np.asarray(getattr(x, "array", x), dtype=np.float64)


def _second(f):
    """The three second-derivative routes: reverse over reverse, forward over forward, reverse over forward."""
    return {
        "rev-rev": tp.hessian(f),
        "fwd-fwd": tp.jacfwd(tp.jacfwd(f)),
        "rev-fwd": tp.jacrev(tp.jacfwd(f)),
    }


def _first(f):
    return {"rev": tp.jacrev(f), "fwd": tp.jacfwd(f)}


# -- std, var and norm where the spread is zero -------------------------------------------------
# PyTorch's std_backward divides by 2*std and masks the result to 0 where std == 0 (and its norm
# backward masks where norm == 0), so the gradient at zero spread is 0, and so are the derivatives
# of that gradient (the mask is a constant). HIPS autograd gives 0 for the std of a single value.

ZERO_SPREAD = [np.array([3.0]), np.array([2.0, 2.0, 2.0]), np.full((2, 2), -1.5)]


@pytest.mark.parametrize("x", ZERO_SPREAD, ids=["one-value", "constant-vector", "constant-matrix"])
def test_std_of_zero_spread_has_zero_derivatives(x):
    for name, d in _first(tp.std).items():
        np.testing.assert_array_equal(_f(d(x)), np.zeros(x.shape), err_msg=name)
    for name, h in _second(tp.std).items():
        np.testing.assert_array_equal(_f(h(x)), np.zeros(x.shape * 2), err_msg=name)
    xt = tp.tensor(x, requires_grad=True)
    with tp.record():
        y = tp.std(xt)
    y.backward()
    assert y.item() == 0.0
    np.testing.assert_array_equal(xt.grad.numpy(), np.zeros(x.shape))


def test_std_of_zero_spread_in_float32():
    x = tp.tensor(np.full(4, 0.5, dtype=np.float32), requires_grad=True)
    with tp.record():
        y = tp.std(x)
    y.backward()
    assert x.grad.dtype == tp.float32
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros(4, np.float32))


def test_std_with_one_constant_row_is_exact_in_the_other():
    x = np.array([[2.0, 2.0, 2.0], [1.0, 2.0, 4.0]])
    for ddof in (0, 1):
        g = _f(tp.jacrev(lambda x, d=ddof: tp.sum(tp.std(x, axis=1, ddof=d)))(x))
        row = x[1]
        sd = np.sqrt(np.sum((row - row.mean()) ** 2) / (3 - ddof))
        np.testing.assert_array_equal(g[0], [0.0, 0.0, 0.0])
        np.testing.assert_allclose(g[1], (row - row.mean()) / ((3 - ddof) * sd), rtol=1e-14)
    # Central differences see a cone's tip as slope 0 in every direction, so the first-order check
    # holds through the constant row too, in both modes.
    check_grads(lambda x: tp.std(x, axis=1, keepdims=True), [x], modes=("rev", "fwd"))
    check_grads(lambda x: tp.std(x, axis=0), [x.T.copy()], modes=("rev", "fwd"))


def test_var_at_zero_spread_keeps_its_true_hessian():
    # var is smooth everywhere: gradient 2(x - mean)/N = 0, Hessian (2/N)(I - 1/N), at any point.
    x = np.array([2.0, 2.0, 2.0])
    expected = 2 / 3 * (np.eye(3) - 1 / 3)
    for name, h in _second(tp.var).items():
        np.testing.assert_allclose(_f(h(x)), expected, rtol=1e-14, err_msg=name)
    np.testing.assert_array_equal(_f(tp.grad(tp.var)(x)), np.zeros(3))
    check_grads(tp.var, [x], modes=("rev", "fwd"), order=2)


@pytest.mark.parametrize("ord", [None, 2, 3, 1.5, 1, np.inf])
def test_norm_of_zero_has_zero_gradient(ord):
    x = np.zeros(4)
    for name, d in _first(lambda x: tp.norm(x, ord=ord)).items():
        np.testing.assert_array_equal(_f(d(x)), np.zeros(4), err_msg=name)


@pytest.mark.parametrize("ord", [None, 3])
def test_norm_of_zero_has_zero_second_derivatives(ord):
    # (Not 1 < ord < 2: there |x|**ord itself has an infinite second derivative at 0, and the zero
    # cotangent times it is NaN, in PyTorch's norm double backward too.)
    for name, h in _second(lambda x: tp.norm(x, ord=ord)).items():
        np.testing.assert_array_equal(_f(h(np.zeros(3))), np.zeros((3, 3)), err_msg=name)


def test_norm_of_a_zero_row_and_a_nonzero_row():
    x = np.array([[0.0, 0.0], [3.0, 4.0]])
    g = _f(tp.grad(lambda x: tp.sum(tp.norm(x, axis=1)))(x))
    np.testing.assert_array_equal(g, [[0.0, 0.0], [0.6, 0.8]])
    g3 = _f(tp.grad(lambda x: tp.sum(tp.norm(x, ord=3, axis=1)))(x))
    np.testing.assert_allclose(g3[1], np.array([9.0, 16.0]) / 91.0 ** (2 / 3), rtol=1e-14)  # x|x|/||x||_3^2
    np.testing.assert_array_equal(g3[0], [0.0, 0.0])


# -- pow at 0 -----------------------------------------------------------------------------------
# PyTorch (FunctionsManual.cpp, pow_backward / pow_backward_self / pow_backward_exponent):
#   d/dx x**c = c * x**(c-1), and 0 where c == 0 (a Scalar exponent 0 gives zeros_like);
#   d/dy x**y = x**y * log(x), and 0 where x == 0 and y >= 0 ("by continuity"), -inf where
#   x == 0 and y < 0. So the second derivative in x of x**c at 0 is c(c-1) 0**(c-2), taken as 0
#   for c == 0 and c == 1 (the exponent of the inner power is then 0).
EXPONENTS = [0, 1, 2, 3, 0.5, 1.5, 2.5, -1, -2]


ZERO = np.float64(0.0)  # NumPy's 0.0 ** -1 is inf (Python's raises)


def _torch_d1(c):
    with np.errstate(divide="ignore"):
        return 0.0 if c == 0 else c * ZERO ** (c - 1)


def _torch_d2(c):
    with np.errstate(divide="ignore"):
        return 0.0 if c in (0, 1) else c * (c - 1) * ZERO ** (c - 2)


@pytest.mark.parametrize("c", EXPONENTS)
@pytest.mark.parametrize("kind", ["python", "array"])
def test_pow_at_zero_follows_pytorch_to_second_order(c, kind):
    # One scalar x: with several elements, forward mode would multiply a zero tangent by an infinite
    # derivative (0 * inf = NaN in every engine, PyTorch's forward AD included).
    exponent = c if kind == "python" else np.array(c, dtype=np.float64)

    def f(x):
        return tp.power(x, exponent)

    x = np.array(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        for name, d in _first(f).items():
            assert float(d(x)) == _torch_d1(c), name
        for name, h in _second(f).items():
            assert float(h(x)) == _torch_d2(c), name


def test_second_derivative_of_x_to_the_zero_at_zero_is_zero():
    # HIPS autograd issue 116: x**0 is the constant 1, so every derivative is 0.
    f = lambda x: x**0  # noqa: E731
    assert float(tp.grad(tp.grad(f))(0.0)) == 0.0
    assert float(tp.jacfwd(tp.jacfwd(f))(0.0)) == 0.0
    x = tp.tensor(0.0, requires_grad=True)
    with tp.record():
        (g,) = tp.grads(x**0, x, create_graph=True)
    assert g.item() == 0.0
    if g.requires_grad:  # (as in PyTorch, the zeros may have no history at all)
        assert tp.grads(g, x)[0].item() == 0.0


@pytest.mark.parametrize("c", [0, 1, 2, 3, 0.0, 2.0])
def test_integer_powers_through_zero_match_finite_differences(c):
    # Integer exponents are smooth through x = 0: central differences are an independent oracle.
    x = [np.array([0.0, 0.0, 1.3, -0.7])]
    check_grads(lambda x: x**c, x, modes=("rev", "fwd"), order=2)
    check_grads(lambda x: tp.power(x, np.full(4, float(c))), x, modes=("rev", "fwd"), order=2)


def test_zero_to_a_tracked_power_matches_finite_differences():
    # 0**y is 0 for every y > 0: all its derivatives there are 0.
    check_grads(lambda y: tp.power(0.0, y), [np.array([0.7, 1.0, 1.5, 2.0])], modes=("rev", "fwd"), order=2)
    check_grads(lambda y: tp.power(np.zeros(3), y), [np.array([0.7, 1.0, 3.0])], modes=("rev", "fwd"), order=2)


def test_zero_to_a_tracked_power_at_and_below_zero():
    with np.errstate(divide="ignore"):
        g = _f(tp.grad(lambda y: tp.sum(tp.power(0.0, y)))(np.array([0.0, -1.0])))
    assert g[0] == 0.0  # PyTorch: 0 at y == 0, by continuity from y > 0
    assert g[1] == -np.inf  # PyTorch: -inf for y < 0 (documented there as a choice)


@pytest.mark.parametrize("y", [2.0, 2.5, 3.0])
def test_tracked_base_and_exponent_at_zero(y):
    # f(x, y) = x**y at x = 0, y >= 2: gradient (0, 0) (f(0, y) = 0 near y; y*0**(y-1) = 0);
    # Hessian [[y(y-1) 0**(y-2), 0], [0, 0]]: the mixed terms x**(y-1) (1 + y log x) -> 0.
    # (For 1 < y < 2, f_xx is infinite, and a zero cotangent through it is NaN in any engine.)
    def f(v):
        return v[0] ** v[1]

    v = np.array([0.0, y])
    with np.errstate(divide="ignore"):
        fxx = y * (y - 1) * ZERO ** (y - 2)
    for name, d in _first(f).items():
        np.testing.assert_array_equal(_f(d(v)), [0.0, 0.0], err_msg=name)
    for name, h in _second(f).items():
        np.testing.assert_array_equal(_f(h(v)), [[fxx, 0.0], [0.0, 0.0]], err_msg=name)


@pytest.mark.parametrize("y", [0.0, 1.0])
def test_tracked_base_and_exponent_at_zero_where_the_convention_decides(y):
    # x**0 = 1 and x**1 = x are linear in x (f_xx = 0); f(0, y) = 0 for y > 0 and PyTorch takes
    # d/dy at (0, 0) as 0 by continuity (f_yy = 0). The mixed terms are a convention: finite.
    def f(v):
        return v[0] ** v[1]

    v = np.array([0.0, y])
    for name, d in _first(f).items():
        np.testing.assert_array_equal(_f(d(v)), [y, 0.0], err_msg=name)
    for name, h in _second(f).items():
        hess = _f(h(v))
        assert np.isfinite(hess).all(), (name, hess)
        assert hess[0, 0] == 0.0 and hess[1, 1] == 0.0, (name, hess)


def test_pow_away_from_zero_is_unchanged():
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0.5, 2.0, (2, 3)), rng.uniform(-1.5, 2.5, (2, 3))
    check_grads(tp.power, [x, y], modes=("rev", "fwd"), order=2)
    check_grads(lambda x: x**2.5, [x], modes=("rev", "fwd"), order=2)


# -- inputs an op is not differentiable in ------------------------------------------------------
# PyTorch's derivatives.yaml gives sign (and floor, ceil, round, ...) the rule zeros_like(grad): the
# input took part, so its gradient is zeros, not None. A where condition is not an input: x > 0 has
# no history, so x is not reached through it.


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_through_sign_gives_zeros(dtype):
    x = tp.tensor(np.array([[1.5, -2.0, 0.0], [3.0, -0.1, 7.0]], dtype=dtype), requires_grad=True)
    with tp.record():
        y = tp.sign(x).sum()
    y.backward()
    assert x.grad is not None and x.grad.dtype == dtype and x.grad.shape == (2, 3)
    np.testing.assert_array_equal(x.grad.numpy(), np.zeros((2, 3), dtype))


def test_sign_gives_zeros_through_grads_gradient_and_the_transforms():
    x = tp.tensor([1.5, -2.0, 0.5], requires_grad=True)
    with tp.record(persistent=True) as t:
        h = tp.exp(x)  # the zeros travel on through exp, as in PyTorch
        y = tp.sum(tp.sign(h - 2.0))
    (gx,) = tp.grads(y, x, retain_graph=True)  # no allow_unused needed: x took part
    np.testing.assert_array_equal(gx.numpy(), np.zeros(3))
    gx, gh = t.gradient(y, [x, h])
    np.testing.assert_array_equal(gx.numpy(), np.zeros(3))
    np.testing.assert_array_equal(gh.numpy(), np.zeros(3))
    np.testing.assert_array_equal(_f(tp.grad(lambda x: tp.sum(tp.sign(x)))(np.ones(3))), np.zeros(3))
    _, tangent = tp.jvp(tp.sign, (np.ones(3),), (np.ones(3),))
    np.testing.assert_array_equal(_f(tangent), np.zeros(3))


def test_sign_beside_a_differentiable_path_adds_nothing():
    # d/dx sum(sign(x) * x**2) = 2 |x| and d2/dx2 = 2 sign(x), away from 0.
    x = np.array([1.5, -2.0, 0.5])
    f = lambda x: tp.sum(tp.sign(x) * x * x)  # noqa: E731
    np.testing.assert_allclose(_f(tp.grad(f)(x)), 2 * np.abs(x), rtol=1e-15)
    np.testing.assert_allclose(_f(tp.hessian(f)(x)), np.diag(2 * np.sign(x)), rtol=1e-15)
    check_grads(f, [x], modes=("rev", "fwd"), order=2)


def test_a_where_condition_is_not_an_input():
    x = tp.tensor([1.0, -1.0], requires_grad=True)
    w = tp.tensor([2.0, 3.0], requires_grad=True)
    with tp.record():
        y = tp.sum(tp.where(x > 0, w, 0.0))
    (gw,) = tp.grads(y, w, retain_graph=True)
    np.testing.assert_array_equal(gw.numpy(), [1.0, 0.0])
    with pytest.raises(RuntimeError, match="allow_unused"):
        tp.grads(y, x, retain_graph=True)
    y.backward()
    assert x.grad is None  # never reached: x > 0 has no history
    np.testing.assert_array_equal(w.grad.numpy(), [1.0, 0.0])
