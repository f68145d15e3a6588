"""`record()` and the `Tape` handle: what a block recorded, kept in a log the handle owns.

`with tp.record() as t:` turns recording on for this thread; every op run inside appends an entry
to the thread's store (tape.py), through `apply` in tape/ops/registry.py (or its inline copy in the
public functions of one- and two-input rows), where a forward result becomes a Tensor and, when an
input is tracked, an entry. The block's `Tape` handle `t` counts them, lists them (`t.entries`),
prints the evaluation trace and answers `t.gradient` (GradientTape semantics). Blocks nest: an inner
block's entries belong to the outer block too.

Why a log: the store releases history that no live Tensor can reach (constant memory in a long
loop), so a result nobody kept, or a plain backward pass, would leave nothing to show. While a
block is open, the store appends each new entry itself to the block's log: the entry's VALUE, ADJ
and CONSTS columns are what the trace prints, so the sweep's adjoints show up in it, and releasing
an entry empties its SAVED and PARAMS columns, so the log keeps no arrays but the trace's values of
at most 16 elements. (One list per entry, not a separate trace record: each object per op is work
for the cyclic garbage collector, until the store takes it off the collector's lists, as
tape/untrack.py explains.) Only the first LOG_ENTRIES entries of a block are logged (the store
compares each new slot with `log_until`, nothing more); the rest are counted from the slot numbers,
so a block of any length runs in bounded memory. The log lives as long as the handle.
"""

from __future__ import annotations

from typing import NamedTuple

from .printing import LOG_ENTRIES, build_trace, to_dot
from .sweep import tape_gradient
from .tape import INS, LEAF, OP, PERSISTENT, SLOT, state


