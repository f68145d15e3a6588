"""Functional transforms (JAX / HIPS autograd style): grad, value_and_grad, vjp, jvp, jacobian
(jacrev), jacfwd, hessian, hvp, elementwise_grad.

`f` takes and returns Tensors; NumPy arrays, floats, and tuples/lists/dicts of them are accepted as
arguments (and wrapped) and as results. The reverse transforms record `f` on the tape and sweep it;
`jvp` and `jacfwd` use dual numbers and no tape. They compose: when a transform runs inside
another's recording (``tp.grad(tp.grad(f))``), it differentiates with ``create_graph=True`` so the
outer one can differentiate the result in turn.

What a transform returns is of the caller's kind, as in HIPS autograd and JAX: called with NumPy
arrays and Python numbers only (no Tensor among the arguments), outside any transform and record
block, it returns NumPy arrays, and a Python float for the derivative with respect to a Python
number, so SciPy's optimisers and in-place NumPy updates take the results as they are. Called with
Tensors, or nested inside another transform (where the outer one must differentiate the result),
it returns Tensors: only the outermost call converts.
"""

from __future__ import annotations

import numpy as np

from .composite import stack
from .forward import DualTensor, ForwardModeError, forget_tangents, make_dual
from .ops import reshape, sum
from .ops.registry import apply
from .ops.shape import IDENTITY
from .record import record
from .sweep import _seed, gradients, grads
from .tape import state
from .tensor import TRACKED_LEAF, Tensor, _new_tensor, tensor
from .tree import flatten, tree_map

# -- inputs -------------------------------------------------------------------------------------


def _as_float_tensor(x) -> Tensor:
    """A Tensor for `x`; integers become float64 (a gradient needs a float)."""
    t = x if isinstance(x, Tensor) else tensor(x)
    if t.dtype.kind != "f":
        t = tensor(t.array, dtype=np.float64)
    return t


def _watch(x) -> Tensor:
    """A differentiable input standing for `x`.

    If `x` is already tracked by an outer computation, the input is a recorded identity of it, so
    the outer computation can still differentiate through this one. If `x` is a dual number of a
    `tp.jvp` (forward over reverse), the input is a dual whose primal is a fresh leaf: the tape
    records the primal, and the sweep gives the gradient its tangent. Otherwise a fresh leaf.
    """
    if type(x) is DualTensor:
        return make_dual(_watch(x._primal), x._tangent, x._level)
    if isinstance(x, Tensor) and x._role:
        return apply(IDENTITY, (x,))
    if type(x) is np.ndarray and x.dtype.kind == "f":
        # the caller's array itself, not a copy (8 MB per W4 step): the tape never writes a leaf's
        # array, and f cannot either (an in-place change to a tracked tensor is refused while recording)
        leaf = _new_tensor(x)
    else:
        leaf = _new_tensor(_as_float_tensor(x).array)
    leaf._role = TRACKED_LEAF
    return leaf


def _unshared(value: Tensor, watched) -> Tensor:
    """`value`, copied if it is (a view of) an input `_watch` did not copy: f's result is the caller's
    to keep and write, as when the inputs were copied."""
    a = value.array
    if isinstance(a, np.ndarray) and any(np.may_share_memory(a, w.array) for ws in watched for w in ws):
        return _new_tensor(a.copy())
    return value


def _on_tape(x):
    """What the tape recorded for `x`: the primal of a dual number (forward over reverse), else x.

    (A Tensor: a dual computed without recording, under `no_grad`, may hold its primal raw.)"""
    while type(x) is DualTensor:
        x = x._primal
    return x if isinstance(x, Tensor) else _new_tensor(x)


def _argnums(argnums, nargs):
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)
    for n in nums:
        if not -nargs <= n < nargs:
            raise ValueError(f"argnums {argnums} out of range for a function called with {nargs} arguments")
    return nums


def _substitute(args, nums, xs) -> list:
    """`args` with the entries at positions `nums` replaced by `xs`."""
    full = list(args)
    for n, x in zip(nums, xs):
        full[n] = x
    return full


def _zeros_like(x):
    return _new_tensor(np.zeros_like(x.array))


def _result(g, nested):
    return g if nested or type(g) is DualTensor else g.detach()


