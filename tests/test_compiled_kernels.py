"""The Numba kernels that run whole compiled programs (tape/compiled/kernels.py), against the
Python replay (tape/compiled/replay.py, the spec) and against eager, op case by op case."""

from __future__ import annotations

import gc
import math

import numpy as np
import pytest

import tape as tp
from tape.compiled import kernels
from tape.compiled.kernels import SCALAR_OPS
from tape.testing import check_grads

from .op_cases import all_cases
from .threads import run_on_threads

SCALAR_CASES = [
    c
    for c in all_cases()
    if c.code in SCALAR_OPS and all(np.ndim(a) == 0 and np.asarray(a).dtype == np.float64 for a in c.args)
]
# Elementwise cases on arrays (broadcasting ones too) and sums along any axes: what the flat kernel covers.
FLAT_CASES = [
    c
    for c in all_cases()
    if c.code in SCALAR_OPS
    and any(np.ndim(a) for a in c.args)
    and all(np.asarray(a).dtype == np.float64 for a in c.args)
]


# Every op case is a program of a few entries: let the kernels take those too.
pytestmark = pytest.mark.usefixtures("small_programs_in_kernels")


def _both(p, args, backend, ct=1.5):
    """(value, input cotangents for output cotangent `ct`) of program p on args, through the kernel
    and through the Python replay."""
    out = []
    for name in ("numba", "numpy"):
        backend(name)
        value, vjp_fn = p.vjp(*args)
        out.append((np.asarray(value), vjp_fn(np.asarray(ct))))
    return out


def _value_and_grad_both(cf, args, argnums, backend):
    """tp.value_and_grad of compiled `cf` through the kernel and through the Python replay."""
    got = []
    for name in ("numba", "numpy"):
        backend(name)
        got.append(tp.value_and_grad(cf, argnums=argnums)(*args))
    return got


def test_the_scalar_cases_cover_every_scalar_opcode():
    # identity is exercised by the composition tests (sign has generated cases now, like every row)
    assert {c.code for c in SCALAR_CASES} == SCALAR_OPS - {int(tp.ops.Op.IDENTITY)}


@pytest.mark.parametrize("case", SCALAR_CASES, ids=[c.id for c in SCALAR_CASES])
def test_scalar_kernel_matches_the_python_replay_and_eager(case, backend):
    p = tp.compile(case.fn).program(*case.args)
    assert p.stats()["kernel"] == "scalar" and p.stats()["fallback_ops"] == {}
    (kv, kg), (pv, pg) = _both(p, case.args, backend)
    np.testing.assert_allclose(kv, pv, rtol=1e-15)
    for a, b in zip(kg, pg):
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-300)
    xs = [tp.tensor(a, requires_grad=True) for a in case.args]
    with tp.record():
        y = case.fn(*xs)
    y.backward(tp.tensor(1.5))
    for a, x in zip(kg, xs):
        want = x.grad.numpy() if x.grad is not None else 0.0
        np.testing.assert_allclose(a, want, rtol=1e-14)


@pytest.mark.parametrize("case", FLAT_CASES, ids=[c.id for c in FLAT_CASES])
def test_elementwise_kernel_matches_the_python_replay_and_eager(case, backend):
    p = tp.compile(case.fn).program(*case.args)
    assert p.stats()["kernel"] == "arrays" and p.stats()["fallback_ops"] == {}
    out_shape = np.shape(case.fn(*[tp.tensor(a) for a in case.args]).array)
    ct = np.full(out_shape, 1.5)
    (kv, kg), (pv, pg) = _both(p, case.args, backend, ct)
    np.testing.assert_allclose(kv, pv, rtol=1e-14)
    for a, b, x in zip(kg, pg, case.args):
        assert a.shape == np.shape(x)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("case", SCALAR_CASES + FLAT_CASES, ids=[c.id for c in SCALAR_CASES + FLAT_CASES])
