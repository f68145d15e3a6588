"""Checkpointing (API §5): values, gradients, exact step counts and memory bounds; no timings.

Every gradient is compared with the same computation recorded plainly on the tape (no
checkpointing), and one with finite differences. Step counts are compared with the Revolve
optimum p(n, s) computed here from its closed form, independently of the package under test.
"""

import gc
import os
import sys
import tracemalloc
from math import comb

import numpy as np
import pytest

import tape as tp
from tape.checkpointing import default_snapshots, revolve_extra_steps
from tape.testing import check_grads


def p(n, s):
    """The Revolve optimum: t·n − C(s+t, t−1), t the smallest integer with C(s+t, s) ≥ n."""
    t = 0
    while comb(s + t, s) < n:
        t += 1
    return t * n - comb(s + t, t - 1) if t else 0


class Counted:
    """A step function that counts its calls: x + 0.1·tanh(W x)."""

    def __init__(self, W):
        self.W = W
        self.calls = 0

    def __call__(self, x):
        self.calls += 1
        return x + 0.1 * tp.tanh(self.W @ x)


def _problem(dim=4, seed=0):
    rng = np.random.default_rng(seed)
    W = tp.tensor(rng.standard_normal((dim, dim)) * 0.5, requires_grad=True)
    x0 = tp.tensor(rng.standard_normal(dim), requires_grad=True)
    return W, x0


def _loss(x):
    return tp.sum(x * x)


def _plain_loop(step, state, n):
    for _ in range(n):
        state = step(state)
    return state


def _reference(W, x0, n):
    """Value and gradients of the loss through the loop recorded plainly."""
    with tp.record():
        loss = _loss(_plain_loop(Counted(W), x0, n))
    gx, gW = tp.grads(loss, [x0, W])
    return loss.item(), gx.numpy(), gW.numpy()


def _checkpointed(W, x0, n, **kw):
    step = Counted(W)
    with tp.record():
        loss = _loss(tp.checkpoint_loop(step, x0, n, **kw))
    gx, gW = tp.grads(loss, [x0, W])
    return loss.item(), gx.numpy(), gW.numpy(), step.calls


# ------------------------------------------------------------------------------------------------
# checkpoint_loop: the binomial schedule.


@pytest.mark.parametrize("snapshots", [1, 2, 3, 10])
@pytest.mark.parametrize("n_steps", [1, 2, 7, 100, 1000])
def test_loop_equals_plain_loop_and_calls_step_n_plus_p_times(n_steps, snapshots):
    W, x0 = _problem()
    value, gx, gW = _reference(W, x0, n_steps)
    stats = tp.CheckpointStats()
    value_c, gx_c, gW_c, calls = _checkpointed(W, x0, n_steps, snapshots=snapshots, stats=stats)
    assert value_c == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(gx_c, gx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gW_c, gW, rtol=1e-10, atol=1e-12)
    # The initial state counts as one of the snapshots, as in Revolve.
    assert calls == n_steps + p(n_steps, snapshots)
    assert (stats.forward_steps, stats.rerun_steps) == (n_steps, p(n_steps, snapshots))
    assert stats.peak_snapshots == min(snapshots, n_steps - 1)
    assert stats.peak_snapshot_bytes == stats.peak_snapshots * x0.array.nbytes


def test_revolve_formula_agrees_with_the_dynamic_programme():
    # Griewank & Walther's recurrence (eq. 2 of Algorithm 799), as checkpoint_schedules computes it.
    from checkpoint_schedules.multistage import optimal_extra_steps

    for n in range(1, 60):
        for s in range(1, 8):
            expected = optimal_extra_steps(n, min(s, n - 1)) if n > 1 else 0
            assert p(n, s) == revolve_extra_steps(n, s) == expected, (n, s)


def test_gradients_match_finite_differences():
    rng = np.random.default_rng(1)

    def f(x0, W):
        return tp.checkpoint_loop(lambda x: x + 0.1 * tp.tanh(W @ x), x0, n_steps=23, snapshots=3)

    check_grads(f, [rng.standard_normal(3), rng.standard_normal((3, 3))], modes=("rev",))


def test_default_snapshots_keep_reruns_below_three_per_step():
    for n in [1, 2, 10, 100, 10_000, 10**6]:
        s = default_snapshots(n)
        assert comb(s + 3, 3) >= n and (s == 1 or comb(s + 2, 3) < n)
        assert p(n, s) <= 3 * n
    W, x0 = _problem()
    *_, calls = _checkpointed(W, x0, 300)
    assert calls == 300 + p(300, default_snapshots(300))


