"""The tape: entries of the Wengert list, how they are released, and who is recording.

Every recorded op appends one *entry* to this thread's `Store`, under a new *slot*: the integer
name of the entry's output value. An entry is a short list with one meaning per column (the
constants below): the op's row, the input slots (-1 for a constant), the params, the saved values
its rules need, the inputs' (shape, dtype), a reference count, flags, (under detect_anomaly) the
user's source line, what the evaluation trace prints (the value and adjoint when small, the numbers
among the constant inputs) and the entry's own slot.

Why a dict keyed by slot rather than positional columns: history must be released as soon as no
live Tensor can reach it (a training loop inside one long `record()` block runs in constant
memory, as in PyTorch). Live Tensors hold slot numbers, so slots can never be renumbered; a dict
keyed by slot frees an entry in O(1) and still iterates in recording order, which is the order the
reverse sweep walks backwards. (A list per entry is measured cheaper to build than a `__slots__`
object.) Integer struct-of-arrays columns are the format of a *compiled* program (tape/compiled/),
lowered from these entries once their shapes are fixed.

Reference counting: an entry's count is the number of live Tensor handles of its slot plus the
number of live entries that read it. When it drops to zero the entry is deleted and its inputs are
decremented in turn, iteratively (a chain of a million entries is released without recursion).
The leaves (inputs that require grad) have entries too, so that the sweep meets them in order;
the leaf Tensors themselves live in `Store.leaves`, for the sweep to accumulate into `.grad`.

Since entries are freed by these counts alone, the cyclic garbage collector has nothing to find in
them, yet a list is an object it tracks, and walks in every collection while the list lives: a long
recording made full collections of the whole process (a sixth of W5's time). So every UNTRACK_BATCH
slots the store takes the entries made since off the collector's lists (`untrack_entries`,
tape/untrack.py), as PyTorch's graph nodes, C++ objects, are never on them.

The bottom of this module holds the per-thread recording state and its switches (`no_grad`,
`enable_grad`, `detect_anomaly`); `record()` and the `Tape` handle are in record.py.
"""

from __future__ import annotations

import contextvars
import os
import sys
import weakref
from itertools import islice

import numpy as np

from .devices import cupy
from .opcodes import Op
from .tensor import RC_COLUMN, RESULT, Tensor, _tensor_with_history
from .untrack import untrack

# Columns of an entry. VALUE, ADJ and CONSTS are what `Tape.trace()` prints: the output and its
# adjoint (themselves if small, else their (shape, dtype)) and the numbers among the constant inputs.
OP, INS, PARAMS, SAVED, META, VALUE, RC, FLAGS, SRC, ADJ, CONSTS, SLOT = range(12)
assert RC == RC_COLUMN  # Tensor.__del__ decrements it without importing this module
# Flags.
CONSUMED = 1  # a backward pass without retain_graph went through it; its saved values are gone
STALE = 2  # a value it saved was changed in place after recording
FAILED = 4  # released by a backward pass that then raised midway
PERSISTENT = 8  # recorded inside tp.record(persistent=True): backward passes never free it
REFUSED = CONSUMED | STALE | FAILED  # flags a backward pass refuses to go through

#: Every UNTRACK_BATCH slots, the entries recorded since are taken off the cyclic garbage collector's
#: lists (tape/untrack.py): an entry is freed by the store's reference counts, never by the collector.
UNTRACK_BATCH = 256
UNTRACK_BATCH_MASK = UNTRACK_BATCH - 1

#: Values and adjoints up to this many elements are kept for `Tape.trace()`.
TRACE_MAX_SIZE = 16

_SCALARS = (int, float, np.generic)


class _LeafOp:
    """The op of a leaf entry (an input of the tape, not an operation): opcode `Op.LEAF`."""

    code = Op.LEAF
    name = "leaf"


LEAF = _LeafOp()


def summary(value):
    """What the trace keeps of a value: itself if it has at most TRACE_MAX_SIZE elements, else
    its (shape, dtype)."""
    if getattr(value, "size", 1) <= TRACE_MAX_SIZE:
        return value
    return meta_of(value)


