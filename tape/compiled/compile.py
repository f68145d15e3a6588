"""`tp.compile`: record a function once per signature, then replay its program (API §9).

A call looks up the program for its *signature* (the pytree structure, the shapes and dtypes of the
array arguments, the values of the static ones). The first call with a signature runs `fn` once,
recording into a private `CompileStore` on which every array argument is a leaf (integer label
arrays too, so that what is computed from them is recorded rather than frozen), and lowers the
recording to a `Program`. Later calls replay it.

Guards: a recorded value turned into a Python bool, int or float inside `fn` (`tensor._capture`
is the hook) is noted with the outcome seen; the replay checks it right after computing that
value and, when it differs, the call falls back to the other programs cached for the signature,
then to recording a new one (at most `max_programs`, then eager calls).

Composition: a call whose inputs (or the tensors fn closes over) are tracked, while recording, is
ONE entry on the caller's tape (`compiled:<name>`) whose rule is the program's reverse pass; with
``create_graph=True`` that rule re-runs `fn` eagerly instead, so higher derivatives still work.
A compiled function called while another is being recorded is inlined: its Python just runs.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import threading

import numpy as np

from .. import tensor as _tensor_mod
from ..backends import get_backend
from ..checkpointing.segment import Layout, pull_back_differentiably, recording_into
from ..creation import get_rng_state, set_rng_state
from ..ops.registry import OpDef, apply
from ..tape import state
from ..tensor import Tensor, _new_tensor
from ..tree import flatten
from . import replay
from .lower import DRAW_OP, PLAIN_OP, CompileStore, lower, read_rows
from .program import Program

# ------------------------------------------------------------------------------------------------
# The capture hook: installed in tensor.py while at least one thread records a compiled function.

_lock = threading.Lock()
_active = 0


def _store():
    st = state()
    s = st.store
    return s if st.recording and isinstance(s, CompileStore) else None


class _Capture:
    """What a compiled function's recording needs from the layers below (see the module doc)."""

    @staticmethod
    def guard(t, value):
        store = _store()
        if store is None:
            return
        if isinstance(value, np.ndarray):
            value = value.copy()
        store.guards.append((store.slot_of(t), value))
        store.keep.append(t)

    @staticmethod
    def index(t):
        """An index Tensor: an argument is replayed with its new value (`lower.InputRef`); one computed
        from values is frozen into the entry's params, so its value becomes a guard."""
        if not t.is_leaf:
            _Capture.guard(t, t.array)

    @staticmethod
    def plain(name, args, arrays, out, kw):
        store = _store()
        if store is None or not any(isinstance(a, Tensor) and a.requires_grad for a in args):
            return None
        return store.append(PLAIN_OP, tuple(args), list(arrays), out, {"fn": name, **kw})

    @staticmethod
    def draw(kind, shape, t):
        store = _store()
        if store is None:
            return None
        out = t.array
        r = store.append(DRAW_OP, (), [], out, {"kind": kind, "shape": tuple(shape), "dtype": out.dtype.str})
        store.draws.append(r._slot)
        store.keep.append(r)
        return r


_CAPTURE = _Capture()


def _begin():
    global _active
    with _lock:
        _active += 1
        _tensor_mod._capture = _CAPTURE


def _end():
    global _active
    with _lock:
        _active -= 1
        if _active == 0:
            _tensor_mod._capture = None


# ------------------------------------------------------------------------------------------------
# One recorded path of one signature.


class _Compiled:
    __slots__ = ("program", "externals", "out_tree", "out_spec", "float_outs", "one_tensor", "layout", "fast")


