"""The reverse sweep: walk the rows backwards, pushing cotangents from outputs to inputs.

`adj` maps a slot to its adjoint (the cotangent accumulated so far). The sweep visits rows in
reverse recording order, which is a reverse topological order because a row only reads slots
recorded before it: when it reaches a row, that row's adjoint is complete. It pops the adjoint,
calls one rule per input, fits each cotangent to its input (`fit`: the one place broadcasting is
summed away) and adds it into the input's adjoint. No recursion, no topological sort: a chain of
a million rows is a loop of a million steps. It knows nothing about what an op means.

Memory: an adjoint is dropped the moment its row is processed, and without `retain_graph` the
row's saved values are freed right after. Leaves' `.grad` are touched only at the very end, so a
sweep that raises leaves every `.grad` as it was.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from . import devices
from .errors import check_finite
from .record import enable_grad, state
from .tape import ADJ, CONSUMED, FAILED, FLAGS, INS, LEAF, META, OP, PARAMS, SAVED, SRC, TRACE_MAX_SIZE
from .tensor import Tensor, _new_tensor

_EMPTY: dict = {}


def unbroadcast(ct, shape):
    """Sum `ct` over the axes along which an input of `shape` was broadcast."""
    lead = ct.ndim - len(shape)
    if lead < 0:
        return np.broadcast_to(ct, shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and ct.shape[lead + i] != 1)
    if axes:
        ct = ct.sum(axis=axes)
    return ct.reshape(shape)


def fit(ct, meta):
    """`ct` summed to the input's shape and cast to its dtype (`meta` = (shape, dtype))."""
    shape, dtype = meta
    if ct.shape != shape:
        ct = unbroadcast(ct, shape)
    if ct.dtype != dtype:
        ct = ct.astype(dtype)
    return ct


def _refuse(row, slot):
    op = row[OP].name
    src = f", recorded at {row[SRC]}" if row[SRC] else ""
    if row[FLAGS] & FAILED:
        raise RuntimeError(
            f"backward: entry {slot} ({op}{src}) was released by an earlier backward pass that raised "
            "midway (see that exception); its saved values are gone: record the computation again"
        )
    if row[FLAGS] & CONSUMED:
        raise RuntimeError(
            f"backward: entry {slot} ({op}{src}) was already released by an earlier backward pass; "
            "pass retain_graph=True to the first backward (or use tp.record(persistent=True)) "
            "to go through the same history twice"
        )
    raise RuntimeError(
        f"backward: a value that entry {slot} ({op}{src}) saved for its gradient was changed by an "
        "in-place operation (x[...] = v, x += v) after it was recorded; write x = x + v instead"
    )


def _precheck(rows, seeds):
    """Refuse a consumed or stale row before the sweep changes anything."""
    need = set(seeds)
    for slot in reversed(list(rows)):
        if slot not in need:
            continue
        row = rows[slot]
        if row[OP] is LEAF:
            continue
        if row[FLAGS]:
            _refuse(row, slot)
        need.update(s for s in row[INS] if s >= 0)


def _differentiable_saved(store, row, slot):
    """The row's saved values as Tensors that carry history, for rules run under recording."""
    saved = row[SAVED] or row[OP].no_saved
    out = saved[0]
    lifted = [None if out is None else store.handle(slot, out)]
    for s, v in zip(row[INS], saved[1:]):
        lifted.append(v if v is None or s < 0 else store.handle(s, v))
    return lifted


def refuse_inside_forward_mode(st) -> None:
    """Reverse mode inside a jvp would drop the tangents (rows save plain arrays): refuse it."""
    if st.dual_depth:
        raise NotImplementedError(
            "reverse mode inside forward mode (e.g. jvp or jacfwd of a function that calls grad) is not "
            "supported: the tangents would be lost; use jacrev, hessian or hvp instead"
        )


