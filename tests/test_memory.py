"""Memory (API §2), measured with tracemalloc: exact bounds, no timings.

NumPy reports its allocations to tracemalloc, so these numbers include the arrays.
"""

import gc
import tracemalloc

import numpy as np
import pytest

import tape as tp
from tape.tape import SAVED

from .threads import run_on_threads

MB = 1 << 20
ARRAY = 8 * 1_000_000  # bytes of 10**6 float64


@pytest.fixture
def traced():
    gc.collect()
    tracemalloc.start()
    yield
    tracemalloc.stop()


def _current():
    return tracemalloc.get_traced_memory()[0]


def _mlp_params(rng):
    return [tp.tensor(rng.standard_normal(s) * 0.3, requires_grad=True) for s in [(8, 16), (16,), (16, 1)]]


def _mlp_loss(params, x):
    w1, b1, w2 = params
    return tp.mean(tp.tanh(x @ w1 + b1) @ w2)


def _growth(step, iterations, warmup=50):
    """Bytes still allocated after `iterations` steps, beyond what was allocated after the warm-up."""
    for _ in range(warmup):
        step()
    gc.collect()
    before = _current()
    for _ in range(iterations):
        step()
    gc.collect()
    return _current() - before


def test_training_loop_runs_in_constant_memory(traced):
    rng = np.random.default_rng(0)
    params, x = _mlp_params(rng), tp.tensor(rng.standard_normal((32, 8)))

    def step():
        with tp.record():
            loss = _mlp_loss(params, x)
        loss.backward()
        for p in params:
            p -= 0.01 * p.grad
            p.zero_grad()

    assert _growth(step, 1000) < 64 * 1024


def test_recording_without_backward_runs_in_constant_memory_block_per_iteration(traced):
    rng = np.random.default_rng(0)
    params, x = _mlp_params(rng), tp.tensor(rng.standard_normal((32, 8)))

    def step():
        with tp.record():
            _mlp_loss(params, x)  # result dropped, never differentiated

    assert _growth(step, 1000) < 64 * 1024


def test_recording_without_backward_runs_in_constant_memory_in_one_long_block(traced):
    rng = np.random.default_rng(0)
    params, x = _mlp_params(rng), tp.tensor(rng.standard_normal((32, 8)))
    with tp.record() as t:
        scaled = params[0] * 1.0  # an early result that stays alive the whole time
        # The block's log (what `print(t)` shows) fills up during its first 10,000 entries (8 per
        # step); from then on nothing more is kept.
        assert _growth(lambda: _mlp_loss([scaled, *params[1:]], x), 1000, warmup=1300) < 64 * 1024
        assert len(t._window()[1]) == 1  # only `scaled` is still reachable


def test_a_chain_of_adds_keeps_no_input_arrays(traced):
    x = tp.tensor(np.ones(1_000_000), requires_grad=True)  # 8 MB
    start = _current()
    with tp.record():
        y = x
        for _ in range(50):
            y = y + 1.0
    assert _current() - start < 2 * ARRAY  # y, and at most one temporary; not 50 arrays
    y.backward(gradient=np.ones(1_000_000))
    np.testing.assert_array_equal(x.grad.numpy()[:3], [1.0, 1.0, 1.0])


def _exp_sin_tanh_loss(x):
    # saved for the sweep: exp's output, sin's input (x), tanh's output, both products' inputs:
    # four 8 MB arrays besides x.
    return tp.sum(tp.exp(x) * tp.sin(x) * tp.tanh(x))


def test_a_consumed_tape_holds_no_arrays():
    x = tp.tensor(np.linspace(0, 1, 1_000_000), requires_grad=True)
    with tp.record():
        _exp_sin_tanh_loss(x).backward()  # warm-up: compiles the backend's kernels outside the trace
    x.zero_grad()
    gc.collect()
    tracemalloc.start()
    try:
        with tp.record() as t:
            loss = _exp_sin_tanh_loss(x)
        held = _current()
        loss.backward()  # loss is still alive, so are its (consumed) rows
        gc.collect()
        assert len(t) == 6
        rows = t._store.entries
        assert all(rows[s][SAVED] is None for s in t._window()[1])
        # the four saved arrays are gone; x.grad (8 MB) was added
        assert _current() < held - 3 * ARRAY + MB
    finally:
        tracemalloc.stop()