class record:
    """Record every operation run inside the block on this thread's tape.

    >>> import tape as tp
    >>> x = tp.tensor(3.0, requires_grad=True)
    >>> with tp.record() as t:
    ...     y = x * x
    >>> y.backward(); x.grad
    tensor(6.)
    >>> len(t)
    1

    With ``persistent=True`` the tape can answer `t.gradient` more than once, and no backward pass
    frees what the block recorded (as if every pass had ``retain_graph=True``).
    """

    def __init__(self, persistent: bool = False):
        self.persistent = persistent

    def __enter__(self):
        st = state()
        store = st.store
        self._saved = (st.recording, st.active, store.log, store.log_until, store.new_flags)
        self.tape = Tape(store, self.persistent)
        if store.log is None:  # the outermost block: a new log, which inner blocks share
            store.log = []
        self.tape._open_log(store.log)
        store.log_until = max(store.log_until, self.tape._until)
        store.logged_below = max(store.logged_below, self.tape._until)
        store.tapes.add(self.tape)
        st.recording = True
        st.active = self.tape
        if self.persistent:
            store.new_flags |= PERSISTENT
        return self.tape

    def __exit__(self, *exc):
        st = state()
        st.recording, st.active, log, until, flags = self._saved
        self.tape._close(shared=log is not None)
        store = self.tape._store
        store.log, store.log_until = log, until  # the enclosing block's log and bound, or none
        store.new_flags = flags
        return False


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
    """The tape of one `record()` block: what the block recorded.

    ``len(t)`` is the number of operations the block recorded, including those whose history was
    released since (a result nobody kept, a plain backward pass). `t.entries` lists them,
    ``print(t)`` shows the evaluation trace with values (and adjoints once a backward pass went
    through), `t.to_dot()` draws the graph: these show the block's first LOG_ENTRIES entries (leaf
    entries included) and count the rest. `t.gradient` computes gradients GradientTape-style.

    >>> import tape as tp
    >>> x = tp.tensor(0.5, requires_grad=True)
    >>> with tp.record() as t:
    ...     y = tp.sin(x) * x
    >>> del y                          # nothing can reach the history now: it is released
    >>> len(t), [e.op for e in t.entries]
    (2, ['sin', 'mul'])
    """

    def __init__(self, store, persistent: bool = False):
        self._store = store
        self.persistent = persistent
        self._first = store.next
        self._leaves0 = store.n_leaves
        self._end = None  # set when the block closes
        self._n_leaves = None
        self._used = False
        self._log: list = []
        self._log_start = self._log_end = 0
        self._until = self._first + LOG_ENTRIES  # entries with a slot below this are logged

    def _open_log(self, log: list):
        self._log, self._log_start = log, len(log)

    def _close(self, shared: bool = False):
        self._end = self._store.next
        self._n_leaves = self._store.n_leaves - self._leaves0
        self._log_end = len(self._log)
        if shared:  # keep only this block's part of the enclosing block's log, which goes on growing
            self._log = self._log[self._log_start : self._log_end]
            self._log_start, self._log_end = 0, len(self._log)

    def _logged(self) -> list:
        """(op, input slots, slot, entry) of the logged entries of this block, in order (the entry's
        VALUE, ADJ and CONSTS columns are what the trace prints)."""
        end = len(self._log) if self._end is None else self._log_end
        until = self._until
        # An inner block may have had the store log past this block's own bound: leave those out.
        return [(e[OP], e[INS], e[SLOT], e) for e in self._log[self._log_start : end] if e[SLOT] < until]

    def _window(self):
        """(input slots, entry slots) of this block's entries that the store still holds (live history)."""
        end = self._store.next if self._end is None else self._end
        entries = self._store.entries
        ops = [s for s, e in entries.items() if self._first <= s < end and e[OP] is not LEAF]
        produced = set(ops)
        inputs = sorted({i for s in ops for i in entries[s][INS] if i >= 0 and i not in produced})
        return inputs, ops

    def _numbering(self):
        """(inputs, ops, number): the input slots, each as (slot, label, entry or None); the logged
        operations as (op, input slots, slot, entry); and each slot's number ``v{n}``."""
        logged = self._logged()
        ops = [e for e in logged if e[0] is not LEAF]
        leaves = {e[2]: e[3] for e in logged if e[0] is LEAF}
        produced = {e[2] for e in ops}
        slots = sorted({i for e in ops for i in e[1] if i >= 0 and i not in produced})
        entries = self._store.entries
        inputs = []
        for k, s in enumerate(slots):
            if s in leaves:
                trace, leaf = leaves[s], True
            else:  # made before the block: shown while the store still holds it
                entry = entries.get(s)
                trace, leaf = (entry, entry[OP] is LEAF) if entry is not None else (None, False)
            inputs.append((s, f"x{k + 1}" if leaf else "input", trace))
        number = {s: n - len(slots) + 1 for n, s in enumerate(slots)}
        number.update({e[2]: n + 1 for n, e in enumerate(ops)})
        return inputs, ops, number

    def __len__(self):
        if self._end is None:
            return self._store.next - self._first - (self._store.n_leaves - self._leaves0)
        return self._end - self._first - self._n_leaves

    @property
    def entries(self) -> list[Entry]:
        """The Wengert list: one `Entry` per logged operation (the first LOG_ENTRIES entries)."""
        _, ops, number = self._numbering()
        return [
            Entry(k, op.name, tuple(number[i] if i >= 0 else None for i in ins), number[s])
            for k, (op, ins, s, _) in enumerate(ops)
        ]

    def trace(self):
        """The evaluation trace: a `printing.Trace` (a list of rows that prints as a table)."""
        return build_trace(self)

    def __str__(self):
        return str(self.trace())

    def __repr__(self):
        return f"<Tape: {len(self)} entries{', persistent' if self.persistent else ''}>"

    def to_dot(self) -> str:
        """Graphviz DOT source of the recorded graph."""
        return to_dot(self)

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
        if self._used and not self.persistent:
            raise RuntimeError(
                "Tape.gradient: this tape was already used once; record with "
                "tp.record(persistent=True) to call gradient() more than once"
            )
        result = tape_gradient(target, sources, output_gradients, retain=self.persistent)
        self._used = True
        return result
