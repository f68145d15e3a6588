"""The reverse sweep: walk the entries backwards, pushing cotangents from outputs to inputs.

The adjoint buffer (`Adjoints`) maps a slot to its adjoint, the cotangent accumulated so far. The
sweep visits entries in reverse recording order, which is a reverse topological order because an
entry only reads slots recorded before it: when it reaches an entry, that entry's adjoint is
complete. It pops the adjoint, asks the op's rules for one cotangent per input, and adds each into
the input's adjoint. No recursion, no topological sort: a chain of a million entries is a loop of
a million steps. It knows nothing about what an op means.

Everything about *how* cotangents are added lives in `Adjoints.add`, the one place that sums
broadcasting away, casts to the input's dtype and decides between adding in place and allocating
(JAX's `GradAccum`). Everything about *which* rule runs lives in `cotangents`. The rare modes
(create_graph, detect_anomaly) change only those two and what happens to an entry once it has
been gone through (`Pass.done`), never the loop.

Memory: an adjoint is dropped the moment its entry is processed, and without `retain_graph` the
entry's saved values are freed right after. Leaves' `.grad` are touched only at the very end, so a
sweep that raises leaves every `.grad` as it was.
"""

from __future__ import annotations

import numpy as np

from . import devices
from .errors import check_finite
from .forward import ForwardModeError, make_dual
from .tape import (
    ADJ,
    CONSUMED,
    F64_META,
    FAILED,
    FLAGS,
    INS,
    LEAF,
    META,
    OP,
    PARAMS,
    PERSISTENT,
    REFUSED,
    SAVED,
    SRC,
    TRACE_MAX_SIZE,
    VALUE,
    enable_grad,
    state,
)
from .tensor import CONSTANT, RESULT, TRACKED_LEAF, Tensor, _new_tensor

_EMPTY: dict = {}
_ndarray = np.ndarray
_f64 = np.float64
#: Adjoints this large are accumulated in place when the sweep owns them (a fresh large array costs
#: page faults, several times the addition); smaller ones are never written into, so the trace
#: may keep them by reference.
IN_PLACE_MIN_SIZE = TRACE_MAX_SIZE + 1


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


#: How many outer products a `LowRank` adjoint holds before it adds them into its dense part with one
#: matrix product. Measured on W5 (128 x 128 float64, one thread): a step's g xᵀ materialised and
#: added costs ~15 µs; held back and flushed 32 at a time, ~1-2 µs. Memory: the pairs held.
LOW_RANK_FLUSH = 32


class LowRank:
    """A matrix cotangent held as a dense part plus a sum of outer products: D + Σ u_k v_kᵀ.

    The cotangent of a weight W in W @ x (x a vector) is the outer product g xᵀ: an m x n array made
    and added into W's adjoint at every step of a loop, where the matrix-vector products themselves
    cost m·n multiply-adds too. A backend kernel (numpy_backend.matvec_vjp) hands the sweep the pair
    (g, x) instead; `Adjoints.add` keeps the pairs here, up to LOW_RANK_FLUSH of them, and adds them
    into the dense part with one matrix product (Uᵀ V, a GEMM, instead of k passes over m x n).
    The adjoint becomes an ordinary array when its slot is popped (`dense`), so every rule, the
    caller's captured adjoints and `.grad` only ever see arrays.

    The dense part is written into only when this adjoint owns it (it allocated it, or was handed a
    fresh array nobody else holds); the factors are never written into. `size` is 0 so that
    `Adjoints` never counts the object itself as an owned array.
    """

    __slots__ = ("us", "vs", "part", "owned", "tmp", "shape", "dtype")
    size = 0

    def __init__(self, u, v):
        self.us = [u]
        self.vs = [v]
        self.part = None  # the dense part D (None: zero)
        self.owned = False  # D may be written into
        self.tmp = None  # Uᵀ V of a flush, reused: a fresh m x n array per flush costs page faults
        self.shape = (u.shape[0], v.shape[0])
        self.dtype = u.dtype

    def extend(self, other: LowRank) -> None:
        """Add `other` (a LowRank nobody else holds) into this one."""
        self.us += other.us
        self.vs += other.vs
        if other.part is not None:
            self.add_dense(other.part, other.owned)
        if len(self.us) >= LOW_RANK_FLUSH:
            self.flush()

    def add_dense(self, ct, fresh: bool) -> None:
        """Add array `ct` (of this shape and dtype) into the dense part; `fresh`: nobody else holds it."""
        part = self.part
        if part is None:
            self.part, self.owned = ct, fresh and type(ct) is _ndarray
        elif self.owned:
            part += ct
        elif fresh and type(ct) is _ndarray:
            ct += part
            self.part, self.owned = ct, True
        else:
            self.part, self.owned = part + ct, True

    def flush(self) -> None:
        """Add the outer products held into the dense part, with one matrix product."""
        us, vs = self.us, self.vs
        if not us:
            return
        self.us, self.vs = [], []
        part = self.part
        out = None
        if part is not None and self.owned:
            out = self.tmp
            if out is None:
                out = self.tmp = np.empty(self.shape, self.dtype)
        if len(us) == 1:  # one pair (a sweep of one step, as tp.checkpoint_loop's are): no stacking
            prod = np.multiply(us[0][:, None], vs[0], out=out)
        else:
            # (m x k) @ (k x n); np.array stacks the NumPy vectors as np.stack does, without its Python
            prod = np.matmul(np.array(us).T, np.array(vs), out=out)
        if part is None:
            self.part, self.owned = prod, True
        elif self.owned:
            part += prod
        else:
            self.part, self.owned = part + prod, True

    def dense(self):
        """(the cotangent as an array, whether the sweep may own that array); the object is spent.

        A small array is never owned, as for every adjoint (`IN_PLACE_MIN_SIZE`): an owned cotangent
        always has that many elements, which the sweep's in-place paths rely on."""
        self.flush()
        self.tmp = None
        part = self.part
        return part, self.owned and part.size >= IN_PLACE_MIN_SIZE


