"""The functional transforms read NumPy inputs in place (issue 11, W4): no copy of the inputs, which
are never written, and results that are the caller's own (no aliasing of an input or of each other).
"""

from __future__ import annotations

import tracemalloc

import numpy as np

import tape as tp


def test_value_and_grad_does_not_copy_its_inputs():
    x = np.ones(1_000_000)  # 8 MB
    vg = tp.value_and_grad(lambda x: tp.sum(x))  # keeps nothing of x; its gradient is x-sized
    vg(x)
    tracemalloc.start()
    try:
        value, g = vg(x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert value == 1_000_000.0 and g.shape == x.shape
    np.testing.assert_array_equal(g, 1.0)
    assert peak < 1.5 * x.nbytes  # the gradient, and no copy of x beside it


def test_inputs_are_never_written_and_results_never_alias_them():
    rng = np.random.default_rng(0)
    x, w = rng.uniform(-1, 1, (5, 3)), rng.uniform(-1, 1, 3)
    kept = x.copy(), w.copy()

    def f(x, w):
        return tp.sum(tp.tanh(x @ w) * x[:, 0])

    value, (gx, gw) = tp.value_and_grad(f, argnums=(0, 1))(x, w)
    for g, a in ((gx, x), (gw, w)):
        assert not np.shares_memory(g, a) and g.flags.writeable
    gx[...] = 0.0
    np.testing.assert_array_equal(x, kept[0])
    np.testing.assert_array_equal(w, kept[1])
    # an output that is an input, or a view of one, is a copy: writing it leaves the input alone
    out, vjp_fn = tp.vjp(lambda a: a[1:3], x)
    assert not np.shares_memory(out, x)
    out[...] = 7.0
    np.testing.assert_array_equal(x, kept[0])
    ct = np.ones((2, 3))
    (g,) = vjp_fn(ct)
    assert not np.shares_memory(g, ct) and not np.shares_memory(g, x)
    np.testing.assert_array_equal(g, np.vstack([np.zeros(3), np.ones((2, 3)), np.zeros((2, 3))]))
    v, gi = tp.value_and_grad(lambda a: a[0])(np.array([2.0, 3.0]))  # the value is of the caller's kind
    assert type(v) is np.float64 and v == 2.0
    np.testing.assert_array_equal(gi, [1.0, 0.0])


def test_a_closed_over_input_change_after_the_call_does_not_reach_the_results():
    x = np.array([1.0, 2.0])
    value, g = tp.value_and_grad(lambda a: tp.sum(a * a))(x)
    x[0] = 100.0  # the caller's array, written after the call
    assert value == 5.0
    np.testing.assert_array_equal(g, [2.0, 4.0])
