"""Higher order and NumPy dispatch: what they cost, measured in one run.

1. The time of a Hessian-vector product against a gradient, for the issue's function
   f(x) = sum(tanh(x)**2) + sum(x[:-1] * x[1:]) at n = 1,000 (results checked against the closed form
   first). An HVP is reverse over reverse: it records the first sweep and sweeps that.
2. The per-op overhead of NumPy dispatch (``np.sin(x)`` on a Tensor) against calling ``tp.sin(x)``,
   inside a record block, on 0-d and 100-element tensors.

Run: ``python benchmarks/functional_overhead.py [--repeats R]`` (medians of R runs, one thread).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import tape as tp  # noqa: E402


def f(x):
    return np.sum(np.tanh(x) ** 2) + np.sum(x[:-1] * x[1:])


def closed_form_gradient(x):
    t = np.tanh(x)
    g = 2 * t * (1 - t**2)
    g[:-1] += x[1:]
    g[1:] += x[:-1]
    return g


def closed_form_hvp(x, v):
    t = np.tanh(x)
    s = 1 - t**2
    hv = (2 * s**2 - 4 * t**2 * s) * v
    hv[:-1] += v[1:]
    hv[1:] += v[:-1]
    return hv


def median_seconds(fn, repeats):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def hvp_versus_gradient(repeats, n=1000):
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal(n), rng.standard_normal(n)
    np.testing.assert_allclose(tp.grad(f)(x), closed_form_gradient(x), rtol=1e-10)
    np.testing.assert_allclose(tp.hvp(f, (x,), (v,)), closed_form_hvp(x, v), rtol=1e-10)
    t_grad = median_seconds(lambda: tp.grad(f)(x), repeats)
    t_hvp = median_seconds(lambda: tp.hvp(f, (x,), (v,)), repeats)
    return t_grad, t_hvp


def dispatch_overhead(repeats, size, ops=2000):
    x = tp.tensor(np.random.default_rng(1).uniform(0.1, 0.9, size=size), requires_grad=True)

    def chain(sin):
        with tp.record():
            y = x
            for _ in range(ops):
                y = sin(y)
        return y

    np.testing.assert_array_equal(chain(np.sin).numpy(), chain(tp.sin).numpy())
    t_np = median_seconds(lambda: chain(np.sin), repeats) / ops
    t_tp = median_seconds(lambda: chain(tp.sin), repeats) / ops
    return t_tp, t_np


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    cpu = platform.processor() or platform.machine()
    print(f"machine: {cpu}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"numpy {np.__version__}, threads pinned to 1; medians of {args.repeats} runs\n")

    t_grad, t_hvp = hvp_versus_gradient(args.repeats)
    print("| n = 1000 | time (ms) | ratio to the gradient |\n|---|---:|---:|")
    print(f"| tp.grad(f)(x) | {t_grad * 1e3:.3f} | 1.00× |")
    print(f"| tp.hvp(f, (x,), (v,)) | {t_hvp * 1e3:.3f} | {t_hvp / t_grad:.2f}× |\n")

    print("| recorded sin, per op | tp.sin (µs) | np.sin on a Tensor (µs) | dispatch overhead (µs) |")
    print("|---|---:|---:|---:|")
    for size, label in (((), "0-d"), ((100,), "100 float64")):
        t_tp, t_np = dispatch_overhead(args.repeats, size)
        print(f"| {label} | {t_tp * 1e6:.2f} | {t_np * 1e6:.2f} | {(t_np - t_tp) * 1e6:.2f} |")


if __name__ == "__main__":
    main()