class Adjoints:
    """The adjoint buffer: slot -> cotangent so far, and which of those arrays the sweep owns.

    An array is *owned* when this sweep allocated it and nobody else holds it: only those are
    added into in place. `differentiable` (create_graph) never adds in place: the adjoints are
    Tensors with history, and each sum must be recorded.
    """

    __slots__ = ("adj", "owned", "differentiable")

    def __init__(self, seeds: dict, differentiable: bool = False):
        self.adj = dict(seeds)
        self.owned: set = set()
        self.differentiable = differentiable

    def __bool__(self):
        return bool(self.adj)

    def pop(self, slot):
        """(adjoint, owned) of `slot`, removing it; (None, False) if nothing reached it."""
        g = self.adj.pop(slot, None)
        if g is None or slot not in self.owned:
            if type(g) is LowRank:
                return g.dense()
            return g, False
        self.owned.discard(slot)
        return g, True

    def add(self, slot, ct, meta, fresh, op, i) -> None:
        """Add cotangent `ct` (for input `i` of `op`) into the adjoint of `slot`.

        `meta` is the input's (shape, dtype): a broadcast or wider cotangent is fitted to it here,
        for every op. `fresh` says `ct` is an array nobody else holds, which may become owned. A
        `LowRank` cotangent (a kernel's, nobody else holds it) stays low rank in the adjoint until
        the slot is popped; dense cotangents of the same slot go into its dense part.
        """
        if meta is not None and (ct.shape != meta[0] or ct.dtype != meta[1]):
            try:
                ct = fit(ct, meta)
            except ValueError as exc:
                raise ValueError(
                    f"{op.name} (backward): the cotangent for input {i} has shape {ct.shape}, "
                    f"which cannot be summed to the input's shape {meta[0]}"
                ) from exc
            fresh = type(ct) is np.ndarray and ct.base is None
        adj = self.adj
        prev = adj.get(slot)
        if prev is None:
            adj[slot] = ct
            if fresh and ct.size >= IN_PLACE_MIN_SIZE:
                self.owned.add(slot)
        elif type(prev) is LowRank:
            if type(ct) is LowRank:
                prev.extend(ct)
            else:
                prev.add_dense(ct, fresh)
        elif type(ct) is LowRank:
            ct.add_dense(prev, slot in self.owned)
            self.owned.discard(slot)
            adj[slot] = ct
        elif self.differentiable:
            adj[slot] = prev + ct
        elif slot in self.owned and prev.shape == ct.shape:
            prev += ct
        elif fresh and ct.shape == prev.shape and ct.size >= IN_PLACE_MIN_SIZE:
            ct += prev
            adj[slot] = ct
            self.owned.add(slot)
        else:
            total = adj[slot] = prev + ct
            if type(total) is np.ndarray and total.size >= IN_PLACE_MIN_SIZE:
                self.owned.add(slot)


class Pass:
    """How one sweep runs: where it starts, what it hands back, what it frees.

    `wanted`: slots whose adjoints the caller wants (`tp.grads`, `Tape.gradient`); `low_rank`: a
    wanted leaf's adjoint that is a `LowRank` is handed back as it is, not as an array (a
    checkpointed loop adds its steps' weight cotangents as outer products, `segment.pull_back`);
    `retain`: keep the saved values (retain_graph); `differentiable`: rules run on Tensors under recording
    (create_graph); `dual`: rules run on dual numbers whose tangents were recorded inside `tp.jvp`,
    so the adjoints carry tangents (forward over reverse); `anomaly`: check every cotangent, and
    free nothing until the sweep succeeded.
    """

    __slots__ = ("store", "top", "wanted", "retain", "differentiable", "dual", "anomaly", "deferred", "low_rank")

    def __init__(self, store, top, wanted, retain, differentiable, anomaly, dual=False, low_rank=False):
        self.store, self.top, self.wanted, self.low_rank = store, top, wanted, low_rank
        self.retain, self.differentiable, self.anomaly = retain, differentiable, anomaly
        self.dual = dual  # inside tp.jvp: rules run on dual numbers (forward over reverse)
        self.deferred: list = []  # entries to free after the loop (under detect_anomaly)

    def done(self, entry) -> None:
        """The sweep went through `entry`: free its saved values now, later, or never (retain, or an
        entry of a persistent tape)."""
        flags = entry[FLAGS]
        if self.retain or flags & PERSISTENT:
            return
        if self.anomaly:  # keep everything until the sweep succeeds, so a raise changes nothing
            self.deferred.append(entry)
            return
        self.store.consume(entry)


