"""Check, then time, then measure memory: one engine on one workload (DESIGN.md principle 12).

`measure` is the whole protocol for one row of the table:

1. `setup` the engine's inputs from the shared problem (untimed).
2. Run once and compare the value and every gradient with the hand-written NumPy reference
   (`check_agreement`). A mismatch ends the row with the reason; nothing wrong is ever timed.
   This first run doubles as the warm-up that pays for JIT compilation (Numba, XLA) and first-call
   caches; one more untimed run follows before the timer starts.
3. Time `run` at least `repeats` times and until `min_seconds` have been spent, back to back, and
   keep every time. The median is what the table reports. The garbage collector stays on (it runs in
   real use too, and tape makes Python objects where PyTorch makes C++ ones) and is never forced
   between runs: a `gc.collect()` before each run walks every object in the process and leaves the
   caches cold, which made a 135 µs PyTorch HVP measure 800 µs. Back-to-back runs are the steady
   state of a training loop, which is what users time.
4. Measure the peak memory of one more run, two ways (see `peak_rss_growth` and `traced_peak`).

The agreement test in `tests/` calls `check_agreement` directly, on tiny problems.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import gc
import statistics
import time
import tracemalloc

import numpy as np

from . import engines, workloads
from .engines import Implementation, NotAvailable

#: Relative tolerance of the agreement check, by the reference's (lowest) floating dtype. The absolute
#: tolerance is this times the largest magnitude of the same output, so that entries near zero (where
#: a relative error means nothing) are judged on the output's scale.
RTOL = {np.dtype(np.float64): 1e-6, np.dtype(np.float32): 1e-4}


class AgreementError(AssertionError):
    """An engine's value or gradient differs from the reference: the row is not timed."""


# -- the reference and the check ----------------------------------------------------------------


@functools.cache
def reference(workload_key: str, size: str) -> tuple[float | None, list[np.ndarray]]:
    """The hand-written NumPy result for a workload at a size (cached: W5's takes a while).

    A variant that must give another workload's result (W5-ckpt) is checked against that workload's
    reference, so that even the NumPy engine's checkpointed row is compared with something independent.
    """
    workload = workloads.WORKLOADS[workload_key]
    reference_key = workload.same_result_as or workload_key
    implementation = engines.load("numpy").IMPLEMENTATIONS[reference_key][0]
    return implementation.run(implementation.setup(workload.problem(size)))


def compare(workload_key: str, result, expected, reference_gradients=None) -> None:
    """Raise `AgreementError` unless `result` = (value, gradients) matches `expected` = the reference."""
    workload = workloads.WORKLOADS[workload_key]
    value, gradients = result
    expected_value, expected_gradients = expected
    if reference_gradients is not None:
        expected_gradients = [expected_gradients[i] for i in reference_gradients]
        names = [workload.wrt[i] for i in reference_gradients]
    else:
        names = list(workload.wrt)
    rtol = min(RTOL.get(np.asarray(g).dtype, 1e-6) for g in expected_gradients)
    if len(gradients) != len(expected_gradients):
        raise AgreementError(f"{workload_key}: {len(gradients)} gradients returned, expected {len(names)} ({names})")
    if value is not None and expected_value is not None:
        if not np.isclose(value, expected_value, rtol=rtol, atol=0):
            raise AgreementError(f"{workload_key}: value {value!r} differs from the reference {expected_value!r}")
    for name, got, want in zip(names, gradients, expected_gradients):
        got = np.asarray(got)
        want = np.asarray(want)
        if got.shape != want.shape:
            raise AgreementError(f"{workload_key}: gradient w.r.t. {name} has shape {got.shape}, expected {want.shape}")
        scale = float(np.max(np.abs(want))) if want.size else 0.0
        if not np.all(np.isfinite(got)) or not np.allclose(got, want, rtol=rtol, atol=rtol * scale):
            error = float(np.max(np.abs(got.astype(np.float64) - want)))
            raise AgreementError(
                f"{workload_key}: gradient w.r.t. {name} differs from the reference: max |error| {error:.3g}, "
                f"max |reference| {scale:.3g}, rtol {rtol:g}"
            )


def check_agreement(workload_key: str, implementation: Implementation, size: str):
    """Set the implementation up on the workload's problem, run it once, compare; returns its inputs."""
    workload = workloads.WORKLOADS[workload_key]
    inputs = implementation.setup(workload.problem(size))
    result = implementation.run(inputs)
    if workload.has_value and result[0] is None and implementation.reference_gradients is None:
        raise AgreementError(f"{workload_key}: the run returned no value")
    compare(workload_key, result, reference(workload_key, size), implementation.reference_gradients)
    return inputs


