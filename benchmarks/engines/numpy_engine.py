"""Hand-written NumPy: each workload's forward pass and its analytic backward pass, no AD engine.

Two jobs. It is the *reference*: every other engine's value and gradients must match these before
they are timed (`harness.check_agreement`), and `tests/test_bench_agreement.py` checks these against
finite differences, so a mistake in a derivation here cannot hide. And it is the *floor*: what the
arithmetic costs when a person writes the backward pass by hand, which is what W3 and W4 measure tape
against. The code is what a careful person would write for speed (W5 gathers its weight gradient into
one matmul at the end), not the most literal transcription.

W4 has a second row, the "8 matmuls only": the three forward and five backward matrix products of the
MLP step and nothing else, on the activations and cotangents of the real step. That is the floor the
issue sets for W4 (tape ≤ 1.05× of it), and its results are checked too: the three weight gradients
it produces must equal the reference's.

Everything is dtype-generic (float32 stays float32), so the agreement test can run W4 in float64.
"""

from __future__ import annotations

import numpy as np

from .. import workloads
from . import Implementation

NAME = "numpy"
LABEL = f"hand-written NumPy {np.__version__}"


def versions() -> dict:
    return {"numpy": np.__version__}


def configure_threads() -> dict:
    """BLAS reads OMP/OPENBLAS/MKL_NUM_THREADS when NumPy loads: `run.py` sets them before that."""
    return {}


# -- W1 --------------------------------------------------------------------------------------------


def scalar_chain_setup(problem):
    return problem["x1"], problem["x2"], problem["terms"]


def scalar_chain_run(inputs):
    """Per term: the value, and d/dx1 = 1/x1 + x2, d/dx2 = x1 − cos(x2), accumulated."""
    x1, x2, terms = inputs
    total = grad_x1 = grad_x2 = 0.0
    for _ in range(terms):
        total = total + (np.log(x1) + x1 * x2 - np.sin(x2))
        grad_x1 = grad_x1 + (1.0 / x1 + x2)
        grad_x2 = grad_x2 + (x1 - np.cos(x2))
    return float(total), [np.asarray(grad_x1), np.asarray(grad_x2)]


# -- W2 --------------------------------------------------------------------------------------------


def small_chain_setup(problem):
    return problem["x"], problem["ops"]


def small_chain_run(inputs):
    """Forward keeping what each op's derivative needs, then the chain rule backwards."""
    x, ops = inputs
    cycle = workloads.SMALL_CHAIN_CYCLE
    factor = workloads.SMALL_CHAIN_FACTOR
    saved = []  # tanh and exp keep their output, sin its input
    y = x
    for k in range(ops):
        op = cycle[k % len(cycle)]
        if op == "mul":
            y = y * factor
        elif op == "add":
            y = y + x
        elif op == "tanh":
            y = np.tanh(y)
            saved.append(y)
        elif op == "exp":
            y = np.exp(y)
            saved.append(y)
        else:
            saved.append(y)
            y = np.sin(y)
    value = float(y.sum())
    g = np.ones_like(y)  # cotangent of y, from the sum
    grad_x = np.zeros_like(x)
    for k in reversed(range(ops)):
        op = cycle[k % len(cycle)]
        if op == "mul":
            g = g * factor
        elif op == "add":
            grad_x = grad_x + g
        elif op == "tanh":
            t = saved.pop()
            g = g * (1.0 - t * t)
        elif op == "exp":
            g = g * saved.pop()
        else:
            g = g * np.cos(saved.pop())
    return value, [grad_x + g]  # the chain starts from y = x: what reaches the start is x's too


# -- W3 --------------------------------------------------------------------------------------------


def large_array_setup(problem):
    return problem["x"], problem["a"], problem["b"]


def large_array_run(inputs):
    """With t = tanh(a·x + b), e = exp(−x²), u = e·(1 − t²): dx = a·u − 2x·t·e, da = Σ u·x, db = Σ u."""
    x, a, b = inputs
    t = np.tanh(a * x + b)
    e = np.exp(-(x * x))
    te = t * e
    value = float(te.sum())
    u = e * (1.0 - t * t)
    grad_x = a * u - 2.0 * x * te
    return value, [grad_x, np.asarray(np.dot(u, x)), np.asarray(u.sum())]


# -- W4 --------------------------------------------------------------------------------------------


def mlp_setup(problem):
    return {key: problem[key] for key in ("X", "labels", *workloads.MLP_PARAMETERS)}


def mlp_forward_backward(p):
    """The step, returning the loss, the gradients and the activations/cotangents the matmuls use."""
    X, labels = p["X"], p["labels"]
    batch = X.shape[0]
    rows = np.arange(batch)
    h1 = np.tanh(X @ p["W1"] + p["b1"])
    h2 = np.tanh(h1 @ p["W2"] + p["b2"])
    z = h2 @ p["W3"] + p["b3"]
    z = z - z.max(axis=1, keepdims=True)  # log-softmax, stabilised
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)
    loss = -float((z[rows, labels] - np.log(s[:, 0])).mean())
    dz = e / s  # d(mean cross-entropy)/dz = (softmax − one-hot) / batch
    dz[rows, labels] -= 1
    dz /= batch
    grad_W3, grad_b3 = h2.T @ dz, dz.sum(axis=0)
    da2 = (dz @ p["W3"].T) * (1 - h2 * h2)
    grad_W2, grad_b2 = h1.T @ da2, da2.sum(axis=0)
    da1 = (da2 @ p["W2"].T) * (1 - h1 * h1)
    grad_W1, grad_b1 = X.T @ da1, da1.sum(axis=0)
    gradients = [grad_W1, grad_b1, grad_W2, grad_b2, grad_W3, grad_b3]
    return loss, gradients, {"h1": h1, "h2": h2, "dz": dz, "da2": da2, "da1": da1}


