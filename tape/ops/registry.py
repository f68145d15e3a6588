"""The op table: one row per primitive, and `apply`, which runs and records an op.

A row (`OpDef`) holds everything about a primitive side by side, as one entry of PyTorch's
`derivatives.yaml` does: its forward on raw arrays, one vjp rule per input, which values those
rules need saved, the NumPy function it stands for, how its public function reads its arguments,
and the samples and domain the generated tests draw from. Rules are pure functions
``rule(g, out, *inputs, **params)``: `g` is the cotangent of the output, `out` and `inputs` are the
saved arrays (``None`` where the row does not save them). Nothing is captured in a closure at
record time, so a rule written with NumPy calls runs unchanged on NumPy arrays, CuPy arrays, and
(for higher-order derivatives) on Tensors.

A rule may return a cotangent that still has the *broadcast* shape or a wider dtype: the sweep sums
it back to the input's shape and casts it to the input's dtype in one place (`sweep.Adjoints.add`),
so no rule repeats that logic. A rule that is ``None`` marks an input the op is not differentiable in.

Everything else about a primitive is generated from its row by `defop`: the public function
(`tp.NAME`, collected in `FUNCTIONS`), the NumPy-dispatch entry (`NUMPY`), the Tensor method
(`METHODS`), and the forward-mode rule when it can be derived (elementwise ops from their vjp rules,
linear ops from the forward). Composites (tape/composite.py) join the same tables with `export`.
Backend kernels are installed into the rows by `use_kernels`, the one place that changes a row
after it is defined.
"""

from __future__ import annotations

import inspect
from typing import NamedTuple

import numpy as np

from ..errors import check_finite, op_error
from ..forward import apply_dual
from ..opcodes import FIRST_CUSTOM, GroupOp, Op  # noqa: F401  (re-exported: the shared contract)
from ..tape import _STATE, _new_state, user_line
from ..tensor import CONSTANT, DualTensor, Tensor, _new_tensor

#: The dtypes the generated tests run every row at, unless the row says otherwise.
FLOATS = (np.float64, np.float32)


class Sample(NamedTuple):
    """One generated test input of a row: `arrays` are the differentiable inputs; `call(fn, *xs)`
    applies the public function (and NumPy's, for the reference) to them, default ``fn(*xs)``;
    `ref(*arrays)` is the expected value where the row stands for no NumPy function."""

    arrays: tuple
    call: object = None
    id: str = ""
    ref: object = None


BINARY_SHAPES = [((), ()), ((3,), (3,)), ((2, 3), (2, 3)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 3))]
UNARY_SHAPES = [(), (3,), (2, 3)]


def samples_of(op, rng):
    """The test inputs of a row: its own `samples`, or its family's default (elementwise ops: every
    shape and broadcast pair above, drawn uniformly from the row's `domain`)."""
    if op.samples is not None:
        return list(op.samples(rng))
    if op.code in GroupOp.BINARY:
        return [Sample(tuple(rng.uniform(*op.domain, s) for s in pair), None, str(pair)) for pair in BINARY_SHAPES]
    if op.code in GroupOp.UNARY:
        return [Sample((rng.uniform(*op.domain, s),), None, str(s)) for s in UNARY_SHAPES]
    raise ValueError(f"{op.name}: a row outside the elementwise families needs samples= for its tests")


class OpDef:
    """One row of the op table (see the module docstring; `defop` builds it).

    `save` names what the rules need kept alive: ``"x"``, ``"y"``, ``"z"`` for inputs 0, 1, 2,
    ``"o"`` for the output, ``"*"`` for every input of an n-ary op; a tuple gives it per input
    (``save=("y", "x")`` for mul: x's rule reads y, y's reads x), and only what the rules of the
    *tracked* inputs need is kept: ``y * 1.5`` keeps nothing of y. `vjp` is a tuple with one rule per
    input; n-ary ops give `vjp_all`, one rule returning a tuple. `jvp` is
    ``jvp(tangents, out, *inputs, **params)``. `domain` is the interval the generated tests draw
    inputs from; `samples(rng)` yields `Sample`s for rows whose inputs are not plain elementwise.
    `scalar(x, y)` is the forward for two float64 scalars where NumPy's scalar arithmetic is much
    cheaper than the ufunc and gives the same bits (add's ``operator.add``).
    """

    __slots__ = (
        "code",
        "name",
        "forward",
        "vjp",
        "vjp_all",
        "jvp",
        "nin",
        "domain",
        "no_saved",
        "linearity",
        "saved",
        "kernel_vjp",
        "numpy",
        "function",
        "samples",
        "dtypes",
        "scalar",
        "save1",
        "save2",
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
        samples=None,
        dtypes=FLOATS,
        scalar=None,
    ):
        self.code = int(code)
        self.name = name
        self.forward = forward
        self.vjp = vjp
        self.vjp_all = vjp_all
        self.jvp = jvp
        self.nin = nin if nin is not None else (len(vjp) if vjp is not None else None)
        self.linearity = linearity  # "linear" | "multilinear" | None: how forward mode derives the jvp
        self.domain = domain
        self.samples = samples
        self.dtypes = dtypes
        self.scalar = scalar  # the forward on two float64 scalars, where cheaper than `forward` (add's +)
        # What the rules receive when the entry saved nothing: out and one None per input.
        self.no_saved = (None,) * (1 + (self.nin or 0))
        self.saved = _saver(save, self.nin or 0)
        self.save1, self.save2 = _save_flags(self.saved)
        # a backend's fused kernel(g, saved, input slots, g_owned, adjoints) -> cotangents, or None
        self.kernel_vjp = None
        self.numpy = None  # the NumPy function this row stands for
        self.function = None  # the public function generated from this row

    def __repr__(self):
        return f"<op {self.name}>"


