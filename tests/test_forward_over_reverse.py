"""Forward over reverse (issue 13): tangents flow through the reverse sweep, so `tp.jvp` of a
function that calls `tp.grad` is a Hessian-vector product, and `tp.jacfwd(tp.jacrev(f))` a Hessian.

Every generated op case is checked against reverse over reverse (create_graph), an independent
path through the engine, and the Hessians of closed forms against their formulas.
"""

import numpy as np
import pytest

import tape as tp

from .op_cases import all_cases

CASES = [c for c in all_cases() if c.id not in ("to-cpu",)]


def _scalarised(case, u):
    """sum(u * f(x...)): a scalar function of all the case's inputs."""
    return lambda *xs: tp.sum(case.fn(*xs) * u)


def _fwd_over_rev(f, xs, vs):
    nums = tuple(range(len(xs)))
    _, hv = tp.jvp(lambda *a: tp.grad(f, nums)(*a), [tp.tensor(x) for x in xs], [tp.tensor(v) for v in vs])
    return [h.numpy() for h in hv]


def _rev_over_rev(f, xs, vs):
    nums = tuple(range(len(xs)))

    def inner(*a):
        gs = tp.grad(f, nums)(*a)
        return sum(tp.sum(g * tp.tensor(v)) for g, v in zip(gs, vs))

    return [g.numpy() for g in tp.grad(inner, nums)(*[tp.tensor(x) for x in xs])]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_forward_over_reverse_equals_reverse_over_reverse(case):
    rng = np.random.default_rng(7)
    xs = [np.asarray(a, dtype=np.float64) for a in case.args]
    with tp.no_grad():
        u = rng.standard_normal(case.fn(*[tp.tensor(x) for x in xs]).shape)
    vs = [rng.standard_normal(x.shape) for x in xs]
    f = _scalarised(case, u)
    for a, b in zip(_fwd_over_rev(f, xs, vs), _rev_over_rev(f, xs, vs)):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def test_hessian_of_a_closed_form():
    # f = sum(x^3) + x0 x1: H = diag(6x) + [[0, 1], [1, 0]]
    f = lambda x: tp.sum(x**3) + x[0] * x[1]  # noqa: E731
    x = np.array([0.5, -2.0])
    expected = np.diag(6 * x) + np.array([[0.0, 1.0], [1.0, 0.0]])
    np.testing.assert_allclose(tp.jacfwd(tp.jacrev(f))(tp.tensor(x)).numpy(), expected, rtol=1e-12)
    np.testing.assert_allclose(tp.hessian(f)(tp.tensor(x)).numpy(), expected, rtol=1e-12)
    v = np.array([1.0, 3.0])
    np.testing.assert_allclose(tp.hvp(f, (tp.tensor(x),), (tp.tensor(v),)).numpy(), expected @ v, rtol=1e-12)


def test_hvp_of_the_benchmark_function_against_finite_differences():
    # W6 of the harness: sum(tanh(x)^2) + sum(x[:-1] x[1:]); H v by central differences of the gradient
    f = lambda x: tp.sum(tp.tanh(x) ** 2) + tp.sum(x[:-1] * x[1:])  # noqa: E731
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(50), rng.standard_normal(50)
    grad = lambda z: tp.grad(f)(tp.tensor(z)).numpy()  # noqa: E731
    eps = 1e-6
    fd = (grad(x + eps * v) - grad(x - eps * v)) / (2 * eps)
    np.testing.assert_allclose(tp.hvp(f, (tp.tensor(x),), (tp.tensor(v),)).numpy(), fd, rtol=1e-6, atol=1e-7)


def test_the_tangent_of_the_gradient_is_not_zero_by_accident():
    # d/dx grad(sin(x) * y) = cos(x) y' ... along (1, 0): d/dx (cos(x) y) = -sin(x) y; along (0, 1): cos(x)
    f = lambda x, y: tp.sin(x) * y  # noqa: E731
    x, y = tp.tensor(0.7), tp.tensor(2.0)
    _, t = tp.jvp(lambda a, b: tp.grad(f)(a, b), (x, y), (tp.tensor(1.0), tp.tensor(0.0)))
    assert np.isclose(float(t), -np.sin(0.7) * 2.0, rtol=1e-14)
    _, t = tp.jvp(lambda a, b: tp.grad(f)(a, b), (x, y), (tp.tensor(0.0), tp.tensor(1.0)))
    assert np.isclose(float(t), np.cos(0.7), rtol=1e-14)


