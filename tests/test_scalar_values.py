"""0-d float64 results are carried as NumPy float64 scalars inside the engine (tape/tensor.py).

What a user sees must not change: `Tensor.array` is a 0-d ndarray that writes go through, values and
gradients have the bits NumPy gives on 0-d arrays, and an in-place change to a value the backward
pass needs is refused, whether the value was handed out as an array before or after it was saved.
"""

import numpy as np
import pytest

import tape as tp


def test_array_of_a_0d_result_is_one_0d_ndarray_that_writes_go_through():
    x = tp.tensor(0.3, requires_grad=True)
    with tp.record():
        y = tp.sin(x) * 2.0
    a = y.array
    assert type(a) is np.ndarray and a.shape == () and a.dtype == np.float64
    assert y.array is a  # made once, then kept
    a[...] = 5.0
    assert float(y) == 5.0 and y.item() == 5.0
    assert type(y.numpy()) is np.ndarray and y.numpy().shape == ()


def test_values_and_gradients_have_the_bits_of_numpy_on_0d_arrays():
    # The same chain evaluated by NumPy on 0-d arrays, and its derivative by the chain rule by hand.
    x0 = np.array(0.7)
    x = tp.tensor(x0, requires_grad=True)
    with tp.record():
        y = x
        for _ in range(50):
            y = tp.sin(y * 0.9 + x) * 0.5
    ref, dref = x0, np.array(0.0)
    for _ in range(50):
        u = ref * 0.9 + x0
        dref = np.cos(u) * (dref * 0.9 + 1.0) * 0.5
        ref = np.sin(u) * 0.5
    assert y.numpy().tobytes() == np.asarray(ref).tobytes()
    y.backward()
    assert type(x.grad.array) is np.ndarray and x.grad.shape == ()
    np.testing.assert_allclose(x.grad.numpy(), dref, rtol=1e-13)


@pytest.mark.parametrize("read_array_first", [False, True])
def test_in_place_change_of_a_saved_0d_result_is_refused_at_backward(read_array_first):
    x = tp.tensor(0.3, requires_grad=True)
    with tp.record():
        y = x * 2.0
        if read_array_first:
            y.array  # noqa: B018  (the scalar becomes an array before sin saves it)
        z = tp.sin(y)  # sin's rule needs y
    y += 1.0  # outside the record block: allowed, but the backward pass must refuse
    with pytest.raises(RuntimeError, match="in-place"):
        z.backward()


def test_a_0d_result_mixes_with_arrays_and_other_dtypes():
    x = tp.tensor(0.5, requires_grad=True)
    v = tp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    f = tp.tensor(np.float32(2.0), requires_grad=True)
    with tp.record():
        s = tp.exp(x)  # a float64 scalar inside
        y = tp.sum(s * v) + tp.sin(x).astype(np.float32) * f
    y.backward()
    e = np.exp(0.5)
    assert y.dtype == np.float64
    np.testing.assert_allclose(x.grad.numpy(), e * 6.0 + np.cos(0.5) * 2.0, rtol=1e-6)
    np.testing.assert_allclose(v.grad.numpy(), [e, e, e], rtol=1e-15)
    assert f.grad.dtype == np.float32
    np.testing.assert_allclose(f.grad.numpy(), np.sin(0.5), rtol=1e-6)


def test_a_0d_leaf_keeps_its_array_and_its_in_place_change_is_refused():
    x1 = tp.tensor(2.0, requires_grad=True)
    x2 = tp.tensor(5.0, requires_grad=True)
    with tp.record():
        y = tp.log(x1) + x1 * x2 - tp.sin(x2)  # Baydin et al.'s example: dy/dx1 = 1/x1 + x2, dy/dx2 = x1 - cos(x2)
    x1.grad = None
    y.backward(retain_graph=True)
    np.testing.assert_allclose(x1.grad.numpy(), 0.5 + 5.0, rtol=1e-15)
    np.testing.assert_allclose(x2.grad.numpy(), 2.0 - np.cos(5.0), rtol=1e-15)
    assert type(x1.array) is np.ndarray  # the leaf keeps its array
    x2 += 1.0  # outside the record block: mul and sin saved x2's value
    with pytest.raises(RuntimeError, match="in-place"):
        y.backward()


SPECIAL = [0.0, -0.0, 1.0, -2.5, 1e-310, 1e308, np.inf, -np.inf, np.nan, 0.1, 3.0]


@pytest.mark.parametrize("name", ["add", "subtract", "multiply", "divide"])
def test_scalar_arithmetic_has_the_bits_of_the_ufunc_on_0d_arrays(name):
    # add/subtract/multiply/divide run the Python operator on float64 scalars (`OpDef.scalar`): the
    # bits must be the ufunc's on 0-d arrays, for every mix of float64 scalar and Python float.
    ufunc = getattr(np, name)
    with np.errstate(all="ignore"):
        for a in SPECIAL:
            for b in SPECIAL:
                want = ufunc(np.array(a), np.array(b))
                for x, y in ((tp.tensor(a), tp.tensor(b)), (tp.tensor(a), b), (a, tp.tensor(b))):
                    got = getattr(tp, name)(x, y)
                    assert got.dtype == np.float64
                    assert got.numpy().tobytes() == want.tobytes(), (name, a, b)


def test_a_0d_float64_leaf_stays_a_scalar_through_recording_and_backward():
    # tensor() holds a 0-d float64 as a scalar (ops on it cost a fifth of those on a 0-d array); a
    # backward pass that reads the leaf must not turn it into an array for good.
    x = tp.tensor(np.array(0.4), requires_grad=True)
    assert type(x._a) is np.float64
    for _ in range(2):
        x.grad = None
        with tp.record():
            y = tp.exp(x) * x
        y.backward()
        np.testing.assert_allclose(x.grad.numpy(), np.exp(0.4) * 1.4, rtol=1e-15)
        assert type(x._a) is np.float64
    assert x.grad.numpy().shape == () and type(x.grad.array) is np.ndarray


def test_writing_into_a_0d_leafs_array_changes_what_later_ops_read():
    x = tp.tensor(2.0, requires_grad=True)
    x.array[...] = 3.0
    with tp.record():
        y = tp.sin(x) * x
    y.backward()
    np.testing.assert_allclose(y.numpy(), np.sin(3.0) * 3.0, rtol=1e-15)
    np.testing.assert_allclose(x.grad.numpy(), np.cos(3.0) * 3.0 + np.sin(3.0), rtol=1e-15)