def test_tuple_and_dict_states_with_mixed_dtypes_and_carried_values():
    rng = np.random.default_rng(2)
    W = tp.tensor(rng.standard_normal((3, 3)) * 0.5, requires_grad=True)
    x0 = tp.tensor(rng.standard_normal(3), requires_grad=True)
    v0 = tp.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True)

    def step(s):
        x, v = s["xv"]
        v = v + 0.1 * tp.tanh(W @ x).astype(np.float32)
        x = x + 0.1 * v.astype(np.float64)
        return {"xv": (x, v), "t": s["t"] + 1, "k": s["k"] + 1}

    def run(loop):
        with tp.record():
            out = loop({"xv": (x0, v0), "t": 0, "k": tp.tensor(0)})
            loss = tp.sum(out["xv"][0] ** 2) + tp.sum(out["xv"][1])
        return out, loss.item(), [g.numpy() for g in tp.grads(loss, [x0, v0, W])]

    out, value, grads = run(lambda s: _plain_loop(step, s, 40))
    out_c, value_c, grads_c = run(lambda s: tp.checkpoint_loop(step, s, 40, snapshots=4))
    assert out_c["t"] == 40 and int(out_c["k"]) == 40 and out_c["k"].dtype == np.int64
    assert out_c["xv"][1].dtype == np.float32 and isinstance(out_c["xv"], tuple)
    assert value_c == pytest.approx(value, rel=1e-6)
    for g_c, g in zip(grads_c, grads):
        np.testing.assert_allclose(g_c, g, rtol=1e-5, atol=1e-6)


def test_closed_over_tensor_with_its_own_history_on_the_outer_tape():
    W0, x0 = _problem(seed=3)
    b = tp.tensor(np.ones(4), requires_grad=True)

    def run(loop):
        with tp.record():
            W = tp.sin(W0) * 2  # history on the outer tape, read by every step
            c = b * 0.5
            loss = _loss(loop(lambda x: x + 0.1 * tp.tanh(W @ x + c), x0, 50))
        return [g.numpy() for g in tp.grads(loss, [x0, W0, b])]

    expected = run(_plain_loop)
    got = run(lambda step, x, n: tp.checkpoint_loop(step, x, n, snapshots=3))
    for g_c, g in zip(got, expected):
        np.testing.assert_allclose(g_c, g, rtol=1e-10, atol=1e-12)


def test_initial_state_without_requires_grad_still_gives_the_weights_gradient():
    W, _ = _problem(seed=14)
    h0 = tp.zeros(4) + 0.5  # an RNN's initial state: no gradient wanted
    with tp.record():
        expected = tp.grads(_loss(_plain_loop(Counted(W), h0, 40)), W)[0].numpy()
        loss = _loss(tp.checkpoint_loop(Counted(W), h0, 40, snapshots=3))
    np.testing.assert_allclose(tp.grads(loss, W)[0].numpy(), expected, rtol=1e-10)


def test_backward_accumulates_into_grad_and_a_second_backward_needs_retain_graph():
    W, x0 = _problem(seed=4)
    _, gx, gW = _reference(W, x0, 30)
    with tp.record():
        loss = _loss(tp.checkpoint_loop(Counted(W), x0, 30, snapshots=3))
    loss.backward(retain_graph=True)
    loss.backward()  # runs the loop again from the initial state the entry kept
    np.testing.assert_allclose(x0.grad.numpy(), 2 * gx, rtol=1e-10)
    np.testing.assert_allclose(W.grad.numpy(), 2 * gW, rtol=1e-10)
    with pytest.raises(RuntimeError, match="retain_graph"):
        loss.backward()