def cotangents(entry, slot, g, g_owned, how: Pass):
    """(input index, input slot, cotangent, fresh) for each tracked input of `entry`.

    A backend's fused kernel, when one is installed and applies, computes them all in one pass;
    else the op's `vjp_all` rule, else one rule per input. `fresh` says the cotangent is an array
    nobody else holds (so the adjoint buffer may add into it in place).
    """
    op, ins = entry[OP], entry[INS]
    params = entry[PARAMS] or _EMPTY
    if how.differentiable:
        saved, g_owned = _differentiable_saved(how.store, entry, slot), False
    elif how.dual:
        saved, g_owned = _dual_saved(how.store, entry, slot), False
    else:
        saved = entry[SAVED] or op.no_saved
        if op.kernel_vjp is not None and type(g) is np.ndarray:
            # a kernel given an owned g returns it for one input at most (tests/test_backends.py); a
            # saved value (mul's cotangent 1·y is y) or a view it returns is never written into
            cts = op.kernel_vjp(g, saved, ins, g_owned)
            if cts is not None:
                return [
                    (i, s, c, type(c) is np.ndarray and c.base is None and not any(c is v for v in saved))
                    for i, s, c in zip(range(len(ins)), ins, cts)
                    if s >= 0 and c is not None
                ]
    return _rule_cotangents(op, ins, entry[META], saved, params, g, g_owned)


def _rule_cotangents(op, ins, meta, saved, params, g, g_owned):
    """`cotangents` from the op's rules: its `vjp_all`, else one rule per input."""
    if op.vjp_all is not None:  # a custom rule may return anything: never written into
        cts = op.vjp_all(g, *saved, **params)
        return [(i, s, cts[i], False) for i, s in enumerate(ins) if s >= 0 and cts[i] is not None]
    out = []
    for i, s in enumerate(ins):
        if s < 0:
            continue
        rule = op.vjp[i]
        if rule is None:
            # Not differentiable in this input (sign): it took part, so its cotangent is zeros, as in
            # PyTorch (zeros_like); a zero-stride view of the input's shape allocates nothing.
            out.append((i, s, _zero_cotangent(meta[i], g), False))
            continue
        ct = rule(g, *saved, **params)
        fresh = type(ct) is np.ndarray and ct.base is None and ct is not g
        out.append((i, s, ct, fresh))
    if g_owned:
        return _hand_on(out, g, meta)
    return out


def _hand_on(out, g, meta):
    """Pass the sweep's ownership of `g` on to an input that keeps `g` itself as its cotangent.

    A rule may return g for several inputs (add's): an input whose shape or dtype differs gets a
    new array from `Adjoints.add` (g summed or cast), and two adjoints sharing one array must never
    be added into in place. So g passes on to one input that keeps it, and each other one gets a copy
    of its own (the array a later add or rule would allocate for it anyway), unless a cotangent may
    be a view of g (then g stays unowned and shared), or g is too small for the sweep to own.
    `_sweep_plain` applies the same rule inline, and also counts an input that adds g into an
    adjoint it owns (in place) as not keeping g.
    """
    keepers = []
    for k, (i, _s, ct, fresh) in enumerate(out):
        if ct is g:
            m = meta[i]
            if m is None or (m[0] == g.shape and m[1] == g.dtype):
                keepers.append(k)
        elif not fresh and isinstance(ct, np.ndarray) and ct.base is not None:
            return out  # a view, which might be of g: keep g unowned
    if len(keepers) > 1 and g.size < IN_PLACE_MIN_SIZE:
        return out
    for n, k in enumerate(keepers):  # copies made before anything is added into g
        i, s, _ct, _ = out[k]
        out[k] = (i, s, g if n == 0 else g.copy(), True)
    return out


def _zero_cotangent(meta, g):
    """Zeros of the input's (shape, dtype) `meta`, on `g`'s device (0.0 for a non-array input)."""
    if meta is None:
        return 0.0
    shape, dtype = meta
    xp = devices.cupy() if devices.is_device_array(getattr(g, "array", g)) else np
    return xp.broadcast_to(xp.zeros((), dtype), shape)


