"""`Program`: a recorded block lowered to flat columns, replayed forward and backward (API §9).

A program is immutable data: the columns `opcode`, `ins` (a padded matrix, -1 past an entry's
`nin` inputs) and `output`, a parameter table, a constant pool, the shape and dtype of every slot,
the input and output slots and the guards. Everything derived from them (which buffer each slot
lives in, what the reverse pass needs, the statistics) is computed once, when the program is
built, before anything runs.
"""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np

from ..record import Entry
from ..tensor import Tensor
from . import replay
from .kernels import FlatKernel, arena_dtype, entry_kind
from .lower import DRAW_CODE, PLAIN_CODE, InputRef, Lowered, assign_buffers, lower, op_of, read_rows, saves

FORMAT = "tape-program/1"


class Plan:
    """What a forward replay walks: one precomputed step per entry, and the value buffer map."""

    __slots__ = ("steps", "n_buffers", "const_bufs", "input_guards", "vbuf", "reverse", "kernel", "guards_at")
    __slots__ += ("build_steps",)


class ReversePlan:
    """What a reverse replay walks, for one set of wanted inputs: adjoint buffers and rules per entry."""

    __slots__ = ("rsteps", "no_saved", "abuf", "n_adj", "input_abufs", "want", "build", "kernel_steps")