def test_a_kernel_reuses_its_arenas_and_leaves_the_adjoint_one_zero(case, backend):
    """The value and adjoint arenas of one pass are the next pass's: a call between two calls on the
    same inputs changes nothing, and what a reverse pass leaves for the next one is all zeros."""
    backend("numba")  # the arenas are the kernels' (TAPE_BACKEND=numpy replays in Python)
    p = tp.compile(case.fn).program(*case.args)
    kernel = p._plan.kernel
    other = [np.asarray(a) * 0.75 for a in case.args]
    ct = np.asarray(1.5)
    got = []
    for args in (case.args, other, case.args):
        value, vjp_fn = p.vjp(*args)
        grads = vjp_fn(np.broadcast_to(ct, np.shape(value)))
        del vjp_fn  # its arena goes back to the kernel
        if not kernel.spare_v:  # a first call that compiles the kernels holds it a little longer
            gc.collect()
        got.append((np.asarray(value).copy(), [g.copy() for g in grads]))
        assert len(kernel.spare_v) == 1 and len(kernel.spare) == 1
        assert not kernel.spare[0].any()
    assert np.array_equal(got[0][0], got[2][0], equal_nan=True)
    for a, b in zip(got[0][1], got[2][1]):
        assert np.array_equal(a, b, equal_nan=True)


def test_an_output_that_views_the_arena_keeps_it(backend, monkeypatch):
    # reshape runs in Python on a view of the kernel's arena (a run of one entry, after cumsum, which
    # has no kernel, is too short for a kernel call): the output is that view, so the arena may not
    # go to the next call
    monkeypatch.setattr(kernels, "MIN_ENTRIES", 16)

    def fn(x):
        y = x
        for _ in range(6):
            y = tp.sin(y) * 0.9 + x
        c = tp.cumsum(x)
        return y.reshape(2, 3), c

    x = np.linspace(0.1, 0.6, 6)
    p = tp.compile(fn).program(x)
    s = p.stats()
    assert s["kernel"] == "mixed" and s["numpy_ops"].get("reshape") == 1, s
    first = p(x)[0]
    want = first.copy()
    out, vjp_fn = p.vjp(x)
    del vjp_fn
    p(x + 1.0)
    p.vjp(x + 2.0)
    np.testing.assert_array_equal(first, want)
    np.testing.assert_array_equal(out[0], want)


F32_CASES = [c for c in SCALAR_CASES + FLAT_CASES if np.float32 in c.dtypes]


@pytest.mark.parametrize("case", F32_CASES, ids=[c.id for c in F32_CASES])
def test_float32_kernel_matches_the_python_replay_and_eager(case, backend):
    args = [np.asarray(a, np.float32) for a in case.args]
    p = tp.compile(case.fn).program(*args)
    assert p.stats()["fallback_ops"] == {} and p._plan.kernel.template.dtype == np.float32
    out_shape = np.shape(case.fn(*[tp.tensor(a) for a in args]).array)
    ct = np.full(out_shape, 1.5, np.float32)
    (kv, kg), (pv, pg) = _both(p, args, backend, ct)
    assert kv.dtype == np.float32
    np.testing.assert_allclose(kv, pv, rtol=2e-6, atol=1e-30)
    xs = [tp.tensor(a, requires_grad=True) for a in args]
    with tp.record():
        y = case.fn(*xs)
    y.backward(tp.tensor(ct))
    for a, b, x in zip(kg, pg, xs):
        assert a.shape == x.shape and a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-30)
        want = x.grad.numpy() if x.grad is not None else np.zeros_like(a)
        np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-30)


def test_a_float32_program_with_float64_values_runs_those_in_python(backend):
    x = np.linspace(0.2, 0.8, 6).astype(np.float32)

    def fn(x):
        y = x
        for _ in range(4):
            y = tp.tanh(y) * 0.5 + x  # float32: a Python float keeps the array's dtype
        z = y.astype(np.float64) * 2.0  # float64 from here on: Python
        return tp.sum(z * z)

    p = tp.compile(fn).program(x)
    s = p.stats()
    assert s["kernel"] == "mixed" and p._plan.kernel.template.dtype == np.float32
    assert s["fallback_ops"] == {"astype": 1, "mul": 2, "sum": 1}
    got = []
    for name in ("numba", "numpy"):
        backend(name)
        got.append(p.value_and_grad(x))
    np.testing.assert_allclose(got[0][0], got[1][0], rtol=1e-6)
    np.testing.assert_allclose(got[0][1][0], got[1][1][0], rtol=1e-5)
    assert got[0][1][0].dtype == np.float32