def _sweep_entries(adj: Adjoints, how: Pass):
    """The loop: entries from `how.top` down, until no adjoint is pending.

    Returns (leaves reached as (leaf Tensor, adjoint, owned), {wanted slot: (adjoint, owned)}).
    """
    if not (how.differentiable or how.dual or how.anomaly):
        return _sweep_plain(adj, how)
    if how.dual and not how.anomaly:
        return _sweep_dual(adj, how)
    store = how.store
    entries = store.entries
    pending = adj.adj
    wanted, anomaly = how.wanted, how.anomaly
    leaves, captured = [], {}
    for slot in reversed([s for s in entries if s <= how.top]):
        if slot not in pending:
            continue
        g, g_owned = adj.pop(slot)
        entry = entries[slot]
        # the adjoint column of the evaluation trace: a small value itself, else (shape, dtype), which
        # is the value's (an adjoint has its value's shape and dtype)
        if isinstance(g, Tensor):
            entry[ADJ] = _small(g)
        else:
            entry[ADJ] = g if getattr(g, "size", 1) <= TRACE_MAX_SIZE else entry[VALUE]
        if slot in wanted:
            captured[slot] = (g, g_owned)
            g_owned = False  # handed to the caller: never written into again
        op = entry[OP]
        if op is LEAF:
            leaves.append((store.leaves[slot], g, g_owned))
        else:
            meta = entry[META]
            for i, s, ct, fresh in cotangents(entry, slot, g, g_owned, how):
                if anomaly:
                    if type(ct) is LowRank:  # checked as the op's cotangent, an array
                        ct, fresh = ct.dense()
                    what = f"backward, cotangent of input {i}"
                    check_finite(getattr(ct, "array", ct), op.name, what, entry[SRC], slot)
                adj.add(s, ct, meta[i], fresh, op, i)
            how.done(entry)
        if not pending:
            break
    return leaves, captured


