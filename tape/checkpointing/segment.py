"""A checkpointed segment: one tape entry whose rule re-records and sweeps the segment.

The idea is HIPS autograd's eight-line `checkpoint`: run the function once without keeping its
intermediates, and let the derivative rule of the one entry that stands for it run the function
again, this time recording, and sweep that private recording. Two things make it more than eight
lines here:

* **Closed-over tensors.** The entry's inputs must include every tracked tensor the function
  reads, not only its arguments: a recurrent step reads its weights from a closure, and their
  gradients must reach them. They are found by recording the function once into a *private store*
  (`SegmentStore`), which stands a fresh leaf, a *proxy*, in for every tracked tensor that comes
  from outside. The tensors that needed a proxy are exactly the segment's inputs, leaves and
  intermediate results alike, and sweeping the private store stops at the proxies: the outer
  history is neither walked nor consumed by the inner sweep, however long it is.
* **One output per entry.** A row of the tape has one output array, and a function may return a
  tuple, list or dict of tensors. The entry returns them packed into one flat array; recorded
  slicing and reshaping (differentiable, as any op) unpack it again.

Random numbers drawn inside the function are drawn again, the same, when it re-runs: the
generator's state is saved before the first run, set for the re-run, and set back afterwards so
that the backward pass leaves the user's random stream where it was.
"""

from __future__ import annotations

import numpy as np

from .. import devices
from ..creation import get_rng_state, set_rng_state
from ..ops import astype, reshape
from ..ops.registry import apply, defop, new_opcode
from ..sweep import LowRank, _seed, grads, sweep
from ..tape import Store, state
from ..tensor import RESULT, TRACKED_LEAF, Tensor, _new_tensor
from ..tree import Tree, flatten  # noqa: F401  (re-exported for loop.py)


def is_float_tensor(x) -> bool:
    """Tensors that can carry a gradient (float dtypes); other leaves are carried as values."""
    return isinstance(x, Tensor) and getattr(x.array, "dtype", None) is not None and x.array.dtype.kind == "f"


# ------------------------------------------------------------------------------------------------
# Packing several output arrays into the one output of a row, and unpacking them again.


class Layout:
    """Where each packed array sits in the flat output of a row: (shape, dtype, offset, size)."""

    __slots__ = ("parts", "dtype")

    def __init__(self, arrays):
        offset = 0
        self.parts = []
        for a in arrays:
            self.parts.append((a.shape, a.dtype, offset, a.size))
            offset += a.size
        self.dtype = np.result_type(*[a.dtype for a in arrays])

    @property
    def single(self) -> bool:
        return len(self.parts) == 1

    def pack(self, arrays):
        """One array: the array itself when there is one (no copy), else the ravelled concatenation."""
        if self.single:
            return arrays[0]
        xp = np if isinstance(arrays[0], np.ndarray) else devices.cupy()
        return xp.concatenate([xp.ravel(a).astype(self.dtype, copy=False) for a in arrays])

    def unpack_arrays(self, flat):
        """The cotangent of the packed output, split into one cotangent per packed array."""
        if self.single:
            return [flat]
        return [flat[o : o + n].reshape(shape).astype(dtype, copy=False) for shape, dtype, o, n in self.parts]

    def unpack_tensors(self, packed: Tensor):
        """The packed output as one Tensor per array, by recorded (differentiable) slicing."""
        if self.single:
            return [packed]
        out = []
        for shape, dtype, o, n in self.parts:
            part = reshape(packed[o : o + n], shape)
            out.append(part if dtype == self.dtype else astype(part, dtype))
        return out


# ------------------------------------------------------------------------------------------------
# The private store a segment is recorded into.


