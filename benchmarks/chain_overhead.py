"""Per-op overhead of recording and differentiating a long chain of tiny ops.

What: the cost, in microseconds per recorded op, of building a chain of 10,000 cheap elementwise ops
under `tp.record()` and running `backward()` through it, forward and backward timed together. The
chain cycles through

    y = y * 0.9;  y = y + x;  y = sin(y);  y = y * 0.5

(each line is one recorded op; the mix keeps |y| bounded, so values and gradients stay finite over
any length), starting from a leaf `x`. It runs for two value sizes: 0-d tensors and 100-element
float64 arrays; the array chain ends with a sum (counted as an op) so `backward()` starts from a scalar.

Why: with values this small the arithmetic is nearly free, so the time is the engine's own
bookkeeping per op (Python dispatch, tape rows, reference counting, the reverse sweep). That is the
cost that dominates scalar-heavy and small-array code, and the one to compare against PyTorch's
C++ autograd. A plain NumPy forward pass of the same chain (no differentiation) is the floor.

Before anything is timed, the gradient of each engine is checked: tape's against PyTorch's on the full
chain (rtol 1e-10) when torch is importable, and against central finite differences on a 200-op chain
always. Every timed run includes graph teardown, as it happens when the run's tensors go out of scope.

Run:
    python benchmarks/chain_overhead.py [--ops 10000] [--repeats 7] [--json PATH]

PyTorch is optional: without it its rows are skipped and the ratio column is empty.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

# One thread everywhere: the values are far too small for threading to help, and a thread pool
# spinning up or contending would add noise unrelated to per-op overhead. These must be set before
# NumPy (and torch) load their BLAS/OpenMP runtimes, which read them only once.
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
for _var in THREAD_ENV_VARS:
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

import tape as tp  # noqa: E402

CYCLE_LENGTH = 4  # ops per cycle of the chain, see `chain`
ARRAY_SIZE = 100
FINITE_DIFFERENCE_OPS = 200
FINITE_DIFFERENCE_EPS = 1e-6


def chain(x, n_ops: int, sin: Callable):
    """`n_ops` cheap ops on `x`, one per iteration; the same code serves tape, torch and NumPy values."""
    y = x
    for k in range(n_ops):
        phase = k % CYCLE_LENGTH
        if phase == 0:
            y = y * 0.9
        elif phase == 1:
            y = y + x  # re-reads the leaf, so every cycle adds a gradient contribution to x
        elif phase == 2:
            y = sin(y)
        else:
            y = y * 0.5
    return y


def recorded_op_count(n_ops: int, start_values: np.ndarray) -> int:
    """Ops a run records: the chain, plus the final sum for array values."""
    return n_ops + (1 if start_values.ndim else 0)


@dataclass(frozen=True)
class Engine:
    name: str
    make_leaf: Callable[[np.ndarray], object]  # the start values as this engine's input
    sin: Callable
    recording: Callable[[], contextlib.AbstractContextManager]
    gradient_of: Callable[[object], np.ndarray] | None  # None: forward only, nothing to differentiate


def tape_engine() -> Engine:
    return Engine(
        name="tape",
        make_leaf=lambda values: tp.tensor(values, requires_grad=True),
        sin=tp.sin,
        recording=tp.record,
        gradient_of=lambda leaf: leaf.grad.numpy(),
    )


def torch_engine(torch) -> Engine:
    return Engine(
        name="pytorch",
        make_leaf=lambda values: torch.tensor(values, dtype=torch.float64, requires_grad=True),
        sin=torch.sin,
        recording=contextlib.nullcontext,  # torch records whenever an input requires grad
        gradient_of=lambda leaf: leaf.grad.numpy(),
    )


def numpy_engine() -> Engine:
    return Engine(
        name="numpy (forward only)",
        make_leaf=np.array,
        sin=np.sin,
        recording=contextlib.nullcontext,
        gradient_of=None,
    )


def forward_backward(engine: Engine, start_values: np.ndarray, n_ops: int) -> np.ndarray | None:
    """One run: the chain (and final sum), then backward; returns d(result)/dx, or None if forward only."""
    x = engine.make_leaf(start_values)
    with engine.recording():
        y = chain(x, n_ops, engine.sin)
        if start_values.ndim:
            y = y.sum()
    if engine.gradient_of is None:
        return None
    y.backward()
    return engine.gradient_of(x)


def finite_difference_gradient(start_values: np.ndarray, n_ops: int) -> np.ndarray:
    """Central differences of the plain NumPy chain (float64), one coordinate of x at a time."""

    def value(values):
        y = chain(values, n_ops, np.sin)
        return float(y.sum()) if values.ndim else float(y)

    flat = start_values.astype(np.float64).ravel()
    gradient = np.empty_like(flat)
    for i in range(flat.size):
        step = np.zeros_like(flat)
        step[i] = FINITE_DIFFERENCE_EPS
        plus = value((flat + step).reshape(start_values.shape))
        minus = value((flat - step).reshape(start_values.shape))
        gradient[i] = (plus - minus) / (2 * FINITE_DIFFERENCE_EPS)
    return gradient.reshape(start_values.shape)


def check_gradients(start_values: np.ndarray, n_ops: int, torch) -> list[str]:
    """Assert that tape's gradient is right before timing it; returns what was checked, for the report."""
    checked = []
    # The benchmark claims to count recorded ops exactly: make sure the tape agrees.
    x = tp.tensor(start_values, requires_grad=True)
    with tp.record() as recorded:
        y = chain(x, FINITE_DIFFERENCE_OPS, tp.sin)
        if start_values.ndim:
            y = y.sum()
        assert len(recorded) == recorded_op_count(FINITE_DIFFERENCE_OPS, start_values), len(recorded)
    del x, y

    tape_short = forward_backward(tape_engine(), start_values, FINITE_DIFFERENCE_OPS)
    reference = finite_difference_gradient(start_values, FINITE_DIFFERENCE_OPS)
    # Central differences are good to about eps**2 (truncation) + 1e-16 / eps (rounding): ~3e-10 seen here.
    assert np.allclose(tape_short, reference, rtol=1e-7, atol=1e-9), (tape_short, reference)
    checked.append(f"tape == finite differences ({FINITE_DIFFERENCE_OPS} ops, rtol 1e-7)")

    if torch is not None:
        tape_full = forward_backward(tape_engine(), start_values, n_ops)
        torch_full = forward_backward(torch_engine(torch), start_values, n_ops)
        # Same ops in the same order in float64: only the summation order of x's contributions may differ.
        assert np.allclose(tape_full, torch_full, rtol=1e-10, atol=0), (tape_full, torch_full)
        checked.append(f"tape == pytorch ({n_ops} ops, rtol 1e-10)")
    return checked


