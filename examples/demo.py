"""A first minute with tape: reverse-mode autodiff on a Wengert tape, in three short sections.

1. The evaluation trace of f(x1, x2) = ln(x1) + x1*x2 - sin(x2) at (2, 5), with the adjoints the
   backward pass wrote into it: the table from Baydin et al., "Automatic differentiation in
   machine learning: a survey" (JMLR 2018), entry for entry.
2. The gradients from the automatic-differentiation chapter of Dive into Deep Learning, redone
   with tape: a dot product, a sum, a non-scalar output with an explicit seed, and detach().
3. A small MLP trained by plain gradient descent on two interleaved moons, with a progress bar.
4. The same training through `tp.compile`: the loss is recorded once and its program replayed,
   with the speed-up over eager recording.

Run it with ``make demo``; it takes a few seconds.
"""

import time

import numpy as np
from tqdm import trange

import tape as tp


def heading(title: str) -> None:
    print(f"\n== {title} " + "=" * (72 - len(title)))


# -- 1. The evaluation trace ------------------------------------------------------------------------
def show_evaluation_trace() -> None:
    heading("1. The evaluation trace of f(x1, x2) = ln(x1) + x1*x2 - sin(x2)")
    x1 = tp.tensor(2.0, requires_grad=True)
    x2 = tp.tensor(5.0, requires_grad=True)
    # One statement per entry, in the paper's order, so the rows number v1..v5 exactly as its table does.
    with tp.record() as t:
        v1 = tp.log(x1)
        v2 = x1 * x2
        v3 = tp.sin(x2)
        v4 = v1 + v2
        y = v4 - v3
    y.backward()
    # The inputs are v-1 and v0; the adjoint column is the reverse sweep, read bottom to top.
    print(t)
    print(f"\ny = {y.item():.3f}   x1.grad = {x1.grad.item():.3f}   x2.grad = {x2.grad.item():.3f}")
    print("(by hand: df/dx1 = 1/x1 + x2 = 5.5, df/dx2 = x1 - cos(x2) = 1.716)")


# -- 2. The tutorials' gradients ---------------------------------------------------------------------
def backward_through(f, x, gradient=None) -> None:
    """Record y = f(x) and run the backward pass, which accumulates dy/dx into x.grad."""
    with tp.record():
        y = f(x)
    y.backward(gradient=gradient)


def show_tutorial_gradients() -> None:
    heading("2. The tutorials' gradients (Dive into Deep Learning, section 2.5)")
    x = tp.arange(4.0, requires_grad=True)
    print(f"x = {x.numpy()}")

    backward_through(lambda x: 2 * tp.dot(x, x), x)
    print(f"y = 2 x.x          x.grad = {x.grad.numpy()}   the gradient is 4x")

    # Gradients accumulate across backward passes, as in PyTorch: clear them before the next one.
    x.grad.zero_()
    backward_through(tp.sum, x)
    print(f"y = sum(x)         x.grad = {x.grad.numpy()}   every element counts once")

    # A non-scalar output needs a seed: backward(gradient=v) computes v^T J, here the sum of the rows.
    x.zero_grad()
    backward_through(lambda x: x * x, x, gradient=tp.ones(4))
    print(f"y = x * x          x.grad = {x.grad.numpy()}   seeded with ones: 2x")

    # detach() keeps the values and drops the history, so u is a constant to the backward pass.
    x.zero_grad()
    with tp.record():
        u = (x * x).detach()
        z = tp.sum(u * x)
    z.backward()
    same = np.array_equal(x.grad.numpy(), u.numpy())
    print(f"z = sum(u * x)     x.grad = {x.grad.numpy()}   with u = (x*x).detach(): x.grad == u is {same}")


# -- 3. Training a small MLP -------------------------------------------------------------------------
def two_moons(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n points on two interleaved half circles (scikit-learn's make_moons), labels 0 and 1."""
    half = n // 2
    angle = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(angle[:half]), np.sin(angle[:half])], axis=1)
    lower = np.stack([1.0 - np.cos(angle[half:]), 0.5 - np.sin(angle[half:])], axis=1)
    points = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    labels = np.concatenate([np.zeros(half), np.ones(n - half)])
    # Centred and scaled, so that tanh units start in their linear range.
    return (points - points.mean(axis=0)) / points.std(axis=0), labels


def init_mlp(sizes: list[int]) -> list[tp.Tensor]:
    """Weights and biases of a fully connected net; weights scaled by 1/sqrt(fan_in) (Xavier)."""
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        # `randn(...) / c` is a new tensor without requires_grad: mark the scaled one as a leaf.
        params.append((tp.randn(fan_in, fan_out) / np.sqrt(fan_in)).requires_grad_())
        params.append(tp.zeros(fan_out, requires_grad=True))
    return params