def _plain_call(*trees) -> bool:
    """Called from plain NumPy code: outside any transform or record block, with no Tensor argument."""
    st = state()
    if st.recording or st.dual_depth:
        return False
    return not any(isinstance(x, Tensor) for t in trees for x in flatten(t)[0])


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _to_numpy(result, like=None):
    """`result` with every Tensor as its NumPy array. With `like` (the inputs the result is the
    derivative for, same tree), a 0-d result for a Python number becomes a float; without it (a
    function's value), a 0-d result becomes a NumPy scalar, as NumPy's reductions return."""
    leaves, shape = flatten(result)
    likes = flatten(like)[0] if like is not None else []
    if len(likes) != len(leaves):
        likes = [None] * len(leaves)
    out = []
    for r, x in zip(leaves, likes):
        if isinstance(r, Tensor):
            a = r.array
            if a.ndim == 0 and (like is None or _is_number(x)):
                r = float(a) if _is_number(x) else a[()]
            else:
                r = a
        out.append(r)
    return shape.unflatten(out)


# -- reverse mode -------------------------------------------------------------------------------


def value_and_grad(f, argnums=0):
    """A function returning ``(f(*args), gradient of f w.r.t. args[argnums])``.

    `f` must return a scalar. With a tuple `argnums` the gradient is a tuple. An argument may be a
    tuple/list/dict of tensors; its gradient has the same structure.

    >>> import tape as tp
    >>> tp.value_and_grad(lambda x: tp.sum(x ** 2))(tp.tensor([1.0, 2.0]))
    (tensor(5.), tensor([2., 4.]))
    """

    fast = getattr(f, "_value_and_grad", None)  # a compiled function replays without a tape

    def wrapped(*args, **kwargs):
        nums = _argnums(argnums, len(args))
        if fast is not None and not kwargs:
            got = fast(args, tuple(n % len(args) for n in nums))
            if got is not None:
                return _fast_result(got, args, nums, argnums)
        nested = state().recording
        plain = _plain_call(args)
        given = args
        args = list(args)
        watched = {}
        with record():
            for n in nums:
                leaves, shape = flatten(args[n])
                watched[n] = [_watch(x) for x in leaves]
                args[n] = shape.unflatten(watched[n])
            out = f(*args, **kwargs)
            out_t = out if isinstance(out, Tensor) else tensor(out)
        if out_t.size != 1:
            raise TypeError(f"grad: f must return a scalar, got shape {out_t.shape}; use jacobian or vjp instead")
        sources = [_on_tape(x) for n in nums for x in watched[n]]
        target = _on_tape(out_t)
        gs = grads(target, sources, retain_graph=nested, create_graph=nested, allow_unused=True) if target._role else ()
        gs = [_result(g, nested) if g is not None else _zeros_like(x) for g, x in zip(gs, sources)] or [
            _zeros_like(x) for x in sources
        ]
        results, k = [], 0
        for n in nums:
            count = len(watched[n])
            _, shape = flatten(args[n])
            results.append(shape.unflatten(gs[k : k + count]))
            k += count
        value = out_t if nested or type(out_t) is DualTensor else _unshared(out_t.detach(), watched.values())
        if isinstance(argnums, int):
            result, like = results[0], given[nums[0]]
        else:
            result, like = tuple(results), tuple(given[n] for n in nums)
        if plain:
            return _to_numpy(value), _to_numpy(result, like)
        return value, result

    return wrapped


def _fast_result(got, args, nums, argnums):
    """A compiled function's (value, gradient arrays) in the form the general path returns: NumPy
    values for a plain call (a float for a Python number), else Tensors without history."""
    value, gs = got
    if any(isinstance(a, Tensor) for a in args):
        value, gs = _new_tensor(value), [_new_tensor(g) for g in gs]
    else:
        value = value[()] if value.ndim == 0 else value
        gs = [float(g) if _is_number(args[n]) else g for g, n in zip(gs, nums)]
    return value, (gs[0] if isinstance(argnums, int) else tuple(gs))


