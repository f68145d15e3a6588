"""Numba kernels: fused backward rules for large arrays, and one-thread loops for small ones.

What is fused, and why, measured on the 2-core development machine (2**22 float64, medians):

| rule                      | NumPy (the op table's rule) | this kernel (2 threads) |
|---------------------------|----------------------------:|------------------------:|
| mul: g*y and g*x          |                     17.0 ms |                  4.7 ms |
| tanh: g*(1 - o*o)         |                     15.8 ms |                  8.2 ms |

A fused kernel reads g once and writes every input's cotangent in the same pass, without the
temporaries a NumPy expression allocates (a fresh 32 MB array costs page faults, several times the
arithmetic). The forward rules stay in NumPy: its SIMD tanh and exp (15.5 ms, 8.4 ms) beat a
Numba loop (84 ms, 26 ms) that has no vector math library, and binary arithmetic is bound by
allocating the result either way. Matrix products stay on BLAS (through NumPy), which no loop
written here beats.

Each kernel takes g, the entry's saved values, its input slots (-1: a constant, no cotangent
needed), whether the sweep owns g (then g may be written into, and returned for one input at
most) and the sweep's adjoints (None outside the eager sweep; see numpy_backend: an input's owned
adjoint may be added into, its cotangent then None), and returns one cotangent per input (None: none
for, or already added into the adjoint of, that input), or None when it does not apply (small,
broadcast, non-contiguous or non-float arrays), in which case the sweep uses the op table's rules.
A g that is a broadcast scalar (the cotangent `sum` hands back) is read as that scalar. `mul` has
three more cases, none of which allocates when g is owned: `x * x` (one slot twice: 2·g·x for it,
once), a product with one value (`a * x`, a 0-d weight: Σ g·x, with no full-size product to sum, in
the same pass as g·a, which goes straight into x's adjoint when the sweep owns one) and a constant
one-value factor (`2.0 * x`).
Kernels are tested against those rules, one by one (tests/test_backends.py). The NumPy backend's
in-place rules come along for the ops not fused here, and its `mul` by a broadcast cotangent (with
g = 1 the cotangents are the saved factors themselves) is tried first.

Below MIN_SIZE the rules' cost is NumPy's per-call overhead (~0.3-0.5 µs a call on 100 elements),
not the arithmetic, so `tanh` (any g), and `sin`, `cos` and `mul` by a constant Python float (a g
the sweep owns, written into) run one non-parallel loop where the rules make two or three calls
(measurements above `_tanh_small`). Each compiles once per dtype and layout (cache=True: later
processes load it from disk).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ..opcodes import Op
from .numpy_backend import VJP_KERNELS as NUMPY_KERNELS
from .numpy_backend import mul_by_broadcast, owned_adjoint

#: Below this many elements a kernel call costs more than it saves; the rules run instead.
MIN_SIZE = 1 << 15
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_F32, _F64 = _FLOATS
_FLOAT_SET = frozenset(_FLOATS)
_ndarray = np.ndarray


def _flat(a):
    """A 1-D view of contiguous array `a`."""
    return a.reshape(-1)


def _scalar_g(g):
    """True when g is one value broadcast to its shape (every stride 0), as sum's rule returns."""
    return g.size >= MIN_SIZE and g.dtype in _FLOATS and not any(g.strides)


def _fits(g, *arrays):
    """True when g and `arrays` are large C-contiguous float arrays of g's shape and dtype."""
    if g.size < MIN_SIZE or g.dtype not in _FLOATS or not g.flags.c_contiguous:
        return False
    for a in arrays:
        if type(a) is not np.ndarray or a.shape != g.shape or a.dtype != g.dtype or not a.flags.c_contiguous:
            return False
    return True


@njit(parallel=True, cache=True)
def _mul_both(g, x, y, gx, gy):
    for i in prange(g.size):
        gx[i] = g[i] * y[i]
        gy[i] = g[i] * x[i]


@njit(parallel=True, cache=True)
def _mul_both_scalar_g(g0, x, y, gx, gy):
    for i in prange(x.size):
        gx[i] = g0 * y[i]
        gy[i] = g0 * x[i]


@njit(parallel=True, cache=True)
def _div_both(g, y, o, gx, gy):
    for i in prange(g.size):
        q = g[i] / y[i]
        gx[i] = q
        gy[i] = -q * o[i]


@njit(parallel=True, cache=True)
def _tanh(g, o, gx, one):
    # `one` has g's dtype: a literal 1.0 is float64 to Numba, which turned float32 arithmetic into
    # float64 (conversions, half the SIMD lanes) and rounded differently from the rule
    # (2**18 float32, one thread: 64 µs with 1.0, 40 µs with `one`)
    for i in prange(g.size):
        gx[i] = g[i] * (one - o[i] * o[i])


