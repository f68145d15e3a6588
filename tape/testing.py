"""`check_grads`: test a function's derivatives against central finite differences.

The check is HIPS autograd's: pick random directions `v` for the inputs and `u` for the output,
and compare ⟨u, J v⟩ from finite differences with ⟨vjp(u), v⟩ from the reverse sweep. One scalar
comparison per call covers every input and output element at once, in float64.
"""

from __future__ import annotations

import numpy as np


def _fd_directional(f, xs, vs, eps):
    """(f(x + eps v) - f(x - eps v)) / (2 eps), computed without recording."""
    import tape as tp

    def run(sign):
        with tp.no_grad():
            out = f(*[tp.tensor(x + sign * eps * v) for x, v in zip(xs, vs)])
        return np.asarray(out.numpy(), dtype=np.float64)

    return (run(+1) - run(-1)) / (2 * eps)


def check_grads(f, args, modes=("rev",), order=1, eps=1e-6, rtol=1e-5, atol=1e-6, seed=0):
    """Assert that the reverse-mode derivative of `f` at `args` matches finite differences.

    `f` takes Tensors (one per entry of `args`, all floating point) and returns a Tensor.
    Raises AssertionError with both numbers when they disagree.

    >>> import tape as tp
    >>> from tape.testing import check_grads
    >>> check_grads(lambda x, y: tp.sin(x) * y, [[0.1, 0.2], [1.0, 2.0]])
    """
    import tape as tp

    unknown = set(modes) - {"rev"}
    if unknown:
        raise NotImplementedError(f"check_grads: modes {sorted(unknown)} are not available yet")
    if order != 1:
        raise NotImplementedError("check_grads: only order=1 is available yet")
    rng = np.random.default_rng(seed)
    xs = [np.array(getattr(a, "array", a), dtype=np.float64) for a in args]
    vs = [rng.standard_normal(x.shape) for x in xs]
    with tp.no_grad():
        out_shape = f(*[tp.tensor(x) for x in xs]).shape
    u = rng.standard_normal(out_shape)
    numeric = float(np.sum(u * _fd_directional(f, xs, vs, eps)))

    leaves = [tp.tensor(x, requires_grad=True) for x in xs]
    with tp.record():
        out = f(*leaves)
    gs = tp.grads(out, leaves, grad_outputs=u, allow_unused=True)
    analytic = float(sum(np.sum(g.numpy() * v) for g, v in zip(gs, vs) if g is not None))
    scale = max(1.0, abs(numeric))
    if not abs(analytic - numeric) <= atol * scale + rtol * abs(numeric):
        raise AssertionError(
            f"check_grads: reverse mode gives <vjp(u), v> = {analytic!r}, finite differences "
            f"<u, J v> = {numeric!r} (difference {analytic - numeric:.3e})"
        )