def _needs(save: str, n: int):
    """(keep the output?, keep input i?...) for one save string."""
    return "o" in save, tuple(c in save for c in "xyz"[:n])


def _pick(keep_out: bool, keep_in: tuple):
    """A function (out, arrays, input slots) -> the tuple the rules are called with (None where not
    kept), for a row whose rules need the same values whichever inputs are tracked."""
    n = len(keep_in)
    if not (keep_out or any(keep_in)):
        return lambda out, arrays, ins: None
    if all(keep_in):
        if keep_out:
            return lambda out, arrays, ins: (out, *arrays)
        return lambda out, arrays, ins: (None, *arrays)
    if not any(keep_in):
        tail = (None,) * n
        return lambda out, arrays, ins: (out, *tail)
    return lambda out, arrays, ins: (out if keep_out else None, *[a if k else None for a, k in zip(arrays, keep_in)])


def _saver(save, n: int):
    """A function (out, arrays, input slots) -> what the rules will need, specialised once per row.

    With one save string for every input, the slots do not matter; with one per input, what is kept
    is the union over the inputs that are tracked (slot >= 0).
    """
    if save == "*" or save == "o*":  # every input of an n-ary op (einsum, custom primitives)
        keep_out = "o" in save
        return lambda out, arrays, ins: (out if keep_out else None, *arrays)
    if isinstance(save, str):
        return _pick(*_needs(save, n))
    needs = [_needs(s, n) for s in save]
    # keep[mask]: (keep out?, keep input j?...) for the set `mask` of tracked inputs (bit i: input i)
    keep = [None] * (1 << n)
    for mask in range(1, 1 << n):
        chosen = [needs[i] for i in range(n) if mask >> i & 1]
        keep[mask] = (any(c[0] for c in chosen), *(any(c[1][j] for c in chosen) for j in range(n)))
    if n == 2:

        def saver(out, arrays, ins):
            ko, k0, k1 = keep[(ins[0] >= 0) + 2 * (ins[1] >= 0)]
            return (out if ko else None, arrays[0] if k0 else None, arrays[1] if k1 else None)

        return saver
    pickers = [None] + [_pick(k[0], k[1:]) for k in keep[1:]]
    return lambda out, arrays, ins: pickers[sum(1 << i for i, s in enumerate(ins) if s >= 0)](out, arrays, ins)


_PROBE_OUT, _PROBE_X, _PROBE_Y = object(), object(), object()


def _save_flags(saved):
    """What `saved` keeps for a call of one input and of two, as flags that Store.append1 and
    Store.append2 read inline instead of calling it once per recorded op.

    save1: 0 nothing, 1 the output, 2 the input, 3 both; -1 where its result has another shape
    (call `saved`). save2[mask], for the set `mask` of tracked inputs (bit i: input i): None (nothing)
    or (keep the output?, keep x?, keep y?); save2 is None where `saved` returns another shape.
    """
    o, x, y = _PROBE_OUT, _PROBE_X, _PROBE_Y
    try:
        one = saved(o, (x,), (0,))
        save1 = {None: 0, (o, None): 1, (None, x): 2, (o, x): 3}.get(one, -1) if one is None or len(one) == 2 else -1
    except Exception:  # a saver for rows of more inputs
        save1 = -1
    save2 = [None]
    try:
        for mask in (1, 2, 3):
            two = saved(o, (x, y), (0 if mask & 1 else -1, 0 if mask & 2 else -1))
            if two is not None and (len(two) != 3 or any(v is not None and v is not k for v, k in zip(two, (o, x, y)))):
                raise ValueError("another shape")
            save2.append(None if two is None else (two[0] is o, two[1] is x, two[2] is y))
    except Exception:
        return save1, None
    return save1, tuple(save2)


