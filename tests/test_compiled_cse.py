"""Common-subexpression elimination in the lowering (issue 10, W1): repeated entries merged, the
rest left alone.

Counts are exact and worked out by hand from the functions; values and gradients are checked
against the eager computation of the same function (float64, 1e-12 relative) and closed forms.
"""

from __future__ import annotations

import numpy as np

import tape as tp

RTOL = 1e-12


def _eager(fn, *args):
    """(value, gradients) of fn run eagerly, the oracle."""
    value, grads = tp.value_and_grad(fn, argnums=tuple(range(len(args))))(*args)
    return np.asarray(value), [np.asarray(g) for g in grads]


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=RTOL, atol=0)


def chain(x1, x2, terms=3):
    total = 0.0
    for _ in range(terms):
        total = total + (tp.log(x1) + x1 * x2 - tp.sin(x2))
    return total


def test_repeated_terms_fold_into_one_and_gradients_match_eager(each_backend):
    x1, x2 = np.array(2.0), np.array(5.0)
    cf = tp.compile(chain)
    p = cf.program(x1, x2)
    # log, mul, add, sin, sub once; the three additions of the sum stay (each reads another total)
    assert len(p) == 8 and p.stats()["entries"] == 8
    assert [e.op for e in p.entries] == ["log", "mul", "add", "sin", "sub", "add", "add", "add"]
    for a, b in [(x1, x2), (np.array(0.7), np.array(-1.3))]:
        value, grads = tp.value_and_grad(cf, argnums=(0, 1))(a, b)
        want_value, want_grads = _eager(chain, a, b)
        _close(value, want_value)
        for g, w in zip(grads, want_grads):
            _close(g, w)
        _close(grads[0], 3 * (1 / a + b))  # the closed form
        _close(grads[1], 3 * (a - np.cos(b)))


def test_only_identical_entries_merge():
    def fn(x):
        a = tp.sin(x) * tp.sin(x)  # one sin, read twice
        b = x * 2.0 + x * 3.0  # other constants: two products
        c = x * 2.0  # the same constant again (another float object): the first product
        d = tp.sum(x, axis=0) + tp.sum(x, axis=1) + tp.sum(x, axis=0)  # axis=0 twice
        return tp.sum(a) + tp.sum(b) + tp.sum(c) + tp.sum(d)

    x = np.random.default_rng(0).uniform(-1, 1, (3, 3))
    cf = tp.compile(fn)
    p = cf.program(x)
    ops = [e.op for e in p.entries]
    assert ops.count("sin") == 1
    assert ops.count("mul") == 3  # sin·sin, x·2, x·3
    assert ops.count("sum") == 2 + 4  # axis 0, axis 1; four whole sums (sum(c) is not sum(b))
    assert p.stats()["constants"] == 2  # 2.0 and 3.0, each once in the pool
    value, grad = tp.value_and_grad(cf)(x)
    want_value, (want_grad,) = _eager(fn, x)
    _close(value, want_value)
    _close(grad, want_grad)
    # the closed form: d/dx sin²x = 2 sin x cos x; x·2 + x·3 + x·2 gives 7; the three axis sums 3
    _close(grad, 2 * np.sin(x) * np.cos(x) + 7 + 3)


def test_signed_zeros_and_promoting_constants_stay_apart():
    def fn(x):
        return x * 0.0 + x * -0.0 + x * np.float32(2.0) + x * 2.0

    x = np.array([1.0, 2.0], np.float32)
    p = tp.compile(fn).program(x)
    assert [e.op for e in p.entries].count("mul") == 4
    np.testing.assert_array_equal(p(x), fn(tp.tensor(x)).numpy())


def test_random_draws_plain_values_and_custom_primitives_are_never_merged(each_backend):
    @tp.primitive
    def twice(x):
        return 2 * x

    twice.defvjp(lambda g, out, x: (2 * g,))

    def fn(x):
        noise = x * tp.rand(3) + x * tp.rand(3)  # two draws, so two products
        k = tp.argmax(x) + tp.argmax(x)  # values without history: PLAIN entries
        return tp.sum(noise) + tp.sum(twice(x) + twice(x)) + tp.sum(x[k])

    x = np.array([0.3, 0.9, 0.5])
    cf = tp.compile(fn)
    p = cf.program(x)
    ops = [e.op for e in p.entries]
    assert ops.count("rand") == 2
    assert ops.count("mul") == 2
    assert ops.count("argmax") == 2
    assert ops.count("twice") == 2
    tp.manual_seed(3)
    value, grad = tp.value_and_grad(cf)(x)
    tp.manual_seed(3)
    want_value, (want_grad,) = _eager(fn, x)
    _close(value, want_value)
    _close(grad, want_grad)


