"""`record()` and the `Tape` handle: a window onto the entries a block appended.

`with tp.record() as t:` turns recording on for this thread; every op run inside appends an entry
to the thread's store (tape.py), through `apply` in tape/ops/registry.py, the one place where a
forward result becomes a Tensor and, when an input is tracked, an entry. The block's `Tape` handle
`t` remembers which slots the block covers, so it can count them, list them (`t.entries`), print
the evaluation trace and answer `t.gradient` (GradientTape semantics). Blocks nest: an inner
block's entries belong to the outer block too.
"""

from __future__ import annotations

from typing import NamedTuple

from .printing import build_trace, to_dot
from .sweep import tape_gradient
from .tape import INS, LEAF, OP, PERSISTENT, state


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
        self._saved = (st.recording, st.active, st.store.new_flags)
        self.tape = Tape(st.store, self.persistent)
        st.recording = True
        st.active = self.tape
        if self.persistent:
            st.store.new_flags |= PERSISTENT
        return self.tape

    def __exit__(self, *exc):
        st = state()
        st.recording, st.active, st.store.new_flags = self._saved
        self.tape._close()
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
    """The tape of one `record()` block: the entries appended while it was active.

    ``len(t)`` counts its operations, `t.entries` lists them, ``print(t)`` shows the evaluation
    trace with values (and adjoints once a backward pass went through), `t.gradient` computes
    gradients GradientTape-style, `t.to_dot()` draws the graph. Entries that no live Tensor can
    reach any more have been released and no longer appear.
    """

    def __init__(self, store, persistent: bool = False):
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
        entries = self._store.entries
        ops = [s for s, e in entries.items() if self._first <= s < end and e[OP] is not LEAF]
        produced = set(ops)
        inputs = sorted({i for s in ops for i in entries[s][INS] if i >= 0 and i not in produced})
        return inputs, ops

    def _numbering(self):
        inputs, ops = self._window()
        number = {s: k - len(inputs) + 1 for k, s in enumerate(inputs)}
        number.update({s: k + 1 for k, s in enumerate(ops)})
        return inputs, ops, number

    def __len__(self):
        return len(self._window()[1])

    @property
    def entries(self) -> list[Entry]:
        _, ops, number = self._numbering()
        entries = self._store.entries
        return [
            Entry(k, entries[s][OP].name, tuple(number[i] if i >= 0 else None for i in entries[s][INS]), number[s])
            for k, s in enumerate(ops)
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
