"""The worked examples of the five references in ../shared/references, with their printed values."""

import numpy as np

import tape as tp
from tape.tape import SAVED


def test_baydin_evaluation_trace_table():
    """'A Brief Introduction to AD for ML', Table 1: f = ln(x1) + x1*x2 - sin(x2) at (2, 5)."""
    x1 = tp.tensor(2.0, requires_grad=True)
    x2 = tp.tensor(5.0, requires_grad=True)
    with tp.record() as t:
        v1 = tp.log(x1)
        v2 = x1 * x2
        v3 = tp.sin(x2)
        v4 = v1 + v2
        y = v4 - v3
    y.backward()
    rows = t.trace()
    assert [f"{r.name} = {r.expr}" for r in rows] == [
        "v-1 = x1",
        "v0 = x2",
        "v1 = log(v-1)",
        "v2 = mul(v-1, v0)",
        "v3 = sin(v0)",
        "v4 = add(v1, v2)",
        "v5 = sub(v4, v3)",
    ]
    values = [float(r.value) for r in rows]
    adjoints = [float(r.adjoint) for r in rows]
    np.testing.assert_allclose(values, [2, 5, 0.693, 10, -0.959, 10.693, 11.652], atol=5e-4)
    np.testing.assert_allclose(adjoints, [5.5, 1.716, 1, 1, -1, 1, 1], atol=5e-4)
    text = str(t)
    for printed in ("11.652", "5.5", "1.716", "0.693", "-0.959", "10.693"):
        assert printed in text
    np.testing.assert_allclose([x1.grad.item(), x2.grad.item()], [1 / 2 + 5, 2 - np.cos(5)])


def test_d2l_pytorch_chapter():
    """Dive into Deep Learning 2.5 (PyTorch): 4x, accumulation and zero_, non-scalar, detach."""
    x = tp.arange(4.0)
    x.requires_grad_(True)
    assert x.grad is None
    with tp.record():
        y = 2 * tp.dot(x, x)
    assert y.item() == 28.0
    y.backward()
    assert repr(x.grad) == "tensor([ 0.,  4.,  8., 12.])"
    assert (x.grad == 4 * x).tolist() == [True, True, True, True]

    x.grad.zero_()
    with tp.record():
        y = x.sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [1.0, 1.0, 1.0, 1.0])

    x.grad.zero_()
    with tp.record():
        y = x * x
    y.backward(gradient=tp.ones(len(y)))
    np.testing.assert_array_equal(x.grad.numpy(), [0.0, 2.0, 4.0, 6.0])

    x.grad.zero_()
    with tp.record():
        y = x * x
        u = y.detach()
        z = u * x
        s = z.sum()
        ys = y.sum()
    s.backward()
    assert (x.grad == u).all()
    x.grad.zero_()
    ys.backward()  # the history of y persists: only z's was consumed
    assert (x.grad == 2 * x).all()


def test_d2l_djl_chapter_gradient_collector_style():
    """The DJL edition: a recording scope, non-scalar targets summed, stopGradient, sin' = cos."""
    x = tp.arange(4.0, dtype=tp.float32, requires_grad=True)
    with tp.record() as t:
        y = x * x  # a vector target: GradientCollector sums it
    np.testing.assert_array_equal(t.gradient(y, x).numpy(), [0.0, 2.0, 4.0, 6.0])

    with tp.record() as t:
        y = x * x
        u = tp.stop_gradient(y)
        z = u * x
    np.testing.assert_array_equal(t.gradient(z, x).numpy(), u.numpy())

    # Exercise 5: the derivative of sin without using cos.
    xs = tp.linspace(-3, 3, 13, requires_grad=True)
    with tp.record() as t:
        f = tp.sin(xs)
    np.testing.assert_allclose(t.gradient(f, xs).numpy(), np.cos(np.linspace(-3, 3, 13)), rtol=1e-12)


def test_southampton_slides_reverse_mode_example():
    """'An Introduction to AD' slides: a = x*y; b = sin(x); z = a + b, a three-entry tape."""
    x = tp.tensor(0.5, requires_grad=True)
    y = tp.tensor(4.2, requires_grad=True)
    with tp.record() as t:
        a = x * y
        b = tp.sin(x)
        z = a + b
    assert [e.op for e in t.entries] == ["mul", "sin", "add"]
    z.backward()
    np.testing.assert_allclose(x.grad.item(), 4.2 + np.cos(0.5))  # dz/dx = y + cos(x)
    np.testing.assert_allclose(y.grad.item(), 0.5)  # dz/dy = x


def test_flashlight_autograd_tutorial():
    """flashlight's tutorial: exp's gradient, a product with one tracked input, handles, freeing."""
    var = tp.tensor(np.tile(np.array([[0.0], [1.0]]), (1, 3)), dtype=tp.float32, requires_grad=True)
    with tp.record():
        exp_var = tp.exp(var)
    exp_var.backward(gradient=tp.ones((2, 3)))
    np.testing.assert_allclose(var.grad.numpy(), [[1.0] * 3, [np.e] * 3], rtol=1e-6)

    A = tp.ones((2, 3))
    B = tp.full((2, 3), 2.0, requires_grad=True)
    with tp.record():
        AB = A * B
    AB.backward(gradient=tp.ones((2, 3)))
    np.testing.assert_array_equal(B.grad.numpy(), np.ones((2, 3)))  # = A
    assert A.grad is None  # A did not ask for a gradient

    # A Tensor is a handle: b = a shares the array.
    a = tp.zeros(3)
    b = a
    a[...] = 2.0
    np.testing.assert_array_equal(b.numpy(), [2.0, 2.0, 2.0])

    # transpose(transpose(A)) keeps no intermediate arrays; the sweep frees the graph.
    A = tp.tensor(np.random.default_rng(0).uniform(size=(4, 4)), requires_grad=True)
    B = tp.tensor(np.random.default_rng(1).uniform(size=(4, 4)), requires_grad=True)
    with tp.record() as t:
        C = tp.transpose(tp.transpose(A))
        D = tp.transpose(tp.matmul(C, B))
        E = 1.0 + D
    rows = t._store.entries
    transposes = [rows[s] for s in rows if s >= t._first and rows[s][0].name == "transpose"]
    assert len(transposes) == 3 and all(r[SAVED] is None for r in transposes)
    E.backward(gradient=tp.ones((4, 4)))
    assert all(rows[s][SAVED] is None for s in rows if s >= t._first and rows[s][0].name != "leaf")
    np.testing.assert_allclose(B.grad.numpy(), A.numpy().T @ np.ones((4, 4)))