def test_jacfwd_of_jacrev_of_a_vector_function():
    # f(x) = A tanh(x): d2 f_i / dx_j dx_k = A_ij * tanh''(x_j) * [j == k]
    rng = np.random.default_rng(3)
    A, x = rng.standard_normal((2, 3)), rng.standard_normal(3)
    t = np.tanh(x)
    second = -2 * t * (1 - t**2)
    expected = np.einsum("ij,jk->ijk", A * second, np.eye(3))
    got = tp.jacfwd(tp.jacrev(lambda z: tp.tensor(A) @ tp.tanh(z)))(tp.tensor(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


# -- tp.hvp at the top level: forward over reverse with raw-array tangents -------------------------


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hvp_equals_reverse_over_reverse(case):
    # tp.hvp outside any transform runs every jvp rule on raw arrays (forward.apply_dual's raw
    # path), in the forward pass and in the sweep: every op case against reverse over reverse
    rng = np.random.default_rng(11)
    xs = [np.asarray(a, dtype=np.float64) for a in case.args]
    with tp.no_grad():
        u = rng.standard_normal(case.fn(*[tp.tensor(x) for x in xs]).shape)
    vs = [rng.standard_normal(x.shape) for x in xs]
    f = _scalarised(case, u)
    hv = tp.hvp(f, [tp.tensor(x) for x in xs], [tp.tensor(v) for v in vs])
    hv = [hv] if len(xs) == 1 else hv
    for a, b in zip(hv, _rev_over_rev(f, xs, vs)):
        np.testing.assert_allclose(a.numpy(), b, rtol=1e-9, atol=1e-9)


def _w6(x):
    return tp.sum(tp.tanh(x) ** 2) + tp.sum(x[:-1] * x[1:])


def _w6_hessian(x):
    # d²/dx² tanh(x)² = 2 s² − 4 t² s with t = tanh(x), s = 1 − t²; x[:-1]·x[1:] puts ones beside
    # the diagonal
    t = np.tanh(x)
    s = 1 - t * t
    return np.diag(2 * s * s - 4 * t * t * s) + np.eye(len(x), k=1) + np.eye(len(x), k=-1)


def test_hvp_of_the_benchmark_function_against_its_closed_form():
    rng = np.random.default_rng(3)
    x, v = rng.standard_normal(40), rng.standard_normal(40)
    hv = tp.hvp(_w6, (tp.tensor(x),), (tp.tensor(v),))
    assert isinstance(hv, tp.Tensor) and hv.dtype == np.float64 and not hv.requires_grad
    np.testing.assert_allclose(hv.numpy(), _w6_hessian(x) @ v, rtol=1e-12, atol=1e-12)
    # NumPy in, NumPy out (the caller's kind)
    np.testing.assert_allclose(tp.hvp(_w6, (x,), (v,)), _w6_hessian(x) @ v, rtol=1e-12, atol=1e-12)


def test_hvp_of_two_primals_against_the_closed_form():
    # f = sum(x² y) + sum(sin(y)): f_xx = diag(2y), f_xy = diag(2x), f_yy = diag(−sin y)
    f = lambda x, y: tp.sum(x * x * y) + tp.sum(tp.sin(y))  # noqa: E731
    x, y = np.array([0.3, -1.2, 2.0]), np.array([1.5, 0.4, -0.7])
    vx, vy = np.array([1.0, 2.0, -1.0]), np.array([0.5, -0.5, 3.0])
    hx, hy = tp.hvp(f, (tp.tensor(x), tp.tensor(y)), (tp.tensor(vx), tp.tensor(vy)))
    np.testing.assert_allclose(hx.numpy(), 2 * y * vx + 2 * x * vy, rtol=1e-13)
    np.testing.assert_allclose(hy.numpy(), 2 * x * vx - np.sin(y) * vy, rtol=1e-13)


def test_hvp_keeps_float32_and_leaves_no_tangents_or_entries_behind():
    from tape.tape import state

    before = len(state().store.entries)
    x = tp.tensor(np.linspace(-1, 1, 5, dtype=np.float32))
    hv = tp.hvp(_w6, (x,), (tp.ones(5, dtype=np.float32),))
    assert hv.dtype == np.float32
    np.testing.assert_allclose(hv.numpy(), _w6_hessian(x.numpy().astype(np.float64)) @ np.ones(5), rtol=1e-5)
    st = state()
    assert not st.store.tangents and st.dual_depth == 0 and not st.recording
    assert len(st.store.entries) == before  # the recording was swept and released with the hvp


def test_hvp_of_a_custom_primitive_without_a_jvp_goes_reverse_over_reverse():
    @tp.primitive
    def cube(x):
        return x**3

    cube.defvjp(lambda g, out, x: (3 * x**2 * g,))

    @tp.primitive
    def square(x):  # has a jvp, but its vjp rule calls cube, which has none: found in the sweep
        return x**2

    square.defvjp(lambda g, out, x: (2 * cube(x) / (x * x) * g,))
    square.defjvp(lambda t, out, x: 2 * x * t[0])
    x, v = np.array([0.5, -2.0]), np.array([1.0, 3.0])
    hv = tp.hvp(lambda z: tp.sum(cube(z)), (tp.tensor(x),), (tp.tensor(v),))
    np.testing.assert_allclose(hv.numpy(), 6 * x * v, rtol=1e-13)
    hv = tp.hvp(lambda z: tp.sum(square(z) * z), (tp.tensor(x),), (tp.tensor(v),))  # d²(x³)
    np.testing.assert_allclose(hv.numpy(), 6 * x * v, rtol=1e-13)


def test_hvp_of_a_function_that_takes_a_gradient_itself():
    # f = sum(∇g · x) with g = sum(x⁴)/12: f = sum(x⁴)/3, H v = 4 x² v (the gradient inside f is
    # taken with create_graph, which forward mode cannot carry: reverse over reverse serves it)
    g = lambda x: tp.sum(x**4) / 12  # noqa: E731
    f = lambda x: tp.sum(tp.grad(g)(x) * x)  # noqa: E731
    x, v = np.array([0.5, -1.0, 2.0]), np.array([1.0, 2.0, 3.0])
    np.testing.assert_allclose(tp.hvp(f, (tp.tensor(x),), (tp.tensor(v),)).numpy(), 4 * x * x * v, rtol=1e-13)


def test_hvp_inside_grad_is_differentiable():
    # f = sum(x⁴)/12: H v = x² v; d/dx sum(x² v) = 2 x v (the third derivative, through tp.hvp)
    f = lambda x: tp.sum(x**4) / 12  # noqa: E731
    x, v = np.array([0.5, -1.5, 2.0]), np.array([2.0, 1.0, -1.0])
    outer = tp.grad(lambda z: tp.sum(tp.hvp(f, (z,), (tp.tensor(v),))))
    np.testing.assert_allclose(outer(tp.tensor(x)).numpy(), 2 * x * v, rtol=1e-13)


def test_hvp_errors_name_the_problem():
    with pytest.raises(TypeError, match="hvp: f must return a scalar"):
        tp.hvp(lambda x: x * x, (tp.ones(3),), (tp.ones(3),))
    with pytest.raises(ValueError, match=r"hvp: tangent shape \(2,\) does not match the primal's shape \(3,\)"):
        tp.hvp(_w6, (tp.ones(3),), (tp.ones(2),))
    from tape.tape import state

    assert state().dual_depth == 0 and not state().store.tangents


def test_hvp_result_is_not_the_callers_tangent():
    # f = sum(x²)/2: H v = v exactly; the result must be a new array, not v itself
    v = tp.tensor([1.0, -2.0, 3.0])
    hv = tp.hvp(lambda x: tp.sum(x * x) / 2, (tp.tensor([0.1, 0.2, 0.3]),), (v,))
    np.testing.assert_array_equal(hv.numpy(), v.numpy())
    hv.array[0] = 99.0
    assert v.numpy()[0] == 1.0


def test_hvp_of_a_function_not_depending_on_the_primal_is_zero():
    hv = tp.hvp(lambda x: tp.sum(x) * 0 + 1.0, (tp.tensor([1.0, 2.0]),), (tp.tensor([1.0, 1.0]),))
    np.testing.assert_array_equal(hv.numpy(), [0.0, 0.0])
    hv = tp.hvp(lambda x: tp.tensor(3.0), (tp.tensor([1.0, 2.0]),), (tp.tensor([1.0, 1.0]),))
    np.testing.assert_array_equal(hv.numpy(), [0.0, 0.0])


@pytest.mark.parametrize("wrap", ["checkpoint", "checkpoint_loop", "checkpoint_while"])
def test_forward_mode_through_checkpointing_equals_the_closed_form(wrap):
    """Inside tp.jvp / tp.hvp a checkpointed block runs plainly, so tangents flow through its steps
    (they came back as zeros from checkpoint_loop, and checkpoint raised, before)."""
    W = np.array([[0.3, -0.2], [0.1, 0.4]])

    def step(y):
        return tp.sin(W @ y)

    def f(x):
        if wrap == "checkpoint":
            y = tp.checkpoint(lambda y: step(step(step(y))), x)
        elif wrap == "checkpoint_loop":
            y = tp.checkpoint_loop(step, x, 3, snapshots=2)
        else:
            y = tp.checkpoint_while(lambda s: s[1] < 3, lambda s: (step(s[0]), s[1] + 1), (x, 0))[0]
        return tp.sum(y * y)

    x, v = np.array([0.7, -0.4]), np.array([0.3, 1.1])

    # closed form: y3 = sin(W sin(W sin(W x))); Hessian by central differences of the analytic gradient
    def gradient(x):
        zs, ys = [], [x]
        for _ in range(3):
            zs.append(W @ ys[-1])
            ys.append(np.sin(zs[-1]))
        g = 2 * ys[-1]
        for z in reversed(zs):
            g = W.T @ (g * np.cos(z))
        return g

    h = 1e-6
    want = (gradient(x + h * v) - gradient(x - h * v)) / (2 * h)
    np.testing.assert_allclose(tp.hvp(f, (x,), (v,)), want, rtol=1e-7)
    np.testing.assert_allclose(tp.jvp(tp.grad(f), (x,), (v,))[1], want, rtol=1e-7)
    np.testing.assert_allclose(tp.grad(f)(x), gradient(x), rtol=1e-12)
