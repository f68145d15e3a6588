"""tp.hvp's inline paths (issue 11): `forward.apply_dual` for one- and two-input ops with raw-array
tangents, and the sweep's loop for dual numbers (`sweep._sweep_dual`).

Every Hessian-vector product is checked against central finite differences of the gradient, which
reverse mode alone computes (no dual numbers), and where it is short, against the closed form. A
spy on the general path (`forward._apply_dual`) checks which cases the inline path takes and which
it must hand on: otherwise a case that silently went the general way would test nothing new.
"""

import numpy as np
import pytest

import tape as tp
from tape import forward
from tape.tape import state


def _fd_hvp(f, xs, vs, eps=1e-6):
    """(∇f(x + eps v) - ∇f(x - eps v)) / (2 eps), ∇f by reverse mode, in float64."""
    nums = tuple(range(len(xs)))

    def grad_at(sign):
        pts = [tp.tensor(np.asarray(x, np.float64) + sign * eps * np.asarray(v, np.float64)) for x, v in zip(xs, vs)]
        gs = tp.grad(f, nums)(*pts)
        return [g.numpy() for g in gs]

    return [(a - b) / (2 * eps) for a, b in zip(grad_at(1.0), grad_at(-1.0))]


@pytest.fixture
def general_calls(monkeypatch):
    """The ops that went `forward._apply_dual`'s general way, by name."""
    names = []
    general = forward._apply_dual

    def spy(op, args, params, apply):
        names.append(op.name)
        return general(op, args, params, apply)

    monkeypatch.setattr(forward, "_apply_dual", spy)
    return names


def _hvp(f, xs, vs):
    hv = tp.hvp(f, [tp.tensor(x) for x in xs], [tp.tensor(v) for v in vs])
    return [h.numpy() for h in (hv if isinstance(hv, tuple) else (hv,))]


def _check(f, xs, vs, rtol=1e-6, atol=1e-7):
    for got, want in zip(_hvp(f, xs, vs), _fd_hvp(f, xs, vs)):
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


RNG = np.random.default_rng(5)
A, B = RNG.uniform(0.5, 1.5, 4), RNG.uniform(0.5, 1.5, 4)
VA, VB = RNG.standard_normal(4), RNG.standard_normal(4)
M = RNG.uniform(0.5, 1.5, (3, 4))

# (id, f, primals): every op on dual numbers here has one or two inputs, the rest (if any) plain
# Tensors, arrays or Python numbers, in f and in the rules its sweep runs.
INLINE = [
    ("unary", lambda x: tp.sum(tp.exp(tp.sin(x)) * tp.tanh(x)), (A,)),
    ("dual-times-dual", lambda x, y: tp.sum(x * y * x), (A, B)),
    ("with-constants", lambda x: tp.sum(np.arange(4.0) * x**3 - 2.0 * tp.log(x) + tp.tensor(B) / x), (A,)),
    ("params", lambda x: tp.sum(tp.sum(x[1:] * x[:-1]) * tp.mean(x**2, axis=0)), (A,)),
    ("broadcast", lambda x, m: tp.sum(tp.tanh(m * x) ** 2), (A, M)),
    ("float64-scalars", lambda x: (tp.sum(x) * tp.sum(x * x)) ** 2 - tp.sum(x) / 3.0, (A,)),
    ("zero-d", lambda x, y: tp.sin(x * y) * x + y**3, (np.array(0.7), np.array(-1.3))),
    ("w6", lambda x: tp.sum(tp.tanh(x) ** 2) + tp.sum(x[:-1] * x[1:]), (A,)),
]


@pytest.mark.parametrize("f, xs", [c[1:] for c in INLINE], ids=[c[0] for c in INLINE])
def test_hvp_inline_path_against_finite_differences(f, xs, general_calls):
    vs = [RNG.standard_normal(np.shape(x)) for x in xs]
    _check(f, xs, vs)
    assert general_calls == []  # every op took the inline path


def test_hvp_inline_path_against_the_closed_form(general_calls):
    # f = sum(x² y) + sum(sin y): H v = (2 y vx + 2 x vy, 2 x vx - sin(y) vy)
    hx, hy = _hvp(lambda x, y: tp.sum(x * x * y) + tp.sum(tp.sin(y)), (A, B), (VA, VB))
    np.testing.assert_allclose(hx, 2 * B * VA + 2 * A * VB, rtol=1e-13)
    np.testing.assert_allclose(hy, 2 * A * VA - np.sin(B) * VB, rtol=1e-13)
    assert general_calls == []


