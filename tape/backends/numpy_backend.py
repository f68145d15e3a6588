"""The NumPy backend: the executable specification, plus in-place rules.

Its kernels *are* the op table's forward functions and rules (tape/ops/*.py), written with NumPy
calls. What it adds is one thing the rules cannot do, because they do not know who holds `g`: when
the sweep owns the cotangent (it allocated it and nobody else holds it), the cotangent of a unary
op is written into `g` itself (``np.multiply(g, o, out=g)`` for exp) instead of into a fresh array.
On large arrays a fresh array costs page faults, more than the arithmetic (2**22 float64: 5-8 ms
each). Every other backend's kernels are tested against the rules, and these too.

And one thing the rules need not know: a cotangent that is one value broadcast (what `sum` hands
back to the op before it) needs no full-size product in `mul`: with the value 1 (`backward()`'s
seed) x's cotangent g·y is y itself, and a one-value factor makes a zero-stride view. The sweep
never writes into a saved value or a view, so the op before allocates when it needs to, as it would
have.

It adds one more thing, for the weight of a matrix-vector product (``W @ x``, ``x @ W``, ``np.dot``):
the weight's cotangent, the outer product g xᵀ, is handed to the sweep as the pair (g, x), a
`sweep.LowRank`, which the sweep's adjoint buffer adds up many at a time with one matrix product
(a loop that multiplies by the same weight at every step would otherwise make and add an m x n
array per step). Consumers of kernels turn a `LowRank` into an array with `.dense()` where they
want one (the compiled replay does).

A kernel is ``kernel(g, saved, input slots, g_owned, adj) -> cotangents, or None`` (None: the rules
run). It returns new arrays, g itself (only when the sweep owns g, for one input at most), or a saved
value (which the sweep then treats as held by others). `adj` is the sweep's `Adjoints` (None outside
the eager sweep: a compiled replay, a differentiable pass): a kernel may add its cotangent for an
input into that input's adjoint where the sweep owns it (`owned_adjoint`), and then returns None for
that input, its cotangent already counted. `mul` does, for a product with one value (W3's a · x: x's
adjoint gets g·a added in the pass that sums g·x, instead of g·a into g and then a pass adding g).
It carries two attributes, which the sweep reads to skip a call that would only decline: `min_size`
(it declines a g with fewer elements) and `owned_only` (it declines a g the sweep does not own).
"""

from __future__ import annotations

import numpy as np

from ..opcodes import Op
from ..sweep import LowRank


def into_g(rule):
    """A kernel that runs `rule(g, out, x)`, which writes its result into `g`, when the sweep owns g."""

    def kernel(g, saved, ins, g_owned=False, adj=None):
        if not g_owned or type(g) is not np.ndarray:
            return None
        return (rule(g, *saved),)

    kernel.min_size, kernel.owned_only = 0, True
    return kernel


def mul_by_broadcast(g, saved, ins, g_owned=False, adj=None):
    """x * y's cotangents when g is one value broadcast (every stride 0: what sum's rule hands back),
    without a full-size product: with g = 1 (a `backward()` seed), a factor of g's shape is the
    other input's cotangent itself; a factor of one value `a` makes the other's cotangent g·a
    broadcast (a zero-stride view); and an input of one value whose factor has g's shape gets
    g·Σ factor, a reduction with no temporary. None where any tracked input needs more."""
    if type(g) is not np.ndarray or g.size < 2 or any(g.strides):
        return None
    _, x, y = saved
    g0 = g.flat[0]
    cts = [None, None]
    for i, (mine, factor) in enumerate(((x, y), (y, x))):
        if ins[i] < 0:
            continue
        if np.size(factor) == 1:
            cts[i] = np.broadcast_to(np.multiply(g0, np.reshape(factor, ())), g.shape)
        elif np.shape(factor) != g.shape:
            return None  # broadcast against the other, but not one value: the rules sum it
        elif g0 == 1:
            cts[i] = factor
        elif (type(mine) is np.ndarray or type(mine) is np.float64) and mine.size == 1:
            cts[i] = np.asarray(np.multiply(g0, np.sum(factor)), dtype=np.result_type(g, factor)).reshape(mine.shape)
        else:
            return None  # g0 · factor, a full-size product: the rules (or a fused kernel) make it
    return tuple(cts)


#: Elements per block of tanh's in-place rule: its o·o temporary is one block, kept in cache.
_BLOCK = 1 << 15
#: Below this many elements (128 KiB of float64, glibc's default threshold for mapping fresh pages)
#: a temporary costs no page faults, and tanh's and mul's kernels leave the work to the rules.
MIN_SIZE = 1 << 14