def test_random_numbers_are_drawn_again_the_same():
    W, x0 = _problem(seed=5)

    def step(x):
        return x + 0.1 * tp.tanh(W @ x) + 0.01 * tp.randn(4)

    def run(loop):
        tp.manual_seed(7)
        with tp.record():
            loss = _loss(loop(step, x0, 60))
        after_forward = tp.rand(3).numpy()
        grads = [g.numpy() for g in tp.grads(loss, [x0, W])]
        return loss.item(), grads, after_forward, tp.rand(3).numpy()

    value, grads, rand_fwd, rand_bwd = run(_plain_loop)
    value_c, grads_c, rand_fwd_c, rand_bwd_c = run(lambda f, x, n: tp.checkpoint_loop(f, x, n, snapshots=4))
    assert value_c == pytest.approx(value, rel=1e-12)
    for g_c, g in zip(grads_c, grads):
        np.testing.assert_allclose(g_c, g, rtol=1e-10, atol=1e-12)
    # The user's random stream is where the plain loop leaves it, and the backward pass leaves it alone.
    np.testing.assert_array_equal(rand_fwd_c, rand_fwd)
    np.testing.assert_array_equal(rand_bwd_c, rand_bwd)


class _SpyBitGenerator:
    """Counts reads and writes of the generator's state, the costly part of saving and restoring it."""

    def __init__(self, bit_generator):
        self._bit_generator = bit_generator
        self.gets = self.sets = 0

    @property
    def state(self):
        self.gets += 1
        return self._bit_generator.state

    @state.setter
    def state(self, value):
        self.sets += 1
        self._bit_generator.state = value


class _SpyGenerator:
    def __init__(self, seed):
        self._generator = np.random.default_rng(seed)
        self.bit_generator = _SpyBitGenerator(self._generator.bit_generator)

    def random(self, shape):
        return self._generator.random(shape)

    def standard_normal(self, shape):
        return self._generator.standard_normal(shape)


@pytest.mark.parametrize("draws", [False, True])
def test_the_generator_state_is_read_and_set_only_when_something_was_drawn(monkeypatch, draws):
    from tape import creation

    spy = _SpyGenerator(3)
    monkeypatch.setattr(creation, "_rng", spy)
    W, x0 = _problem(seed=14)

    def step(x):
        y = x + 0.1 * tp.tanh(W @ x)
        return y + 0.01 * tp.randn(4) if draws else y

    _, gx, gW = _reference(W, x0, 40) if not draws else (None, None, None)
    tp.manual_seed(8)  # a new generator: the spy is gone, and the first read is a real one
    monkeypatch.setattr(creation, "_rng", spy)
    stats = tp.CheckpointStats()
    with tp.record():
        loss = _loss(tp.checkpoint_loop(step, x0, 40, snapshots=4, stats=stats))
    gx_c, gW_c = tp.grads(loss, [x0, W])
    transfers = stats.rerun_steps  # (more than the snapshots restored: a bound, not a count)
    if not draws:
        np.testing.assert_allclose(gx_c.numpy(), gx, rtol=1e-10)
        np.testing.assert_allclose(gW_c.numpy(), gW, rtol=1e-10)
        # one read when the loop starts; every snapshot and every restore then finds it unchanged
        assert (spy.bit_generator.gets, spy.bit_generator.sets) == (1, 0)
    else:  # each snapshot reads the state, each restore sets it (test_random_numbers_... checks the values)
        assert spy.bit_generator.gets > 4 and 4 < spy.bit_generator.sets <= transfers + 1


def test_rng_state_round_trip_and_its_cache():
    from tape.creation import get_rng_state, set_rng_state

    tp.manual_seed(21)
    start = get_rng_state()
    assert get_rng_state() is start  # nothing drawn: the same state
    first = tp.rand(3).numpy()
    assert get_rng_state() is not start and get_rng_state() != start
    set_rng_state(start)
    np.testing.assert_array_equal(tp.rand(3).numpy(), first)
    set_rng_state(start)
    set_rng_state(start)  # already there: a no-op that changes nothing
    np.testing.assert_array_equal(tp.rand(3).numpy(), first)
    tp.manual_seed(21)
    assert get_rng_state() == start and get_rng_state() is not start