class _Meta(tuple):
    """A value's (shape, dtype), the one shared tuple `meta_of` hands out for that pair.

    Its own type so that an entry's VALUE column says, with one type test, that it holds a meta (a
    value of more than TRACE_MAX_SIZE elements) and not the value itself: `append1`/`append2` read a
    result input's meta there instead of looking it up again from its array.
    """

    __slots__ = ()


_METAS: dict = {}


def meta_of(a) -> tuple:
    """(a.shape, a.dtype), one shared tuple per distinct pair.

    Entries keep their inputs' (shape, dtype) for the sweep; sharing the tuples means an entry
    allocates no container for them. Fresh tuples measured the same instructions but more time
    (20% on a chain of 100-element ops): more objects per entry, more memory traffic and GC work.
    """
    key = (a.shape, a.dtype)
    meta = _METAS.get(key)
    if meta is None:
        if len(_METAS) > 4096:  # a program with ever-new shapes: start again rather than grow
            _METAS.clear()
            _ONE_META.clear()
            _TWO_METAS.clear()
            _METAS[F64_META] = F64_META
        meta = _METAS[key] = _Meta(key)
    return meta


def _meta_or_none(x):
    """`meta_of(x)`, or None for a value that is not an array (the core works on Python floats too)."""
    try:
        return meta_of(x)
    except AttributeError:
        return None


# An entry's META column, (meta,) or (meta0, meta1), shared the same way (None metas included).
_ONE_META: dict = {}
_TWO_METAS: dict = {}


def _metas(*metas) -> tuple:
    table = _ONE_META if len(metas) == 1 else _TWO_METAS
    key = metas[0] if len(metas) == 1 else metas
    return table.setdefault(key, metas)


_new = object.__new__
_F64 = np.float64
_ndarray = np.ndarray
#: The meta of a 0-d float64 value carried as a NumPy scalar (Tensor._a): one shared tuple, which the
#: sweep recognises by identity (meta_of hands out the same one for 0-d float64 arrays).
F64_META = _Meta(((), np.dtype(np.float64)))
_METAS[F64_META] = F64_META
_F64_METAS = (F64_META,)