def grad(f, argnums=0):
    """The gradient of scalar-valued `f` with respect to argument `argnums`, as a function.

    >>> import numpy as np, tape as tp
    >>> float(tp.grad(tp.grad(np.sin))(0.3)) == float(-np.sin(0.3))
    True
    """
    vg = value_and_grad(f, argnums)
    return lambda *args, **kwargs: vg(*args, **kwargs)[1]


def vjp(f, *primals):
    """``(f(*primals), vjp_fn)``: `vjp_fn(cotangent)` returns a tuple, one entry per primal.

    `vjp_fn` may be called many times (the recorded history is kept while it is alive). An input
    the output does not depend on gets zeros.

    >>> import tape as tp
    >>> out, vjp_fn = tp.vjp(lambda x, y: x * y, tp.tensor([1.0, 2.0]), tp.tensor([3.0, 4.0]))
    >>> vjp_fn(tp.ones(2))
    (tensor([3., 4.]), tensor([1., 2.]))
    """
    nested = state().recording
    plain = _plain_call(primals)
    flat = [flatten(p) for p in primals]
    watched = [[_watch(x) for x in leaves] for leaves, _ in flat]
    with record():
        out = f(*[shape.unflatten(w) for (_, shape), w in zip(flat, watched)])
    out_leaves, _ = flatten(out)
    sources = [_on_tape(x) for w in watched for x in w]

    def vjp_fn(cotangent):
        cts, _ = flatten(cotangent)
        pairs = [(_on_tape(o), c) for o, c in zip(out_leaves, cts) if isinstance(o, Tensor) and _on_tape(o)._role]
        gs = (
            grads([o for o, _ in pairs], sources, [c for _, c in pairs], True, nested, allow_unused=True)
            if pairs
            else [None] * len(sources)
        )
        gs = [_result(g, nested) if g is not None else _zeros_like(x) for g, x in zip(gs, sources)]
        result, k = [], 0
        for (_, shape), w in zip(flat, watched):
            result.append(shape.unflatten(gs[k : k + len(w)]))
            k += len(w)
        if plain and not state().recording:
            return _to_numpy(tuple(result), tuple(primals))
        return tuple(result)

    value = out if nested else tree_map(lambda o: _unshared(o.detach(), watched) if _detachable(o) else o, out)
    return (_to_numpy(value) if plain else value), vjp_fn


def _detachable(o) -> bool:
    return isinstance(o, Tensor) and type(o) is not DualTensor


def jacobian(f, argnums=0):
    """The Jacobian of `f` by reverse mode, one vjp per output element: shape ``out.shape + x.shape``.

    >>> import tape as tp
    >>> tp.jacobian(lambda x: x ** 2)(tp.tensor([1.0, 2.0]))
    tensor([[2., 0.],
            [0., 4.]])
    """

    def wrapped(*args):
        nums = _argnums(argnums, len(args))
        plain = _plain_call(args)

        def g(*xs):
            return f(*_substitute(args, nums, xs))

        out, vjp_fn = vjp(g, *[args[n] for n in nums])
        out_t = out if isinstance(out, Tensor) else tensor(out)
        rows = []
        for k in range(out_t.size):
            basis = np.zeros(out_t.size, dtype=out_t.dtype)
            basis[k] = 1.0
            rows.append(vjp_fn(_new_tensor(basis.reshape(out_t.shape))))
        jacs = []
        for i, n in enumerate(nums):
            x = _as_float_tensor(args[n])
            if rows:
                jacs.append(reshape(stack([_as_float_tensor(r[i]) for r in rows]), out_t.shape + x.shape))
            else:
                jacs.append(_new_tensor(np.zeros(out_t.shape + x.shape, dtype=x.dtype)))
        return _caller_kind(jacs, args, nums, argnums, plain)

    return wrapped


jacrev = jacobian


def _caller_kind(jacs, args, nums, argnums, plain):
    if isinstance(argnums, int):
        return _to_numpy(jacs[0], args[nums[0]]) if plain else jacs[0]
    return _to_numpy(tuple(jacs), tuple(args[n] for n in nums)) if plain else tuple(jacs)


def hessian(f, argnums=0):
    """The Hessian of scalar-valued `f`: the Jacobian of its gradient (reverse over reverse).

    >>> import tape as tp
    >>> tp.hessian(lambda x: tp.sum(x ** 3))(tp.tensor([1.0, 2.0]))
    tensor([[ 6.,  0.],
            [ 0., 12.]])
    """
    return jacobian(grad(f, argnums), argnums)