@njit(parallel=True, cache=True)
def _where_both(c, g, gx, gy):
    for i in prange(g.size):
        if c[i]:
            gx[i] = g[i]
            gy[i] = 0.0
        else:
            gx[i] = 0.0
            gy[i] = g[i]


@njit(parallel=True, cache=True)
def _tie_share_both(g, x, y, gx, gy):
    # maximum: gx = g where x > y, gy = g where x < y, g/2 each on ties; with (y, x) it is minimum
    for i in prange(g.size):
        if x[i] > y[i]:
            gx[i] = g[i]
            gy[i] = 0.0
        elif x[i] < y[i]:
            gx[i] = 0.0
            gy[i] = g[i]
        else:
            gx[i] = 0.5 * g[i]
            gy[i] = 0.5 * g[i]


def _two_outputs(kernel, g, *operands):
    gx, gy = np.empty_like(g), np.empty_like(g)
    kernel(*[_flat(a) for a in operands], _flat(gx), _flat(gy))
    return gx, gy


@njit(parallel=True, cache=True)
def _square_vjp(g, x, gx):
    for i in prange(g.size):
        gx[i] = 2.0 * g[i] * x[i]


@njit(cache=True)
def _dot_scale(g, x, a, out, accumulate):
    # Σ g·x, and out = g·a (out may be g: each element is read before it is written) or, with
    # `accumulate`, out += g·a (out: x's adjoint, which the sweep owns, so that g·a is not written
    # into g for the sweep to add in a pass of its own), in one pass over g. Four running sums, so
    # that the loop is not one chain of dependent additions (which is what makes it beat np.dot
    # followed by np.multiply: 2.4 against 3.6 ms at 2**22 float64, one core). One thread: a
    # parallel loop with a reduction measured slower on one core (4.7 ms).
    n = g.size
    quad = n // 4 * 4
    s0 = s1 = s2 = s3 = 0.0
    for i in range(0, quad, 4):
        g0, g1, g2, g3 = g[i], g[i + 1], g[i + 2], g[i + 3]
        s0 += g0 * x[i]
        s1 += g1 * x[i + 1]
        s2 += g2 * x[i + 2]
        s3 += g3 * x[i + 3]
        if accumulate:
            out[i] += g0 * a
            out[i + 1] += g1 * a
            out[i + 2] += g2 * a
            out[i + 3] += g3 * a
        else:
            out[i] = g0 * a
            out[i + 1] = g1 * a
            out[i + 2] = g2 * a
            out[i + 3] = g3 * a
    for i in range(quad, n):
        s0 += g[i] * x[i]
        if accumulate:
            out[i] += g[i] * a
        else:
            out[i] = g[i] * a
    return (s0 + s1) + (s2 + s3)


def _one_value(a):
    """True for an array of one element (a 0-d weight, a (1, 1) scale) or a float64 scalar (how the
    engine holds a 0-d float64 value)."""
    return (type(a) is np.ndarray or type(a) is np.float64) and a.size == 1 and a.dtype in _FLOATS