class _Call:
    """What the entry of one composed call needs for its reverse pass."""

    __slots__ = ("cf", "compiled", "saved", "layout", "packed", "args", "kwargs", "inputs")

    def take(self):
        packed, self.packed = self.packed, None
        return packed

    def reverse(self, g):
        if isinstance(g, Tensor):  # create_graph=True: run fn eagerly, recorded, and differentiate that
            return self.reverse_differentiably(g)
        prog = self.compiled.program
        parts = self.layout.unpack_arrays(g)
        cts = [None] * len(prog.outputs)
        for k, part in zip(self.compiled.float_outs, parts):
            cts[k] = part
        wanted = [isinstance(x, Tensor) and x.requires_grad for x in self.inputs]
        return tuple(prog._pullback(self.saved, cts, wanted))

    def reverse_differentiably(self, g):
        out = self.cf.fn(*self.args, **self.kwargs)
        leaves, _ = flatten(out)
        by_output = {}  # program output -> the Tensor fn returned for it (the first, if returned twice)
        for leaf, spec in zip(leaves, self.compiled.out_spec):
            if isinstance(spec, int):
                by_output.setdefault(spec, leaf)
        outputs = [by_output[k] for k in self.compiled.float_outs]
        tracked = [x for x in self.inputs if isinstance(x, Tensor) and x.requires_grad]
        got = iter(pull_back_differentiably(outputs, self.layout.unpack_tensors(g), tracked))
        return tuple(next(got) if isinstance(x, Tensor) and x.requires_grad else None for x in self.inputs)


def _entry_forward(*arrays, call):
    return call.take()


def _entry_vjp(g, *saved, call):
    return call.reverse(g)


# ------------------------------------------------------------------------------------------------