def _same(a, g) -> bool:
    return type(a) is np.ndarray and a.shape == g.shape and a.dtype == g.dtype


def _one_value(a, g) -> bool:
    """One element of g's dtype: a 0-d or (1, 1) array, or a float64 scalar (the engine's 0-d float64)."""
    return (type(a) is np.ndarray or type(a) is np.float64) and a.size == 1 and a.dtype == g.dtype


def tanh_vjp(g, saved, ins, g_owned=False, adj=None):
    """g·(1 − o·o) with one new array and no temporary when g is not owned (the rule makes three), and
    into g with one block-sized temporary when it is."""
    o = saved[0]
    if type(g) is not np.ndarray or g.size < MIN_SIZE or not _same(o, g):
        return None
    if not g_owned:
        out = np.multiply(o, o)
        np.subtract(1, out, out=out)
        return (np.multiply(g, out, out=out),)
    if not (g.flags.c_contiguous and o.flags.c_contiguous):
        return None
    fg, fo = g.reshape(-1), o.reshape(-1)
    tmp = np.empty(min(_BLOCK, fg.size), g.dtype)
    for start in range(0, fg.size, _BLOCK):
        gb, ob = fg[start : start + _BLOCK], fo[start : start + _BLOCK]
        t = tmp[: gb.size]
        np.multiply(ob, ob, out=t)
        np.subtract(1, t, out=t)
        np.multiply(gb, t, out=gb)
    return (g,)


def owned_adjoint(adj, slot, g):
    """The adjoint of input `slot` when the sweep owns it (allocated it, nobody else holds it) and it is
    a C-contiguous array of g's shape and dtype, which a kernel may add into; else None."""
    if adj is None or slot not in adj.owned:
        return None
    acc = adj.adj.get(slot)
    if type(acc) is not np.ndarray or acc is g or acc.shape != g.shape or acc.dtype != g.dtype:
        return None
    return acc if acc.flags.c_contiguous else None


def _dot_axpy(g, x, a, acc):
    """Σ g·x, and acc += g·a, a block at a time: the product g·a is one block-sized temporary (kept in
    cache), not a full-size array or a pass writing into g."""
    fg, fx, fa = g.reshape(-1), x.reshape(-1), acc.reshape(-1)
    total = np.dot(fg, fx)
    tmp = np.empty(min(_BLOCK, fg.size), g.dtype)
    for start in range(0, fg.size, _BLOCK):
        gb = fg[start : start + _BLOCK]
        t = tmp[: gb.size]
        np.multiply(gb, a, out=t)
        ab = fa[start : start + _BLOCK]
        np.add(ab, t, out=ab)
    return total


def mul_vjp(g, saved, ins, g_owned=False, adj=None):
    """x * y's cotangents where the rules would allocate more than needed: a broadcast g
    (`mul_by_broadcast`);
    `x * x`, one slot twice, 2·g·x once (the rules' g·x twice, then their sum); a product with one
    value `a` (a 0-d weight), Σ g·x as a dot product (no full-size product to sum) and g·a, added into
    x's adjoint when the sweep owns one (`owned_adjoint`: None for x), else written into g when the
    sweep owns g; and a one-value constant factor, into an owned g. None elsewhere."""
    cts = mul_by_broadcast(g, saved, ins)
    if cts is not None or type(g) is not np.ndarray or g.size < MIN_SIZE:
        return cts
    _, x, y = saved
    out = g if g_owned else None
    if ins[0] < 0 or ins[1] < 0:  # one tracked factor: g times the other, if that is one value
        other = y if ins[0] >= 0 else x
        if not (_one_value(other, g) and g_owned):
            return None  # not owned: the rule allocates one array, as this would
        gx = np.multiply(g, other.reshape(()), out=g)
        return (gx, None) if ins[0] >= 0 else (None, gx)
    if ins[0] == ins[1] > 0 and x is y and _same(x, g):
        # Only the eager sweep passes slots (> 0 here); a compiled replay passes 0 for every input.
        gx = np.multiply(g, x, out=out)
        return np.multiply(gx, 2, out=gx), None
    for a, other, k in ((x, y, 0), (y, x, 1)):
        if _one_value(a, g) and _same(other, g) and g.flags.c_contiguous and other.flags.c_contiguous:
            acc = owned_adjoint(adj, ins[1 - k], g)
            if acc is not None:
                ga, gx = np.asarray(_dot_axpy(g, other, a.reshape(()), acc), dtype=g.dtype).reshape(a.shape), None
            else:
                ga = np.asarray(np.dot(g.reshape(-1), other.reshape(-1)), dtype=g.dtype).reshape(a.shape)
                gx = np.multiply(g, a.reshape(()), out=out)
            return (ga, gx) if k == 0 else (gx, ga)
    return None