# -- timing -------------------------------------------------------------------------------------


def time_runs(implementation: Implementation, inputs, repeats: int, min_seconds: float, max_repeats=1000):
    """Seconds of each timed run: at least `repeats` runs, more until `min_seconds` have been timed."""
    times: list[float] = []
    while len(times) < repeats or (sum(times) < min_seconds and len(times) < max_repeats):
        start = time.perf_counter()
        implementation.run(inputs)
        times.append(time.perf_counter() - start)
    return times


# -- memory -------------------------------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, to hand freed heap pages back before a measurement; a no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError, TypeError):
        return ctypes.CDLL(ctypes.util.find_library("c")).malloc_trim
    return lambda pad: 0


def peak_rss_growth(implementation: Implementation, inputs) -> int | None:
    """How far the process's resident memory rose above its starting point during one run, in bytes.

    The only measure that sees every allocator (PyTorch's, XLA's, NumPy's), so it is reported for every
    engine. It is coarse: it counts library scratch and allocator caching, and misses memory reused from
    pages already resident. To limit the latter, garbage is collected and glibc is asked to return free
    pages (malloc_trim) first; then the kernel's high-water mark is reset (clear_refs, Linux >= 4.0).
    None where that is not possible (not Linux, or /proc not writable).
    """
    try:
        gc.collect()
        _malloc_trim()(0)
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM to the current VmRSS
        start = _status_kib("VmRSS")
        implementation.run(inputs)
        return (_status_kib("VmHWM") - start) * 1024
    except (OSError, KeyError):
        return None


def traced_peak(implementation: Implementation, inputs) -> int:
    """Peak bytes allocated through Python's and NumPy's allocators during one run (tracemalloc).

    Exact for engines whose arrays are NumPy arrays (NumPy reports its data buffers to tracemalloc), and
    blind to PyTorch's and XLA's allocators, so the runner reports it only for `engines.TRACEMALLOC_ENGINES`.
    Measured on its own run: tracing slows Python down, so no timed run is ever traced.
    """
    gc.collect()
    tracemalloc.start()
    try:
        implementation.run(inputs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- one row ------------------------------------------------------------------------------------


def measure(engine, workload_key: str, size: str, repeats: int, min_seconds: float, memory: bool = True):
    """Every row this engine has for the workload (its main row and any variants), measured."""
    workload = workloads.WORKLOADS[workload_key]
    implementations = engine.IMPLEMENTATIONS.get(workload_key, ())
    if not implementations:
        return [_row(engine, workload, None, "n/a", f"{engine.NAME} has no implementation of {workload_key}")]
    rows = []
    for implementation in implementations:
        try:
            inputs = check_agreement(workload_key, implementation, size)
        except NotAvailable as reason:
            rows.append(_row(engine, workload, implementation, "n/a", str(reason)))
            continue
        except AgreementError as mismatch:
            rows.append(_row(engine, workload, implementation, "failed", f"agreement check: {mismatch}"))
            continue
        except Exception as error:  # an engine's bug must not take the other rows down
            rows.append(_row(engine, workload, implementation, "error", f"{type(error).__name__}: {error}"))
            continue
        implementation.run(inputs)  # a second warm-up: caches and allocator pools settle
        times = time_runs(implementation, inputs, repeats, min_seconds)
        row = _row(engine, workload, implementation, "ok", "")
        problem = workload.problem(size)
        row["times_s"] = times
        row["median_s"] = statistics.median(times)
        row["median"] = workload.scale(row["median_s"], problem)
        row["unit"] = workload.unit
        if workload.recorded_ops is not None:
            row["recorded_ops"] = workload.recorded_ops(problem)
        if memory:
            row["peak_rss_bytes"] = peak_rss_growth(implementation, inputs)
            if engine.NAME in engines.TRACEMALLOC_ENGINES:
                row["traced_peak_bytes"] = traced_peak(implementation, inputs)
        rows.append(row)
        del inputs
    return rows


def _row(engine, workload, implementation, status: str, message: str) -> dict:
    return {
        "workload": workload.key,
        "engine": engine.NAME,
        "variant": implementation.variant if implementation else "",
        "how": implementation.how if implementation else "",
        "status": status,
        "message": message,
    }