class SegmentStore(Store):
    """A store for recording one segment, in which tracked tensors from outside become proxies.

    The first time a segment is recorded (`externals=None`), every tracked tensor from outside
    that an op reads is noted in `externals`, in order of first use, and a fresh leaf (its proxy,
    sharing its array) takes its place in the row. A later recording of the same segment passes
    the `externals` found the first time: the proxies then line up with the inputs of the entry
    that stands for the segment, and a tensor from outside that was not among them is an error
    (its gradient would be lost without a word).
    """

    __slots__ = ("externals", "proxies", "_index", "_own", "frozen")

    def __init__(self, externals=None):
        super().__init__()
        self.frozen = externals is not None
        self.externals = list(externals or ())
        self._index = {id(t): k for k, t in enumerate(self.externals)}
        self.proxies: list = [None] * len(self.externals)
        self._own: set = set()

    def leaf(self, array) -> Tensor:
        """A fresh leaf that requires grad and belongs to this store (a segment's own input)."""
        t = _new_tensor(array)
        t._role = TRACKED_LEAF
        self._own.add(id(t))
        return t

    def local(self, t):
        """`t` as this store sees it: itself if it is local or untracked, else its proxy."""
        if not isinstance(t, Tensor) or not t._role or (t._role is RESULT and t._store is self) or id(t) in self._own:
            return t
        k = self._index.get(id(t))
        if k is None:
            if self.frozen:
                raise RuntimeError(
                    f"checkpoint: the checkpointed function read a tensor (shape {t.shape}, {t.dtype}, "
                    f"{'with history' if t._role is RESULT else 'requires grad'}) that it did not use when it "
                    "first ran, "
                    "so its gradient would have nowhere to go. The function must read the same tracked tensors "
                    "every time it runs (for checkpoint_loop: at every step, as step 0 does); create tensors "
                    "that require grad outside it"
                )
            k = len(self.externals)
            self.externals.append(t)
            self._index[id(t)] = k
            self.proxies.append(None)
        proxy = self.proxies[k]
        if proxy is None:
            proxy = self.proxies[k] = self.leaf(t.array)
        return proxy

    def _tracked_slot(self, a) -> int:
        """The slot of a tracked input that is not a result of this store: a tensor from outside is
        read through its proxy (the one hook every append goes through for such an input)."""
        return self.leaf_slot(a if id(a) in self._own else self.local(a))


class recording_into:
    """Record on `store` (recording on) inside the block, whatever the surrounding mode was.

    (A class, not a generator context: a checkpointed loop enters one per reversed step.)
    """

    __slots__ = ("store", "_saved")

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self):
        st = state()
        self._saved = st.store, st.recording
        st.store, st.recording = self.store, True
        return self.store

    def __exit__(self, *exc):
        st = state()
        st.store, st.recording = self._saved
        return False


def pull_back(outputs, cotangents, sources):
    """Cotangents of `sources` (leaves of one SegmentStore, or None) from those of `outputs`.

    An output that is itself a source (the function passed an input through unchanged) hands its
    cotangent over directly; untracked outputs and None cotangents (zero) take no part. The result
    has one cotangent or None (zero) per source: an array, a float64 scalar for a 0-d float64
    source, or a `sweep.LowRank` (outer products: a weight's cotangent through a matrix-vector
    product, which a checkpointed loop goes on adding to, `LowRank.extend`, and turns into an array
    once at the end, `LowRank.dense`).

    The result may share arrays with `cotangents` and with itself: callers never write into it.
    This sweeps the segment's store directly, as `tp.grads` would (without that function's checks
    of its arguments and its copies), since a checkpointed loop runs this once per step.
    """
    result: list = [None] * len(sources)
    where = {id(s): k for k, s in enumerate(sources) if s is not None}
    seeds: dict = {}
    store = None
    for t, g in zip(outputs, cotangents):
        if g is None or not isinstance(t, Tensor) or not t._role:
            continue
        k = where.get(id(t))
        if k is not None:
            result[k] = g if result[k] is None else dense(result[k]) + dense(g)
        elif t._role is RESULT:
            store = t._store
            g = _seed(t, g, "checkpoint")
            slot = t._slot
            seeds[slot] = seeds[slot] + g if slot in seeds else g
    if not seeds:
        return result
    slots = [-1 if s is None else store.leaf_slots.get(id(s), -1) for s in sources]
    wanted = {s for s in slots if s >= 0}
    if wanted:
        _, captured = sweep(store, seeds, False, wanted, low_rank=True)
        for k, slot in enumerate(slots):
            g = captured.get(slot, _NONE)[0]
            if g is not None:
                result[k] = g if result[k] is None else dense(result[k]) + dense(g)
    return result


_NONE = (None, False)


def dense(ct):
    """A cotangent of `pull_back` as an array (a `LowRank`'s outer products added up)."""
    return ct.dense()[0] if type(ct) is LowRank else ct


def pull_back_differentiably(outputs, cotangents, sources):
    """`pull_back` for ``create_graph=True``: cotangents (Tensors with history) of `sources`.

    Used when the outer sweep is itself recorded: the segment was re-run on the outer tape, so
    the derivative of this derivative can be taken. None where a source does not take part.
    """
    outs = [t for t in outputs if isinstance(t, Tensor) and t._role]
    seeds = [g for t, g in zip(outputs, cotangents) if isinstance(t, Tensor) and t._role]
    if not outs or not sources:
        return [None] * len(sources)
    got = grads(outs, list(sources), grad_outputs=seeds, create_graph=True, allow_unused=True)
    return list(got)


# ------------------------------------------------------------------------------------------------
# tp.checkpoint