def hvp(f, primals, tangents):
    """The Hessian of scalar-valued `f` at `primals` times `tangents`, shaped like `primals`.

    Never forms the Hessian. Called from plain code, it is the tangent of the gradient along
    `tangents` (forward over reverse: one recording of `f` with dual numbers, one sweep); inside a
    record block or another transform, which may differentiate the result again, it is the gradient
    of ⟨∇f, v⟩ (reverse over reverse), as it is for an `f` using an op without a jvp rule.

    >>> import tape as tp
    >>> tp.hvp(lambda x: tp.sum(x ** 3), (tp.tensor([1.0, 2.0]),), (tp.tensor([1.0, 1.0]),))
    tensor([ 6., 12.])
    """
    primals, tangents = tuple(primals), tuple(tangents)
    if len(primals) != len(tangents):
        raise ValueError(f"hvp: {len(primals)} primals but {len(tangents)} tangents")
    st = state()
    if not (st.recording or st.dual_depth or st.anomaly):
        try:
            hv = _hvp_forward_over_reverse(f, primals, tangents)
        except ForwardModeError:
            # an op (or an op in a rule) without a jvp rule, or f takes a derivative itself with
            # create_graph: f runs again, reverse over reverse
            hv = None
        if hv is not None:
            return hv
    vs = [_as_float_tensor(v) for v in tangents]

    def inner(*xs):
        gs = grad(f, tuple(range(len(xs))))(*xs)
        total = None
        for g, v in zip(gs, vs):
            term = (g * v).sum()
            total = term if total is None else total + term
        return total

    out = grad(inner, tuple(range(len(primals))))(*primals)
    return out[0] if len(primals) == 1 else out


def _hvp_forward_over_reverse(f, primals, tangents):
    """H·v as the tangent of the gradient (forward over reverse), with raw-array tangents; None
    for primals that are not NumPy arrays (reverse over reverse serves those).

    Only for a call whose result nothing differentiates (outside any record block and transform):
    the tangents can then be plain arrays, and forward mode runs every jvp rule on arrays
    (`forward.apply_dual`), in `f` and in the sweep's rules alike. Reverse over reverse records
    the whole sweep as a second tape and sweeps that; this records `f` once and sweeps once.
    """
    xs = [_as_float_tensor(p) for p in primals]
    if not all(type(x.array) is np.ndarray for x in xs):
        return None
    plain = _plain_call(primals, tangents)
    leaves, ts = [], []
    for x, v in zip(xs, tangents):
        t = np.asarray(v.array if isinstance(v, Tensor) else v, dtype=x.dtype)
        if t.shape != x.shape:
            raise ValueError(f"hvp: tangent shape {t.shape} does not match the primal's shape {x.shape}")
        leaf = _new_tensor(x.array)
        leaf._role = TRACKED_LEAF
        leaves.append(leaf)
        ts.append(t)
    st = state()
    store = st.store
    st.dual_depth += 1
    st.dual_levels += 1
    level = st.dual_levels
    # Recording on, as in a record() block, without the block's Tape and log: nobody sees them (and
    # an enclosing block paused by no_grad does not log these entries either).
    paused = (st.recording, store.log_until)
    out = out_t = target = gs = g = None
    try:
        st.recording, store.log_until = True, 0
        try:
            out = f(*[make_dual(leaf, t, level) for leaf, t in zip(leaves, ts)])
        finally:
            st.recording, store.log_until = paused
        out_t = out if isinstance(out, Tensor) else tensor(out)
        if out_t.size != 1:
            raise TypeError(f"hvp: f must return a scalar, got shape {out_t.shape}")
        target = _on_tape(out_t)
        # (tp.grads' steps for a scalar Tensor target and leaf sources, none of its checks)
        gs = gradients([target], leaves, [_seed(target, None, "hvp")], False) if target._role else [None] * len(leaves)
        hv = []
        for g, x in zip(gs, xs):
            if type(g) is DualTensor and g._level == level:
                # a copy: the tangent may be the caller's own v (f = sum(x * x) / 2) or a saved value
                hv.append(_new_tensor(np.array(g._tangent, dtype=x.dtype, copy=True)))
            else:
                hv.append(_zeros_like(x))
    finally:
        st.dual_depth -= 1
        # the last handles on the recording: it is released here, its noted tangents with it, which
        # leaves forget_tangents nothing to look through
        out = out_t = target = gs = g = None
        forget_tangents(store, level)
    if plain:
        return _to_numpy(tuple(hv), primals) if len(primals) > 1 else _to_numpy(hv[0], primals[0])
    return hv[0] if len(primals) == 1 else tuple(hv)


