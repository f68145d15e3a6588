"""The workloads: what every engine computes, at which sizes, and what tape is aiming for.

One `Workload` per row of the issue ("Fast on the CPU"). A workload owns its *problem*: a dict of
NumPy arrays (and a few ints) drawn from a fixed seed, so that every engine, in every process,
differentiates exactly the same numbers. Engines turn the problem into their own inputs
(`engines/*.py`); the hand-written NumPy engine is the reference their results must match.

Sizes: "full" is the issue's size (what `make bench` reports), "quick" is for smoke runs of the
runner (`--quick`) and the pytest-benchmark suite, "tiny" is for the agreement test in `make test`
(and a finite-difference check of the reference itself), where only correctness matters.

W5's checkpointed variant is a workload of its own ("W5-ckpt") because it is timed and reported on its
own row; it shares W5's problem and gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

SEED = 20240601


@dataclass(frozen=True)
class Target:
    """A goal of tape's on a workload: the median of one of tape's rows (`engine`, `variant`) at most
    `max_ratio` times the baseline row's."""

    baseline_engine: str  # engine name, as in `engines.ENGINE_NAMES`
    max_ratio: float
    baseline_variant: str = ""  # e.g. "8 matmuls only": a second row of the same engine
    engine: str = "tape"  # tape's row: "tape" (eager) or "tape-compiled"
    variant: str = ""  # e.g. "first call"


@dataclass(frozen=True)
class Workload:
    key: str
    title: str
    description: str
    unit: str  # how the median is reported: "µs/op" (divided by `recorded_ops`), "ms" or "µs"
    sizes: dict[str, dict]  # size name -> parameters of `make_problem`
    make_problem: Callable[..., dict]  # (**parameters, rng) -> problem dict
    wrt: tuple[str, ...]  # problem keys the gradients are taken with respect to, in output order
    has_value: bool = True  # False: the output is gradients only (W6's Hessian-vector product)
    recorded_ops: Callable[[dict], int] | None = None  # for "µs/op": ops tape records for one run
    #: tape's goals: the eager-speed issue's (row "tape") and the compiled-kernels issue's ("tape-compiled").
    targets: tuple[Target, ...] = ()
    notes: tuple[str, ...] = field(default=())
    #: A workload whose result this one must equal (W5-ckpt: W5's), so its reference comes from there.
    same_result_as: str | None = None

    def problem(self, size: str) -> dict:
        """The problem at `size`, drawn from the workload's own seed: identical in every process."""
        rng = np.random.default_rng([SEED, int(self.key[1])])
        problem = self.make_problem(rng=rng, **self.sizes[size])
        problem["size"] = size
        return problem

    def scale(self, seconds: float, problem: dict) -> float:
        """Seconds of one run in this workload's unit."""
        if self.unit == "µs/op":
            return seconds * 1e6 / self.recorded_ops(problem)
        return seconds * {"ms": 1e3, "µs": 1e6, "s": 1.0}[self.unit]


# --------------------------------------------------------------------------------------------------
# Problems.


def scalar_chain_problem(terms: int, rng) -> dict:
    """W1: 0-d float64 x1, x2 at Baydin et al.'s (2, 5); the sum has `terms` copies of the expression."""
    return {"x1": np.array(2.0), "x2": np.array(5.0), "terms": terms}


def small_array_chain_problem(n: int, ops: int, rng) -> dict:
    """W2: a float64 vector; the chain length must be whole cycles of `SMALL_CHAIN_CYCLE`."""
    assert ops % len(SMALL_CHAIN_CYCLE) == 0, f"W2: ops must be a multiple of {len(SMALL_CHAIN_CYCLE)}"
    return {"x": rng.standard_normal(n), "ops": ops}


#: W2's chain, one recorded op per entry, repeated: y*0.9, y+x, tanh, exp, sin. The mix keeps y in
#: a bounded range (tanh then exp then sin lands in (0.36, 1)) so any length stays finite, and
#: adding the leaf x every cycle gives x a gradient contribution from every cycle.
SMALL_CHAIN_CYCLE = ("mul", "add", "tanh", "exp", "sin")
SMALL_CHAIN_FACTOR = 0.9


def large_array_problem(n: int, rng) -> dict:
    """W3: x of n float64 values, and 0-d a, b."""
    return {"x": rng.standard_normal(n), "a": np.array(0.7), "b": np.array(-0.3)}