def mlp(params: list[tp.Tensor], x: tp.Tensor) -> tp.Tensor:
    """tanh hidden layers and a linear output: one logit per row of x."""
    *hidden, w_out, b_out = params
    h = x
    for w, b in zip(hidden[::2], hidden[1::2]):
        h = tp.tanh(h @ w + b)
    return (h @ w_out + b_out)[:, 0]


def logistic_loss(logits: tp.Tensor, labels: tp.Tensor) -> tp.Tensor:
    """Mean binary cross-entropy, as softplus(-s * logit) with s = +-1: stable for any logit."""
    signs = 2.0 * labels - 1.0
    return tp.mean(tp.softplus(-signs * logits))


def gradient_step(params, x, labels) -> float:
    """One recorded forward pass and its backward pass; returns the loss and leaves .grad filled."""
    with tp.record():
        loss = logistic_loss(mlp(params, x), labels)
    loss.backward()
    return loss.item()


def descend(params: list[tp.Tensor], lr: float) -> None:
    """Plain gradient descent, in place, outside any record block (so it is not recorded)."""
    for p in params:
        p -= lr * p.grad
        p.zero_grad()


def accuracy(params, x, labels) -> float:
    # Outside a record block the forward pass keeps no history: just the values.
    predicted = mlp(params, x).numpy() > 0
    return float(np.mean(predicted == labels.numpy().astype(bool)))


def train_mlp_on_moons(steps: int = 300, lr: float = 0.5) -> None:
    heading("3. A 2-16-16-1 tanh MLP trained on two moons by gradient descent")
    tp.manual_seed(0)
    points, labels = two_moons(200, noise=0.1, rng=np.random.default_rng(0))
    x, y = tp.tensor(points), tp.tensor(labels)
    params = init_mlp([2, 16, 16, 1])

    bar = trange(steps, desc="training", ncols=80)
    for _ in bar:
        loss = gradient_step(params, x, y)
        descend(params, lr)
        bar.set_postfix(loss=f"{loss:.4f}", refresh=False)  # redrawn at tqdm's own pace
    bar.close()
    final_loss = logistic_loss(mlp(params, x), y).item()
    print(f"final loss {final_loss:.4f}, training accuracy {accuracy(params, x, y):.1%}")


# -- 4. The same training, compiled ------------------------------------------------------------------
def train(grad_fn, params, x, y, steps, lr):
    """Plain gradient descent with `grad_fn(x, y, *params) -> (loss, grads)`; returns (params, seconds)."""
    start = time.perf_counter()
    for _ in range(steps):
        loss, grads = grad_fn(x, y, *params)
        params = [p - lr * g for p, g in zip(params, grads)]
    return params, float(loss), time.perf_counter() - start


def train_compiled(steps: int = 300, lr: float = 0.5) -> None:
    heading("4. The same MLP through tp.compile: recorded once, replayed")
    points, labels = two_moons(200, noise=0.1, rng=np.random.default_rng(0))
    tp.manual_seed(0)
    start = [p.numpy() for p in init_mlp([2, 16, 16, 1])]  # NumPy in, NumPy out: the update is plain NumPy
    x, y = points, labels

    def loss_fn(x, y, *params):
        return logistic_loss(mlp(list(params), x), y)

    argnums = tuple(range(2, 2 + len(start)))
    compiled = tp.compile(loss_fn)
    _, eager_loss, eager_s = train(tp.value_and_grad(loss_fn, argnums=argnums), start, x, y, steps, lr)
    _, loss, compiled_s = train(tp.value_and_grad(compiled, argnums=argnums), start, x, y, steps, lr)
    program = compiled.program(x, y, *start)
    print(program)
    # Its arrays (200 x 16) are past what the Numba kernels take: it replays through the op table's
    # rules, which saves the recording, not NumPy's own work; W1/W2/W5-style programs run in kernels.
    print(f"\n{len(program)} entries replayed through the op table's rules: {program.stats()['fallback_ops']}")
    print(
        f"\n{compiled.stats()['recordings']} recording, {compiled.stats()['replays']} replays; "
        f"final loss {loss:.6f} (eager: {eager_loss:.6f})"
    )
    print(
        f"{steps} steps: eager {eager_s * 1e3:.0f} ms, compiled {compiled_s * 1e3:.0f} ms "
        f"(first call included): speed-up {eager_s / compiled_s:.2f}x"
    )


if __name__ == "__main__":
    show_evaluation_trace()
    show_tutorial_gradients()
    train_mlp_on_moons()
    train_compiled()
