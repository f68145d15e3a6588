"""W4's MLP step (issue 11): what its backward runs, checked against the op table's rules and against
finite differences / the hand-written NumPy gradients, plus the exact properties that keep it cheap."""

import numpy as np
import pytest

import tape as tp
from tape.backends import numba_backend
from tape.ops import OPS, Op
from tape.testing import check_grads


@pytest.mark.parametrize("owned", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", [(100,), (10, 10), (numba_backend.MIN_SIZE,), (256, 1024)], ids=str)
def test_numba_tanh_kernel_computes_in_the_arrays_dtype(shape, dtype, owned):
    # The fused kernel does the rule's arithmetic, g·(1 − o·o), in g's dtype, so for float32 it gives
    # the rule's bits exactly (it used to compute in float64 and round once: other bits, and slower)
    rng = np.random.default_rng(3)
    o = np.tanh(rng.uniform(-2, 2, shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    expected = OPS[Op.TANH].vjp[0](g, o, None)
    assert expected.dtype == dtype
    (got,) = numba_backend.VJP_KERNELS[Op.TANH](g, (o, None), (0,), owned)
    assert (got is g) == owned and got.dtype == dtype
    np.testing.assert_array_equal(got, expected)


# W4's step at a size where every fused kernel runs (a hidden layer of 128 x 256 = MIN_SIZE elements)
BATCH, LAYERS = 128, (64, 256, 256, 10)
assert BATCH * LAYERS[1] >= numba_backend.MIN_SIZE


def _problem(dtype):
    from benchmarks import workloads

    p = workloads.mlp_problem(BATCH, LAYERS, np.random.default_rng(5))
    return p["X"].astype(dtype), p["labels"], [p[k].astype(dtype) for k in workloads.MLP_PARAMETERS]


def _loss(X, labels):
    """benchmarks/engines/tape_engine.py's W4 step, as a function of the six parameters."""
    rows = np.arange(X.shape[0])

    def f(W1, b1, W2, b2, W3, b3):
        h1 = tp.tanh(X @ W1 + b1)
        h2 = tp.tanh(h1 @ W2 + b2)
        log_probabilities = tp.log_softmax(h2 @ W3 + b3)
        return -tp.mean(log_probabilities[rows, labels])

    return f


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=lambda t: np.dtype(t).name)
def test_w4_step_gradients_match_finite_differences(dtype):
    X, labels, params = _problem(dtype)
    check_grads(_loss(tp.tensor(X), labels), params, dtype=dtype)


def test_w4_step_gradients_match_the_hand_written_backward():
    # float32 through the fused kernels, against the analytic backward of the NumPy engine in float64
    from benchmarks import workloads
    from benchmarks.engines import numpy_engine

    X, labels, params = _problem(np.float32)
    leaves = [tp.tensor(p, requires_grad=True) for p in params]
    with tp.record():
        loss = _loss(tp.tensor(X), labels)(*leaves)
    loss.backward()
    reference = {"X": X.astype(np.float64), "labels": labels}
    reference.update({k: p.astype(np.float64) for k, p in zip(workloads.MLP_PARAMETERS, params)})
    value, expected, _ = numpy_engine.mlp_forward_backward(reference)
    assert abs(float(loss.item()) - value) <= 1e-5 * abs(value)
    for leaf, want in zip(leaves, expected):
        assert leaf.grad.dtype == np.float32
        np.testing.assert_allclose(leaf.grad.array, want, rtol=2e-4, atol=2e-4 * np.abs(want).max())


def test_w4_backward_stays_float32_and_runs_five_matrix_products(monkeypatch):
    # The floor is the step's 8 matmuls: 3 forward, 5 backward (none for the input batch,
    # which needs no gradient). Every cotangent any rule or kernel hands back is float32, as the
    # inputs are: a float64 upcast anywhere would cost a conversion pass and double the traffic.
    X, labels, params = _problem(np.float32)
    made = []

    def spy(fn, name):
        def wrapped(*args, **kwargs):
            out = fn(*args, **kwargs)
            for ct in out if isinstance(out, tuple) else (out,):
                if ct is not None:
                    made.append((name, ct))
            return out

        for attr in ("min_size", "owned_only"):
            if hasattr(fn, attr):
                setattr(wrapped, attr, getattr(fn, attr))
        return wrapped

    for op in OPS.values():
        if op.vjp:
            monkeypatch.setattr(op, "vjp", tuple(r if r is None else spy(r, op.name) for r in op.vjp))
        if op.kernel_vjp is not None:
            monkeypatch.setattr(op, "kernel_vjp", spy(op.kernel_vjp, op.name))
    leaves = [tp.tensor(p, requires_grad=True) for p in params]
    with tp.record():
        loss = _loss(tp.tensor(X), labels)(*leaves)
    loss.backward()
    assert made and all(np.asarray(ct).dtype == np.float32 for _, ct in made), {
        (name, np.asarray(ct).dtype) for name, ct in made
    }
    assert sum(name == "matmul" for name, _ in made) == 5
    assert all(leaf.grad.dtype == np.float32 for leaf in leaves)


@pytest.mark.parametrize("axis", [-1, 0])
def test_log_softmax_keeps_float32_precision_for_large_logits(axis):
    # (x - m) - log(sum(exp(x - m))): the shift is exact and the result is rounded once at its own
    # scale. The old x - (log(sum) + m) rounded log(sum) + m at m's scale: an error of half an ulp of
    # 1000 (3e-5) in every log-probability, some 250 float32 ulps of a value near 1.
    rng = np.random.default_rng(9)
    x = (1000.0 + rng.uniform(-3, 3, (6, 5))).astype(np.float32)
    x64 = x.astype(np.float64)
    m = x64.max(axis=axis, keepdims=True)
    expected = x64 - m - np.log(np.sum(np.exp(x64 - m), axis=axis, keepdims=True))
    got = tp.log_softmax(tp.tensor(x), axis=axis).numpy()
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=4 * np.finfo(np.float32).eps, atol=0)


def test_log_softmax_records_five_ops_and_differentiates():
    x = np.random.default_rng(4).uniform(-2, 2, (3, 4)) + 500.0
    with tp.record() as t:
        tp.log_softmax(tp.tensor(x, requires_grad=True))
    assert [e.op for e in t.entries] == ["sub", "exp", "sum", "log", "sub"]
    check_grads(lambda v: tp.log_softmax(v, axis=1), [x], modes=("rev", "fwd"), order=2)
    check_grads(lambda v: tp.log_softmax(v, axis=0), [x], dtype=np.float32)
