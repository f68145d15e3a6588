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
from tape.testing import check_grads

from .peaks import backward_peak

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


#: Numba kernels that above MIN_SIZE are the NumPy backend's in-place rules (below it, one-thread loops)
SMALL_ONLY = (Op.SIN, Op.COS)
FUSED = sorted(
    c for c, k in numba_backend.VJP_KERNELS.items() if k is not numpy_backend.VJP_KERNELS.get(c) and c not in SMALL_ONLY
)
BACKENDS = {"numpy": numpy_backend, "numba": numba_backend}


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("code", sorted(numpy_backend.IN_PLACE), ids=lambda c: Op(c).name.lower())
def test_in_place_rules_match_the_rules_and_write_into_g(code, dtype):
    rng = np.random.default_rng(code)
    d = OPS[code]
    x = rng.uniform(*d.domain, size=(64, 70)).astype(dtype)
    out = d.forward(x)
    saved = d.saved(out, [x], (0,)) or d.no_saved
    g = rng.standard_normal(x.shape).astype(dtype)
    expected = d.vjp[0](g.copy(), *saved)
    assert numpy_backend.IN_PLACE[code](g, saved, (0,), False) is None  # g not owned: the rules run
    (got,) = numpy_backend.IN_PLACE[code](g, saved, (0,), True)
    assert got is g and got.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("owned", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", SHAPES + [(3, 70001)], ids=str)
def test_numpy_tanh_kernel_matches_the_rule(shape, dtype, owned):
    # owned: into g a block at a time (the last block shorter); not owned: one new array, never g
    rng = np.random.default_rng(7)
    o = np.tanh(rng.uniform(-2, 2, shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    expected = OPS[Op.TANH].vjp[0](g, o, None)
    (got,) = numpy_backend.VJP_KERNELS[Op.TANH](g, (o, None), (0,), owned)
    assert (got is g) == owned and got.dtype == dtype
    np.testing.assert_array_equal(got, expected)
    g = np.asfortranarray(rng.standard_normal(shape).astype(dtype))
    if owned and g.ndim > 1:  # not C-contiguous: the rule runs
        assert numpy_backend.VJP_KERNELS[Op.TANH](g, (o, None), (0,), owned) is None


SMALL_SHAPES = [(), (1,), (100,), (7, 9), (2, 3, 5)]


@pytest.mark.parametrize("owned", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=str)
@pytest.mark.parametrize("code", [Op.TANH, Op.SIN, Op.COS], ids=lambda c: Op(c).name.lower())
def test_numba_kernels_below_min_size_match_the_rules(code, shape, dtype, owned):
    # one one-thread loop for the rules' NumPy calls, into g when the sweep owns it; else tanh's into
    # a new array, and sin's and cos's decline (the rules' two calls cost less than a new array and
    # a loop)
    rng = np.random.default_rng(11)
    d = OPS[code]
    xs = [np.asarray(x) for x in _inputs(code, shape, dtype, rng)]
    out = np.asarray(d.forward(*xs))
    g = np.asarray(rng.standard_normal(shape)).astype(dtype)
    g_before = g.copy()
    slots = tuple(range(len(xs)))
    saved = d.saved(out, xs, slots) or d.no_saved
    kernel = numba_backend.VJP_KERNELS[code]
    assert kernel.min_size == 0 and kernel.owned_only == (code != Op.TANH)  # what the sweep asks it
    got = kernel(g, saved, slots, owned)
    if not owned and code != Op.TANH:
        assert got is None
        return
    assert got is not None and len(got) == 1
    assert (got[0] is g) == owned
    if not owned:
        np.testing.assert_array_equal(g, g_before)
    tol = 1e-6 if dtype == np.float32 else 1e-15
    for rule, c in zip(d.vjp, got):
        assert c.dtype == dtype and c.shape == shape
        np.testing.assert_allclose(c, rule(g_before, *saved), rtol=tol, atol=tol)


def test_numba_kernels_below_min_size_read_strides_and_decline_what_they_cannot():
    rng = np.random.default_rng(12)
    tanh, sin = numba_backend.VJP_KERNELS[Op.TANH], numba_backend.VJP_KERNELS[Op.SIN]
    o, g = np.tanh(rng.uniform(-2, 2, 60)), rng.standard_normal(60)
    (got,) = tanh(g[::3], (o[::3], None), (0,), False)  # 1-D strided views: the loop indexes them
    np.testing.assert_allclose(got, g[::3] * (1 - o[::3] ** 2), rtol=1e-15)
    assert sin(g[::3], (None, o[::3]), (0,), False) is None  # not owned: the rule
    o2, g2 = o.reshape(6, 10), g.reshape(6, 10)
    assert tanh(g2.T, (o2.T, None), (0,), True) is None  # n-d, not C-contiguous: the rule
    assert tanh(g2, (o, None), (0,), True) is None  # o of another shape
    assert tanh(g.astype(np.float32), (o, None), (0,), True) is None  # mixed dtypes
    assert tanh(g.astype(np.int64), (o.astype(np.int64), None), (0,), True) is None  # not float
    # above MIN_SIZE sin is the NumPy backend's in-place rule: into an owned g, else the rule
    big = rng.uniform(-2, 2, numba_backend.MIN_SIZE)
    gb = rng.standard_normal(big.shape)
    expected = gb * np.cos(big)
    assert sin(gb, (None, big), (0,), False) is None
    (got,) = sin(gb, (None, big), (0,), True)
    assert got is gb
    np.testing.assert_allclose(got, expected, rtol=1e-15)


@pytest.mark.parametrize("owned", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", SMALL_SHAPES, ids=str)
def test_numba_mul_by_a_constant_below_min_size_matches_the_rule(shape, dtype, owned):
    # W2's y * 0.9: g times a Python float in one loop, in g's precision (NumPy's float32 · float
    # is float32 arithmetic), into g when the sweep owns it; else the rule (one call, as cheap)
    rng = np.random.default_rng(13)
    mul = numba_backend.VJP_KERNELS[Op.MUL]
    x = np.asarray(rng.standard_normal(shape)).astype(dtype)
    constants = [0.9, -3.25] + ([np.float64(0.9)] if dtype == np.float64 else [])
    for c in constants:
        for ins in [(0, -1), (-1, 0)]:
            pair = [x, c] if ins[0] >= 0 else [c, x]
            saved = OPS[Op.MUL].saved(pair[0] * pair[1], pair, ins)
            g = np.asarray(rng.standard_normal(shape)).astype(dtype)
            k = 0 if ins[0] >= 0 else 1
            expected = OPS[Op.MUL].vjp[k](g.copy(), *saved)
            got = mul(g, saved, ins, owned)
            if not owned:
                assert got is None
                continue
            assert got is not None and got[1 - k] is None
            assert got[k] is g and got[k].dtype == dtype
            np.testing.assert_array_equal(got[k], expected)
    g = np.asarray(rng.standard_normal(shape)).astype(dtype)
    assert mul(g, (None, x, x), (0, 1), owned) is None  # two tracked factors: the rules
    assert mul(g, (None, None, 2), (0, -1), owned) is None  # an int: the rule
    if dtype == np.float32:
        assert mul(g, (None, None, np.float64(0.9)), (0, -1), owned) is None  # promotes: the rule


@pytest.mark.parametrize("shape", [(100,), (10, 10)], ids=str)
def test_small_kernels_read_the_broadcast_cotangent_that_sum_hands_back(shape):
    # sum's cotangent is a read-only zero-stride view: a 1-D one is read by the loops, an n-d one
    # (not C-contiguous) goes to the rules; against closed forms
    xv = np.linspace(-1, 1, 100).reshape(shape)
    cases = [
        (tp.tanh, 1 - np.tanh(xv) ** 2),
        (tp.sin, np.cos(xv)),
        (tp.cos, -np.sin(xv)),
        (lambda x: x * 0.9, np.full(shape, 0.9)),
        (lambda x: -2.5 * x, np.full(shape, -2.5)),
    ]
    for f, expected in cases:
        x = tp.tensor(xv, requires_grad=True)
        with tp.record():
            y = tp.sum(f(x))
        y.backward()
        np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-15)
    x = tp.tensor(xv, requires_grad=True)
    w = tp.tensor(xv + 2.0, requires_grad=True)
    with tp.record():
        y = tp.sum(x / w)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 1 / (xv + 2.0), rtol=1e-15)
    np.testing.assert_allclose(w.grad.numpy(), -xv / (xv + 2.0) ** 2, rtol=1e-14)


def _small_chain(x, w):
    y = x
    for _ in range(3):
        y = tp.cos(tp.sin(tp.tanh(y * 0.9 + x)) / w) * 1.5
    return tp.sum(y * y)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_small_array_kernels_give_the_gradients_of_finite_differences(dtype):
    # every one-thread loop on a W2-like chain, in the sweep (owned and not owned g), against
    # central differences (float64) and the NumPy backend (both dtypes)
    rng = np.random.default_rng(14)
    x0, w0 = rng.uniform(-1, 1, (4, 5)), rng.uniform(0.5, 2.0, (4, 5))
    check_grads(_small_chain, [x0, w0], dtype=np.float64)
    results = {}
    try:
        for name in ("numpy", "numba"):
            tp.set_backend(name)
            x = tp.tensor(x0.astype(dtype), requires_grad=True)
            w = tp.tensor(w0.astype(dtype), requires_grad=True)
            with tp.record():
                loss = _small_chain(x, w)
            loss.backward()
            results[name] = (x.grad.numpy(), w.grad.numpy())
    finally:
        tp.set_backend("numba")
    tol = 1e-4 if dtype == np.float32 else 1e-13
    for a, b in zip(results["numpy"], results["numba"]):
        assert b.dtype == dtype
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)


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


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("owned", [False, True])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_mul_kernel_with_one_value_and_with_one_input_twice(dtype, owned, backend):
    # a * x with a 0-d (W3's a * x): Σ g·x as a dot product and g·a; 2.0 * x with 2.0 a constant;
    # x * x (one slot twice): one cotangent 2·g·x. An owned g is written into, for one input at most.
    rng = np.random.default_rng(5)
    n = numba_backend.MIN_SIZE
    x = rng.standard_normal(n).astype(dtype)
    a = np.asarray(0.7, dtype=dtype)
    mul = BACKENDS[backend].VJP_KERNELS[Op.MUL]
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
        if backend == "numpy" and -1 in ins and not owned:
            assert got is None  # g times a constant into a new array: what the rule does
            continue
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
    if backend == "numpy":  # the rules run: g·x for each
        assert mul(g, (None, x, x), (0, 0), owned) is None
        return
    gx, gy = mul(g, (None, x, x), (0, 0), owned)
    np.testing.assert_allclose(gx, g * x, rtol=tol, atol=tol)
    np.testing.assert_allclose(gy, g * x, rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_mul_by_a_unit_cotangent_hands_back_the_saved_factors(dtype, backend):
    # g = 1 broadcast (sum's rule, after backward() seeds 1): x's cotangent g·y is y itself, and y's
    # is x, when they have g's shape; a factor broadcast against the other needs the rules' sum.
    mul = BACKENDS[backend].VJP_KERNELS[Op.MUL]
    rng = np.random.default_rng(3)
    n = numba_backend.MIN_SIZE
    x, y = (rng.standard_normal((2, n // 2)).astype(dtype) for _ in range(2))
    one = np.broadcast_to(np.ones((), dtype), x.shape)
    for ins in [(0, 1), (0, -1), (-1, 1)]:
        saved = OPS[Op.MUL].saved(x * y, [x, y], ins)
        gx, gy = mul(one, saved, ins)
        assert (gx is y) == (ins[0] >= 0) and (gy is x) == (ins[1] >= 0)
        for i, (rule, c) in enumerate(zip(OPS[Op.MUL].vjp, (gx, gy))):
            if ins[i] >= 0:
                np.testing.assert_array_equal(c, rule(one, *saved))
    row = y[:1]  # broadcast against x, not one value: x's cotangent is g·row summed over its rows
    assert numpy_backend.mul_by_broadcast(one, (None, x, row), (0, 1)) is None
    assert numpy_backend.mul_by_broadcast(np.ones(x.shape, dtype), (None, x, y), (0, 1)) is None  # not broadcast
    two = np.broadcast_to(np.asarray(2.0, dtype), x.shape)  # g·y a full-size product: not here
    assert numpy_backend.mul_by_broadcast(two, (None, x, y), (0, 1)) is None


def _summed(ct, like):
    """A cotangent summed to the shape of the input `like` (what the sweep does)."""
    ct = np.asarray(ct)
    return ct.sum().reshape(np.shape(like)) if np.size(like) == 1 else np.broadcast_to(ct, np.shape(like))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_mul_by_a_broadcast_cotangent_and_one_value_makes_no_full_size_product(dtype, backend):
    # sum(a·x) (a 0-d or (1, 1) weight), g = g0 broadcast: x's cotangent g0·a is a zero-stride view,
    # a's is g0·Σx; a constant factor (2.0 * x) the same. Against the rules, summed to each input.
    mul = BACKENDS[backend].VJP_KERNELS[Op.MUL]
    rng = np.random.default_rng(6)
    n = numba_backend.MIN_SIZE
    x = rng.standard_normal((2, n // 2)).astype(dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    a0, a11 = np.asarray(0.7, dtype), np.full((1, 1), 0.7, dtype)
    cases = [((a, x), (0, 1)) for a in (a0, a11)] + [((x, a), (0, 1)) for a in (a0, a11)]
    cases += [((a, x), (-1, 1)) for a in (a0, a11, 2.0)] + [((x, a), (0, -1)) for a in (a0, a11, 2.0)]
    for g0 in (1.0, -0.75):
        g = np.broadcast_to(np.asarray(g0, dtype), x.shape)
        for pair, ins in cases:
            saved = OPS[Op.MUL].saved(pair[0] * pair[1], list(pair), ins)
            got = mul(g, saved, ins)
            assert got is not None
            for i, c in enumerate(got):
                assert (c is None) == (ins[i] < 0)
                if c is None:
                    continue
                if np.size(pair[i]) > 1:
                    assert c.base is not None and not any(c.strides)  # a view: nothing allocated
                expected = _summed(OPS[Op.MUL].vjp[i](g, *saved), pair[i])
                np.testing.assert_allclose(_summed(c, pair[i]), expected, rtol=tol, atol=tol * n**0.5)


def test_the_sum_of_a_scaled_product_allocates_no_full_size_cotangent():
    # 3·sum(a·x): the sum's cotangent is 3 broadcast; x's gradient is the one full-size array made
    # (a copy of the zero-stride g·a), a's is 3·Σx (no product g·x to sum).
    n = 1 << 18
    x = tp.tensor(np.random.default_rng(8).standard_normal(n), requires_grad=True)
    a = tp.tensor(0.7, requires_grad=True)
    for _ in range(2):  # the first pass compiles (or loads) the kernels
        x.grad = a.grad = None
        with tp.record():
            loss = 3.0 * tp.sum(a * x)
        peak = backward_peak(loss)
    assert peak <= 8 * n + 64 * 1024, f"{peak / (8 * n):.2f} arrays"
    assert x.grad.array.flags.writeable and any(x.grad.array.strides)  # its own array, not the view
    np.testing.assert_array_equal(x.grad.numpy(), np.full(n, 3.0 * 0.7))
    np.testing.assert_allclose(float(a.grad), 3.0 * x.numpy().sum(), rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_saved_value_handed_back_as_a_cotangent_is_never_written_into(backend):
    # sum(tanh(u) · exp(v)): the cotangent of tanh(u) is exp(v)'s output itself, and exp's is tanh's,
    # which both entries also saved for their own rules; neither may be written into in place.
    rng = np.random.default_rng(4)
    n = numba_backend.MIN_SIZE + 5
    u = tp.tensor(rng.uniform(-1, 1, n), requires_grad=True)
    v = tp.tensor(rng.uniform(-1, 1, n), requires_grad=True)
    w = tp.tensor(rng.uniform(-1, 1, n), requires_grad=True)
    try:
        tp.set_backend(backend)
        with tp.record():
            t, e = tp.tanh(u), tp.exp(v)
            loss = tp.sum(t * e) + tp.sum(w * t)  # w's cotangent is t, a leaf's gradient
        t_before, e_before = t.numpy(), e.numpy()
        (gu, gv, gw) = tp.grads(loss, [u, v, w], retain_graph=True)
        loss.backward()
    finally:
        tp.set_backend("numba")
    np.testing.assert_array_equal(t.numpy(), t_before)
    np.testing.assert_array_equal(e.numpy(), e_before)
    tv, ev, wv = np.tanh(u.numpy()), np.exp(v.numpy()), w.numpy()
    for grad_u, grad_v, grad_w in [(gu, gv, gw), (u.grad, v.grad, w.grad)]:
        np.testing.assert_allclose(grad_u.numpy(), (ev + wv) * (1 - tv * tv), rtol=1e-13)
        np.testing.assert_allclose(grad_v.numpy(), tv * ev, rtol=1e-13)
        np.testing.assert_array_equal(grad_w.numpy(), tv)
    # the leaves' gradients are their own arrays: changing one leaves the values it was read from alone
    for grad in (gw, w.grad):
        assert not np.shares_memory(grad.array, t.array)
    w.grad.array[:] = 0.0
    np.testing.assert_array_equal(t.numpy(), t_before)


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
    code = f"import tape as tp; print(tp.get_backend(), tp.ops.OPS[{int(Op.DIV)}].kernel_vjp)"  # fused by Numba
    env = {**os.environ, "TAPE_BACKEND": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["numpy", "None"]
