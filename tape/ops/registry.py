"""The op table: one row per primitive, and the one function that runs and records an op.

A row (`OpDef`) holds everything about a primitive side by side: its forward on raw arrays, one
vjp rule per input, which values those rules need saved, and the input domain the generated tests
draw from. Rules are pure functions ``rule(g, out, *inputs, **params)``: `g` is the cotangent of
the output, `out` and `inputs` are the saved arrays (``None`` where the row does not save them).
Nothing is captured in a closure at record time, so a rule written with NumPy calls runs unchanged
on NumPy arrays, CuPy arrays, and (for higher-order derivatives) on Tensors.

A rule may return a cotangent that still has the *broadcast* shape or a wider dtype: the sweep sums
it back to the input's shape and casts it to the input's dtype in one place (`sweep.fit`), so no
rule repeats that logic. A rule that is ``None`` marks an input the op is not differentiable in.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from ..errors import op_error
from ..record import _STATE, _new_state
from ..tensor import DualTensor, Tensor, _new_tensor


class Op(IntEnum):
    """Opcodes of the built-in primitives, grouped like the modules that define them."""

    LEAF = 0
    # elementwise binary
    ADD = 1
    SUB = 2
    MUL = 3
    DIV = 4
    POW = 5
    MAXIMUM = 6
    MINIMUM = 7
    ARCTAN2 = 8
    WHERE = 9
    # elementwise unary
    NEG = 20
    EXP = 21
    LOG = 22
    LOG1P = 23
    EXPM1 = 24
    SQRT = 25
    ABS = 26
    SIGN = 27
    SIN = 28
    COS = 29
    TAN = 30
    ARCSIN = 31
    ARCCOS = 32
    ARCTAN = 33
    SINH = 34
    COSH = 35
    TANH = 36
    # reductions
    SUM = 50
    PROD = 51
    MAX = 52
    MIN = 53
    NORM = 54
    # linear algebra
    MATMUL = 70
    DOT = 71
    TENSORDOT = 72
    EINSUM = 73
    SOLVE = 74
    INV = 75
    DET = 76
    # shape and movement
    RESHAPE = 90
    TRANSPOSE = 91
    BROADCAST_TO = 92
    GETITEM = 93
    INDEX_ADD = 94
    CONCATENATE = 95
    PAD = 96
    ASTYPE = 97
    TO_DEVICE = 98
    IDENTITY = 99


class GroupOp:
    """Families of opcodes, for code (tests, backends) that treats a family alike."""

    BINARY = frozenset(range(1, 20))
    UNARY = frozenset(range(20, 50))
    ELEMENTWISE = BINARY | UNARY
    REDUCE = frozenset(range(50, 70))
    LINALG = frozenset(range(70, 90))
    SHAPE = frozenset(range(90, 110))


class OpDef:
    """One row of the op table.

    `save` names what the rules need kept alive: ``"x"``, ``"y"``, ``"z"`` for inputs 0, 1, 2,
    ``"o"`` for the output, ``"*"`` for every input of an n-ary op. Everything else is dropped
    the moment the forward returns: `add` keeps nothing, `mul` keeps both inputs, `exp` its output.
    `vjp` is a tuple with one rule per input; n-ary ops give `vjp_all`, one rule returning a
    tuple. `domain` is the open interval the generated tests draw inputs from. `jvp` is
    ``jvp(tangents, out, *inputs, **params)``; rows without one get a derived jvp (tape.forward).
    """

    __slots__ = (
        "code",
        "name",
        "forward",
        "vjp",
        "vjp_all",
        "jvp",
        "save_out",
        "save_in",
        "save_all",
        "nin",
        "domain",
        "no_saved",
        "linearity",
        "saved",
        "kernel_vjp",
    )

    def __init__(
        self,
        code,
        name,
        forward,
        vjp=None,
        save="",
        *,
        vjp_all=None,
        jvp=None,
        nin=None,
        domain=(-2.0, 2.0),
        linearity=None,
    ):
        self.code = int(code)
        self.linearity = linearity  # "linear" | "multilinear" | None: how forward mode derives the jvp
        self.name = name
        self.forward = forward
        self.vjp = vjp
        self.vjp_all = vjp_all
        self.jvp = jvp
        self.nin = nin if nin is not None else (len(vjp) if vjp is not None else None)
        self.save_out = "o" in save
        self.save_all = "*" in save
        self.save_in = tuple(c in save for c in "xyz"[: self.nin or 0])
        self.domain = domain
        # What the rules receive when the row saved nothing: out and one None per input.
        self.no_saved = (None,) * (1 + (self.nin or 0))
        self.saved = self._saver()
        # A backend's fused kernel(g, saved, input slots) -> cotangents or None (tape.backends installs it).
        self.kernel_vjp = None

    def _saver(self):
        """A function (out, arrays) -> what the rules will be called with, specialised once per row.

        The tuple is ``(out, *inputs)`` holding only what the rules need (None elsewhere), or None
        when they need nothing.
        """
        save_out, keep, n = self.save_out, self.save_in, self.nin or 0
        if self.save_all:
            return (lambda out, arrays: (out, *arrays)) if save_out else (lambda out, arrays: (None, *arrays))
        if not (save_out or any(keep)):
            return lambda out, arrays: None
        if not save_out and all(keep):
            return lambda out, arrays: (None, *arrays)
        if save_out and not any(keep):
            tail = (None,) * n
            return lambda out, arrays: (out, *tail)
        return lambda out, arrays: (out if save_out else None, *[a if k else None for a, k in zip(arrays, keep)])

    def __repr__(self):
        return f"<op {self.name}>"


OPS: dict[int, OpDef] = {}


def defop(code, name, forward, vjp=None, save="", **kw) -> OpDef:
    """Add a row to the op table (built-ins pass an `Op`; custom primitives get a fresh code)."""
    d = OpDef(code, name, forward, vjp, save, **kw)
    if d.code in OPS:
        raise ValueError(f"opcode {d.code} is already taken by {OPS[d.code].name}")
    OPS[d.code] = d
    return d


def new_opcode() -> int:
    """A code past the built-ins, for a user's custom primitive."""
    return max(max(OPS, default=0), 1000) + 1


