"""Which entries the compiled kernels cover (issue 10, scope item 4): every elementwise, reduction
and shape op of API §4 has a kernel (composites through the primitives they record), and each op
case of the op table that runs in a kernel equals the Python replay (the spec) and eager, at
float64 and float32, at small sizes and (forced) at big ones."""

from __future__ import annotations

import numpy as np
import pytest

import tape as tp
from tape.compiled import kernels
from tape.ops.registry import Op

from .op_cases import all_cases
from .threads import run_on_threads

# The primitives of API §4's elementwise, reduction and shape lists (and index_add, getitem's
# reverse; astype; identity), and §4's composites, which must record only such primitives.
SECTION4_ROWS = {
    int(o)
    for o in (
        Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAXIMUM, Op.MINIMUM, Op.ARCTAN2, Op.WHERE,
        Op.NEG, Op.EXP, Op.LOG, Op.LOG1P, Op.EXPM1, Op.SQRT, Op.ABS, Op.SIGN, Op.SIN, Op.COS, Op.TAN,
        Op.ARCSIN, Op.ARCCOS, Op.ARCTAN, Op.SINH, Op.COSH, Op.TANH,
        Op.SUM, Op.PROD, Op.MAX, Op.MIN, Op.NORM,
        Op.RESHAPE, Op.TRANSPOSE, Op.BROADCAST_TO, Op.GETITEM, Op.INDEX_ADD, Op.CONCATENATE, Op.PAD,
        Op.ASTYPE, Op.IDENTITY,
    )
}  # fmt: skip
SECTION4_COMPOSITES = {
    "square", "sigmoid", "relu", "softplus", "clip", "mean", "mean-all", "var", "std", "logsumexp",
    "logsumexp-axis", "softmax", "log_softmax", "norm", "norm-ord1-axis", "norm-ord3", "norm-inf", "norm-mat1",
    "norm-matinf", "norm-fro", "swapaxes", "moveaxis", "expand_dims", "squeeze", "stack", "split", "flip",
    "pow-scalar-exponent", "rpow", "rsub-rdiv", "take", "take-axis-wrap", "take_along_axis",
}  # fmt: skip
CASES = all_cases()
SECTION4 = [c for c in CASES if c.code in SECTION4_ROWS or (c.code is None and c.id in SECTION4_COMPOSITES)]
SECTION4_IDS = {c.id for c in SECTION4}


# Every op case is a program of a few entries: let the kernels take those too.
pytestmark = pytest.mark.usefixtures("small_programs_in_kernels")


def _cast(args, dtype):
    return [np.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else a for a in args]


def test_the_section4_lists_name_cases_that_exist():
    ids = {c.id for c in CASES}
    assert SECTION4_COMPOSITES <= ids
    assert {c.code for c in SECTION4 if c.code is not None} == SECTION4_ROWS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_section4_op_has_a_kernel(dtype):
    missing = {}
    for c in SECTION4:
        args = _cast(c.args, dtype)
        if dtype not in c.dtypes or c.fn(*[tp.tensor(a) for a in args]).dtype != dtype:
            continue  # a float64 value in a float32 program (astype, a float64 constant): Python, by design
        s = tp.compile(c.fn).program(*args).stats()
        if s["fallback_ops"] or s["numpy_ops"]:
            missing[c.id] = (s["fallback_ops"], s["numpy_ops"])
    assert missing == {}


def test_the_ops_without_a_kernel_are_the_known_ones():
    """The op table's rows beyond §4 that have no kernel yet (a new row lands here until it gets one)."""
    no_kernel = set()
    for c in CASES:
        if all(np.asarray(a).dtype.kind != "f" or a.dtype == np.float64 for a in map(np.asarray, c.args)):
            no_kernel |= set(tp.compile(c.fn).program(*c.args).stats()["fallback_ops"])
    linalg = {"cholesky", "det", "dot", "eig", "eigh", "einsum", "inv", "pinv", "qr", "slogdet", "solve", "svd"}
    linalg |= {"tensordot", "matmul"}  # matmul: batched (3-D and more) only
    scans = {"cumsum", "cumprod"}
    unary = {"arccosh", "arcsinh", "arctanh", "cbrt", "ceil", "exp2", "floor", "log10", "log2", "reciprocal"}
    unary |= {"rint", "round", "trunc"}
    binary = {"hypot", "logaddexp", "logaddexp2", "remainder"}
    special = {"beta", "betainc", "betaln", "digamma", "erf", "erfc", "erfcinv", "erfinv", "expit", "gamma"}
    special |= {"gammainc", "gammaincc", "gammaln", "gammasgn", "i0", "i1", "iv", "ive", "j0", "j1", "jn"}
    special |= {"log_ndtr", "logit", "ndtr", "ndtri", "polygamma", "rgamma", "xlog1py", "xlogy", "y0", "y1", "yn"}
    assert no_kernel == linalg | scans | unary | binary | special | {"to"}


