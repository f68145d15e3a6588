"""JAX on the CPU: `jax.jit` where JAX users would use it, eager where the workload is about eager cost.

W1 and W2 measure the per-op cost of differentiating code as it runs, so their main rows run
`jax.value_and_grad` eagerly (no jit): under jit the 6,000 scalar ops compile into one kernel and the
row would measure XLA, not automatic differentiation. Their "jit" rows are what `tp.compile` is
compared with (XLA folds W1's 1,000 identical terms). W3-W6 are `jax.jit`ted, as a JAX user would
run them, and compiled during the harness's warm-up run. The "first call" rows (W1, W2, W5) trace,
compile and run a freshly jitted function in every timed run: what a user waits for the first time.
W5 is a `jax.lax.scan` over the steps; W5-ckpt nests sqrt(n) scans of sqrt(n) steps and wraps the
inner one in `jax.checkpoint`. W6 is forward over reverse (`jvp` of `grad`), the HVP JAX's
documentation recommends.

float64 needs `jax_enable_x64`, set when this module loads. Results are handed back with `np.asarray`,
which waits for JAX's asynchronous dispatch, so the timer sees the whole computation.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from .. import workloads  # noqa: E402
from . import Implementation  # noqa: E402

NAME = "jax"
LABEL = f"JAX {jax.__version__}"


def versions() -> dict:
    import jaxlib

    return {"jax": jax.__version__, "jaxlib": jaxlib.__version__, "jax devices": str(jax.devices())}


def configure_threads() -> dict:
    """XLA's CPU threads are set by XLA_FLAGS, which `run.py` puts in the environment before the import."""
    import os

    return {"XLA_FLAGS": os.environ.get("XLA_FLAGS")}


def _run_value_and_grad(inputs):
    """inputs = (a function returning (value, gradients), its arguments)."""
    value_and_grad, arguments = inputs
    value, gradients = value_and_grad(*arguments)
    return float(value), [np.asarray(g) for g in gradients]


def scalar_chain_setup(problem):
    terms = problem["terms"]
    f = lambda x1, x2: workloads.scalar_chain(jnp, x1, x2, terms)
    return jax.value_and_grad(f, argnums=(0, 1)), (jnp.asarray(problem["x1"]), jnp.asarray(problem["x2"]))


def small_chain_setup(problem):
    ops = problem["ops"]
    f = lambda x: workloads.small_array_chain(jnp, x, ops)
    return jax.value_and_grad(f, argnums=(0,)), (jnp.asarray(problem["x"]),)


def _jitted(setup, fresh: bool):
    """`setup`'s function under `jax.jit`; with `fresh`, jitted anew (traced and compiled) at every call."""

    def jitted_setup(problem):
        value_and_grad, arguments = setup(problem)
        if not fresh:
            return jax.jit(value_and_grad), arguments
        # A new function object per call: jit's cache is keyed on it, so every call traces and compiles.
        return (lambda *a: jax.jit(lambda *b: value_and_grad(*b))(*a)), arguments

    return jitted_setup


def large_array_setup(problem):
    f = lambda x, a, b: workloads.large_array_objective(jnp, x, a, b)
    arguments = tuple(jnp.asarray(problem[name]) for name in ("x", "a", "b"))
    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2))), arguments


def mlp_setup(problem):
    X, labels = jnp.asarray(problem["X"]), jnp.asarray(problem["labels"])

    def loss(parameters):
        W1, b1, W2, b2, W3, b3 = parameters
        h1 = jnp.tanh(X @ W1 + b1)
        h2 = jnp.tanh(h1 @ W2 + b2)
        log_probabilities = jax.nn.log_softmax(h2 @ W3 + b3, axis=-1)
        return -jnp.mean(jnp.take_along_axis(log_probabilities, labels[:, None], axis=1))

    parameters = tuple(jnp.asarray(problem[name]) for name in workloads.MLP_PARAMETERS)
    return jax.jit(jax.value_and_grad(loss)), (parameters,)


def _scan_steps(W, step_size, steps):
    def body(x, _):
        return workloads.long_loop_step(jnp, x, W, step_size), None

    return lambda x: jax.lax.scan(body, x, None, length=steps)[0]


def _long_loop_value_and_grad(problem):
    steps, step_size = problem["steps"], problem["step_size"]

    def loss(x0, W):
        return jnp.sum(_scan_steps(W, step_size, steps)(x0))

    arguments = (jnp.asarray(problem["x0"]), jnp.asarray(problem["W"]))
    return jax.value_and_grad(loss, argnums=(0, 1)), arguments


def long_loop_checkpointed_setup(problem):
    steps, step_size, segment = problem["steps"], problem["step_size"], problem["segment"]

    def loss(x0, W):
        run_segment = jax.checkpoint(_scan_steps(W, step_size, segment))
        x, _ = jax.lax.scan(lambda x, _: (run_segment(x), None), x0, None, length=steps // segment)
        return jnp.sum(x)

    arguments = (jnp.asarray(problem["x0"]), jnp.asarray(problem["W"]))
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1))), arguments


def hvp_setup(problem):
    gradient = jax.grad(lambda x: workloads.hvp_objective(jnp, x))
    hvp = jax.jit(lambda x, v: jax.jvp(gradient, (x,), (v,))[1])
    return hvp, jnp.asarray(problem["x"]), jnp.asarray(problem["v"])


def hvp_run(inputs):
    hvp, x, v = inputs
    return None, [np.asarray(hvp(x, v))]


IMPLEMENTATIONS = {
    "W1": (
        Implementation(scalar_chain_setup, _run_value_and_grad, how="eager (no jit)"),
        Implementation(_jitted(scalar_chain_setup, False), _run_value_and_grad, how="jax.jit", variant="jit"),
        Implementation(
            _jitted(scalar_chain_setup, True), _run_value_and_grad, how="trace + compile + run", variant="first call"
        ),
    ),
    "W2": (
        Implementation(small_chain_setup, _run_value_and_grad, how="eager (no jit)"),
        Implementation(_jitted(small_chain_setup, False), _run_value_and_grad, how="jax.jit", variant="jit"),
        Implementation(
            _jitted(small_chain_setup, True), _run_value_and_grad, how="trace + compile + run", variant="first call"
        ),
    ),
    "W3": (Implementation(large_array_setup, _run_value_and_grad, how="jax.jit"),),
    "W4": (Implementation(mlp_setup, _run_value_and_grad, how="jax.jit"),),
    "W5": (
        Implementation(_jitted(_long_loop_value_and_grad, False), _run_value_and_grad, how="jax.jit, lax.scan"),
        Implementation(
            _jitted(_long_loop_value_and_grad, True),
            _run_value_and_grad,
            how="trace + compile + run",
            variant="first call",
        ),
    ),
    "W5-ckpt": (
        Implementation(long_loop_checkpointed_setup, _run_value_and_grad, how="jax.jit, jax.checkpoint, sqrt(n)"),
    ),
    "W6": (Implementation(hvp_setup, hvp_run, how="jax.jit, jvp of grad"),),
}
