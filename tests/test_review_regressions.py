"""Regressions for defects a review found (each test failed before its fix)."""

import threading

import numpy as np
import pytest

import tape as tp

from .threads import run_on_threads


def test_a_tensor_recorded_on_another_threads_tape_is_refused():
    x = tp.tensor(2.0, requires_grad=True)
    with tp.record():
        y = x * 3.0
    errors = []

    def worker():
        with tp.record():
            try:
                y * 4.0
            except RuntimeError as exc:
                errors.append(str(exc))

    th = threading.Thread(target=worker)
    th.start()
    th.join()
    assert errors and "another thread's tape" in errors[0]


def test_a_leaf_read_by_several_threads_gets_its_gradient_on_every_tape():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    wrong = []

    def worker(k):
        for _ in range(300):
            with tp.record() as t:
                y = tp.sum(x * float(k + 1))
            g = t.gradient(y, x)
            if not np.array_equal(g.numpy(), [k + 1.0, k + 1.0]):
                wrong.append(g.numpy())

    assert not run_on_threads(worker, 4)
    assert not wrong


def test_returned_gradients_are_writable_and_never_shared():
    g = tp.grad(lambda x: tp.sum(x))(tp.tensor([1.0, 2.0, 3.0]))
    g += 1.0  # a broadcast view would be read-only
    np.testing.assert_array_equal(g.numpy(), [2.0, 2.0, 2.0])

    a = tp.tensor([1.0, 2.0], requires_grad=True)
    b = tp.tensor([3.0, 4.0], requires_grad=True)
    with tp.record(persistent=True) as t:
        z = a + b  # add hands one cotangent array to both inputs
    ga, gb = t.gradient(z, [a, b])
    ga += 10.0
    np.testing.assert_array_equal(gb.numpy(), [1.0, 1.0])
    seed = np.array([5.0, 6.0])
    ga2 = t.gradient(z, a, output_gradients=seed)
    ga2 += 1.0
    np.testing.assert_array_equal(seed, [5.0, 6.0])


def test_trace_adjoints_are_not_changed_by_later_accumulation():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record() as t:
        a = x * 2.0
        c = a * 3.0
        b = tp.astype(a, np.float64)  # a one-input row whose rule returns g itself
        d = b * 1.0
        y = tp.sum(d) + tp.sum(c)
    y.backward()
    rows = {r.expr: r for r in t.trace()}
    np.testing.assert_array_equal(rows["astype(v1)"].adjoint, [1.0, 1.0])
    np.testing.assert_array_equal(x.grad.numpy(), [8.0, 8.0])


def test_prod_forward_mode_is_exact_at_zeros():
    x0 = tp.tensor([1.0, 0.0, 2.0])
    assert float(tp.jvp(tp.prod, (x0,), (tp.ones(3),))[1]) == 2.0
    np.testing.assert_array_equal(tp.jacfwd(tp.prod)(x0).numpy(), [0.0, 2.0, 0.0])
    np.testing.assert_array_equal(tp.grad(tp.prod)(x0).numpy(), [0.0, 2.0, 0.0])


def test_forward_mode_keeps_float32():
    x = tp.tensor([1.0, 3.0, 2.0], dtype=tp.float32)
    v = tp.ones(3, dtype=tp.float32)
    assert tp.jvp(lambda u: tp.max(u), (x,), (v,))[1].dtype == np.float32
    assert tp.jvp(lambda u: 2.0**u, (x,), (v,))[1].dtype == np.float32


def test_a_custom_rule_with_a_wrong_shape_names_the_op():
    @tp.primitive
    def sloppy(x):
        return x * 2.0

    sloppy.defvjp(lambda g, out, x: (np.ones(5),))
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = tp.sum(sloppy(x))
    with pytest.raises(ValueError, match=r"sloppy \(backward\).*\(5,\).*\(2,\)"):
        y.backward()


def test_the_op_is_named_once_in_numpy_errors():
    with pytest.raises(ValueError) as info:
        tp.matmul(tp.ones((2, 3)), tp.ones((2, 3)))
    assert str(info.value).count("matmul:") == 1
