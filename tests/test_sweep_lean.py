"""The plain sweep's shortcut for a cotangent that is g itself (sweep._sweep_plain, issue 11).

A kernel or a rule that hands g back to an input whose meta is the entry's output meta (the one
shared tuple of `meta_of`) is added without shape and dtype tests, and g's ownership passes on with
it. These tests check what that must keep: the gradients (against central differences and the
general loop, which `detect_anomaly` runs), the ownership that passes from entry to entry (a spy on
the kernels), and an input whose meta is not the output's (small values, whose VALUE column holds
the value itself, and a dtype that changes).
"""

import numpy as np
import pytest

import tape as tp
from tape.ops import OPS, Op
from tape.testing import check_grads


def _chain(x, w):
    # every kernel that hands g back below MIN_SIZE: mul by a constant, tanh, exp, sin, cos, neg, log
    y = x
    for _ in range(3):
        y = y * 0.9 + x
        y = tp.exp(tp.tanh(y))
        y = tp.cos(-tp.sin(y)) * w
        y = tp.log(y + 2.0)
    return tp.sum(y)


def _grads(x0, w0, general=False):
    x = tp.tensor(x0, requires_grad=True)
    w = tp.tensor(w0, requires_grad=True)
    with tp.record():
        loss = _chain(x, w)
    if general:
        with tp.detect_anomaly():  # the general loop: `cotangents` and `Adjoints.add`, no shortcuts
            loss.backward()
    else:
        loss.backward()
    return x.grad.numpy(), w.grad.numpy()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("shape", [(100,), (10, 10), (4,)], ids=str)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda t: np.dtype(t).name)
def test_a_chain_through_the_shortcut_matches_finite_differences_and_the_general_loop(backend, shape, dtype):
    rng = np.random.default_rng(21)
    x0, w0 = rng.uniform(-1, 1, shape), rng.uniform(0.5, 1.5, shape)
    try:
        tp.set_backend(backend)
        if dtype == np.float64:
            check_grads(_chain, [x0, w0])
        fast = _grads(x0.astype(dtype), w0.astype(dtype))
        general = _grads(x0.astype(dtype), w0.astype(dtype), general=True)
    finally:
        tp.set_backend("numba")
    tol = 1e-5 if dtype == np.float32 else 1e-14
    for a, b in zip(fast, general):
        assert a.dtype == dtype and a.shape == shape
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


class _Spy:
    """Wraps a kernel; records (g_owned, id of g, whether it handed g back) for each call."""

    def __init__(self, kernel):
        self.kernel, self.calls = kernel, []
        self.min_size, self.owned_only = kernel.min_size, kernel.owned_only

    def __call__(self, g, saved, ins, g_owned=False, adj=None):
        cts = self.kernel(g, saved, ins, g_owned, adj)
        self.calls.append((g_owned, id(g), cts is not None and any(c is g for c in cts)))
        return cts


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_an_owned_g_handed_back_passes_from_entry_to_entry(monkeypatch, backend):
    # exp(exp(exp(... 3.0 * x))): mul's rule makes a fresh g that the sweep owns; every exp's kernel
    # then writes into that same array and hands it on, so each is given it owned (none allocates)
    try:
        tp.set_backend(backend)
        spy = _Spy(OPS[Op.EXP].kernel_vjp)
        monkeypatch.setattr(OPS[Op.EXP], "kernel_vjp", spy)
        x0 = np.linspace(-1, 0, 100)
        x = tp.tensor(x0, requires_grad=True)
        with tp.record():
            y = x * 0.5
            for _ in range(6):
                y = tp.exp(y) * 0.5
            loss = tp.sum(y * 3.0)
        loss.backward()
    finally:
        tp.set_backend("numba")
    assert len(spy.calls) == 6
    assert all(owned and handed for owned, _, handed in spy.calls)
    # closed form: y_k = exp(y_{k-1}) / 2, dy_k/dy_{k-1} = y_k
    ys = [x0 * 0.5]
    for _ in range(6):
        ys.append(np.exp(ys[-1]) * 0.5)
    expected = 3.0 * 0.5 * np.prod(ys[1:], axis=0)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-13)


def test_g_handed_back_to_an_input_of_another_dtype_is_cast():
    # a float32 input read by a float64 op: the cotangent (float64, the output's) is cast to the
    # input's dtype by Adjoints.add, never kept as it is
    x0 = np.linspace(0.1, 1.0, 50)
    x = tp.tensor(x0.astype(np.float32), requires_grad=True)
    y64 = tp.tensor(np.full(50, 2.0), requires_grad=True)
    with tp.record():
        z = tp.exp(tp.tanh(x * y64) * 0.5)  # x * y64 is float64: x's meta is float32, the product's float64
        loss = tp.sum(z)
    loss.backward()
    t = np.tanh(x0.astype(np.float32).astype(np.float64) * 2.0)
    dz = np.exp(t * 0.5) * 0.5 * (1 - t**2)
    assert x.grad.dtype == np.float32 and y64.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad.numpy(), dz * 2.0, rtol=1e-6)
    np.testing.assert_allclose(y64.grad.numpy(), dz * x0.astype(np.float32), rtol=1e-12)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_a_small_low_rank_adjoint_is_never_written_into(backend):
    # W = 2w (4 x 4: 16 elements, kept by reference in the trace's adjoint column) in a loop of
    # matrix-vector products: W's adjoint is held as outer products and made dense when its entry is
    # reached. That array is small, so the sweep must not own it: mul's kernel would write 2·g into
    # it, and the trace would show W's adjoint doubled.
    rng = np.random.default_rng(5)
    w0, x0 = rng.standard_normal((4, 4)) / 2, rng.standard_normal(4)

    def f(w, x):
        big_w = w * 2.0
        y = x
        for _ in range(3):
            y = tp.tanh(big_w @ y)
        return tp.sum(y * y)

    try:
        tp.set_backend(backend)
        check_grads(f, [w0, x0])
        w = tp.tensor(w0, requires_grad=True)
        x = tp.tensor(x0, requires_grad=True)
        with tp.record() as t:
            loss = f(w, x)
        loss.backward()
    finally:
        tp.set_backend("numba")
    (row,) = [r for r in t.trace() if r.expr.startswith("mul") and np.shape(r.value) == (4, 4)]
    np.testing.assert_allclose(row.adjoint, w.grad.numpy() / 2.0, rtol=1e-14)