@pytest.mark.parametrize("sa, sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((1, 5), (5, 1))])
def test_small_matmuls_in_the_kernel_match_the_python_replay(sa, sb, backend):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    p = tp.compile(lambda a, b: tp.tanh(a @ b) * 0.5).program(a, b)
    assert p.stats()["kernel"] in ("arrays", "scalar") and p.stats()["fallback_ops"] == {}
    ct = rng.normal(size=np.shape(a @ b))
    (kv, kg), (pv, pg) = _both(p, (a, b), backend, ct)
    np.testing.assert_allclose(kv, pv, rtol=1e-13)
    for x, y in zip(kg, pg):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)


# Shapes past the matmul loops' blocks of four rows, with remainders of 1-3 rows: (m, k) @ (k,),
# (k,) @ (k, n), (m, k) @ (k, n), and an outer-product-like (m, 1) @ (1, n).
BLOCK_SHAPES = [
    ((9, 7), (7,)),
    ((4, 13), (13,)),
    ((6,), (6, 11)),
    ((5, 8), (8, 3)),
    ((11, 11), (11, 11)),
    ((7, 1), (1, 6)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("sa, sb", BLOCK_SHAPES)
@pytest.mark.parametrize("argnums", [(0, 1), (0,), (1,)])
def test_matmul_blocks_and_remainders_match_the_python_replay_and_eager(sa, sb, dtype, argnums, backend):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=sa).astype(dtype), rng.normal(size=sb).astype(dtype)

    def fn(a, b):
        return tp.sum(tp.tanh(a @ b) * np.asarray(0.5, dtype))

    cf = tp.compile(fn)
    s = cf.program(a, b).stats()
    assert s["kernel"] == "arrays" and s["fallback_ops"] == {}
    got = _value_and_grad_both(cf, (a, b), argnums, backend)
    (kv, kg), (pv, pg) = got
    backend("numba")
    ev, eg = tp.value_and_grad(fn, argnums=argnums)(a, b)  # eager: NumPy's matmul, its BLAS
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(kv, pv, rtol=rtol)
    np.testing.assert_allclose(kv, ev, rtol=rtol)
    for x, y, z in zip(kg, pg, eg):
        assert x.dtype == dtype
        # float32 sums in another order differ by rounding relative to the largest term, not to each result
        atol = rtol * np.abs(z).max()
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol)
        np.testing.assert_allclose(x, z, rtol=rtol, atol=atol)


def test_a_matrix_times_itself_accumulates_both_cotangents_into_one_block(backend):
    # A @ A: both operands are one slot, so the kernel's two passes add into the same adjoint block
    rng = np.random.default_rng(8)
    a = rng.normal(size=(6, 6)) / 2
    cf = tp.compile(lambda a: tp.sum(tp.sin(a @ a) * a))
    assert cf.program(a).stats()["fallback_ops"] == {}
    np.testing.assert_allclose(tp.grad(cf)(a), tp.grad(lambda a: tp.sum(tp.sin(a @ a) * a))(a), rtol=1e-12)
    check_grads(cf, (a,))  # and against finite differences


def _weights_loop(x, W, V):
    """Recurrent steps with two weights, W on the left of the state and V on its right, alternating
    (each switch adds what the reverse held back for the other), and one weight computed in the run."""
    U = W * 0.5  # computed inside the run: its gradient is not held back
    for _ in range(23):
        x = x + 0.1 * tp.tanh(W @ x)
        x = x + 0.1 * tp.tanh(x @ V)
    return tp.sum(tp.sin(U @ x))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("argnums", [(0, 1, 2), (1,), (2,), (0,)])
def test_weight_gradients_held_back_in_the_reverse_match_the_python_replay_and_eager(dtype, argnums, backend):
    rng = np.random.default_rng(9)
    x, W, V = rng.normal(size=6), rng.normal(size=(6, 6)) / 3, rng.normal(size=(6, 6)) / 3
    x, W, V = x.astype(dtype), W.astype(dtype), V.astype(dtype)
    cf = tp.compile(_weights_loop)
    p = cf.program(x, W, V)
    assert p.stats()["kernel"] == "arrays"
    defer = p._plan.kernel.mkn[:, 3][np.array(p._op_list) == kernels.MATMUL]
    assert list(defer) == [1, 2] * 23 + [0]  # W @ x_t, x_t @ V held back; U @ x not
    got = _value_and_grad_both(cf, (x, W, V), argnums, backend)
    (kv, kg), (pv, pg) = got
    backend("numba")
    ev, eg = tp.value_and_grad(_weights_loop, argnums=argnums)(x, W, V)
    rtol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(kv, pv, rtol=rtol)
    np.testing.assert_allclose(kv, ev, rtol=rtol)
    for a, b, c in zip(kg, pg, eg):
        atol = rtol * np.abs(c).max()
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
        np.testing.assert_allclose(a, c, rtol=rtol, atol=atol)
    if dtype == np.float64:
        check_grads(cf, (x, W, V))  # and against finite differences