def _sweep_rows(store, adj, owned, top, wanted, retain, create_graph, anomaly, leaves, captured, consumed, released):
    """The loop of `sweep`: rows from `top` down, until no adjoint is pending."""
    rows = store.rows
    for slot in reversed(list(rows)):
        if slot > top:
            continue
        g = adj.pop(slot, None)
        if g is None:
            continue
        row = rows[slot]
        g_owned = slot in owned
        if g_owned:
            owned.discard(slot)
        d = row[OP]
        value = g.array if create_graph else g
        if getattr(value, "size", 1) <= TRACE_MAX_SIZE:
            row[ADJ] = value
            g_owned = False  # the trace holds it now: never written into again
        else:
            row[ADJ] = (value.shape, value.dtype)
        if slot in wanted:
            captured[slot] = (g, g_owned)
            g_owned = False  # handed to the caller: never written into again
        if d is LEAF:
            leaves.append((row[SAVED], g, g_owned))
            if not adj:
                break
            continue
        # g passes its ownership on only in a one-input row: a rule may return g for several
        # inputs (add), and two adjoints sharing one array must never be added into in place.
        g_owned = g_owned and len(row[INS]) == 1
        saved = _differentiable_saved(store, row, slot) if create_graph else row[SAVED] or d.no_saved
        params = row[PARAMS] or _EMPTY
        meta = row[META]
        ins = row[INS]
        cts = None
        fused = False  # a backend kernel computed every cotangent, each a fresh array
        if d.kernel_vjp is not None and not create_graph and type(g) is np.ndarray:
            cts = d.kernel_vjp(g, saved, ins)
            fused = cts is not None
        if cts is None and d.vjp_all is not None:
            cts = d.vjp_all(g, *saved, **params)
        for i, s in enumerate(ins):
            if s < 0:
                continue
            if cts is None:
                rule = d.vjp[i]
                if rule is None:
                    continue
                ct = rule(g, *saved, **params)
                # A built-in rule returns a fresh array, a view, or g itself (handed on once).
                if ct is g:
                    fresh = g_owned
                    g_owned = False
                else:
                    fresh = type(ct) is np.ndarray and ct.base is None
            else:
                ct = cts[i]  # a custom rule may return anything: never written into
                if ct is None:
                    continue
                fresh = fused
            m = meta[i]
            if m is not None and (ct.shape != m[0] or ct.dtype != m[1]):
                try:
                    ct = fit(ct, m)
                except ValueError as exc:
                    raise ValueError(
                        f"{d.name} (backward): the cotangent for input {i} has shape {ct.shape}, "
                        f"which cannot be summed to the input's shape {m[0]}"
                    ) from exc
                fresh = type(ct) is np.ndarray and ct.base is None
            if anomaly:
                check_finite(getattr(ct, "array", ct), d.name, f"backward, cotangent of input {i}", row[SRC], slot)
            prev = adj.get(s)
            if prev is None:
                adj[s] = ct
                if fresh:
                    owned.add(s)
            elif create_graph:
                adj[s] = prev + ct
            elif s in owned and prev.shape == ct.shape:
                prev += ct
            elif fresh and ct.shape == prev.shape:
                ct += prev
                adj[s] = ct
                owned.add(s)
            else:
                adj[s] = prev + ct
                if type(adj[s]) is np.ndarray:
                    owned.add(s)
        if not retain:
            # Under detect_anomaly keep everything until the sweep succeeds, so that a raise
            # leaves the tape as it was; otherwise free now, as the sweep passes.
            if anomaly:
                consumed.append(row)
            else:
                store.consume(row)
                released.append(row)
        if not adj:
            break


def sweep(store, seeds: dict, retain: bool, wanted=frozenset(), create_graph: bool = False):
    """Run the reverse sweep from `seeds` (slot -> cotangent).

    Returns (leaves, captured): the adjoint of every leaf reached, as (leaf tensor, adjoint,
    whether the sweep allocated that array and nobody else holds it), and the adjoint of every
    slot in `wanted`. With `create_graph` the rules run on
    Tensors under recording (through NumPy dispatch), so the adjoints have history of their own.
    """
    st = state()
    refuse_inside_forward_mode(st)
    rows = store.rows
    anomaly = st.anomaly
    if store.n_consumed or store.n_stale:
        _precheck(rows, seeds)
    adj = dict(seeds)
    if create_graph:
        adj = {s: g if isinstance(g, Tensor) else _new_tensor(g) for s, g in adj.items()}
    # Slots whose adjoint array this sweep allocated and nobody else holds: those are accumulated
    # into in place instead of allocating a new array for every sum (for large arrays, a fresh
    # allocation costs page faults, several times the addition itself).
    owned = set()
    top = max(adj)
    leaves = []
    captured = {}
    consumed = []  # rows to release after the loop (under detect_anomaly)
    released = []  # rows released during the loop: marked if the pass fails midway
    try:
        with enable_grad() if create_graph else nullcontext():
            _sweep_rows(
                store, adj, owned, top, wanted, retain, create_graph, anomaly, leaves, captured, consumed, released
            )
    except BaseException:
        for row in released:  # their saved values are gone: a later pass must say why
            row[FLAGS] |= FAILED
        raise
    for row in consumed:
        store.consume(row)
    return leaves, captured


