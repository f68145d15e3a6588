"""HIPS autograd: the workloads as functions of their inputs, differentiated by `value_and_grad`.

autograd differentiates with respect to one argument, which may be a tuple: the inputs are passed as
one tuple, and the gradient comes back as a tuple in the same order. It has no fused log-softmax, so
W4 writes it as z − logsumexp(z) with `autograd.scipy.special.logsumexp`. W5-ckpt wraps sqrt(n)-step
segments in autograd's own `checkpoint` (whose weights must be arguments, not closed over, to get a
gradient). Measured, not fixed: that `checkpoint` saves no memory, because autograd builds a
primitive's VJP when the primitive is recorded (`VJPNode.__init__` calls the VJP maker), so each
segment is re-recorded during the forward pass, once per differentiated argument. W6 is
`hessian_vector_product`, reverse over reverse.
"""

from __future__ import annotations

from importlib.metadata import version

import autograd
import autograd.numpy as anp
import numpy as np
from autograd.differential_operators import checkpoint
from autograd.scipy.special import logsumexp

from .. import workloads
from . import Implementation

NAME = "autograd"
LABEL = f"HIPS autograd {version('autograd')}"


def versions() -> dict:
    return {"autograd": version("autograd"), "numpy": np.__version__}


def configure_threads() -> dict:
    return {}


def _run_value_and_grad(inputs):
    """inputs = (value_and_grad of a function of one tuple, that tuple)."""
    value_and_grad, arguments = inputs
    value, gradients = value_and_grad(arguments)
    return float(value), [np.asarray(g) for g in gradients]


def scalar_chain_setup(problem):
    terms = problem["terms"]
    f = lambda xs: workloads.scalar_chain(anp, xs[0], xs[1], terms)
    return autograd.value_and_grad(f), (float(problem["x1"]), float(problem["x2"]))


def small_chain_setup(problem):
    ops = problem["ops"]
    f = lambda xs: workloads.small_array_chain(anp, xs[0], ops)
    return autograd.value_and_grad(f), (problem["x"],)


def large_array_setup(problem):
    f = lambda xs: workloads.large_array_objective(anp, *xs)
    return autograd.value_and_grad(f), (problem["x"], float(problem["a"]), float(problem["b"]))


def mlp_setup(problem):
    X, labels = problem["X"], problem["labels"]
    rows = np.arange(X.shape[0])

    def loss(parameters):
        W1, b1, W2, b2, W3, b3 = parameters
        h1 = anp.tanh(anp.dot(X, W1) + b1)
        h2 = anp.tanh(anp.dot(h1, W2) + b2)
        z = anp.dot(h2, W3) + b3
        log_probabilities = z - logsumexp(z, axis=1, keepdims=True)
        return -anp.mean(log_probabilities[rows, labels])

    return autograd.value_and_grad(loss), tuple(problem[name] for name in workloads.MLP_PARAMETERS)


def long_loop_setup(problem):
    steps, step_size = problem["steps"], problem["step_size"]

    def loss(inputs):
        x, W = inputs
        for _ in range(steps):
            x = workloads.long_loop_step(anp, x, W, step_size)
        return anp.sum(x)

    return autograd.value_and_grad(loss), (problem["x0"], problem["W"])


def long_loop_checkpointed_setup(problem):
    steps, step_size, segment = problem["steps"], problem["step_size"], problem["segment"]

    @checkpoint
    def run_segment(x, W):
        for _ in range(segment):
            x = workloads.long_loop_step(anp, x, W, step_size)
        return x

    def loss(inputs):
        x, W = inputs
        for _ in range(steps // segment):
            x = run_segment(x, W)
        return anp.sum(x)

    return autograd.value_and_grad(loss), (problem["x0"], problem["W"])


def hvp_setup(problem):
    hvp = autograd.hessian_vector_product(lambda x: workloads.hvp_objective(anp, x))
    return hvp, problem["x"], problem["v"]


def hvp_run(inputs):
    hvp, x, v = inputs
    return None, [np.asarray(hvp(x, v))]


IMPLEMENTATIONS = {
    "W1": (Implementation(scalar_chain_setup, _run_value_and_grad, how="Python floats"),),
    "W2": (Implementation(small_chain_setup, _run_value_and_grad),),
    "W3": (Implementation(large_array_setup, _run_value_and_grad),),
    "W4": (Implementation(mlp_setup, _run_value_and_grad, how="z − logsumexp(z)"),),
    "W5": (Implementation(long_loop_setup, _run_value_and_grad),),
    "W5-ckpt": (
        Implementation(
            long_loop_checkpointed_setup,
            _run_value_and_grad,
            how="autograd checkpoint, sqrt(n) (re-records in the forward pass)",
        ),
    ),
    "W6": (Implementation(hvp_setup, hvp_run, how="hessian_vector_product"),),
}