class CompiledFunction:
    """`fn` compiled: see `compile`."""

    def __init__(self, fn, static_argnums=(), max_programs=8):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.static_argnums = (static_argnums,) if isinstance(static_argnums, int) else tuple(static_argnums)
        self.max_programs = int(max_programs)
        self._cache: dict = {}
        self._counts = {"calls": 0, "replays": 0, "recordings": 0, "guard_failures": 0, "eager_calls": 0}
        self._lock = threading.Lock()
        name = getattr(fn, "__name__", "fn")
        # Not added to the op table: the entry's rule lives in this object (like a checkpoint's).
        self._op = OpDef(999, f"compiled:{name}", _entry_forward, save="*", vjp_all=_entry_vjp)

    def __repr__(self):
        return f"<tp.compile {getattr(self.fn, '__name__', 'fn')}: {self.stats()}>"

    def stats(self) -> dict:
        """calls, replays, recordings, guard_failures, eager_calls, and programs (cached paths)."""
        with self._lock:
            d = dict(self._counts)
            d["programs"] = sum(len(v) for v in self._cache.values())
        return d

    def _count(self, key):
        with self._lock:
            self._counts[key] += 1

    # -- signature ---------------------------------------------------------------------------
    def _split(self, args, kwargs):
        """(dynamic leaves, signature, rebuild): the array leaves, the cache key, and a function
        that puts new leaves back into (args, kwargs)."""
        if not kwargs and not self.static_argnums:
            # the common call, f(x, W, ...) on Tensors and arrays: no tree to walk (a step in a
            # checkpointed loop is called thousands of times)
            key = tuple(_leaf_key(a) for a in args)
            if None not in key:
                return list(args), ("flat", key), lambda new: (list(new), {})
        static = tuple((i, _hashable(args[i])) for i in self.static_argnums if -len(args) <= i < len(args))
        static_pos = {i % len(args) for i, _ in static} if args else set()
        dyn_args = [a for i, a in enumerate(args) if i not in static_pos]
        leaves, tree = flatten((dyn_args, kwargs))
        dyn, keys, where = [], [], []
        for k, v in enumerate(leaves):
            key = _leaf_key(v)
            if key is not None:
                dyn.append(v)
                keys.append(key)
                where.append(k)
            else:
                keys.append(("static", _hashable(v)))
        sig = (tree, static, tuple(keys))

        def rebuild(new):
            ls = list(leaves)
            for k, x in zip(where, new):
                ls[k] = x
            new_dyn, new_kw = tree.unflatten(ls)
            it = iter(new_dyn)
            full = [args[i] if i in static_pos else next(it) for i in range(len(args))]
            return full, new_kw

        return dyn, sig, rebuild

    # -- calls -------------------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        st = state()
        if not (st.recording or st.dual_depth or kwargs or self.static_argnums):
            # the common replay, f(x, W, ...) outside any recording: nothing to compose, no tree to walk
            key = tuple(map(_leaf_key, args))
            paths = self._cache.get(("flat", key))  # a dict read: no lock (lists are replaced, not edited)
            if paths and None not in key:
                for c in paths:
                    try:
                        result = self._replay_plain(c, args)
                    except replay.GuardFailed:
                        continue
                    with self._lock:
                        self._counts["calls"] += 1
                        self._counts["replays"] += 1
                    return result
        if _store() is not None:  # inside another compiled function's recording: inline
            return self.fn(*args, **kwargs)
        self._count("calls")
        if state().dual_depth:  # forward mode (tp.jvp, jacfwd) carries tangents a program does not: run fn
            self._count("eager_calls")
            return self.fn(*args, **kwargs)
        dyn, sig, rebuild = self._split(args, kwargs)
        with self._lock:
            paths = list(self._cache.get(sig, ()))
        for c in paths:
            try:
                result = self._replay(c, dyn, args, kwargs)
            except replay.GuardFailed:
                continue
            self._count("replays")
            return result
        if paths:
            self._count("guard_failures")
            if len(paths) >= self.max_programs:
                self._count("eager_calls")
                return self._eager(dyn, rebuild)
        c, result, rng = self._record(dyn, rebuild)
        self._count("recordings")
        with self._lock:  # a new list: readers without the lock see the old one or the new one
            self._cache[sig] = [*self._cache.get(sig, ()), c]
        if self._composing(c, dyn):  # the caller's tape gets the one entry, as for a replay
            return self._replay(c, dyn, args, kwargs, rng=rng)
        return result

    def _value_and_grad(self, args, nums):
        """`tp.value_and_grad(cf, argnums)(*args)` without a tape: (value, gradients) as arrays, or
        None where the general path is needed (recording, forward mode, anomaly checks, a first call,
        pytrees, several or non-scalar outputs, a guard no cached path passes).

        The general path records ONE entry for the call and sweeps it; here the program's forward and
        reverse run back to back, which is what that entry's sweep does, minus the tape around it.
        """
        st = state()
        if st.recording or st.dual_depth or st.anomaly or self.static_argnums:
            return None
        key = tuple(map(_leaf_key, args))
        paths = self._cache.get(("flat", key))  # a dict read: no lock (a list is replaced, never edited in place)
        if not paths or None in key:
            return None
        arrays = [x.array if type(x) is Tensor else _array_of(x) for x in args]
        for c in paths:
            fast = c.fast.get(nums, False) if c.fast is not None else False
            if fast is False:
                fast = _fast_path(c, nums, key)
            if fast is None:
                return None
            prog, plan, out_slot, out_buf, rplan, kernel = fast
            xs = arrays + [e.array for e in c.externals] if c.externals else arrays
            if kernel is not None and kernel.kind == "scalar" and not kernel.guards and get_backend() == "numba":
                out, got = kernel.scalar_value_and_grad(xs, out_slot, rplan)  # W1: one kernel call
            else:
                try:
                    vals, saved = replay.run_forward(plan, xs, keep_saved=True)
                except replay.GuardFailed:
                    continue
                out = vals[out_buf]
                if out.base is not None or any(out is a for a in xs):  # fn returned (a view of) an input
                    out = out.copy()
                got = replay.run_reverse(rplan, saved, {out_slot: np.ones_like(out)}, kernel)
            grads = prog._hand_out([got[n] for n in nums], nums, xs)
            counts = self._counts
            with self._lock:
                counts["calls"] += 1
                counts["replays"] += 1
            return out, grads
        return None

    def _eager(self, dyn, rebuild):
        """fn run eagerly on Tensors, as the recording ran it (so results are of the same kind)."""
        args2, kwargs2 = rebuild([x if isinstance(x, Tensor) else _new_tensor(_array_of(x)) for x in dyn])
        return self.fn(*args2, **kwargs2)

    def program(self, *args, **kwargs) -> Program:
        """The program for these arguments' signature (recording it if needed; runs nothing else)."""
        dyn, sig, rebuild = self._split(args, kwargs)
        with self._lock:
            paths = self._cache.get(sig)
        if not paths:
            c, _, _ = self._record(dyn, rebuild)
            with self._lock:
                self._cache[sig] = [*self._cache.get(sig, ()), c]
            self._count("recordings")
            return c.program
        return paths[-1].program

    def _composing(self, c, dyn) -> bool:
        if not state().recording:
            return False
        return any(isinstance(x, Tensor) and x.requires_grad for x in dyn) or any(e.requires_grad for e in c.externals)

    def _record(self, dyn, rebuild):
        """Run fn once, recording, and lower what it did. Returns (the path, fn's result, the random
        generator's state before it ran)."""
        with _cyclic_gc_paused():
            return self._record_paused(dyn, rebuild)

    def _record_paused(self, dyn, rebuild):
        rng = get_rng_state()
        store = CompileStore()
        arrays = [_array_of(x) for x in dyn]
        proxies = [store.leaf(a) for a in arrays]
        args2, kwargs2 = rebuild(proxies)
        _begin()
        try:
            with recording_into(store):
                out = self.fn(*args2, **kwargs2)
            out_leaves, out_tree = flatten(out)
            out_slots, spec = [], []
            for v in out_leaves:
                if isinstance(v, Tensor) and v.requires_grad:
                    s = store.slot_of(v)
                    if s not in out_slots:
                        out_slots.append(s)
                    spec.append(out_slots.index(s))
                else:
                    spec.append(("const", v))
            ext = list(store.externals)
            input_slots = [store.leaf_slot(p) for p in proxies] + [store.slot_of(e) for e in ext]
        finally:
            _end()
        ext_arrays = [e.array for e in ext]
        all_arrays = arrays + ext_arrays
        metas = [(np.shape(a), np.result_type(a)) for a in all_arrays]
        rows, _ = read_rows(store)
        lowered = lower(rows, input_slots, metas, out_slots, store.guards, store.draws, all_arrays)
        c = _Compiled()
        c.program = Program(lowered, name=getattr(self.fn, "__name__", "fn"), single=len(out_slots) == 1)
        c.externals = ext
        c.out_tree = out_tree
        c.out_spec = spec
        c.layout = None
        c.fast = None  # argnums -> what `_value_and_grad` needs, made on first use
        c.one_tensor = (int(c.program.outputs[0]),) if out_tree.kind is None and spec == [0] else None
        c.float_outs = [k for k, s in enumerate(c.program.outputs) if c.program.dtypes[int(s)].kind == "f"]
        # fn's own result, without the private history (values as an eager call gives them)
        result = out_tree.unflatten([_detached(v) for v in out_leaves])
        del store, out, out_leaves, proxies
        return c, result, rng

    def _replay_plain(self, c, dyn):
        """A replay whose result goes to no tape: fn's result rebuilt around the program's outputs."""
        prog = c.program
        arrays = [x.array if type(x) is Tensor else _array_of(x) for x in dyn]
        if c.externals:
            arrays += [e.array for e in c.externals]
        vals, _ = replay.run_forward(prog._plan, arrays)
        if c.one_tensor:  # fn returned one Tensor: the common case, without rebuilding a tree
            return _new_tensor(vals[prog._plan.vbuf[c.one_tensor[0]]])
        outs = prog._outputs(vals)
        outs = (outs,) if prog.single else outs
        return c.out_tree.unflatten([_wrap(outs[s]) if isinstance(s, int) else s[1] for s in c.out_spec])

    def _replay(self, c, dyn, args, kwargs, rng=None):
        if not self._composing(c, dyn):
            return self._replay_plain(c, dyn)
        prog = c.program
        arrays = [x.array if type(x) is Tensor else _array_of(x) for x in dyn]
        if c.externals:
            arrays += [e.array for e in c.externals]
        if rng is not None:  # the first call of a composed path: draw what the recording drew
            set_rng_state(rng)
        vals, saved = replay.run_forward(prog._plan, arrays, keep_saved=True)
        outs = prog._outputs(vals)
        outs = (outs,) if prog.single else outs
        call = _Call()
        call.cf, call.compiled, call.saved, call.args, call.kwargs = self, c, saved, args, kwargs
        call.inputs = tuple(dyn) + tuple(c.externals)
        results = [_wrap(o) for o in outs]
        if c.float_outs:
            if c.layout is None:  # the same shapes at every call of a program
                c.layout = Layout([outs[k] for k in c.float_outs])
            call.layout = c.layout
            call.packed = call.layout.pack([outs[k] for k in c.float_outs])
            entry_inputs = tuple(x if isinstance(x, Tensor) else _array_of(x) for x in call.inputs)
            packed = apply(self._op, entry_inputs, {"call": call})
            for k, part in zip(c.float_outs, call.layout.unpack_tensors(packed)):
                results[k] = part
        return c.out_tree.unflatten([results[s] if isinstance(s, int) else s[1] for s in c.out_spec])


