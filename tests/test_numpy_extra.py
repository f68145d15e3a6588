"""NumPy's functions added in issue 12 (part A): what the generated cases in tests/op_cases.py do not
reach: gradients at special points, NumPy's keywords through dispatch, and small NumPy programs run
unchanged through the transforms."""

import numpy as np
import pytest

import tape as tp
from tape.ops.registry import NUMPY
from tape.testing import check_grads

# The functions issue 12 lists for part A, each of which must now dispatch on Tensors.
ISSUE_12_PART_A = """arccosh arcsinh arctanh exp2 log2 log10 cbrt reciprocal fabs hypot logaddexp logaddexp2 fmax fmin
    sinc deg2rad rad2deg degrees radians mod remainder floor ceil round around nan_to_num real imag conj angle
    hstack vstack dstack column_stack atleast_1d atleast_2d atleast_3d repeat tile roll rot90 rollaxis fliplr
    flipud array_split hsplit vsplit dsplit diag diagonal tril triu take take_along_axis kron cross
    cumsum cumprod diff average nansum sort partition""".split()


@pytest.mark.parametrize("name", ISSUE_12_PART_A)
def test_every_listed_function_dispatches_and_is_public(name):
    assert getattr(np, name) in NUMPY
    assert callable(getattr(tp, name))


def test_rounding_has_zero_gradient_and_mod_the_floor_rule():
    def rounded(x):
        return np.sum(np.floor(x) + np.ceil(x) + np.round(x) + np.trunc(x) + np.rint(x) + np.around(x, 1))

    x = tp.tensor([-1.3, 0.4, 2.6], requires_grad=True)
    y = tp.tensor([0.7, -0.9, 1.1], requires_grad=True)
    np.testing.assert_array_equal(tp.grad(rounded)(x).numpy(), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(tp.jvp(rounded, (x,), (tp.ones(3),))[1].numpy(), 0.0)
    with tp.record():
        tp.sum(x % y).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(y.grad.numpy(), -np.floor(x.numpy() / y.numpy()))  # -(-2, -1, 2)


def test_sinc_at_zero_has_value_one_and_exact_derivatives():
    x = tp.tensor([0.0, 1e-3, -2e-4], requires_grad=True)
    with tp.record():
        y = tp.sum(np.sinc(x))
    y.backward()
    np.testing.assert_allclose(tp.sinc(x).numpy(), np.sinc(x.numpy()), rtol=1e-15)
    # sinc'(x) = (cos(pi x) - sinc(x)) / x, about -pi^2 x / 3 near 0; sinc''(0) = -pi^2 / 3
    expected = [0.0] + [(np.cos(np.pi * v) - np.sinc(v)) / v for v in (1e-3, -2e-4)]
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-7, atol=1e-15)
    second = tp.grad(tp.grad(lambda t: np.sinc(t)))(tp.tensor(0.0))
    np.testing.assert_allclose(float(second), -(np.pi**2) / 3, rtol=1e-12)
    check_grads(np.sinc, [np.array([0.0, 9e-4, -1.1e-3, 0.3])], modes=("rev", "fwd"), order=2)


def test_fmax_fmin_and_nan_to_num_route_gradients_around_nans():
    a = tp.tensor([np.nan, 1.0, 3.0, 5.0], requires_grad=True)
    b = tp.tensor([2.0, np.nan, 1.0, 0.0], requires_grad=True)
    with tp.record():
        s = tp.sum(np.fmax(a, b) * np.array([1.0, 2.0, 3.0, 0.0])) + tp.sum(np.fmin(a, b))
    s.backward()
    np.testing.assert_array_equal(tp.fmax(a, b).numpy(), np.fmax(a.numpy(), b.numpy()))
    np.testing.assert_array_equal(a.grad.numpy(), [0.0, 3.0, 3.0, 0.0])  # fmax: a wins at 1, 2; fmin: at 1
    np.testing.assert_array_equal(b.grad.numpy(), [2.0, 0.0, 1.0, 1.0])  # fmax: b at 0; fmin: b at 0, 2, 3
    z = tp.tensor([np.nan, 1.5, -np.inf, np.inf], requires_grad=True)
    with tp.record():
        r = np.nan_to_num(z, nan=-1.0, posinf=9.0, neginf=-7.0)
        tp.sum(r * 2.0).backward()
    np.testing.assert_array_equal(r.numpy(), np.nan_to_num(z.numpy(), nan=-1.0, posinf=9.0, neginf=-7.0))
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 2.0, 0.0, 0.0])


