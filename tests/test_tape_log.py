"""A tape that remembers (issue 13, item 3; API §6): what a block recorded stays visible through
its `Tape` handle after the history was released, in bounded memory.

`len(t)` is the number of operations the block recorded (released or not); `t.entries`, `t.trace()`,
``print(t)`` and `t.to_dot()` show the first LOG_ENTRIES entries of the block (leaf entries
included) and count the rest.
"""

import gc
import tracemalloc

import numpy as np
import pytest

import tape as tp
from tape.record import LOG_ENTRIES


def _live(t):
    """Entries of `t`'s block that the store still holds (history not yet released)."""
    return [s for s in t._store.entries if s >= t._first]


def test_an_unkept_result_still_prints():
    x = tp.tensor(0.5, requires_grad=True)
    with tp.record() as t:
        tp.sin(x) * x  # the result is dropped at once, and its history with it
    assert _live(t) == []  # released...
    assert len(t) == 2  # ...but remembered
    assert t.entries == [tp.Entry(0, "sin", (0,), 1), tp.Entry(1, "mul", (1, 0), 2)]
    text = str(t)
    assert "v0 = x1" in text and "v1 = sin(v0)" in text and "v2 = mul(v1, v0)" in text
    rows = t.trace()
    assert [r.name for r in rows] == ["v0", "v1", "v2"]
    # values against closed forms, computed here with NumPy
    np.testing.assert_allclose([float(r.value) for r in rows], [0.5, np.sin(0.5), np.sin(0.5) * 0.5], rtol=1e-15)
    assert all(r.adjoint is None for r in rows)  # no backward pass went through
    assert "v2 = mul" in t.to_dot() and "v0 -> v2" in t.to_dot()


def test_the_trace_keeps_the_adjoints_of_a_released_backward_pass():
    # Baydin et al.'s f = ln(x1) + x1*x2 - sin(x2) at (2, 5); nothing kept but the handle.
    x1 = tp.tensor(2.0, requires_grad=True)
    x2 = tp.tensor(5.0, requires_grad=True)
    with tp.record() as t:
        (tp.log(x1) + x1 * x2 - tp.sin(x2)).backward()
    assert _live(t) == []
    rows = t.trace()
    assert [f"{r.name} = {r.expr}" for r in rows] == [
        "v-1 = x1",
        "v0 = x2",
        "v1 = log(v-1)",
        "v2 = mul(v-1, v0)",
        "v3 = add(v1, v2)",
        "v4 = sin(v0)",
        "v5 = sub(v3, v4)",
    ]
    adjoints = [float(r.adjoint) for r in rows]
    np.testing.assert_allclose(adjoints, [1 / 2 + 5, 2 - np.cos(5), 1, 1, 1, -1, 1], rtol=1e-15)
    np.testing.assert_allclose(float(rows[-1].value), np.log(2) + 10 - np.sin(5), rtol=1e-15)


def test_custom_primitives_print_by_name_after_release():
    @tp.primitive
    def cube(x):
        return x**3

    cube.defvjp(lambda g, out, x: (3 * x**2 * g,))
    x = tp.tensor([1.0, 2.0], requires_grad=True)
    with tp.record() as t:
        tp.sum(cube(x)).backward()
    assert [e.op for e in t.entries] == ["cube", "sum"]
    assert "v1 = cube(v0)" in str(t)
    np.testing.assert_array_equal(t.trace()[0].adjoint, [3.0, 12.0])


def test_nested_blocks_remember_their_own_entries():
    x = tp.tensor(1.0, requires_grad=True)
    with tp.record() as outer:
        a = x + 1
        with tp.record() as inner:
            tp.exp(a * 2)
        del a
    assert _live(outer) == []
    assert [e.op for e in outer.entries] == ["add", "mul", "exp"]
    assert [e.op for e in inner.entries] == ["mul", "exp"]
    assert (len(outer), len(inner)) == (3, 2)
    assert [r.expr for r in inner.trace()][0] == "input"  # a result of the outer block


def test_an_input_from_an_earlier_block_prints_while_it_lives():
    x = tp.tensor(2.0, requires_grad=True)
    with tp.record():
        y = x * x
    with tp.record() as t:
        z = tp.sin(y)
    rows = t.trace()
    assert [(r.name, r.expr) for r in rows] == [("v0", "input"), ("v1", "sin(v0)")]
    assert float(rows[0].value) == 4.0
    del y, z  # the earlier block's entry is gone: its row stays, without a value
    rows = t.trace()
    assert [(r.name, r.expr) for r in rows] == [("v0", "input"), ("v1", "sin(v0)")]
    assert rows[0].value is None and float(rows[1].value) == np.sin(4.0)


