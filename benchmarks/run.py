"""Compare tape with PyTorch, HIPS autograd, JAX and hand-written NumPy on the six workloads.

What: for each workload (benchmarks/workloads.py) and each installed engine (benchmarks/engines/), check
the engine's value and gradients against the hand-written NumPy reference, then time forward + backward
(median of several runs) and measure peak memory. Writes to benchmarks/results/:
results.md (the table, the machine, tape against its targets), results.png (a bar chart) and
results.json (everything, every run's time included).

How: one fresh process per (workload, engine), engines of one workload back to back, and the whole
sequence gone through `--rounds` times (3 by default), each round doing its share of the timed runs;
a row's median is over the runs of all rounds. A fresh process keeps one engine's imports, thread pools,
JIT caches and allocator state out of another's timings; measuring a workload's engines one right after
the other, round after round, spreads the bursts of load of a shared machine over all engines alike,
so they stay out of the ratios between engines, which are what the table is for. Round k's processes
all run with PYTHONHASHSEED=k: a process's speed depends on its hash seed (tape's W6 took 233-252 µs a
call with seeds 2-4 and 6-8, 344-408 µs with 1 and 5, uniformly over all its Python code), so a random
seed per process made a row swing by up to 40% between runs; fixed seeds, the same for every engine,
make runs repeatable. Every process runs with one thread: the
OpenMP/BLAS/Numba variables below are set before anything loads NumPy, torch is told
`set_num_threads(1)`, XLA gets its thread flags, and (on Linux) the worker is bound to one CPU before
any engine loads, since not every pool obeys its variable. They are printed, and written into the results.

Run:
    python benchmarks/run.py                      # every workload at full size (what `make bench` runs)
    python benchmarks/run.py --quick              # small sizes, few runs: a smoke test of the harness
    python benchmarks/run.py --engines tape,torch --workloads W1,W3
    python benchmarks/run.py --profile tape --workloads W1,W2   # cProfile, no timing

An engine whose library is not installed gets a "not installed" line and no rows; the peers come from
the `bench` extra (`pip install -e ".[bench]"`), never from the test dependencies.
"""

from __future__ import annotations

import os
import sys

# One thread per engine, set before anything imports NumPy (BLAS and OpenMP read these once, at load).
PINNED_THREAD_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "VECLIB_MAXIMUM_THREADS": "1",
    "NUMEXPR_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
    "XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1",
    "JAX_PLATFORMS": "cpu",  # no probing for accelerators: this compares CPU engines
}
os.environ.update(PINNED_THREAD_ENV)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as a script: make `benchmarks` importable as a package
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

from benchmarks import engines, report, workloads  # noqa: E402

DEFAULT_OUTPUT_DIR = os.path.join(REPO_ROOT, "benchmarks", "results")
WORKER_TIMEOUT_S = 1800  # one (workload, engine) process; a hang must not stall the whole run


# -- the worker: one engine, one workload, in its own process --------------------------------------


def pin_to_one_cpu() -> str:
    """Bind this process to one CPU, before any engine loads its thread pools: the thread variables do
    not reach every pool (jax 0.10's XLA CPU runtime ran W4 on two threads despite XLA_FLAGS: 26 ms of
    CPU in 14 ms of wall clock), an affinity mask does. Returns what was set, for the report."""
    if not hasattr(os, "sched_setaffinity"):
        return "not available on this platform"
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return f"CPU {cpu}"


def worker(engine_name: str, workload_key: str, size: str, repeats: int, min_seconds: float, memory: bool) -> dict:
    """Measure one engine on one workload (all its rows); returns what the parent collects."""
    from benchmarks import harness

    affinity = pin_to_one_cpu()
    try:
        engine = engines.load(engine_name)
    except ImportError as missing:
        return {"engine": engine_name, "installed": False, "message": f"not installed ({missing})", "rows": []}
    threads = {**{k: os.environ.get(k) for k in PINNED_THREAD_ENV}, **engine.configure_threads()}
    threads["affinity"] = affinity
    rows = harness.measure(engine, workload_key, size, repeats, min_seconds, memory=memory)
    for row in rows:
        row["size"] = size
        if row["status"] == "ok":
            summary = f"{row['median']:.4g} {row['unit']}"
        else:
            summary = f"{row['status']}: {row['message']}"
        name = engine_name + (f" ({row['variant']})" if row["variant"] else "")
        print(f"  {workload_key:8} {name:28} {summary}", flush=True)
    return {
        "engine": engine_name,
        "installed": True,
        "label": engine.LABEL,
        "versions": engine.versions(),
        "threads": threads,
        "rows": rows,
    }


