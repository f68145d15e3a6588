"""Forward mode: dual numbers, no tape.

Inside `tp.jvp`, the inputs are `DualTensor`s: a primal and a tangent, tagged with a *level*.
`apply` sees a dual argument and hands the op here: the primal result is computed by the op as
usual (at the level below, so it may itself be recorded or be a dual of an outer jvp), and the
tangent by the op's jvp rule, whose NumPy calls run on Tensors and so propagate the same way.
Levels keep nested jvps apart (no perturbation confusion): an op unwraps only the highest level
among its arguments.

Jvp rules are derived where the math allows (DESIGN.md principle 8): an elementwise op's jvp is
its vjp rules applied to the tangents (the Jacobian is diagonal), a linear op's jvp is the op
itself applied to the tangents, a multilinear op's (matmul, einsum, ...) is the sum of the op with
one argument at a time replaced by its tangent. The rest are written in the op table.
"""

from __future__ import annotations

import numpy as np

from .errors import op_error
from .tape import state
from .tensor import CONSTANT, RESULT, DualTensor, Tensor, _new_tensor

_EMPTY: dict = {}


class ForwardModeError(NotImplementedError):
    """What forward mode cannot do (`tp.hvp` then goes reverse over reverse instead)."""


class NoJvpError(ForwardModeError):
    """An op without a jvp rule met a dual number."""


def make_dual(primal, tangent, level: int) -> DualTensor:
    d = object.__new__(DualTensor)
    d.array = primal.array if isinstance(primal, Tensor) else primal
    d._slot, d._store, d._role, d.grad = -1, None, CONSTANT, None
    d._primal, d._tangent, d._level = primal, tangent, level
    return d


def apply_dual(op, args, params, apply):
    """Run `op` on arguments some of which are duals: primal by `apply`, tangent by `op.jvp`."""
    level = -1
    for a in args:
        if type(a) is DualTensor and a._level > level:
            level = a._level
    primals, tangents = [], []
    raw = plain = True  # raw: the tangents are arrays (tp.hvp's); plain: no primal is a dual itself
    for a in args:
        if type(a) is DualTensor:
            if a._level == level:
                p, t = a._primal, a._tangent
                primals.append(p)
                tangents.append(t)
                if isinstance(t, Tensor):
                    raw = False
                if type(p) is DualTensor:
                    plain = False
                continue
            plain = False
        primals.append(a)
        tangents.append(None)
    if op.jvp is None:
        raise NoJvpError(f"{op.name}: no jvp rule, it cannot be used in forward mode (give one with defjvp)")
    if raw:
        out, tangent = _apply_raw(op, primals, tuple(tangents), params, plain, apply)
    else:
        out = apply(op, tuple(primals), params)
        tangent = op.jvp(tuple(tangents), out, *primals, **(params or _EMPTY))
        if tangent is None:
            tangent = np.zeros_like(out)
        elif tangent.dtype != out.dtype:  # one place, as sweep.fit for cotangents: float32 stays float32
            tangent = tangent.astype(out.dtype)
    if out._role is RESULT:  # recorded for reverse mode inside this jvp: forward over reverse
        _note_tangents(out, primals, tangents, tangent, level)
    d = object.__new__(DualTensor)  # make_dual, inline
    d.array = out.array
    d._slot, d._store, d._role, d.grad = -1, None, CONSTANT, None
    d._primal, d._tangent, d._level = out, tangent, level
    return d


def _apply_raw(op, primals, tangents, params, plain, apply):
    """(primal Tensor, tangent array) for tangents that are raw arrays, which only `tp.hvp` makes.

    Their creator promised that nothing differentiates them, so the jvp rule runs on the raw
    arrays rather than through the op table on Tensors (no Tensors, no tape entries for it); and
    when nothing records the primal either, the op's forward runs as a plain function.
    """
    arrays = [a.array if isinstance(a, Tensor) else a for a in primals]
    st = state()
    if st.recording or st.anomaly or not plain:
        out = apply(op, tuple(primals), params)
        value = out.array
    else:
        params = params or _EMPTY
        try:
            value = op.forward(*arrays, **params)
        except Exception as exc:
            raise op_error(op.name, arrays, exc) from exc
        if type(value) is not np.ndarray and isinstance(value, (np.generic, list)):
            value = np.asarray(value)
        out = _new_tensor(value)
    tangent = op.jvp(tangents, value, *arrays, **(params or _EMPTY))
    if tangent is None:
        return out, np.zeros_like(value)
    if isinstance(tangent, Tensor):
        tangent = tangent.array
    elif isinstance(tangent, (np.generic, float, int)):
        tangent = np.asarray(tangent)
    if tangent.dtype != value.dtype:
        tangent = tangent.astype(value.dtype)
    return out, tangent


def _note_tangents(out, primals, tangents, tangent, level):
    """Remember the tangents of an entry's output and inputs (constants included), by the entry's
    slot, for a reverse sweep run inside this jvp: its rules then run on dual numbers, and the
    gradient gets a tangent too."""
    out._store.tangents.setdefault(out._slot, {})[level] = (tangent, tuple(tangents))


def forget_tangents(store, level: int) -> None:
    """Drop the tangents noted at `level` when its jvp returns: only a sweep inside that jvp reads
    them, and a tangent with history of its own (reverse over forward) reads the entry it is noted
    under, so keeping it would keep that entry alive for good."""
    known = store.tangents
    if not known:
        return
    for slot in [s for s, by_level in known.items() if level in by_level]:
        by_level = known.get(slot)  # dropping a tangent may release entries, and their notes with them
        if by_level is None:
            continue
        dropped = by_level.pop(level, None)
        if not by_level:
            known.pop(slot, None)
        del dropped