# ------------------------------------------------------------------------------------------------
# Seeds and entry points.


def _seed(t: Tensor, gradient, what: str, keep_history: bool = False):
    if not hasattr(t.array, "shape"):  # a plain Python number
        return 1.0 if gradient is None else getattr(gradient, "array", gradient)
    if gradient is None:
        if t.array.size != 1:
            raise RuntimeError(
                f"{what}: a gradient can be created implicitly only for a scalar output; this output "
                f"has shape {t.shape}: pass gradient= (e.g. tp.ones_like(y)) or reduce it with tp.sum"
            )
        xp = np if isinstance(t.array, np.ndarray) else devices.cupy()
        return xp.ones_like(t.array)
    if keep_history and isinstance(gradient, Tensor) and gradient._rg:
        # a differentiable pass: the seed's own history must stay (d/d(cotangent) of the result)
        if gradient.shape != t.shape:
            raise ValueError(f"{what}: gradient shape {gradient.shape} does not match the output's shape {t.shape}")
        return gradient
    g = gradient.array if isinstance(gradient, Tensor) else gradient
    xp = np if isinstance(t.array, np.ndarray) else devices.cupy()
    g = xp.asarray(g, dtype=t.dtype)
    if g.shape != t.shape:
        raise ValueError(f"{what}: gradient shape {g.shape} does not match the output's shape {t.shape}")
    return g


def _as_list(x):
    return list(x) if isinstance(x, (list, tuple)) else [x]


def _store_of(tensors):
    for t in tensors:
        if t._rg == 2:
            return t._store
    return state().store


def backward(tensors, grad_tensors=None, retain_graph=False, create_graph=False) -> None:
    """Accumulate the gradients of `tensors` (seeded by `grad_tensors`) into the leaves' `.grad`."""
    tensors = _as_list(tensors)
    grad_tensors = _as_list(grad_tensors) if grad_tensors is not None else [None] * len(tensors)
    seeds = {}
    direct = []  # leaves differentiated with respect to themselves
    for t, gt in zip(tensors, grad_tensors):
        if not isinstance(t, Tensor) or t._rg == 0:
            shape = getattr(t, "shape", ())
            raise RuntimeError(
                f"backward: this tensor (shape {shape}) has no history and does not require grad; "
                "compute it inside a `with tp.record():` block from tensors created with requires_grad=True"
            )
        g = _seed(t, gt, "backward", create_graph)
        if t._rg == 1:
            direct.append((t, g, False))
        else:
            seeds[t._slot] = seeds[t._slot] + g if t._slot in seeds else g
    leaves = []
    if seeds:
        # As in PyTorch, a differentiable pass keeps the history (the new graph reads it).
        leaves, _ = sweep(_store_of(tensors), seeds, retain_graph or create_graph, create_graph=create_graph)
    for leaf, g, owned in leaves + direct:
        _accumulate(leaf, g, owned)


def _accumulate(leaf: Tensor, g, owned: bool = False) -> None:
    """Add adjoint `g` into `leaf.grad`; an array the sweep owns becomes the grad without a copy."""
    if leaf._rg != 1:
        return
    if isinstance(g, Tensor):
        leaf.grad = g if leaf.grad is None else leaf.grad + g
    elif not hasattr(leaf.array, "shape"):  # a plain Python number
        leaf.grad = _new_tensor(g if leaf.grad is None else leaf.grad.array + g)
    elif leaf.grad is None and owned and type(g) is np.ndarray and g.dtype == leaf.dtype and g.size > TRACE_MAX_SIZE:
        leaf.grad = _new_tensor(g)  # small adjoints are also kept by the trace: those are copied
    elif leaf.grad is None or leaf.grad._rg:
        xp = np if isinstance(leaf.array, np.ndarray) else devices.cupy()
        new = xp.array(g, dtype=leaf.dtype, copy=True)
        leaf.grad = _new_tensor(new) if leaf.grad is None else leaf.grad + new
    else:
        leaf.grad.array += g


