"""tape against its targets' baselines in one process, alternating: ratios that survive a noisy machine.

What: for each workload with an eager target (benchmarks/workloads.py: W1, W2, W5 and W6 against
PyTorch, W3 against hand-written NumPy, W4 against its 8 matmuls), tape's eager row and the
target's baseline row are checked against the reference, then run one after the other, pass after
pass, in one process bound to one CPU; each prints the ratio of the two medians. With several
`--repo` checkouts (two commits of tape), fresh processes alternate between them, round after round
(which one goes first alternating too), and each gets the same hash seed as its partner: a ratio
that moves between commits then moved because of the code.

Why: `make bench` times each engine in a process of its own, as the table should be measured, and a
shared machine's load differs between those processes: W3's and W4's ratios moved by 10-20% between
two runs of it half an hour apart, with no change to their code. Here tape and its baseline share
every moment. This is not the table: both engines' imports and allocators share the process, which
costs tape's Python-bound rows (at 4b68923, W2 0.79× and W6 0.91× PyTorch this way, 0.70× and 0.76×
in `make bench`). Use it to compare commits, each against the same baseline, not as a target's ratio.

Run (threads pinned as in run.py; PyTorch from the `bench` extra for the PyTorch baselines):
    python benchmarks/interleaved.py --workloads W3,W4
    python benchmarks/interleaved.py --workloads W2 --repo ../old-checkout --repo . --processes 3
"""

from __future__ import annotations

import os
import sys

THIS_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402


def _baseline(workload_key: str):
    """(the baseline's engine name, its implementation) of the workload's eager target; None if none."""
    from benchmarks import engines, workloads

    for target in workloads.WORKLOADS[workload_key].targets:
        if target.engine == "tape" and not target.variant:
            try:
                engine = engines.load(target.baseline_engine)
            except ImportError:
                return None
            engine.configure_threads()
            for implementation in engine.IMPLEMENTATIONS.get(workload_key, ()):
                if implementation.variant == target.baseline_variant:
                    return target.baseline_engine, implementation
    return None


def ratios(workload_keys, size: str, passes: int) -> dict:
    """{workload: tape's median / its baseline's median}, tape and the baseline alternating."""
    from benchmarks import engines, harness

    tape_engine = engines.load("tape")
    out = {}
    for key in workload_keys:
        baseline = _baseline(key)
        if baseline is None:
            out[key] = None
            continue
        tape_row = next(i for i in tape_engine.IMPLEMENTATIONS[key] if not i.variant)
        rows = (tape_row, baseline[1])
        inputs = [harness.check_agreement(key, row, size) for row in rows]
        times: tuple[list, list] = ([], [])
        for k in range(passes + 2):  # two warm-up passes of each, not timed
            for row, data, spent in zip(rows, inputs, times):
                start = time.perf_counter()
                row.run(data)
                if k >= 2:
                    spent.append(time.perf_counter() - start)
        out[key] = statistics.median(times[0]) / statistics.median(times[1])
    return out


def _child(repo: str, workload_keys, size: str, passes: int, cpu: int) -> dict:
    """In a fresh process: tape from `repo`, the workloads and engines from this checkout."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    sys.path.insert(0, repo)
    import tape  # noqa: F401  (this repo's tape, before `benchmarks` puts THIS_ROOT first)

    sys.path.insert(0, THIS_ROOT)
    return ratios(workload_keys, size, passes)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", default="W1,W2,W3,W4,W5,W6", help="comma-separated (default: all six)")
    parser.add_argument("--size", default="full", choices=("full", "quick", "tiny"))
    parser.add_argument("--passes", type=int, default=15, help="timed passes of each, per process (default 15)")
    parser.add_argument("--processes", type=int, default=3, help="fresh processes per checkout (default 3)")
    parser.add_argument("--repo", action="append", help="a checkout of tape to measure (repeat: alternate them)")
    parser.add_argument("--cpu", type=int, default=(os.cpu_count() or 1) - 1, help="the CPU to bind to")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # internal: the checkout a child measures
    args = parser.parse_args(argv)
    keys = [k.strip().upper() for k in args.workloads.split(",") if k.strip()]
    if args.child:
        print(json.dumps(_child(args.child, keys, args.size, args.passes, args.cpu)))
        return 0
    if THIS_ROOT not in sys.path:  # run as a script: make `benchmarks` importable as a package
        sys.path.insert(0, THIS_ROOT)
    from benchmarks.run import PINNED_THREAD_ENV  # (sets them in this process too; harmless)

    repos = [os.path.abspath(r) for r in (args.repo or [THIS_ROOT])]
    results: dict = {repo: [] for repo in repos}
    for p in range(args.processes):
        for repo in repos if p % 2 == 0 else repos[::-1]:  # neither checkout always runs first
            env = {**os.environ, **PINNED_THREAD_ENV, "PYTHONHASHSEED": str(p + 1)}
            command = [sys.executable, os.path.abspath(__file__), "--child", repo, "--workloads", ",".join(keys)]
            command += ["--size", args.size, "--passes", str(args.passes), "--cpu", str(args.cpu)]
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode:
                print(done.stderr, file=sys.stderr)
                return done.returncode
            results[repo].append(json.loads(done.stdout.splitlines()[-1]))
            line = "  ".join(f"{k} {v:.3f}" if v is not None else f"{k} n/a" for k, v in results[repo][-1].items())
            print(f"process {p + 1}  {repo}: {line}", flush=True)
    for repo in repos:
        medians = {k: statistics.median(r[k] for r in results[repo]) if results[repo][0][k] else None for k in keys}
        print(f"median  {repo}: " + "  ".join(f"{k} {v:.3f}" if v else f"{k} n/a" for k, v in medians.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
