"""The cost of data parallelism: `allreduce_grads` on the W4 MLP's gradients, beside W4's compute.

    mpiexec -n 2 python benchmarks/allreduce.py          # the numbers in the README
    python benchmarks/allreduce.py --rounds 30            # one process: compute, and a world of one

Every rank builds W4 at its full size (float32, batch 256, 784-1024-1024-10) and runs one tape
forward and backward pass for real gradients. Then:

- compute: rank 0 alone times W4's step (forward and backward, tape, one thread) while the other
  ranks sleep;
- `allreduce_grads(params, op="mean")` on those gradients, every rank together after a barrier,
  as it is called in training (packing into one float32 buffer, the argument check, one Allreduce,
  the division, unpacking); the time reported is the slowest rank's median;
- the same with `check=False`, and a bare `MPI.Allreduce` of a float32 buffer of the same size, to
  show what the packing and the check cost on top of MPI itself.

Last, the ring-allreduce cost model: each of N ranks sends and receives 2(N-1)/N of the gradient
bytes, so a step's allreduce takes at least 2(N-1)/N x bytes / bandwidth on a network of that
bandwidth (per-message latency, 2(N-1) x alpha, comes on top).
"""

from __future__ import annotations

import os
import sys

# One thread per process, set before NumPy loads its BLAS: the ranks share the machine's cores.
for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:  # run as a script: make `benchmarks` importable as a package
    sys.path.insert(0, REPO_ROOT)

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

from benchmarks import workloads  # noqa: E402
from benchmarks.engines import tape_engine  # noqa: E402
from tape import distributed as dist  # noqa: E402

NETWORKS_GBIT = (10, 100)
MACHINES = (8, 64)


def ring_seconds(n_ranks: int, nbytes: int, gbit_per_s: float) -> float:
    """The bandwidth term of a ring allreduce: 2(N-1)/N x bytes / bandwidth."""
    return 2 * (n_ranks - 1) / n_ranks * nbytes / (gbit_per_s * 1e9 / 8)


def timed(calls: dict, rounds: int, comm, before=None, warmup: int = 3) -> dict:
    """Seconds per call of each function, each call started together on every rank (a barrier before it).

    The functions take turns within each round, so that the machine's load, which other users change,
    weighs on all of them alike.
    """
    times = {name: [] for name in calls}
    for i in range(warmup + rounds):
        for name, fn in calls.items():
            if before is not None:
                before()
            comm.Barrier()
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            if i >= warmup:
                times[name].append(elapsed)
    return times


def slowest_median(times: list[float], comm) -> float:
    """The largest of the ranks' medians: a collective finishes when its slowest rank does."""
    mine = np.array([statistics.median(times)])
    worst = np.empty(1)
    comm.Allreduce(mine, worst, op=MPI.MAX)
    return float(worst[0])


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30, help="timed calls of each kind (median reported)")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()

    size_spec = workloads.W4.sizes["full"]
    problem = workloads.mlp_problem(size_spec["batch"], size_spec["layers"], np.random.default_rng(workloads.SEED))
    inputs = tape_engine.mlp_setup(problem)
    params = inputs[3]
    n_params = sum(p.size for p in params)
    nbytes = sum(p.array.nbytes for p in params)

    compute = []
    if rank == 0:
        for i in range(3 + args.rounds):
            start = time.perf_counter()
            tape_engine.mlp_run(inputs)
            if i >= 3:
                compute.append(time.perf_counter() - start)
    # The others wait without spinning (MPICH's blocking Barrier polls, which would take a core from rank 0).
    request = comm.Ibarrier()
    while not request.Test():
        time.sleep(0.005)
    tape_engine.mlp_run(inputs)  # every rank: real gradients in .grad, kept from here on

    flat = np.ones(n_params, dtype=np.float32)
    gradients = [p.grad.numpy() for p in params]

    def restore():  # outside the timer: the gradients of a fresh backward pass, before each call
        for p, g in zip(params, gradients):
            p.grad.array[...] = g

    calls = {
        "allreduce_grads": lambda: dist.allreduce_grads(params, op="mean"),
        "allreduce_grads, check=False": lambda: dist.allreduce_grads(params, op="mean", check=False),
        "bare MPI Allreduce": lambda: comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM),
    }
    results = {name: slowest_median(t, comm) for name, t in timed(calls, args.rounds, comm, before=restore).items()}
    if rank != 0:
        return

    step = statistics.median(compute)
    print(f"machine: {_cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"MPI: {MPI.Get_library_version().splitlines()[0].strip()}, mpi4py {__import__('mpi4py').__version__}")
    print(f"ranks: {size}; W4 parameters: {n_params:,} float32 ({nbytes / 1e6:.2f} MB); medians of {args.rounds} runs")
    print(f"compute, W4 step (forward + backward, tape, 1 rank): {step * 1e3:8.2f} ms")
    for name, seconds in results.items():
        # Bus bandwidth (NCCL's term): the bytes the ring moves per rank, over the time it took.
        rate = f"; ring bus bandwidth {ring_seconds(size, nbytes, 8) / seconds:.2f} GB/s" if size > 1 else ""
        print(f"{name + ':':46s} {seconds * 1e3:8.2f} ms  ({seconds / step:.1%} of compute{rate})")
    print(f"\nring model, 2(N-1)/N x {nbytes / 1e6:.2f} MB / bandwidth (latency not included):")
    print("| machines | " + " | ".join(f"{g} Gb/s" for g in NETWORKS_GBIT) + " |")
    print("|---:|" + "---:|" * len(NETWORKS_GBIT))
    for n in MACHINES:
        cells = " | ".join(f"{ring_seconds(n, nbytes, g) * 1e3:.2f} ms" for g in NETWORKS_GBIT)
        print(f"| {n} | {cells} |")


if __name__ == "__main__":
    main()
