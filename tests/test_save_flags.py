"""What an entry saves when Store.append1/append2 read the row's save flags inline (registry._save_flags)
instead of calling its saver: the same values, by identity, as `op.saved`, for every one- and
two-input row and every set of tracked inputs; and gradients through rows of each kind of flag."""

from __future__ import annotations

import numpy as np
import pytest

import tape as tp
from tape.ops.registry import OPS, GroupOp, samples_of
from tape.tape import SAVED, state
from tape.testing import check_grads


def _plain_sample(op):
    """The first generated sample of an elementwise row whose public function takes its inputs as they
    are (other rows' functions may turn a 0-d input into an array first, so `_a` is not what they read)."""
    if op.code not in GroupOp.ELEMENTWISE or op.nin not in (1, 2) or op.vjp is None or op.function is None:
        return None
    try:
        sample = samples_of(op, np.random.default_rng(0))[0]
    except ValueError:  # rows outside the elementwise families without samples: tested on their own
        return None
    return sample.arrays if sample.call is None and len(sample.arrays) == op.nin else None


ROWS = [op for op in OPS.values() if _plain_sample(op) is not None]


def _newest_entry():
    return next(reversed(state().store.entries.values()))


@pytest.mark.parametrize("op", ROWS, ids=lambda op: op.name)
def test_entry_saves_what_the_row_saver_returns(op):
    arrays = _plain_sample(op)
    n = len(arrays)
    for mask in range(1, 1 << n):  # which inputs are tracked
        args = [tp.tensor(a, requires_grad=bool(mask >> i & 1)) for i, a in enumerate(arrays)]
        raw = tuple(t._a for t in args)  # the values the op reads (a 0-d float64 one is a NumPy scalar)
        with tp.record():
            out = op.function(*args)
            saved = _newest_entry()[SAVED]
        ins = tuple(0 if mask >> i & 1 else -1 for i in range(n))
        expected = op.saved(out._a, raw, ins)
        if expected is None:
            assert saved is None, (op.name, mask)
            continue
        assert saved is not None and len(saved) == len(expected), (op.name, mask, saved)
        for got, want in zip(saved, expected):
            assert got is want, (op.name, mask)  # the same objects: the output, the inputs' values, or None


def test_flags_cover_each_kind_of_saver():
    codes = {op.save1 for op in ROWS if op.nin == 1}
    assert {0, 1, 2} <= codes  # nothing (neg), the output (exp), the input (sin)
    mul = next(op for op in OPS.values() if op.name == "mul")
    # mul's x-rule reads y and its y-rule reads x: only what the tracked inputs' rules need
    assert mul.save2[1] == (False, False, True)
    assert mul.save2[2] == (False, True, False)
    assert mul.save2[3] == (False, True, True)


@pytest.mark.parametrize("fn", [tp.exp, tp.sin, tp.negative, tp.tanh])
def test_unary_gradients(fn):
    x = np.random.default_rng(1).uniform(-1, 1, (3, 4))
    check_grads(lambda t: tp.sum(fn(t) * fn(t)), [x])


def test_binary_gradients_with_one_input_constant():
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0.5, 2, (3,)), rng.uniform(0.5, 2, (3,))
    check_grads(lambda a: tp.sum(tp.divide(a, y) * tp.multiply(y, a)), [x])
    check_grads(lambda b: tp.sum(tp.divide(x, b) * tp.power(x, b)), [y])