def _sweep_plain(adj: Adjoints, how: Pass):
    """`_sweep_entries` for a plain pass (no create_graph, no tangents of tp.jvp, no detect_anomaly).

    The same steps as the general loop, with what it calls per entry written out inline for the
    common cases: `Adjoints.pop`, the kernel's gate, `cotangents` (one rule per input, called with
    the saved values unpacked: a call with ``*saved`` costs more than the rule's arithmetic), the
    adds of float64 scalars and the first add into an adjoint of the input's shape and dtype (of a
    rule's or a kernel's cotangent), an owned g passed on by a rule of several inputs (`_hand_on`'s
    rule, plus: an input that adds g into an adjoint the sweep owns does not hold it), and
    `Pass.done`. This loop runs once per recorded entry of every backward pass, where a Python call
    costs as much as the bookkeeping it would do; the rest (`vjp_all`, broadcasting, sums of arrays)
    goes through the general functions.
    """
    store = how.store
    entries = store.entries
    pending, owned = adj.adj, adj.owned
    pop, get = pending.pop, pending.get
    wanted = how.wanted
    free = not how.retain
    leaves, captured = [], {}
    top = how.top
    slots = list(entries)
    if slots and slots[-1] > top:
        slots = [s for s in slots if s <= top]
    consumed = 0  # Pass.done's count of newly consumed entries, written to the store once
    # Only a live Tape (a record() block's handle) can print a trace, and only of the entries below
    # logged_below: the adjoint column is written for those alone.
    logged = store.logged_below if store.tapes else 0
    try:
        for slot in reversed(slots):
            g = pop(slot, None)
            if g is None:
                continue
            if owned and slot in owned:
                owned.discard(slot)
                g_owned = True
            else:
                g_owned = False
            entry = entries[slot]
            tg = type(g)
            if tg is LowRank:  # a weight's adjoint held as outer products: an array from here on
                if how.low_rank and slot in wanted and entry[OP] is LEAF:
                    captured[slot] = (g, False)  # the caller goes on adding outer products to it
                    if not pending:
                        break
                    continue
                g, g_owned = g.dense()
                tg = type(g)
            if slot < logged:  # the trace's adjoint column: a small value itself, else its value's meta
                if tg is _f64:
                    entry[ADJ] = g
                elif tg is _ndarray:
                    entry[ADJ] = g if g.size <= TRACE_MAX_SIZE else entry[VALUE]
                elif isinstance(g, Tensor):
                    entry[ADJ] = _small(g)
                else:
                    entry[ADJ] = g if getattr(g, "size", 1) <= TRACE_MAX_SIZE else entry[VALUE]
            if wanted and slot in wanted:
                captured[slot] = (g, g_owned)
                g_owned = False  # handed to the caller: never written into again
            op = entry[OP]
            if op is LEAF:
                leaves.append((store.leaves[slot], g, g_owned))
                if not pending:
                    break
                continue
            ins = entry[INS]
            meta = entry[META]
            saved = entry[SAVED] or op.no_saved
            kernel = op.kernel_vjp
            cts = None
            if (
                kernel is not None
                and tg is _ndarray
                and (g_owned or not kernel.owned_only)
                and g.size >= kernel.min_size
            ):
                # a kernel given an owned g returns it for one input at most (tests/test_backends.py);
                # given `adj`, it may add a cotangent into an adjoint the sweep owns (None for that input)
                cts = kernel(g, saved, ins, g_owned, adj)
            if cts is not None:
                i = -1
                for s in ins:
                    i += 1
                    c = cts[i]
                    if s < 0 or c is None:
                        continue
                    if c is g:  # a kernel hands g back only when the sweep owns it
                        if meta[i] is entry[VALUE]:
                            # An adjoint has its value's shape and dtype, so g has the output's: where
                            # the input's meta is the output's (the one shared tuple of meta_of, as for
                            # every elementwise op), g fits the input as it is. The cases below, less
                            # their shape and dtype tests (g_owned: g has IN_PLACE_MIN_SIZE elements).
                            if s not in pending:
                                pending[s] = g
                                if g_owned:
                                    owned.add(s)
                                continue
                            if s in owned:
                                pending[s] += g
                                continue
                        fresh = g_owned
                    else:  # a saved value or a view a kernel returns is not fresh
                        fresh = type(c) is _ndarray and c.base is None
                        if fresh:
                            for v in saved:  # (a loop, not any(): no generator per cotangent)
                                if v is c:
                                    fresh = False
                                    break
                    m = meta[i]
                    tc = type(c)
                    if tc is _ndarray and m is not None and c.shape == m[0] and c.dtype == m[1]:
                        # Adjoints.add's common cases, inline: the first add, and an add into an
                        # adjoint the sweep owns (which has the input's shape and dtype)
                        if s not in pending:
                            pending[s] = c
                            if fresh and c.size >= IN_PLACE_MIN_SIZE:
                                owned.add(s)
                            continue
                        if s in owned:
                            pending[s] += c
                            continue
                    elif tc is LowRank:
                        prev = get(s)
                        if type(prev) is LowRank:  # outer products added to outer products
                            prev.extend(c)
                            continue
                    adj.add(s, c, m, fresh, op, i)
            elif op.vjp_all is not None:
                for i, s, ct, fresh in _rule_cotangents(op, ins, meta, saved, entry[PARAMS] or _EMPTY, g, g_owned):
                    adj.add(s, ct, meta[i], fresh, op, i)
            elif g_owned and len(ins) > 1:
                # An owned g that rules hand back as is, to several inputs (add's), passes on to one
                # of them at most (`_hand_on`'s rule, for `cotangents`): g added into an adjoint the
                # sweep owns is not held, and the inputs that would hold g wait in `keep` until every
                # cotangent is known. (No float64 scalars here: the sweep never owns one.)
                params = entry[PARAMS]
                n = 0 if params else len(saved)  # 3: a binary op's rule, called with its saved values unpacked
                vjp = op.vjp
                value = entry[VALUE]  # the output's meta when it has more than TRACE_MAX_SIZE elements
                keep = None
                i = -1
                for s in ins:
                    i += 1
                    if s < 0:
                        continue
                    rule = vjp[i]
                    if rule is None:
                        adj.add(s, _zero_cotangent(meta[i], g), meta[i], False, op, i)
                        continue
                    if n == 3:  # (*saved builds a tuple per call: twice the cost of add's rule itself)
                        ct = rule(g, saved[0], saved[1], saved[2])
                    elif params:
                        ct = rule(g, *saved, **params)
                    else:
                        ct = rule(g, *saved)
                    m = meta[i]
                    if ct is g:  # g has the output's shape and dtype: the input's, if its meta is the output's
                        if m is value or m is None or (ct.shape == m[0] and ct.dtype == m[1]):
                            if m is not None and s in owned:  # added in place: g not held
                                pending[s] += ct
                            elif keep is None:
                                keep = [i]
                            else:
                                keep.append(i)
                            continue
                        fresh = False  # summed or cast by Adjoints.add, into a new array
                    else:
                        fresh = type(ct) is _ndarray and ct.base is None
                        if not fresh and type(ct) is _ndarray:
                            g_owned = False  # a view, which might be of g: g is never written into
                    if m is not None and s not in pending and ct.shape == m[0] and ct.dtype == m[1]:
                        pending[s] = ct
                        if fresh and ct.size >= IN_PLACE_MIN_SIZE:
                            owned.add(s)
                    else:
                        adj.add(s, ct, m, fresh, op, i)
                if keep is not None:
                    # g passes on to the last input that holds it; each other one gets a copy of its own,
                    # made before g is handed on (so before anything is added into g), which the sweep
                    # owns too: the copy is the array an add or a rule would otherwise have allocated
                    # for that input later. (An owned g has IN_PLACE_MIN_SIZE elements.)
                    if g_owned:
                        last = keep[-1]
                        for i in keep:
                            c = g if i == last else g.copy()
                            s = ins[i]
                            m = meta[i]
                            if m is not None and s not in pending:
                                pending[s] = c
                                owned.add(s)
                            else:
                                adj.add(s, c, m, True, op, i)
                    else:
                        for i in keep:
                            adj.add(ins[i], g, meta[i], False, op, i)
            else:  # cotangents' last branch and Adjoints.add's first cases, inline, per input
                # The saved values are read by index, not unpacked into locals: a local would keep
                # them alive after the entry is freed, into the next entries' work (memory peaks).
                params = entry[PARAMS]
                n = 0 if params else len(saved)  # 0: through **params
                vjp = op.vjp
                i = -1
                for s in ins:
                    i += 1
                    if s < 0:
                        continue
                    rule = vjp[i]
                    if rule is None:
                        adj.add(s, _zero_cotangent(meta[i], g), meta[i], False, op, i)
                        continue
                    if n == 3:
                        ct = rule(g, saved[0], saved[1], saved[2])
                    elif n == 2:
                        ct = rule(g, saved[0], saved[1])
                    elif params:
                        ct = rule(g, *saved, **params)
                    else:
                        ct = rule(g, *saved)
                    m = meta[i]
                    if type(ct) is _f64 and m is F64_META:  # a float64 scalar: never owned, never written into
                        prev = get(s)
                        if prev is None:
                            pending[s] = ct
                        elif type(prev) is _f64:
                            pending[s] = prev + ct
                        else:
                            adj.add(s, ct, m, False, op, i)
                        continue
                    fresh = g_owned if ct is g else type(ct) is _ndarray and ct.base is None
                    if m is not None and s not in pending and ct.shape == m[0] and ct.dtype == m[1]:
                        pending[s] = ct
                        if fresh and ct.size >= IN_PLACE_MIN_SIZE:
                            owned.add(s)
                    else:
                        adj.add(s, ct, m, fresh, op, i)
            if free:  # Pass.done, inline (flags 0: the common case, one test)
                flags = entry[FLAGS]
                if not flags:
                    entry[SAVED] = None
                    entry[FLAGS] = CONSUMED
                    consumed += 1
                elif not flags & PERSISTENT:
                    entry[SAVED] = None
                    if not flags & CONSUMED:
                        entry[FLAGS] = flags | CONSUMED
                        consumed += 1
            if not pending:
                break
    finally:
        store.n_consumed += consumed
    return leaves, captured


