"""The tape: rows of the Wengert list, and how they are released.

Every recorded op appends one *row* to this thread's `Store`, under a new *slot*: the integer
name of the row's output value. A row is a short list (see the column constants below): the op,
the input slots (-1 for a constant), the params, the saved values its rule needs, the input shapes
and dtypes, the small values kept for printing, and a reference count.

Why a dict keyed by slot rather than positional columns: history must be released as soon as no
live Tensor can reach it (a training loop inside one long `record()` block runs in constant
memory, as in PyTorch). Live Tensors hold slot numbers, so slots can never be renumbered; a dict
keyed by slot frees a row in O(1) and still iterates in recording order, which is the order the
reverse sweep walks backwards.

Reference counting: a row's count is the number of live Tensor handles of its slot plus the
number of live rows that read it. When it drops to zero the row is deleted and its inputs are
decremented in turn, iteratively (a chain of a million rows is released without recursion).
Leaf rows (inputs that require grad) hold the leaf Tensor, so the sweep can accumulate into
`.grad`, and are counted by their readers only.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .tensor import Tensor, _tensor_with_history

# Columns of a row.
OP, INS, PARAMS, SAVED, META, VALUE, ADJ, RC, FLAGS, SRC = range(10)
# Flags.
CONSUMED = 1  # a backward pass without retain_graph went through it; its saved values are gone
STALE = 2  # a value it saved was changed in place after recording
FAILED = 4  # released by a backward pass that then raised midway

#: Values and adjoints up to this many elements are kept for `Tape.trace()`.
TRACE_MAX_SIZE = 16


_SCALARS = (int, float, np.generic)


class _Leaf:
    """The op of a leaf row (an input of the tape, not an operation)."""

    code = 0
    name = "leaf"


LEAF = _Leaf()


class Store:
    """This thread's rows, keyed by slot, in recording order."""

    __slots__ = ("rows", "next", "n_consumed", "n_stale", "leaf_slots")

    def __init__(self):
        self.rows: dict[int, list] = {}
        # id(leaf Tensor) -> its row's slot. Per store, not on the Tensor: a leaf (the weights) may
        # be read by several threads' tapes at once. The leaf row holds the Tensor, so its id is
        # not reused while the entry exists.
        self.leaf_slots: dict[int, int] = {}
        self.next = 1
        self.n_consumed = 0
        self.n_stale = 0

    # -- appending ----------------------------------------------------------------------------
    def leaf_slot(self, t) -> int:
        """The slot of leaf Tensor `t` on this store, adding its row on first use."""
        slot = self.leaf_slots.get(id(t))
        if slot is not None:
            return slot
        slot = self.next
        self.next = slot + 1
        self.rows[slot] = [LEAF, (), None, t, None, None, None, 0, 0, None]
        self.leaf_slots[id(t)] = slot
        return slot

    def record(self, d, args, arrays, out, params, src=None):
        """Append a row for op `d`; return the output Tensor, which holds the new slot.

        `src` is the user's source line, recorded under detect_anomaly only.
        """
        rows = self.rows
        if len(args) == 1:  # most ops: build the tuples directly (fewer short-lived containers for the GC)
            s0, m0 = self._input(args[0], arrays[0])
            ins, meta = (s0,), (m0,)
        elif len(args) == 2:
            s0, m0 = self._input(args[0], arrays[0])
            s1, m1 = self._input(args[1], arrays[1])
            ins, meta = (s0, s1), (m0, m1)
        else:
            pairs = [self._input(a, arr) for a, arr in zip(args, arrays)]
            ins, meta = tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
        slot = self.next
        self.next = slot + 1
        value = out if getattr(out, "size", 1) <= TRACE_MAX_SIZE else (out.shape, out.dtype)
        rows[slot] = [d, ins, params, d.saved(out, arrays), meta, value, None, 1, 0, src]
        return _tensor_with_history(out, slot, self)

    def _input(self, a, arr):
        """(slot, meta) of one input: its slot (-1 for a constant), counted as read by the new row,
        and its (shape, dtype); for a constant, the value itself if it is a number (for the trace)."""
        if isinstance(a, Tensor) and a._rg:
            if a._rg == 2:
                if a._store is not self:
                    raise RuntimeError(
                        f"a tensor recorded on another thread's tape (shape {a.shape}) was used here: "
                        "tapes are per thread; compute it in this thread, or pass x.detach()"
                    )
                s = a._slot
            else:
                s = self.leaf_slot(a)
            self.rows[s][RC] += 1
            try:
                return s, (arr.shape, arr.dtype)
            except AttributeError:  # a non-array value (the core works on Python floats too)
                return s, None
        return -1, (arr if isinstance(arr, _SCALARS) else None)

    def handle(self, slot: int, value) -> Tensor:
        """Another Tensor handle on `slot` (it holds a reference, like the first one)."""
        row = self.rows[slot]
        if row[OP] is LEAF:
            return row[SAVED]
        row[RC] += 1
        return _tensor_with_history(value, slot, self)

    # -- releasing ----------------------------------------------------------------------------
    def release(self, slot: int) -> None:
        """Drop one reference to `slot`; delete every row that no longer has any."""
        rows = self.rows
        row = rows.get(slot)
        if row is not None and row[RC] > 1:  # the common case: someone still reads it
            row[RC] -= 1
            return
        stack = [slot]
        while stack:
            s = stack.pop()
            row = rows.get(s)
            if row is None:
                continue
            row[RC] -= 1
            if row[RC] > 0:
                continue
            del rows[s]
            flags = row[FLAGS]
            if flags:
                self.n_consumed -= flags & CONSUMED
                self.n_stale -= (flags & STALE) >> 1
            if row[OP] is LEAF:
                del self.leaf_slots[id(row[SAVED])]
            else:
                stack.extend(i for i in row[INS] if i >= 0)

    def consume(self, row) -> None:
        """Free a row's saved values after a backward pass went through it without retain_graph."""
        row[SAVED] = None
        if not row[FLAGS] & CONSUMED:
            row[FLAGS] |= CONSUMED
            self.n_consumed += 1

    def mark_overwritten(self, array) -> None:
        """An in-place op is about to change `array`: flag every row that saved (a view of) it.

        This costs nothing at record time; the backward pass refuses a flagged row when it gets
        there (API §8). `may_share_memory` also catches views, e.g. a saved slice of `array`.
        """
        may_share = _may_share_memory(array)
        for row in self.rows.values():
            saved = row[SAVED]
            if saved is None or row[OP] is LEAF or row[FLAGS] & STALE:
                continue
            for v in saved:
                if v is not None and hasattr(v, "shape") and type(v) is type(array) and may_share(v, array):
                    row[FLAGS] |= STALE
                    self.n_stale += 1
                    break


