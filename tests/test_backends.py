"""Backends: every Numba kernel against the op table's NumPy rules (the spec), and equal results
from `tp.set_backend("numba")` and `tp.set_backend("numpy")` end to end."""

import os
import subprocess
import sys

import numpy as np
import pytest

import tape as tp
from tape.backends import numba_backend, numpy_backend
from tape.ops import OPS, Op

SHAPES = [(numba_backend.MIN_SIZE,), (256, 160), (8, 64, 70)]
DTYPES = [np.float32, np.float64]


def _inputs(code, shape, dtype, rng):
    d = OPS[code]
    lo, hi = d.domain
    if code == Op.WHERE:
        c = rng.uniform(size=shape) > 0.5
        return [c, rng.uniform(lo, hi, size=shape).astype(dtype), rng.uniform(lo, hi, size=shape).astype(dtype)]
    xs = [rng.uniform(lo, hi, size=shape).astype(dtype) for _ in range(d.nin)]
    if code in (Op.MAXIMUM, Op.MINIMUM):
        xs[1].reshape(-1)[::7] = xs[0].reshape(-1)[::7]  # ties, which share the gradient
    return xs


FUSED = sorted(set(numba_backend.VJP_KERNELS) - set(numpy_backend.VJP_KERNELS))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("code", sorted(numpy_backend.IN_PLACE_KERNELS), ids=lambda c: Op(c).name.lower())
def test_in_place_rules_match_the_rules_and_write_into_g(code, dtype):
    rng = np.random.default_rng(code)
    d = OPS[code]
    x = rng.uniform(*d.domain, size=(64, 70)).astype(dtype)
    out = d.forward(x)
    saved = d.saved(out, [x], (0,)) or d.no_saved
    g = rng.standard_normal(x.shape).astype(dtype)
    expected = d.vjp[0](g.copy(), *saved)
    assert numpy_backend.IN_PLACE_KERNELS[code](g, saved, (0,), False) is None  # g not owned: the rules run
    (got,) = numpy_backend.IN_PLACE_KERNELS[code](g, saved, (0,), True)
    assert got is g and got.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


def test_mul_kernel_reads_a_broadcast_scalar_cotangent():
    x, y = (np.random.default_rng(k).uniform(-1, 1, numba_backend.MIN_SIZE) for k in (1, 2))
    g = np.broadcast_to(np.float64(0.75), x.shape)  # what sum's rule hands on
    gx, gy = numba_backend.VJP_KERNELS[Op.MUL](g, (None, x, y), (0, 1))
    np.testing.assert_allclose(gx, 0.75 * y, rtol=1e-15)
    np.testing.assert_allclose(gy, 0.75 * x, rtol=1e-15)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("code", FUSED, ids=lambda c: Op(c).name.lower())
def test_numba_kernel_matches_the_rules(code, shape, dtype):
    rng = np.random.default_rng(code)
    d = OPS[code]
    xs = _inputs(code, shape, dtype, rng)
    out = d.forward(*xs)
    g = rng.standard_normal(shape).astype(dtype)
    slots = tuple(-1 if code == Op.WHERE and i == 0 else i for i in range(len(xs)))
    saved = d.saved(out, xs, slots) or d.no_saved
    fused = numba_backend.VJP_KERNELS[code](g, saved, slots)
    assert fused is not None, "the kernel should apply to large contiguous float arrays"
    for i, rule in enumerate(d.vjp):
        if rule is None:
            continue
        expected = np.broadcast_to(rule(g, *saved), shape)
        assert fused[i].dtype == dtype and fused[i].shape == shape
        tol = 1e-6 if dtype == np.float32 else 1e-14
        np.testing.assert_allclose(fused[i], expected, rtol=tol, atol=tol)


def test_kernels_decline_what_they_do_not_cover():
    big = np.ones(numba_backend.MIN_SIZE)
    mul = numba_backend.VJP_KERNELS[Op.MUL]
    assert mul(big[:10], (None, big[:10], big[:10]), (0, 1)) is None  # small
    assert mul(big, (None, big, 2.0), (0, -1)) is None  # a constant: the rules do it
    assert mul(big, (None, big, big[:2]), (0, 1)) is None  # broadcast
    assert mul(big.astype(np.int64), (None, big, big), (0, 1)) is None  # not float
    wide = np.ones((2, numba_backend.MIN_SIZE))
    assert mul(wide[:, ::2], (None, wide[:, ::2], wide[:, ::2]), (0, 1)) is None  # not contiguous


