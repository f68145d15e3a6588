"""Data-parallel gradients over MPI (API §10), the way Horovod and `torch.distributed` do it.

Each process (rank) computes the gradient of its shard of the batch; `allreduce_grads` sums or
averages those gradients across ranks, so that every rank holds the gradient of the full batch and
takes the same optimiser step. The transport is MPI through mpi4py (the `mpi` extra:
``pip install "wengert-tape[mpi]"``); run a script on N processes with ``mpiexec -n N python
script.py``. Run without `mpiexec`, it is a world of one process (mpi4py initialises MPI as a
singleton), so the same script runs unchanged on a laptop.

Arrays go through mpi4py's buffer interface (`Allreduce`, `Bcast`), never as pickled objects.
Gradients are packed into one contiguous buffer per dtype, so a model costs one collective per dtype
however many tensors it has; `broadcast` sends every tensor in one buffer of bytes. Before that, one
8-byte `Allgather` checks that every rank passed the same list (count, order, dtypes, shapes, op,
root): a mismatch raises the same `ValueError` on every rank instead of hanging or mixing up
values. `check=False` skips it (then a mismatch fails inside MPI, or hangs).

CuPy arrays are handed to MPI as device buffers when the MPI library says it is CUDA-aware (see
`cuda_aware`), and copied through host memory otherwise. That path has not been run on a GPU yet.

>>> import tape as tp
>>> from tape import distributed as dist
>>> w = tp.tensor([1.0, 2.0], requires_grad=True)
>>> dist.broadcast([w])                        # every rank starts from rank 0's values
>>> with tp.record():
...     loss = tp.sum(w * w)
>>> loss.backward()
>>> dist.allreduce_grads([w], op="mean")       # the mean of the ranks' gradients, on every rank
>>> w.grad                                     # (one process here: its own gradient)
tensor([2., 4.])
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from . import devices
from .tape import state
from .tensor import Tensor, _new_tensor

try:
    from mpi4py import MPI
except (ImportError, RuntimeError) as _exc:  # RuntimeError: mpi4py found no MPI library to load
    raise ImportError(
        'tape.distributed needs mpi4py and an MPI library: pip install "wengert-tape[mpi]" '
        f"(or mpi4py alone, with your cluster's MPI); the import failed with: {_exc}"
    ) from _exc

__all__ = ["rank", "size", "broadcast", "allreduce", "allreduce_grads", "cuda_aware"]

_MPI_OPS = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN, "prod": MPI.PROD}
_GRAD_OPS = ("sum", "mean")
_ALIGN = 16  # bytes: where each tensor starts in broadcast's byte buffer, so its view stays aligned


def _world(comm):
    return MPI.COMM_WORLD if comm is None else comm


def rank(comm=None) -> int:
    """This process's index in the world (0 to size() - 1); 0 outside `mpiexec`.

    >>> from tape import distributed as dist
    >>> dist.rank()
    0
    """
    return _world(comm).Get_rank()


def size(comm=None) -> int:
    """The number of processes in the world; 1 outside `mpiexec`.

    >>> from tape import distributed as dist
    >>> dist.size()
    1
    """
    return _world(comm).Get_size()


def cuda_aware(comm=None) -> bool:
    """Whether CuPy arrays reach MPI as device buffers (True) or are copied through the host (False).

    True when the MPI library lists "cuda" in the MPI-4.1 info key ``mpi_memory_alloc_kinds``;
    ``TAPE_MPI_CUDA_AWARE=1`` (or ``0``) overrides, for libraries too old to say. Untested on a GPU.

    >>> from tape import distributed as dist
    >>> dist.cuda_aware() in (True, False)
    True
    """
    forced = os.environ.get("TAPE_MPI_CUDA_AWARE")
    if forced is not None:
        return forced.strip().lower() not in ("", "0", "false", "no")
    info = _world(comm).Get_info()
    try:
        kinds = info.Get("mpi_memory_alloc_kinds") or ""
    finally:
        info.Free()
    return "cuda" in kinds


# -- the three collectives ----------------------------------------------------------------------


def broadcast(tensors, root: int = 0, *, comm=None, check: bool = True) -> None:
    """Overwrite every tensor's values, in place, with those of rank `root` (one `Bcast` in all).

    Use it once on the parameters before training, so that every rank starts from the same point.
    `tensors`: a Tensor or a list, tuple or dict (its values) of Tensors, the same on every rank.

    >>> import tape as tp
    >>> from tape import distributed as dist
    >>> w = tp.tensor([0.5, -1.0], requires_grad=True)
    >>> dist.broadcast([w], root=0)
    >>> w
    tensor([ 0.5, -1. ], requires_grad=True)
    """
    comm = _world(comm)

    def prepare():
        items = _tensor_list(tensors, "broadcast")
        _check_root(root, comm, "broadcast")
        recording = state().recording
        for i, t in enumerate(items):
            if recording and t._role:
                raise RuntimeError(
                    f"broadcast: tensor {i} (shape {t.shape}, {t.dtype}) requires grad or has history; "
                    "changing it in place inside a record block would corrupt its gradient: "
                    "broadcast outside `with tp.record():`"
                )
            if not _writeable(t.array):
                raise ValueError(f"broadcast: tensor {i} (shape {t.shape}, {t.dtype}) is read-only")
        signature = [("broadcast", f"root={root}")] + [_describe(t.array) for t in items]
        return items, signature

    items, _ = _prepared(comm, "broadcast", check, prepare)
    if not items:
        return
    me = comm.Get_rank()
    # Bcast does no arithmetic, so every dtype travels in one buffer of bytes: one collective in all.
    for device, members in _group(items, lambda t: devices.device_of(t.array)).items():
        arrays = [items[i].array for i in members]
        offsets, total = _byte_offsets(arrays)
        xp = np if device == "cpu" else devices.cupy()
        buf = xp.empty(total, dtype=np.uint8)
        if me == root:
            for a, o in zip(arrays, offsets):
                _byte_view(buf, o, a)[...] = a
        _on_device(buf, lambda b: comm.Bcast(b, root=root), comm)
        if me != root:
            for i, a, o in zip(members, arrays, offsets):
                items[i][...] = _byte_view(buf, o, a)  # in place, refused inside a record block


def allreduce_grads(tensors, op: str = "mean", *, comm=None, check: bool = True) -> None:
    """Sum (``op="sum"``) or average (``op="mean"``) every tensor's `.grad` across ranks, in place.

    Call it after ``backward()`` on each rank's shard and before the optimiser step: every rank then
    holds the same gradient. With equal shards and a loss that is a mean over each shard, "mean" gives
    the full batch's gradient; with a loss already divided by the full batch size, "sum" does, for
    any split. Gradients travel in one packed buffer per dtype (float16 is summed in float32), kept
    for the next call: a gradient-sized array per dtype stays allocated. A `.grad` that is None on a
    rank counts as zeros, and afterwards that tensor has a `.grad`.
    Tensors that do not require grad (frozen parameters) are left alone.

    >>> import tape as tp
    >>> from tape import distributed as dist
    >>> w = tp.tensor([1.0, 2.0], requires_grad=True)
    >>> b = tp.tensor(0.0, requires_grad=True)        # no gradient reaches it on this rank
    >>> with tp.record():
    ...     loss = tp.sum(w ** 2)
    >>> loss.backward()
    >>> dist.allreduce_grads([w, b], op="sum")
    >>> w.grad, b.grad
    (tensor([2., 4.]), tensor(0.))
    """
    comm = _world(comm)

    def prepare():
        items = _tensor_list(tensors, "allreduce_grads")
        _check_op(op, _GRAD_OPS, "allreduce_grads")
        items = [t for t in items if t._role]
        for i, t in enumerate(items):
            g = t.grad
            if g is None:
                continue
            if not isinstance(g, Tensor):
                raise TypeError(f"allreduce_grads: tensor {i}'s .grad is a {type(g).__name__}, not a Tensor")
            if g._role:
                raise RuntimeError(
                    f"allreduce_grads: tensor {i}'s .grad (shape {g.shape}) has history (backward with "
                    "create_graph=True); the collective is not differentiable: reduce plain gradients"
                )
            if g.shape != t.shape or g.dtype != t.dtype or devices.device_of(g.array) != devices.device_of(t.array):
                raise ValueError(
                    f"allreduce_grads: tensor {i} is {t.dtype} {t.shape} on {t.device} but its .grad is "
                    f"{g.dtype} {g.shape} on {g.device}"
                )
        signature = [("allreduce_grads", f"op={op!r}")] + [_describe(t.array) for t in items]
        return items, signature

    items, _ = _prepared(comm, "allreduce_grads", check, prepare)
    n = comm.Get_size()
    key = lambda t: (devices.device_of(t.array), _wire_dtype(t.dtype))  # noqa: E731
    for (device, wire), members in _group(items, key).items():
        xp = np if device == "cpu" else devices.cupy()
        sizes = [items[i].size for i in members]
        buf = _packing_buffer(device, wire, sum(sizes))
        offset = 0
        for i, k in zip(members, sizes):
            t, part = items[i], buf[offset : offset + k].reshape(items[i].shape)
            if t.grad is None:
                part[...] = 0
            else:
                part[...] = t.grad.array
            offset += k
        _on_device(buf, lambda b: comm.Allreduce(MPI.IN_PLACE, b, op=MPI.SUM), comm)
        scale = n if op == "mean" and n > 1 else 1
        offset = 0
        for i, k in zip(members, sizes):
            t, part = items[i], buf[offset : offset + k].reshape(items[i].shape)
            if t.grad is not None and _writeable(t.grad.array):
                # In place (a reference to the old .grad sees the reduced one); the mean's division
                # rides along with the copy instead of taking a pass of its own.
                xp.divide(part, scale, out=t.grad.array, casting="same_kind")
            else:
                t.grad = _new_tensor(xp.divide(part, scale).astype(t.dtype, copy=False))
            offset += k


def allreduce(x, op: str = "sum", *, comm=None, check: bool = True):
    """`x` combined across ranks by `op` ("sum", "mean", "max", "min", "prod"); every rank gets it.

    For values such as a loss or an accuracy to print; not differentiable (the result has no
    history). Returns the caller's kind: a Tensor for a Tensor, an array for an array, a Python
    number for a Python number.

    >>> import tape as tp
    >>> from tape import distributed as dist
    >>> dist.allreduce(tp.tensor([1.0, 2.0]), op="sum")   # one process: itself
    tensor([1., 2.])
    >>> dist.allreduce(3, op="mean")
    3.0
    """
    comm = _world(comm)

    def prepare():
        _check_op(op, tuple(_MPI_OPS), "allreduce")
        if isinstance(x, Tensor):
            if state().recording and x._role:
                raise RuntimeError(
                    f"allreduce: the value (shape {x.shape}, {x.dtype}) requires grad or has history, and "
                    "the collective is not differentiable; reduce x.detach(), or reduce gradients with "
                    "allreduce_grads after backward()"
                )
            a = x.array
        else:
            a = x if devices.is_device_array(x) else np.asarray(x)
        if a.dtype.kind not in "biufc" or (a.dtype.kind == "c" and op in ("max", "min")):
            raise TypeError(f"allreduce: op {op!r} on dtype {a.dtype} is not supported (shape {a.shape})")
        return a, [("allreduce", f"op={op!r}"), _describe(a)]

    a, _ = _prepared(comm, "allreduce", check, prepare)
    xp = np if devices.device_of(a) == "cpu" else devices.cupy()
    # Booleans sum to integers (as np.sum does); float16 is reduced in float32 (MPI has no portable half).
    wire = np.dtype(np.int64) if a.dtype.kind == "b" else _wire_dtype(a.dtype)
    buf = xp.array(a, dtype=wire, copy=True).reshape(-1)
    _on_device(buf, lambda b: comm.Allreduce(MPI.IN_PLACE, b, op=_MPI_OPS[op]), comm)
    out = buf.reshape(a.shape)
    if op == "mean":
        out = out / comm.Get_size()
        if a.dtype.kind == "f":
            out = out.astype(a.dtype)
    elif op in ("max", "min") or a.dtype.kind != "b":
        out = out.astype(a.dtype)
    if isinstance(x, Tensor):
        return _new_tensor(out)
    if isinstance(x, (bool, int, float, complex)):
        return out.item()
    return out


# -- helpers ------------------------------------------------------------------------------------


def _tensor_list(tensors, what: str) -> list:
    if isinstance(tensors, Tensor):
        return [tensors]
    if isinstance(tensors, dict):
        tensors = list(tensors.values())
    try:
        items = list(tensors)
    except TypeError:
        raise TypeError(f"{what}: expected a Tensor or a list of Tensors, got {type(tensors).__name__}") from None
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{what}: element {i} is a {type(t).__name__}, not a Tensor")
    return items


def _check_op(op, allowed: tuple, what: str) -> None:
    if op not in allowed:
        raise ValueError(f"{what}: unknown op {op!r}; expected one of {allowed}")


def _check_root(root, comm, what: str) -> None:
    n = comm.Get_size()
    if not isinstance(root, (int, np.integer)) or isinstance(root, bool) or not 0 <= root < n:
        raise ValueError(f"{what}: root must be a rank from 0 to {n - 1}, got {root!r}")


def _describe(a) -> tuple:
    return (np.dtype(a.dtype).str, tuple(a.shape), devices.device_of(a))


def _prepared(comm, what: str, check: bool, prepare):
    """Run the local checks, then (with `check`) agree with the other ranks before any data moves.

    A rank whose own checks fail still takes part in the agreement, so that the others raise too
    rather than wait forever in a collective it will never join.
    """
    try:
        result = prepare()
    except Exception:
        if check:
            _agree(comm, what, None)
        raise
    if check:
        _agree(comm, what, result[1])
    return result


def _agree(comm, what: str, signature) -> None:
    """One Allgather of an 8-byte fingerprint of `signature`; raises on every rank if any differ."""
    if signature is None:
        code = -1  # this rank is about to raise its own error
    else:
        # hashlib, not hash(): Python's string hashes are salted differently in every process.
        digest = hashlib.blake2b(repr(signature).encode(), digest_size=8).digest()
        code = int.from_bytes(digest, "little") >> 2
    codes = np.empty(comm.Get_size(), dtype=np.int64)
    comm.Allgather(np.array([code], dtype=np.int64), codes)
    if signature is None:
        return
    failed = [r for r, c in enumerate(codes.tolist()) if c == -1]
    if failed:
        raise RuntimeError(f"{what}: rank(s) {failed} raised an error before the collective (see their output)")
    differ = [r for r, c in enumerate(codes.tolist()) if c != codes[0]]
    if differ:
        head, tensors = signature[0], signature[1:]
        listed = ", ".join(f"{np.dtype(d).name} {s}" + ("" if dev == "cpu" else f" on {dev}") for d, s, dev in tensors)
        raise ValueError(
            f"{what}: rank(s) {differ} passed different arguments from rank 0 (every rank must pass the same "
            f"tensors, in the same order, with the same dtypes and shapes, and the same op/root); "
            f"this rank ({comm.Get_rank()}) passed {head[1]} and {len(tensors)} array(s): {listed[:600]}"
        )


def _group(items, key) -> dict:
    """Indices of `items` by key, in first-seen order (the same on every rank that passed the same list)."""
    groups: dict = {}
    for i, t in enumerate(items):
        groups.setdefault(key(t), []).append(i)
    return groups


def _wire_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    return np.dtype(np.float32) if dtype == np.float16 else dtype


#: One packing buffer per (device, wire dtype), reused from call to call, as Horovod's fusion buffer
#: and PyTorch DDP's buckets are: a fresh 7 MB array costs its page faults at every step.
_buffers: dict = {}


def _packing_buffer(device: str, dtype, count: int):
    buf = _buffers.get((device, dtype))
    if buf is None or buf.size < count:
        xp = np if device == "cpu" else devices.cupy()
        buf = _buffers[(device, dtype)] = xp.empty(count, dtype=dtype)
    return buf[:count]


def _writeable(a) -> bool:
    flags = getattr(a, "flags", None)
    return True if flags is None or not hasattr(flags, "writeable") else bool(flags.writeable)


def _byte_offsets(arrays) -> tuple[list, int]:
    offsets, total = [], 0
    for a in arrays:
        total = -(-total // _ALIGN) * _ALIGN
        offsets.append(total)
        total += a.nbytes
    return offsets, total


def _byte_view(buf, offset: int, like):
    """The bytes of `buf` from `offset`, seen as an array shaped and typed like `like`."""
    return buf[offset : offset + like.nbytes].view(like.dtype).reshape(like.shape)


def _on_device(buf, collective, comm) -> None:
    """Run `collective` on `buf`: directly for host arrays and CUDA-aware MPI, through the host otherwise."""
    if devices.device_of(buf) == "cpu":
        collective(buf)
    elif cuda_aware(comm):
        devices.cupy().cuda.get_current_stream().synchronize()  # MPI reads the memory outside CuPy's stream
        collective(buf)
    else:
        host = buf.get()
        collective(host)
        buf.set(host)
