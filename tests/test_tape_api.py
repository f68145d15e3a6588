"""Recording and reverse mode (API §2) and looking at the tape (API §6)."""

import threading

import numpy as np
import pytest

import tape as tp


def test_only_operations_inside_record_are_recorded():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    assert not y.requires_grad and y.is_leaf
    with tp.record() as t:
        z = x * 2
        with tp.no_grad():
            w = x * 3
    assert z.requires_grad and not w.requires_grad and len(t) == 1


def test_results_outlive_their_block_and_feed_the_next():
    x = tp.tensor(3.0, requires_grad=True)
    with tp.record():
        y = x * x
    with tp.record() as t2:
        z = tp.sin(y)
    assert len(t2) == 1 and [r.expr for r in t2.trace()][:1] == ["input"]
    z.backward()
    np.testing.assert_allclose(x.grad.item(), np.cos(9.0) * 6.0)


def test_nested_blocks_both_see_the_inner_entries():
    x = tp.tensor(1.0, requires_grad=True)
    with tp.record() as outer:
        a = x + 1
        with tp.record() as inner:
            b = a * 2
        c = b - 3
    assert (len(outer), len(inner)) == (3, 1)
    c.backward()
    assert x.grad.item() == 2.0


def test_backward_accumulates_and_retain_graph_allows_a_second_pass():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = tp.sum(x * x)
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])


def test_non_scalar_backward_needs_a_gradient():
    x = tp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with tp.record():
        y = x * x
    with pytest.raises(RuntimeError, match="scalar"):
        y.backward()
    assert x.grad is None
    y.backward(gradient=tp.tensor([1.0, 0.0, 2.0]))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 0.0, 12.0])


def test_backward_of_a_leaf_seeds_its_own_grad():
    x = tp.tensor(2.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_tape_gradient_semantics():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    unused = tp.tensor([5.0], requires_grad=True)
    with tp.record() as t:
        h = tp.sin(x)
        y = h * x  # non-scalar target: summed
    gx, gh, gu = t.gradient(y, [x, h, unused])
    np.testing.assert_allclose(gx.numpy(), np.cos([1.0, 2.0]) * [1.0, 2.0] + np.sin([1.0, 2.0]))
    np.testing.assert_allclose(gh.numpy(), [1.0, 2.0])  # an intermediate source
    np.testing.assert_array_equal(gu.numpy(), [0.0])  # not connected: zeros
    assert x.grad is None  # .grad untouched
    with pytest.raises(RuntimeError, match="persistent"):
        t.gradient(y, x)


def test_persistent_tape_answers_twice_and_takes_output_gradients():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record(persistent=True) as t:
        y = x**3
    g1 = t.gradient(y, x)
    g2 = t.gradient(y, x, output_gradients=tp.tensor([1.0, 0.5]))
    np.testing.assert_allclose(g1.numpy(), [3.0, 12.0])
    np.testing.assert_allclose(g2.numpy(), [3.0, 6.0])


def test_grads_is_like_torch_autograd_grad():
    x = tp.tensor(2.0, requires_grad=True)
    z = tp.tensor(1.0, requires_grad=True)
    with tp.record():
        y = x**2 + 3 * x
    (gx,) = tp.grads(y, x, retain_graph=True)
    assert gx.item() == 7.0 and x.grad is None
    with pytest.raises(RuntimeError, match="allow_unused"):
        tp.grads(y, [x, z], retain_graph=True)
    gx, gz = tp.grads(y, [x, z], allow_unused=True)
    assert gx.item() == 7.0 and gz is None


def test_detach_and_stop_gradient_cut_the_history():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = x * x
        u = y.detach()
        v = tp.stop_gradient(y)
        z = tp.sum(u * x + v)
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), u.numpy())


def test_recording_is_per_thread():
    x = tp.tensor(1.0, requires_grad=True)
    seen = {}

    def other_thread():
        seen["recording"] = tp.is_recording()
        seen["y"] = x * 2

    with tp.record():
        th = threading.Thread(target=other_thread)
        th.start()
        th.join()
    assert seen["recording"] is False and not seen["y"].requires_grad


def test_zero_d_tensors_drive_python_control_flow():
    # Dive into Deep Learning's example: the graph depends on the values.
    def f(a):
        b = a * 2
        while tp.norm(b) < 1000:
            b = b * 2
        return b if tp.sum(b) > 0 else 100 * b

    tp.manual_seed(0)
    a = tp.tensor(float(tp.randn()), requires_grad=True)
    with tp.record():
        d = f(a)
    d.backward()
    np.testing.assert_allclose(a.grad.item(), (d / a).item())
    assert float(a) == a.item() and bool(a > -100)