def test_unreachable_history_is_released_at_once():
    x = tp.tensor(2.0, requires_grad=True)
    with tp.record() as t:
        y = tp.exp(x * x)
        z = y + 1
    assert len(t._window()[1]) == 3
    del z
    assert len(t._window()[1]) == 2  # y still reachable: mul and exp stay
    del y
    assert len(t._window()[1]) == 0 and all(s < t._first for s in t._store.entries)
    assert len(t) == 3  # what the block recorded is still remembered by its handle


def test_multiplying_by_a_constant_keeps_nothing_of_the_tracked_input():
    # 20 multiplications by a constant on 10**6 floats: only the constant's rule input would be
    # needed (the other factor, here a Python float), so the forward pass holds its result alone.
    x = tp.tensor(np.ones(1_000_000), requires_grad=True)
    gc.collect()
    tracemalloc.start()
    try:
        base = _current()
        with tp.record():
            y = x
            for _ in range(20):
                y = y * 1.01
            loss = tp.sum(y)
        held = _current() - base
        tracemalloc.reset_peak()
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert held <= 2 * ARRAY  # y itself, and nothing per multiplication (was 20 arrays: 160 MB)
    assert peak <= 4 * ARRAY  # y, the adjoint in flight and the one being made, x.grad
    np.testing.assert_allclose(x.grad.numpy(), np.full(1_000_000, 1.01**20))


def test_a_tracked_factor_keeps_only_what_the_other_factor_needs():
    # y * c with c a constant array: y's rule needs c (which the caller holds anyway), not y
    x = tp.tensor(np.ones(1_000_000), requires_grad=True)
    c = np.full(1_000_000, 2.0)
    with tp.record():
        y = tp.exp(x) * c
    from tape.tape import SAVED as saved_column

    entry = y._store.entries[y._slot]
    assert entry[saved_column][1] is None and entry[saved_column][2] is c


def test_no_entry_outlives_its_transform():
    # Reverse over forward (the tangents themselves recorded) and an output that is the input itself
    # once left entries behind for good: the store must be empty again afterwards.
    from tape.tape import state

    store = state().store
    before = len(store.entries)
    f = lambda x: tp.sum(tp.tanh(x) * x)  # noqa: E731
    x, v = tp.tensor([0.3, -0.7]), tp.tensor([1.0, 2.0])
    tp.grad(lambda a, b: tp.sum(tp.jvp(f, (a,), (b,))[1]), (0, 1))(x, v)  # reverse over forward
    tp.jvp(tp.grad(f), (x,), (v,))  # forward over reverse
    _, vjp_fn = tp.vjp(lambda a: a, x)  # an output that is the input
    vjp_fn(tp.ones(2))
    del vjp_fn
    gc.collect()
    assert len(store.entries) == before and not store.tangents