def mlp_problem(batch: int, layers: tuple[int, ...], rng) -> dict:
    """W4: float32 inputs, integer labels, and (W, b) per layer initialised at 1/sqrt(fan_in)."""
    problem = {
        "X": rng.standard_normal((batch, layers[0])).astype(np.float32),
        "labels": rng.integers(0, layers[-1], size=batch),
    }
    for i, (fan_in, fan_out) in enumerate(zip(layers[:-1], layers[1:]), start=1):
        problem[f"W{i}"] = (rng.standard_normal((fan_in, fan_out)) / math.sqrt(fan_in)).astype(np.float32)
        problem[f"b{i}"] = (0.1 * rng.standard_normal(fan_out)).astype(np.float32)
    return problem


MLP_PARAMETERS = ("W1", "b1", "W2", "b2", "W3", "b3")


def long_loop_problem(steps: int, dim: int, rng) -> dict:
    """W5: x0 and W in float64; `segment` is the segment length of the sqrt(n) checkpointed variants."""
    segment = math.isqrt(steps)
    assert segment * segment == steps, "W5: steps must be a perfect square (sqrt(n) segments)"
    return {
        "x0": rng.standard_normal(dim),
        "W": rng.standard_normal((dim, dim)) / math.sqrt(dim),
        "steps": steps,
        "step_size": 0.01,
        "segment": segment,
    }


def hvp_problem(n: int, rng) -> dict:
    """W6: the point x and the direction v, float64."""
    return {"x": rng.standard_normal(n), "v": rng.standard_normal(n)}


# --------------------------------------------------------------------------------------------------
# The workloads.

W1 = Workload(
    key="W1",
    title="scalar chain",
    description="1,000 × [ln(x1) + x1·x2 − sin(x2)] summed on 0-d float64, gradient w.r.t. x1, x2",
    unit="µs/op",
    sizes={"full": {"terms": 1000}, "quick": {"terms": 200}, "tiny": {"terms": 5}},
    make_problem=scalar_chain_problem,
    wrt=("x1", "x2"),
    # Per term: log, mul, add, sin, sub, and the add into the running total.
    recorded_ops=lambda problem: 6 * problem["terms"],
    targets=(
        Target("torch", 0.5),
        Target("jax", 1.0, "jit", engine="tape-compiled"),
        Target("jax", 1.0, "first call", engine="tape-compiled", variant="first call"),
    ),
)

W2 = Workload(
    key="W2",
    title="small arrays",
    description="n = 100 float64, a chain of 200 elementwise ops (mul, add, tanh, exp, sin) ending in a sum",
    unit="µs/op",
    sizes={"full": {"n": 100, "ops": 200}, "quick": {"n": 100, "ops": 200}, "tiny": {"n": 7, "ops": 20}},
    make_problem=small_array_chain_problem,
    wrt=("x",),
    recorded_ops=lambda problem: problem["ops"] + 1,  # the chain and the final sum
    targets=(
        Target("torch", 0.5),
        Target("jax", 1.0, "jit", engine="tape-compiled"),
        Target("jax", 1.0, "first call", engine="tape-compiled", variant="first call"),
    ),
)

W3 = Workload(
    key="W3",
    title="large arrays",
    description="n = 2^22 float64, sum(tanh(a·x + b) · exp(−x·x)), gradient w.r.t. x, a, b",
    unit="ms",
    sizes={"full": {"n": 2**22}, "quick": {"n": 2**18}, "tiny": {"n": 64}},
    make_problem=large_array_problem,
    wrt=("x", "a", "b"),
    targets=(Target("numpy", 1.0),),
)

W4 = Workload(
    key="W4",
    title="MLP step",
    description="float32, batch 256, 784-1024-1024-10, tanh, log-softmax cross-entropy, all weight gradients",
    unit="ms",
    sizes={
        "full": {"batch": 256, "layers": (784, 1024, 1024, 10)},
        "quick": {"batch": 64, "layers": (784, 256, 256, 10)},
        "tiny": {"batch": 4, "layers": (12, 16, 16, 5)},
    },
    make_problem=mlp_problem,
    wrt=MLP_PARAMETERS,
    targets=(
        Target("numpy", 1.05, baseline_variant="8 matmuls only"),
        Target("jax", 1.0, engine="tape-compiled"),
    ),
    notes=("the 8 matmuls: 3 forward, and 5 backward (no gradient for the input batch)",),
)