def _small(g):
    """What the trace keeps of an adjoint: small values (plain arrays), else (shape, dtype)."""
    value = g.array if isinstance(g, Tensor) else g
    if getattr(value, "size", 1) <= TRACE_MAX_SIZE:
        return value
    return (value.shape, value.dtype)


def _differentiable_saved(store, entry, slot):
    """The entry's saved values as Tensors that carry history, for rules run under recording."""
    saved = entry[SAVED] or entry[OP].no_saved
    out = saved[0]
    lifted = [None if out is None else store.handle(slot, out)]
    for s, v in zip(entry[INS], saved[1:]):
        lifted.append(v if v is None or s < 0 else store.handle(s, v))
    return lifted


def _dual_saved(store, entry, slot):
    """The entry's saved values as dual numbers, with the tangents recorded inside `tp.jvp`."""
    saved = entry[SAVED]
    if not saved:  # nothing saved (add, sum, getitem): nothing to lift
        return entry[OP].no_saved
    known = store.tangents.get(slot)
    if not known:
        return saved
    level = max(known)
    t_out, t_ins = known[level]
    return [v if v is None or t is None else make_dual(v, t, level) for v, t in zip(saved, (t_out, *t_ins))]


def _sweep_dual(adj: Adjoints, how: Pass):
    """`_sweep_entries` for forward over reverse (`how.dual`, without detect_anomaly).

    The general loop's steps with what it calls per entry written out inline, as `_sweep_plain`
    does for a plain pass: `Adjoints.pop`, `cotangents` (the rules run on the saved values lifted
    to duals, `_dual_saved`), `Adjoints.add` for cotangents of the input's shape and dtype (the
    adjoints are `differentiable`: a sum is a new dual, never written into), and `Pass.done`. The
    trace's adjoint column is written only for entries a record() block may have logged: tp.hvp's
    are in no block. (W6: the sweep's own bookkeeping, rules and dual ops aside, went from 3.9k to
    2.4k bytecodes.)
    """
    store = how.store
    entries = store.entries
    logged = store.logged_below  # entries from this slot on are in no record() block's log
    pending, owned = adj.adj, adj.owned
    get = pending.get
    wanted = how.wanted
    leaves, captured = [], {}
    top = how.top
    slots = [s for s in entries if s <= top]
    for slot in reversed(slots):
        g = pending.pop(slot, None)
        if g is None:
            continue
        if slot in owned:
            owned.discard(slot)
            g_owned = True
        elif type(g) is LowRank:
            g, g_owned = g.dense()
        else:
            g_owned = False
        entry = entries[slot]
        if slot < logged:  # the trace's adjoint column: a small value itself, else its value's (shape, dtype)
            value = g._a if isinstance(g, Tensor) else g
            entry[ADJ] = value if getattr(value, "size", 1) <= TRACE_MAX_SIZE else entry[VALUE]
        if wanted and slot in wanted:
            captured[slot] = (g, g_owned)
            g_owned = False  # handed to the caller: never written into again
        op = entry[OP]
        if op is LEAF:
            leaves.append((store.leaves[slot], g, g_owned))
            if not pending:
                break
            continue
        ins = entry[INS]
        meta = entry[META]
        saved = _dual_saved(store, entry, slot)
        params = entry[PARAMS] or _EMPTY
        if op.vjp_all is not None:
            for i, s, ct, fresh in _rule_cotangents(op, ins, meta, saved, params, g, False):
                adj.add(s, ct, meta[i], fresh, op, i)
        else:  # `_rule_cotangents` and `Adjoints.add`'s first case, inline, per input
            vjp = op.vjp
            i = -1
            for s in ins:
                i += 1
                if s < 0:
                    continue
                rule = vjp[i]
                m = meta[i]
                if rule is None:
                    adj.add(s, _zero_cotangent(m, g), m, False, op, i)
                    continue
                ct = rule(g, *saved, **params) if params else rule(g, *saved)
                fresh = type(ct) is _ndarray and ct.base is None and ct is not g
                if m is not None:
                    v = ct._a if isinstance(ct, Tensor) else ct
                    if v.shape == m[0] and v.dtype == m[1]:
                        prev = get(s)
                        if prev is None:
                            pending[s] = ct
                            if fresh and ct.size >= IN_PLACE_MIN_SIZE:
                                owned.add(s)
                            continue
                        if type(prev) is not LowRank and type(ct) is not LowRank:
                            pending[s] = prev + ct  # adjoints with tangents: never added in place
                            continue
                adj.add(s, ct, m, fresh, op, i)
        saved = None  # the lifted values die with the entry's, not at the next entry
        how.done(entry)
        if not pending:
            break
    return leaves, captured