def _mul_rules(g, x, y, ins):
    """The op table's cotangents for x * y, summed to each input's shape (what the sweep does)."""
    d = OPS[Op.MUL]
    saved = d.saved(x * y, [x, y], ins) or d.no_saved
    return [
        None if s < 0 else np.sum(d.vjp[i](g, *saved)).reshape(()) if np.ndim(a) == 0 else d.vjp[i](g, *saved)
        for i, (s, a) in enumerate(zip(ins, (x, y)))
    ]


@pytest.mark.parametrize("owned", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_mul_kernel_with_one_value_and_with_one_input_twice(dtype, owned):
    # a * x with a 0-d (W3's a * x): Σ g·x as a dot product and g·a; 2.0 * x with 2.0 a constant;
    # x * x (one slot twice): one cotangent 2·g·x. An owned g is written into, for one input at most.
    rng = np.random.default_rng(5)
    n = numba_backend.MIN_SIZE
    x = rng.standard_normal(n).astype(dtype)
    a = np.asarray(0.7, dtype=dtype)
    mul = numba_backend.VJP_KERNELS[Op.MUL]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for saved, ins in [
        ((None, a, x), (0, 1)),
        ((None, x, a), (0, 1)),
        ((None, None, a), (0, -1)),
        ((None, a, None), (-1, 1)),
    ]:
        g = rng.standard_normal(n).astype(dtype)
        xs = [x if v is None else v for v in saved[1:]]
        expected = _mul_rules(g.copy(), xs[0], xs[1], ins)
        got = mul(g, saved, ins, owned)
        assert got is not None
        assert sum(c is g for c in got) == (1 if owned else 0)
        for c, e in zip(got, expected):
            assert (c is None) == (e is None)
            if c is not None:
                assert c.dtype == dtype and c.shape == e.shape
                np.testing.assert_allclose(c, e, rtol=tol, atol=tol * n**0.5)
    g = rng.standard_normal(n).astype(dtype)
    expected = sum(_mul_rules(g.copy(), x, x, (0, 1)))
    gx, gy = mul(g, (None, x, x), (3, 3), owned)
    assert gy is None and (gx is g) == owned
    np.testing.assert_allclose(gx, expected, rtol=tol, atol=tol)
    # a compiled replay passes 0 for every input it wants: two inputs holding one array stay two
    g = rng.standard_normal(n).astype(dtype)
    gx, gy = mul(g, (None, x, x), (0, 0), owned)
    np.testing.assert_allclose(gx, g * x, rtol=tol, atol=tol)
    np.testing.assert_allclose(gy, g * x, rtol=tol, atol=tol)


def _graph_gradients():
    rng = np.random.default_rng(0)
    n = numba_backend.MIN_SIZE + 3
    x = tp.tensor(rng.standard_normal(n), requires_grad=True)
    y = tp.tensor(rng.uniform(0.5, 2.0, n), requires_grad=True)
    w = tp.tensor(rng.standard_normal(n), requires_grad=True)
    with tp.record():
        z = tp.tanh(x * y) / y + tp.maximum(x, w) - tp.minimum(w, 0.1 * y)
        z = tp.where(x.numpy() > 0, z, w * x) * tp.sigmoid(w)
        loss = tp.sum(z * z) + tp.sum(x[:100] * 2.0)
    loss.backward()
    return [t.grad.numpy() for t in (x, y, w)]


def test_backends_give_equal_gradients_end_to_end():
    try:
        tp.set_backend("numpy")
        spec = _graph_gradients()
        tp.set_backend("numba")
        fused = _graph_gradients()
    finally:
        tp.set_backend("numba")
    for a, b in zip(spec, fused):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_set_backend_and_the_environment_variable():
    with pytest.raises(ValueError, match="unknown backend 'fortran'"):
        tp.set_backend("fortran")
    assert tp.get_backend() == "numba"
    code = "import tape as tp; print(tp.get_backend(), tp.ops.OPS[3].kernel_vjp)"
    env = {**os.environ, "TAPE_BACKEND": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["numpy", "None"]