def run_worker_process(engine_name: str, workload_key: str, args, memory: bool, hash_seed: int = 1) -> dict:
    """Start `run.py --worker` for one (engine, workload) and read back its JSON.

    With several rounds, each process does its share of the timed runs (`--repeats` and `--min-time`
    divided by the number of rounds); memory is measured in the first round only. The process runs
    with PYTHONHASHSEED=`hash_seed` (the round's number, the same for every engine).
    """
    repeats = -(-args.repeats // args.rounds)
    min_time = args.min_time / args.rounds
    with tempfile.TemporaryDirectory() as scratch:
        output = os.path.join(scratch, "worker.json")
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "--worker",
            engine_name,
            "--workloads",
            workload_key,
            "--size",
            args.size,
            "--repeats",
            str(repeats),
            "--min-time",
            str(min_time),
            "--worker-output",
            output,
        ] + (["--no-memory"] if args.no_memory or not memory else [])
        try:
            env = {**os.environ, **PINNED_THREAD_ENV, "PYTHONHASHSEED": str(hash_seed)}
            completed = subprocess.run(command, env=env, timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            return _worker_failed(engine_name, workload_key, f"timed out after {WORKER_TIMEOUT_S} s")
        if completed.returncode != 0 or not os.path.exists(output):
            return _worker_failed(engine_name, workload_key, f"worker exited with status {completed.returncode}")
        with open(output) as result:
            return json.load(result)


def _worker_failed(engine_name, workload_key, message):
    print(f"  {workload_key:8} {engine_name:28} error: {message}", flush=True)
    row = {"workload": workload_key, "engine": engine_name, "variant": "", "how": "", "status": "error"}
    return {"engine": engine_name, "installed": True, "rows": [{**row, "message": message}]}


def profile(args) -> int:
    """Where an engine spends its time on each selected workload: cProfile over `--repeats` runs.

    For finding what to speed up, not for the table: the profiler's own overhead per Python call
    inflates engines that make many calls (tape, autograd) far more than those that do not.
    """
    import cProfile
    import pstats

    from benchmarks import harness

    engine = engines.load(args.profile)
    engine.configure_threads()
    for workload in workloads.select(args.workloads):
        for implementation in engine.IMPLEMENTATIONS.get(workload.key, ()):
            name = f"{args.profile}" + (f" ({implementation.variant})" if implementation.variant else "")
            print(f"\n=== {workload.key} {workload.title}, {name}, {args.size} size, {args.repeats} runs ===")
            try:
                inputs = harness.check_agreement(workload.key, implementation, args.size)
            except (engines.NotAvailable, harness.AgreementError) as reason:
                print(f"not profiled: {reason}")
                continue
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(args.repeats):
                implementation.run(inputs)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile_lines)
    return 0


def merge_rounds(rounds: list[list[dict]]) -> list[dict]:
    """One row per (workload, engine, variant): every round's timed runs pooled, their median reported.

    A row that failed or was n/a in any round keeps that status and message: a result that did not pass
    its check once is not reported from the rounds where it did. Each round's own median is kept too
    (`round_medians_s`), so that a reader can judge the drift between rounds.
    """
    merged: dict[tuple, dict] = {}
    for rows in rounds:
        for row in rows:
            key = (row["workload"], row["engine"], row.get("variant", ""))
            kept = merged.get(key)
            if kept is None:
                merged[key] = {**row, "round_medians_s": [row["median_s"]] if row["status"] == "ok" else []}
            elif kept["status"] == "ok" and row["status"] != "ok":
                merged[key] = {**row, "message": row["message"] + " (in a later round)"}
            elif kept["status"] == "ok":
                unit_per_second = kept["median"] / kept["median_s"]
                kept["times_s"] = kept["times_s"] + row["times_s"]
                kept["median_s"] = statistics.median(kept["times_s"])
                kept["median"] = kept["median_s"] * unit_per_second
                kept["round_medians_s"].append(row["median_s"])
    return list(merged.values())


# -- the machine ------------------------------------------------------------------------------------