def test_len_counts_every_operation_and_the_log_only_the_first():
    n = LOG_ENTRIES + 2_345
    x = tp.tensor(0.25, requires_grad=True)
    with tp.record() as t:
        y = x
        for _ in range(n):
            y = y * 1.0
    assert len(t) == n
    kept = t.entries
    assert len(kept) == LOG_ENTRIES - 1  # the leaf x is the block's first entry
    assert [e.index for e in kept[:3]] == [0, 1, 2] and kept[-1].output == len(kept)
    text = str(t)
    assert (
        text.splitlines()[-1] == f"... and {n - len(kept)} more entries (a block's log keeps its first {LOG_ENTRIES})"
    )
    assert f"v{len(kept)} = mul(v{len(kept) - 1}, 1)" in text and f"v{len(kept) + 1} =" not in text
    y.backward()
    assert x.grad.item() == 1.0
    assert float(t.trace()[0].adjoint) == 1.0


def test_a_tape_that_is_still_open_shows_what_it_has_so_far():
    x = tp.tensor(3.0, requires_grad=True)
    with tp.record() as t:
        tp.exp(x)
        assert len(t) == 1 and [e.op for e in t.entries] == ["exp"]
        tp.sqrt(x)
    assert [e.op for e in t.entries] == ["exp", "sqrt"]


def test_large_values_are_summarised_in_the_log_and_not_kept():
    gc.collect()
    tracemalloc.start()
    try:
        x = tp.tensor(np.ones(1_000_000), requires_grad=True)  # 8 MB
        start = tracemalloc.get_traced_memory()[0]
        with tp.record() as t:
            for _ in range(5):
                tp.sum(tp.exp(x))  # two 8 MB intermediates each time, all dropped
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert held < 256 * 1024  # names, slots and (shape, dtype): no arrays
    assert len(t) == 10 and "<float64 (1000000,)>" in str(t)


def test_a_small_view_of_a_large_array_is_not_kept_alive_by_the_log():
    x = tp.tensor(np.ones(1_000_000), requires_grad=True)
    gc.collect()
    tracemalloc.start()
    try:
        start = tracemalloc.get_traced_memory()[0]
        with tp.record() as t:
            for _ in range(5):
                tp.exp(x)[:2] * 2.0  # an 8 MB temporary, and a 2-element view of it
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - start
    finally:
        tracemalloc.stop()
    assert held < 256 * 1024
    views = [r.value for r in t.trace() if r.expr.startswith("getitem")]
    assert len(views) == 5
    np.testing.assert_allclose(views[-1], [np.e, np.e], rtol=1e-15)  # the view's values, kept


def _measure_block(n_ops, checkpoints):
    """Memory held (tracemalloc) at each of `checkpoints` (op counts) in one block of dropped ops."""
    x = tp.tensor(0.5, requires_grad=True)
    w = tp.tensor(np.linspace(0, 1, 16), requires_grad=True)  # 16 elements: values are kept
    seen = {}
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        with tp.record() as t:
            for k in range(1, n_ops // 2 + 1):
                tp.sin(w * x)  # two operations, the result dropped
                if 2 * k in checkpoints:
                    gc.collect()
                    seen[2 * k] = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    return t, seen


def test_a_long_block_runs_in_bounded_memory():
    n = 100_000
    t, seen = _measure_block(n, {4 * LOG_ENTRIES, n})
    # The log is full after LOG_ENTRIES entries; from then on nothing more is kept.
    assert seen[n] - seen[4 * LOG_ENTRIES] < 64 * 1024
    # What is kept: per entry a tuple, its trace record and a value of at most 16 elements.
    assert seen[n] < LOG_ENTRIES * 700
    assert len(t) == n and len(t.entries) < LOG_ENTRIES
    assert str(t).splitlines()[-1].startswith(f"... and {n - len(t.entries)} more entries")


def test_dropping_the_handle_frees_the_log():
    x = tp.tensor(0.5, requires_grad=True)
    gc.collect()
    tracemalloc.start()
    try:
        with tp.record() as t:
            for _ in range(2_000):
                tp.sin(x)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0]
        del t
        gc.collect()
        freed = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # The log held something per entry (4,000 entries: 2,000 leaves and 2,000 sins), and it went
    # with the handle. (Measured around `del t` alone: the store's own dict may resize meanwhile.)
    assert freed > 4_000 * 100


@pytest.mark.parametrize("keep", [False, True])
def test_only_open_blocks_log(keep):
    # tp.grad records under a block of its own; nothing of it reaches a later block's log, and once
    # every block is closed the store logs nothing.
    x = tp.tensor(0.5, requires_grad=True)
    tp.grad(lambda x: tp.sin(x) * x)(0.3)
    with tp.record() as t:
        y = tp.cos(x)
    if not keep:
        del y
    z = x * 2.0  # not recorded: outside any block
    assert [e.op for e in t.entries] == ["cos"] and len(t) == 1 and not z.requires_grad
    assert t._store.log is None and t._store.log_until == 0
