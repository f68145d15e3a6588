"""pytest-benchmark suite: tape alone on every workload, for tracking tape's own speed over time.

    .venv/bin/python -m pytest benchmarks/test_bench_tape.py --benchmark-only
    TAPE_BENCH_SIZE=full .venv/bin/python -m pytest benchmarks/test_bench_tape.py --benchmark-only

Sizes are the "quick" ones by default (moderate: the whole suite runs in about a minute), the issue's
with TAPE_BENCH_SIZE=full. Each benchmark first checks tape's value and gradients against the
hand-written NumPy reference (DESIGN.md principle 12), exactly as the comparison runner does, and
skips a workload whose feature is not implemented yet. For comparisons with other engines use
`python benchmarks/run.py`; this suite is not collected by `make test` (pyproject's testpaths is `tests`).
"""

import os

import pytest

from benchmarks import harness, workloads
from benchmarks.engines import NotAvailable, tape_engine

SIZE = os.environ.get("TAPE_BENCH_SIZE", "quick")


@pytest.mark.parametrize("workload_key", list(tape_engine.IMPLEMENTATIONS))
def test_tape(benchmark, workload_key):
    workload = workloads.WORKLOADS[workload_key]
    implementation = tape_engine.IMPLEMENTATIONS[workload_key][0]
    try:
        inputs = harness.check_agreement(workload_key, implementation, SIZE)
    except NotAvailable as reason:
        pytest.skip(str(reason))
    problem = workload.problem(SIZE)
    benchmark.group = f"{workload_key} {workload.title} ({SIZE})"
    if workload.recorded_ops is not None:
        benchmark.extra_info["recorded_ops"] = workload.recorded_ops(problem)
    benchmark(implementation.run, inputs)