def test_index_arguments_with_equal_values_stay_two_inputs(each_backend):
    def fn(x, i, j):
        return tp.sum(x[i] * x[j])

    x = np.array([1.0, 2.0, 3.0, 4.0])
    i = np.array([0, 1])
    cf = tp.compile(fn)
    p = cf.program(x, i, i.copy())  # equal when recorded, but two arguments
    assert [e.op for e in p.entries].count("getitem") == 2
    j = np.array([3, 2])
    value, grad = tp.value_and_grad(cf)(x, i, j)
    _close(value, 1 * 4 + 2 * 3)
    _close(grad, [4.0, 3.0, 2.0, 1.0])


def test_one_value_returned_twice_gives_two_arrays_and_sums_cotangents(each_backend):
    def fn(x):
        return tp.sin(x), tp.sin(x)

    x = np.array([0.2, 0.4])
    cf = tp.compile(fn)
    p = cf.program(x)
    assert len(p) == 1 and len(p.outputs) == 2
    a, b = cf(x)
    _close(a.numpy(), np.sin(x))
    a.array[0] = 100.0  # writing one leaves the other alone, as with eager results
    _close(b.numpy(), np.sin(x))
    outs, vjp_fn = p.vjp(x)
    assert outs[0] is not outs[1]
    (g,) = vjp_fn((np.array([1.0, 2.0]), np.array([3.0, 5.0])))
    _close(g, np.cos(x) * [4.0, 7.0])
    _, vjp_c = tp.vjp(cf, x)
    (gc,) = vjp_c((tp.tensor([1.0, 2.0]), tp.tensor([3.0, 5.0])))
    _close(gc, np.cos(x) * [4.0, 7.0])


def test_a_guard_on_a_merged_value_is_still_checked(each_backend):
    def fn(x):
        a = tp.sum(x * x)
        b = tp.sum(x * x)  # merged into a
        if b > 1.0:
            return a + b
        return a - b

    cf = tp.compile(fn)
    p = cf.program(np.array([1.0, 1.0]))
    # the comparison is a PLAIN entry reading the merged sum; the guard holds its outcome
    assert [e.op for e in p.entries] == ["mul", "sum", "greater", "add"] and len(p.guards) == 1
    _close(cf(np.array([1.0, 1.0])).numpy(), 4.0)
    _close(cf(np.array([0.1, 0.2])).numpy(), 0.0)  # the guard fails: the other path, recorded anew
    stats = cf.stats()
    assert stats["recordings"] == 2 and stats["guard_failures"] == 1


def test_tape_compile_merges_too_and_save_load_keeps_it(tmp_path, each_backend):
    x1 = tp.tensor(2.0, requires_grad=True)
    x2 = tp.tensor(5.0, requires_grad=True)
    with tp.record() as t:
        y = chain(x1, x2, terms=4)
    assert len(t) == 24
    p = t.compile(inputs=[x1, x2], outputs=y)
    assert len(p) == 5 + 4
    p.save(tmp_path / "p.npz")
    q = tp.load_program(tmp_path / "p.npz")
    assert len(q) == len(p) and str(q) == str(p)
    a, b = np.array(1.5), np.array(0.5)
    want_value, want_grads = _eager(lambda u, v: chain(u, v, terms=4), a, b)
    for prog in (p, q):
        value, grads = prog.value_and_grad(a, b)
        _close(value, want_value)
        for g, w in zip(grads, want_grads):
            _close(g, w)


def test_w1_sized_program_has_1005_entries():
    p = tp.compile(lambda a, b: chain(a, b, terms=1000)).program(np.array(2.0), np.array(5.0))
    assert len(p) == 1005 and p.stats()["kernel"] == "scalar"