def cpu_name() -> str:
    """The CPU model: platform.processor() is often empty or just "x86_64" on Linux."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_total_gib() -> float | None:
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def tape_revision() -> str | None:
    """The commit tape was measured at, and whether tape/ had uncommitted changes then."""
    try:
        commit = subprocess.run(
            ["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", REPO_ROOT, "status", "--porcelain", "--", "tape"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (" with uncommitted changes in tape/" if dirty else "")


def machine_info() -> dict:
    import numpy as np

    return {
        "tape_revision": tape_revision(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory_total_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


# -- the command ------------------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few runs (a smoke test)")
    parser.add_argument("--engines", help=f"comma-separated subset of {','.join(engines.ENGINE_NAMES)}")
    parser.add_argument("--workloads", help=f"comma-separated subset of {','.join(workloads.WORKLOADS)}")
    parser.add_argument("--size", choices=workloads.SIZES, help="problem sizes (default: full, quick with --quick)")
    parser.add_argument("--repeats", type=int, help="at least this many timed runs per row (default 9, 3 quick)")
    parser.add_argument("--min-time", type=float, help="...and at least this many seconds of them (default 2, 0.2)")
    parser.add_argument(
        "--rounds",
        type=int,
        help="go through all (workload, engine) processes this many times, splitting the runs between rounds, "
        "so that a burst of load on a shared machine hits every engine alike (default 3, 1 quick)",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the two memory-measuring runs")
    parser.add_argument("--no-chart", action="store_true", help="skip results.png (no matplotlib needed)")
    parser.add_argument("--output-dir", default=DEFAULT_OUTPUT_DIR, help="where results.{md,png,json} go")
    parser.add_argument(
        "--profile",
        metavar="ENGINE",
        help="instead of timing: cProfile ENGINE on the selected workloads (after the agreement check), in-process",
    )
    parser.add_argument("--profile-lines", type=int, default=15, help="lines of the profile to print (default 15)")
    parser.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: write results.md and results.png again from a results.json",
    )
    parser.add_argument("--worker", metavar="ENGINE", help=argparse.SUPPRESS)
    parser.add_argument("--worker-output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.size = args.size or ("quick" if args.quick else "full")
    args.repeats = args.repeats or (3 if args.quick else 9)
    args.rounds = max(1, args.rounds or (1 if args.quick or args.profile else 3))
    args.min_time = args.min_time if args.min_time is not None else (0.2 if args.quick else 2.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        try:
            result = worker(args.worker, args.workloads, args.size, args.repeats, args.min_time, not args.no_memory)
        except Exception:
            traceback.print_exc()
            return 1
        with open(args.worker_output, "w") as output:
            json.dump(result, output)
        return 0

    if args.profile:
        return profile(args)
    if args.from_json:
        with open(args.from_json) as saved:
            results = json.load(saved)
        for path in report.write(results, args.output_dir, chart=not args.no_chart):
            print(f"Wrote {os.path.relpath(path)}")
        return 0

    selected_engines = engines.select(args.engines)
    selected_workloads = workloads.select(args.workloads)
    machine = machine_info()
    print("Machine:")
    for key, value in machine.items():
        print(f"  {key}: {value}")
    print("Threads (every engine's process):")
    for key, value in PINNED_THREAD_ENV.items():
        print(f"  {key}={value}")
    print("  torch.set_num_threads(1), torch.set_num_interop_threads(1)")
    print(
        f"\nSizes: {args.size}; per row: agreement check, 2 warm-up runs, then >= {args.repeats} timed runs "
        f"and >= {args.min_time:g} s of them, split over {args.rounds} round(s); median of all reported.\n"
    )

    started = time.time()
    engine_info: dict[str, dict] = {}
    rounds: list[list[dict]] = []
    for round_index in range(args.rounds):
        if args.rounds > 1:
            print(f"Round {round_index + 1} of {args.rounds}", flush=True)
        rows: list[dict] = []
        for workload in selected_workloads:
            print(f"{workload.key} {workload.title}: {workload.description}", flush=True)
            for engine_name in selected_engines:
                result = run_worker_process(
                    engine_name, workload.key, args, memory=round_index == 0, hash_seed=round_index + 1
                )
                if not result["installed"]:
                    if engine_name not in engine_info:
                        print(f"  {engine_name}: {result['message']}", flush=True)
                    engine_info[engine_name] = {"installed": False, "message": result["message"]}
                    continue
                if "label" in result:
                    engine_info[engine_name] = {
                        "installed": True,
                        **{k: result[k] for k in ("label", "versions", "threads")},
                    }
                rows.extend(result["rows"])
        rounds.append(rows)
    rows = merge_rounds(rounds)

    results = {
        "command": "python benchmarks/run.py" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:])),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "duration_s": round(time.time() - started, 1),
        "size": args.size,
        "repeats": args.repeats,
        "min_time_s": args.min_time,
        "rounds": args.rounds,
        "hash_seeds": list(range(1, args.rounds + 1)),
        "machine": machine,
        "thread_env": PINNED_THREAD_ENV,
        "engines": engine_info,
        "rows": rows,
    }
    os.makedirs(args.output_dir, exist_ok=True)
    written = report.write(results, args.output_dir, chart=not args.no_chart)
    print()
    print(report.markdown_table(results))
    print()
    print(report.targets_table(results))
    print()
    for path in written:
        print(f"Wrote {os.path.relpath(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