def test_hvp_mixed_dtypes_keeps_the_primal_dtype():
    # float32 primal, float64 constant: the products are float64, the tangents are cast where the
    # output is float32, and H v comes back float32 (H = diag(6 x c) for f = sum(c x³))
    x = np.linspace(0.5, 1.5, 4, dtype=np.float32)
    c = np.arange(1.0, 5.0)
    hv = tp.hvp(lambda x: tp.sum(c * x**3), (tp.tensor(x),), (tp.ones(4, dtype=np.float32),))
    assert hv.dtype == np.float32
    np.testing.assert_allclose(hv.numpy(), 6 * x.astype(np.float64) * c, rtol=1e-5)


class Marked(tp.Tensor):
    """A Tensor subclass: the inline path takes exact Tensors only."""


def test_hvp_hands_a_tensor_subclass_to_the_general_path(general_calls):
    w = Marked(B)
    assert type(w) is Marked
    f = lambda x: tp.sum(tp.sin(x * w))  # noqa: E731
    _check(f, (A,), (VA,))
    np.testing.assert_allclose(_hvp(f, (A,), (VA,))[0], -np.sin(A * B) * B * B * VA, rtol=1e-13)
    assert "mul" in general_calls


def test_hvp_hands_three_input_ops_to_the_general_path(general_calls):
    c = np.array([True, False, True, False])
    f = lambda x: tp.sum(tp.where(c, x**3, tp.sin(x)))  # noqa: E731
    _check(f, (A,), (VA,))
    np.testing.assert_allclose(_hvp(f, (A,), (VA,))[0], np.where(c, 6 * A, -np.sin(A)) * VA, rtol=1e-13)
    assert "where" in general_calls


def test_hvp_of_a_nested_jvp_goes_the_general_way(general_calls):
    # f(x) = <∇g(x), u> by tp.jvp inside tp.hvp: the inner duals' tangents are Tensors and their
    # primals are the outer duals. g = sum(x³): ∇g = 3x², f = sum(3 x² u), H_f v = 6 u v
    u = np.array([1.0, -2.0, 0.5, 3.0])

    def f(x):
        return tp.jvp(lambda z: tp.sum(z**3), (x,), (tp.tensor(u),))[1]

    _check(f, (A,), (VA,))
    np.testing.assert_allclose(_hvp(f, (A,), (VA,))[0], 6 * u * VA, rtol=1e-12)
    assert general_calls  # the inner jvp's ops


def test_hvp_of_a_primitive_without_jvp_falls_back_to_reverse_over_reverse(general_calls):
    @tp.primitive
    def cube(x):
        return x**3

    cube.defvjp(lambda g, out, x: (3 * x * x * g,))
    f = lambda x: tp.sum(cube(x) * x)  # noqa: E731  x⁴: H v = 12 x² v
    np.testing.assert_allclose(_hvp(f, (A,), (VA,))[0], 12 * A * A * VA, rtol=1e-12)
    _check(f, (A,), (VA,))


def test_hvp_of_a_custom_primitive_runs_its_rules_on_duals(general_calls):
    # a vjp_all rule (custom primitives) in the dual sweep, and its jvp in the inline path
    @tp.primitive
    def cube(x):
        return x**3

    cube.defvjp(lambda g, out, x: (3 * x * x * g,))
    cube.defjvp(lambda tangents, out, x: 3 * x * x * tangents[0])
    f = lambda x: tp.sum(tp.sin(cube(x)))  # noqa: E731
    _check(f, (A,), (VA,))
    # d/dx sin(x³) = 3x² cos(x³); d² = 6x cos(x³) - 9x⁴ sin(x³)
    want = (6 * A * np.cos(A**3) - 9 * A**4 * np.sin(A**3)) * VA
    np.testing.assert_allclose(_hvp(f, (A,), (VA,))[0], want, rtol=1e-12)
    assert general_calls == []