class Program:
    """A recorded computation as flat integer columns, replayed without running its Python.

    Made by `tp.compile` (``cf.program(*args)``), `Tape.compile` or `tp.load_program`.

    >>> import numpy as np, tape as tp
    >>> x = tp.tensor([1.0, 2.0], requires_grad=True)
    >>> with tp.record() as t:
    ...     y = tp.sum(tp.sin(x) * x)
    >>> p = t.compile(inputs=[x], outputs=y)
    >>> print(p)
    v1 = sin(v0)
    v2 = mul(v1, v0)
    v3 = sum(v2)
    >>> value, grads = p.value_and_grad(np.array([0.5, 1.0]))
    >>> round(float(value), 6), np.allclose(grads[0], np.sin([0.5, 1.0]) + [0.5, 1.0] * np.cos([0.5, 1.0]))
    (1.081184, True)
    """

    def __init__(self, lowered, name="program", single=True):
        lo = lowered
        self.opcode, self.ins, self.nin, self.output = lo.opcode, lo.ins, lo.nin, lo.output
        self.params, self.consts = lo.params, lo.consts
        self.shapes, self.dtypes = [tuple(s) for s in lo.shapes], [np.dtype(d) for d in lo.dtypes]
        self.n_inputs, self.outputs, self.guards = lo.n_inputs, lo.outputs, list(lo.guards)
        self.name = name
        self.single = single  # one output, returned as is rather than in a tuple
        # Python views of the columns, for building the plans (numpy scalars are slow to index one by one)
        self._out_list, self._op_list = self.output.tolist(), self.opcode.tolist()
        self._out_slots = [int(s) for s in self.outputs]
        self._repeated_outs = [k for k, s in enumerate(self._out_slots) if s in self._out_slots[:k]]
        self._ins_lists = [row[:k] for row, k in zip(self.ins.tolist(), self.nin.tolist())]
        self._sizes = [math.prod(sh) * dt.itemsize for sh, dt in zip(self.shapes, self.dtypes)]
        self._plan = self._make_plan()
        self._stats = None  # computed from the columns on first request (nothing needs to run)

    # -- what the columns mean ---------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return len(self.shapes)

    @property
    def _base(self) -> int:
        return self.n_inputs + len(self.consts)

    def _nbytes(self, s) -> int:
        return self._sizes[s]

    def _entry_ins(self, k):
        return self._ins_lists[k]

    def _differentiable(self, s) -> bool:
        return (s < self.n_inputs or s >= self._base) and self.dtypes[s].kind == "f"

    def _make_plan(self) -> Plan:
        n, base = len(self.opcode), self._base
        nbytes = self._sizes
        # Value buffers: inputs and constants each keep their own; entries reuse freed ones.
        order = [(self._out_list[k], self._entry_ins(k)) for k in range(n)]
        pinned = set(int(s) for s in self.outputs) | {s for s, _ in self.guards}
        vbuf, count, _ = assign_buffers([(s, ()) for s in range(base)] + order, nbytes, pinned | set(range(base)))
        plan = Plan()
        plan.vbuf = vbuf
        plan.n_buffers = count
        plan.const_bufs = [(vbuf[self.n_inputs + k], c) for k, c in enumerate(self.consts)]
        guards_at: dict = {}
        plan.input_guards = []
        for s, v in self.guards:
            if s < base:
                plan.input_guards.append((vbuf[s], v))
            else:
                guards_at.setdefault(s - base, []).append(v)
        plan.guards_at = guards_at
        plan.steps = None  # the Python replay's steps, made on its first use (a kernel may never need them)
        plan.build_steps = self._build_steps
        plan.reverse = {}
        plan.kernel = FlatKernel.make(self, plan)
        return plan

    def _step(self, k, vbuf, guards=None):
        """Entry k as the Python replay walks it (`vbuf`: slot -> the buffer it lives in)."""
        code = self._op_list[k]
        d = op_of(code)
        params = self.params[k]
        ins = self._entry_ins(k)
        return (
            d.forward,
            code,
            tuple(vbuf[s] for s in ins),
            vbuf[self._out_list[k]],
            params,
            replay._holds_input_ref(params),
            guards,
            d.saved,
        )

    def _build_steps(self):
        plan = self._plan
        steps = [self._step(k, plan.vbuf, plan.guards_at.get(k)) for k in range(len(self.opcode))]
        plan.steps = steps  # a benign race: two threads build equal lists
        return steps

    def _rstep(self, k, abuf):
        """Entry k as the Python reverse walks it: (output's adjoint buffer, op row, (adjoint buffer or
        None, (shape, dtype)) per input, what kernel_vjp reads)."""
        code = self._op_list[k]
        d = op_of(code)
        ins = self._entry_ins(k)
        out = self._out_list[k]
        differentiable = code not in (PLAIN_CODE, DRAW_CODE) and out in abuf
        rins = tuple((abuf.get(s) if differentiable else None, (self.shapes[s], self.dtypes[s])) for s in ins)
        kins = tuple(0 if b is not None else -1 for b, _ in rins)  # what kernel_vjp reads: wanted or not
        return (abuf.get(out) if differentiable else None, d, rins, kins)

    def _build_rsteps(self, rp):
        rsteps = [self._rstep(k, rp.abuf) for k in range(len(self.opcode))]
        rp.no_saved = [(None,) * (1 + len(self._entry_ins(k))) for k in range(len(self.opcode))]
        rp.rsteps = rsteps  # after no_saved: a thread that sees rsteps sees both
        return rsteps

    def _reverse_plan(self, wanted=None):
        """The reverse steps for the inputs flagged in `wanted` (all by default), made once per mask.

        Only slots on a path from a wanted input to an output get an adjoint: a batch of data that
        is an input but not differentiated (an MLP's X) costs no cotangent.
        """
        key = None if wanted is None or all(wanted) else tuple(bool(w) for w in wanted)
        rp = self._plan.reverse.get(key)
        if rp is not None:
            return rp
        nbytes = self._sizes
        abuf, n_adj = self._assign_adjoints(nbytes, key)
        rp = ReversePlan()
        rp.rsteps, rp.no_saved, rp.abuf, rp.n_adj = None, None, abuf, n_adj  # the steps: on first use
        rp.build = lambda: self._build_rsteps(rp)
        rp.kernel_steps = None
        rp.input_abufs = [abuf.get(s) for s in range(self.n_inputs)]
        rp.want = None  # the kernels' mask of abuf, made on first use
        self._plan.reverse[key] = rp  # a dict write: safe to race with another thread making the same plan
        return rp

    def _assign_adjoints(self, nbytes, wanted=None):
        """Adjoint buffers: a slot's adjoint lives from its first cotangent (its last reader, walking
        down) to the entry that computes it; inputs' adjoints live to the end."""
        n_in, base, n = self.n_inputs, self._base, len(self._op_list)
        ops, outs, ins_lists = self._op_list, self._out_list, self._ins_lists
        no_adjoint = (PLAIN_CODE, DRAW_CODE)
        # slots an adjoint can reach: those on a path from a wanted input to an output, and
        # differentiable (a float input or entry; constants never get one). Lists, not sets: the
        # first call of a 40,000-entry loop walks them twice.
        reach = [False] * self.n_slots
        for k in range(n_in):
            reach[k] = wanted is None or bool(wanted[k])
        for k in range(n):
            if ops[k] not in no_adjoint:
                for s in ins_lists[k]:
                    if reach[s]:
                        reach[outs[k]] = True
                        break
        kinds = self.dtypes
        for s in range(self.n_slots):
            if reach[s] and ((n_in <= s < base) or kinds[s].kind != "f"):
                reach[s] = False
        buf, free, count = {}, {}, 0
        for s in sorted({int(s) for s in self.outputs}):
            if reach[s]:
                buf[s] = count
                count += 1
        for k in range(n - 1, -1, -1):
            out = outs[k]
            if out not in buf or ops[k] in no_adjoint:
                continue
            for s in ins_lists[k]:
                if reach[s] and s not in buf:
                    pool = free.get(nbytes[s])
                    if pool:
                        buf[s] = pool.pop()
                    else:
                        buf[s] = count
                        count += 1
            if out >= n_in:
                free.setdefault(nbytes[out], []).append(buf[out])
        return buf, count

    # -- statistics --------------------------------------------------------------------------
    def _compute_stats(self) -> dict:
        n, base = len(self.opcode), self._base
        nbytes = self._sizes
        order = [(s, ()) for s in range(base)] + [(self._out_list[k], self._entry_ins(k)) for k in range(n)]
        pinned = set(int(s) for s in self.outputs) | set(range(base))
        _, count, peak = assign_buffers(order, nbytes, pinned)
        saved_bytes, flops, fallback, by_numpy = 0, 0, {}, {}
        kernel = self._plan.kernel
        fallen = set(kernel.fallback) if kernel is not None else set()
        saved_slots = set()
        for k in range(n):
            code = self._op_list[k]
            ins = self._entry_ins(k)
            out_saved, in_saved = saves(code, len(ins))
            if out_saved:
                saved_slots.add(self._out_list[k])
            saved_slots.update(s for s, f in zip(ins, in_saved) if f)
            flops += _flops(code, [self.shapes[s] for s in ins], self.shapes[self._out_list[k]])
            if kernel is None or k in fallen:
                name = self._op_name(k)
                into = by_numpy if self._has_kernel(k) else fallback
                into[name] = into.get(name, 0) + 1
        saved_bytes = sum(nbytes[s] for s in saved_slots if s >= self.n_inputs)
        adj_peak = self._adjoint_peak(nbytes)
        return {
            "entries": n,
            "slots": self.n_slots,
            "inputs": self.n_inputs,
            "constants": len(self.consts),
            "buffers": count,
            "adjoint_buffers": self._reverse_plan().n_adj,
            "bytes_forward": int(peak),
            "bytes_reverse": int(saved_bytes + adj_peak),
            "saved_bytes": int(saved_bytes),
            "flops": int(flops),
            "guards": len(self.guards),
            "kernel": self._plan.kernel.kind if self._plan.kernel is not None else None,
            "arena_bytes": self._plan.kernel.template.nbytes if self._plan.kernel is not None else 0,
            "fallback_ops": dict(sorted(fallback.items())),
            "numpy_ops": dict(sorted(by_numpy.items())),
        }

    def _has_kernel(self, k) -> bool:
        """Whether entry k has a kernel (it may still run in NumPy by choice: `numpy_ops`)."""
        if any(sh is None for sh in self.shapes):
            return False
        return entry_kind(self, k, arena_dtype(self)) >= 0

    def _adjoint_peak(self, nbytes) -> int:
        abuf = self._reverse_plan().abuf
        live = {s for s in (int(o) for o in self.outputs) if s in abuf}
        size = peak = sum(nbytes[s] for s in live)
        for k in range(len(self.opcode) - 1, -1, -1):
            out = self._out_list[k]
            if out not in live:
                continue
            for s in self._entry_ins(k):
                if s in abuf and s not in live:
                    live.add(s)
                    size += nbytes[s]
            peak = max(peak, size)
            live.discard(out)
            size -= nbytes[out]
        return peak

    def stats(self) -> dict:
        """ADOL-C's tapestats, from the columns alone: entries, slots, value `buffers` after reuse,
        `bytes_forward`/`bytes_reverse` (peak bytes each pass holds), `saved_bytes` (values kept for
        the reverse pass), `flops` (forward, estimated), `fallback_ops` (op name -> entries that
        have no kernel and replay through the op table's Python rules) and `numpy_ops` (op name ->
        entries that have a kernel but run through NumPy by choice: a transcendental op such as
        `tanh` on an array past `kernels.MAX_ELEMENTS` elements, where NumPy's SIMD loops are
        faster, or a run of kernel entries too short to be worth a kernel call).

        >>> import numpy as np, tape as tp
        >>> p = tp.compile(lambda x: tp.sum(tp.tanh(x) * 2.0)).program(np.ones(1000))
        >>> p.stats()["fallback_ops"], p.stats()["numpy_ops"]
        ({}, {'mul': 1, 'sum': 1, 'tanh': 1})
        """
        if self._stats is None:
            self._stats = self._compute_stats()
        return dict(
            self._stats, fallback_ops=dict(self._stats["fallback_ops"]), numpy_ops=dict(self._stats["numpy_ops"])
        )

    # -- looking at it -----------------------------------------------------------------------
    def __len__(self):
        return len(self.opcode)

    def _label(self, s) -> str:
        if s < self.n_inputs:
            return f"v{s - self.n_inputs + 1}"
        if s < self._base:
            c = self.consts[s - self.n_inputs]
            if np.ndim(c) == 0:
                return repr(c.item() if isinstance(c, (np.ndarray, np.generic)) else c)
            return f"c{s - self.n_inputs}"
        return f"v{s - self._base + 1}"

    @property
    def entries(self) -> list[Entry]:
        """The Wengert list, as `Tape.entries`: inputs are v{1-n}..v0, entry k writes v{k+1}."""
        out = []
        for k in range(len(self.opcode)):
            ins = tuple(
                None
                if self.n_inputs <= s < self._base
                else (s - self.n_inputs + 1 if s < self.n_inputs else s - self._base + 1)
                for s in self._entry_ins(k)
            )
            out.append(Entry(k, self._op_name(k), ins, k + 1))
        return out

    def _op_name(self, k) -> str:
        code = self._op_list[k]
        if code == PLAIN_CODE:
            return self.params[k]["fn"]
        if code == DRAW_CODE:
            return self.params[k]["kind"]
        return op_of(code).name

    def __str__(self):
        lines = []
        guards = {}
        for s, v in self.guards:
            guards.setdefault(s, []).append(v)
        for s in range(self.n_inputs):
            for v in guards.get(s, ()):
                lines.append(f"guard {type(v).__name__}({self._label(s)}) == {v!r}")
        for k in range(len(self.opcode)):
            args = ", ".join(self._label(s) for s in self._entry_ins(k))
            out = self._out_list[k]
            lines.append(f"{self._label(out)} = {self._op_name(k)}({args})")
            for v in guards.get(out, ()):
                lines.append(f"guard {type(v).__name__}({self._label(out)}) == {v!r}")
        return "\n".join(lines)

    def __repr__(self):
        return f"<Program {self.name}: {len(self)} entries, {self.n_inputs} inputs, {len(self.outputs)} outputs>"

    # -- running it --------------------------------------------------------------------------
    def input_specs(self):
        return [(self.shapes[k], self.dtypes[k]) for k in range(self.n_inputs)]

    def _check(self, arrays, what="program"):
        if len(arrays) != self.n_inputs:
            raise ValueError(f"{what}: takes {self.n_inputs} input arrays, got {len(arrays)}")
        out = []
        for k, a in enumerate(arrays):
            a = getattr(a, "array", a)
            a = a if isinstance(a, np.ndarray) else np.asarray(a)
            shape, dtype = self.shapes[k], self.dtypes[k]
            if shape is not None and (a.shape != shape or (dtype is not None and a.dtype != dtype)):
                given = [
                    (np.shape(getattr(x, "array", x)), str(np.result_type(getattr(x, "array", x)))) for x in arrays
                ]
                raise ValueError(
                    f"{what}: input {k} has shape {a.shape} and dtype {a.dtype}, but the program was recorded "
                    f"with shape {shape} and dtype {dtype}; expected {[(s, str(d)) for s, d in self.input_specs()]}, "
                    f"given {given}"
                )
            out.append(a)
        return out

    def _outputs(self, vals):
        vbuf = self._plan.vbuf
        outs = [vals[vbuf[s]] for s in self._out_slots]
        for k in self._repeated_outs:  # one value returned twice (CSE merged them): two arrays, as eager gives
            outs[k] = outs[k].copy()
        return outs[0] if self.single else tuple(outs)

    def __call__(self, *arrays):
        """Replay the forward pass on `arrays` (one per input); return the output(s)."""
        arrays = self._check(arrays, f"{self.name}")
        try:
            vals, _ = replay.run_forward(self._plan, arrays)
        except replay.GuardFailed:
            raise ValueError(
                f"{self.name}: these inputs take another path than the recorded one (a guard failed)"
            ) from None
        return self._outputs(vals)

    def _forward_for_reverse(self, arrays):
        return replay.run_forward(self._plan, arrays, keep_saved=True)

    def _pullback(self, saved, cotangents, wanted=None):
        seeds = {}
        for s, g in zip(self.outputs, cotangents):
            if g is None:
                continue
            s = int(s)
            g = np.asarray(getattr(g, "array", g))
            if g.shape != self.shapes[s]:
                raise ValueError(
                    f"{self.name} vjp: cotangent shape {g.shape} does not match the output's {self.shapes[s]}"
                )
            seeds[s] = seeds[s] + g if s in seeds else g
        return replay.run_reverse(self._reverse_plan(wanted), saved, seeds, self._plan.kernel)

    def _hand_out(self, got, which, foreign):
        """The input cotangents `got` (for inputs `which`) as arrays the caller may keep and write:
        zeros where None; a copy where the array is not one this pass allocated and nobody else holds
        (a view, a read-only broadcast, one of the arrays in `foreign` such as the caller's own
        inputs or cotangents, or one already handed out for another input), else the array itself.
        """
        out, handed = [], {id(a) for a in foreign}
        for k, g in zip(which, got):
            shape, dtype = self.shapes[k], self.dtypes[k]
            if g is None:
                g = np.zeros(shape, dtype)
            elif (
                type(g) is not np.ndarray
                or g.base is not None
                or not g.flags.writeable
                or id(g) in handed
                or g.dtype != dtype
                or g.shape != shape
            ):
                g = np.array(np.reshape(g, shape), dtype=dtype, copy=True)
            handed.add(id(g))
            out.append(g)
        return out

    def vjp(self, *arrays):
        """(outputs, vjp_fn): `vjp_fn(cotangents)` returns a tuple of input cotangents (zeros where
        an input does not reach the outputs). `cotangents` matches the outputs (one array, or a tuple)."""
        arrays = self._check(arrays, self.name)
        try:
            vals, saved = self._forward_for_reverse(arrays)
        except replay.GuardFailed:
            raise ValueError(
                f"{self.name}: these inputs take another path than the recorded one (a guard failed)"
            ) from None
        outs = self._outputs(vals)

        def vjp_fn(cotangents):
            cts = (cotangents,) if self.single else tuple(cotangents)
            got = self._pullback(saved, cts)
            return tuple(self._hand_out(got, range(self.n_inputs), list(arrays) + list(cts)))

        return outs, vjp_fn

    def value_and_grad(self, *arrays):
        """(value, gradients of the scalar output with respect to every input)."""
        if not self.single or self.shapes[int(self.outputs[0])] not in ((), (1,)):
            raise ValueError(f"{self.name}: value_and_grad needs one scalar output; use vjp")
        out, vjp_fn = self.vjp(*arrays)
        return out, vjp_fn(np.ones_like(out))

    # -- files -------------------------------------------------------------------------------
    def save(self, path) -> None:
        """Write the program to one `.npz` file (no pickled objects); read it with `tp.load_program`."""
        arrays = {}
        for k in range(len(self.opcode)):
            code = self._op_list[k]
            if code >= 1000:
                raise ValueError(
                    f"save: entry {k} is {op_of(code).name!r}, a custom primitive or checkpoint, whose rules are "
                    "Python code and cannot be saved"
                )
        params = [_encode(p, arrays, self._op_name(k)) for k, p in enumerate(self.params)]
        consts = [_encode(c, arrays, "constant") for c in self.consts]
        guards = [[int(s), _encode(v, arrays, "guard")] for s, v in self.guards]
        meta = {
            "format": FORMAT,
            "name": self.name,
            "single": self.single,
            "n_inputs": self.n_inputs,
            "shapes": [list(s) for s in self.shapes],
            "dtypes": [d.str for d in self.dtypes],
            "params": params,
            "consts": consts,
            "guards": guards,
        }
        np.savez(
            path,
            meta=np.array(json.dumps(meta)),
            opcode=self.opcode,
            ins=self.ins,
            nin=self.nin,
            output=self.output,
            outputs=self.outputs,
            **arrays,
        )