class Store:
    """This thread's entries, keyed by slot, in recording order."""

    __slots__ = (
        "entries",
        "leaves",
        "leaf_slots",
        "next",
        "n_consumed",
        "n_stale",
        "tangents",
        "new_flags",
        "log",
        "log_until",
        "n_leaves",
        "n_handles",
        "logged_below",
        "tapes",
        "untracked_below",
    )

    def __init__(self):
        self.entries: dict[int, list] = {}
        # slot -> leaf Tensor, and id(leaf Tensor) -> slot. Per store, not on the Tensor: a leaf
        # (the weights) may be read by several threads' tapes at once. The store holds the Tensor,
        # so its id is not reused while the entry exists.
        self.leaves: dict[int, Tensor] = {}
        self.leaf_slots: dict[int, int] = {}
        self.next = 1
        self.n_consumed = 0
        self.n_stale = 0
        self.new_flags = 0  # PERSISTENT inside a tp.record(persistent=True) block
        # slot -> {jvp level: (output tangent, input tangents)} of entries recorded inside tp.jvp
        # (forward over reverse): a sweep run inside that jvp lifts their saved values to duals.
        self.tangents: dict[int, dict] = {}
        # The open record() blocks' log (record.py): each entry with a slot below `log_until` (0: no
        # block is logging), in recording order. It may outlive the entries: `release` empties their
        # SAVED and PARAMS columns, so the log keeps no arrays but the trace's small values.
        self.log: list | None = None
        self.log_until = 0
        self.n_leaves = 0  # leaf entries made so far: a block's operations are its slots minus these
        # Live Tensor handles on results of this store (made in append1/append2 and by
        # tensor._tensor_with_history, dropped in Tensor.__del__): at zero nothing can reach any entry.
        self.n_handles = 0
        self.logged_below = 0  # entries with a lower slot may be in some record() block's log
        self.tapes = weakref.WeakSet()  # the live Tape handles of record() blocks: they hold the logs
        self.untracked_below = 0  # entries below this slot are off the cyclic collector's lists

    # -- appending ----------------------------------------------------------------------------
    def leaf_slot(self, t) -> int:
        """The slot of leaf Tensor `t` on this store, adding its entry on first use."""
        slot = self.leaf_slots.get(id(t))
        if slot is not None:
            return slot
        slot = self.next
        self.next = slot + 1
        entry = self.entries[slot] = [LEAF, (), None, None, None, summary(t._a), 0, 0, None, None, None, slot]
        self.leaves[slot] = t
        self.leaf_slots[id(t)] = slot
        self.n_leaves += 1
        if slot < self.log_until:
            self.log.append(entry)
        return slot

    def append(self, op, args, arrays, out, params, src=None):
        """Append an entry for `op`; return the output Tensor, which holds the new slot.

        `args` are the op's arguments (Tensors or raw values), `arrays` their raw values, `out`
        the forward's result; `src` is the user's source line, recorded under detect_anomaly only.
        """
        n = len(args)
        if n == 2:
            return self.append2(op, args[0], args[1], arrays[0], arrays[1], out, params, src)
        if n == 1:
            return self.append1(op, args[0], arrays[0], out, params, src)
        ins, meta = self._inputs(args, arrays)
        consts = _constants(ins, arrays) if -1 in ins else None
        return self._entry(op, ins, params, op.saved(out, arrays, ins), meta, out, consts, src)

    # append1 and append2 run once per recorded op (the public functions of one- and two-input rows
    # call them directly): everything is written out inline, as each Python call costs about as much
    # as the bookkeeping it would hide. Metas are the shared tuples of meta_of; a float64 scalar's is
    # F64_META, without reading its shape and dtype.

    def append1(self, op, a, x, out, params=None, src=None):
        """`append` for an op of one input: `a` (a tracked Tensor) whose value is `x`."""
        entries = self.entries
        if a._store is self:  # a result of this store (only results hold a store)
            s0 = a._slot
            e0 = entries[s0]
            m0 = e0[VALUE]  # a result's meta, when it has more than TRACE_MAX_SIZE elements
        else:  # a leaf already on this store (Store.leaf_slot, inline), else the general lookup
            s0 = self.leaf_slots.get(id(a)) or self._tracked_slot(a)
            e0 = entries[s0]
            m0 = None
        e0[RC] += 1
        ins = (s0,)
        if type(x) is _F64:
            meta = _F64_METAS
        else:
            if type(m0) is not _Meta:  # a leaf, or a result of TRACE_MAX_SIZE elements or fewer
                m0 = _meta_or_none(x)
            meta = _ONE_META.get(m0) or _metas(m0)
        if type(out) is _F64:
            value = out
        else:
            try:
                value = out if out.size <= TRACE_MAX_SIZE else _METAS.get((out.shape, out.dtype)) or meta_of(out)
            except AttributeError:  # a Python number
                value = out
        slot = self.next
        self.next = slot + 1
        k = op.save1  # op.saved(out, (x,), ins), inline (registry._save_flags)
        if k == 1:
            saved = (out, None)
        elif k == 2:
            saved = (None, x)
        elif not k:
            saved = None
        else:
            saved = op.saved(out, (x,), ins)
        entry = entries[slot] = [op, ins, params, saved, meta, value, 1, self.new_flags, src, None, None, slot]
        if slot < self.log_until:  # _log_entry, inline
            if type(value) is _ndarray and value.base is not None:  # (value is out, or its meta)
                entry[VALUE] = value.copy()
            self.log.append(entry)
        if not slot & UNTRACK_BATCH_MASK:
            self.untrack_entries(slot)
        self.n_handles += 1
        t = _new(Tensor)  # tensor._tensor_with_history, inline
        t._a = out
        t._slot = slot
        t._store = self
        t._role = RESULT
        t.grad = None
        return t

    def append2(self, op, a, b, x, y, out, params=None, src=None):
        """`append` for an op of two inputs `a`, `b` (Tensors or raw values, one of them tracked)
        whose values are `x`, `y`."""
        entries = self.entries
        if isinstance(a, Tensor) and a._role:
            # a float64 scalar's meta is F64_META; a result's is in its producer's VALUE column when it
            # has more than TRACE_MAX_SIZE elements (as in append1); else it is looked up
            if a._store is self:
                s0 = a._slot
                e0 = entries[s0]
                e0[RC] += 1
                if type(x) is _F64:
                    m0 = F64_META
                else:
                    m0 = e0[VALUE]
                    if type(m0) is not _Meta:
                        m0 = _meta_or_none(x)
            else:
                s0 = self.leaf_slots.get(id(a)) or self._tracked_slot(a)
                entries[s0][RC] += 1
                m0 = F64_META if type(x) is _F64 else _meta_or_none(x)
            consts = None
        else:
            s0 = -1
            m0 = None
            consts = (x if isinstance(x, _SCALARS) else None, None)
        if isinstance(b, Tensor) and b._role:
            if b._store is self:
                s1 = b._slot
                e1 = entries[s1]
                e1[RC] += 1
                if type(y) is _F64:
                    m1 = F64_META
                else:
                    m1 = e1[VALUE]
                    if type(m1) is not _Meta:
                        m1 = _meta_or_none(y)
            else:
                s1 = self.leaf_slots.get(id(b)) or self._tracked_slot(b)
                entries[s1][RC] += 1
                m1 = F64_META if type(y) is _F64 else _meta_or_none(y)
        else:
            s1 = -1
            m1 = None
            consts = (None, y if isinstance(y, _SCALARS) else None)
        ins = (s0, s1)
        meta = _TWO_METAS.get((m0, m1)) or _metas(m0, m1)
        if type(out) is _F64:
            value = out
        else:
            try:
                value = out if out.size <= TRACE_MAX_SIZE else _METAS.get((out.shape, out.dtype)) or meta_of(out)
            except AttributeError:  # a Python number
                value = out
        slot = self.next
        self.next = slot + 1
        keep = op.save2  # op.saved(out, (x, y), ins), inline (registry._save_flags)
        if keep is None:
            saved = op.saved(out, (x, y), ins)
        else:
            keep = keep[(s0 >= 0) + 2 * (s1 >= 0)]
            saved = keep and (out if keep[0] else None, x if keep[1] else None, y if keep[2] else None)
        entry = entries[slot] = [op, ins, params, saved, meta, value, 1, self.new_flags, src, None, consts, slot]
        if slot < self.log_until:  # _log_entry, inline
            if type(value) is _ndarray and value.base is not None:  # (value is out, or its meta)
                entry[VALUE] = value.copy()
            self.log.append(entry)
        if not slot & UNTRACK_BATCH_MASK:
            self.untrack_entries(slot)
        self.n_handles += 1
        t = _new(Tensor)  # tensor._tensor_with_history, inline
        t._a = out
        t._slot = slot
        t._store = self
        t._role = RESULT
        t.grad = None
        return t

    def _entry(self, op, ins, params, saved, meta, out, consts, src):
        """Add the entry (op, ins, params, saved, meta, constants shown in the trace); the output Tensor."""
        try:
            value = out if out.size <= TRACE_MAX_SIZE else _METAS.get((out.shape, out.dtype)) or meta_of(out)
        except AttributeError:  # a Python number
            value = out
        slot = self.next
        self.next = slot + 1
        entry = self.entries[slot] = [op, ins, params, saved, meta, value, 1, self.new_flags, src, None, consts, slot]
        if slot < self.log_until:
            self._log_entry(entry, out)
        if not slot & UNTRACK_BATCH_MASK:
            self.untrack_entries(slot)
        return _tensor_with_history(out, slot, self)

    def untrack_entries(self, top: int) -> None:
        """Take the entries made since the last call off the cyclic collector's lists (tape/untrack.py):
        called at every UNTRACK_BATCH-th slot `top`."""
        # The newest entries, as many as slots were made since the last call: every entry made since
        # that is alive, plus older ones where some were released (untracked already, or leaves and
        # long-kept results, which may go too). Iterated in C: about 45 ns per entry in all.
        untrack(islice(reversed(self.entries.values()), top - self.untracked_below))
        self.untracked_below = top

    def _log_entry(self, entry, out):
        """Add a new entry to the open record() blocks' log (record.py)."""
        if entry[VALUE] is out and type(out) is np.ndarray and out.base is not None:
            entry[VALUE] = out.copy()  # a small view (x[:2]) must not keep its base alive in the log
        self.log.append(entry)

    def _tracked_slot(self, a) -> int:
        """The slot of tracked input `a` that is not a result of this store: a leaf's (added on
        first use), or an error for a result recorded on another thread's tape."""
        if a._role is RESULT:
            raise RuntimeError(
                f"a tensor recorded on another thread's tape (shape {a.shape}) was used here: "
                "tapes are per thread; compute it in this thread, or pass x.detach()"
            )
        return self.leaf_slot(a)

    def _inputs(self, args, arrays):
        """(input slots, input metas) of an op with any number of inputs; each tracked input is
        counted as read by the new entry. A constant's slot is -1, its meta None."""
        ins, meta = [], []
        for a, arr in zip(args, arrays):
            if isinstance(a, Tensor) and a._role:
                s = a._slot if a._role is RESULT and a._store is self else self._tracked_slot(a)
                self.entries[s][RC] += 1
                ins.append(s)
                meta.append(_meta_or_none(arr))
            else:
                ins.append(-1)
                meta.append(None)
        return tuple(ins), tuple(meta)

    def revalue(self, slot: int, value) -> None:
        """A result's array was replaced (`Tensor.array = ...`): its entry's VALUE column follows, since
        the entries recorded next read their inputs' shapes and dtypes there (`append1`)."""
        entry = self.entries.get(slot)
        if entry is not None:
            entry[VALUE] = summary(value)

    def handle(self, slot: int, value) -> Tensor:
        """Another Tensor handle on `slot` (it holds a reference, like the first one)."""
        leaf = self.leaves.get(slot)
        if leaf is not None:
            return leaf
        self.entries[slot][RC] += 1
        return _tensor_with_history(value, slot, self)

    # -- releasing ----------------------------------------------------------------------------
    def release(self, slot: int) -> None:
        """Drop one reference to `slot`; delete every entry that no longer has any."""
        entries = self.entries
        entry = entries.get(slot)
        if entry is None:
            return
        if entry[RC] > 1:  # the common case: someone still reads it
            entry[RC] -= 1
            return
        # `stack` holds slots whose last reference is being dropped: each is deleted when popped, and
        # an input is pushed only when this drop is its last reference (else just decremented). This
        # runs once per entry of every history that dies: the lookups are bound once, out of the loop.
        stack = [slot]
        pop, get, push = entries.pop, entries.get, stack.append
        tangents = self.tangents
        consumed = stale = 0  # the counters' changes, written back once (a release may re-enter)
        try:
            while stack:
                s = stack.pop()
                entry = pop(s, None)
                if entry is None:  # released meanwhile (a tangent's handle, dropped above, re-entered)
                    continue
                entry[RC] = 0
                entry[SAVED] = entry[PARAMS] = None  # a record() block's log may keep the entry: no arrays
                if tangents:
                    tangents.pop(s, None)
                flags = entry[FLAGS]
                if flags:
                    consumed += flags & CONSUMED
                    stale += (flags & STALE) >> 1
                if entry[OP] is LEAF:
                    del self.leaf_slots[id(self.leaves.pop(s))]
                    continue
                for i in entry[INS]:
                    if i >= 0:
                        e = get(i)
                        if e is not None:
                            if e[RC] > 1:
                                e[RC] -= 1
                            else:
                                push(i)
        finally:
            self.n_consumed -= consumed
            self.n_stale -= stale

    def drop_history(self) -> None:
        """Delete every entry at once: Tensor.__del__ calls this when the last handle on a result of
        this store dies, after which no Tensor can reach any entry (what `release` would find entry by
        entry, done here by one dict clear). Leaves go too: a leaf read again gets a new entry."""
        bound = self.logged_below
        if bound and self.tapes:  # a live Tape's log may keep these entries: release's emptying, for them
            for slot, entry in self.entries.items():
                if slot >= bound:
                    break
                entry[SAVED] = entry[PARAMS] = None
        self.entries.clear()
        self.leaves.clear()
        self.leaf_slots.clear()
        self.tangents.clear()
        self.n_consumed = self.n_stale = 0

    def forget_unread_leaf(self, slot: int) -> None:
        """Delete the entry of a leaf that no entry reads (a leaf given a slot only to seed a sweep)."""
        entry = self.entries.get(slot)
        if entry is not None and entry[OP] is LEAF and entry[RC] == 0:
            del self.entries[slot]
            del self.leaf_slots[id(self.leaves.pop(slot))]  # n_leaves counts slots made: it stays

    def consume(self, entry) -> None:
        """Free an entry's saved values after a backward pass went through it without retain_graph.

        (sweep._sweep_plain does the same inline, for speed: keep the two alike.)"""
        entry[SAVED] = None
        if not entry[FLAGS] & CONSUMED:
            entry[FLAGS] |= CONSUMED
            self.n_consumed += 1

    def mark_overwritten(self, array, scalar=None) -> None:
        """An in-place op is about to change `array`: flag every entry that saved (a view of) it,
        or `scalar`, the float64 scalar the tensor held before `array` was made from it.

        This costs nothing at record time; the backward pass refuses a flagged entry when it gets
        there (API §8). `may_share_memory` also catches views, e.g. a saved slice of `array`.
        """
        may_share = _may_share_memory(array)
        for entry in self.entries.values():
            saved = entry[SAVED]
            if saved is None or entry[FLAGS] & STALE:
                continue
            for v in saved:
                if v is None:
                    continue
                if (scalar is not None and v is scalar) or (
                    hasattr(v, "shape") and type(v) is type(array) and may_share(v, array)
                ):
                    entry[FLAGS] |= STALE
                    self.n_stale += 1
                    break


