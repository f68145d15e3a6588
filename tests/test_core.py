"""The core (tape, record, sweep) on its own: no array math, values are plain Python floats.

As in HIPS autograd's test_core.py: if the core only moves values between rules, it must work
for any value type with + defined. The ops here are defined ad hoc with `math`, not from the table.
"""

import math

import numpy as np

import tape as tp
from tape.ops.registry import OpDef, apply
from tape.tensor import TRACKED_LEAF, _new_tensor

# Rows made for this test only (not registered in the op table).
SIN = OpDef(9001, "sin", math.sin, (lambda g, o, x: g * math.cos(x),), "x")
MUL = OpDef(9002, "mul", lambda a, b: a * b, (lambda g, o, a, b: g * b, lambda g, o, a, b: g * a), "xy")
ADD = OpDef(9003, "add", lambda a, b: a + b, (lambda g, o, a, b: g, lambda g, o, a, b: g))


def leaf(value: float):
    t = _new_tensor(value)
    t._role = TRACKED_LEAF
    return t


def test_core_differentiates_python_floats():
    x, y = leaf(0.7), leaf(1.3)
    with tp.record() as t:
        z = apply(ADD, (apply(MUL, (x, y)), apply(SIN, (x,))))
    assert isinstance(z.array, float) and len(t) == 3
    z.backward()
    assert isinstance(x.grad.array, float)
    assert math.isclose(x.grad.array, 1.3 + math.cos(0.7))
    assert math.isclose(y.grad.array, 0.7)


def test_core_reuses_a_value_and_accumulates():
    x = leaf(2.0)
    with tp.record():
        s = apply(MUL, (apply(MUL, (x, x)), x))  # x**3 with x read three times
    s.backward(retain_graph=True)
    assert x.grad.array == 12.0
    s.backward()
    assert x.grad.array == 24.0  # accumulated


def test_a_million_recorded_scalar_ops_backpropagate_without_recursion():
    x = tp.tensor(0.5, requires_grad=True)
    n = 1_000_000
    with tp.record() as t:
        y = x
        for _ in range(n // 2):
            y = y * 1.0
            y = y + 1e-6
    assert len(t) == n
    y.backward()
    assert x.grad.item() == 1.0
    del y
    # nothing can reach the history any more: every row was released (the handle only remembers)
    assert not any(s >= t._first for s in t._store.entries) and len(t) == n


def test_an_input_meta_follows_a_replaced_result_array():
    # Entries read a result input's (shape, dtype) from its producer's VALUE column rather than from
    # the array; replacing the array (Tensor.array = ...) must update that column.
    from tape.tape import META

    x = tp.tensor(np.arange(20.0), requires_grad=True)
    with tp.record():
        y = x * 2.0
        first = y + 1.0
        y.array = y.array.reshape(4, 5).astype(np.float32)
        second = y + 1.0
    entries = y._store.entries
    assert entries[first._slot][META][0] == ((20,), np.dtype(np.float64))
    assert entries[second._slot][META][0] == ((4, 5), np.dtype(np.float32))