@pytest.mark.parametrize("orientation", ["W @ x", "x @ W", "W @ x and sum(W)"])
def test_a_loop_adds_its_weight_cotangents_with_one_product_per_32_steps(monkeypatch, orientation):
    """W's cotangent through a matrix-vector product is a pair (g, x) per step: the loop collects
    LOW_RANK_FLUSH of them before adding them with one matrix product (sweep.LowRank), as the
    plain tape does, rather than one outer product and one add per reversed step."""
    from tape import sweep

    flushes = [0]
    flush = sweep.LowRank.flush

    def counted(self):
        flushes[0] += bool(self.us)
        return flush(self)

    W, x0 = _problem(dim=6, seed=15)

    def step(x):
        if orientation == "x @ W":
            return x + 0.1 * tp.tanh(x @ W)
        y = x + 0.1 * tp.tanh(W @ x)
        return y + 0.001 * tp.sum(W) if orientation == "W @ x and sum(W)" else y

    n = 100
    with tp.record():
        loss = _loss(_plain_loop(step, x0, n))
    gx, gW = tp.grads(loss, [x0, W])
    monkeypatch.setattr(sweep.LowRank, "flush", counted)
    with tp.record():
        loss = _loss(tp.checkpoint_loop(step, x0, n, snapshots=5))
    gx_c, gW_c = tp.grads(loss, [x0, W])
    np.testing.assert_allclose(gx_c.numpy(), gx.numpy(), rtol=1e-10)
    np.testing.assert_allclose(gW_c.numpy(), gW.numpy(), rtol=1e-10)
    assert flushes[0] == -(-n // sweep.LOW_RANK_FLUSH)


def test_a_state_matrix_read_through_a_matrix_vector_product():
    """The state's own matrix gets outer products as its cotangent (sweep.LowRank); they seed the next
    reversed step, so the loop turns them into an array there (only closed-over tensors stay low rank)."""
    rng = np.random.default_rng(17)

    def step(state):
        W, x = state
        return W * 0.99, x + 0.1 * tp.tanh(W @ x)

    def loss_of(loop, W0, x0):
        W, x = loop((W0, x0))
        return tp.sum(x * x) + tp.sum(W)

    W0 = tp.tensor(rng.standard_normal((5, 5)) * 0.3, requires_grad=True)
    x0 = tp.tensor(rng.standard_normal(5), requires_grad=True)
    with tp.record():
        expected = tp.grads(loss_of(lambda s: _plain_loop(step, s, 20), W0, x0), [W0, x0])
    with tp.record():
        got = tp.grads(loss_of(lambda s: tp.checkpoint_loop(step, s, 20, snapshots=3), W0, x0), [W0, x0])
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-10)
    check_grads(
        lambda W, x: loss_of(lambda s: tp.checkpoint_loop(step, s, 7, snapshots=2), W, x),
        [rng.standard_normal((3, 3)) * 0.3, rng.standard_normal(3)],
        modes=("rev",),
    )


def test_a_loop_under_detect_anomaly_gives_the_same_gradients():
    W, x0 = _problem(seed=16)
    _, gx, gW = _reference(W, x0, 30)
    with tp.detect_anomaly():
        _, gx_c, gW_c, _ = _checkpointed(W, x0, 30, snapshots=3)
    np.testing.assert_allclose(gx_c, gx, rtol=1e-10)
    np.testing.assert_allclose(gW_c, gW, rtol=1e-10)


def test_peak_memory_is_a_few_percent_of_the_plain_loop():
    n, size = 2000, 10**4
    rng = np.random.default_rng(6)
    w = tp.tensor(rng.standard_normal(size), requires_grad=True)
    x0 = tp.tensor(rng.standard_normal(size), requires_grad=True)

    def step(x):
        return x + 0.01 * tp.tanh(w * x)

    def peak(loop):
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            with tp.record():
                loss = tp.sum(loop(step, x0))
            loss.backward()
            del loss
            return tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    # checkpoint_schedules compiles its schedule arithmetic with numba on first use, once per
    # process; tracemalloc would count the compiler's memory, which does not grow with the loop.
    with tp.record():
        tp.checkpoint_loop(step, x0, 3, snapshots=2)
    plain = peak(lambda f, x: _plain_loop(f, x, n))
    grad_plain = x0.grad.numpy()
    x0.zero_grad()
    checkpointed = peak(lambda f, x: tp.checkpoint_loop(f, x, n, snapshots=10))
    np.testing.assert_allclose(x0.grad.numpy(), grad_plain, rtol=1e-10)
    assert plain > n * x0.array.nbytes  # the plain loop keeps (at least) every state
    assert checkpointed < 0.05 * plain, (checkpointed, plain)


def test_outside_a_record_block_it_is_the_plain_loop():
    W, x0 = _problem()
    step = Counted(W)
    x = tp.checkpoint_loop(step, x0, 10, snapshots=2)
    assert step.calls == 10 and not x.requires_grad
    np.testing.assert_allclose(x.numpy(), _plain_loop(Counted(W), x0, 10).numpy())


