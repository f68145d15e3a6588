"""PyTorch (CPU, float64 except W4), written as a PyTorch user would: leaves with requires_grad, backward().

Idiomatic rather than literal where PyTorch has a fused op a user would reach for: W4 uses
`F.cross_entropy` (log-softmax and NLL in one kernel), W6 uses double backward (`create_graph=True`),
which is what `torch.autograd.functional.hvp` does underneath minus its argument checking.
W5-ckpt uses `torch.utils.checkpoint` on sqrt(n) segments of sqrt(n) steps (non-reentrant).
`.numpy()` on a CPU tensor shares memory, so handing results back costs nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from .. import workloads
from . import Implementation

NAME = "torch"
LABEL = f"PyTorch {torch.__version__}"


def versions() -> dict:
    return {"torch": torch.__version__}


def configure_threads() -> dict:
    """One intra-op and one inter-op thread (the env vars alone do not bind torch's own pool)."""
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before any parallel work has started
        pass
    return {"torch.get_num_threads()": torch.get_num_threads(), "torch.get_num_interop_threads()": 1}


def _leaf(array) -> torch.Tensor:
    return torch.tensor(array, requires_grad=True)


def _reset(*leaves) -> None:
    for leaf in leaves:
        leaf.grad = None


def _gradients(*leaves):
    return [leaf.grad.numpy() for leaf in leaves]


def scalar_chain_setup(problem):
    return _leaf(problem["x1"]), _leaf(problem["x2"]), problem["terms"]


def scalar_chain_run(inputs):
    x1, x2, terms = inputs
    _reset(x1, x2)
    total = workloads.scalar_chain(torch, x1, x2, terms)
    total.backward()
    return total.item(), _gradients(x1, x2)


def small_chain_setup(problem):
    return _leaf(problem["x"]), problem["ops"]


def small_chain_run(inputs):
    x, ops = inputs
    _reset(x)
    total = workloads.small_array_chain(torch, x, ops)
    total.backward()
    return total.item(), _gradients(x)


def large_array_setup(problem):
    return _leaf(problem["x"]), _leaf(problem["a"]), _leaf(problem["b"])


def large_array_run(inputs):
    x, a, b = inputs
    _reset(x, a, b)
    total = workloads.large_array_objective(torch, x, a, b)
    total.backward()
    return total.item(), _gradients(x, a, b)


def mlp_setup(problem):
    parameters = [_leaf(problem[name]) for name in workloads.MLP_PARAMETERS]
    return torch.from_numpy(problem["X"]), torch.from_numpy(problem["labels"]), parameters


def mlp_run(inputs):
    X, labels, parameters = inputs
    W1, b1, W2, b2, W3, b3 = parameters
    _reset(*parameters)
    h1 = torch.tanh(X @ W1 + b1)
    h2 = torch.tanh(h1 @ W2 + b2)
    loss = F.cross_entropy(h2 @ W3 + b3, labels)
    loss.backward()
    return loss.item(), _gradients(*parameters)


def long_loop_setup(problem):
    return _leaf(problem["x0"]), _leaf(problem["W"]), problem["steps"], problem["step_size"], problem["segment"]


def long_loop_run(inputs):
    x0, W, steps, step_size, _ = inputs
    _reset(x0, W)
    x = x0
    for _ in range(steps):
        x = workloads.long_loop_step(torch, x, W, step_size)
    loss = x.sum()
    loss.backward()
    return loss.item(), _gradients(x0, W)


def long_loop_checkpointed_run(inputs):
    x0, W, steps, step_size, segment = inputs
    _reset(x0, W)

    def run_segment(x):
        for _ in range(segment):
            x = workloads.long_loop_step(torch, x, W, step_size)
        return x

    x = x0
    for _ in range(steps // segment):
        x = torch.utils.checkpoint.checkpoint(run_segment, x, use_reentrant=False)
    loss = x.sum()
    loss.backward()
    return loss.item(), _gradients(x0, W)


def hvp_setup(problem):
    return _leaf(problem["x"]), torch.from_numpy(problem["v"])


def hvp_run(inputs):
    x, v = inputs
    (gradient,) = torch.autograd.grad(workloads.hvp_objective(torch, x), x, create_graph=True)
    (hv,) = torch.autograd.grad(gradient, x, grad_outputs=v)
    return None, [hv.numpy()]


IMPLEMENTATIONS = {
    "W1": (Implementation(scalar_chain_setup, scalar_chain_run, how="0-d tensors"),),
    "W2": (Implementation(small_chain_setup, small_chain_run),),
    "W3": (Implementation(large_array_setup, large_array_run),),
    "W4": (Implementation(mlp_setup, mlp_run, how="F.cross_entropy"),),
    "W5": (Implementation(long_loop_setup, long_loop_run),),
    "W5-ckpt": (Implementation(long_loop_setup, long_loop_checkpointed_run, how="torch.utils.checkpoint, sqrt(n)"),),
    "W6": (Implementation(hvp_setup, hvp_run, how="double backward"),),
}
