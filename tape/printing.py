"""The evaluation trace (`Tape.trace()`, ``print(tape)``) and Graphviz output (`Tape.to_dot()`).

The trace is laid out like the tables in the literature on reverse mode: the tape's inputs first
(``v-1 = x1``, ``v0 = x2``), then one row per entry (``v3 = sin(v0)``) with its value and, once a
backward pass has gone through, its adjoint.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .devices import to_host
from .tape import ADJ, INS, LEAF, META, OP, SAVED, TRACE_MAX_SIZE, VALUE


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
    return np.array2string(a, precision=3, separator=", ", suppress_small=True, max_line_width=60)


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


def _constant(meta_i) -> str:
    if meta_i is None:
        return "c"
    return fmt(meta_i)


def build_trace(tape) -> Trace:
    inputs, entries, number = tape._numbering()
    rows = tape._store.rows
    out = Trace()
    for k, s in enumerate(inputs):
        row = rows[s]
        if row[OP] is LEAF:
            leaf = row[SAVED]
            value = leaf.array if leaf.array.size <= TRACE_MAX_SIZE else (leaf.shape, leaf.dtype)
            expr = f"x{k + 1}"
        else:
            value, expr = row[VALUE], "input"
        out.append(TraceRow(f"v{number[s]}", expr, value, row[ADJ]))
    for s in entries:
        row = rows[s]
        args = ", ".join(f"v{number[i]}" if i >= 0 else _constant(row[META][j]) for j, i in enumerate(row[INS]))
        out.append(TraceRow(f"v{number[s]}", f"{row[OP].name}({args})", row[VALUE], row[ADJ]))
    return out


def to_dot(tape) -> str:
    inputs, entries, number = tape._numbering()
    rows = tape._store.rows
    name = {s: f"v{number[s]}".replace("-", "m") for s in number}
    lines = ["digraph tape {", "  rankdir=LR;", '  node [fontname="Helvetica"];']
    for k, s in enumerate(inputs):
        lines.append(f'  {name[s]} [shape=box, label="v{number[s]} = x{k + 1}"];')
    for s in entries:
        row = rows[s]
        lines.append(f'  {name[s]} [label="v{number[s]} = {row[OP].name}\\n{fmt(row[VALUE])}"];')
        for i in row[INS]:
            if i >= 0:
                lines.append(f"  {name[i]} -> {name[s]};")
    lines.append("}")
    return "\n".join(lines)