def _may_share_memory(array):
    if isinstance(array, np.ndarray):
        return np.may_share_memory
    import cupy

    return cupy.may_share_memory


def _user_line() -> str:
    """'file:line' of the innermost frame outside this package (recorded under detect_anomaly)."""
    import os
    import sys

    pkg = os.path.dirname(__file__)
    f = sys._getframe(1)
    while f is not None and f.f_code.co_filename.startswith(pkg):
        f = f.f_back
    return f"{f.f_code.co_filename}:{f.f_lineno}" if f is not None else "?"


# ------------------------------------------------------------------------------------------------
# The public handle of a record() block.


class Entry(NamedTuple):
    """One operation of the Wengert list: ``v{output} = {op}(v{inputs}...)``.

    Slots are numbered as in the literature: the tape's inputs are ``v{1-n} .. v0`` and entry
    `index` (0-based) writes ``v{index+1}``. A constant input is ``None``.
    """

    index: int
    op: str
    inputs: tuple
    output: int


class Tape:
    """The tape of one `record()` block: the rows appended while it was active.

    ``len(t)`` counts its operations, `t.entries` lists them, ``print(t)`` shows the evaluation
    trace with values (and adjoints once a backward pass went through), `t.gradient` computes
    gradients GradientTape-style, `t.to_dot()` draws the graph. Rows that no live Tensor can
    reach any more have been released and no longer appear.
    """

    def __init__(self, store: Store, persistent: bool = False):
        self._store = store
        self.persistent = persistent
        self._first = store.next
        self._end = None  # set when the block closes
        self._used = False

    def _close(self):
        self._end = self._store.next

    def _window(self):
        """(input slots, entry slots) of this block, each in recording order."""
        end = self._store.next if self._end is None else self._end
        rows = self._store.rows
        entries = [s for s, r in rows.items() if self._first <= s < end and r[OP] is not LEAF]
        produced = set(entries)
        inputs = sorted({i for s in entries for i in rows[s][INS] if i >= 0 and i not in produced})
        return inputs, entries

    def _numbering(self):
        inputs, entries = self._window()
        number = {s: k - len(inputs) + 1 for k, s in enumerate(inputs)}
        number.update({s: k + 1 for k, s in enumerate(entries)})
        return inputs, entries, number

    def __len__(self):
        return len(self._window()[1])

    @property
    def entries(self) -> list[Entry]:
        _, entries, number = self._numbering()
        rows = self._store.rows
        return [
            Entry(k, rows[s][OP].name, tuple(number[i] if i >= 0 else None for i in rows[s][INS]), number[s])
            for k, s in enumerate(entries)
        ]

    def trace(self):
        """The evaluation trace: a `printing.Trace` (a list of rows that prints as a table)."""
        from .printing import build_trace

        return build_trace(self)

    def __str__(self):
        return str(self.trace())

    def __repr__(self):
        return f"<Tape: {len(self)} entries{', persistent' if self.persistent else ''}>"

    def to_dot(self) -> str:
        """Graphviz DOT source of the recorded graph."""
        from .printing import to_dot

        return to_dot(self)

    def compile(self, inputs, outputs):
        """Freeze what this block recorded into a `tp.Program` (API §9), valid for the recorded path.

        `inputs`: the Tensors the program takes (leaves or results of earlier blocks); `outputs`:
        a Tensor or a list of them, computed in this block.

        >>> import numpy as np, tape as tp
        >>> x = tp.tensor(2.0, requires_grad=True)
        >>> with tp.record() as t:
        ...     y = x * x + 1.0
        >>> p = t.compile(inputs=[x], outputs=y)
        >>> float(p(np.array(3.0)))
        10.0
        """
        from .compiled.program import compile_tape

        return compile_tape(self, self._store, self._first, self._end, inputs, outputs)

    def gradient(self, target, sources, output_gradients=None):
        """Gradients of `target` with respect to `sources`, without touching `.grad`.

        A non-scalar target is summed (or weighted by `output_gradients`); a source the target
        does not depend on gets zeros. A non-persistent tape answers once.

        >>> import tape as tp
        >>> x = tp.tensor([1.0, 2.0], requires_grad=True)
        >>> with tp.record() as t:
        ...     y = x * x
        >>> t.gradient(y, x)
        tensor([2., 4.])
        """
        from .sweep import tape_gradient

        if self._used and not self.persistent:
            raise RuntimeError(
                "Tape.gradient: this tape was already used once; record with "
                "tp.record(persistent=True) to call gradient() more than once"
            )
        result = tape_gradient(target, sources, output_gradients, retain=self.persistent)
        self._used = True
        return result
