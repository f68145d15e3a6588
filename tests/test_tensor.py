"""Tensors and factories (API §1)."""

import numpy as np
import pytest

import tape as tp


def test_dtype_rules_follow_numpy():
    assert tp.tensor(2.0).dtype == np.float64
    assert tp.tensor([1, 2]).dtype == np.int64
    assert tp.tensor([True]).dtype == np.bool_
    assert tp.tensor([1, 2], dtype="float32").dtype == np.float32
    assert (tp.tensor([1.0], dtype=tp.float32) * 2.0).dtype == np.float32
    for dt in (tp.float16, tp.float32, tp.float64):
        assert tp.tensor([1.0], dtype=dt, requires_grad=True).requires_grad


def test_tensor_copies_its_data_and_array_does_not():
    data = np.array([1.0, 2.0])
    t = tp.tensor(data)
    data[0] = 9.0
    assert t.numpy()[0] == 1.0
    assert t.array is t.array and isinstance(t.array, np.ndarray)
    host = t.numpy()
    host[0] = 7.0
    assert t.array[0] == 1.0


def test_attributes():
    t = tp.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    assert (t.shape, t.ndim, t.size, t.device, t.dtype) == ((2, 3), 2, 6, "cpu", np.float64)
    assert t.T.shape == (3, 2) and len(t) == 2 and t.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert tp.tensor(3.5).item() == 3.5 and float(tp.tensor(2.0)) == 2.0 and int(tp.tensor(3)) == 3
    assert [r.tolist() for r in t] == [[0, 1, 2], [3, 4, 5]]
    with pytest.raises(TypeError, match="0-d"):
        len(tp.tensor(1.0))


def test_repr_looks_like_torch():
    assert repr(tp.tensor([0.0, 4.0], requires_grad=True)) == "tensor([0., 4.], requires_grad=True)"
    assert repr(tp.tensor(28.0)) == "tensor(28.)"
    assert repr(tp.tensor([1.0], dtype=tp.float32)) == "tensor([1.], dtype=float32)"


def test_factories_take_a_tuple_or_separate_ints():
    assert tp.zeros((2, 3)).shape == tp.zeros(2, 3).shape == (2, 3)
    assert tp.ones(4).tolist() == [1.0] * 4
    assert tp.full((2,), 7.0).tolist() == [7.0, 7.0]
    assert tp.empty(2, 2).shape == (2, 2)
    assert tp.arange(4.0).tolist() == [0.0, 1.0, 2.0, 3.0] and tp.arange(3).dtype == np.int64
    np.testing.assert_allclose(tp.linspace(0, 1, 5).numpy(), np.linspace(0, 1, 5))
    np.testing.assert_array_equal(tp.eye(3, k=1).numpy(), np.eye(3, k=1))
    x = tp.ones((2, 3), dtype=tp.float32)
    assert tp.zeros_like(x).dtype == np.float32 and tp.ones_like(x).shape == (2, 3)
    assert tp.full_like(x, 3.0).tolist() == [[3.0] * 3] * 2
    assert tp.zeros(3, requires_grad=True).requires_grad


def test_random_numbers_are_seeded():
    tp.manual_seed(42)
    a, b = tp.rand(3), tp.randn(2, 2)
    tp.manual_seed(42)
    assert (tp.rand(3) == a).all() and (tp.randn(2, 2) == b).all()
    assert a.dtype == np.float64 and ((a.numpy() >= 0) & (a.numpy() < 1)).all()
    assert tp.randn(3, dtype=tp.float32).dtype == np.float32


def test_grad_bookkeeping():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = tp.sum(x * x)
    y.backward()
    assert x.grad.shape == x.shape and x.grad.dtype == x.dtype and not x.grad.requires_grad
    g = x.grad
    x.grad.zero_()
    assert g.tolist() == [0.0, 0.0]
    x.zero_grad()
    assert x.grad is None
    assert not x.requires_grad_(False).requires_grad
    with pytest.raises(RuntimeError, match="detach"):
        y.requires_grad_(False)


def test_astype_between_floats_is_differentiable():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = tp.sum(x.astype(tp.float32) * 3.0)
        n = x.astype(np.int64)
    assert y.dtype == np.float32 and not n.requires_grad
    y.backward()
    assert x.grad.dtype == np.float64 and x.grad.tolist() == [3.0, 3.0]


def test_to_cpu_is_a_no_op_move():
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record():
        y = tp.sum(x.to("cpu") * 2)
    y.backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_indexing_forms_match_numpy():
    a = np.arange(12.0).reshape(3, 4)
    t = tp.tensor(a)
    for idx in (1, np.s_[1:], np.s_[:, ::-1], (np.array([0, 2]), 1), a > 5, np.s_[None, ..., 0], [2, 0, 2]):
        np.testing.assert_array_equal(t[idx].numpy(), a[idx])
    np.testing.assert_array_equal(t[tp.tensor([0, 2])].numpy(), a[[0, 2]])


def test_norm_is_a_method_too():
    # d2l's b.norm(): the Euclidean norm, differentiable, as tp.norm
    b = tp.tensor([3.0, 4.0], requires_grad=True)
    with tp.record():
        n = b.norm()
    n.backward()
    assert float(n) == 5.0
    np.testing.assert_allclose(b.grad.numpy(), [0.6, 0.8])
