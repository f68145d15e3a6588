"""How fast W2 could be in pure Python: the least any eager tape must do per op, against tape and PyTorch.

What: W2's chain (benchmarks/workloads.py `small_array_chain`: y*0.9, y+x, tanh, exp, sin on 100
float64, then a sum) recorded and differentiated three ways in one process, in µs per recorded op:

- *minimal*: a tape with nothing but the work itself: one NumPy call, one two-slot object and one tuple
  row per op forward, one rule per row backward, hard-wired to this chain (no dispatch, no shapes or
  dtypes, no memory release, no in-place checks, no threads);
- *tape*: `tp.record()` and `backward()`;
- *PyTorch*: eager autograd (if importable).

Why: issue 11 asks tape's eager W2 for 0.5x PyTorch. The minimal tape is a floor for the design of one
Python object and one row per op: what is left between it and tape is what tape's generality costs.

Before timing, the minimal tape's gradient is checked against tape's (rtol 1e-12).

With `--parts`, it splits tape's op instead, in µs per op: the whole pass; the forward alone; the
forward with the store's appends replaced by a stub that makes a constant Tensor (no entry, no
history to release: what a free append and release would leave); and NumPy's forward calls alone.
The stubbed forward computes the same values; nothing is differentiated through it.

Run:
    python benchmarks/w2_floor.py [--ops 1000] [--repeats 15] [--rounds 3] [--parts]
"""

from __future__ import annotations

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as a script: make `benchmarks` importable as a package
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import tape as tp  # noqa: E402
from benchmarks import workloads  # noqa: E402

MUL, ADD, TANH, EXP, SIN = range(5)


class _Value:
    __slots__ = ("a", "slot")

    def __init__(self, a, slot):
        self.a = a
        self.slot = slot


def minimal_gradient(x: np.ndarray, ops: int) -> np.ndarray:
    """d sum(chain(x)) / dx with the least work per op: the floor (see the module docstring)."""
    rows = []
    push = rows.append
    y = _Value(x, -1)
    for _ in range(ops // 5):
        v = y.a * workloads.SMALL_CHAIN_FACTOR
        push((MUL, None))
        y = _Value(v, len(rows))
        v = y.a + x
        push((ADD, None))
        y = _Value(v, len(rows))
        v = np.tanh(y.a)
        push((TANH, v))
        y = _Value(v, len(rows))
        v = np.exp(y.a)
        push((EXP, v))
        y = _Value(v, len(rows))
        s = y.a
        v = np.sin(s)
        push((SIN, s))
        y = _Value(v, len(rows))
    y.a.sum()
    g = np.ones_like(y.a)
    gx = np.zeros_like(x)
    for op, saved in reversed(rows):
        if op == MUL:
            g = g * workloads.SMALL_CHAIN_FACTOR
        elif op == ADD:
            gx += g
        elif op == TANH:
            g = g * (1 - saved * saved)
        elif op == EXP:
            g = g * saved
        else:
            g = g * np.cos(saved)
    return gx + g


def _median_us_per_op(run, ops: int, repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6 / (ops + 1)


def parts(x: np.ndarray, ops: int, repeats: int) -> dict:
    """µs per op of tape's pass, its forward, its forward without appends, and NumPy's forward."""
    from tape.tape import Store
    from tape.tensor import CONSTANT, Tensor

    leaf = tp.tensor(x, requires_grad=True)

    def forward():
        with tp.record():
            return workloads.small_array_chain(tp, leaf, ops)

    def whole():
        leaf.grad = None
        forward().backward()

    def constant(value):
        t = object.__new__(Tensor)
        t._a, t._slot, t._store, t._role, t.grad = value, -1, None, CONSTANT, None
        return t

    def numpy_forward():
        y = x
        for k in range(ops):
            op = workloads.SMALL_CHAIN_CYCLE[k % len(workloads.SMALL_CHAIN_CYCLE)]
            y = y * workloads.SMALL_CHAIN_FACTOR if op == "mul" else y + x if op == "add" else getattr(np, op)(y)
        return y.sum()

    times = {"pass": _median_us_per_op(whole, ops, repeats), "forward": _median_us_per_op(forward, ops, repeats)}
    append1, append2 = Store.append1, Store.append2
    Store.append1 = lambda self, op, a, x, out, params=None, src=None: constant(out)
    Store.append2 = lambda self, op, a, b, x, y, out, params=None, src=None: constant(out)
    try:
        times["forward, no append"] = _median_us_per_op(forward, ops, repeats)
    finally:
        Store.append1, Store.append2 = append1, append2
    times["NumPy forward"] = _median_us_per_op(numpy_forward, ops, repeats)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000, help="chain length, a multiple of 5 (default 1000)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per round (default 15)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each timing every engine (default 3)")
    parser.add_argument("--parts", action="store_true", help="split tape's op into its parts instead")
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal(100)
    if args.parts:
        for r in range(args.rounds):
            print(f"round {r + 1}: " + "  ".join(f"{k} {t:.2f}" for k, t in parts(x, args.ops, args.repeats).items()))
        return
    leaf = tp.tensor(x, requires_grad=True)

    def tape_run():
        leaf.grad = None
        with tp.record():
            total = workloads.small_array_chain(tp, leaf, args.ops)
        total.backward()

    tape_run()
    np.testing.assert_allclose(minimal_gradient(x, args.ops), leaf.grad.array, rtol=1e-12)
    engines = {"minimal": lambda: minimal_gradient(x, args.ops), "tape": tape_run}
    try:
        import torch

        torch.set_num_threads(1)
        xt = torch.tensor(x, requires_grad=True)

        def torch_run():
            xt.grad = None
            workloads.small_array_chain(torch, xt, args.ops).backward()

        engines["PyTorch"] = torch_run
    except ImportError:
        pass
    for r in range(args.rounds):
        times = {name: _median_us_per_op(run, args.ops, args.repeats) for name, run in engines.items()}
        ratios = "  ".join(
            f"{name} {t:.2f} µs/op" + (f" ({t / times['PyTorch']:.2f}x)" if "PyTorch" in times else "")
            for name, t in times.items()
        )
        print(f"round {r + 1}: {ratios}")


if __name__ == "__main__":
    main()