def test_logaddexp_is_stable_for_large_inputs():
    x = tp.tensor([1000.0, -1000.0], requires_grad=True)
    with tp.record():
        s = tp.sum(np.logaddexp(x, 1000.0)) + tp.sum(np.logaddexp2(x, x))
    s.backward()
    assert np.isclose(float(np.logaddexp(x, 1000.0)[0]), 1000.0 + np.log(2.0))
    np.testing.assert_allclose(x.grad.numpy(), [0.5 + 1.0, 0.0 + 1.0])
    # log-space code adds log(0) = -inf to log(0): the value is -inf, the gradient 0 (not nan)
    z = tp.tensor([-np.inf, -np.inf, 0.0], requires_grad=True)
    w = tp.tensor([-np.inf, 1.0, -np.inf], requires_grad=True)
    with tp.record():
        r = np.logaddexp(z, w) + np.logaddexp2(z, w)
        tp.sum(np.where(np.isfinite(r.numpy()), r, 0.0)).backward()
    np.testing.assert_array_equal(r.numpy(), [-np.inf, 2.0, 0.0])
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, 0.0, 2.0])
    np.testing.assert_array_equal(w.grad.numpy(), [0.0, 2.0, 0.0])


def test_sort_and_repeated_take_send_gradients_back_to_their_sources():
    x = tp.tensor([3.0, 1.0, 2.0], requires_grad=True)
    w = np.array([10.0, 20.0, 30.0])
    with tp.record():
        tp.sum(np.sort(x) * w + np.take(x, [2, 2, 0])).backward()
    # sorted order is x[1], x[2], x[0]: x[1] gets 10, x[2] gets 20 (+2 from take), x[0] gets 30 (+1)
    np.testing.assert_array_equal(x.grad.numpy(), [31.0, 10.0, 22.0])


def test_cumsum_and_cumprod_have_their_closed_form_gradients():
    x = tp.tensor([0.5, 2.0, 3.0, 4.0], requires_grad=True)
    with tp.record():
        tp.sum(np.cumsum(x)).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 3.0, 2.0, 1.0])
    x.zero_grad()
    with tp.record():
        tp.cumprod(x)[-1].backward()  # the full product: gradient prod / x_i
    np.testing.assert_allclose(x.grad.numpy(), 12.0 / x.numpy())


def test_cumprod_first_derivatives_are_exact_at_zeros():
    # lanes with no zero, one zero, two zeros, zeros first and last (the rule splits at the first zero)
    x = np.array([[0.5, 1.5, 2.0, 0.8], [0.5, 0.0, 2.0, 0.8], [1.2, 0.0, 1.5, 0.0], [0.0, 1.3, 0.7, 0.0]])
    check_grads(lambda x: np.cumprod(x, axis=1), [x], modes=("rev", "fwd"))
    check_grads(lambda x: np.cumprod(x.T, axis=0), [x], modes=("rev", "fwd"), dtype=np.float32)
    # d/dx_j of the last product = product of the others: exact where a 0/0 would appear
    g = tp.grad(lambda x: tp.cumprod(x)[-1])(tp.tensor([2.0, 0.0, 3.0]))
    np.testing.assert_array_equal(g.numpy(), [0.0, 6.0, 0.0])


