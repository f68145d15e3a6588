"""The sweep adds into and writes into cotangents it owns (large arrays only): the gradients of
graphs where one cotangent reaches several inputs (add, subtract, a factor used twice) must equal
their closed forms, whichever input ends up owning the array."""

import numpy as np
import pytest

import tape as tp

N = 1 << 16  # above the sizes where the sweep and the kernels work in place


def _leaf(rng, shape=(N,)):
    return tp.tensor(rng.uniform(-1, 1, shape), requires_grad=True)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_cotangent_shared_by_several_inputs_is_never_written_through_twice(backend):
    previous = tp.get_backend()
    tp.set_backend(backend)
    try:
        rng = np.random.default_rng(1)
        x, y, b = _leaf(rng), _leaf(rng), tp.tensor(0.25, requires_grad=True)
        w = rng.uniform(0.5, 1.5, N)
        with tp.record():
            # the sweep meets these last-recorded-first: the shared cotangent of y + x is the first to
            # reach x and y, so if either owned it, the later terms would be added into both
            m = tp.sum(x * x * y)
            p = tp.sum(tp.exp(x + b) * w)  # add: x keeps g, b's is g summed
            q = tp.sum(tp.exp(x + x) * w)  # add of one slot twice
            r = tp.sum(tp.exp(x - y) * w)  # subtract: x keeps g, y's is -g
            s = tp.sum(tp.exp(y + x) * w)  # add of two full-size inputs: shared, nobody owns it
            total = m + p + q + r + s
        total.backward()
        X, Y, B = x.numpy(), y.numpy(), 0.25
        ep, eq, er, es = np.exp(X + B) * w, np.exp(2 * X) * w, np.exp(X - Y) * w, np.exp(X + Y) * w
        np.testing.assert_allclose(x.grad.numpy(), ep + 2 * eq + er + es + 2 * X * Y, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(y.grad.numpy(), -er + es + X * X, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(float(b.grad), ep.sum(), rtol=1e-12, atol=1e-12)
    finally:
        tp.set_backend(previous)


def test_a_broadcast_bias_hands_g_on_without_a_copy():
    # h = tanh(z + c) with c a row bias: z's cotangent is the array tanh's rule wrote, c's its sum
    rng = np.random.default_rng(2)
    z, c = _leaf(rng, (256, 256)), _leaf(rng, (256,))
    with tp.record():
        h = tp.tanh(z + c) * 3.0
        total = tp.sum(h * h)
    total.backward()
    t = np.tanh(z.numpy() + c.numpy())
    expected = 18 * t * (1 - t * t)
    np.testing.assert_allclose(z.grad.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c.grad.numpy(), expected.sum(axis=0), rtol=1e-12, atol=1e-12)
