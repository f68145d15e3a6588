"""tape, compiled: the workloads through `tp.compile` (API §9), as a user would write them.

The function is compiled once in `setup`, but its first call (record, lower, replay) happens in the
first timed run, as it does in real use; the "first call" rows compile afresh in every run, so they
show what recording and lowering cost. Gradients come from `tp.value_and_grad` of the compiled
function, which is one entry on the tape whose rule is the program's reverse pass.
"""

from __future__ import annotations

import numpy as np

import tape as tp

from .. import workloads
from . import Implementation

NAME = "tape-compiled"
LABEL = f"tape {tp.__version__} (tp.compile)"


def versions() -> dict:
    return {"tape": tp.__version__, "numpy": np.__version__}


def configure_threads() -> dict:
    return {}


def _compiled(fn, fresh: bool):
    """A compiled fn; with `fresh`, one compiled anew at every call (the first-call rows)."""
    if not fresh:
        return tp.compile(fn)
    return lambda *args: tp.compile(fn)(*args)


def _value_and_grads(cf, args, argnums):
    value, grads = tp.value_and_grad(cf, argnums=argnums)(*args)
    return float(value), [np.asarray(g) for g in grads]


# -- W1, W2 ------------------------------------------------------------------------------------------


def _scalar_chain_setup(fresh):
    def setup(problem):
        terms = problem["terms"]
        return _compiled(lambda x1, x2: workloads.scalar_chain(tp, x1, x2, terms), fresh), problem["x1"], problem["x2"]

    return setup


def scalar_chain_run(inputs):
    cf, x1, x2 = inputs
    return _value_and_grads(cf, (x1, x2), (0, 1))


def _small_chain_setup(fresh):
    def setup(problem):
        ops = problem["ops"]
        return _compiled(lambda x: workloads.small_array_chain(tp, x, ops), fresh), problem["x"]

    return setup


def small_chain_run(inputs):
    cf, x = inputs
    return _value_and_grads(cf, (x,), (0,))


# -- W4 ----------------------------------------------------------------------------------------------


def mlp_loss(X, rows, labels, W1, b1, W2, b2, W3, b3):
    h1 = tp.tanh(X @ W1 + b1)
    h2 = tp.tanh(h1 @ W2 + b2)
    log_probabilities = tp.log_softmax(h2 @ W3 + b3)
    return -tp.mean(log_probabilities[rows, labels])


def _mlp_setup(fresh):
    def setup(problem):
        parameters = [problem[name] for name in workloads.MLP_PARAMETERS]
        rows = np.arange(problem["X"].shape[0])
        return _compiled(mlp_loss, fresh), [problem["X"], rows, problem["labels"], *parameters]

    return setup


def mlp_run(inputs):
    cf, args = inputs
    return _value_and_grads(cf, args, tuple(range(3, 9)))


# -- W5 ----------------------------------------------------------------------------------------------


def _long_loop_setup(fresh):
    def setup(problem):
        steps, h = problem["steps"], problem["step_size"]

        def loop(x0, W):
            x = x0
            for _ in range(steps):
                x = workloads.long_loop_step(tp, x, W, h)
            return tp.sum(x)

        return _compiled(loop, fresh), problem["x0"], problem["W"]

    return setup


def long_loop_run(inputs):
    cf, x0, W = inputs
    return _value_and_grads(cf, (x0, W), (0, 1))


def long_loop_checkpointed_setup(problem):
    steps, h = problem["steps"], problem["step_size"]
    W = tp.tensor(problem["W"], requires_grad=True)
    step = tp.compile(lambda x: workloads.long_loop_step(tp, x, W, h))
    return step, tp.tensor(problem["x0"], requires_grad=True), W, steps


def long_loop_checkpointed_run(inputs):
    """The step compiled, inside `tp.checkpoint_loop` with its default snapshots."""
    step, x0, W, steps = inputs
    x0.grad = W.grad = None
    with tp.record():
        loss = tp.sum(tp.checkpoint_loop(step, x0, steps))
    loss.backward()
    return loss.item(), [x0.grad.array, W.grad.array]


def _replayed_and_first_call(make_setup, run, how="tp.compile, replayed"):
    """The replayed row and the first-call row (record + lower + run) of one workload."""
    return (
        Implementation(make_setup(False), run, how=how),
        Implementation(make_setup(True), run, how="record + lower + run", variant="first call"),
    )


IMPLEMENTATIONS = {
    "W1": _replayed_and_first_call(_scalar_chain_setup, scalar_chain_run),
    "W2": _replayed_and_first_call(_small_chain_setup, small_chain_run),
    "W4": _replayed_and_first_call(_mlp_setup, mlp_run),
    "W5": _replayed_and_first_call(_long_loop_setup, long_loop_run, how="the whole loop as one program"),
    "W5-ckpt": (
        Implementation(
            long_loop_checkpointed_setup, long_loop_checkpointed_run, how="compiled step in checkpoint_loop"
        ),
    ),
}
