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

from .ops.registry import GroupOp, call
from .tensor import DualTensor, Tensor


def make_dual(primal, tangent, level: int) -> DualTensor:
    d = object.__new__(DualTensor)
    d.array = primal.array if isinstance(primal, Tensor) else primal
    d._slot, d._store, d._rg, d.grad = -1, None, 0, None
    d._primal, d._tangent, d._level = primal, tangent, level
    return d


def apply_dual(d, args, params, apply):
    """Run op `d` on arguments some of which are duals: primal by `apply`, tangent by `d.jvp`."""
    level = max(a._level for a in args if type(a) is DualTensor)
    primals = [a._primal if type(a) is DualTensor and a._level == level else a for a in args]
    tangents = [a._tangent if type(a) is DualTensor and a._level == level else None for a in args]
    out = apply(d, tuple(primals), params)
    if d.jvp is None:
        raise NotImplementedError(f"{d.name}: no jvp rule, so it cannot be used in forward mode (give one with defjvp)")
    tangent = d.jvp(tuple(tangents), out, *primals, **(params or {}))
    if tangent is None:
        tangent = np.zeros_like(out)
    elif tangent.dtype != out.dtype:  # one place, as sweep.fit for cotangents: float32 stays float32
        tangent = tangent.astype(out.dtype)
    return make_dual(out, tangent, level)


def _broadcast_like(t, out):
    return t if t.shape == out.shape else np.broadcast_to(t, out.shape)


def elementwise_jvp(d):
    """jvp of an elementwise op from its vjp rules: sum over inputs of rule_i(t_i)."""

    def jvp(tangents, out, *inputs, **params):
        total = None
        for rule, t in zip(d.vjp, tangents):
            if t is None or rule is None:
                continue
            c = rule(t, out, *inputs, **params)
            total = c if total is None else total + c
        return None if total is None else _broadcast_like(total, out)

    return jvp


def linear_jvp(d):
    """jvp of an op linear in all its inputs jointly: the op applied to the tangents."""

    def jvp(tangents, out, *inputs, **params):
        if all(t is None for t in tangents):
            return None
        ts = [np.zeros_like(x) if t is None else t for t, x in zip(tangents, inputs)]
        return call(d, *ts, **params)

    return jvp


def multilinear_jvp(d):
    """jvp of an op linear in each input separately: the product rule."""

    def jvp(tangents, out, *inputs, **params):
        total = None
        for i, t in enumerate(tangents):
            if t is None:
                continue
            c = call(d, *inputs[:i], t, *inputs[i + 1 :], **params)
            total = c if total is None else total + c
        return total

    return jvp


def derive_jvps(ops) -> None:
    """Give every row without a written jvp one derived from its structure."""
    for d in ops.values():
        if d.jvp is not None:
            continue
        if d.code in GroupOp.ELEMENTWISE and d.vjp is not None:
            d.jvp = elementwise_jvp(d)
        elif d.linearity == "linear":
            d.jvp = linear_jvp(d)
        elif d.linearity == "multilinear":
            d.jvp = multilinear_jvp(d)