def test_nothing_to_differentiate_runs_once_and_stores_nothing():
    x0 = tp.tensor([1.0, 2.0])  # no requires_grad, and the step closes over nothing tracked
    stats = tp.CheckpointStats()
    with tp.record():
        x = tp.checkpoint_loop(lambda x: x * 2, x0, 10, snapshots=3, stats=stats)
    assert not x.requires_grad and x.tolist() == [1024.0, 2048.0]
    assert stats.forward_steps == 10 and stats.peak_snapshots <= 1


def test_a_step_that_changes_the_state_structure_is_an_error():
    x0 = tp.tensor([1.0], requires_grad=True)
    with tp.record(), pytest.raises(TypeError, match="shaped like its input"):
        tp.checkpoint_loop(lambda x: (x, x), x0, 3)


def test_a_tensor_first_read_after_step_0_is_an_error_not_a_lost_gradient():
    a = tp.tensor(2.0, requires_grad=True)
    b = tp.tensor(3.0, requires_grad=True)
    count = [0]

    def step(x):
        count[0] += 1
        return x * (a if count[0] == 1 else b)

    with pytest.raises(RuntimeError, match="did not use when it first ran"):
        with tp.record():
            loss = tp.checkpoint_loop(step, tp.tensor(1.0, requires_grad=True), 5, snapshots=2)
        loss.backward()


def test_in_place_change_of_a_closed_over_tensor_before_backward_is_refused():
    W, x0 = _problem()
    with tp.record():
        loss = _loss(tp.checkpoint_loop(Counted(W), x0, 5, snapshots=2))
    W += 1.0  # outside the block: allowed, but the re-run would read the new values
    with pytest.raises(RuntimeError, match="in-place"):
        loss.backward()


def test_progress_bars_and_a_clear_error_without_tqdm(monkeypatch, capsys):
    W, x0 = _problem()
    *_, calls = _checkpointed(W, x0, 20, snapshots=3, progress=True)
    assert "checkpoint_loop backward" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    with tp.record(), pytest.raises(ImportError, match="pip install tqdm"):
        tp.checkpoint_loop(Counted(W), x0, 20, progress=True)


def test_stats_print_as_a_table():
    W, x0 = _problem()
    stats = tp.CheckpointStats()
    _checkpointed(W, x0, 100, snapshots=5, stats=stats)
    text = str(stats)
    assert "steps re-run" in text and f"{p(100, 5):,}" in text
    assert stats.step_calls == 100 + p(100, 5) and stats.backward_passes == 1


# ------------------------------------------------------------------------------------------------
# Snapshots on disk, and the online mode.


class StepError(Exception):
    pass


def _failing_step(W, fail_at):
    """A step that raises at its `fail_at`-th call; the exception is kept as `f.error`.

    The test must clear `f.error`: its traceback holds the test's tensors, and the loop's entry,
    still on the tape after a failed backward pass, holds the step, so nothing would release them.
    """
    step = Counted(W)

    def f(x):
        if step.calls + 1 == fail_at:
            f.error = StepError(f"step call {fail_at}")
            raise f.error
        return step(x)

    return f


def test_disk_snapshots_give_the_same_gradients_and_leave_no_files(tmp_path):
    W, x0 = _problem(seed=8)
    value, gx, gW = _reference(W, x0, 200)
    stats = tp.CheckpointStats()
    value_c, gx_c, gW_c, calls = _checkpointed(
        W, x0, 200, snapshots=2, disk_snapshots=4, disk_dir=tmp_path, stats=stats
    )
    assert value_c == pytest.approx(value, rel=1e-12)
    np.testing.assert_allclose(gx_c, gx, rtol=1e-10)
    np.testing.assert_allclose(gW_c, gW, rtol=1e-10)
    assert calls == 200 + p(200, 6)
    assert stats.peak_disk_bytes > 0 and stats.peak_snapshots <= 6
    assert stats.peak_snapshot_bytes <= 2 * x0.array.nbytes
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("fail_at", [5, 250])  # in the forward pass, and midway through the backward pass
def test_disk_files_are_removed_when_the_step_raises(tmp_path, fail_at):
    W, x0 = _problem()
    step = _failing_step(W, fail_at)
    with pytest.raises(StepError) as raised:
        with tp.record():
            loss = _loss(tp.checkpoint_loop(step, x0, 200, snapshots=2, disk_snapshots=4, disk_dir=tmp_path))
        loss.backward()
    error, step.error = step.error, None
    assert raised.value is error  # the user's exception itself, not a wrapper
    assert x0.grad is None and W.grad is None
    gc.collect()
    assert os.listdir(tmp_path) == []