def test_entries_and_trace_follow_the_wengert_list():
    x = tp.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    with tp.record() as t:
        y = 2 * tp.dot(x, x)
    assert len(t) == 2
    assert t.entries == [tp.Entry(0, "dot", (0, 0), 1), tp.Entry(1, "mul", (1, None), 2)]
    y.backward()
    text = str(t)
    assert "v1 = dot(v0, v0)" in text and "v2 = mul(v1, 2)" in text
    rows = t.trace()
    assert [r.name for r in rows] == ["v0", "v1", "v2"]
    assert rows[1].value == 14.0 and rows[1].adjoint == 2.0 and rows[2].adjoint == 1.0
    np.testing.assert_array_equal(rows[0].adjoint, [0.0, 4.0, 8.0, 12.0])


def test_trace_summarises_large_values_without_keeping_them():
    x = tp.tensor(np.linspace(0, 1, 100), requires_grad=True)
    with tp.record() as t:
        y = tp.sum(tp.exp(x))
    y.backward()
    text = str(t)
    assert "<float64 (100,)>" in text and "v2 = sum(v1)" in text
    assert t.trace()[1].value == ((100,), np.dtype("float64"))


def test_to_dot_draws_the_graph():
    a = tp.tensor(1.0, requires_grad=True)
    b = tp.tensor(2.0, requires_grad=True)
    with tp.record() as t:
        z = a * b + tp.sin(a)
    dot = t.to_dot()
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    for edge in ("vm1 -> v1", "v0 -> v1", "vm1 -> v2", "v1 -> v3", "v2 -> v3"):
        assert edge in dot
    del z


def test_in_place_accumulation_never_writes_into_a_shared_adjoint():
    # add hands the same cotangent array to both inputs; later sums into one of them must be done
    # without changing the other (the sweep accumulates into buffers it owns, in place).
    n = 10_000
    x = tp.tensor(np.ones(n), requires_grad=True)
    y = tp.tensor(np.ones(n), requires_grad=True)
    with tp.record() as t:
        a = x * 2.0
        b = y * 3.0
        lb = tp.sum(b * 7.0)  # recorded before s, so swept after it: adds into b's adjoint later
        la = tp.sum(a * 5.0)  # swept before lb: an in-place add into a shared array would reach b
        s = a + b  # add: the same g goes to a and b
        loss = tp.sum(s * 1.0) + la + lb
        h = tp.exp(x * 0.0)
        out = tp.sum(h * 1.0) + tp.sum(h * 1.0)
    loss.backward()
    np.testing.assert_array_equal(x.grad.numpy(), np.full(n, 2.0 * (1 + 5)))
    np.testing.assert_array_equal(y.grad.numpy(), np.full(n, 3.0 * (1 + 7)))
    gh, gx = t.gradient(out, [h, x])
    np.testing.assert_array_equal(gh.numpy(), np.full(n, 2.0))  # captured, then x's sum continued
    np.testing.assert_array_equal(gx.numpy(), np.zeros(n))


def test_grad_and_trace_never_share_an_array():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    big = tp.tensor(np.ones(100), requires_grad=True)
    with tp.record() as t:
        y = tp.sum(x * x) + tp.sum(big * big)
    y.backward()
    x.grad.zero_()
    big.grad.zero_()
    np.testing.assert_array_equal(t.trace()[0].adjoint, [2.0, 4.0])  # the trace still shows the pass
    with tp.record():
        z = tp.sum(big * 3.0)
    z.backward()
    np.testing.assert_array_equal(big.grad.numpy(), np.full(100, 3.0))


def test_a_persistent_tape_survives_backward_passes():
    # tp.record(persistent=True): backward() frees nothing, so gradient() and a second backward work
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record(persistent=True) as t:
        y = tp.sum(x**3)
    y.backward()
    np.testing.assert_allclose(t.gradient(y, x).numpy(), 3 * x.numpy() ** 2)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * 3 * x.numpy() ** 2)
    with tp.record() as plain:  # outside the persistent block, the usual rule: one pass
        z = tp.sum(x * x)
    z.backward()
    with pytest.raises(RuntimeError, match="retain_graph"):
        z.backward()
    assert not plain.persistent