_LONG_LOOP_SIZES = {
    "full": {"steps": 10_000, "dim": 128},
    "quick": {"steps": 900, "dim": 64},
    "tiny": {"steps": 16, "dim": 6},
}

W5 = Workload(
    key="W5",
    title="long loop",
    description="10,000 steps of x = x + 0.01·tanh(W @ x), dim 128, loss sum(x_T), gradient w.r.t. x0, W",
    unit="ms",
    sizes=_LONG_LOOP_SIZES,
    make_problem=long_loop_problem,
    wrt=("x0", "W"),
    targets=(
        Target("torch", 0.75),
        Target("jax", 1.0, engine="tape-compiled"),
        Target("jax", 1.0, "first call", engine="tape-compiled", variant="first call"),
    ),
)

W5_CHECKPOINTED = Workload(
    key="W5-ckpt",
    title="long loop, checkpointed",
    description="W5 with checkpointing: tape's checkpoint_loop (Revolve), the peers sqrt(n) segments",
    unit="ms",
    sizes=_LONG_LOOP_SIZES,
    make_problem=long_loop_problem,
    wrt=("x0", "W"),
    same_result_as="W5",
)

W6 = Workload(
    key="W6",
    title="second order",
    description="Hessian-vector product of sum(tanh(x)²) + sum(x[:-1]·x[1:]) at n = 1,000",
    unit="µs",
    sizes={"full": {"n": 1000}, "quick": {"n": 1000}, "tiny": {"n": 9}},
    make_problem=hvp_problem,
    wrt=("x",),  # the output is H·v, shaped like x
    has_value=False,
    targets=(Target("torch", 1.0),),
)

WORKLOADS: dict[str, Workload] = {w.key: w for w in (W1, W2, W3, W4, W5, W5_CHECKPOINTED, W6)}
SIZES = ("full", "quick", "tiny")


def select(keys: str | None) -> list[Workload]:
    """Workloads named in a comma-separated list ("W1,W3"); "W5" also brings its checkpointed variant."""
    if not keys:
        return list(WORKLOADS.values())
    wanted = [k.strip().upper().replace("-CKPT", "-ckpt") for k in keys.split(",") if k.strip()]
    unknown = [k for k in wanted if k not in WORKLOADS]
    if unknown:
        raise ValueError(f"unknown workload(s) {unknown}; choose from {list(WORKLOADS)}")
    if "W5" in wanted and "W5-ckpt" not in wanted:
        wanted.append("W5-ckpt")
    return [w for key, w in WORKLOADS.items() if key in wanted]


# --------------------------------------------------------------------------------------------------
# The forward passes, written once for every engine: `xp` is the engine's array namespace (tape,
# torch, jax.numpy, autograd.numpy, numpy), so all of them evaluate the same expression in the same
# order. Engines whose idiom differs (W4's log-softmax, W5 under jax.lax.scan) write their own.


def scalar_chain(xp, x1, x2, terms: int):
    """W1: `terms` copies of ln(x1) + x1·x2 − sin(x2), summed; six recorded ops per term."""
    total = 0.0
    for _ in range(terms):
        total = total + (xp.log(x1) + x1 * x2 - xp.sin(x2))
    return total


def small_array_chain(xp, x, ops: int):
    """W2: the elementwise chain (see `SMALL_CHAIN_CYCLE`) from y = x, then its sum."""
    y = x
    for k in range(ops):
        op = SMALL_CHAIN_CYCLE[k % len(SMALL_CHAIN_CYCLE)]
        if op == "mul":
            y = y * SMALL_CHAIN_FACTOR
        elif op == "add":
            y = y + x
        else:
            y = getattr(xp, op)(y)
    return xp.sum(y)


def large_array_objective(xp, x, a, b):
    """W3: sum(tanh(a·x + b) · exp(−x·x))."""
    return xp.sum(xp.tanh(a * x + b) * xp.exp(-(x * x)))


def long_loop_step(xp, x, W, step_size: float):
    """W5: one step, x + h·tanh(W @ x)."""
    return x + step_size * xp.tanh(W @ x)


def hvp_objective(xp, x):
    """W6: sum(tanh(x)²) + sum(x[:-1]·x[1:])."""
    return xp.sum(xp.tanh(x) ** 2) + xp.sum(x[:-1] * x[1:])