def test_the_large_array_backward_allocates_two_arrays_at_most(traced):
    # sum(tanh(a·x + b)·exp(−x·x)) (the harness's W3), a and b 0-d: the backward pass needs two
    # arrays of x's size beyond what the forward saved (the two cotangents of the last product).
    # x·x's cotangent goes into the one it is given (not g·x twice, then their sum), add hands its g
    # on to a·x (b's is g summed), and a·x's cotangents are a dot product and g·a, added into x's
    # adjoint (x·x's cotangent) in the same pass.
    n = 1 << 18
    rng = np.random.default_rng(0)

    def recorded():
        x = tp.tensor(rng.standard_normal(n), requires_grad=True)
        a, b = tp.tensor(0.7, requires_grad=True), tp.tensor(-0.3, requires_grad=True)
        with tp.record():
            total = tp.sum(tp.tanh(a * x + b) * tp.exp(-(x * x)))
        return x, a, b, total

    recorded()[-1].backward()  # the first pass compiles (or loads) the kernels, which allocates too
    x, a, b, total = recorded()
    gc.collect()
    start = _current()
    tracemalloc.reset_peak()
    total.backward()
    peak = tracemalloc.get_traced_memory()[1] - start
    assert peak <= 2 * 8 * n + 64 * 1024, f"{peak / (8 * n):.2f} arrays"
    # the values, against the closed form: t = tanh(a x + b), e = exp(−x²), u = e (1 − t²)
    xv = x.numpy()
    t, e = np.tanh(0.7 * xv - 0.3), np.exp(-xv * xv)
    u = e * (1 - t * t)
    np.testing.assert_allclose(x.grad.numpy(), 0.7 * u - 2 * xv * t * e, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(float(a.grad), np.dot(u, xv), rtol=1e-10)
    np.testing.assert_allclose(float(b.grad), np.sum(u), rtol=1e-10)


def _in_a_fresh_thread(fn):
    """Run `fn(store)` on a new thread, whose tape (store) nothing else has touched; re-raise its error."""
    from tape.tape import state

    errors = run_on_threads(lambda _: fn(state().store), 1)
    if errors:
        raise errors[0]


def test_the_last_handle_takes_the_whole_history_at_once(monkeypatch):
    # When no handle on any result of a store is left, nothing can reach its entries: they all go in
    # one dict clear (Store.drop_history), leaves included, without the entry-by-entry release.
    from tape.tape import Store

    released = []
    release = Store.release
    monkeypatch.setattr(Store, "release", lambda self, slot: (released.append(slot), release(self, slot)))

    def check(store):
        x = tp.tensor(np.linspace(0.1, 1.0, 50), requires_grad=True)
        with tp.record() as t:
            y = x
            for _ in range(100):
                y = tp.sin(y) * 1.5 + x
            loss = tp.sum(y)
            kept = tp.exp(y)  # a second result, alive after loss: the history stays until it goes
        del y
        loss.backward()
        assert store.n_handles == 2 and len(store.entries) == 303  # 301 ops, exp, the leaf
        del loss
        assert store.n_handles == 1 and len(store.entries) > 300  # kept reads y's whole history
        del kept
        assert store.n_handles == 0 and not store.entries and not store.leaves and not store.leaf_slots
        assert len(t) == 302 and "sin" in str(t)  # the block's log still shows what it recorded
        # x is read again in a new block: a new leaf entry, and the gradient of the new history
        x.grad = None
        with tp.record():
            z = tp.sum(x * x)
        z.backward()
        np.testing.assert_allclose(x.grad.numpy(), 2 * x.numpy())

    released.clear()
    _in_a_fresh_thread(check)
    # the release of entries made unreachable one by one happened only for the handles dropped while
    # another handle lived (y's, loss's): never an entry-by-entry walk of the whole history
    assert len(released) <= 2


def test_copies_of_a_result_are_handles_and_deep_copies_refuse_history():
    import copy

    def check(store):
        x = tp.tensor([0.5, 2.0], requires_grad=True)
        with tp.record():
            y = tp.exp(x) * x
        z = copy.copy(y)
        assert z._slot == y._slot and store.n_handles == 2
        del y  # the copy keeps the history
        with tp.record():
            s = tp.sum(z)
        s.backward()
        np.testing.assert_allclose(x.grad.numpy(), np.exp([0.5, 2.0]) * (1 + np.array([0.5, 2.0])))
        with pytest.raises(RuntimeError, match="deepcopy of a tensor with history"):
            copy.deepcopy(z)
        x.grad = tp.tensor([1.0, 1.0])
        w = copy.deepcopy(x)
        assert w.requires_grad and w.is_leaf and w.array is not x.array and w.grad.array is not x.grad.array
        np.testing.assert_array_equal(w.numpy(), x.numpy())

    _in_a_fresh_thread(check)