_F8 = np.dtype(np.float64)


def _fast_path(c, nums, key):
    """What `_value_and_grad` needs for path `c` and these argnums, or None where it does not apply:
    fn returned one float scalar Tensor, the differentiated arguments are float arrays/Tensors, each
    differentiated once."""
    prog = c.program
    fast = None
    ok = c.one_tensor is not None and len(set(nums)) == len(nums)
    if ok:
        s = c.one_tensor[0]
        ok = prog.shapes[s] in ((), (1,)) and prog.dtypes[s].kind == "f"
    if ok:
        ok = all(key[n][1].kind == "f" for n in nums)  # a dual number cannot be here: forward mode is off
    if ok:
        wanted = [False] * prog.n_inputs
        for n in nums:
            wanted[n] = True
        plan = prog._plan
        fast = (prog, plan, s, plan.vbuf[s], prog._reverse_plan(wanted), plan.kernel)
    c.fast = {**(c.fast or {}), nums: fast}  # a new dict: a benign race between threads
    return fast


_gc_lock = threading.Lock()
_gc_depth = 0
_gc_was_enabled = True


@contextlib.contextmanager
def _cyclic_gc_paused():
    """Python's cyclic collector off while a recording is made and lowered.

    A recording allocates tens of thousands of tuples that all stay alive, which triggers full
    collections that walk them all: half of W5's first call (10,000 steps, 40,001 entries) went
    there. Cycles made meanwhile are collected after. Nested and concurrent recordings count: the
    last one out restores the collector as the first one in found it.
    """
    global _gc_depth, _gc_was_enabled
    with _gc_lock:
        if _gc_depth == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_depth += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_depth -= 1
            if _gc_depth == 0 and _gc_was_enabled:
                gc.enable()


