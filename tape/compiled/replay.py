"""The Python replay of a `Program`: the executable spec the kernels are tested against.

`forward` walks the columns up, `reverse` walks them down, each a tight loop over the op table's
rules that reads and writes buffers by index: no Tensor and no tape row is made per entry. The
per-entry work is precomputed once per program (`Plan`), so that a replay is just the loop.
`run_forward` and `run_reverse` are the one dispatch point: a backend with compiled kernels (the
next step) replaces what they call, nothing else.
"""

from __future__ import annotations

import numpy as np

from .. import backends, creation
from ..sweep import LowRank, fit
from .lower import DRAW_CODE, InputRef


class GuardFailed(Exception):
    """A replay reached a guard whose outcome differs from the one recorded (internal)."""

    def __init__(self, index):
        self.index = index


def _same(value, out) -> bool:
    """Whether `out` gives the outcome a guard recorded (a bool, int, float, or a whole array)."""
    if isinstance(value, np.ndarray):
        return value.shape == out.shape and bool((value == out).all())
    return type(value)(out) == value


def _resolve(params, arrays):
    def sub(v):
        if isinstance(v, InputRef):
            return arrays[v.k]
        if isinstance(v, tuple):
            return tuple(sub(x) for x in v)
        return v

    return {k: sub(v) for k, v in params.items()}


def _holds_input_ref(v) -> bool:
    if isinstance(v, InputRef):
        return True
    if isinstance(v, tuple):
        return any(_holds_input_ref(x) for x in v)
    if isinstance(v, dict):
        return any(_holds_input_ref(x) for x in v.values())
    return False


def step_value(fwd, code, args, params, has_ref, arrays):
    """(value, params) of one entry replayed in Python: its forward on `args`, with params that refer
    to an input resolved against this call's `arrays`; a random draw is drawn anew."""
    if has_ref:
        params = _resolve(params, arrays)
    if code == DRAW_CODE:
        return creation.draw(params["kind"], params["shape"], params["dtype"]), params
    out = fwd(*args, **params)
    return (out if type(out) is np.ndarray else np.asarray(out)), params


def step_cotangents(d, ins, kins, g, sv, params) -> list:
    """[(j, cotangent)] of one entry replayed in Python, for each input `ins[j] = (buffer, (shape,
    dtype))` that takes one (buffer not None): the backend's fused kernel, else the op's `vjp_all`,
    else one rule per input, each cotangent fitted to its input's shape and dtype (`sweep.fit`)."""
    cts = None
    if d.kernel_vjp is not None and type(g) is np.ndarray:
        cts = d.kernel_vjp(g, sv, kins)
    if cts is None and d.vjp_all is not None:
        cts = d.vjp_all(g, *sv, **params)
    out = []
    for j, (b, meta) in enumerate(ins):
        if b is None:
            continue
        if cts is None:
            rule = d.vjp[j]
            if rule is None:
                continue
            ct = rule(g, *sv, **params)
        else:
            ct = cts[j]
            if ct is None:
                continue
            if type(ct) is LowRank:  # a matrix-vector product's weight cotangent (numpy_backend.matvec_vjp)
                ct = ct.dense()[0]
        if ct.shape != meta[0] or ct.dtype != meta[1]:
            ct = fit(ct, meta)
        out.append((j, ct))
    return out


def forward(plan, arrays, keep_saved: bool):
    """Run the entries forward on the input `arrays`; return (value buffers, saved values or None)."""
    vals = [None] * plan.n_buffers
    for k, a in enumerate(arrays):
        vals[k] = a
    for k, c in plan.const_bufs:
        vals[k] = c
    for b, value in plan.input_guards:
        if not _same(value, vals[b]):
            raise GuardFailed(-1)
    steps = plan.steps if plan.steps is not None else plan.build_steps()
    saved = [None] * len(steps) if keep_saved else None
    for i, (fwd, code, in_bufs, out_buf, params, has_ref, guards, saver) in enumerate(steps):
        args = [vals[b] for b in in_bufs]
        out, params = step_value(fwd, code, args, params, has_ref, arrays)
        vals[out_buf] = out
        if keep_saved:
            saved[i] = (saver(out, args, range(len(args))), params)  # every input may want a cotangent
        if guards:
            for value in guards:
                if not _same(value, out):
                    raise GuardFailed(i)
    return vals, saved


def reverse(plan, saved, seeds):
    """Cotangents of the inputs (None where unreached) from `seeds` (slot -> cotangent).

    `plan` is a program's ReversePlan: the adjoint buffers for one set of wanted inputs. A backend's
    fused kernel (`OpDef.kernel_vjp`) is used where the op has one, as the eager sweep does. An
    adjoint this pass allocated itself (a sum) is accumulated into in place; any other (a rule may
    return `g` itself, or a view) is never written into.
    """
    adj = [None] * plan.n_adj
    owned = [False] * plan.n_adj
    abuf = plan.abuf
    for s, g in seeds.items():
        b = abuf.get(s)
        if b is not None and g is not None:
            adj[b] = g if adj[b] is None else adj[b] + g
    rsteps = plan.rsteps if plan.rsteps is not None else plan.build()
    no_saved = plan.no_saved
    for i in range(len(rsteps) - 1, -1, -1):
        ob, d, ins, kins = rsteps[i]
        if ob is None:
            continue
        g = adj[ob]
        if g is None:
            continue
        adj[ob] = None
        sv, params = saved[i]
        for j, ct in step_cotangents(d, ins, kins, g, sv or no_saved[i], params):
            b = ins[j][0]
            prev = adj[b]
            if prev is None:
                adj[b] = ct
                owned[b] = False  # the buffer may have held an owned adjoint of another slot before
            elif owned[b]:
                prev += ct
            else:
                adj[b] = prev + ct
                owned[b] = type(adj[b]) is np.ndarray
    return [adj[b] if b is not None else None for b in plan.input_abufs]


def run_forward(plan, arrays, keep_saved=False):
    """The dispatch point of the forward pass: a Numba kernel where one covers the program (and the
    backend is "numba"), else the Python replay above. Returns (value buffers, what the reverse needs)."""
    if plan.kernel is not None and backends.get_backend() == "numba":
        return plan.kernel.forward(arrays, keep_saved)
    return forward(plan, arrays, keep_saved)


def run_reverse(plan, saved, seeds, kernel=None):
    """The dispatch point of the reverse pass (`saved` says which forward ran)."""
    if kernel is not None and not isinstance(saved, list):  # the kernel's forward kept its arena
        return kernel.reverse(plan, saved, seeds)
    return reverse(plan, saved, seeds)
