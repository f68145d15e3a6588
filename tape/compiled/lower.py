"""Lowering: the rows of a recorded block -> a `Program`'s flat integer columns, and liveness.

`read_rows` is the one function that reads the recording tape (its row layout, leaves and
constants); everything else here works on the plain tuples it returns, so a change of the tape's
layout is a change of that one function.

Slots of a program are numbered densely: the inputs first (0 .. n_in-1), then the constant pool,
then one slot per entry in recording order. An entry reads only slots numbered below its own, so
the forward pass walks the columns up and the reverse pass walks them down, as ADOL-C's sweeps do.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np

from ..checkpointing.segment import SegmentStore
from ..composite import PLAIN
from ..ops.registry import OPS, OpDef
from ..tape import CONSTS, INS, LEAF, META, OP, PARAMS, SAVED, VALUE
from ..tensor import Tensor

# Opcodes of the two kinds of entry a compiled function's recording adds beside the op table's:
# a value computed without history (a comparison, argmax, the softmax shift) and a random draw.
# Below 1000, so a program holding them can be saved; no gradient flows through either.
PLAIN_CODE = 900
DRAW_CODE = 901


def _plain_forward(*arrays, fn, **kw):
    return np.asarray(PLAIN[fn](*arrays, **kw))


def _no_vjp(g, out, *inputs, **params):
    return (None,) * len(inputs)


PLAIN_OP = OpDef(PLAIN_CODE, "plain", _plain_forward, save="*", vjp_all=_no_vjp)
DRAW_OP = OpDef(DRAW_CODE, "draw", None, save="", vjp_all=_no_vjp, nin=0)
LOCAL_OPS = {PLAIN_CODE: PLAIN_OP, DRAW_CODE: DRAW_OP}


def op_of(code: int) -> OpDef:
    """The row of opcode `code` (the op table's, or one of the two above)."""
    return LOCAL_OPS.get(code) or OPS[code]


class CompileStore(SegmentStore):
    """The private store a compiled function is recorded into.

    As a checkpointed segment's store, it stands a proxy leaf in for every tracked tensor from
    outside (the weights a loss closes over), which become inputs of the program. It also keeps
    what the ordinary tape drops and a program needs: the constant inputs of every row, the
    output's shape and dtype, the guards, and the random draws.
    """

    __slots__ = ("consts", "outs", "guards", "keep", "draws")

    def __init__(self):
        super().__init__()
        self.consts: dict = {}  # slot -> constant inputs of its row (None where the input is tracked)
        self.outs: dict = {}  # slot -> (shape, dtype) of its output
        self.guards: list = []  # (slot, value seen)
        self.keep: list = []  # tensors kept alive so their rows survive: guards' values, draws
        self.draws: list = []  # slots of random draws (kept, even if nothing reads them)

    # Every recorded op reaches one of these three (the public functions of one- and two-input rows
    # call append1/append2 directly; append hands those arities to them).
    def append(self, op, args, arrays, out, params, src=None):
        t = SegmentStore.append(self, op, args, arrays, out, params, src)
        if len(args) not in (1, 2):  # (those went through append1/append2, which noted them)
            self._note(t, args, arrays, out)
        return t

    def append1(self, op, a, x, out, params=None, src=None):
        t = SegmentStore.append1(self, op, a, x, out, params, src)
        self._note(t, (a,), (x,), out)
        return t

    def append2(self, op, a, b, x, y, out, params=None, src=None):
        t = SegmentStore.append2(self, op, a, b, x, y, out, params, src)
        self._note(t, (a, b), (x, y), out)
        return t

    def _note(self, t, args, arrays, out):
        """Keep the constant inputs and the output's (shape, dtype) of the entry just appended."""
        for a in args:
            if not (isinstance(a, Tensor) and a.requires_grad):  # a constant input: keep its value
                self.consts[t._slot] = tuple(
                    None if isinstance(a, Tensor) and a.requires_grad else x for a, x in zip(args, arrays)
                )
                break
        self.outs[t._slot] = (out.shape, out.dtype) if type(out) is np.ndarray else (np.shape(out), np.result_type(out))

    def slot_of(self, t: Tensor) -> int:
        """The slot of a tracked tensor on this store (a proxy stands in for one from outside)."""
        t = self.local(t)
        return t._slot if not t.is_leaf else self.leaf_slot(t)


class Row(NamedTuple):
    """One recorded operation, as plain values."""

    slot: int
    code: int
    name: str
    ins: tuple  # slots; -1 for a constant
    params: dict
    in_meta: tuple  # (shape, dtype) per input
    out_meta: tuple  # (shape, dtype)
    consts: tuple  # per input: the constant's value where ins[i] == -1


def read_rows(store, first: int = 0, end: int | None = None):
    """(rows, leaves) of `store` between slots `first` and `end`: the only reader of the tape.

    `leaves` maps a leaf row's slot to its Tensor. On an ordinary store (`Tape.compile`) the
    constants are recovered from what the row kept: its saved inputs, or a number in its metadata.
    """
    rows, leaves = [], dict(store.leaves)
    compiled = isinstance(store, CompileStore)
    for slot, row in list(store.entries.items()):
        if row[OP] is LEAF:
            continue
        if slot < first or (end is not None and slot >= end):
            continue
        d, ins = row[OP], row[INS]
        if compiled:
            consts = store.consts.get(slot, (None,) * len(ins))
            out_meta = store.outs[slot]
        else:
            consts = tuple(_recover_const(row, i) if s < 0 else None for i, s in enumerate(ins))
            v = row[VALUE]
            out_meta = v if isinstance(v, tuple) else (np.shape(v), np.result_type(v))
        in_meta = tuple(
            m if s >= 0 else (np.shape(c), np.result_type(c))
            for s, m, c in zip(ins, row[META] or (None,) * len(ins), consts)
        )
        rows.append(Row(slot, d.code, d.name, tuple(ins), dict(row[PARAMS] or {}), in_meta, out_meta, consts))
    return rows, leaves


def _recover_const(row, i):
    shown = row[CONSTS]  # the numbers among the constants, kept for the trace
    if shown is not None and shown[i] is not None:
        return shown[i]
    saved = row[SAVED]
    if saved is not None and saved[1 + i] is not None:
        return saved[1 + i]
    raise ValueError(
        f"Tape.compile: entry {row[OP].name} reads a constant array that the tape did not keep; "
        "record the computation with tp.compile(fn) instead, which keeps its constants"
    )


# ------------------------------------------------------------------------------------------------
# Lowering to columns.


class Lowered(NamedTuple):
    opcode: np.ndarray  # int32[n]
    ins: np.ndarray  # int32[n, k], -1 past an entry's inputs
    nin: np.ndarray  # int32[n]
    output: np.ndarray  # int32[n]
    params: list  # one dict per entry
    consts: list  # the constant pool: arrays and Python numbers
    shapes: list  # per slot
    dtypes: list  # per slot
    n_inputs: int
    outputs: np.ndarray  # int32: slots of the results
    guards: list  # (slot, value)


def lower(rows, input_slots, input_metas, output_slots, guards=(), roots=(), input_arrays=(), cse=True) -> Lowered:
    """Columns for the `rows` that `output_slots` (and the guards, and `roots`) depend on.

    With `cse` (value numbering), an entry that repeats an earlier one is left out and its readers
    read the earlier one's slot; the reverse pass then sums that slot's adjoint from all of them, as
    it does for any value read twice. Entries repeat when they have the same opcode, read the same
    slots (after the merges before them) or equal constants, and have equal params (so their
    outputs have the same shape and dtype too): walking in recording order, a whole repeated
    expression (W1's 1,000 copies of one term) folds into its first copy. Merging never leaves an
    entry dead: a merged reader's first copy reads the same slots.

    `input_slots` are the recording's slots of the program's inputs; an entry reading a slot that
    is neither an input nor computed by an earlier row is an error. A param that *is* an input's
    array (an integer label array used as an index) is replayed with that input's new value.
    """
    input_ids = {id(a): k for k, a in enumerate(input_arrays) if isinstance(a, np.ndarray)}
    need = set(output_slots) | {s for s, _ in guards} | set(roots)
    keep = []
    for r in reversed(rows):  # dead entries are left out
        if r.slot in need:
            keep.append(r)
            for s in r.ins:
                if s >= 0:
                    need.add(s)
    keep.reverse()
    number = {s: k for k, s in enumerate(input_slots)}
    n_in = len(input_slots)
    consts, const_ids = [], {}
    shapes = [tuple(m[0]) for m in input_metas]
    dtypes = [np.dtype(m[1]) for m in input_metas]

    def const_slot(v):
        key = _const_key(v)
        if key not in const_ids:
            const_ids[key] = len(consts)
            consts.append(v)
        return ("c", const_ids[key])

    entries = []
    first = {}  # CSE: (opcode, input numbers, params) -> the entry that computes it
    for r in keep:
        d = _lowerable(r)
        ins = []
        for i, s in enumerate(r.ins):
            if s < 0:
                ins.append(const_slot(r.consts[i]))  # equal constants share one pool entry
                continue
            if s not in number:
                if any(x.slot == s for x in rows):
                    raise AssertionError("rows out of order")
                raise ValueError(
                    f"compile: entry {d.name} reads a value (shape {r.in_meta[i][0]}) that is neither an input "
                    "nor computed in the recorded block; pass it in inputs="
                )
            ins.append(number[s])
        if cse and r.code < _CSE_BELOW:
            pk = _param_key(r.params, input_ids) if r.params else ()
            if pk is not None:  # a param we cannot compare is never merged
                key = (r.code, tuple(ins), pk)
                prev = first.get(key)
                if prev is not None:  # a repeat: its readers read the first one
                    number[r.slot] = prev
                    continue
                first[key] = ("e", len(entries))
        entries.append((r, d, ins))
        number[r.slot] = ("e", len(entries) - 1)
    n_c = len(consts)
    base = n_in + n_c

    def final(x):
        if isinstance(x, tuple):
            return (n_in + x[1]) if x[0] == "c" else base + x[1]
        return x

    n = len(entries)
    width = max((len(ins) for _, _, ins in entries), default=1) or 1
    # the columns built as lists and converted once (NumPy item assignment per entry is slow)
    pad = [-1] * width
    rows_ins = []
    for _, _, ins in entries:
        row = [final(x) for x in ins]
        rows_ins.append(row + pad[len(row) :])
    opcode = np.array([r.code for r, _, _ in entries], np.int32).reshape(n)
    ins_col = np.array(rows_ins, np.int32).reshape(n, width)
    nin = np.array([len(ins) for _, _, ins in entries], np.int32).reshape(n)
    output = np.arange(base, base + n, dtype=np.int32)
    params = [_params_of(r.params, input_ids) for r, _, _ in entries]
    for c in consts:
        shapes.append(np.shape(c))
        dtypes.append(np.result_type(c))
    for r, _, _ in entries:
        shapes.append(tuple(r.out_meta[0]))
        dtypes.append(np.dtype(r.out_meta[1]))
    outputs = np.array([final(number[s]) for s in output_slots], np.int32)
    gs = [(final(number[s]), v) for s, v in guards]
    return Lowered(opcode, ins_col, nin, output, params, consts, shapes, dtypes, n_in, outputs, gs)


#: Entries CSE may merge: the op table's built-in rows, which are pure functions of their inputs
#: and params. Not PLAIN (a NumPy function run on values, whatever it does), DRAW (a random draw:
#: two draws are two numbers), nor custom primitives and compiled calls (codes from 999: their
#: purity is the user's).
_CSE_BELOW = PLAIN_CODE

# A constant or param array of at most this many elements is compared by value; a larger one by
# identity (hashing its bytes would cost more than the repeats it could find).
_CSE_VALUE_SIZE = 64


def _const_key(v):
    """What identifies a constant: its value for numbers and small arrays (so `y * 0.9` written
    twice reads one pool entry), its identity for anything else. The type is part of the key:
    2.0, np.float64(2.0) and np.array(2.0) promote differently."""
    if type(v) in (float, int, bool, complex):
        return (type(v), repr(v))  # repr: -0.0 and 0.0 differ, as do their products
    if isinstance(v, (np.ndarray, np.generic)) and v.size <= _CSE_VALUE_SIZE and v.dtype.kind in "biufc":
        return (type(v), v.dtype.str, v.shape, v.tobytes())
    return ("id", id(v))


def _param_key(v, input_ids):
    """A hashable stand-in for a param value, equal exactly when the values are; None if unknown."""
    t = type(v)
    if v is None or t in (bool, int, str):
        return (t, v)
    if t is float:
        return (t, repr(v))
    if t is dict:
        items = []
        for k in sorted(v):
            x = _param_key(v[k], input_ids)
            if x is None:
                return None
            items.append((k, x))
        return (t, tuple(items))
    if t in (tuple, list):
        out = []
        for x in v:
            x = _param_key(x, input_ids)
            if x is None:
                return None
            out.append(x)
        return (t, tuple(out))
    if t is np.ndarray:
        k = input_ids.get(id(v))
        if k is not None:  # an input's array: the replay substitutes that input's new value
            return ("input", k)
        if v.size <= _CSE_VALUE_SIZE and v.dtype.kind in "biufc":
            return (t, v.dtype.str, v.shape, v.tobytes())
        return ("id", id(v))
    if isinstance(v, np.generic):
        return (t, v.tobytes())
    if t is slice:
        parts = tuple(_param_key(x, input_ids) for x in (v.start, v.stop, v.step))
        return None if None in parts else (t, parts)
    if v is Ellipsis:
        return (t,)
    if t is np.dtype:
        return (t, v.str)
    if isinstance(v, type) and issubclass(v, np.generic):
        return (np.dtype, np.dtype(v).str)
    return None


def _lowerable(r) -> OpDef:
    """The row of `r`'s op, or a ValueError naming what cannot become a program entry."""
    if "seg" in r.params or "run" in r.params:
        raise ValueError(
            f"compile: the recorded code calls tp.checkpoint or tp.checkpoint_loop ({r.name}), whose entries "
            "re-run Python code and cannot be compiled; compile the function inside it instead"
        )
    if "call" in r.params:
        raise ValueError(f"compile: {r.name} is a compiled call recorded on a tape; compile the caller instead")
    try:
        return op_of(r.code)
    except KeyError:
        raise ValueError(f"compile: {r.name} (opcode {r.code}) is not in the op table") from None


class InputRef(NamedTuple):
    """A param that is the value of program input `k` (an index array passed in as an argument)."""

    k: int


def _params_of(params: dict, input_ids: dict) -> dict:
    if not input_ids or not params:
        return params

    def sub(v):
        if isinstance(v, np.ndarray) and id(v) in input_ids:
            return InputRef(input_ids[id(v)])
        if isinstance(v, tuple):
            return tuple(sub(x) for x in v)
        return v

    return {k: sub(v) for k, v in params.items()}


# ------------------------------------------------------------------------------------------------
# Liveness and buffers.


@functools.cache
def saves(code: int, nin: int) -> tuple:
    """(output saved, one flag per input saved): what this op's reverse rules read."""
    d = op_of(code)
    probe_out = object()
    probe_in = [object() for _ in range(nin)]
    saved = d.saved(probe_out, probe_in, tuple(range(nin)))  # every input tracked: the most it keeps
    if saved is None:
        return False, (False,) * nin
    return saved[0] is probe_out, tuple(v is p for v, p in zip(saved[1:], probe_in))


def assign_buffers(order, nbytes, pinned=()):
    """Give each slot written in `order` a buffer, reusing one after its last reader (a stack).

    `order` lists (slot written, slots read) per step; a slot's buffer is free after the last step
    that reads it, unless it is `pinned` (kept to the end). Buffers are reused only for values of
    the same byte size (the kernels write into them). Returns (slot -> buffer, number of buffers,
    peak live bytes).
    """
    last = {}
    for k, (_, rd) in enumerate(order):
        for s in rd:
            last[s] = k
    free: dict = {}
    buf = {}
    count = 0
    live = peak = 0
    pinned = set(pinned)
    for k, (w, rd) in enumerate(order):
        size = nbytes[w]
        pool = free.get(size)
        if pool:
            b = pool.pop()
        else:
            b = count
            count += 1
        buf[w] = b
        live += size
        if live > peak:
            peak = live
        if w not in last and w not in pinned:  # written, never read: free at once
            free.setdefault(size, []).append(b)
            live -= size
        for s in rd:
            if last.get(s) == k and s in buf and s not in pinned:
                last[s] = -1  # freed: a second read in the same step (mul(x, x)) must not free it again
                free.setdefault(nbytes[s], []).append(buf[s])
                live -= nbytes[s]
    return buf, count, peak