def _refuse(entry, slot):
    op = entry[OP].name
    src = f", recorded at {entry[SRC]}" if entry[SRC] else ""
    if entry[FLAGS] & FAILED:
        raise RuntimeError(
            f"backward: entry {slot} ({op}{src}) was released by an earlier backward pass that raised "
            "midway (see that exception); its saved values are gone: record the computation again"
        )
    if entry[FLAGS] & CONSUMED:
        raise RuntimeError(
            f"backward: entry {slot} ({op}{src}) was already released by an earlier backward pass; "
            "pass retain_graph=True to the first backward (or record with tp.record(persistent=True)) "
            "to go through the same history twice"
        )
    raise RuntimeError(
        f"backward: a value that entry {slot} ({op}{src}) saved for its gradient was changed by an "
        "in-place operation (x[...] = v, x += v) after it was recorded; write x = x + v instead"
    )


def _reachable(entries, seeds):
    """(slot, entry) of every entry (not a leaf) that a sweep from `seeds` can reach, last first."""
    need = set(seeds)
    top = max(seeds)
    for slot in reversed([s for s in entries if s <= top]):
        if slot not in need:
            continue
        entry = entries[slot]
        if entry[OP] is LEAF:
            continue
        yield slot, entry
        need.update(s for s in entry[INS] if s >= 0)


def _precheck(entries, seeds):
    """Refuse a consumed or stale entry before the sweep changes anything."""
    for slot, entry in _reachable(entries, seeds):
        if entry[FLAGS] & REFUSED:
            _refuse(entry, slot)


def _mark_failed(entries, seeds):
    """Flag FAILED every entry a sweep from `seeds` released before it raised.

    Those are the entries reachable from the seeds that are now CONSUMED: the sweep reaches only
    entries reachable from its seeds, and a reachable entry that an earlier pass had consumed was
    refused before this sweep began (`_precheck`). Found here, on the way out of a failed sweep,
    rather than listed by the loop as it goes: that would cost every pass a step per entry.
    """
    for _, entry in _reachable(entries, seeds):
        if entry[FLAGS] & CONSUMED:
            entry[FLAGS] |= FAILED


def sweep(store, seeds: dict, retain: bool, wanted=frozenset(), create_graph: bool = False, low_rank=False):
    """Run the reverse sweep from `seeds` (slot -> cotangent).

    Returns (leaves, captured): the adjoint of every leaf reached, as (leaf tensor, adjoint,
    whether the sweep allocated that array and nobody else holds it), and the adjoint of every
    slot in `wanted`. With `create_graph` the rules run on Tensors under recording (through NumPy
    dispatch), so the adjoints have history of their own. With `low_rank`, a wanted leaf's adjoint
    may be a `LowRank` (see `Pass`).
    """
    st = state()
    dual = bool(st.dual_depth and store.tangents)
    if dual and create_graph:
        raise ForwardModeError(
            "create_graph=True inside tp.jvp (reverse over forward over reverse) is not supported; "
            "take the outer derivative with tp.jvp or tp.jacfwd instead"
        )
    if store.n_consumed or store.n_stale:
        _precheck(store.entries, seeds)
    if create_graph:
        seeds = {s: g if isinstance(g, Tensor) else _new_tensor(g) for s, g in seeds.items()}
    how = Pass(store, max(seeds), wanted, retain, create_graph, st.anomaly, dual, low_rank)
    try:
        if create_graph:
            with enable_grad():
                result = _sweep_entries(Adjoints(seeds, differentiable=True), how)
        else:
            result = _sweep_entries(Adjoints(seeds, differentiable=dual), how)
    except BaseException:
        _mark_failed(store.entries, seeds)  # the entries it released: a later pass must say why
        raise
    for entry in how.deferred:
        store.consume(entry)
    return result