def test_a_weight_from_an_earlier_run_is_held_back_and_one_from_its_own_run_is_not(backend):
    def fn(x, W):
        W1 = tp.tanh(W) * 0.5  # the first run
        W3 = tp.cumsum(W1, axis=0) * 0.3  # cumsum: Python; the mul starts the second run
        for _ in range(20):
            x = x + tp.sin(W1 @ x) * tp.cos(W3 @ x)
        return tp.sum(x * x)

    rng = np.random.default_rng(10)
    x, W = rng.normal(size=5), rng.normal(size=(5, 5))
    cf = tp.compile(fn)
    p = cf.program(x, W)
    k = p._plan.kernel
    assert p.stats()["fallback_ops"] == {"cumsum": 1} and len(k.runs) == 2
    defer = k.mkn[:, 3][np.array(p._op_list) == kernels.MATMUL]
    # W1 comes from the first run: its gradient is complete when the first run's reverse reads it;
    # W3's is read by the mul in the same run, so it is added at once
    assert list(defer) == [1, 0] * 20
    got = _value_and_grad_both(cf, (x, W), (0, 1), backend)
    ve, ge = tp.value_and_grad(fn, argnums=(0, 1))(x, W)
    for v, g in got:
        np.testing.assert_allclose(v, ve, rtol=1e-12)
        for a, b in zip(g, ge):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-12 * np.abs(b).max())


@pytest.mark.parametrize("code", sorted(SCALAR_OPS))
def test_what_the_arena_keeps_for_the_reverse_is_what_the_partials_read(code):
    """`_REVERSE_READS` (which values the arena keeps for the reverse) against `_partials` itself: a
    value it says a cotangent does not read may be anything (here NaN) without changing it."""
    reads = kernels._REVERSE_READS[code]
    for x, y, g in ((0.3, 0.7, 1.5), (2.0, -1.5, -0.5), (-0.4, 3.0, 2.0), (0.0, 2.0, 1.0)):
        r = kernels._value(code, x, y)
        want = kernels._partials(code, x, y, r, g)
        for q in range(2):
            keep = reads[q]
            got = kernels._partials(
                code, x if keep & 1 else np.nan, y if keep & 2 else np.nan, r if keep & 4 else np.nan, g
            )
            assert got[q] == want[q] or (np.isnan(got[q]) and np.isnan(want[q])), (code, q, x, y)


def _chain(x, W):
    y = x
    for _ in range(6):
        y = tp.sin(W @ y) * y + tp.cos(y) / (2.0 + tp.tanh(y))
        y = tp.sqrt(1.0 + y * y) - tp.arctan(y) + tp.log1p(y * y) * tp.exp(-y)
        y = tp.maximum(y, 0.1 * y) ** 2.0 * 0.5
    return tp.sum(y)


def test_slots_share_the_arena_and_the_reverse_still_reads_what_it_needs(backend):
    rng = np.random.default_rng(11)
    x, W = rng.normal(size=5), rng.normal(size=(5, 5)) / 3
    cf = tp.compile(_chain)
    p = cf.program(x, W)
    s = p.stats()
    assert s["kernel"] == "arrays"
    n_values = sum(math.prod(sh) for sh in p.shapes)
    assert s["arena_bytes"] < 0.75 * 8 * n_values  # places are shared
    _kernel_and_replay_match_eager(cf, _chain, (x, W), backend)


def _kernel_and_replay_match_eager(cf, fn, args, backend):
    """Value and gradients of compiled `cf` through the kernel and the Python replay equal eager `fn`'s."""
    got = _value_and_grad_both(cf, args, (0, 1), backend)
    ve, ge = tp.value_and_grad(fn, argnums=(0, 1))(*args)
    for v, g in got:
        np.testing.assert_allclose(v, ve, rtol=1e-12)
        for a, b in zip(g, ge):
            np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13 * np.abs(b).max())
    check_grads(cf, args)