def mul_vjp(g, saved, ins, g_owned=False, adj=None):
    if g.size < MIN_SIZE:
        # x * c or c * x, c a constant Python float (or a float64 scalar, for float64): g·c in one loop,
        # into g when the sweep owns it. Else the rules: a new array, or two tracked factors, whose
        # products cost no more. (Written out here, not a function of its own: on 100 elements a
        # Python call costs a fifth of the kernel's time.)
        if not g_owned:
            return None
        if ins[1] < 0:
            c = saved[2]
        elif ins[0] < 0:
            c = saved[1]
        else:
            return None
        dtype = g.dtype
        tc = type(c)
        if dtype is _F64:
            if tc is not float and tc is not np.float64:
                return None
        elif dtype is _F32 and tc is float:
            c = np.float32(c)  # what NumPy does with a Python float: float32 arithmetic
        else:
            return None
        if g.ndim == 1:
            _scale_small_into(g, c)
        elif g.flags.c_contiguous:
            _scale_small_into(g.reshape(-1), c)
        else:
            return None
        return (g, None) if ins[1] < 0 else (None, g)
    cts = mul_by_broadcast(g, saved, ins)  # g one value broadcast: no full-size product, when it applies
    if cts is not None:
        return cts
    _, x, y = saved
    if ins[0] < 0 or ins[1] < 0:  # one tracked factor, the other one value (2.0 * x): g times it
        if ins[0] >= 0 and _one_value(y) and _fits(g) and y.dtype == g.dtype:
            return np.multiply(g, y.reshape(()), out=g if g_owned else None), None
        if ins[1] >= 0 and _one_value(x) and _fits(g) and x.dtype == g.dtype:
            return None, np.multiply(g, x.reshape(()), out=g if g_owned else None)
        return None
    if ins[0] == ins[1] > 0 and x is y and _fits(g, x):
        # x * x: one cotangent 2·g·x for the one input (into g when the sweep owns it), rather than
        # g·x twice and their sum. Only the eager sweep passes slots (> 0 here); a compiled replay
        # passes 0 for every input it wants, which says nothing about two inputs being one.
        gx = g if g_owned else np.empty_like(g)
        _square_vjp(_flat(g), _flat(x), _flat(gx))
        return gx, None
    if _one_value(x) != _one_value(y) and not _scalar_g(g):
        if _one_value(x):
            return _mul_by_one_value(g, x, y, g_owned, owned_adjoint(adj, ins[1], g))
        cts = _mul_by_one_value(g, y, x, g_owned, owned_adjoint(adj, ins[0], g))
        return None if cts is None else cts[::-1]
    if _scalar_g(g) and _fits(x, y):
        gx, gy = np.empty_like(x), np.empty_like(x)
        _mul_both_scalar_g(g.dtype.type(g.flat[0]), _flat(x), _flat(y), _flat(gx), _flat(gy))
        return gx, gy
    if not _fits(g, x, y):
        return None
    return _two_outputs(_mul_both, g, g, x, y)


def _mul_by_one_value(g, a, x, g_owned, acc=None):
    """(cotangent of a, cotangent of x) for a · x with `a` one value: Σ g·x (no full-size product to
    sum) and g·a, both in one pass over g; g·a is added into `acc` (x's adjoint, which the sweep owns:
    x's cotangent is then None, already counted), else written into g when the sweep owns it."""
    if not _fits(g, x) or a.dtype != g.dtype:
        return None
    a0 = g.dtype.type(a.reshape(()))
    if acc is not None:
        total = _dot_scale(_flat(g), _flat(x), a0, _flat(acc), True)
        return np.asarray(total, dtype=g.dtype).reshape(a.shape), None
    gx = g if g_owned else np.empty_like(g)
    total = _dot_scale(_flat(g), _flat(x), a0, _flat(gx), False)
    return np.asarray(total, dtype=g.dtype).reshape(a.shape), gx


def div_vjp(g, saved, ins, g_owned=False, adj=None):
    o, _, y = saved
    if not (ins[0] >= 0 and ins[1] >= 0 and _fits(g, y, o)):
        return None
    return _two_outputs(_div_both, g, g, y, o)


def _tanh_large(g, saved, ins, g_owned=False, adj=None):
    o = saved[0]
    if not _fits(g, o):
        return None
    gx = g if g_owned else np.empty_like(g)  # each element is read before it is written
    _tanh(_flat(g), _flat(o), _flat(gx), g.dtype.type(1))
    return (gx,)


# Below MIN_SIZE: one-thread loops, where one call replaces two or more NumPy calls (each ~0.3-0.5 µs
# on 100 elements, mostly call overhead). What they save in W2's backward (100 float64, 1000 ops,
# one process toggling each loop between interleaved passes, median of 40):
# tanh's g·(1 − o·o) 0.21 µs/op (1 call for 3, and their two temporaries), sin's g·cos(x) into g
# 0.06 (the loop's libm cos costs what NumPy's does, the multiply comes free), y * 0.9's g·0.9 into g
# 0.08 (a Python float operand is slow in NumPy 2). Measured per call (median of 7 x 5000, owned
# g or not): given a g it does not own, a loop needs a new array (np.empty_like, ~0.2 µs) and loses
# to the rules' one or two calls (sin 1.75 against 1.46 µs, g·0.9 0.79 against 0.54, div's two
# cotangents 1.57 against 1.22: div has no loop), except tanh's (0.89 against 1.27). So sin's, cos's
# and mul's loops apply only to an owned g. exp's g·o, one NumPy call, stays with the rules.


@njit(cache=True)
def _tanh_small(g, o, gx):
    one = g.dtype.type(1)  # as in _tanh: a literal 1.0 would make float32 arithmetic float64
    for i in range(g.size):
        gx[i] = g[i] * (one - o[i] * o[i])


# Loops into g, for a g the sweep owns: Numba's dispatcher types every argument on every call, ~0.1 µs
# an array, so g passed once rather than twice (as g and gx) saves that (tanh on 100 float64: 0.34
# against 0.24 µs a call, one process, median of 7 x 20000 calls). sin's and cos's run only into g.