KERNEL_CASES = [
    (c, d) for d in (np.float64, np.float32) for c in CASES if d in c.dtypes and c.code not in kernels.SCALAR_OPS
]


def _run_both(p, args, ct, backend):
    got = []
    for name in ("numba", "numpy"):
        backend(name)
        value, vjp_fn = p.vjp(*args)
        got.append((np.asarray(value), vjp_fn(ct) if ct is not None else None))
    return got


def _check_case(case, dtype, backend):
    args = _cast(case.args, dtype)
    p = tp.compile(case.fn).program(*args)
    s = p.stats()
    if s["fallback_ops"] or p._plan.kernel is None:
        return False
    assert p._plan.kernel.template.dtype == dtype
    eager_in = [tp.tensor(a, requires_grad=np.asarray(a).dtype.kind == "f") for a in args]
    with tp.record():
        y = case.fn(*eager_in)
    out = np.asarray(y.array)
    ct = np.full(out.shape, 1.5, out.dtype) if out.dtype.kind == "f" else None
    (kv, kg), (pv, pg) = _run_both(p, args, ct, backend)
    f64 = dtype == np.float64

    def close(a, b, rel):
        # relative to the array's scale: libm's and NumPy's SIMD tanh/exp differ in the last bit,
        # which a cancellation (x * y + exp(-x * x) near 0) magnifies elementwise
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        np.testing.assert_allclose(a, b, rtol=rel, atol=rel * float(np.max(np.abs(b), initial=0.0)) + 1e-300)

    assert kv.dtype == pv.dtype and kv.shape == pv.shape
    close(kv, pv, 1e-13 if f64 else 2e-6)
    close(kv, out, 1e-13 if f64 else 2e-6)
    if ct is None:
        return True
    y.backward(tp.tensor(ct))
    for a, b, x in zip(kg, pg, eager_in):
        if not x.requires_grad:
            continue
        want = x.grad.numpy() if x.grad is not None else np.zeros(x.shape, x.dtype)
        assert a.shape == x.shape and a.dtype == x.dtype
        close(a, b, 1e-12 if f64 else 1e-5)
        close(a, want, 1e-12 if f64 else 1e-5)
    return True


@pytest.mark.parametrize("case, dtype", KERNEL_CASES, ids=[f"{c.id}-{np.dtype(d).name}" for c, d in KERNEL_CASES])
def test_kernel_matches_the_python_replay_and_eager(case, dtype, backend):
    ran = _check_case(case, dtype, backend)
    args = _cast(case.args, dtype)
    if case.id in SECTION4_IDS and case.fn(*[tp.tensor(a) for a in args]).dtype == dtype:
        assert ran  # a §4 op: in the kernel, unless a float64 value sits in a float32 program


