"""Time and memory of reverse mode through a 10,000-step loop, with and without checkpointing.

What: the loop of the README's checkpointing example, ``x <- x + 0.01 * tanh(W @ x)`` with a
128 x 128 weight matrix W and a 128-element state, run for 10,000 steps and differentiated
(``loss = sum(x_N)``, gradients with respect to x0 and W), forward and backward timed together:

* tape, recorded plainly (every step's history kept until the backward pass);
* tape, `tp.checkpoint_loop` with snapshots = 10, 20 and 100 (binomial schedule);
* PyTorch, plainly, and with `torch.utils.checkpoint` over 100-step segments, the usual way to
  checkpoint a long loop there (PyTorch has no binomial schedule), in both of its implementations:
  `use_reentrant=False` (the one PyTorch recommends) and `use_reentrant=True`.

Why: checkpointing trades time (re-run steps) for memory (history not kept). The table shows both
sides of the trade, and how the binomial schedule's memory compares with PyTorch's segments.

Memory: every configuration runs in a fresh process, so one cannot inflate another. "peak RSS
growth" is the operating system's high-water mark of the process during the run (reset just before
it) minus the resident size before it: it counts everything, for both engines, at page granularity.
"tracemalloc peak" is the peak of the bytes Python and NumPy allocated during the run: exact, but
PyTorch's allocator does not report to it. Time: the median of `--repeats` runs, after one warm-up.

Before anything is timed, every configuration's gradients are checked against tape's plain loop
(rtol 1e-9), which itself is checked against central finite differences on a short loop.

Run (tape must be importable; PyTorch is optional, its rows are skipped without it):
    python benchmarks/checkpoint_loop.py [--steps 10000] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc

# One thread: the matrix is small, and a BLAS thread pool would add noise, not speed.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"

import numpy as np  # noqa: E402

DIM = 128
SEGMENT = 100  # steps per torch.utils.checkpoint segment
CONFIGS = [
    "tape plain",
    "tape snapshots=10",
    "tape snapshots=20",
    "tape snapshots=100",
    "torch plain",
    "torch segments, use_reentrant=False",
    "torch segments, use_reentrant=True",
]


def problem(seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((DIM, DIM)) * 0.1, rng.standard_normal(DIM)


# ------------------------------------------------------------------------------------------------
# The workloads: each returns (loss value, grad x0, grad W, extra facts).


def run_tape(config, W_np, x_np, n):
    import tape as tp

    W = tp.tensor(W_np, requires_grad=True)
    x0 = tp.tensor(x_np, requires_grad=True)

    def step(x):
        return x + 0.01 * tp.tanh(W @ x)

    stats = tp.CheckpointStats()
    with tp.record():
        if config == "tape plain":
            x = x0
            for _ in range(n):
                x = step(x)
        else:
            snapshots = int(config.split("=")[1])
            x = tp.checkpoint_loop(step, x0, n, snapshots=snapshots, stats=stats)
        loss = tp.sum(x)
    loss.backward()
    extra = {"step_calls": stats.step_calls or n, "peak_snapshots": stats.peak_snapshots}
    return loss.item(), x0.grad.numpy(), W.grad.numpy(), extra


def run_torch(config, W_np, x_np, n):
    import torch
    from torch.utils.checkpoint import checkpoint

    W = torch.tensor(W_np, requires_grad=True)
    x0 = torch.tensor(x_np, requires_grad=True)

    def steps(x, k):
        for _ in range(k):
            x = x + 0.01 * torch.tanh(W @ x)
        return x

    if config == "torch plain":
        x = steps(x0, n)
        calls = n
    else:
        x = x0
        for start in range(0, n, SEGMENT):
            x = checkpoint(steps, x, min(SEGMENT, n - start), use_reentrant=config.endswith("True"))
        calls = 2 * n
    loss = x.sum()
    loss.backward()
    return loss.item(), x0.grad.numpy(), W.grad.numpy(), {"step_calls": calls, "peak_snapshots": -(-n // SEGMENT)}


def run(config, W_np, x_np, n):
    return (run_tape if config.startswith("tape") else run_torch)(config, W_np, x_np, n)


# ------------------------------------------------------------------------------------------------
# One configuration, in its own process.


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark of this process's resident size (Linux >= 4.0)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def worker(config, n, repeats, reference_path):
    W_np, x_np = problem()
    ref = np.load(reference_path)
    # Warm-up on a short loop (imports, numba compilation in checkpoint_schedules), then the check.
    run(config, W_np, x_np, 50)
    before = _rss_bytes()
    reset = _reset_peak_rss()
    value, gx, gW, extra = run(config, W_np, x_np, n)
    rss_growth = _peak_rss_bytes() - before if reset else None
    np.testing.assert_allclose(value, ref["value"], rtol=1e-9)
    np.testing.assert_allclose(gx, ref["gx"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(gW, ref["gW"], rtol=1e-9, atol=1e-12)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run(config, W_np, x_np, n)
        times.append(time.perf_counter() - t0)
    traced = None
    if config.startswith("tape"):
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        run(config, W_np, x_np, n)
        traced = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    return {
        "config": config,
        "seconds": statistics.median(times),
        "peak_rss_growth_bytes": rss_growth,
        "tracemalloc_peak_bytes": traced,
        **extra,
    }


def reference(n, path):
    """tape's plain loop for n steps, after checking tape against finite differences on 20 steps."""
    import tape as tp
    from tape.testing import check_grads

    W_np, x_np = problem()

    def f(x0, W):
        x = x0
        for _ in range(20):
            x = x + 0.01 * tp.tanh(W @ x)
        return tp.sum(x)

    check_grads(f, [x_np, W_np], modes=("rev",))
    value, gx, gW, _ = run_tape("tape plain", W_np, x_np, n)
    np.savez(path, value=value, gx=gx, gW=gW)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--reference", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.repeats, args.reference)))
        return
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        ref_path = os.path.join(tmp, "reference.npz")
        reference(args.steps, ref_path)
        for config in CONFIGS:
            if config.startswith("torch") and torch_version is None:
                print(f"skipping {config}: torch is not importable", file=sys.stderr)
                continue
            cmd = [sys.executable, __file__, "--worker", config, "--steps", str(args.steps)]
            cmd += ["--repeats", str(args.repeats), "--reference", ref_path]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            results.append(json.loads(out.strip().splitlines()[-1]))
            print(f"done: {config}", file=sys.stderr)
    import tape

    machine = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "tape": tape.__version__,
        "torch": torch_version,
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "steps": args.steps,
        "dim": DIM,
        "threads": 1,
    }
    print(_table(results, machine))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine, "results": results}, f, indent=2)


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mb(b):
    return "n/a" if b is None else f"{b / 2**20:.1f}"


def _table(results, machine) -> str:
    plain = next((r for r in results if r["config"] == "tape plain"), None)
    lines = [
        f"{machine['steps']:,} steps, state {machine['dim']}, W {machine['dim']}x{machine['dim']}, float64, "
        f"one thread; {machine['cpu']} ({machine['cores']} cores), Python {machine['python']}, "
        f"NumPy {machine['numpy']}, PyTorch {machine['torch']}",
        "",
        "| configuration | time (s) | vs tape plain | step calls | peak RSS growth (MB) | tracemalloc peak (MB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ratio = f"{r['seconds'] / plain['seconds']:.2f}x" if plain else ""
        lines.append(
            f"| {r['config']} | {r['seconds']:.3f} | {ratio} | {r['step_calls']:,} | "
            f"{_mb(r['peak_rss_growth_bytes'])} | {_mb(r['tracemalloc_peak_bytes'])} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