# --------------------------------------------------------------------------------------------
# Running an op. `apply` is the only place where a forward result becomes a Tensor and, when
# recording is on and an input is tracked, a tape entry.

_ndarray = np.ndarray


def _as_array(x):
    """NumPy scalars (what NumPy returns for 0-d inputs) and lists as arrays; anything else as is.

    Python numbers stay Python numbers: the core (tape, record, sweep) works on any value type,
    which `tests/test_core.py` checks with plain floats.
    """
    if isinstance(x, (np.generic, list)):
        return np.asarray(x)
    return x


def apply(d: OpDef, args: tuple, params: dict | None = None):
    """Run op `d` on `args` (Tensors, arrays or scalars); record it if anything needs a gradient."""
    state = _STATE.get(None) or _new_state()
    if state.dual_depth:
        for a in args:
            if type(a) is DualTensor:
                from ..forward import apply_dual  # forward mode only

                return apply_dual(d, args, params, apply)
    arrays = [a.array if isinstance(a, Tensor) else a for a in args]
    try:
        out = d.forward(*arrays, **params) if params else d.forward(*arrays)
    except Exception as exc:
        raise op_error(d.name, args, exc) from exc
    if type(out) is not _ndarray:
        out = _as_array(out)
    src = None
    if state.anomaly:
        from ..errors import check_finite
        from ..tape import _user_line

        src = _user_line()
        check_finite(out, d.name, "forward", src)
    if state.recording:
        for a in args:
            if isinstance(a, Tensor) and a._rg:
                return state.store.record(d, args, arrays, out, params, src)
    return _new_tensor(out)


def call(d: OpDef, *args, **params):
    """Run op `d` as a plain function on raw arrays, or as a recorded op if any arg is a Tensor.

    Rules use this for the few primitives NumPy has no function for (`index_add`), so that the
    same rule serves the plain sweep (arrays) and the differentiable one (Tensors).
    """
    if any(isinstance(a, Tensor) for a in args):
        return apply(d, args, params or None)
    return d.forward(*args, **params)
