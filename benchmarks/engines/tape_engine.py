"""tape: the workloads as a user would write them, `with tp.record():` then `backward()`.

Leaves are made once in `setup` and their `.grad` reset at the start of each run, as in a training
loop; gradients are handed back as the `.array` of `.grad` (no copy, which for W3 would cost more than
some of the ops). Everything recorded in a run is released when the run's tensors go out of scope,
and that teardown is inside the timer, as it is in real use.

Two workloads need features that are being written while this harness is: W5-ckpt needs
`tp.checkpoint_loop`, and W6 needs `tp.hvp` (or, failing that, `create_graph=True`). Without them
the rows read "n/a" with the reason; they light up by themselves once the features exist.
"""

from __future__ import annotations

import numpy as np

import tape as tp

from .. import workloads
from . import Implementation, NotAvailable

NAME = "tape"
LABEL = f"tape {tp.__version__}"


def versions() -> dict:
    backend = tp.get_backend() if hasattr(tp, "get_backend") else None
    return {"tape": tp.__version__, "numpy": np.__version__, "tape backend": backend}


def configure_threads() -> dict:
    """tape's Numba kernels (if any) use NUMBA_NUM_THREADS, which `run.py` sets before the import."""
    return {}


def _leaf(array) -> tp.Tensor:
    return tp.tensor(array, requires_grad=True)


def _reset(*leaves) -> None:
    for leaf in leaves:
        leaf.grad = None


def _gradients(*leaves) -> list[np.ndarray]:
    return [leaf.grad.array for leaf in leaves]


# -- W1, W2, W3: the shared expressions -----------------------------------------------------------


def scalar_chain_setup(problem):
    return _leaf(problem["x1"]), _leaf(problem["x2"]), problem["terms"]


def scalar_chain_run(inputs):
    x1, x2, terms = inputs
    _reset(x1, x2)
    with tp.record():
        total = workloads.scalar_chain(tp, x1, x2, terms)
    total.backward()
    return total.item(), _gradients(x1, x2)


def small_chain_setup(problem):
    return _leaf(problem["x"]), problem["ops"]


def small_chain_run(inputs):
    x, ops = inputs
    _reset(x)
    with tp.record():
        total = workloads.small_array_chain(tp, x, ops)
    total.backward()
    return total.item(), _gradients(x)


def large_array_setup(problem):
    return _leaf(problem["x"]), _leaf(problem["a"]), _leaf(problem["b"])


def large_array_run(inputs):
    x, a, b = inputs
    _reset(x, a, b)
    with tp.record():
        total = workloads.large_array_objective(tp, x, a, b)
    total.backward()
    return total.item(), _gradients(x, a, b)


# -- W4 --------------------------------------------------------------------------------------------


def mlp_setup(problem):
    parameters = [_leaf(problem[name]) for name in workloads.MLP_PARAMETERS]
    rows = np.arange(problem["X"].shape[0])
    return tp.tensor(problem["X"]), rows, problem["labels"], parameters


def mlp_run(inputs):
    X, rows, labels, parameters = inputs
    W1, b1, W2, b2, W3, b3 = parameters
    _reset(*parameters)
    with tp.record():
        h1 = tp.tanh(X @ W1 + b1)
        h2 = tp.tanh(h1 @ W2 + b2)
        log_probabilities = tp.log_softmax(h2 @ W3 + b3)
        loss = -tp.mean(log_probabilities[rows, labels])
    loss.backward()
    return loss.item(), _gradients(*parameters)


# -- W5 --------------------------------------------------------------------------------------------


def long_loop_setup(problem):
    return _leaf(problem["x0"]), _leaf(problem["W"]), problem["steps"], problem["step_size"]


def long_loop_run(inputs):
    x0, W, steps, step_size = inputs
    _reset(x0, W)
    with tp.record():
        x = x0
        for _ in range(steps):
            x = workloads.long_loop_step(tp, x, W, step_size)
        loss = tp.sum(x)
    loss.backward()
    return loss.item(), _gradients(x0, W)


def long_loop_checkpointed_setup(problem):
    if not hasattr(tp, "checkpoint_loop"):
        raise NotAvailable("not implemented yet: tp.checkpoint_loop")
    return long_loop_setup(problem)


def long_loop_checkpointed_run(inputs):
    """`tp.checkpoint_loop` with its default number of snapshots, as a user would first call it."""
    x0, W, steps, step_size = inputs
    _reset(x0, W)
    with tp.record():
        x = tp.checkpoint_loop(lambda state: workloads.long_loop_step(tp, state, W, step_size), x0, steps)
        loss = tp.sum(x)
    loss.backward()
    return loss.item(), _gradients(x0, W)


# -- W6 --------------------------------------------------------------------------------------------


def _objective(x):
    return workloads.hvp_objective(tp, x)


def _hvp_with_transform(x, v):
    hv = tp.hvp(_objective, (x,), (v,))
    return hv[0] if isinstance(hv, (tuple, list)) else hv


def _hvp_with_double_backward(x, v):
    x = _leaf(x.array)
    with tp.record():
        (gradient,) = tp.grads(_objective(x), x, create_graph=True)
        directional = tp.sum(gradient * v)
    (hv,) = tp.grads(directional, x)
    return hv


def _create_graph_works() -> bool:
    x = _leaf(np.array(1.5))
    try:
        with tp.record():
            (gradient,) = tp.grads(x * x * x, x, create_graph=True)
        (second,) = tp.grads(gradient, x)
    except (NotImplementedError, RuntimeError, TypeError):
        return False
    return np.isclose(float(second.array), 9.0)


def hvp_setup(problem):
    """Prefer `tp.hvp`; else reverse-over-reverse with `create_graph=True`; else n/a."""
    x, v = tp.tensor(problem["x"]), tp.tensor(problem["v"])
    if hasattr(tp, "hvp"):
        return _hvp_with_transform, x, v
    if _create_graph_works():
        return _hvp_with_double_backward, x, v
    raise NotAvailable("not implemented yet: tp.hvp and create_graph=True")


def hvp_run(inputs):
    hvp, x, v = inputs
    return None, [hvp(x, v).array]


IMPLEMENTATIONS = {
    "W1": (Implementation(scalar_chain_setup, scalar_chain_run, how="0-d tensors"),),
    "W2": (Implementation(small_chain_setup, small_chain_run),),
    "W3": (Implementation(large_array_setup, large_array_run),),
    "W4": (Implementation(mlp_setup, mlp_run),),
    "W5": (Implementation(long_loop_setup, long_loop_run, how="one record block, all steps on the tape"),),
    "W5-ckpt": (
        Implementation(long_loop_checkpointed_setup, long_loop_checkpointed_run, how="tp.checkpoint_loop (Revolve)"),
    ),
    "W6": (Implementation(hvp_setup, hvp_run, how="tp.hvp (falls back to create_graph=True)"),),
}