def _gathers(y, W):
    for _ in range(4):
        z = tp.transpose(y) * 1.1
        m = tp.max(z, axis=1, keepdims=True)
        pr = tp.prod(tp.tanh(z) + 1.5, axis=0)
        nz = tp.norm(z, axis=0)
        w = tp.where(z > 0.5 * m, z * 2.0, -z)
        y = w * 0.3 + m - pr * 0.1 + nz * 0.2 + tp.sin(y[::-1]) + tp.concatenate([y[2:], y[:2]]) @ W
    return tp.sum(y * y)


def test_gathers_and_reductions_along_axes_read_the_shared_places(backend):
    """Shape ops and indexing gather through maps of arena positions, which must be the shared
    layout's; max/min/norm read their input and result in the reverse, prod its input, where its
    condition: those stay whole (`_reverse_reads`), the rest share places."""
    rng = np.random.default_rng(5)
    x, W = rng.normal(size=(4, 4)), rng.normal(size=(4, 4)) / 3
    cf = tp.compile(_gathers)
    p = cf.program(x, W)
    s = p.stats()
    assert s["kernel"] == "arrays" and s["fallback_ops"] == {} and s["numpy_ops"] == {}, s
    assert {kernels.GATHER, kernels.WHERE, kernels.MAX, kernels.PROD, kernels.NORM} <= set(p._plan.kernel.op.tolist())
    assert s["arena_bytes"] < 0.5 * 8 * sum(math.prod(sh) for sh in p.shapes)  # places are shared
    _kernel_and_replay_match_eager(cf, _gathers, (x, W), backend)


@pytest.mark.parametrize("steps, d", [(50, 4), (200, 7)])
def test_a_recurrent_loop_keeps_two_values_a_step(steps, d):
    """x <- x + 0.1 tanh(W @ x): the reverse reads x_t (for dW) and tanh's output; W @ x_t and the
    product with 0.1 share one place. Kept: x0, W, the constant, 2 values a step, that one place, and
    the sum (float64); before places were shared, 4 values a step."""

    def loop(x, W):
        for _ in range(steps):
            x = x + 0.1 * tp.tanh(W @ x)
        return tp.sum(x)

    p = tp.compile(loop).program(np.ones(d), np.eye(d))
    assert p.stats()["arena_bytes"] == 8 * (d + d * d + 1 + 2 * steps * d + d + 1)


def test_a_recurrent_loop_as_one_kernel_program(backend):
    rng = np.random.default_rng(4)
    W, x0 = rng.normal(size=(8, 8)) / 3, rng.normal(size=8)

    def loop(x, W):
        for _ in range(300):
            x = x + 0.1 * tp.tanh(W @ x)
        return tp.sum(x)

    cf = tp.compile(loop)
    assert cf.program(x0, W).stats()["kernel"] == "arrays"
    v, g = tp.value_and_grad(cf, argnums=(0, 1))(x0, W)
    ve, ge = tp.value_and_grad(loop, argnums=(0, 1))(x0, W)
    assert float(v) == pytest.approx(float(ve), rel=1e-13)
    for a, b in zip(g, ge):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


def test_entries_the_kernels_do_not_cover_replay_in_python_between_runs(backend):
    cf = tp.compile(lambda a, b: tp.cumsum(tp.tanh(a @ b) * 2.0, axis=0))  # a scan: Python
    s = cf.program(np.ones((2, 3)), np.ones((3, 4))).stats()
    assert s["kernel"] == "mixed" and s["fallback_ops"] == {"cumsum": 1} and s["numpy_ops"] == {}
    # a transcendental op past MAX_ELEMENTS runs in NumPy by choice; a product runs in the kernel at any size
    s = tp.compile(lambda a, b: tp.tanh(a) * b).program(np.ones(200), np.ones(200)).stats()
    assert s["kernel"] == "mixed" and s["fallback_ops"] == {} and s["numpy_ops"] == {"tanh": 1}
    s = tp.compile(lambda a, b: a * b).program(np.ones(200), np.ones(200)).stats()
    assert s["kernel"] == "arrays" and s["fallback_ops"] == {} and s["numpy_ops"] == {}


