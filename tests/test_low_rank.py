"""A weight's cotangent held low rank (issue 11, W5): `sweep.LowRank` and `numpy_backend.matvec_vjp`.

The weight of a matrix-vector product gets its cotangent g xᵀ as the pair (g, x); the sweep's adjoint
buffer adds the pairs up LOW_RANK_FLUSH at a time with one matrix product. Every caller must see the
same gradients as the dense rules: checked against closed forms of the loop x ← x + h·tanh(W x), finite
differences, and the rules themselves; memory is bounded by the pairs held (tracemalloc).
"""

import numpy as np
import pytest

import tape as tp
from tape import sweep
from tape.backends import numpy_backend
from tape.ops import OPS, Op
from tape.testing import check_grads

from .peaks import backward_peak

H = 0.01


def _loop(W, x, steps):
    for _ in range(steps):
        x = x + H * tp.tanh(W @ x)
    return x


def _closed_form(W, x0, steps, seed=None):
    """(loss, dloss/dW, dloss/dx0) of loss = Σ seed·x_steps, by hand in float64."""
    W, x = np.asarray(W, np.float64), np.asarray(x0, np.float64)
    xs, os = [x], []
    for _ in range(steps):
        o = np.tanh(W @ xs[-1])
        os.append(o)
        xs.append(xs[-1] + H * o)
    gx = np.ones_like(x) if seed is None else np.asarray(seed, np.float64)
    gW = np.zeros_like(W)
    for t in reversed(range(steps)):
        gh = H * gx * (1 - os[t] ** 2)
        gW += np.outer(gh, xs[t])
        gx = gx + W.T @ gh
    return float(np.sum(xs[-1] * (1 if seed is None else seed))), gW, gx


def _np(t):
    return np.asarray(getattr(t, "array", t))


def _problem(n=24, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, n)) / np.sqrt(n)).astype(dtype), rng.standard_normal(n).astype(dtype)


@pytest.fixture(params=["numba", "numpy"])
def each(request, backend):
    backend(request.param)
    return request.param


