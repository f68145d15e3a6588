"""The evaluation trace (`Tape.trace()`, ``print(tape)``) and Graphviz output (`Tape.to_dot()`).

The trace is laid out like the tables in the literature on reverse mode: the tape's inputs first
(``v-1 = x1``, ``v0 = x2``), then one row per entry (``v3 = sin(v0)``) with its value and, once a
backward pass has gone through, its adjoint.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .devices import to_host
from .tape import ADJ, CONSTS, VALUE

#: A block's log (record.py) keeps its first LOG_ENTRIES entries, leaf entries included; the rest
#: are counted. (Defined here, below record.py in the layers, so that the trace can say so.)
LOG_ENTRIES = 10_000


class TraceRow(NamedTuple):
    """One line of the trace: ``name = expr``, its value and adjoint (arrays, or None)."""

    name: str
    expr: str
    value: object
    adjoint: object


def fmt(v) -> str:
    """A value for the table: numbers to 3 decimals, arrays of up to 16 elements, else a summary."""
    if v is None:
        return ""
    if isinstance(v, tuple):  # a large value: only (shape, dtype) was kept
        shape, dtype = v
        return f"<{dtype} {tuple(shape)}>"
    a = np.asarray(to_host(v))
    if a.ndim == 0:
        x = a.item()
        if isinstance(x, float) and x != 0 and not 1e-3 <= abs(x) < 1e7:
            return f"{x:.4g}"
        return f"{x:.3f}".rstrip("0").rstrip(".") if isinstance(x, float) else str(x)
    text = np.array2string(a, precision=3, separator=", ", suppress_small=True, max_line_width=60)
    return " ".join(text.split())  # one line, so that a small matrix keeps the table's rows intact


class Trace(list):
    """A list of `TraceRow` that prints as the evaluation-trace table; `omitted` counts the
    operations past the block's log (they print as one last line)."""

    omitted = 0

    def __str__(self):
        if not self:
            return "(empty tape)"
        lines = [(f"{r.name} = {r.expr}", fmt(r.value), fmt(r.adjoint)) for r in self]
        widths = [max(len(c[k]) for c in lines + [("entry", "value", "adjoint")]) for k in range(3)]
        head = f"{'entry':<{widths[0]}} | {'value':<{widths[1]}} | adjoint"
        body = [f"{a:<{widths[0]}} | {b:<{widths[1]}} | {c}".rstrip() for a, b, c in lines]
        return "\n".join([head, "-" * len(head)] + body + _omitted(self.omitted))

    __repr__ = __str__


def _omitted(n: int) -> list:
    return [f"... and {n} more entries (a block's log keeps its first {LOG_ENTRIES})"] if n else []


def _constant(value) -> str:
    return "c" if value is None else fmt(value)


def build_trace(tape) -> Trace:
    """The rows of `tape`'s log: its inputs (``v-1 = x1``), then one per logged operation."""
    inputs, ops, number = tape._numbering()
    out = Trace()
    for s, label, trace in inputs:
        value, adjoint = (None, None) if trace is None else (trace[VALUE], trace[ADJ])
        out.append(TraceRow(f"v{number[s]}", label, value, adjoint))
    for op, ins, s, trace in ops:
        consts = trace[CONSTS] or (None,) * len(ins)
        args = ", ".join(f"v{number[i]}" if i >= 0 else _constant(c) for i, c in zip(ins, consts))
        out.append(TraceRow(f"v{number[s]}", f"{op.name}({args})", trace[VALUE], trace[ADJ]))
    out.omitted = len(tape) - len(ops)
    return out


def to_dot(tape) -> str:
    inputs, ops, number = tape._numbering()
    name = {s: f"v{number[s]}".replace("-", "m") for s in number}
    lines = ["digraph tape {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for s, label, _ in inputs:
        lines.append(f'  {name[s]} [shape=box, label="v{number[s]} = {label}"];')
    for op, ins, s, trace in ops:
        lines.append(f'  {name[s]} [label="v{number[s]} = {op.name}\\n{fmt(trace[VALUE])}"];')
        for i in ins:
            if i >= 0:
                lines.append(f"  {name[i]} -> {name[s]};")
    lines += [f"  // {line}" for line in _omitted(len(tape) - len(ops))]
    lines.append("}")
    return "\n".join(lines)