def run_seconds(engine: Engine, start_values: np.ndarray, n_ops: int, repeats: int) -> list[float]:
    """Wall time of each of `repeats` runs, after one warm-up run (first-call caches, allocator)."""
    forward_backward(engine, start_values, n_ops)
    # The garbage collector stays on: it runs during real use too, and tape allocates Python
    # objects per op where PyTorch allocates C++ ones, so turning it off would flatter tape.
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        forward_backward(engine, start_values, n_ops)
        times.append(time.perf_counter() - start)
    return times


def load_torch():
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def cpu_name() -> str:
    # platform.processor() is often empty or just "x86_64" on Linux; /proc/cpuinfo names the model.
    name = platform.processor()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return name or platform.machine()


def machine_info(torch) -> dict:
    return {
        "cpu": cpu_name(),
        "platform.processor": platform.processor(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "numpy": np.__version__,
        "tape": tp.__version__,
        "torch": torch.__version__ if torch is not None else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "thread_env": {var: os.environ.get(var) for var in THREAD_ENV_VARS},
    }


def markdown_table(results: list[dict]) -> str:
    lines = ["| engine | value size | µs/op (median) | ratio to PyTorch |", "|---|---|---:|---:|"]
    for row in results:
        ratio = f"{row['ratio_to_pytorch']:.2f}×" if row["ratio_to_pytorch"] is not None else "—"
        lines.append(f"| {row['engine']} | {row['value_size']} | {row['us_per_op']:.3f} | {ratio} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ops", type=int, default=10_000, help="ops in the chain (default 10000)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case; the median is reported")
    parser.add_argument("--json", metavar="PATH", help="also write the machine and the results here")
    args = parser.parse_args()

    torch = load_torch()
    machine = machine_info(torch)
    print("Machine:")
    for key, value in machine.items():
        print(f"  {key}: {value}")

    rng = np.random.default_rng(0)
    value_cases = {"0-d": np.array(0.3), f"{ARRAY_SIZE} float64": rng.standard_normal(ARRAY_SIZE)}
    engines = [tape_engine()] + ([torch_engine(torch)] if torch is not None else []) + [numpy_engine()]

    print("\nChecks (before timing):")
    checks = {}
    for size_name, start_values in value_cases.items():
        checks[size_name] = check_gradients(start_values, args.ops, torch)
        for check in checks[size_name]:
            print(f"  {size_name}: {check}")
    if torch is None:
        print("  torch not importable: PyTorch rows skipped")

    print(f"\nChain of {args.ops} ops, median of {args.repeats} runs after one warm-up:\n")
    results = []
    for size_name, start_values in value_cases.items():
        n_recorded = recorded_op_count(args.ops, start_values)
        seconds = {engine.name: run_seconds(engine, start_values, args.ops, args.repeats) for engine in engines}
        us_per_op = {name: statistics.median(times) / n_recorded * 1e6 for name, times in seconds.items()}
        for name, value in us_per_op.items():
            results.append(
                {
                    "engine": name,
                    "value_size": size_name,
                    "recorded_ops": n_recorded,
                    "us_per_op": value,
                    "ratio_to_pytorch": value / us_per_op["pytorch"] if "pytorch" in us_per_op else None,
                    # Every run, so that a reader can judge the spread (shared machines are noisy).
                    "run_seconds": seconds[name],
                }
            )
    print(markdown_table(results))

    if args.json:
        report = {
            "benchmark": "chain_overhead",
            "ops": args.ops,
            "repeats": args.repeats,
            "machine": machine,
            "checks": checks,
            "results": results,
        }
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
        print(f"\nWrote {args.json}")


if __name__ == "__main__":
    main()
