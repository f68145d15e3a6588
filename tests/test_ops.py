"""Every op in the table: forward equals NumPy, reverse mode equals finite differences.

The cases are generated from the op table (tests/op_cases.py). Gradients are checked with
`tape.testing.check_grads` (central differences along random directions, float64).
"""

import numpy as np
import pytest

import tape as tp
from tape.ops import OPS, Op
from tape.testing import check_grads

from .op_cases import all_cases

CASES = all_cases()
IDS = [c.id for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_forward_matches_numpy(case):
    out = case.fn(*[tp.tensor(a) for a in case.args])
    np.testing.assert_allclose(out.numpy(), case.ref(*case.args), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_derivatives_match_finite_differences(case):
    # reverse and forward mode, their mutual consistency, and both again one order up
    check_grads(case.fn, case.args, modes=("rev", "fwd"), order=2)


F32_CASES = [c for c in CASES if np.float32 in c.dtypes]


@pytest.mark.parametrize("case", F32_CASES, ids=[c.id for c in F32_CASES])
def test_float32_derivatives_match_finite_differences(case):
    # the rules run in float32 (the gradients keep the inputs' dtype); finite differences in float64
    check_grads(case.fn, case.args, modes=("rev", "fwd"), dtype=np.float32)


def test_every_op_in_the_table_has_generated_cases():
    covered = {c.code for c in CASES}
    missing = sorted(OPS[c].name for c in set(OPS) - covered if Op.LEAF < c < 1000)
    assert not missing, f"ops without test cases: {missing}"


def test_check_grads_catches_a_wrong_rule():
    @tp.primitive
    def wrong_sin(x):
        return np.sin(x)

    wrong_sin.defvjp(lambda g, out, x: (g * np.sin(x),))  # should be cos
    with pytest.raises(AssertionError, match="finite differences"):
        check_grads(wrong_sin, [np.array([0.3, 1.0])])


def test_sign_has_zero_gradient():
    x = tp.tensor([-1.5, 0.0, 2.0], requires_grad=True)
    with tp.record():
        y = tp.sum(tp.sign(x) * x)  # |x|, but only through the second factor
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [-1.0, 0.0, 1.0])


def test_maximum_minimum_ties_share_the_gradient():
    x = tp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = tp.tensor([1.0, 0.0, 3.0], requires_grad=True)
    with tp.record():
        s = tp.sum(tp.maximum(x, y)) + tp.sum(tp.minimum(x, y))
    s.backward()
    # max: ties split 0.5/0.5, x wins at index 1; min: ties split, y wins at index 1.
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(y.grad.numpy(), [1.0, 1.0, 1.0])
    x.zero_grad()
    with tp.record():
        m = tp.max(tp.tensor([0.0]) + x * tp.tensor([1.0, 3.0, 1.0]))  # values 1, 6, 3: no tie
    m.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 3.0, 0.0])


def test_max_min_reductions_share_ties_equally():
    x = tp.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], requires_grad=True)
    with tp.record():
        y = tp.sum(tp.max(x, axis=1)) + tp.min(x)
    y.backward()
    # row maxima: 3 tied twice, 2 tied three times; overall min: the single 1.
    expected = np.array([[0.0, 0.5, 0.5], [1 / 3, 1 / 3, 1 / 3]]) + np.array([[1.0, 0, 0], [0, 0, 0]])
    np.testing.assert_allclose(x.grad.numpy(), expected)


def test_prod_gradient_is_exact_at_zeros():
    x = tp.tensor([2.0, 0.0, 3.0, 4.0], requires_grad=True)
    with tp.record():
        p = tp.prod(x)
    p.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 24.0, 0.0, 0.0])
    x2 = tp.tensor([0.0, 0.0, 3.0], requires_grad=True)
    with tp.record():
        tp.prod(x2).backward()
    np.testing.assert_array_equal(x2.grad.numpy(), [0.0, 0.0, 0.0])


