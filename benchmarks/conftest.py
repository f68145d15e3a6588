"""pytest configuration for the benchmark suite: one thread, as in the comparison runner.

The thread variables must be set before NumPy loads its BLAS, so they are set here, when pytest
loads this file, before it imports the suite (and so tape and NumPy). `setdefault`: a variable
already set by the caller wins, and the header says what was used.
"""

import os

from benchmarks.run import PINNED_THREAD_ENV

for _name, _value in PINNED_THREAD_ENV.items():
    os.environ.setdefault(_name, _value)

# The engine modules import their peer library at import time; `--doctest-modules` (in pyproject's
# addopts) must not import them when only tape's suite is asked for.
collect_ignore_glob = ["engines/*", "run.py"]


def pytest_report_header(config):
    return "threads: " + " ".join(f"{name}={os.environ.get(name)!r}" for name in PINNED_THREAD_ENV)
