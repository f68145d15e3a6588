"""`check_grads`: test a function's derivatives against central finite differences.

The check is HIPS autograd's: pick random directions `v` for the inputs and `u` for the output,
and compare ⟨u, J v⟩ from finite differences with ⟨vjp(u), v⟩ (reverse mode) and ⟨u, jvp(v)⟩
(forward mode). One scalar comparison per mode covers every input and output element at once, in
float64. With both modes, ⟨u, jvp(v)⟩ == ⟨vjp(u), v⟩ is also checked to rounding error: the two
rules of an op were written (or derived) separately, and must describe the same Jacobian.

``order=2`` checks the derivatives of the derivatives: the vjp as a function of (x, u) in reverse
mode, and the jvp as a function of (x, v) in both modes (forward over reverse, tp.jvp of a vjp, is
compared with reverse over reverse by tests/test_forward_over_reverse.py).

``dtype=np.float32`` runs the rules in float32 (the derivatives must come back in float32) and
compares them, with float32's tolerances, against finite differences taken in float64 at the
same (float32-rounded) point.
"""

from __future__ import annotations

import numpy as np


def _tensors(arrays):
    import tape as tp

    return [tp.tensor(a) for a in arrays]


def _fd_directional(f, xs, vs, eps):
    """(f(x + eps v) - f(x - eps v)) / (2 eps), computed without recording."""
    import tape as tp

    def run(sign):
        with tp.no_grad():
            out = f(*[tp.tensor(x + sign * eps * v) for x, v in zip(xs, vs)])
        return np.asarray(out.numpy(), dtype=np.float64)

    return (run(+1) - run(-1)) / (2 * eps)


def _reverse(f, xs, u):
    """⟨vjp(u), ·⟩ pieces: the cotangents of the inputs, as arrays (zeros where unconnected)."""
    import tape as tp

    out, vjp_fn = tp.vjp(f, *_tensors(xs))
    gs = [g.numpy() for g in vjp_fn(tp.tensor(u.astype(out.dtype)))]
    for g, x in zip(gs, xs):
        if g.dtype != x.dtype:
            raise AssertionError(f"check_grads: a gradient came back as {g.dtype} for a {x.dtype} input")
    return [g.astype(np.float64) for g in gs]


def _forward(f, xs, vs):
    import tape as tp

    _, tangent = tp.jvp(f, _tensors(xs), _tensors(vs))
    return tangent.numpy().astype(np.float64)


def _close(a, b, atol, rtol):
    return abs(a - b) <= atol * max(1.0, abs(b)) + rtol * abs(b)


def check_grads(f, args, modes=("rev",), order=1, eps=1e-6, rtol=None, atol=None, seed=0, dtype=np.float64):
    """Assert that the derivatives of `f` at `args` match finite differences.

    `f` takes Tensors (one per entry of `args`, all floating point) and returns a Tensor.
    `modes` picks reverse ("rev") and forward ("fwd") mode; `order` up to 2; `dtype` the precision
    the rules run in (float64 or float32; tolerances default to 1e-5/1e-6 and 2e-3/2e-4). Raises
    AssertionError with both numbers when they disagree.

    >>> import tape as tp
    >>> from tape.testing import check_grads
    >>> check_grads(lambda x, y: tp.sin(x) * y, [[0.1, 0.2], [1.0, 2.0]], modes=("rev", "fwd"), order=2)
    """
    import tape as tp

    unknown = set(modes) - {"rev", "fwd"}
    if unknown or order not in (1, 2):
        raise ValueError(f"check_grads: modes must be 'rev'/'fwd' (got {sorted(modes)}) and order 1 or 2")
    low = np.dtype(dtype) == np.float32
    rtol = (2e-3 if low else 1e-5) if rtol is None else rtol
    atol = (2e-4 if low else 1e-6) if atol is None else atol
    rng = np.random.default_rng(seed)
    xs = [np.array(getattr(a, "array", a), dtype=dtype) for a in args]
    x64 = [x.astype(np.float64) for x in xs]
    vs = [rng.standard_normal(x.shape) for x in xs]
    with tp.no_grad():
        out_shape = f(*_tensors(xs)).shape
    u = rng.standard_normal(out_shape)
    numeric = float(np.sum(u * _fd_directional(f, x64, vs, eps)))

    found = {}
    if "rev" in modes:
        found["reverse mode <vjp(u), v>"] = float(sum(np.sum(g * v) for g, v in zip(_reverse(f, xs, u), vs)))
    if "fwd" in modes:
        found["forward mode <u, jvp(v)>"] = float(np.sum(u * _forward(f, xs, [v.astype(dtype) for v in vs])))
    for what, value in found.items():
        if not _close(value, numeric, atol, rtol):
            raise AssertionError(
                f"check_grads: {what} = {value!r}, finite differences <u, J v> = {numeric!r} "
                f"(difference {value - numeric:.3e})"
            )
    if len(found) == 2:
        rev, fwd = found.values()
        if not _close(rev, fwd, atol if low else 1e-12, rtol if low else 1e-9):
            raise AssertionError(f"check_grads: <vjp(u), v> = {rev!r} but <u, jvp(v)> = {fwd!r}: the rules disagree")

    if order == 2 and low:
        raise ValueError("check_grads: second order is checked in float64 only (finite differences of float32 rules)")
    if order == 2:
        n = len(xs)
        if "rev" in modes:

            def vjp_of(*xs_and_u):
                _, vjp_fn = tp.vjp(f, *xs_and_u[:n])
                return tp.concatenate([tp.reshape(g, -1) for g in vjp_fn(xs_and_u[n])])

            check_grads(vjp_of, [*xs, u], ("rev",), 1, eps, rtol, atol, seed + 1)
        if "fwd" in modes:

            def jvp_of(*xs_and_v):
                return tp.jvp(f, xs_and_v[:n], xs_and_v[n:])[1]

            check_grads(jvp_of, [*xs, *vs], modes, 1, eps, rtol, atol, seed + 1)