BIG = [
    ("tanh-mul", lambda x, y: tp.tanh(x) * y + tp.exp(-x * x), [(300, 200), (200,)]),
    ("max-axis", lambda x, y: tp.max(x * y, axis=0) + tp.min(x, axis=1).sum(), [(300, 200), (200,)]),
    ("prod-norm", lambda x, y: tp.prod(1.0 + 0.001 * x, axis=1) * tp.norm(x * y, axis=1), [(300, 200), (200,)]),
    ("gathers", lambda x, y: tp.transpose(x)[::-1, 10:250] * tp.concatenate([y, y])[:240], [(300, 200), (480,)]),
    ("softmax", lambda x, y: tp.log_softmax(x * y, axis=1)[np.arange(300), np.arange(300) % 200], [(300, 200), (200,)]),
    ("blas", lambda x, y: tp.sum(tp.tanh(x @ tp.transpose(x * y)) @ x, axis=0) * y, [(300, 200), (200,)]),
    ("where", lambda x, y: tp.where(x > 0.2, x * y, tp.clip(x, -0.3, 0.1)) @ tp.relu(y), [(300, 200), (200,)]),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, fn, shapes", BIG, ids=[b[0] for b in BIG])
def test_big_arrays_in_the_forced_kernel_match_the_python_replay(name, fn, shapes, dtype, backend, monkeypatch):
    monkeypatch.setattr(kernels, "FORCE_KERNELS", True)
    rng = np.random.default_rng(len(name))
    args = [rng.uniform(-1, 1, size=sh).astype(dtype) for sh in shapes]
    p = tp.compile(fn).program(*args)
    s = p.stats()
    assert s["kernel"] == "arrays" and s["fallback_ops"] == {} and s["numpy_ops"] == {}, s
    case = type("C", (), {"fn": fn, "args": args, "dtypes": (dtype,)})
    assert _check_case(case, dtype, backend)


def test_unforced_big_arrays_run_in_numpy_by_choice_and_small_ones_in_the_kernel():
    s = tp.compile(BIG[0][1]).program(np.ones((300, 200)), np.ones(200)).stats()
    assert s["kernel"] is None and s["fallback_ops"] == {}
    assert s["numpy_ops"] == {"add": 1, "exp": 1, "mul": 2, "neg": 1, "tanh": 1}
    s = tp.compile(BIG[0][1]).program(np.ones((3, 20)), np.ones(20)).stats()  # 60 elements
    assert s["kernel"] == "arrays" and s["fallback_ops"] == {} and s["numpy_ops"] == {}
    s = tp.compile(BIG[1][1]).program(np.ones((300, 200)), np.ones(200)).stats()
    assert s["kernel"] == "mixed" and s["fallback_ops"] == {} and s["numpy_ops"] == {"max": 1, "min": 1, "mul": 1}
    s = tp.compile(BIG[1][1]).program(np.ones((20, 20)), np.ones(20)).stats()  # 400 elements
    assert s["kernel"] == "arrays" and s["fallback_ops"] == {} and s["numpy_ops"] == {}


def test_an_index_passed_in_makes_its_map_per_call_and_threads_do_not_share_it(backend):
    def pick(x, rows, labels):
        return -tp.mean(tp.log_softmax(x * 2.0)[rows, labels])

    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 5))
    rows = np.arange(6)
    cf = tp.compile(pick)
    s = cf.program(x, rows, np.zeros(6, np.int64)).stats()
    assert s["fallback_ops"] == {} and s["kernel"] == "arrays"
    results, errors = {}, []

    def work(k):
        try:
            labels = (np.arange(6) * (k + 1)) % 5
            for _ in range(10):
                results[k] = (labels, tp.value_and_grad(cf)(x, rows, labels))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    errors += run_on_threads(work, 2)
    assert not errors
    for labels, (v, g) in results.values():
        ve, ge = tp.value_and_grad(pick)(x, rows, labels)
        assert float(v) == pytest.approx(float(ve), rel=1e-13)
        np.testing.assert_allclose(g, ge, rtol=1e-12, atol=1e-15)
    with pytest.raises(IndexError):
        cf(x, rows, np.full(6, 7))  # out of bounds, as eager indexing says


def test_max_min_ties_share_and_prod_at_zeros_in_the_kernel(backend):
    x = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, -1.0], [0.0, 5.0, 0.0, 4.0]])

    def fn(x):
        return tp.sum(tp.max(x, axis=1) * 2.0 + tp.min(x, axis=1)) + tp.sum(tp.prod(x, axis=1)) + tp.prod(x[0, :3])

    cf = tp.compile(fn)
    assert cf.program(x).stats()["fallback_ops"] == {}
    v, g = tp.value_and_grad(cf)(x)
    want = np.zeros_like(x)
    want[0, 1:3] += 1.0  # two tied maxima share 2
    want[1, :3] += 2 / 3  # three share 2
    want[2, 1] += 2.0
    want[0, 3] += 1.0  # the minima
    want[1, 3] += 1.0
    want[2, [0, 2]] += 0.5
    want[0, 3] += 1 * 3 * 3  # d prod / d the one zero = the product of the others
    want[1] += [2 * 2 * -1, 2 * 2 * -1, 2 * 2 * -1, 8]
    want[0, :3] += [9, 3, 3]  # prod(x[0, :3]) = 9
    assert float(v) == pytest.approx((3 * 2 + 0) + (2 * 2 - 1) + (5 * 2 + 0) + (0 - 8 + 0) + 9)
    np.testing.assert_allclose(g, want, rtol=1e-14)


def test_a_program_of_100001_entries_in_the_kernel_equals_the_python_replay(backend):
    def loop(x, w):
        for _ in range(20_000):  # five entries a step: mul, sin, maximum, getitem (a reversal), add
            y = tp.maximum(x * w, tp.sin(x))
            x = y[::-1] + w
        return tp.sum(x)

    x0, w = np.linspace(-0.5, 0.5, 4), np.array([0.3, -0.2, 0.1, 0.05])
    p = tp.compile(loop).program(x0, w)
    s = p.stats()
    assert s["entries"] == 100_001 and s["kernel"] == "arrays"
    assert s["fallback_ops"] == {} and s["numpy_ops"] == {}
    got = []
    for name in ("numba", "numpy"):
        backend(name)
        got.append(p.value_and_grad(x0, w))
    (kv, kg), (pv, pg) = got
    assert float(kv) == pytest.approx(float(pv), rel=1e-12)
    for a, b in zip(kg, pg):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
