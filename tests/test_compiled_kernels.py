"""The Numba kernels that run whole compiled programs (tape/compiled/kernels.py), against the
Python replay (tape/compiled/replay.py, the spec) and against eager, op case by op case."""

from __future__ import annotations

import numpy as np
import pytest

import tape as tp
from tape.compiled import kernels
from tape.compiled.kernels import SCALAR_OPS

from .op_cases import all_cases
from .threads import run_on_threads

SCALAR_CASES = [
    c
    for c in all_cases()
    if c.code in SCALAR_OPS and all(np.ndim(a) == 0 and np.asarray(a).dtype == np.float64 for a in c.args)
]
# Elementwise cases on arrays of one shape (a scalar operand broadcast): what the flat kernel covers.
FLAT_CASES = [
    c
    for c in all_cases()
    if c.code in SCALAR_OPS
    and c not in SCALAR_CASES
    and len({np.shape(a) for a in c.args if np.ndim(a)}) == 1
    and all(np.asarray(a).dtype == np.float64 for a in c.args)
    and (c.code != int(tp.ops.Op.SUM) or c.id.endswith("None"))
]


@pytest.fixture(autouse=True)
def kernels_for_small_programs(monkeypatch):
    """Every op case is a program of one or two entries: let the kernels take those too."""
    monkeypatch.setattr(kernels, "MIN_ENTRIES", 1)


@pytest.fixture
def backend():
    before = tp.get_backend()
    yield tp.set_backend
    tp.set_backend(before)


def _both(p, args, backend):
    """(value, grads) of program p on args, through the kernel and through the Python replay."""
    out = []
    for name in ("numba", "numpy"):
        backend(name)
        value, vjp_fn = p.vjp(*args)
        out.append((np.asarray(value), vjp_fn(np.asarray(1.5))))
    return out


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
    got = []
    for name in ("numba", "numpy"):
        backend(name)
        value, vjp_fn = p.vjp(*case.args)
        got.append((value, vjp_fn(ct)))
    (kv, kg), (pv, pg) = got
    np.testing.assert_allclose(kv, pv, rtol=1e-14)
    for a, b, x in zip(kg, pg, case.args):
        assert a.shape == np.shape(x)
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)


@pytest.mark.parametrize("sa, sb", [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((1, 5), (5, 1))])
def test_small_matmuls_in_the_kernel_match_the_python_replay(sa, sb, backend):
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=sa), rng.normal(size=sb)
    p = tp.compile(lambda a, b: tp.tanh(a @ b) * 0.5).program(a, b)
    assert p.stats()["kernel"] in ("arrays", "scalar") and p.stats()["fallback_ops"] == {}
    ct = rng.normal(size=np.shape(a @ b))
    got = []
    for name in ("numba", "numpy"):
        backend(name)
        value, vjp_fn = p.vjp(a, b)
        got.append((value, vjp_fn(ct)))
    (kv, kg), (pv, pg) = got
    np.testing.assert_allclose(kv, pv, rtol=1e-13)
    for x, y in zip(kg, pg):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-15)


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


def test_programs_the_kernels_do_not_cover_replay_in_python():
    cf = tp.compile(lambda a, b: tp.sum(tp.tanh(a @ b) * 2.0, axis=0))  # a partial sum
    s = cf.program(np.ones((2, 3)), np.ones((3, 4))).stats()
    assert s["kernel"] is None and s["fallback_ops"] == {"matmul": 1, "mul": 1, "sum": 1, "tanh": 1}
    s = tp.compile(lambda a, b: a * b).program(np.ones((2, 1)), np.ones((1, 3))).stats()  # broadcasting
    assert s["kernel"] is None
    s = tp.compile(lambda a, b: a @ b).program(np.ones((64, 64)), np.ones((64, 64))).stats()  # BLAS-sized
    assert s["kernel"] is None and s["fallback_ops"] == {"matmul": 1}


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
    assert len(p) == 12000 and p.stats()["kernel"] == "scalar"
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