# The tables every layer above reads: rows by opcode, public functions by name, NumPy functions and
# ufuncs to the functions that stand in for them (tape/interop.py), Tensor methods by name.
OPS: dict[int, OpDef] = {}
FUNCTIONS: dict[str, object] = {}
NUMPY: dict[object, object] = {}
METHODS: dict[str, object] = {}


def defop(code, name, forward, vjp=None, save="", *, numpy=None, public=None, method=False, args=None, doc=None, **row):
    """Add a row to the op table and generate what comes from it.

    `row` holds the rest of the row (`OpDef`: vjp_all, jvp, nin, domain, linearity, samples, dtypes).
    `numpy`: the NumPy function or ufunc the op stands for (NumPy dispatch then reaches it);
    `public`: the name of the generated `tp.` function (default `name`; False: the function is
    generated as `op.function` for internal use, but is not public);
    `method`: also a Tensor method (True: under the public name; or the method's name);
    `args(*args, **kwargs) -> (inputs, params)`: how the public function reads its arguments
    (default: every argument is an input, no params); its signature becomes the function's.
    """
    op = OpDef(code, name, forward, vjp, save, **row)
    if op.code in OPS:
        raise ValueError(f"opcode {op.code} is already taken by {OPS[op.code].name}")
    OPS[op.code] = op
    if op.jvp is None:
        op.jvp = derived_jvp(op)
    op.function = _public_function(op, public or name, args, doc)
    op.numpy = numpy[0] if isinstance(numpy, tuple) else numpy
    if public is not False and op.code < FIRST_CUSTOM:  # custom primitives are the user's to name
        export(op.function, numpy=numpy, method=method, name=public or name)
    return op


def export(fn, *, numpy=None, method=False, name=None):
    """Make `fn` a public function (`tp.NAME`; a dotted name like "linalg.solve" is `tp.linalg.solve`),
    optionally NumPy's stand-in and a Tensor method. Composites register here too, so that every
    public op sits in the same three tables.
    """
    name = name or fn.__name__
    FUNCTIONS[name] = fn
    for np_fn in numpy if isinstance(numpy, tuple) else (numpy,):
        if np_fn is not None:
            NUMPY[np_fn] = fn
    if method:
        METHODS[name.rsplit(".", 1)[-1] if method is True else method] = fn
    return fn


def exported(*, numpy=None, method=False):
    """`export` as a decorator: ``@exported(numpy=np.mean, method=True)``."""
    return lambda fn: export(fn, numpy=numpy, method=method)


def _public_function(op, name, args, doc):
    """`tp.NAME` for a row: reads its arguments with `args` and applies the op."""
    if args is None:
        if op.nin == 1:
            fn = _unary_function(op)
        elif op.nin == 2:
            fn = _binary_function(op)
        else:

            def fn(*xs):
                return apply(op, xs)

    else:

        def fn(*a, **kw):
            inputs, params = args(*a, **kw)
            return apply(op, inputs, params)

        fn.__signature__ = inspect.signature(args)
    fn.__name__ = fn.__qualname__ = name.rsplit(".", 1)[-1]
    fn.__doc__ = doc or (args.__doc__ if args is not None else None)
    fn.__module__ = "tape"
    return fn


def new_opcode() -> int:
    """A code past the built-ins, for a user's custom primitive."""
    return max(max(OPS, default=0), FIRST_CUSTOM) + 1


def use_kernels(kernels: dict) -> None:
    """Install a backend's fused backward kernels (opcode -> kernel) into the rows; None elsewhere."""
    for code, op in OPS.items():
        op.kernel_vjp = kernels.get(code)


# --------------------------------------------------------------------------------------------
# Forward-mode rules derived from the rows (DESIGN.md principle 8): an elementwise op's jvp is its
# vjp rules applied to the tangents (the Jacobian is diagonal), a linear op's jvp is the op itself
# applied to the tangents, a multilinear op's (matmul, einsum, ...) is the sum of the op with one
# argument at a time replaced by its tangent. Rows with none of these shapes write their own.