@njit(cache=True)
def _tanh_small_into(g, o):
    one = g.dtype.type(1)
    for i in range(g.size):
        g[i] = g[i] * (one - o[i] * o[i])


@njit(cache=True)
def _sin_small_into(g, x):
    for i in range(g.size):
        g[i] = g[i] * math.cos(x[i])


@njit(cache=True)
def _cos_small_into(g, x):
    for i in range(g.size):
        g[i] = -g[i] * math.sin(x[i])


@njit(cache=True)
def _scale_small_into(g, a):
    for i in range(g.size):
        g[i] = g[i] * a


def _unary(loop, into, k, large, owned_only):
    """A unary op's kernel: below MIN_SIZE `into(g, saved[k])` when the sweep owns g, else (unless
    `owned_only`, then `loop` is None) `loop(g, saved[k], gx)` into a new array (a 1-D array is
    passed as it is, a strided one too: the loop indexes it; an n-d one as a 1-D view, so it must be
    C-contiguous); from MIN_SIZE on, `large` (which declines a g the sweep does not own if
    `owned_only`). The checks are written for speed (identity of dtypes: a dtype equal but not
    identical declines, and the rules run): on 100 elements they cost as much as the loop."""

    def kernel(g, saved, ins, g_owned=False, adj=None):
        if g.size >= MIN_SIZE:
            return large(g, saved, ins, g_owned)
        a = saved[k]
        dtype = g.dtype
        if type(a) is not _ndarray or a.dtype is not dtype or dtype not in _FLOAT_SET or a.shape != g.shape:
            return None
        if g_owned:  # each element is read before it is written
            if g.ndim == 1:
                into(g, a)
            elif g.flags.c_contiguous and a.flags.c_contiguous:
                into(g.reshape(-1), a.reshape(-1))
            else:
                return None
            return (g,)
        if owned_only:
            return None
        gx = np.empty_like(g)
        if g.ndim == 1:
            loop(g, a, gx)
        elif g.flags.c_contiguous and a.flags.c_contiguous:
            loop(g.reshape(-1), a.reshape(-1), gx.reshape(-1))
        else:
            return None
        return (gx,)

    kernel.min_size, kernel.owned_only = 0, owned_only
    return kernel


tanh_vjp = _unary(_tanh_small, _tanh_small_into, 0, _tanh_large, owned_only=False)


def where_vjp(g, saved, ins, g_owned=False, adj=None):
    c = saved[1]
    if not (ins[1] >= 0 and ins[2] >= 0 and _fits(g) and type(c) is np.ndarray and c.shape == g.shape):
        return None
    if not c.flags.c_contiguous or c.dtype != np.bool_:
        return None
    gx, gy = _two_outputs(_where_both, g, c, g)
    return None, gx, gy


def maximum_vjp(g, saved, ins, g_owned=False, adj=None):
    _, x, y = saved
    if not (ins[0] >= 0 and ins[1] >= 0 and _fits(g, x, y)):
        return None
    return _two_outputs(_tie_share_both, g, g, x, y)


def minimum_vjp(g, saved, ins, g_owned=False, adj=None):
    _, x, y = saved
    if not (ins[0] >= 0 and ins[1] >= 0 and _fits(g, x, y)):
        return None
    # minimum: x wins where x < y, i.e. where the kernel's first argument (y) is the larger
    return _two_outputs(_tie_share_both, g, g, y, x)


#: Fused backward kernels by opcode: kernel(g, saved, input slots) -> cotangents, or None.
VJP_KERNELS = {
    **NUMPY_KERNELS,
    Op.MUL: mul_vjp,
    Op.DIV: div_vjp,
    Op.TANH: tanh_vjp,
    Op.SIN: _unary(None, _sin_small_into, 1, NUMPY_KERNELS[Op.SIN], owned_only=True),  # from MIN_SIZE: NumPy's, into g
    Op.COS: _unary(None, _cos_small_into, 1, NUMPY_KERNELS[Op.COS], owned_only=True),
    Op.WHERE: where_vjp,
    Op.MAXIMUM: maximum_vjp,
    Op.MINIMUM: minimum_vjp,
}
for _kernel in (div_vjp, where_vjp, maximum_vjp, minimum_vjp):
    _kernel.min_size, _kernel.owned_only = MIN_SIZE, False  # what the sweep reads to skip a call (numpy_backend)
mul_vjp.min_size, mul_vjp.owned_only = 0, False  # below MIN_SIZE: g times a constant, into an owned g