def _source_slot(store, src: Tensor) -> int:
    """The slot whose adjoint is the gradient for `src`, or -1 if the tape never saw it."""
    if src._rg == 2:
        return src._slot
    if src._rg == 1:
        return store.leaf_slots.get(id(src), -1)
    return -1


def gradients(outputs, sources, seeds_in, retain, create_graph=False):
    """Adjoints of `sources` for the sweep seeded from `outputs`; None where unreached."""
    store = _store_of(outputs + sources)
    seeds = {}
    for t, g in zip(outputs, seeds_in):
        if t._rg == 0:
            continue
        slot = t._slot if t._rg == 2 else store.leaf_slot(t)
        seeds[slot] = seeds[slot] + g if slot in seeds else g
    wanted = {s for s in (_source_slot(store, x) for x in sources) if s >= 0}
    captured = {}
    if seeds:
        _, captured = sweep(store, seeds, retain, wanted, create_graph)
    result = []
    handed = set()  # ids of arrays already returned: two sources never share one
    for x in sources:
        s = _source_slot(store, x)
        g, owned = captured.get(s, (None, False)) if s >= 0 else (None, False)
        if g is not None and not isinstance(g, Tensor):
            # A captured adjoint may be a read-only broadcast view, the caller's seed, or the array
            # `add` handed to two inputs: copy it unless this sweep allocated it for this source.
            g = _new_tensor(_own_copy(g, x, copy=not owned or id(g) in handed))
            handed.add(id(g.array))
        result.append(g)
    return result


def _own_copy(g, like, copy: bool):
    xp = np if isinstance(like.array, np.ndarray) else devices.cupy()
    return xp.array(g, dtype=like.dtype, copy=True) if copy else xp.asarray(g, dtype=like.dtype)


def _zeros_like(x):
    xp = np if isinstance(x.array, np.ndarray) else devices.cupy()
    return _new_tensor(xp.zeros_like(x.array))


def tape_gradient(target, sources, output_gradients=None, retain=False):
    """GradientTape semantics: targets summed, zeros for unconnected sources, `.grad` untouched."""
    targets = _as_list(target)
    srcs = _as_list(sources)
    for x in srcs:
        if not isinstance(x, Tensor):
            raise TypeError(f"Tape.gradient: sources must be Tensors, got {type(x).__name__}")
    ogs = _as_list(output_gradients) if output_gradients is not None else [None] * len(targets)
    seeds = []
    for t, og in zip(targets, ogs):
        if og is None:
            xp = np if isinstance(t.array, np.ndarray) else devices.cupy()
            seeds.append(xp.ones_like(t.array))
        else:
            seeds.append(_seed(t, og, "Tape.gradient"))
    result = gradients(targets, srcs, seeds, retain)
    result = [g if g is not None else _zeros_like(x) for g, x in zip(result, srcs)]
    return result if isinstance(sources, (list, tuple)) else result[0]


def grads(outputs, inputs, grad_outputs=None, retain_graph=False, create_graph=False, allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, like `torch.autograd.grad`.

    Returns a tuple with one Tensor per input; `.grad` is not touched. An input the outputs do
    not depend on is an error unless `allow_unused=True`, which gives None for it.

    >>> import tape as tp
    >>> x = tp.tensor(3.0, requires_grad=True)
    >>> with tp.record():
    ...     y = x ** 2
    >>> tp.grads(y, x)
    (tensor(6.),)
    """
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    gos = _as_list(grad_outputs) if grad_outputs is not None else [None] * len(outs)
    if len(gos) != len(outs):
        raise ValueError(f"grads: {len(outs)} outputs but {len(gos)} grad_outputs")
    for t in outs + ins:
        if not isinstance(t, Tensor):
            raise TypeError(f"grads: outputs and inputs must be Tensors, got {type(t).__name__}")
    for t in outs:
        if t._rg == 0:
            raise RuntimeError(
                f"grads: an output (shape {t.shape}) has no history and does not require grad; "
                "compute it inside a `with tp.record():` block"
            )
    seeds = [_seed(t, g, "grads", create_graph) for t, g in zip(outs, gos)]
    with enable_grad() if create_graph else nullcontext():
        result = gradients(outs, ins, seeds, retain_graph or create_graph, create_graph)
    for k, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grads: input {k} (shape {ins[k].shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
    return tuple(result)
