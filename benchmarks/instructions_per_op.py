"""Instructions per recorded op (record + backward), counted by valgrind's callgrind.

Wall time on a shared machine is noisy; instruction counts are not. This runs the chain of
`chain_overhead.py` (y*0.9; y+x; sin(y); y*0.5), recorded and differentiated twice, in one process
per length, at 400 and 4,400 ops; the slope between the two counts is the cost of one op (record,
backward and teardown), free of start-up and import costs.

Run:
    python benchmarks/instructions_per_op.py --slope --size 0     # 0-d values
    python benchmarks/instructions_per_op.py --slope --size 100   # 100 float64
(each runs `valgrind --tool=callgrind --callgrind-out-file=/dev/null python this --ops N` twice).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from chain_overhead import chain  # noqa: E402

import tape as tp  # noqa: E402

SHORT, LONG = 400, 4400


def run(ops: int, size: int) -> None:
    values = np.array(0.3) if size == 0 else np.random.default_rng(0).standard_normal(size)
    for _ in range(2):  # the second run is like the first: caches warm in both lengths alike
        x = tp.tensor(values, requires_grad=True)
        with tp.record():
            y = chain(x, ops, tp.sin)
            if size:
                y = y.sum()
        y.backward()
        del x, y


def instructions(ops: int, size: int) -> int:
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--callgrind-out-file=/dev/null",
        sys.executable,
        __file__,
        "--ops",
        str(ops),
        "--size",
        str(size),
    ]
    err = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    m = re.search(r"Collected : (\d+)", err)
    return int(m.group(1))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ops", type=int, default=SHORT)
    p.add_argument("--size", type=int, default=0, help="0: 0-d values, else a float64 vector of this size")
    p.add_argument("--slope", action="store_true", help="run both lengths under valgrind, print instr/op")
    a = p.parse_args()
    if not a.slope:
        run(a.ops, a.size)
        return
    lo, hi = instructions(SHORT, a.size), instructions(LONG, a.size)
    per_op = (hi - lo) / (2 * (LONG - SHORT))  # two runs per process
    print(f"size {a.size or '0-d'}: {per_op / 1000:.1f}k instr/op  ({lo} at {SHORT}, {hi} at {LONG})")


if __name__ == "__main__":
    main()
