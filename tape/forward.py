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
_ndarray = np.ndarray
_f64 = np.float64
_new = object.__new__
#: What a raw tangent is (`tp.hvp`'s): an array, or a float64 scalar where the primal is a 0-d float64
#: value (the arithmetic on 0-d values gives scalars, and costs a fraction of what it costs on 0-d arrays).
_RAW = frozenset((np.ndarray, np.float64))


class ForwardModeError(NotImplementedError):
    """What forward mode cannot do (`tp.hvp` then goes reverse over reverse instead)."""


class NoJvpError(ForwardModeError):
    """An op without a jvp rule met a dual number."""


def make_dual(primal, tangent, level: int) -> DualTensor:
    d = _new(DualTensor)
    # `_a`, not `array`: a float64 scalar stays one (Tensor.array), in the dual and in its primal
    d._a = primal._a if isinstance(primal, Tensor) else primal
    d._slot = -1
    d._store = None
    d._role = CONSTANT
    d.grad = None
    d._primal = primal
    d._tangent = tangent
    d._level = level
    return d


def apply_dual(op, args, params, apply, st=None):
    """Run `op` on arguments some of which are duals: primal by `apply`, tangent by `op.jvp`.

    `st` is the thread's state when the caller has it at hand. One- and two-input ops whose
    tangents are raw arrays (tp.hvp's) take the path written out below; the rest, `_apply_dual`.
    """
    jvp = op.jvp
    if jvp is None:
        raise NoJvpError(f"{op.name}: no jvp rule, it cannot be used in forward mode (give one with defjvp)")
    if st is None:
        st = state()
    n = len(args)
    if n > 2 or st.anomaly:
        return _apply_dual(op, args, params, apply)
    # `_apply_dual` and `_apply_raw`'s steps, inline, for one or two arguments where every dual is of
    # one level, has a raw-array tangent and a primal that is a plain Tensor or a raw value (the sweep
    # lifts its saved arrays to duals whose primals are raw), and every other argument is a plain
    # Tensor or a raw value. This runs once per op of f and once per op of its rules in the sweep,
    # where each Python call and list costs as much as the arithmetic on a small array.
    if n == 1:
        a = args[0]
        if type(a) is not DualTensor:
            return _apply_dual(op, args, params, apply)
        t0 = a._tangent
        p0 = a._primal
        level = a._level
        tangents = (t0,)
        if type(t0) not in _RAW:
            return _apply_dual(op, args, params, apply)
        if type(p0) is Tensor:
            x = p0._a
        elif isinstance(p0, Tensor):  # a dual of an outer level, or a Tensor subclass
            return _apply_dual(op, args, params, apply)
        else:
            x = p0
        try:
            out = op.forward(x, **params) if params else op.forward(x)
        except Exception as exc:
            raise op_error(op.name, (x,), exc) from exc
        if type(out) is not _ndarray and type(out) is not _f64 and isinstance(out, (np.generic, list)):
            out = np.asarray(out)
        # the primal: a recorded Tensor, else the raw value (as the sweep's lifted saved values have)
        primal = st.store.append1(op, p0, x, out, params) if st.recording and type(p0) is Tensor and p0._role else out
        tangent = jvp(tangents, out, x, **params) if params else jvp(tangents, out, x)
    else:
        a, b = args
        ta, tb = type(a), type(b)
        if ta is DualTensor:
            level = a._level
            t0 = a._tangent
            p0 = a._primal
            if type(t0) not in _RAW:
                return _apply_dual(op, args, params, apply)
            if tb is DualTensor:
                if b._level != level:
                    return _apply_dual(op, args, params, apply)
                t1 = b._tangent
                p1 = b._primal
                if type(t1) not in _RAW:
                    return _apply_dual(op, args, params, apply)
            else:
                t1 = None
                p1 = b
        elif tb is DualTensor:
            level = b._level
            t0 = None
            p0 = a
            t1 = b._tangent
            p1 = b._primal
            if type(t1) not in _RAW:
                return _apply_dual(op, args, params, apply)
        else:
            return _apply_dual(op, args, params, apply)
        tp0, tp1 = type(p0), type(p1)
        if tp0 is Tensor:
            x = p0._a
        elif isinstance(p0, Tensor):
            return _apply_dual(op, args, params, apply)
        else:
            x = p0
        if tp1 is Tensor:
            y = p1._a
        elif isinstance(p1, Tensor):
            return _apply_dual(op, args, params, apply)
        else:
            y = p1
        tangents = (t0, t1)
        scalar = op.scalar
        if scalar is not None and (
            (type(x) is _f64 and (type(y) is _f64 or type(y) is float)) or (type(x) is float and type(y) is _f64)
        ):
            out = scalar(x, y)  # as `_binary_function`: the same bits as the ufunc
        else:
            try:
                out = op.forward(x, y, **params) if params else op.forward(x, y)
            except Exception as exc:
                raise op_error(op.name, (x, y), exc) from exc
            if type(out) is not _ndarray and type(out) is not _f64 and isinstance(out, (np.generic, list)):
                out = np.asarray(out)
        if st.recording and ((tp0 is Tensor and p0._role) or (tp1 is Tensor and p1._role)):
            primal = st.store.append2(op, p0, p1, x, y, out, params)
        else:
            primal = out
        tangent = jvp(tangents, out, x, y, **params) if params else jvp(tangents, out, x, y)
    if type(tangent) is not type(out) or tangent.dtype is not out.dtype:  # else an array, or a scalar, of out's dtype
        tangent = _raw_tangent(tangent, out)
    if primal is not out:  # recorded for reverse mode inside this jvp: forward over reverse (a new slot)
        _note_tangents(primal, tangents, tangent, level)
    return make_dual(primal, tangent, level)


def _raw_tangent(tangent, value):
    """A jvp rule's result on raw arrays as an array of the output's dtype (zeros for None)."""
    if tangent is None:
        return np.zeros_like(value)
    if isinstance(tangent, Tensor):
        tangent = tangent.array
    elif isinstance(tangent, (np.generic, float, int)):
        tangent = np.asarray(tangent)
    dtype = getattr(value, "dtype", None)
    if dtype is not None and tangent.dtype != dtype:
        tangent = tangent.astype(dtype)
    return tangent


def _apply_dual(op, args, params, apply):
    """`apply_dual` for any arguments: duals of several levels, nested duals, Tensor tangents."""
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
        _note_tangents(out, tangents, tangent, level)
    return make_dual(out, tangent, level)


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
    return out, _raw_tangent(tangent, value)


def _note_tangents(out, tangents, tangent, level):
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