class _Segment:
    """What the entry of one `tp.checkpoint` call needs to run its function again."""

    __slots__ = ("fn", "args", "kwargs", "rng", "externals", "tree", "positions", "layout", "packed")

    def reverse(self, g):
        if isinstance(g, Tensor):  # create_graph=True: the backward pass is itself recorded
            return self.reverse_differentiably(g)
        cotangents = self.layout.unpack_arrays(g)
        user_rng = get_rng_state()
        set_rng_state(self.rng)  # the same random numbers as the first run
        try:
            with recording_into(SegmentStore(self.externals)) as store:
                out = self.fn(*self.args, **self.kwargs)
                leaves, tree = flatten(out)
                if tree != self.tree:
                    raise RuntimeError(
                        f"checkpoint: the function returned {tree} when re-run, but {self.tree} the first time"
                    )
                outputs = [store.local(leaves[i]) for i in self.positions]
            return tuple(dense(ct) for ct in pull_back(outputs, cotangents, store.proxies))
        finally:
            set_rng_state(user_rng)

    def reverse_differentiably(self, g):
        """Re-run fn recorded on the outer tape, so that this derivative has a derivative too.

        The segment's history then lives as long as the graph of the derivative does: higher
        derivatives work, without the memory savings.
        """
        user_rng = get_rng_state()
        set_rng_state(self.rng)
        try:
            leaves, _ = flatten(self.fn(*self.args, **self.kwargs))
        finally:
            set_rng_state(user_rng)
        outputs = [leaves[i] for i in self.positions]
        return tuple(pull_back_differentiably(outputs, self.layout.unpack_tensors(g), self.externals))


def _segment_forward(*arrays, seg):
    packed, seg.packed = seg.packed, None
    return packed


def _segment_vjp(g, *saved, seg):
    return seg.reverse(g)


# save="*": the entry keeps references (not copies) to its inputs' arrays, so that an in-place
# change of one before the backward pass is refused (API §8): the re-run would read the new values.
SEGMENT = defop(new_opcode(), "checkpoint", _segment_forward, save="*", vjp_all=_segment_vjp)


def checkpoint(fn, *args, **kwargs):
    """``fn(*args, **kwargs)``, recorded as one entry that keeps none of fn's intermediates.

    The backward pass runs `fn` again, recording, to get its derivative: memory for time. The
    gradient reaches `fn`'s arguments and every tensor it closes over; random numbers drawn with
    `tp.rand`/`tp.randn` inside `fn` are the same when it is re-run. `fn` returns a Tensor or a
    (nested) tuple, list or dict of them. Outside a record block, and inside forward mode (`tp.jvp`,
    `tp.hvp`: the tangents must flow through fn's ops), it is just ``fn(*args, **kwargs)``.

    >>> import numpy as np, tape as tp
    >>> W = tp.tensor(np.eye(2) * 0.5, requires_grad=True)
    >>> x = tp.tensor([1.0, 2.0], requires_grad=True)
    >>> def block(x):
    ...     for _ in range(10):                 # ten layers' intermediates, none kept
    ...         x = tp.tanh(W @ x)
    ...     return x
    >>> with tp.record():
    ...     loss = tp.sum(tp.checkpoint(block, x))
    >>> loss.backward()
    >>> x.grad.shape, W.grad.shape
    ((2,), (2, 2))

    While `fn` runs the first time its own recording is alive (that is how the tensors it closes
    over are found); it is released when `fn` returns.
    """
    st = state()
    if not st.recording or st.dual_depth:
        return fn(*args, **kwargs)
    rng = get_rng_state()
    with recording_into(SegmentStore()) as store:
        out = fn(*args, **kwargs)
    leaves, tree = flatten(out)
    positions = [i for i, t in enumerate(leaves) if is_float_tensor(t) and t._role is RESULT and t._store is store]
    if not positions:  # nothing fn computed depends on a tracked tensor
        return out
    seg = _Segment()
    seg.fn, seg.args, seg.kwargs, seg.rng = fn, args, kwargs, rng
    seg.externals, seg.tree, seg.positions = store.externals, tree, positions
    arrays = [leaves[i].array for i in positions]
    seg.layout = Layout(arrays)
    seg.packed = seg.layout.pack(arrays)
    # The results fn computed are replaced by the entry's (unpacked) output, so that the private
    # recording is released now; tensors fn passed through from outside are returned as they are.
    leaves = [t.detach() if isinstance(t, Tensor) and t._role is RESULT and t._store is store else t for t in leaves]
    parts = seg.layout.unpack_tensors(apply(SEGMENT, tuple(seg.externals), {"seg": seg}))
    for i, part in zip(positions, parts):
        leaves[i] = part
    return tree.unflatten(leaves)
