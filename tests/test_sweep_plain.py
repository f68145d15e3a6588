"""The plain backward pass (sweep._sweep_plain): what its shortcuts must keep.

Each shortcut of the plain loop is checked against what the general loop does: gradients against
closed forms, which entries a failed pass marks, which kernels it asks, the seed of a scalar result.
"""

import contextlib

import numpy as np
import pytest

import tape as tp
from tape.ops import OPS, Op


def _w1(x1, x2, terms):
    total = 0.0
    for _ in range(terms):
        total = total + (tp.log(x1) + x1 * x2 - tp.sin(x2))
    return total


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_a_scalar_chain_has_its_closed_form_gradient(dtype):
    # d/dx1 of terms * (ln x1 + x1 x2 - sin x2) is terms * (1/x1 + x2); d/dx2 is terms * (x1 - cos x2)
    x1 = tp.tensor(2.0, dtype=dtype, requires_grad=True)
    x2 = tp.tensor(5.0, dtype=dtype, requires_grad=True)
    with tp.record():
        y = _w1(x1, x2, 7)
    value = y.item()
    y.backward()
    rtol = 1e-12 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(value, 7 * (np.log(2.0) + 10.0 - np.sin(5.0)), rtol=rtol)
    np.testing.assert_allclose(x1.grad.item(), 7 * (0.5 + 5.0), rtol=rtol)
    np.testing.assert_allclose(x2.grad.item(), 7 * (2.0 - np.cos(5.0)), rtol=rtol)
    assert x1.grad.dtype == dtype and x2.grad.dtype == dtype
    assert x1.grad.shape == () and isinstance(x1.grad.array, np.ndarray)


def test_a_scalar_result_seeded_by_hand_and_its_grads_and_grad_accumulation():
    x1 = tp.tensor(2.0, requires_grad=True)
    x2 = tp.tensor(5.0, requires_grad=True)
    with tp.record():
        y = _w1(x1, x2, 3)
    y.backward(gradient=tp.tensor(2.0), retain_graph=True)
    y.backward()  # a second pass adds into .grad
    np.testing.assert_allclose(x1.grad.item(), 3 * 3 * 5.5)
    np.testing.assert_allclose(x2.grad.item(), 3 * 3 * (2.0 - np.cos(5.0)))
    with tp.record():
        z = x1 * x2
    (gz,) = tp.grads(z, [z])  # the seed itself, handed back as an array the caller owns
    assert isinstance(gz.array, np.ndarray) and gz.item() == 1.0


def test_a_failed_pass_marks_only_the_entries_it_released():
    calls = []

    @tp.primitive
    def fragile(x):
        return x * 1.0

    def rule(g, out, x):
        calls.append(1)
        if len(calls) == 1:
            raise ArithmeticError("the rule failed")
        return (g,)

    fragile.defvjp(rule)
    x = tp.tensor([0.5, 1.0], requires_grad=True)
    with tp.record():
        a = tp.sum(tp.tanh(x) * 3.0)  # an earlier history, consumed by a pass that succeeded
    a.backward()
    with tp.record():
        z = tp.sin(x)  # below the op that fails: the failed pass never reaches it
        y = tp.sum(tp.exp(fragile(z)) * 2.0)
    x.grad = None
    with pytest.raises(ArithmeticError):
        y.backward()
    assert x.grad is None
    with pytest.raises(RuntimeError, match="raised midway"):
        y.backward()
    with pytest.raises(RuntimeError, match="already released by an earlier backward pass;"):
        a.backward()
    z.backward(gradient=tp.ones(2))  # untouched by the failed pass: its saved values are there
    np.testing.assert_allclose(x.grad.numpy(), np.cos([0.5, 1.0]))


class _Counting:
    """A kernel that declines every call and counts the calls it got."""

    def __init__(self, min_size, owned_only):
        self.min_size, self.owned_only, self.calls = min_size, owned_only, []

    def __call__(self, g, saved, ins, g_owned=False, adj=None):
        self.calls.append((g.size, g_owned))
        return None


@pytest.mark.parametrize("owned_only", [False, True])
def test_the_sweep_asks_a_kernel_only_what_it_may_accept(monkeypatch, owned_only):
    kernel = _Counting(min_size=50, owned_only=owned_only)
    monkeypatch.setattr(OPS[Op.TANH], "kernel_vjp", kernel)
    for n in (20, 100):
        x = tp.tensor(np.linspace(-1, 1, n), requires_grad=True)
        with tp.record():
            y = tp.sum(tp.tanh(x))  # tanh's g: sum's cotangent, a broadcast view the sweep does not own
            w = tp.sum(tp.tanh(x) * 3.0)  # tanh's g: mul's cotangent, a fresh array the sweep owns
        y.backward()
        np.testing.assert_allclose(x.grad.numpy(), 1 - np.tanh(np.linspace(-1, 1, n)) ** 2)
        x.grad = None
        w.backward()
        np.testing.assert_allclose(x.grad.numpy(), 3 * (1 - np.tanh(np.linspace(-1, 1, n)) ** 2))
    # 20 elements: below min_size, never asked; 100: asked for the owned g, and for the other
    # only when the kernel does not need to own it
    assert kernel.calls == ([(100, False), (100, True)] if not owned_only else [(100, True)])