def test_hvp_rules_with_a_non_differentiable_input():
    # sign's rule is None (a zero cotangent), maximum's is a where(): one sweep through both
    f = lambda x, y: tp.sum(tp.maximum(x, y) ** 2 * tp.sign(x))  # noqa: E731
    x, y = np.array([0.5, -1.0, 2.0, 0.3]), np.array([1.0, -2.0, 0.1, -0.4])
    _check(f, (x, y), (VA, VB))


def test_hvp_adjoint_sums_and_repeated_inputs():
    # x read by five entries: its adjoint is a sum of dual cotangents, added in the dual sweep
    f = lambda x: tp.sum(x * x) * tp.sum(x) + tp.sum(tp.exp(x) * x)  # noqa: E731
    _check(f, (A,), (VA,))
    s = A.sum()
    # H = 2 s I + 2 (x 1ᵀ + 1 xᵀ) + diag((x + 2) eˣ)
    want = 2 * s * VA + 2 * A * VA.sum() + 2 * (A @ VA) + (A + 2) * np.exp(A) * VA
    np.testing.assert_allclose(_hvp(f, (A,), (VA,))[0], want, rtol=1e-12)


def test_hvp_with_no_grad_inside_f():
    # an op under no_grad inside f is not recorded: its dual keeps a raw primal, and the result
    # depends on x only through the recorded part (H v = 2 v), or not at all (zeros)
    def f(x):
        with tp.no_grad():
            c = tp.sum(x * x)
        return tp.sum(x * x) + c

    np.testing.assert_allclose(_hvp(f, (A,), (VA,))[0], 2 * VA, rtol=1e-13)

    def g(x):
        with tp.no_grad():
            return tp.sum(x * x * x)

    np.testing.assert_array_equal(_hvp(g, (A,), (VA,))[0], np.zeros(4))
    assert not state().store.tangents and state().dual_depth == 0


def test_hvp_under_a_paused_record_block_leaves_the_block_as_it_was():
    x = tp.tensor(A, requires_grad=True)
    with tp.record() as t:
        y = tp.sum(x * x)
        with tp.no_grad():
            hv = tp.hvp(lambda z: tp.sum(tp.sin(z)), (tp.tensor(A),), (tp.tensor(VA),))
        z = y * 3
    assert tp.is_recording() is False
    np.testing.assert_allclose(hv.numpy(), -np.sin(A) * VA, rtol=1e-13)
    assert [e.op for e in t.entries] == ["mul", "sum", "mul"]
    z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 6 * A, rtol=1e-13)


def test_jvp_of_zero_d_float64_leaves():
    # make_dual keeps a 0-d float64 value a scalar (as eager mode holds it): same derivatives
    x = tp.tensor(0.4)
    out, t = tp.jvp(lambda a: tp.sin(a) * a**2, (x,), (tp.tensor(2.0),))
    np.testing.assert_allclose(float(out), np.sin(0.4) * 0.16, rtol=1e-15)
    np.testing.assert_allclose(float(t), 2.0 * (np.cos(0.4) * 0.16 + 2 * 0.4 * np.sin(0.4)), rtol=1e-14)
    assert float(x) == 0.4


def test_dual_sweep_fills_the_adjoint_column_of_logged_entries():
    # forward over reverse inside a (paused) record block: tp.grad's entries are in the block's
    # log, and the dual sweep writes their adjoints as the other sweeps do
    x = np.array([0.5, 0.3])
    with tp.record() as t:
        with tp.no_grad():
            _, tangent = tp.jvp(tp.grad(lambda z: tp.sum(tp.sin(z) * z)), (tp.tensor(x),), (tp.tensor([1.0, -1.0]),))
    rows = {r.expr: r for r in t.trace()}
    np.testing.assert_allclose(rows["x1"].adjoint, np.sin(x) + x * np.cos(x), rtol=1e-15)  # ∂f/∂x
    np.testing.assert_allclose(rows["sin(v0)"].adjoint, x, rtol=1e-15)  # ∂f/∂sin(x) = x
    np.testing.assert_allclose(rows["sum(v4)"].adjoint, 1.0)
    # d²f/dx² = 2 cos x - x sin x, along (1, -1)
    np.testing.assert_allclose(tangent.numpy(), (2 * np.cos(x) - x * np.sin(x)) * [1.0, -1.0], rtol=1e-13)
