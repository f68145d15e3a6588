"""One module per engine, each implementing the workloads behind the same small interface.

An engine module exposes

    NAME: str                       the engine's name in tables ("tape", "torch", ...)
    LABEL: str                      how the table shows it ("PyTorch 2.13.0")
    IMPLEMENTATIONS: dict[str, tuple[Implementation, ...]]    workload key -> its ways of computing it
    def versions() -> dict           library versions, for the report
    def configure_threads() -> dict  pins the engine's own thread pools to one thread; says what it set

and it is imported only inside the process that benchmarks it (`run.py` starts one per engine and
workload), so that one engine's imports, thread pools and allocator never touch another's timings.

An `Implementation` splits a workload in two: `setup(problem)` turns the shared NumPy problem into the
engine's own inputs (leaf tensors, device arrays, a jitted function) outside the timer, and `run(inputs)`
is what is timed: one forward and backward pass, returning (value, gradients) as a float and a list of
NumPy arrays, in the order of the workload's `wrt`. Returning NumPy arrays makes every engine pay for
handing its results back (JAX's asynchronous dispatch is waited for), and lets one function compare
them with the reference. `run` must leave its inputs reusable: it resets accumulated `.grad`s itself.

Why `setup(problem)` rather than `setup(size)`: the problem is drawn once from a fixed seed in
`workloads.py`, so engines cannot differ in their inputs, only in how they differentiate them.

A workload an engine cannot do yet raises `NotAvailable` from `setup`, with the reason; the row then
reads "n/a (reason)" and lights up by itself once the feature exists.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

#: Engines in the order the runner measures and the table lists them.
ENGINE_NAMES = ("tape", "tape-compiled", "torch", "autograd", "jax", "numpy")

#: Engines whose arrays are NumPy arrays, so `tracemalloc` sees every byte they allocate.
TRACEMALLOC_ENGINES = frozenset({"tape", "tape-compiled", "autograd", "numpy"})


class NotAvailable(Exception):
    """This engine cannot run this workload (yet); the message says why."""


@dataclass(frozen=True)
class Implementation:
    setup: Callable[[dict], Any]
    run: Callable[[Any], tuple[float | None, list[np.ndarray]]]
    how: str = ""  # one line on how the engine computes it, shown in the table ("jax.jit", "eager")
    variant: str = ""  # a second row of the same engine ("8 matmuls only"); "" for the main row
    #: Which of the reference's gradients `run` returns (indices into the workload's `wrt`); None: all.
    reference_gradients: tuple[int, ...] | None = None


def load(name: str) -> ModuleType:
    """The engine module; ImportError (from the engine's own import) if its library is not installed."""
    if name not in ENGINE_NAMES:
        raise ValueError(f"unknown engine {name!r}; choose from {', '.join(ENGINE_NAMES)}")
    return importlib.import_module(f"benchmarks.engines.{name.replace('-', '_')}_engine")


def select(names: str | None) -> list[str]:
    """Engine names from a comma-separated list ("tape,torch"), in the table's order."""
    if not names:
        return list(ENGINE_NAMES)
    wanted = [n.strip().lower() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in ENGINE_NAMES]
    if unknown:
        raise ValueError(f"unknown engine(s) {unknown}; choose from {', '.join(ENGINE_NAMES)}")
    return [n for n in ENGINE_NAMES if n in wanted]