# ------------------------------------------------------------------------------------------------
# Seeds and entry points.


def _seed(t: Tensor, gradient, what: str, keep_history: bool = False):
    value = t._a  # not t.array, which would turn a float64 scalar into a 0-d array for good
    if gradient is None and type(value) is _f64:
        # A 0-d float64 result held as a scalar: a scalar seed keeps the adjoints scalars too, on which
        # the rules' arithmetic costs a fraction of what it costs on 0-d arrays.
        return _f64(1.0)
    if not hasattr(value, "shape"):  # a plain Python number
        return 1.0 if gradient is None else getattr(gradient, "array", gradient)
    if gradient is None:
        if t.array.size != 1:
            raise RuntimeError(
                f"{what}: a gradient can be created implicitly only for a scalar output; this output "
                f"has shape {t.shape}: pass gradient= (e.g. tp.ones_like(y)) or reduce it with tp.sum"
            )
        xp = np if isinstance(t.array, np.ndarray) else devices.cupy()
        return xp.ones_like(t.array)
    if keep_history and isinstance(gradient, Tensor) and gradient._role:
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
        if t._role is RESULT:
            return t._store
    return state().store


def backward(tensors, grad_tensors=None, retain_graph=False, create_graph=False) -> None:
    """Accumulate the gradients of `tensors` (seeded by `grad_tensors`) into the leaves' `.grad`."""
    tensors = _as_list(tensors)
    grad_tensors = _as_list(grad_tensors) if grad_tensors is not None else [None] * len(tensors)
    seeds = {}
    direct = []  # leaves differentiated with respect to themselves
    for t, gt in zip(tensors, grad_tensors):
        if not isinstance(t, Tensor) or t._role is CONSTANT:
            shape = getattr(t, "shape", ())
            raise RuntimeError(
                f"backward: this tensor (shape {shape}) has no history and does not require grad; "
                "compute it inside a `with tp.record():` block from tensors created with requires_grad=True"
            )
        g = _seed(t, gt, "backward", create_graph)
        if t._role is TRACKED_LEAF:
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
    if leaf._role is not TRACKED_LEAF:
        return
    if isinstance(g, Tensor):
        leaf.grad = g if leaf.grad is None else leaf.grad + g
    elif not hasattr(leaf._a, "shape"):  # a plain Python number
        leaf.grad = _new_tensor(g if leaf.grad is None else leaf.grad.array + g)
    elif leaf.grad is None and owned and type(g) is np.ndarray and g.dtype == leaf.dtype:
        leaf.grad = _new_tensor(g)
    elif leaf.grad is None or leaf.grad._role:
        # (`_a`, not `array`: reading a 0-d float64 leaf's `array` would make its scalar an array for good)
        xp = devices.cupy() if devices.is_device_array(leaf._a) else np
        new = xp.array(g, dtype=leaf.dtype, copy=True)
        leaf.grad = _new_tensor(new) if leaf.grad is None else leaf.grad + new
    else:
        leaf.grad.array += g


def _source_slot(store, src: Tensor) -> int:
    """The slot whose adjoint is the gradient for `src`, or -1 if the tape never saw it."""
    if src._role is RESULT:
        return src._slot
    if src._role is TRACKED_LEAF:
        return store.leaf_slots.get(id(src), -1)
    return -1


def gradients(outputs, sources, seeds_in, retain, create_graph=False):
    """Adjoints of `sources` for the sweep seeded from `outputs`; None where unreached."""
    store = _store_of(outputs + sources)
    seeds = {}
    unread = []  # leaves given a slot here only to be seeded (an output that is an input): dropped after
    for t, g in zip(outputs, seeds_in):
        if t._role is CONSTANT:
            continue
        if t._role is RESULT:
            slot = t._slot
        else:
            known = id(t) in store.leaf_slots
            slot = store.leaf_slot(t)
            if not known:
                unread.append(slot)
        seeds[slot] = seeds[slot] + g if slot in seeds else g
    source_slots = [_source_slot(store, x) for x in sources]
    wanted = {s for s in source_slots if s >= 0}
    captured = {}
    try:
        if seeds:
            _, captured = sweep(store, seeds, retain, wanted, create_graph)
    finally:
        for slot in unread:
            store.forget_unread_leaf(slot)
    result = []
    handed = set()  # ids of arrays already returned: two sources never share one
    for x, s in zip(sources, source_slots):
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
        if t._role is CONSTANT:
            raise RuntimeError(
                f"grads: an output (shape {t.shape}) has no history and does not require grad; "
                "compute it inside a `with tp.record():` block"
            )
    seeds = [_seed(t, g, "grads", create_graph) for t, g in zip(outs, gos)]
    if create_graph:
        with enable_grad():
            result = gradients(outs, ins, seeds, True, True)
    else:
        result = gradients(outs, ins, seeds, retain_graph)
    for k, g in enumerate(result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grads: input {k} (shape {ins[k].shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
    return tuple(result)