def test_short_runs_stay_in_python(monkeypatch):
    monkeypatch.setattr(kernels, "MIN_ENTRIES", 16)
    s = tp.compile(lambda a: tp.sum(tp.tanh(a) * 2.0, axis=0)).program(np.ones((2, 3))).stats()
    assert s["kernel"] is None and s["fallback_ops"] == {} and s["numpy_ops"] == {"mul": 1, "sum": 1, "tanh": 1}


def _mixed(x, W, labels):
    """Runs of covered entries (small elementwise chains, small matmuls, a max along an axis,
    indexing with an integer input) between entries without a kernel (a float32 round trip) or
    that run in NumPy by choice (a BLAS-sized matmul), some of whose values the later runs read,
    and covered ones that broadcast or sum along an axis."""
    y = x
    for _ in range(3):
        y = tp.sin(y) * 0.9 + x
    h = tp.max(y, axis=1, keepdims=True)
    z = y * 0.5 + h + tp.sum(y, axis=0)  # broadcasting (3, 4) with (3, 1) and (4,); a sum along an axis
    for _ in range(3):
        z = tp.tanh(z) * z
    big = W @ W  # BLAS-sized: NumPy
    z = z + big[:3, :4]
    z = z[labels]  # integer indexing by an input: a map made per call
    f = z.astype(np.float32) * np.float32(2.0)  # Python: float32
    z = z + f.astype(np.float64)
    for _ in range(2):
        z = tp.exp(z * 0.1) - z
    return tp.sum(z * z)


def _mixed_args(seed=5):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(3, 4)), rng.normal(size=(64, 64)) / 8, np.array([2, 0, 1, 1])


def test_a_program_mixing_kernel_runs_and_python_entries(backend, monkeypatch):
    monkeypatch.setattr(kernels, "MIN_ENTRIES", 3)
    args = _mixed_args()
    p = tp.compile(_mixed).program(*args)
    s = p.stats()
    assert s["kernel"] == "mixed"
    assert s["fallback_ops"] == {"astype": 2, "mul": 1} and s["numpy_ops"] == {"matmul": 1}
    assert len(p._plan.kernel.runs) == 3
    ct = np.array(1.5)
    (kv, kg), (pv, pg) = _both(p, args, backend, ct)
    np.testing.assert_allclose(kv, pv, rtol=1e-13)
    for a, b in zip(kg[:2], pg[:2]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    # and against eager
    xs = [tp.tensor(a, requires_grad=True) for a in args[:2]]
    with tp.record():
        y = _mixed(*xs, args[2])
    y.backward(tp.tensor(1.5))
    np.testing.assert_allclose(kv, y.numpy(), rtol=1e-13)
    for a, x in zip(kg, xs):
        np.testing.assert_allclose(a, x.grad.numpy(), rtol=1e-12, atol=1e-14)


def test_two_threads_replay_one_mixed_program(backend, monkeypatch):
    monkeypatch.setattr(kernels, "MIN_ENTRIES", 3)
    cf = tp.compile(_mixed)
    assert cf.program(*_mixed_args()).stats()["kernel"] == "mixed"
    want = {}
    for k in range(2):
        args = _mixed_args(10 + k)
        want[k] = tp.value_and_grad(_mixed, argnums=(0, 1))(*args)
    results, errors = {}, []

    def work(k):
        try:
            args = _mixed_args(10 + k)
            for _ in range(15):
                results[k] = tp.value_and_grad(cf, argnums=(0, 1))(*args)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    errors += run_on_threads(work, 2)
    assert not errors
    for k, (v, g) in results.items():
        assert float(v) == pytest.approx(float(want[k][0]), rel=1e-13)
        for a, b in zip(g, want[k][1]):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "fn, args",
    [
        (lambda x, y: x**y, (0.0, 0.0)),
        (lambda x, y: x**y, (0.0, 2.0)),
        (lambda x, y: x**y, (2.0, 0.0)),
        (lambda x, y: tp.maximum(x, y) * tp.minimum(x, y), (1.5, 1.5)),
        (lambda x, y: tp.abs(x) + tp.sign(y) * y, (0.0, 0.0)),
        (lambda x, y: tp.log(x) + tp.sqrt(y), (0.0, -1.0)),
        (lambda x, y: tp.arcsin(x) + tp.exp(y), (1.5, 800.0)),
    ],
)
def test_scalar_kernel_at_the_edges_equals_the_python_replay(fn, args, backend):
    args = [np.array(a) for a in args]
    with np.errstate(all="ignore"):
        p = tp.compile(fn).program(*args)
        (kv, kg), (pv, pg) = _both(p, args, backend)
    assert p.stats()["kernel"] == "scalar"
    np.testing.assert_array_equal(kv, pv)
    for a, b in zip(kg, pg):
        np.testing.assert_array_equal(a, b)