_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def matvec_vjp(g, saved, ins, g_owned=False, adj=None):
    """matmul / dot of a matrix and a vector, either way round: the matrix's cotangent as the pair
    (g, x) (a `LowRank`), the vector's as the matrix-vector product of the rules. None (the rules
    run) for anything else: batched or matrix-matrix products, mixed dtypes, a constant matrix."""
    _, a, b = saved
    if type(a) is not np.ndarray or type(b) is not np.ndarray or g.ndim != 1:
        return None
    dtype = g.dtype
    if a.dtype != dtype or b.dtype != dtype or dtype not in _FLOATS:
        return None
    if a.ndim == 2 and b.ndim == 1 and ins[0] >= 0:  # W @ x: dW = g xᵀ, dx = Wᵀ g
        return LowRank(g, b), (g @ a if ins[1] >= 0 else None)
    if a.ndim == 1 and b.ndim == 2 and ins[1] >= 0:  # x @ W: dx = W g, dW = x gᵀ
        return (b @ g if ins[0] >= 0 else None), LowRank(a, g)
    return None


# The in-place rules pass `out` by position, to ufuncs bound here: on 100 elements the keyword and
# the attribute lookups cost ~15% of the call (np.multiply(g, o, out=g) 335 ns, _multiply(g, o, g) 243).
# Each is a kernel of its own, not `into_g` of a rule: on 100 elements the second Python call and the
# *saved unpacking cost as much as the ufunc call (exp: 850 ns through into_g, 550 ns written out;
# one process, median of 7 x 20000 calls).
_negative, _multiply, _divide, _cos, _sin = np.negative, np.multiply, np.divide, np.cos, np.sin
_ndarray = np.ndarray


def _neg_into_g(g, saved, ins, g_owned=False, adj=None):
    if not g_owned or type(g) is not _ndarray:
        return None
    return (_negative(g, g),)


def _exp_into_g(g, saved, ins, g_owned=False, adj=None):
    if not g_owned or type(g) is not _ndarray:
        return None
    return (_multiply(g, saved[0], g),)  # g·o


def _log_into_g(g, saved, ins, g_owned=False, adj=None):
    if not g_owned or type(g) is not _ndarray:
        return None
    return (_divide(g, saved[1], g),)  # g/x


def _sin_into_g(g, saved, ins, g_owned=False, adj=None):
    if not g_owned or type(g) is not _ndarray:
        return None
    return (_multiply(g, _cos(saved[1]), g),)  # g·cos(x)


def _cos_into_g(g, saved, ins, g_owned=False, adj=None):
    if not g_owned or type(g) is not _ndarray:
        return None
    _multiply(g, _sin(saved[1]), g)
    return (_negative(g, g),)  # -g·sin(x)


#: In-place backward rules by opcode, for a cotangent the sweep owns (unary ops; `g` keeps its dtype,
#: which is the output's, which for these ops is the input's).
IN_PLACE = {
    Op.NEG: _neg_into_g,
    Op.EXP: _exp_into_g,
    Op.LOG: _log_into_g,
    Op.SIN: _sin_into_g,
    Op.COS: _cos_into_g,
    Op.SQRT: into_g(lambda g, o, x: np.multiply(np.divide(g, o, out=g), 0.5, out=g)),
}
for _kernel in (_neg_into_g, _exp_into_g, _log_into_g, _sin_into_g, _cos_into_g):
    _kernel.min_size, _kernel.owned_only = 0, True

tanh_vjp.min_size, tanh_vjp.owned_only = MIN_SIZE, False
mul_vjp.min_size, mul_vjp.owned_only = MIN_SIZE, False  # (a broadcast g below it: the rules, which are as good)
matvec_vjp.min_size, matvec_vjp.owned_only = 0, False

#: This backend's kernels by opcode: the in-place rules, tanh's and mul's, and the matrix-vector
#: products' low-rank rule.
VJP_KERNELS = {**IN_PLACE, Op.TANH: tanh_vjp, Op.MUL: mul_vjp, Op.MATMUL: matvec_vjp, Op.DOT: matvec_vjp}