def derived_jvp(op):
    """The jvp rule of a row that gives none, or None where its shape does not allow one."""
    if op.code in GroupOp.ELEMENTWISE and op.vjp is not None:
        if op.nin == 1:
            return _elementwise_jvp1(op)
        if op.nin == 2:
            return _elementwise_jvp2(op)
        return lambda tangents, out, *inputs, **params: _elementwise_jvp(op, tangents, out, inputs, params)
    if op.linearity == "linear":
        if op.nin == 1:
            return _linear_jvp1(op)
        return lambda tangents, out, *inputs, **params: _linear_jvp(op, tangents, inputs, params)
    if op.linearity == "multilinear":
        return lambda tangents, out, *inputs, **params: _multilinear_jvp(op, tangents, inputs, params)
    return None


def _elementwise_jvp(op, tangents, out, inputs, params):
    total = None
    for rule, t in zip(op.vjp, tangents):
        if t is None or rule is None:
            continue
        c = rule(t, out, *inputs, **params)
        total = c if total is None else total + c
    if total is None or total.shape == out.shape:
        return total
    return np.broadcast_to(total, out.shape)


# The jvp rules of one- and two-input rows, with their arguments spelled out: no tuple of inputs, no
# zip, no second call (forward over reverse runs one per op of f and one per op of f's vjp rules).
# They read op.vjp when called, as `_elementwise_jvp` does.


def _elementwise_jvp1(op):
    """`_elementwise_jvp` of a one-input row."""

    def jvp(tangents, out, x, **params):
        t = tangents[0]
        rule = op.vjp[0]
        if t is None or rule is None:
            return None
        c = rule(t, out, x, **params) if params else rule(t, out, x)
        if c.shape == out.shape:
            return c
        return np.broadcast_to(c, out.shape)

    return jvp


def _elementwise_jvp2(op):
    """`_elementwise_jvp` of a two-input row: the two rules' terms, broadcast to the output."""

    def jvp(tangents, out, x, y, **params):
        t0, t1 = tangents
        r0, r1 = op.vjp
        total = None
        if t0 is not None and r0 is not None:
            total = r0(t0, out, x, y, **params) if params else r0(t0, out, x, y)
        if t1 is not None and r1 is not None:
            c = r1(t1, out, x, y, **params) if params else r1(t1, out, x, y)
            total = c if total is None else total + c
        if total is None or total.shape == out.shape:
            return total
        return np.broadcast_to(total, out.shape)

    return jvp


def _linear_jvp(op, tangents, inputs, params):
    if all(t is None for t in tangents):
        return None
    return call(op, *[np.zeros_like(x) if t is None else t for t, x in zip(tangents, inputs)], **params)


def _linear_jvp1(op):
    """`_linear_jvp` of a one-input row: the op on the tangent (`call`, inline)."""

    def jvp(tangents, out, x, **params):
        t = tangents[0]
        if t is None:
            return None
        if isinstance(t, Tensor):
            return apply(op, (t,), params or None)
        return op.forward(t, **params) if params else op.forward(t)

    return jvp


def _multilinear_jvp(op, tangents, inputs, params):
    total = None
    for i, t in enumerate(tangents):
        if t is None:
            continue
        c = call(op, *inputs[:i], t, *inputs[i + 1 :], **params)
        total = c if total is None else total + c
    return total


# --------------------------------------------------------------------------------------------
# Running an op. `apply` is where a forward result becomes a Tensor and, when recording is on and an
# input is tracked, a tape entry; the public functions of one- and two-input rows run the same steps
# inline for plain Tensor arguments (`_unary_function`, `_binary_function`).

_ndarray = np.ndarray
_f64 = np.float64
_new = object.__new__


def _as_array(x):
    """NumPy scalars (what NumPy returns for 0-d inputs) and lists as arrays; anything else as is.

    Python numbers stay Python numbers: the core (tape, record, sweep) works on any value type,
    which `tests/test_core.py` checks with plain floats.
    """
    if isinstance(x, (np.generic, list)):
        return np.asarray(x)
    return x


