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

Run:
    python benchmarks/w2_floor.py [--ops 1000] [--repeats 15] [--rounds 3]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ops", type=int, default=1000, help="chain length, a multiple of 5 (default 1000)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per round (default 15)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each timing every engine (default 3)")
    args = parser.parse_args()
    x = np.random.default_rng(0).standard_normal(100)
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
