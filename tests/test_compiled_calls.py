"""The lean compiled call (issue 10): `tp.value_and_grad(cf)` and `cf(*arrays)` replay a cached program
without a tape around it. What they return must be what the general path (one entry on a tape, swept)
returns: the same values and gradients (oracle: eager, float64 1e-12 relative), of the same kinds,
never aliased to the caller's arrays or to each other, and the inputs are never written.
"""

from __future__ import annotations

import numpy as np
import pytest

import tape as tp
from tape.compiled import kernels
from tape.compiled.compile import CompiledFunction

RTOL = 1e-12


@pytest.fixture
def fast_calls(monkeypatch):
    """How many value_and_grad calls the tape-free path answered (and how many it passed on)."""
    seen = {"taken": 0, "passed": 0}
    original = CompiledFunction._value_and_grad

    def counting(self, args, nums):
        got = original(self, args, nums)
        seen["taken" if got is not None else "passed"] += 1
        return got

    monkeypatch.setattr(CompiledFunction, "_value_and_grad", counting)
    return seen


def loss(x, W, b):
    return tp.sum(tp.tanh(x @ W + b) ** 2) + tp.sum(W * W) * 0.5


def _problem(dtype=np.float64):
    rng = np.random.default_rng(1)
    return (
        rng.uniform(-1, 1, (4, 3)).astype(dtype),
        rng.uniform(-1, 1, (3, 2)).astype(dtype),
        rng.uniform(-1, 1, 2).astype(dtype),
    )


def _close(a, b, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=rtol, atol=0)


def test_value_and_grad_of_a_compiled_function_takes_the_lean_path_and_matches_eager(each_backend, fast_calls):
    args = _problem()
    kept = [a.copy() for a in args]
    cf = tp.compile(loss)
    want_value, want_grads = tp.value_and_grad(loss, argnums=(0, 1, 2))(*args)
    first = tp.value_and_grad(cf, argnums=(0, 1, 2))(*args)  # records: the general path
    assert fast_calls == {"taken": 0, "passed": 1}
    second = tp.value_and_grad(cf, argnums=(0, 1, 2))(*args)
    assert fast_calls["taken"] == 1
    for value, grads in (first, second):
        assert type(value) is np.float64 and all(type(g) is np.ndarray for g in grads)
        _close(value, want_value)
        for g, w, a in zip(grads, want_grads, args):
            assert g.dtype == a.dtype and g.shape == a.shape
            _close(g, w)
    for a, k in zip(args, kept):  # inputs are never written
        np.testing.assert_array_equal(a, k)
    stats = cf.stats()
    assert stats["calls"] == 2 and stats["replays"] == 1 and stats["recordings"] == 1


def test_returned_gradients_are_the_callers_own(each_backend):
    args = _problem()
    cf = tp.compile(lambda x, W, b: tp.sum(x @ W + b))  # b's gradient is a sum; x's reads W
    vg = tp.value_and_grad(cf, argnums=(0, 1, 2))
    vg(*args)
    _, g1 = vg(*args)
    for g in g1:
        assert g.flags.writeable and g.flags.owndata
        assert not any(np.shares_memory(g, a) for a in args)
    assert not any(np.shares_memory(a, b) for i, a in enumerate(g1) for b in g1[i + 1 :])
    kept = [g.copy() for g in g1]
    _, g2 = vg(*args)  # a later call writes nothing the first call handed out
    for g, k in zip(g1, kept):
        np.testing.assert_array_equal(g, k)
    for g in g2:
        g *= 0.0  # and writing what it handed out changes nothing for the next call
    _, g3 = vg(*args)
    for g, k in zip(g3, kept):
        np.testing.assert_array_equal(g, k)


def test_kinds_follow_the_caller(each_backend, fast_calls):
    cf = tp.compile(lambda x, y: tp.sin(x) * y)
    vg = tp.value_and_grad(cf, argnums=(0, 1))
    vg(0.5, 2.0)
    value, (gx, gy) = vg(0.5, 2.0)  # Python floats in: float gradients out
    assert fast_calls["taken"] == 1
    assert type(value) is np.float64 and type(gx) is float and type(gy) is float
    _close(gx, 2.0 * np.cos(0.5))
    _close(gy, np.sin(0.5))
    value, (gx, gy) = vg(tp.tensor(0.5), tp.tensor(2.0))  # Tensors in: Tensors out, without history
    assert isinstance(value, tp.Tensor) and isinstance(gx, tp.Tensor) and not gx.requires_grad
    _close(gx.numpy(), 2.0 * np.cos(0.5))
    g = tp.grad(cf, argnums=-1)(np.array(0.5), np.array(2.0))  # an int argnums, counted from the end
    assert type(g) is np.ndarray and g.shape == ()
    _close(g, np.sin(0.5))


def test_float32_and_an_input_the_output_does_not_reach(each_backend):
    args = _problem(np.float32)
    cf = tp.compile(lambda x, W, b: tp.sum(x @ W))
    vg = tp.value_and_grad(cf, argnums=(1, 2))
    vg(*args)
    value, (gW, gb) = vg(*args)
    assert gW.dtype == np.float32 and gb.dtype == np.float32
    _close(gW, args[0].sum(axis=0)[:, None] * np.ones((1, 2)), rtol=1e-6)
    np.testing.assert_array_equal(gb, np.zeros(2, np.float32))