def apply(op: OpDef, args: tuple, params: dict | None = None):
    """Run `op` on `args` (Tensors, arrays or scalars); record it if anything needs a gradient."""
    state = _STATE.get(None) or _new_state()
    if state.dual_depth:
        for a in args:
            if type(a) is DualTensor:
                return apply_dual(op, args, params, apply, state)
    n = len(args)
    if n == 1:  # the common arities without a comprehension's frame (it is a function in 3.11)
        a = args[0]
        arrays = (a._a if isinstance(a, Tensor) else a,)
    elif n == 2:
        a, b = args
        arrays = (a._a if isinstance(a, Tensor) else a, b._a if isinstance(b, Tensor) else b)
    else:
        arrays = [a._a if isinstance(a, Tensor) else a for a in args]
    try:
        out = op.forward(*arrays, **params) if params else op.forward(*arrays)
    except Exception as exc:
        raise op_error(op.name, arrays, exc) from exc
    # What _as_array does, inline, except for a float64 scalar (a ufunc's result on 0-d float64
    # arrays), which stays one: the next ops and the rules then run on scalars, 5-10 times cheaper
    # than on 0-d arrays with the same bits. `Tensor.array` hands it out as a 0-d array.
    if type(out) is not _ndarray and type(out) is not _f64 and isinstance(out, (np.generic, list)):
        out = np.asarray(out)
    src = None
    if state.anomaly:
        src = user_line()
        check_finite(out, op.name, "forward", src)
    if state.recording:
        for a in args:
            if isinstance(a, Tensor) and a._role:
                return state.store.append(op, args, arrays, out, params, src)
    return _new_tensor(out)


def _unary_function(op):
    """`tp.NAME` of a one-input row: `apply`'s steps written out for a plain Tensor argument.

    Every recorded op of a user's code goes through one of these two functions (operators included:
    `x * y` is `multiply`), so they skip what `apply` does for rarer cases: they call the store's
    one-input append directly, build no argument tuples, and hand anything unusual (a non-Tensor
    argument, forward mode, detect_anomaly) to `apply`.
    """
    forward, name = op.forward, op.name

    def fn(x):
        state = _STATE.get(None) or _new_state()
        if type(x) is not Tensor or state.dual_depth or state.anomaly:
            if state.dual_depth and type(x) is DualTensor:  # apply's first step, without its frame
                return apply_dual(op, (x,), None, apply, state)
            return apply(op, (x,))
        a = x._a
        try:
            out = forward(a)
        except Exception as exc:
            raise op_error(name, (a,), exc) from exc
        if type(out) is not _ndarray and type(out) is not _f64 and isinstance(out, (np.generic, list)):
            out = np.asarray(out)
        if x._role and state.recording:
            return state.store.append1(op, x, a, out)
        t = _new(Tensor)  # _new_tensor, inline
        t._a = out
        t._slot = -1
        t._store = None
        t._role = CONSTANT
        t.grad = None
        return t

    return fn


def _binary_function(op):
    """`tp.NAME` of a two-input row (see `_unary_function`).

    A row with a `scalar` forward (the Python operator of add, subtract, multiply, divide) runs it
    when both values are float64 scalars or one is a Python float: NumPy's scalar arithmetic gives
    the same bits as the ufunc, at a tenth of the ufunc's cost on scalars.
    """
    forward, scalar, name = op.forward, op.scalar, op.name

    def fn(x, y):
        state = _STATE.get(None) or _new_state()
        tx = type(x)
        ty = type(y)
        if state.dual_depth or state.anomaly:
            if state.dual_depth and (tx is DualTensor or ty is DualTensor):  # as in the unary fn
                return apply_dual(op, (x, y), None, apply, state)
            return apply(op, (x, y))
        if tx is Tensor:
            a = x._a
        elif isinstance(x, Tensor):
            return apply(op, (x, y))
        else:
            a = x
        if ty is Tensor:
            b = y._a
        elif isinstance(y, Tensor):
            return apply(op, (x, y))
        else:
            b = y
        ta = type(a)
        tb = type(b)
        if scalar is not None and ((ta is _f64 and (tb is _f64 or tb is float)) or (ta is float and tb is _f64)):
            out = scalar(a, b)
        else:
            try:
                out = forward(a, b)
            except Exception as exc:
                raise op_error(name, (a, b), exc) from exc
            if type(out) is not _ndarray and type(out) is not _f64 and isinstance(out, (np.generic, list)):
                out = np.asarray(out)
        if state.recording and ((tx is Tensor and x._role) or (ty is Tensor and y._role)):
            return state.store.append2(op, x, y, a, b, out)
        t = _new(Tensor)  # _new_tensor, inline
        t._a = out
        t._slot = -1
        t._store = None
        t._role = CONSTANT
        t.grad = None
        return t

    return fn


def call(op: OpDef, *args, **params):
    """Run `op` as a plain function on raw arrays, or as a recorded op if any arg is a Tensor.

    Rules use this for the few primitives NumPy has no function for (`index_add`), so that the
    same rule serves the plain sweep (arrays) and the differentiable one (Tensors).
    """
    if any(isinstance(a, Tensor) for a in args):
        return apply(op, args, params or None)
    return op.forward(*args, **params)
