"""The benchmark harness: the six workloads, one module per engine, and the comparison runner.

Not part of the installed package (pyproject ships `tape*` only). It is a package so that the runner,
the pytest-benchmark suite and the agreement test in `tests/` share one definition of every workload.
Start with `benchmarks/workloads.py` (what is measured), then `benchmarks/engines/` (how each engine
computes it) and `benchmarks/harness.py` (check, then time); `benchmarks/run.py` is the command.
"""