def test_a_long_scalar_program_and_two_threads(backend):
    def chain(x1, x2):
        total = 0.0
        for _ in range(2000):
            total = total + (tp.log(x1) + x1 * x2 - tp.sin(x2))
        return total

    cf = tp.compile(chain)
    p = cf.program(np.array(2.0), np.array(5.0))
    # CSE folds the 2,000 copies of the term into one (5 entries); the 2,000 additions of the sum remain
    assert len(p) == 2005 and p.stats()["kernel"] == "scalar"
    results, errors = {}, []

    def work(k):
        try:
            a, b = np.array(2.0 + k), np.array(5.0 - k)
            for _ in range(20):
                v, g = tp.value_and_grad(cf, argnums=(0, 1))(a, b)
            results[k] = (float(v), [float(x) for x in g], a, b)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    errors += run_on_threads(work, 2)
    assert not errors
    for v, g, a, b in results.values():
        a, b = float(a), float(b)
        assert v == pytest.approx(2000 * (np.log(a) + a * b - np.sin(b)), rel=1e-12)
        assert g == pytest.approx([2000 * (1 / a + b), 2000 * (a - np.cos(b))], rel=1e-12)
    backend("numpy")  # the same program through the Python replay
    v, g = p.value_and_grad(np.array(2.0), np.array(5.0))
    assert float(v) == pytest.approx(results[0][0], rel=1e-12)


def test_a_guard_inside_a_kernel_run_sends_other_inputs_down_another_path(backend):
    def fn(x, y):
        z = tp.sin(x) * y + tp.exp(x)  # a scalar run before the guard
        if z > 1.0:  # a guard on a value a kernel computes
            return z * z - y
        return tp.cos(z) + x * y

    cf = tp.compile(fn)
    a, b = np.array(0.5), np.array(2.0)
    s = cf.program(a, b).stats()
    assert s["kernel"] == "scalar" and s["fallback_ops"] == {}, s  # the comparison too: 1.0 for True
    for x, y in [(0.5, 2.0), (-3.0, 0.1), (0.7, 1.5), (-2.5, 0.3)]:
        x, y = np.array(x), np.array(y)
        v, g = tp.value_and_grad(cf, argnums=(0, 1))(x, y)
        ve, ge = tp.value_and_grad(fn, argnums=(0, 1))(x, y)
        assert float(v) == pytest.approx(float(ve), rel=1e-14)
        np.testing.assert_allclose(g, ge, rtol=1e-14)
    assert cf.stats()["recordings"] == 2 and cf.stats()["guard_failures"] >= 1


def test_hoisted_elementwise_loops_with_shared_and_scalar_operands(backend):
    """The per-op loops (`_map_forward`/`_map_reverse`): an operand used twice by one entry (x*x, x+x),
    tracked and constant scalar operands on either side, every input wanted or only some."""

    def f(x, s):
        y = x * x + (x + x) * s - tp.exp(x) * 0.5 + tp.tanh(x) + 2.0 - tp.sin(x)
        return tp.sum(s * y - y / 3.0 + tp.cos(-y))

    rng = np.random.default_rng(3)
    args = (rng.uniform(-1, 1, 40), np.float64(0.7))
    p = tp.compile(f).program(*args)
    assert p.stats()["kernel"] == "arrays" and p.stats()["fallback_ops"] == {}
    (kv, kg), (pv, pg) = _both(p, args, backend)
    np.testing.assert_allclose(kv, pv, rtol=1e-15)
    for a, b in zip(kg, pg):
        np.testing.assert_allclose(a, b, rtol=1e-14)
    for argnums in ((0,), (1,)):  # one input wanted: the other's cotangents are never accumulated
        got = tp.value_and_grad(tp.compile(f), argnums=argnums)(*args)[1]
        np.testing.assert_allclose(got[0], pg[argnums[0]] / 1.5, rtol=1e-13)  # _both seeds 1.5