def _constants(ins, arrays) -> tuple:
    """The values of an entry's constant inputs that are numbers, for the trace (None elsewhere)."""
    return tuple([a if s < 0 and isinstance(a, _SCALARS) else None for s, a in zip(ins, arrays)])


def _may_share_memory(array):
    if isinstance(array, np.ndarray):
        return np.may_share_memory
    return cupy().may_share_memory


def user_line() -> str:
    """'file:line' of the innermost frame outside this package (recorded under detect_anomaly)."""
    pkg = os.path.dirname(__file__)
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(pkg):
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "?"


# ------------------------------------------------------------------------------------------------
# Who is recording. Whether operations are recorded is per thread (and per asyncio task): the
# state lives in a `contextvars.ContextVar`, so two threads never write into each other's tape.
# Each thread has one store; a `record()` block (record.py) is a window onto the entries appended
# while it was active, which is why a result of one block can feed the next, and why blocks nest.


class _State:
    __slots__ = ("recording", "anomaly", "store", "active", "dual_depth", "dual_levels")

    def __init__(self, store):
        self.recording = False
        self.anomaly = False
        self.dual_depth = 0  # forward-mode (jvp) calls in progress
        self.dual_levels = 0  # levels handed out so far, so nested jvps never confuse their tangents
        self.store = store
        self.active = None  # innermost Tape handle, for tp.checkpoint and friends