def load_program(path) -> Program:
    """Read a program written by `Program.save` (``allow_pickle=False``); runs nothing of it.

    A file that is not a saved program, is truncated, or has another format version is a
    `ValueError`.
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            files = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"load_program: {path} is not a saved tape program ({exc})") from None
    try:
        meta = json.loads(str(files["meta"]))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else None!r}, expected {FORMAT!r}")
        opcode = files["opcode"].astype(np.int32)
        ins, nin, output = (
            files["ins"].astype(np.int32),
            files["nin"].astype(np.int32),
            files["output"].astype(np.int32),
        )
        outputs = files["outputs"].astype(np.int32)
        n = len(opcode)
        shapes = [tuple(int(x) for x in s) for s in meta["shapes"]]
        dtypes = [np.dtype(d) for d in meta["dtypes"]]
        n_in = int(meta["n_inputs"])
        consts = [_decode(c, files) for c in meta["consts"]]
        params = [_decode(p, files) for p in meta["params"]]
        guards = [(int(s), _decode(v, files)) for s, v in meta["guards"]]
        base = n_in + len(consts)
        if (
            ins.ndim != 2
            or ins.shape[0] != n
            or nin.shape != (n,)
            or output.shape != (n,)
            or len(params) != n
            or len(shapes) != base + n
            or len(dtypes) != base + n
            or (n and (ins.max(initial=-1) >= base + n or (output != np.arange(base, base + n)).any()))
            or (outputs.size and (outputs.min() < 0 or outputs.max() >= base + n))
        ):
            raise ValueError("the columns do not fit together")
        for k in range(n):
            code = int(opcode[k])
            op_of(code)  # KeyError for an opcode this version does not know
            row = ins[k, : nin[k]]
            if (row < 0).any() or (row >= output[k]).any():
                raise ValueError(f"entry {k} reads a slot that is not computed before it")
    except (KeyError, ValueError, TypeError, IndexError, json.JSONDecodeError) as exc:
        raise ValueError(f"load_program: {path} is not a saved tape program of this version ({exc})") from None
    lowered = Lowered(opcode, ins, nin, output, params, consts, shapes, dtypes, n_in, outputs, guards)
    return Program(lowered, name=meta.get("name", "program"), single=bool(meta.get("single", True)))


def _encode(v, arrays, what):
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, InputRef):
        return {"input": v.k}
    if isinstance(v, (np.ndarray, np.generic)):
        key = f"a{len(arrays)}"
        arrays[key] = np.asarray(v)
        return {"array": key, "scalar": isinstance(v, np.generic)}
    if isinstance(v, tuple):
        return {"tuple": [_encode(x, arrays, what) for x in v]}
    if isinstance(v, list):
        return {"list": [_encode(x, arrays, what) for x in v]}
    if isinstance(v, dict) and all(isinstance(k, str) for k in v):
        return {"dict": {k: _encode(x, arrays, what) for k, x in v.items()}}
    if isinstance(v, slice):
        return {"slice": [_encode(x, arrays, what) for x in (v.start, v.stop, v.step)]}
    if v is Ellipsis:
        return {"ellipsis": True}
    if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
        return {"dtype": np.dtype(v).str}
    raise ValueError(
        f"save: {what} holds a {type(v).__name__}, which a saved program cannot hold (numbers, strings, tuples, arrays)"
    )


def _decode(v, files):
    if not isinstance(v, dict):
        return v
    if "input" in v:
        return InputRef(int(v["input"]))
    if "array" in v:
        a = files[v["array"]]
        return a[()] if v.get("scalar") else a
    if "tuple" in v:
        return tuple(_decode(x, files) for x in v["tuple"])
    if "list" in v:
        return [_decode(x, files) for x in v["list"]]
    if "dict" in v:
        return {k: _decode(x, files) for k, x in v["dict"].items()}
    if "slice" in v:
        return slice(*[_decode(x, files) for x in v["slice"]])
    if "ellipsis" in v:
        return Ellipsis
    if "dtype" in v:
        return np.dtype(v["dtype"])
    raise ValueError(f"unknown parameter {v!r}")


_MATMUL_CODES = {70, 71, 72}


def _flops(code, in_shapes, out_shape) -> int:
    """An estimate: one per output element for elementwise ops, per input element for reductions,
    2·m·n·k for products."""
    size = math.prod(out_shape)
    if code in _MATMUL_CODES and in_shapes:
        k = in_shapes[0][-1] if in_shapes[0] else 1
        return 2 * size * int(k)
    if 50 <= code < 70 and in_shapes:
        return math.prod(in_shapes[0])
    if 90 <= code < 110 or code in (PLAIN_CODE, DRAW_CODE):
        return 0
    return size


def compile_tape(tape, store, first, end, inputs, outputs) -> Program:
    """`Tape.compile`: the rows of a closed (or open) block, from `inputs` to `outputs`."""

    single = not isinstance(outputs, (list, tuple))
    outs = [outputs] if single else list(outputs)
    ins = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    for t in outs + ins:
        if not isinstance(t, Tensor):
            raise TypeError(f"Tape.compile: inputs and outputs must be Tensors, got {type(t).__name__}")
    for t in outs:
        if not t.requires_grad:
            raise ValueError(f"Tape.compile: an output (shape {t.shape}) was not recorded (it has no history)")
    rows, leaves = read_rows(store, first, end)
    slot = {}
    for s, leaf in leaves.items():
        slot[id(leaf)] = s

    def slot_of(t):
        if not t.requires_grad:
            return None
        return slot.get(id(t)) if t.is_leaf else t._slot

    input_slots = [slot_of(t) for t in ins]
    if None in input_slots:
        k = input_slots.index(None)
        raise ValueError(f"Tape.compile: input {k} (shape {ins[k].shape}) does not take part in the recorded block")
    # a leaf the block read that is not among the inputs: its current value is a constant
    wanted = set(input_slots)
    fixed = []
    for r in rows:
        if any(s in leaves and s not in wanted for s in r.ins):
            consts = tuple(leaves[s].array if s in leaves and s not in wanted else c for s, c in zip(r.ins, r.consts))
            r = r._replace(ins=tuple(-1 if s in leaves and s not in wanted else s for s in r.ins), consts=consts)
        fixed.append(r)
    metas = [(t.shape, t.dtype) for t in ins]
    lowered = lower(fixed, input_slots, metas, [slot_of(t) for t in outs], input_arrays=[t.array for t in ins])
    return Program(lowered, name="tape", single=single)