def test_a_guard_that_fails_on_the_lean_path_records_the_other_branch(each_backend, fast_calls):
    def fn(x):
        s = tp.sum(x)
        if s > 0:
            return s * s
        return tp.sum(tp.sin(x))

    cf = tp.compile(fn)
    vg = tp.value_and_grad(cf)
    vg(np.array([1.0, 2.0]))
    value, g = vg(np.array([-1.0, -2.0]))  # the cached path's guard fails: fn runs again
    assert fast_calls["taken"] == 0 and fast_calls["passed"] == 2
    _close(value, np.sin(-1.0) + np.sin(-2.0))
    _close(g, np.cos([-1.0, -2.0]))
    value, g = vg(np.array([-1.0, -3.0]))  # now the second path is cached
    assert fast_calls["taken"] == 1
    _close(g, np.cos([-1.0, -3.0]))
    assert cf.stats()["recordings"] == 2


def test_nested_and_recorded_calls_still_go_through_the_tape(each_backend, fast_calls):
    cf = tp.compile(lambda x: tp.sum(tp.sin(x) * x))
    x = np.array([0.3, 0.7])
    tp.grad(cf)(x)
    # second derivative: the inner call runs under the outer's recording, so it composes
    h = tp.grad(lambda z: tp.sum(tp.grad(cf)(z)))(x)
    _close(h, 2 * np.cos(x) - x * np.sin(x))
    w = tp.tensor(x, requires_grad=True)
    with tp.record():
        y = cf(w)
    y.backward()
    _close(w.grad.numpy(), np.sin(x) + x * np.cos(x))
    with tp.detect_anomaly():  # anomaly checks need the tape
        _, g = tp.value_and_grad(cf)(x)
    _close(g, np.sin(x) + x * np.cos(x))
    assert fast_calls["passed"] >= 2


def test_plain_calls_of_a_compiled_function_replay_and_return_fresh_results(each_backend):
    cf = tp.compile(lambda x, y: (tp.sin(x) * y, tp.cos(x)))
    x, y = np.array([0.1, 0.2]), np.array([3.0, 4.0])
    a, b = cf(x, y)
    c, d = cf(x, y)
    assert cf.stats()["replays"] == 1 and cf.stats()["calls"] == 2
    _close(c.numpy(), np.sin(x) * y)
    _close(d.numpy(), np.cos(x))
    assert not np.shares_memory(a.array, c.array)


def test_program_vjp_never_hands_back_the_callers_cotangent(each_backend):
    x = tp.tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    with tp.record() as t:
        y = tp.reshape(x + 0.0, (2, 2))  # add passes its cotangent on; reshape gives a view of it
    p = t.compile(inputs=[x], outputs=y)
    _, vjp_fn = p.vjp(np.array([1.0, 2.0, 3.0, 4.0]))
    ct = np.array([[1.0, 2.0], [3.0, 4.0]])
    (g,) = vjp_fn(ct)
    assert not np.shares_memory(g, ct) and g.flags.writeable
    ct[0, 0] = 100.0
    np.testing.assert_array_equal(g, [1.0, 2.0, 3.0, 4.0])


def test_a_value_that_is_an_input_comes_back_as_a_copy(each_backend):
    cf = tp.compile(lambda x: x[1:2])  # replayed, its value is a view of x
    x = np.array([1.0, 2.0])
    vg = tp.value_and_grad(cf)
    vg(x)
    value, g = vg(x)
    assert not np.shares_memory(value, x)
    value[...] = 9.0
    np.testing.assert_array_equal(x, [1.0, 2.0])
    np.testing.assert_array_equal(g, [0.0, 1.0])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_program_of_scalars_runs_forward_and_reverse_in_one_kernel_call(each_backend, fast_calls, dtype, monkeypatch):
    """W1's shape (every value a scalar): `kernels.scalar_value_and_grad` does forward, seed and reverse
    in one call; the same values and gradients as eager, for every subset of argnums, an input the
    output does not reach getting zeros, and an output that is an input's value."""
    calls = []
    one_call = kernels.scalar_value_and_grad
    monkeypatch.setattr(kernels, "scalar_value_and_grad", lambda *a: calls.append(1) or one_call(*a))

    def f(a, b, unused):
        total = a * 0.0
        for _ in range(6):
            total = total + (tp.log(a) + a * b - tp.sin(b))
        return total * tp.exp(-b)

    args = [np.asarray(v, dtype) for v in (1.5, 0.7, 2.0)]
    cf = tp.compile(f)
    for nums in ((0, 1, 2), (1,), (0, 2)):
        want_value, want = tp.value_and_grad(f, argnums=nums)(*args)
        tp.value_and_grad(cf, argnums=nums)(*args)  # the first call with these argnums may record
        value, grads = tp.value_and_grad(cf, argnums=nums)(*args)
        rtol = RTOL if dtype == np.float64 else 2e-5  # float32: sums of six terms, each rounded
        _close(value, want_value, rtol)
        for g, w, n in zip(grads, want, nums):
            assert g.dtype == dtype and g.shape == ()
            _close(g, w, rtol)
            if n == 2:
                assert g == 0
    assert bool(calls) == (each_backend == "numba") and cf.program(*args)._plan.kernel.kind == "scalar"

    cf_id = tp.compile(lambda a, b: tp.sin(a) * 0.0 + b)  # the output reads an input directly
    for _ in range(2):
        value, (ga, gb) = tp.value_and_grad(cf_id, argnums=(0, 1))(*args[:2])
    _close(value, args[1])
    assert ga == 0 and gb == 1