def test_every_installed_kernel_says_what_it_declines():
    active = tp.get_backend()
    for name in ("numpy", "numba"):
        tp.set_backend(name)
        try:
            kernels = [op.kernel_vjp for op in OPS.values() if op.kernel_vjp is not None]
            assert kernels
            for k in kernels:
                assert isinstance(k.min_size, int) and isinstance(k.owned_only, bool)
        finally:
            tp.set_backend(active)


class _Owned:
    """A kernel that declines every call and records whether the sweep owned the g it was given."""

    min_size, owned_only = 0, False

    def __init__(self):
        self.owned = []

    def __call__(self, g, saved, ins, g_owned=False, adj=None):
        self.owned.append(g_owned)
        return None


def test_an_owned_cotangent_that_add_hands_to_both_inputs_passes_on_when_the_other_adds_in_place(monkeypatch):
    # sum((exp(x) + x) * 3 + x * x): the sweep reaches x * x first (x's adjoint: a fresh array it
    # owns), then the add, whose rule hands g (3, owned) to both exp(x) and x. x's adjoint grows by g
    # in place, so exp(x)'s adjoint may take g itself, and exp's rule may write into it.
    kernel = _Owned()
    monkeypatch.setattr(OPS[Op.EXP], "kernel_vjp", kernel)
    xv = np.linspace(-1, 1, 100)
    x = tp.tensor(xv, requires_grad=True)
    with tp.record():
        y = tp.sum((tp.exp(x) + x) * 3.0 + x * x)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(xv) + 3 + 2 * xv, rtol=1e-14)
    assert kernel.owned == [True]


@pytest.mark.parametrize("anomaly", [False, True], ids=["plain loop", "general loop"])
def test_an_owned_cotangent_wanted_by_two_adjoints_is_copied_for_one(monkeypatch, anomaly):
    # sum((exp(x) + x) * 3): x has no adjoint yet when the add hands g to exp(x) and x, so both would
    # hold g: one gets a copy, and each owns its array (exp's in-place rule may write into its own,
    # which must not change x's adjoint). detect_anomaly sweeps through the general loop (`_hand_on`),
    # which follows the same rule.
    mode = tp.detect_anomaly if anomaly else contextlib.nullcontext
    kernel = _Owned()
    monkeypatch.setattr(OPS[Op.EXP], "kernel_vjp", kernel)
    xv = np.linspace(-1, 1, 100)
    x = tp.tensor(xv, requires_grad=True)
    with mode():
        with tp.record():
            y = tp.sum((tp.exp(x) + x) * 3.0)
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(xv) + 3, rtol=1e-14)
    assert kernel.owned == [True]
    monkeypatch.undo()  # the real kernels: exp's writes into the g it owns
    x.grad = None
    with mode():
        with tp.record():
            y = tp.sum((tp.exp(x) + x) * 3.0)
        y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(xv) + 3, rtol=1e-14)
    x.grad = None
    with mode():
        with tp.record():
            y = tp.sum((tp.exp(x) + x) * 3.0 + 0.0 * x)  # x's adjoint: 0·3, owned, added into in place
            z = tp.sum((tp.exp(x) + x) * 3.0)  # x's adjoint: g itself, shared
        y.backward()
        z.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * (3 * np.exp(xv) + 3), rtol=1e-14)


def test_a_bias_summed_from_an_owned_cotangent_leaves_it_to_the_other_input(monkeypatch):
    # exp(x) + b with b of shape (1,): b's cotangent is g summed, a new array; exp(x) keeps g itself
    kernel = _Owned()
    monkeypatch.setattr(OPS[Op.EXP], "kernel_vjp", kernel)
    xv = np.linspace(-1, 1, 100)
    x = tp.tensor(xv, requires_grad=True)
    b = tp.tensor([0.5], requires_grad=True)
    with tp.record():
        y = tp.sum((tp.exp(x) + b) * 3.0)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(xv), rtol=1e-14)
    np.testing.assert_allclose(b.grad.numpy(), [300.0], rtol=1e-14)
    assert kernel.owned == [True]


def test_an_owned_cotangent_with_a_view_beside_it_stays_unowned(monkeypatch):
    # an add whose rule for its second input returns a view of g: exp(x) keeps g, but may not
    # write into it, or sin(w)'s adjoint (the view) would change with it.
    rules = (lambda g, o, x, y: g, lambda g, o, x, y: g.reshape(g.shape))
    monkeypatch.setattr(OPS[Op.ADD], "vjp", rules)
    xv = np.linspace(-1, 1, 100)
    w = tp.tensor(xv, requires_grad=True)
    x = tp.tensor(xv, requires_grad=True)
    with tp.record():
        s = tp.sin(w)  # recorded first: reached after exp(x), which would write into g
        y = tp.sum((tp.exp(x) + s) * 3.0)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 3 * np.exp(xv), rtol=1e-14)
    np.testing.assert_allclose(w.grad.numpy(), 3 * np.cos(xv), rtol=1e-14)