def test_pow_follows_pytorch_at_zero():
    # d/dx x**y at x = 0: y * 0**(y-1) -> 0 for y = 2, and 0 (not nan) for y = 0.
    x = tp.tensor([0.0, 0.0, 2.0], requires_grad=True)
    y = tp.tensor([2.0, 0.0, 0.0], requires_grad=True)
    with tp.record():
        tp.sum(x**y).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])
    # d/dy 0**y = 0**y * log(0) is taken as 0 for y >= 0; 2**0 * log 2 elsewhere.
    np.testing.assert_allclose(y.grad.numpy(), [0.0, 0.0, np.log(2.0)])


def test_norm_gradient_is_zero_at_zero():
    x = tp.zeros(3, requires_grad=True)
    with tp.record():
        tp.norm(x).backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 0.0, 0.0])


def test_logsumexp_and_softplus_are_stable_for_large_inputs():
    x = tp.tensor([1000.0, 1000.0, -1000.0], requires_grad=True)
    with tp.record():
        y = tp.logsumexp(x) + tp.sum(tp.softplus(x)) + tp.sum(tp.sigmoid(x))
    y.backward()
    assert np.isclose(float(tp.logsumexp(x)), 1000.0 + np.log(2.0))
    assert np.all(np.isfinite(x.grad.numpy()))
    np.testing.assert_allclose(x.grad.numpy(), [0.5 + 1.0 + 0.0, 0.5 + 1.0 + 0.0, 0.0 + 0.0 + 0.0], atol=1e-12)


def test_relu_and_clip_gradients_at_the_kinks():
    x = tp.tensor([-1.0, 0.0, 0.5, 1.0, 2.0], requires_grad=True)
    with tp.record():
        y = tp.sum(tp.relu(x)) + tp.sum(tp.clip(x, 0.0, 1.0))
    y.backward()
    # relu: 0 at 0 (PyTorch); clip: 1 inside [lo, hi] ends included.
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 1.0, 2.0, 2.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_gradients_keep_the_leaf_dtype(dtype):
    x = tp.tensor([0.5, 1.0, 2.0], dtype=dtype, requires_grad=True)
    w = tp.tensor([1.0, 2.0, 3.0])  # float64 constant: the product is float64
    with tp.record():
        y = tp.sum(tp.exp(x) * w)
    y.backward()
    assert x.grad.dtype == dtype
    tol = {np.float16: 1e-2, np.float32: 1e-6, np.float64: 1e-12}[dtype]
    np.testing.assert_allclose(x.grad.numpy(), np.exp(x.numpy().astype(np.float64)) * [1, 2, 3], rtol=tol)


def test_float32_stays_float32_through_python_scalars():
    x = tp.tensor([1.0, 2.0], dtype=np.float32, requires_grad=True)
    with tp.record():
        y = x * 2.5 + 1.0
        s = tp.sum(y)
    assert y.dtype == np.float32
    s.backward()
    assert x.grad.dtype == np.float32


def test_broadcast_gradient_is_summed_to_the_input_shape():
    a = tp.tensor(np.ones((2, 1, 3)), requires_grad=True)
    b = tp.tensor(np.arange(4.0).reshape(4, 1), requires_grad=True)
    with tp.record():
        y = tp.sum(a * b)
    y.backward()
    assert a.grad.shape == (2, 1, 3) and b.grad.shape == (4, 1)
    np.testing.assert_allclose(a.grad.numpy(), np.full((2, 1, 3), 6.0))
    np.testing.assert_allclose(b.grad.numpy(), np.full((4, 1), 6.0))


def test_comparisons_and_argmax_have_no_history():
    x = tp.tensor([1.0, 3.0, 2.0], requires_grad=True)
    with tp.record():
        results = [x > 1.5, x == 3.0, tp.argmax(x), tp.argmin(x), x <= 2.0]
    assert all(not r.requires_grad for r in results)
    assert int(tp.argmax(x)) == 1 and (x > 1.5).tolist() == [False, True, True]
