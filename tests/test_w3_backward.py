"""W3's backward (sum(tanh(a·x + b)·exp(−x·x)), a and b 0-d; issue 11): what the kernels save, on
both backends, against the closed form and finite differences."""

import numpy as np
import pytest

import tape as tp
from tape.backends import numba_backend, numpy_backend
from tape.ops import OPS, Op
from tape.sweep import Adjoints
from tape.testing import check_grads

BACKENDS = {"numpy": numpy_backend, "numba": numba_backend}
N = numba_backend.MIN_SIZE  # the smallest size both backends' large-array kernels take


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    active = tp.get_backend()
    tp.set_backend(request.param)
    yield request.param
    tp.set_backend(active)


def _objective(x, a, b):
    return tp.sum(tp.tanh(a * x + b) * tp.exp(-(x * x)))


def _closed_form(x, a, b):
    """(dx, da, db) with t = tanh(a x + b), e = exp(−x²), u = e (1 − t²)."""
    t, e = np.tanh(a * x + b), np.exp(-x * x)
    u = e * (1 - t * t)
    return a * u - 2 * x * t * e, np.dot(u, x), np.sum(u)


@pytest.mark.parametrize("owned", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("name", list(BACKENDS))
def test_mul_by_one_value_adds_into_an_owned_adjoint(name, dtype, owned):
    # a · x, a one value: Σ g·x for a, and g·a added into x's adjoint where the sweep owns it (x's
    # cotangent then None: already counted), in place of g·a handed back and added by the sweep.
    mul = BACKENDS[name].VJP_KERNELS[Op.MUL]
    rng = np.random.default_rng(11)
    x = rng.standard_normal(N).astype(dtype)
    a = np.asarray(0.7, dtype)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for saved, ins, k in [((None, a, x), (1, 2), 1), ((None, x, a), (2, 1), 0)]:
        g = rng.standard_normal(N).astype(dtype)
        before = rng.standard_normal(N).astype(dtype)
        adj = Adjoints({ins[k]: before.copy()})
        adj.owned.add(ins[k])
        acc = adj.adj[ins[k]]
        got = mul(g.copy() if owned else g, saved, ins, owned, adj)
        assert got[k] is None and adj.adj[ins[k]] is acc  # added into, in place
        np.testing.assert_allclose(acc, before + g * a, rtol=tol, atol=tol)
        ga = got[1 - k]
        assert ga.dtype == dtype and ga.shape == ()
        np.testing.assert_allclose(ga, np.dot(g.astype(np.float64), x), rtol=tol, atol=tol * N**0.5)
        # an adjoint the sweep does not own (another holds it) is never written into: g·a handed back
        adj.owned.clear()
        got = mul(g.copy(), saved, ins, owned, adj)
        assert got[k] is not None and got[k] is not acc
        np.testing.assert_allclose(got[k], g * a, rtol=tol, atol=tol)
        np.testing.assert_allclose(acc, before + g * a, rtol=tol, atol=tol)  # unchanged


def test_owned_adjoint_declines_what_may_not_be_written_into():
    g = np.ones(N)
    adj = Adjoints({1: np.zeros(N), 2: np.zeros(N, np.float32), 3: np.zeros((2, N))[:, 0], 4: g})
    adj.owned.update({1, 2, 3, 4})
    assert numpy_backend.owned_adjoint(adj, 1, g) is adj.adj[1]
    assert numpy_backend.owned_adjoint(adj, 2, g) is None  # another dtype
    assert numpy_backend.owned_adjoint(adj, 3, g[:2]) is None  # not contiguous
    assert numpy_backend.owned_adjoint(adj, 4, g) is None  # g itself
    assert numpy_backend.owned_adjoint(adj, 5, g) is None  # no adjoint yet
    assert numpy_backend.owned_adjoint(None, 1, g) is None  # not the eager sweep
    adj.owned.discard(1)
    assert numpy_backend.owned_adjoint(adj, 1, g) is None  # not owned


def _spy_mul(monkeypatch):
    """Record, for each call of mul's kernel that got the sweep's adjoints, (sizes of the factors,
    cotangents)."""
    op = OPS[Op.MUL]
    kernel, calls = op.kernel_vjp, []

    def spy(g, saved, ins, g_owned=False, adj=None):
        cts = kernel(g, saved, ins, g_owned, adj)
        if adj is not None:
            calls.append((tuple(np.size(v) for v in saved[1:]), cts))
        return cts

    spy.min_size, spy.owned_only = kernel.min_size, kernel.owned_only
    monkeypatch.setattr(op, "kernel_vjp", spy)
    return calls


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda t: np.dtype(t).name)
def test_w3_adds_a_x_cotangent_into_x_adjoint_and_matches_the_closed_form(backend, dtype, monkeypatch):
    # x's two cotangents (from x·x, then from a·x): the second is added into the first by a·x's kernel
    # in the pass that sums g·x for a, not handed to the sweep to add in a pass of its own.
    calls = _spy_mul(monkeypatch)
    rng = np.random.default_rng(2)
    xv = rng.standard_normal(N).astype(dtype)
    x = tp.tensor(xv, requires_grad=True)
    a, b = tp.tensor(dtype(0.7), requires_grad=True), tp.tensor(dtype(-0.3), requires_grad=True)
    with tp.record():
        total = _objective(x, a, b)
    total.backward()
    (ax,) = [cts for sizes, cts in calls if sizes == (1, N)]  # a · x
    assert ax is not None and ax[0] is not None and ax[1] is None, ax
    dx, da, db = _closed_form(xv.astype(np.float64), 0.7, -0.3)
    tol = 2e-5 if dtype == np.float32 else 1e-12
    assert x.grad.dtype == dtype and a.grad.dtype == dtype
    np.testing.assert_allclose(x.grad.numpy(), dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(float(a.grad), da, rtol=50 * tol)
    np.testing.assert_allclose(float(b.grad), db, rtol=50 * tol)


def test_w3_gradients_against_finite_differences(backend):
    rng = np.random.default_rng(4)
    check_grads(_objective, [rng.standard_normal(N), np.asarray(0.7), np.asarray(-0.3)])
    # x used once more after x·x and a·x: the adjoint a·x's kernel adds into is added into again
    f = lambda x, a, b: _objective(x, a, b) + tp.sum(tp.sin(x))  # noqa: E731
    check_grads(f, [rng.standard_normal(N), np.asarray(0.7), np.asarray(-0.3)])