# -- forward mode ---------------------------------------------------------------------------------


def jvp(f, primals, tangents):
    """``(f(*primals), J·tangents)`` by forward mode: dual numbers, no tape.

    >>> import tape as tp
    >>> tp.jvp(lambda x: tp.sin(x) * x, (tp.tensor(0.0),), (tp.tensor(1.0),))
    (tensor(0.), tensor(0.))
    """
    st = state()
    plain = _plain_call(primals, tangents)
    st.dual_depth += 1
    st.dual_levels += 1
    level = st.dual_levels
    try:
        duals = []
        for p, t in zip(primals, tangents):
            p_leaves, shape = flatten(p)
            t_leaves, _ = flatten(t)
            duals.append(
                shape.unflatten(
                    [make_dual(_as_float_tensor(x), _as_float_tensor(v), level) for x, v in zip(p_leaves, t_leaves)]
                )
            )
        out = f(*duals)
    finally:
        st.dual_depth -= 1
        forget_tangents(st.store, level)

    def split(o):
        if type(o) is DualTensor and o._level == level:
            p = o._primal  # a raw value where forward mode ran a jvp rule on arrays unrecorded
            return (p if isinstance(p, Tensor) else _new_tensor(p)), o._tangent
        o = o if isinstance(o, Tensor) else tensor(o)
        return o, _zeros_like(o)

    leaves, shape = flatten(out)
    pairs = [split(o) for o in leaves]
    primal_out = shape.unflatten([p for p, _ in pairs])
    tangent_out = shape.unflatten([t if isinstance(t, Tensor) else _new_tensor(np.asarray(t)) for _, t in pairs])
    if plain:
        return _to_numpy(primal_out), _to_numpy(tangent_out)
    return primal_out, tangent_out


def jacfwd(f, argnums=0):
    """The Jacobian of `f` by forward mode, one jvp per input element: shape ``out.shape + x.shape``.

    >>> import tape as tp
    >>> tp.jacfwd(lambda x: x ** 2)(tp.tensor([1.0, 2.0]))
    tensor([[2., 0.],
            [0., 4.]])
    """

    def wrapped(*args):
        nums = _argnums(argnums, len(args))
        plain = _plain_call(args)
        jacs = []
        for n in nums:
            x = _as_float_tensor(args[n])
            cols = []
            for k in range(x.size):
                basis = np.zeros(x.size, dtype=x.dtype)
                basis[k] = 1.0
                primals = [_as_float_tensor(a) if i in nums else a for i, a in enumerate(args)]
                tangents = [_new_tensor(basis.reshape(x.shape)) if i == n else _zeros_like(primals[i]) for i in nums]

                def g(*xs, primals=primals):
                    return f(*_substitute(primals, nums, xs))

                out, t_out = jvp(g, [primals[i] for i in nums], tangents)
                cols.append(t_out)
            out_shape = out.shape if cols else ()
            jac = stack(cols, axis=-1) if cols else _new_tensor(np.zeros((0,)))
            jacs.append(reshape(jac, tuple(out_shape) + x.shape))
        return _caller_kind(jacs, args, nums, argnums, plain)

    return wrapped


def elementwise_grad(f, argnums=0):
    """The gradient of ``sum(f(x))`` (HIPS autograd's): for an elementwise `f`, the derivative at
    every point of `x` at once, as for plotting a function and its derivatives.

    >>> import numpy as np, tape as tp
    >>> tp.elementwise_grad(np.tanh)(np.array([0.0, 1.0]))
    array([1.        , 0.41997434])
    """

    def summed(*args, **kwargs):
        return sum(f(*args, **kwargs))

    return grad(summed, argnums)