_STATE: contextvars.ContextVar[_State] = contextvars.ContextVar("tape_state")


def _new_state() -> _State:
    state = _State(Store())
    _STATE.set(state)
    return state


def state() -> _State:
    """This thread's recording state (created on first use)."""
    return _STATE.get(None) or _new_state()


def is_recording() -> bool:
    """True inside a `record()` block (and not inside `no_grad()`)."""
    return state().recording


class _Switch:
    """A context that sets one field of the thread's state and puts it back on exit."""

    field = ""
    value = False

    def __enter__(self):
        st = state()
        self._saved = getattr(st, self.field)
        setattr(st, self.field, self.value)
        return self

    def __exit__(self, *exc):
        setattr(state(), self.field, self._saved)
        return False


class no_grad(_Switch):
    """Pause recording inside a `record()` block (results computed here have no history).

    >>> import tape as tp
    >>> x = tp.tensor(2.0, requires_grad=True)
    >>> with tp.record():
    ...     with tp.no_grad():
    ...         y = x * 3
    >>> y.requires_grad
    False
    """

    field, value = "recording", False


class enable_grad(_Switch):
    """Turn recording back on inside `no_grad()` (used by the differentiable sweep)."""

    field, value = "recording", True


class detect_anomaly(_Switch):
    """Raise `FloatingPointError` at the first op, forward or backward, that makes NaN or Inf.

    The message names the op, the entry's index on the tape and the source line that recorded it.

    >>> import tape as tp
    >>> x = tp.tensor(-1.0, requires_grad=True)
    >>> with tp.detect_anomaly(), tp.record():
    ...     y = tp.sqrt(x)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    FloatingPointError: sqrt (forward) produced NaN ...
    """

    field, value = "anomaly", True