def test_numpy_keywords_are_accepted_or_refused_by_name():
    x = tp.tensor([[3.0, 1.0], [2.0, 5.0]])
    np.testing.assert_array_equal(np.cumsum(x, axis=0, out=None).numpy(), [[3.0, 1.0], [5.0, 6.0]])
    np.testing.assert_array_equal(np.sort(x, kind="stable").numpy(), [[1.0, 3.0], [2.0, 5.0]])
    np.testing.assert_array_equal(np.sort(x, axis=0, stable=True).numpy(), [[2.0, 1.0], [3.0, 5.0]])
    np.testing.assert_array_equal(np.angle(-x, deg=True).numpy(), np.full((2, 2), 180.0))
    np.testing.assert_array_equal(x.cumsum(1).numpy(), [[3.0, 4.0], [2.0, 7.0]])
    np.testing.assert_array_equal((x.repeat(2, axis=0) % 2.0).numpy(), np.repeat(x.numpy(), 2, 0) % 2.0)
    with pytest.raises(TypeError, match=r"np\.cumsum: the arguments \['dtype'\]"):
        np.cumsum(x, dtype=np.float32)
    with pytest.raises(TypeError, match=r"np\.round: the arguments \['out'\]"):
        np.round(x, out=np.empty((2, 2)))
    with pytest.raises(TypeError, match="sort: order="):
        np.sort(x, order="f")
    with pytest.raises(ValueError, match=r"fliplr.*shape \(2,\)"):
        np.fliplr(x[0])


def test_complex_values_are_constants_and_complex_history_is_refused():
    z = tp.tensor([1 + 2j, -3.0 + 0j])
    assert np.real(z).tolist() == [1.0, -3.0] and np.imag(z).tolist() == [2.0, 0.0]
    np.testing.assert_allclose(np.angle(z).numpy(), np.angle(z.numpy()))
    assert np.conj(z).tolist() == [1 - 2j, -3 + 0j]
    assert np.real_if_close(tp.tensor([1 + 1e-20j])).dtype == np.float64
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        with pytest.raises(TypeError, match="real: complex tensors are not differentiable"):
            np.real(x * 1j)


# -- NumPy programs of our own, run unchanged on Tensors -------------------------------------------
def rnn_loss(W, b, h0, xs):
    """An Elman RNN over a batch: each step reads [x_t, h] and writes tanh([x_t, h] W + b)."""
    h = np.repeat(h0[None, :], xs.shape[1], axis=0)  # one copy of the initial state per sequence
    loss = 0.0
    for x in xs:
        h = np.tanh(np.dot(np.hstack([x, h]), W) + b)
        loss = loss + np.sum(np.cumsum(h, axis=1) ** 2)
    return loss / xs.shape[0]


def heat(u, alpha, steps=5):
    """Explicit steps of the periodic 1-D heat equation: the Laplacian is a rolled stencil."""
    for _ in range(steps):
        u = u + alpha * (np.roll(u, 1) - 2 * u + np.roll(u, -1))
    return u


def test_an_rnn_written_for_numpy_differentiates_unchanged():
    rng = np.random.default_rng(3)
    W, b, h0 = rng.normal(0, 0.5, (2 + 3, 3)), rng.normal(0, 0.1, 3), rng.normal(0, 0.5, 3)
    xs = rng.normal(size=(4, 2, 2))  # 4 steps, batch 2, 2 inputs
    value = rnn_loss(*[tp.tensor(a) for a in (W, b, h0, xs)])
    np.testing.assert_allclose(float(value), rnn_loss(W, b, h0, xs), rtol=1e-12)
    check_grads(lambda W, b, h0: rnn_loss(W, b, h0, xs), [W, b, h0], modes=("rev", "fwd"), order=2)
    gW = tp.grad(rnn_loss)(tp.tensor(W), b, h0, xs)
    assert gW.shape == W.shape


def test_a_roll_stencil_has_the_transposed_stencil_as_gradient():
    rng = np.random.default_rng(4)
    u0, c, alpha = rng.uniform(size=8), rng.normal(size=8), 0.2
    check_grads(lambda u, a: np.sum(heat(u, a) * c), [u0, np.array(alpha)], modes=("rev", "fwd"), order=2)
    # The step is u -> A u with A = I + alpha (S + S^T - 2 I), S the cyclic shift; the gradient of
    # <c, A^5 u> is (A^T)^5 c, computed here with dense matrices.
    S = np.roll(np.eye(8), 1, axis=0)
    A = np.eye(8) + alpha * (S + S.T - 2 * np.eye(8))
    g = tp.grad(lambda u: np.sum(heat(u, alpha) * c))(tp.tensor(u0))
    np.testing.assert_allclose(np.asarray(g.numpy()), np.linalg.matrix_power(A.T, 5) @ c, rtol=1e-12)