@pytest.fixture
def flushes(monkeypatch):
    """How many times LowRank.flush added pairs into a dense part (one matrix product each)."""
    count = [0]
    flush = sweep.LowRank.flush

    def counted(self):
        count[0] += bool(self.us)
        flush(self)

    monkeypatch.setattr(sweep.LowRank, "flush", counted)
    return count


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("steps", [1, sweep.LOW_RANK_FLUSH, sweep.LOW_RANK_FLUSH + 1, 3 * sweep.LOW_RANK_FLUSH + 5])
def test_the_loop_matches_its_closed_form_with_one_matrix_product_per_flush(each, dtype, steps, flushes):
    Wa, xa = _problem(dtype=dtype)
    W, x0 = tp.tensor(Wa, requires_grad=True), tp.tensor(xa, requires_grad=True)
    with tp.record():
        loss = tp.sum(_loop(W, x0, steps))
    loss.backward()
    _, gW, gx = _closed_form(Wa, xa, steps)
    tol = 2e-5 if dtype == np.float32 else 1e-13
    assert W.grad.dtype == dtype and x0.grad.dtype == dtype
    np.testing.assert_allclose(W.grad.numpy(), gW, rtol=tol, atol=tol)
    np.testing.assert_allclose(x0.grad.numpy(), gx, rtol=tol, atol=tol)
    assert flushes[0] == -(-steps // sweep.LOW_RANK_FLUSH)  # ceil: never a g xᵀ per step


def test_the_kernel_agrees_with_the_rules_both_ways_round():
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        A, v, g = (rng.standard_normal(s).astype(dtype) for s in [(20, 30), 30, 20])
        row = OPS[Op.MATMUL]
        dA, dv = numpy_backend.matvec_vjp(g, (None, A, v), (3, 4))
        assert isinstance(dA, sweep.LowRank) and dA.shape == A.shape and dA.dtype == dtype
        part, owned = dA.dense()
        assert owned and part.dtype == dtype
        tol = 1e-5 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(part, row.vjp[0](g, None, A, v), rtol=tol, atol=tol)
        np.testing.assert_allclose(dv, row.vjp[1](g, None, A, v), rtol=tol, atol=tol)
        u, h = rng.standard_normal(20).astype(dtype), rng.standard_normal(30).astype(dtype)
        du, dA = numpy_backend.matvec_vjp(h, (None, u, A), (3, 4))  # u @ A
        np.testing.assert_allclose(dA.dense()[0], row.vjp[1](h, None, u, A), rtol=tol, atol=tol)
        np.testing.assert_allclose(du, row.vjp[0](h, None, u, A), rtol=tol, atol=tol)
        _, dv_only = numpy_backend.matvec_vjp(g, (None, A, v), (-1, 4)) or (None, None)
        assert dv_only is None  # a constant matrix: nothing to hold, the rules run


def test_the_kernel_declines_what_it_does_not_cover():
    rng = np.random.default_rng(2)
    k = numpy_backend.matvec_vjp
    A, v = rng.standard_normal((20, 30)), rng.standard_normal(30)
    assert k(rng.standard_normal(20), (None, A, v.astype(np.float32)), (1, 2)) is None  # mixed dtypes
    assert k(rng.standard_normal((20, 4)), (None, A, rng.standard_normal((30, 4))), (1, 2)) is None  # matrix-matrix
    B = rng.standard_normal((5, 20, 30))
    assert k(rng.standard_normal((5, 20)), (None, B, v), (1, 2)) is None  # batched
    Ai = np.arange(600).reshape(20, 30)
    assert k(np.ones(20, int), (None, Ai, np.ones(30, int)), (1, 2)) is None  # not floats


def _check(f, args):
    check_grads(f, args, modes=("rev",))


def test_vector_on_the_left_and_dot(each):
    W, x = _problem(n=20)
    _check(lambda W, x: tp.sum(tp.tanh(x @ W) @ W), [W, x])
    _check(lambda W, x: tp.sum(tp.tanh(tp.dot(W, x)) * tp.dot(x, W)), [W, x])


def test_a_weight_in_several_products_and_in_dense_ops(each):
    # pairs from two products per step, and dense cotangents (a transpose, an elementwise use)
    # arriving before, between and after the pairs in the reverse sweep
    rng = np.random.default_rng(3)
    W, x, y = rng.standard_normal((20, 20)) / 5, rng.standard_normal(20), rng.standard_normal(20)

    def f(W, x, y):
        z = tp.sum(W * W) * x
        for k in range(2 * sweep.LOW_RANK_FLUSH + 3):
            z = z + H * tp.tanh(W @ z) - H * (W.T @ y if k % 7 == 0 else W @ y)
        return tp.sum(tp.sin(z)) + tp.sum(W * 0.5)

    _check(f, [W, x, y])


def test_a_weight_that_is_a_result(each):
    W0, x0 = _problem(n=18)
    _check(lambda W0, x0: tp.sum(_loop(1.5 * W0 + 0.1, x0, sweep.LOW_RANK_FLUSH + 3)), [W0, x0])


def test_matrix_and_batched_products_take_the_rules(each):
    rng = np.random.default_rng(4)
    W = rng.standard_normal((18, 18)) / 4
    X, B = rng.standard_normal((18, 3)), rng.standard_normal((5, 18, 1))
    _check(lambda W, X: tp.sum(tp.tanh(W @ X) @ X.T), [W, X])
    _check(lambda W, B: tp.sum(tp.tanh(W @ B)), [W, B])
    _check(lambda W, v: tp.sum(tp.tanh(v @ W)), [W, rng.standard_normal((4, 18))])


def test_retain_graph_accumulates_and_a_seed_is_never_written_into(each):
    Wa, xa = _problem()
    W, x0 = tp.tensor(Wa, requires_grad=True), tp.tensor(xa, requires_grad=True)
    steps = 2 * sweep.LOW_RANK_FLUSH + 1
    with tp.record():
        x = _loop(W, x0, steps)
    seed = np.linspace(-1, 1, xa.size)
    kept = seed.copy()
    x.backward(seed, retain_graph=True)
    x.backward(seed)
    _, gW, gx = _closed_form(Wa, xa, steps, seed)
    np.testing.assert_allclose(W.grad.numpy(), 2 * gW, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(x0.grad.numpy(), 2 * gx, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(seed, kept)


def test_a_sweep_that_raises_midway_leaves_grad_as_it_was(each):
    @tp.primitive
    def fragile(x):
        return x.copy()

    def fail(g, out, x):
        raise ValueError("fragile: no gradient today")

    fragile.defvjp(fail)
    Wa, xa = _problem()
    W, x0 = tp.tensor(Wa, requires_grad=True), tp.tensor(xa, requires_grad=True)
    W.grad = tp.tensor(np.ones_like(Wa))
    before = W.grad.array
    with tp.record():
        loss = tp.sum(_loop(W, fragile(x0), 3 * sweep.LOW_RANK_FLUSH))  # the sweep meets fragile last
    with pytest.raises(ValueError, match="no gradient today"):
        loss.backward()
    assert W.grad.array is before and np.all(before == 1.0) and x0.grad is None


def test_callers_that_capture_adjoints_get_arrays_of_their_own(each):
    Wa, xa = _problem()
    steps = sweep.LOW_RANK_FLUSH + 2
    value, gW, gx = _closed_form(Wa, xa, steps)
    W, x0 = tp.tensor(Wa, requires_grad=True), tp.tensor(xa, requires_grad=True)
    with tp.record():
        loss = tp.sum(_loop(W, x0, steps))
    g1, g2, g3 = tp.grads(loss, [W, W, x0])
    assert g1.array is not g2.array
    for got, want in [(g1, gW), (g2, gW), (g3, gx)]:
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-13, atol=1e-13)
    with tp.record() as t:
        loss = tp.sum(_loop(W, x0, steps))
    np.testing.assert_allclose(t.gradient(loss, W).numpy(), gW, rtol=1e-13, atol=1e-13)
    v, (dW, dx) = tp.value_and_grad(lambda W, x: tp.sum(_loop(W, x, steps)), argnums=(0, 1))(Wa, xa)
    np.testing.assert_allclose(float(v), value, rtol=1e-13)
    np.testing.assert_allclose(_np(dW), gW, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(_np(dx), gx, rtol=1e-13, atol=1e-13)
    assert W.grad is None and x0.grad is None


def test_create_graph_anomaly_and_forward_over_reverse_see_arrays(each):
    Wa, xa = _problem(n=18)
    steps = sweep.LOW_RANK_FLUSH + 2
    _, gW, gx = _closed_form(Wa, xa, steps)
    W, x0 = tp.tensor(Wa, requires_grad=True), tp.tensor(xa, requires_grad=True)
    with tp.detect_anomaly(), tp.record():
        loss = tp.sum(_loop(W, x0, steps))
    (dW,) = tp.grads(loss, W)
    np.testing.assert_allclose(dW.numpy(), gW, rtol=1e-13, atol=1e-13)
    with tp.record():
        loss = tp.sum(_loop(W, x0, steps))
        (dW,) = tp.grads(loss, W, create_graph=True)
    np.testing.assert_allclose(dW.numpy(), gW, rtol=1e-13, atol=1e-13)
    # d/dx0 of Σ dW·V, by forward over reverse, against finite differences of the closed form
    V = np.random.default_rng(5).standard_normal(Wa.shape)
    grad_W = tp.grad(lambda W, x: tp.sum(_loop(W, x, steps)), argnums=0)
    _, tangent = tp.jvp(lambda x: tp.sum(grad_W(tp.tensor(Wa), x) * V), (tp.tensor(xa),), (tp.tensor(gx),))
    eps = 1e-6
    plus, minus = (np.sum(_closed_form(Wa, xa + s * eps * gx, steps)[1] * V) for s in (1, -1))
    fd = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(float(tangent), fd, rtol=1e-6)


def test_compiled_replay_and_kernels_agree(each_backend):
    Wa, xa = _problem()
    steps = sweep.LOW_RANK_FLUSH + 2
    value, gW, gx = _closed_form(Wa, xa, steps)
    cf = tp.compile(lambda W, x: tp.sum(_loop(W, x, steps)))
    for _ in range(2):  # a recording call, then a replay
        v, (dW, dx) = tp.value_and_grad(cf, argnums=(0, 1))(Wa, xa)
        np.testing.assert_allclose(float(v), value, rtol=1e-13)
        np.testing.assert_allclose(_np(dW), gW, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(_np(dx), gx, rtol=1e-12, atol=1e-12)


def test_low_rank_parts_are_written_into_only_when_owned():
    rng = np.random.default_rng(6)
    u, v, w, z = rng.standard_normal(20), rng.standard_normal(30), rng.standard_normal(20), rng.standard_normal(30)
    theirs = rng.standard_normal((20, 30))
    kept = theirs.copy()
    lr = sweep.LowRank(u, v)
    lr.add_dense(theirs, False)  # someone else's array: summed into a new one
    lr.extend(sweep.LowRank(w, z))
    lr.add_dense(np.ones((20, 30)), True)
    part, owned = lr.dense()
    np.testing.assert_array_equal(theirs, kept)
    np.testing.assert_allclose(part, kept + np.outer(u, v) + np.outer(w, z) + 1, rtol=1e-13, atol=1e-14)
    assert owned and part is not theirs


def test_memory_is_bounded_by_the_pairs_held(each):
    # 600 steps of a 64 x 64 loop: every pair kept would be 600 · 128 floats (600 KB); the bound is
    # the dense part and one flush's product (2 · 32 KB), the pairs held and stacked (2 · 32 · 128
    # floats, 64 KB), the sweep's own two lists of a pointer per entry (the slots it walks and the
    # entries it released, 2 · 2400 · 8 bytes), and 16 KB for the small arrays in flight.
    n, steps, k = 64, 600, sweep.LOW_RANK_FLUSH
    Wa, xa = _problem(n=n)
    W, x0 = tp.tensor(Wa, requires_grad=True), tp.tensor(xa, requires_grad=True)

    def recorded():
        with tp.record():
            return tp.sum(_loop(W, x0, steps))

    recorded().backward()  # warm-up: kernels compiled, caches filled
    W.grad = x0.grad = None
    peak = backward_peak(recorded())
    bound = 2 * n * n * 8 + 2 * k * 2 * n * 8 + 2 * 4 * steps * 8 + 16 * 1024
    assert peak <= bound, f"{peak} bytes at peak, bound {bound}"
    assert bound < steps * 2 * n * 8  # the bound would catch pairs that are never flushed
    np.testing.assert_allclose(W.grad.numpy(), _closed_form(Wa, xa, steps)[1], rtol=1e-12, atol=1e-12)
