"""The evaluation trace (`Tape.trace()`, ``print(tape)``) and Graphviz output (`Tape.to_dot()`).

The trace is laid out like the tables in the literature on reverse mode: the tape's inputs first
(``v-1 = x1``, ``v0 = x2``), then one row per entry (``v3 = sin(v0)``) with its value and, once a
backward pass has gone through, its adjoint.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .devices import to_host
from .tape import ADJ, CONSTS, INS, LEAF, OP, TRACE, VALUE


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
    """A list of `TraceRow` that prints as the evaluation-trace table."""

    def __str__(self):
        if not self:
            return "(empty tape)"
        lines = [(f"{r.name} = {r.expr}", fmt(r.value), fmt(r.adjoint)) for r in self]
        widths = [max(len(c[k]) for c in lines + [("entry", "value", "adjoint")]) for k in range(3)]
        head = f"{'entry':<{widths[0]}} | {'value':<{widths[1]}} | adjoint"
        body = [f"{a:<{widths[0]}} | {b:<{widths[1]}} | {c}".rstrip() for a, b, c in lines]
        return "\n".join([head, "-" * len(head)] + body)

    __repr__ = __str__


def _constant(value) -> str:
    return "c" if value is None else fmt(value)


def build_trace(tape) -> Trace:
    inputs, ops, number = tape._numbering()
    entries = tape._store.entries
    out = Trace()
    for k, s in enumerate(inputs):
        entry = entries[s]
        trace = entry[TRACE]
        out.append(TraceRow(f"v{number[s]}", f"x{k + 1}" if entry[OP] is LEAF else "input", trace[VALUE], trace[ADJ]))
    for s in ops:
        entry = entries[s]
        trace = entry[TRACE]
        consts = trace[CONSTS] or (None,) * len(entry[INS])
        args = ", ".join(f"v{number[i]}" if i >= 0 else _constant(c) for i, c in zip(entry[INS], consts))
        out.append(TraceRow(f"v{number[s]}", f"{entry[OP].name}({args})", trace[VALUE], trace[ADJ]))
    return out


def to_dot(tape) -> str:
    inputs, ops, number = tape._numbering()
    entries = tape._store.entries
    name = {s: f"v{number[s]}".replace("-", "m") for s in number}
    lines = ["digraph tape {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for k, s in enumerate(inputs):
        lines.append(f'  {name[s]} [shape=box, label="v{number[s]} = x{k + 1}"];')
    for s in ops:
        entry = entries[s]
        lines.append(f'  {name[s]} [label="v{number[s]} = {entry[OP].name}\\n{fmt(entry[TRACE][VALUE])}"];')
        for i in entry[INS]:
            if i >= 0:
                lines.append(f"  {name[i]} -> {name[s]};")
    lines.append("}")
    return "\n".join(lines)
