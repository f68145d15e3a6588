"""Every error of API §8: the right exception, a message naming the op and the operands, and
nothing changed (values, .grad, the tape)."""

import numpy as np
import pytest

import tape as tp


def test_shape_mismatch_names_the_op_and_shapes_and_records_nothing():
    x = tp.tensor(np.ones(3), requires_grad=True)
    with tp.record() as t:
        y = x * 2
        with pytest.raises(ValueError, match=r"add: .*shapes \(3,\), \(4,\); dtypes float64, float64"):
            tp.add(y, tp.ones(4))
    assert [e.op for e in t.entries] == ["mul"]
    np.testing.assert_array_equal(x.numpy(), [1.0, 1.0, 1.0])


def test_matmul_shape_error_leaves_the_tape_as_it_was():
    a = tp.tensor(np.ones((2, 3)), requires_grad=True)
    with tp.record() as t:
        with pytest.raises(ValueError, match=r"matmul: .*shapes \(2, 3\), \(2, 3\)"):
            tp.matmul(a, a)
    assert len(t) == 0


def test_requires_grad_on_integers_is_a_type_error():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        tp.tensor([1, 2], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        tp.arange(3).requires_grad_()


def test_backward_on_a_non_scalar_without_gradient():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = x * 2
    with pytest.raises(RuntimeError, match=r"scalar output; this output has shape \(2,\)"):
        y.backward()


def test_backward_without_history_says_to_record():
    y = tp.tensor([1.0, 2.0]) * 2
    with pytest.raises(RuntimeError, match=r"tp\.record\(\)"):
        tp.sum(y).backward()


def test_second_backward_names_retain_graph_and_keeps_grad():
    x = tp.tensor(3.0, requires_grad=True)
    with tp.record():
        y = tp.exp(x)
    y.backward()
    before = x.grad.item()
    with pytest.raises(RuntimeError, match="retain_graph"):
        y.backward()
    assert x.grad.item() == before


def test_gradient_shape_mismatch():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = x * 2
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) does not match .* \(2,\)"):
        y.backward(gradient=np.ones(3))


def test_in_place_change_of_a_saved_value_is_caught_by_backward():
    x = tp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    c = tp.tensor([1.0, 2.0, 3.0])
    with tp.record():
        y = tp.sum(x * c)  # mul saves c for x's gradient
    c[0] = 5.0  # outside the block: allowed, as in NumPy
    assert c.numpy()[0] == 5.0
    with pytest.raises(RuntimeError, match=r"entry \d+ \(mul.*in-place"):
        y.backward()
    assert x.grad is None


def test_in_place_change_through_a_view_is_caught():
    base = tp.tensor(np.arange(6.0))
    x = tp.tensor([1.0, 1.0], requires_grad=True)
    view = base[1:3]  # a view of base's array
    with tp.record():
        y = tp.sum(x * view)
    base += 1.0
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()


def test_in_place_change_that_backward_does_not_need_is_fine():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    c = tp.tensor([1.0, 2.0])
    with tp.record():
        y = tp.sum(x + c)  # add saves nothing
    c *= 3.0
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0])


def test_in_place_inside_record_on_a_tracked_tensor_is_refused_at_once():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = x * 2
        for mutate in (lambda: y.__iadd__(1.0), lambda: x.__setitem__(0, 5.0), lambda: x.__imul__(2.0)):
            with pytest.raises(RuntimeError, match=r"x = x \+ v"):
                mutate()
        c = tp.zeros(2)
        with pytest.raises(RuntimeError, match="in-place"):
            c += y  # would silently drop y's gradient
    np.testing.assert_array_equal(x.numpy(), [1.0, 2.0])
    np.testing.assert_array_equal(y.numpy(), [2.0, 4.0])
    np.testing.assert_array_equal(c.numpy(), [0.0, 0.0])


def test_in_place_shape_error_names_the_operation():
    x = tp.zeros(3)
    with pytest.raises(ValueError, match=r"iadd: .*\(3,\).*\(4,\)"):
        x += np.ones(4)


def test_implicit_numpy_conversion_while_recording_is_refused():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        with pytest.raises(TypeError, match=r"x\.numpy\(\) or x\.detach\(\)"):
            np.asarray(x)
        np.asarray(x.detach())  # explicit: fine
    np.testing.assert_array_equal(np.asarray(x), [1.0, 2.0])  # outside recording: the values


def test_cuda_without_cupy_or_gpu_says_which_is_missing():
    if tp.cuda_available():
        pytest.skip("a GPU is available here")
    with pytest.raises(RuntimeError, match="(CuPy.*not installed|no CUDA GPU)"):
        tp.zeros(2).to("cuda")
    with pytest.raises(RuntimeError, match="CuPy|GPU"):
        tp.tensor([1.0], device="cuda")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        tp.zeros(2).to("tpu")


def test_detect_anomaly_forward_names_op_and_line():
    x = tp.tensor([-1.0, 4.0], requires_grad=True)
    with tp.detect_anomaly(), tp.record() as t:
        with pytest.raises(FloatingPointError, match=r"sqrt \(forward\) produced NaN.*test_errors\.py:\d+"):
            with np.errstate(invalid="ignore"):
                tp.sqrt(x)
    assert len(t) == 0


def test_detect_anomaly_backward_names_entry_and_keeps_grad_and_tape():
    x = tp.tensor([0.0, 4.0], requires_grad=True)
    with tp.detect_anomaly():
        with tp.record():
            y = tp.sum(tp.sqrt(x))  # forward is finite; the derivative at 0 is inf
        with pytest.raises(FloatingPointError, match=r"sqrt \(backward.*entry \d+ produced Inf.*test_errors\.py"):
            with np.errstate(divide="ignore"):
                y.backward()
    assert x.grad is None
    with np.errstate(divide="ignore"):
        y.backward()  # the tape is intact: without anomaly detection the sweep goes through
    assert x.grad.numpy()[1] == 0.25