def test_disk_files_are_removed_when_the_result_is_dropped_without_backward(tmp_path):
    W, x0 = _problem()
    with tp.record():
        x = tp.checkpoint_loop(Counted(W), x0, 100, snapshots=1, disk_snapshots=3, disk_dir=tmp_path)
    assert len(os.listdir(tmp_path)) == 1  # the loop's directory, holding its snapshots
    del x
    gc.collect()
    assert os.listdir(tmp_path) == []


def _while_reference(W, x0, cond):
    step = Counted(W)
    with tp.record():
        x = x0
        while cond(x):
            x = step(x)
        loss = _loss(x)
    gx, gW = tp.grads(loss, [x0, W])
    return step.calls, loss.item(), gx.numpy(), gW.numpy()


@pytest.mark.parametrize("disk", [False, True])
def test_checkpoint_while_equals_the_plain_while_loop(tmp_path, disk):
    W, x0 = _problem(seed=9)
    threshold = 30.0

    def cond(x):
        return tp.sum(x * x) < threshold

    n, value, gx, gW = _while_reference(W, x0, cond)
    assert 20 < n < 1000
    step = Counted(W)
    stats = tp.CheckpointStats()
    with tp.record():
        x = tp.checkpoint_while(cond, step, x0, period=7, snapshots=2, disk=disk, disk_dir=tmp_path, stats=stats)
        loss = _loss(x)
    assert loss.item() == pytest.approx(value, rel=1e-12)
    gx_c, gW_c = tp.grads(loss, [x0, W])
    np.testing.assert_allclose(gx_c.numpy(), gx, rtol=1e-10)
    np.testing.assert_allclose(gW_c.numpy(), gW, rtol=1e-10)
    assert stats.n_steps == n and stats.forward_steps == n
    assert stats.peak_snapshots <= -(-n // 7) + 2
    assert (stats.peak_disk_bytes > 0) == disk
    assert os.listdir(tmp_path) == []


def test_checkpoint_while_that_never_runs_returns_the_state():
    x0 = tp.tensor([1.0], requires_grad=True)
    with tp.record():
        x = tp.checkpoint_while(lambda x: False, lambda x: x * 2, x0)
    assert x is x0


@pytest.mark.parametrize("fail_at", [3, 60])
def test_checkpoint_while_removes_its_files_when_the_step_raises(tmp_path, fail_at):
    W, x0 = _problem()
    step = _failing_step(W, fail_at)
    with pytest.raises(StepError) as raised:
        with tp.record():
            x = tp.checkpoint_while(lambda x: tp.sum(x * x) < 30.0, step, x0, period=5, disk=True, disk_dir=tmp_path)
        _loss(x).backward()
    error, step.error = step.error, None
    assert raised.value is error
    gc.collect()
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------------
# tp.checkpoint: one segment.


def test_checkpoint_segment_equals_the_plain_function_and_reruns_once():
    rng = np.random.default_rng(10)
    W = tp.tensor(rng.standard_normal((5, 5)) * 0.5, requires_grad=True)
    x = tp.tensor(rng.standard_normal(5), requires_grad=True)
    calls = [0]

    def run(checkpointed):
        with tp.record():
            W2 = W * 1.5  # closed over, with history of its own on the outer tape

            def block(x, scale):
                calls[0] += 1
                h = x
                for _ in range(8):
                    h = tp.tanh(W2 @ h) * scale
                return h, tp.sum(h)

            h, total = tp.checkpoint(block, x, scale=0.9) if checkpointed else block(x, scale=0.9)
            loss = _loss(h) + total
        return [g.numpy() for g in tp.grads(loss, [x, W])]

    expected = run(checkpointed=False)
    calls[0] = 0
    got = run(checkpointed=True)
    assert calls[0] == 2  # once forward, once re-run by the backward pass
    for g_c, g in zip(got, expected):
        np.testing.assert_allclose(g_c, g, rtol=1e-12, atol=1e-14)


def test_checkpoint_segment_keeps_no_intermediates():
    x = tp.tensor(np.ones(10**5), requires_grad=True)

    def block(x):
        for _ in range(20):
            x = tp.sin(x) * 1.01
        return x

    def held(f):
        gc.collect()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            with tp.record():
                y = tp.sum(f(x))
            gc.collect()
            return tracemalloc.get_traced_memory()[0] - base, y
        finally:
            tracemalloc.stop()

    plain, y = held(block)
    kept, y_c = held(lambda x: tp.checkpoint(block, x))
    # plain: sin's input for each of the 20 layers but the first (the leaf itself); `* 1.01` keeps nothing
    assert plain > 18 * x.array.nbytes and kept < 2 * x.array.nbytes
    grad = tp.grads(y, x)[0].numpy()
    np.testing.assert_allclose(tp.grads(y_c, x)[0].numpy(), grad, rtol=1e-12)


def test_checkpoint_segment_draws_the_same_random_numbers_when_rerun():
    x = tp.tensor(np.linspace(-1, 1, 50), requires_grad=True)

    def dropout(x):
        mask = tp.rand(50) > 0.5
        return tp.where(mask, x * 2.0, 0.0)

    tp.manual_seed(3)
    with tp.record():
        y = tp.checkpoint(dropout, x)
        loss = tp.sum(y)
    after_forward = tp.rand(4).numpy()
    loss.backward()
    kept = y.numpy() != 0
    np.testing.assert_array_equal(x.grad.numpy(), np.where(kept, 2.0, 0.0))
    assert 10 < kept.sum() < 40
    tp.manual_seed(3)
    tp.rand(50)
    np.testing.assert_array_equal(tp.rand(4).numpy(), after_forward)  # the stream moved as without checkpoint


def test_checkpoint_segment_gradient_matches_finite_differences():
    rng = np.random.default_rng(11)

    def f(x, W):
        return tp.checkpoint(lambda x: tp.tanh(W @ tp.sin(x)) * x, x)

    check_grads(f, [rng.standard_normal(3), rng.standard_normal((3, 3))], modes=("rev",))


def test_checkpoint_segment_outside_record_and_with_untracked_inputs():
    x = tp.tensor([1.0, 2.0])
    assert tp.checkpoint(lambda x: x * 2, x).tolist() == [2.0, 4.0]
    with tp.record():
        y = tp.checkpoint(lambda x: x * 2, x)
    assert not y.requires_grad


def test_checkpoint_segment_returning_an_input_unchanged():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        a, b = tp.checkpoint(lambda x: (x, x * 3), x)
        loss = tp.sum(a) + tp.sum(b)
    loss.backward()
    assert a is x and x.grad.tolist() == [4.0, 4.0]


def test_checkpoint_inside_a_checkpointed_loop():
    W, x0 = _problem(seed=12)

    def step(x):
        return tp.checkpoint(lambda x: x + 0.1 * tp.tanh(W @ x), x)

    _, gx, gW = _reference(W, x0, 20)
    with tp.record():
        loss = _loss(tp.checkpoint_loop(step, x0, 20, snapshots=3))
    gx_c, gW_c = tp.grads(loss, [x0, W])
    np.testing.assert_allclose(gx_c.numpy(), gx, rtol=1e-10)
    np.testing.assert_allclose(gW_c.numpy(), gW, rtol=1e-10)


@pytest.mark.parametrize("kind", ["segment", "loop"])
def test_derivatives_of_derivatives_through_checkpoints(kind):
    rng = np.random.default_rng(13)
    W = tp.tensor(rng.standard_normal((3, 3)) * 0.5, requires_grad=True)
    x0 = tp.tensor(rng.standard_normal(3), requires_grad=True)

    def step(x):
        return x + 0.3 * tp.tanh(W @ x)

    def run(checkpointed):
        with tp.record():
            if kind == "segment":
                x = tp.checkpoint(lambda x: _plain_loop(step, x, 4), x0) if checkpointed else _plain_loop(step, x0, 4)
            else:
                x = tp.checkpoint_loop(step, x0, 4, snapshots=2) if checkpointed else _plain_loop(step, x0, 4)
            loss = _loss(x)
            gx, gW = tp.grads(loss, [x0, W], create_graph=True)
            second = tp.sum(gx * gx) + tp.sum(gW)
        return [g.numpy() for g in tp.grads(second, [x0, W])]

    expected = run(checkpointed=False)
    for g_c, g in zip(run(checkpointed=True), expected):
        np.testing.assert_allclose(g_c, g, rtol=1e-10, atol=1e-12)
