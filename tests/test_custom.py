"""Custom primitives (API §4): declared from a forward on raw arrays and its rules, then recorded,
differentiated (both modes, second order), checked with check_grads and printed like a built-in."""

import numpy as np
import pytest

import tape as tp
from tape.testing import check_grads


@tp.primitive
def log1pexp(x):
    """log(1 + e**x) without overflow."""
    return np.logaddexp(0.0, x)


log1pexp.defvjp(lambda g, out, x: (g * np.exp(x - out),))  # sigmoid(x), computed stably
log1pexp.defjvp(lambda t, out, x: t[0] * np.exp(x - out))


@tp.primitive
def scaled_product(a, b, scale):
    return scale * a * b


scaled_product.defvjp(lambda g, out, a, b, s: (g * s * b, g * s * a, None))


def test_custom_primitive_end_to_end():
    x = tp.tensor([-800.0, 0.0, 800.0], requires_grad=True)
    with tp.record() as t:
        y = tp.sum(log1pexp(x))
    assert [e.op for e in t.entries] == ["log1pexp", "sum"]
    assert "v1 = log1pexp(v0)" in str(t)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 1.0])
    assert np.isfinite(float(y)) and float(y) == pytest.approx(800.0 + np.log(2.0))


def test_custom_primitive_passes_check_grads_in_both_modes_to_second_order():
    check_grads(lambda x: log1pexp(x) * x, [np.array([-2.0, 0.3, 1.5])], modes=("rev", "fwd"), order=2)


def test_custom_primitive_with_several_inputs_and_a_non_differentiable_one():
    check_grads(lambda a, b: scaled_product(a, b, 3.0), [np.array([1.0, 2.0]), np.array([0.5, -1.0])])
    a = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        tp.sum(scaled_product(a, np.array([2.0, 2.0]), 0.5)).backward()
    np.testing.assert_array_equal(a.grad.numpy(), [1.0, 1.0])


def test_custom_primitive_without_rules_says_so():
    @tp.primitive
    def cube(x):
        return x**3

    with pytest.raises(NotImplementedError, match="defvjp"):
        cube(tp.tensor(2.0))
    cube.defvjp(lambda g, out, x: (3 * x**2 * g,))
    with pytest.raises(NotImplementedError, match="cube: no jvp rule"):
        tp.jvp(cube, (tp.tensor(2.0),), (tp.tensor(1.0),))