def mlp_run(p):
    loss, gradients, _ = mlp_forward_backward(p)
    return loss, gradients


def mlp_matmuls_setup(problem):
    p = mlp_setup(problem)
    _, _, activations = mlp_forward_backward(p)
    return {**p, **activations}


def mlp_matmuls_run(p):
    """The step's 8 matmuls alone: 3 forward, then for each layer dW = aᵀ·δ and (but the first) δ·Wᵀ."""
    X, W1, W2, W3 = p["X"], p["W1"], p["W2"], p["W3"]
    h1, h2, dz, da2, da1 = p["h1"], p["h2"], p["dz"], p["da2"], p["da1"]
    _ = X @ W1
    _ = h1 @ W2
    _ = h2 @ W3
    grad_W3 = h2.T @ dz
    _ = dz @ W3.T
    grad_W2 = h1.T @ da2
    _ = da2 @ W2.T
    grad_W1 = X.T @ da1
    return None, [grad_W1, grad_W2, grad_W3]


# -- W5 --------------------------------------------------------------------------------------------


def long_loop_setup(problem):
    return problem["x0"], problem["W"], problem["steps"], problem["step_size"], problem["segment"]


def _loop_forward(x, W, steps, step_size):
    """`steps` steps from x; returns the end state and each step's input x_k and t_k = tanh(W x_k)."""
    xs = np.empty((steps, x.size), dtype=x.dtype)
    ts = np.empty((steps, x.size), dtype=x.dtype)
    for k in range(steps):
        xs[k] = x
        ts[k] = t = np.tanh(W @ x)
        x = x + step_size * t
    return x, xs, ts


def _loop_backward(g, W, xs, ts, step_size):
    """Back through the steps: δ_k = h·g·(1 − t_k²), g ← g + Wᵀδ_k; returns g and Σ_k δ_k x_kᵀ."""
    deltas = np.empty_like(ts)
    for k in reversed(range(len(xs))):
        t = ts[k]
        deltas[k] = delta = step_size * g * (1.0 - t * t)
        g = g + W.T @ delta
    return g, deltas.T @ xs  # the weight gradient as one matmul rather than one outer product per step


def long_loop_run(inputs):
    x0, W, steps, step_size, _ = inputs
    x, xs, ts = _loop_forward(x0, W, steps, step_size)
    grad_x0, grad_W = _loop_backward(np.ones_like(x), W, xs, ts, step_size)
    return float(x.sum()), [grad_x0, grad_W]


def long_loop_checkpointed_run(inputs):
    """sqrt(n) checkpointing: keep each segment's first state, re-run a segment to go back through it."""
    x0, W, steps, step_size, segment = inputs
    starts = []
    x = x0
    for _ in range(steps // segment):
        starts.append(x)
        for _ in range(segment):
            x = x + step_size * np.tanh(W @ x)
    g = np.ones_like(x)
    grad_W = np.zeros_like(W)
    for start in reversed(starts):
        _, xs, ts = _loop_forward(start, W, segment, step_size)
        g, segment_grad_W = _loop_backward(g, W, xs, ts, step_size)
        grad_W += segment_grad_W
    return float(x.sum()), [g, grad_W]


# -- W6 --------------------------------------------------------------------------------------------


def hvp_objective_gradient(x):
    """∇f for f = Σ tanh(x)² + Σ x[:-1]·x[1:]: 2·t·(1 − t²) plus each neighbour. (For the FD test.)"""
    t = np.tanh(x)
    grad = 2.0 * t * (1.0 - t * t)
    grad[:-1] += x[1:]
    grad[1:] += x[:-1]
    return grad


def hvp_setup(problem):
    return problem["x"], problem["v"]


def hvp_run(inputs):
    """H = diag(2s² − 4t²s) (s = 1 − t²) plus ones beside the diagonal, applied to v."""
    x, v = inputs
    t = np.tanh(x)
    s = 1.0 - t * t
    hv = (2.0 * s * s - 4.0 * t * t * s) * v
    hv[:-1] += v[1:]
    hv[1:] += v[:-1]
    return None, [hv]


IMPLEMENTATIONS = {
    "W1": (Implementation(scalar_chain_setup, scalar_chain_run, how="NumPy scalars, analytic gradient"),),
    "W2": (Implementation(small_chain_setup, small_chain_run, how="analytic backward"),),
    "W3": (Implementation(large_array_setup, large_array_run, how="analytic backward"),),
    "W4": (
        Implementation(mlp_setup, mlp_run, how="analytic backward"),
        Implementation(
            mlp_matmuls_setup,
            mlp_matmuls_run,
            how="the step's 3 + 5 matmuls, nothing else",
            variant="8 matmuls only",
            reference_gradients=(0, 2, 4),
        ),
    ),
    "W5": (Implementation(long_loop_setup, long_loop_run, how="analytic backward, all states stored"),),
    "W5-ckpt": (Implementation(long_loop_setup, long_loop_checkpointed_run, how="sqrt(n) segments, recomputed once"),),
    "W6": (Implementation(hvp_setup, hvp_run, how="analytic Hessian-vector product"),),
}