def _leaf_key(v):
    """(shape, dtype) of an argument that is an input of the program, None for a static one.

    Tensors, arrays and NumPy scalars are inputs; so are Python floats (as float64 scalars, the
    same signature as a 0-d float64 Tensor, which is what `tp.grad` hands the function).
    """
    if type(v) is Tensor or isinstance(v, (np.ndarray, np.generic, Tensor)):
        return (v.shape, v.dtype)
    if type(v) is float:
        return ((), _F8)
    return None


def _array_of(x):
    if isinstance(x, Tensor):
        return x.array
    if isinstance(x, float):
        return np.asarray(x, dtype=np.float64)
    return np.asarray(x)


def _wrap(a):
    return _new_tensor(a)


def _detached(v):
    return _new_tensor(v.array) if isinstance(v, Tensor) else v


def _hashable(v):
    try:
        hash(v)
        return v
    except TypeError:
        if isinstance(v, (list, tuple)):
            return tuple(_hashable(x) for x in v)
        if isinstance(v, dict):
            return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
        raise TypeError(
            f"compile: a non-array argument of type {type(v).__name__} is part of the signature and must be "
            "hashable (or pass it as an array)"
        ) from None


def compile(fn=None, *, static_argnums=(), max_programs=8):  # noqa: A001 (the API's name)
    """Compile `fn`: record it once per signature, then replay the recorded program (API §9).

    The signature is the pytree structure of the arguments, the shapes and dtypes of the array and
    Tensor arguments (Python floats count as float64 scalars), and the values of everything else
    and of `static_argnums`. Turning a recorded value into a Python bool, int or float inside `fn`
    records a guard; a replay whose inputs take another path runs `fn` again and records that path
    too (at most `max_programs` per signature; past that, calls run eagerly).

    >>> import numpy as np, tape as tp
    >>> calls = []
    >>> @tp.compile
    ... def f(x):
    ...     calls.append(1)
    ...     return tp.sum(tp.sin(x) ** 2)
    >>> x = np.array([0.5, 1.0])
    >>> float(f(x)) == float(np.sum(np.sin(x) ** 2)), float(f(2 * x)) == float(np.sum(np.sin(2 * x) ** 2))
    (True, True)
    >>> len(calls), f.stats()["replays"]
    (1, 1)
    >>> g = tp.grad(f)(x)                   # one entry on the tape; its vjp is the program's reverse pass
    >>> bool(np.allclose(g, np.sin(2 * x)))
    True
    """
    if fn is None:
        return lambda f: CompiledFunction(f, static_argnums, max_programs)
    return CompiledFunction(fn, static_argnums, max_programs)
