"""Checkpointed loops: a schedule of actions, and the executor that runs it on tensors.

A loop ``for _ in range(n): state = step(state)`` recorded plainly keeps every step's history
until the backward pass: memory grows with n. Here the whole loop is *one entry* of the tape. Its
forward runs the steps without recording, storing a few states (snapshots) on the way; its rule
runs the rest of the schedule: restore a snapshot, re-run steps to the one to reverse, record
that one step, sweep it, drop it. At any moment at most `snapshots` states and one step's
history are alive.

Which steps to snapshot and re-run is pure data, a sequence of actions without arrays (DESIGN.md
principle 10). It comes from the `checkpoint_schedules` package: `MultistageCheckpointSchedule`
is Griewank and Walther's binomial (Revolve) schedule, optimal in the number of re-run steps,
p(n, s) = t·n − C(s+t, t−1) with t the smallest integer such that C(s+t, s) ≥ n, and it spreads
snapshots over RAM and disk when asked to; `TwoLevelCheckpointSchedule` works without knowing n
in advance (periodic snapshots, binomial in between). The executor below knows nothing of how
the schedule was derived: it obeys Forward, Reverse, Copy, Move, EndForward and EndReverse.

The schedules' convention, which this executor follows, is that the last step of the forward
sweep is recorded and its history kept for the first reverse step, and that each later reverse
step is preceded by a recorded re-run of that step. So `step` is called exactly n + p(n, s) times
over the forward and the backward pass together, the initial state counting as one snapshot.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from math import comb

from ..creation import get_rng_state, set_rng_state
from ..ops.registry import apply, defop, new_opcode
from ..sweep import LowRank
from ..tape import no_grad
from ..tape import state as _recording_state
from ..tensor import TRACKED_LEAF, Tensor, _new_tensor
from .segment import (
    Layout,
    SegmentStore,
    dense,
    flatten,
    is_float_tensor,
    pull_back,
    pull_back_differentiably,
    recording_into,
)
from .storage import SnapshotStorage

# ------------------------------------------------------------------------------------------------
# Counting.


def revolve_extra_steps(n: int, snapshots: int) -> int:
    """p(n, s): the fewest re-run steps for reversing n steps with s snapshots (Griewank-Walther).

    p(n, s) = t·n − C(s+t, t−1), t the smallest integer with C(s+t, s) ≥ n; the initial state
    counts as one of the s snapshots. With one snapshot every step is re-run from the start:

    >>> revolve_extra_steps(10, 1), revolve_extra_steps(10, 3), revolve_extra_steps(10, 9)
    (45, 15, 9)
    """
    if n < 1 or snapshots < 1:
        raise ValueError(f"revolve_extra_steps: need n >= 1 and snapshots >= 1, got n={n}, snapshots={snapshots}")
    t = 0
    while comb(snapshots + t, snapshots) < n:
        t += 1
    return t * n - comb(snapshots + t, t - 1) if t else 0


#: The default keeps every step's re-runs at most this many (the "repetition number" t).
DEFAULT_REPETITIONS = 3


def default_snapshots(n: int) -> int:
    """The `snapshots` that `checkpoint_loop` picks for n steps when given None.

    The fewest snapshots s for which the binomial schedule runs no step more than three extra
    times (t ≤ 3, i.e. C(s+3, 3) ≥ n): fewer than 4·n step calls in all, for about (6n)^(1/3)
    stored states: 7 for 100 steps, 38 for 10^4, 180 for 10^6.

    >>> default_snapshots(100), default_snapshots(10_000), default_snapshots(1_000_000)
    (7, 38, 180)
    """
    s = 1
    while comb(s + DEFAULT_REPETITIONS, DEFAULT_REPETITIONS) < n:
        s += 1
    return s


@dataclass
class CheckpointStats:
    """What a checkpointed loop did; pass one as ``stats=`` and read it after the backward pass.

    `forward_steps`: step calls in the forward pass (n for `checkpoint_loop`); `rerun_steps`:
    step calls in backward passes; `peak_snapshots`: the most states stored at once (memory and
    disk); `peak_snapshot_bytes` / `peak_disk_bytes`: the most bytes they held at once in memory /
    on disk. The counts add up over every loop the same object is passed to.

    >>> import tape as tp
    >>> x0 = tp.tensor([1.0, 2.0], requires_grad=True)
    >>> stats = tp.CheckpointStats()
    >>> with tp.record():
    ...     loss = tp.sum(tp.checkpoint_loop(lambda x: x * 0.9, x0, n_steps=10, snapshots=3, stats=stats))
    >>> loss.backward()
    >>> stats.forward_steps, stats.rerun_steps, stats.peak_snapshots
    (10, 15, 3)
    """

    n_steps: int = 0
    forward_steps: int = 0
    rerun_steps: int = 0
    backward_passes: int = 0
    peak_snapshots: int = 0
    peak_snapshot_bytes: int = 0
    peak_disk_bytes: int = 0

    @property
    def step_calls(self) -> int:
        """Every call of `step`, forward and backward."""
        return self.forward_steps + self.rerun_steps

    def _held(self, count, ram_bytes, disk_bytes):
        self.peak_snapshots = max(self.peak_snapshots, count)
        self.peak_snapshot_bytes = max(self.peak_snapshot_bytes, ram_bytes)
        self.peak_disk_bytes = max(self.peak_disk_bytes, disk_bytes)

    def __str__(self):
        rows = [
            ("steps", self.n_steps),
            ("steps run forward", self.forward_steps),
            ("steps re-run", self.rerun_steps),
            ("backward passes", self.backward_passes),
            ("peak snapshots held", self.peak_snapshots),
            ("peak bytes in snapshots (memory)", self.peak_snapshot_bytes),
            ("peak bytes in snapshots (disk)", self.peak_disk_bytes),
        ]
        return "\n".join(f"{name:<33} {value:>14,}" for name, value in rows)


def _progress_bar(progress: bool):
    """tqdm's class when `progress` is on (imported only then), else None."""
    if not progress:
        return None
    try:
        from tqdm import tqdm
    except ImportError as exc:
        raise ImportError(
            "progress=True shows a tqdm progress bar, and tqdm is not installed: pip install tqdm"
        ) from exc
    return tqdm


# ------------------------------------------------------------------------------------------------
# The executor.


def _detached(x):
    return _new_tensor(x.array) if isinstance(x, Tensor) else x


class _LoopRun:
    """One recorded loop: runs its schedule's forward now and the rest in the entry's rule.

    The state is kept as a list of leaves (see `segment.flatten`): Tensor leaves of float dtype
    carry gradients, every other leaf (integer tensors, Python numbers) is carried along as a
    value. The tensors `step` closes over (`externals`) are found by recording step 0.
    """

    def __init__(self, step, tree, n_steps, make_schedule, make_storage, stats, bar_class, name, cond=None):
        self.step = step
        self.tree = tree
        self.n_steps = n_steps  # None until an online loop's condition turns false
        self.make_schedule = make_schedule
        self.make_storage = make_storage
        self.stats = stats
        self.bar_class = bar_class
        self.bar = None
        self.name = name
        self.cond = cond
        self.externals = None  # the tensors step closes over, found when step 0 is recorded
        self.tracked = False  # does anything the loop computes need a gradient?
        self.schedule = self.storage = None
        self.work = None  # the current state (list of leaves)
        self.kept = None  # (k, store, inputs, outputs): the recording of step k, for the next Reverse
        self.adjoint = None  # cotangent of the current state, one entry (or None) per leaf
        self.external_cts = None
        self.in_backward = False
        self.fresh = True  # False once a reverse ran (or failed): a new one starts from scratch

    # -- steps ----------------------------------------------------------------------------------
    def _call(self, leaves):
        if self.in_backward:
            self.stats.rerun_steps += 1
        else:
            self.stats.forward_steps += 1
        if self.bar is not None:
            self.bar.update()
        if self.tree.kind is None:  # the state is one value (the common case): no tree to walk
            out = self.step(leaves[0])
            if not isinstance(out, (dict, tuple, list)):
                return [out]
        else:
            out = self.step(self.tree.unflatten(leaves))
        out_leaves, tree = flatten(out)
        if tree != self.tree:
            raise TypeError(f"{self.name}: step must return a state shaped like its input {self.tree}, got {tree}")
        return out_leaves

    def _plain_steps(self, k0, n1, stop):
        """Steps k0 .. n1-1 without recording (one no_grad block for all); k if `stop(k)` for k > k0
        (the caller asked for k0)."""
        with no_grad():
            for k in range(k0, n1):
                if stop is not None and k > k0 and stop(k):
                    return k
                # a result made under no_grad is a constant already: only what step passed through
                # (an input, a closed-over tensor) needs a handle of its own without history
                self.work = [x if type(x) is Tensor and not x._role else _detached(x) for x in self._call(self.work)]
        return None

    def _recorded_step(self, k, keep):
        store = SegmentStore(self.externals)
        inputs = [store.leaf(x.array) if is_float_tensor(x) else x for x in self.work]
        with recording_into(store):
            outputs = [store.local(x) for x in self._call(inputs)]
        if self.externals is None:
            self.externals = store.externals
            self.tracked = self.tracked or bool(self.externals)
        self.work = [_detached(x) for x in outputs]
        if keep:
            self.kept = (k, store, inputs, outputs)

    def _advance(self, action, stop=None):
        """Run Forward(n0, n1): snapshot at n0 if asked, then the steps; return k if `stop(k)`."""
        n0, n1 = action.n0, action.n1
        if action.write_adj_deps and n1 - n0 != 1:
            raise NotImplementedError(f"{self.name}: a schedule that keeps the history of several steps ({action})")
        for k in range(n0, n1):
            if stop is not None and stop(k):
                return k
            # Before step 0 is recorded it is not known yet whether anything needs a gradient.
            if k == n0 and action.write_ics and (self.tracked or self.externals is None):
                self.storage.write(action.storage, n0, self.work, get_rng_state())
            if self.externals is None:  # step 0, recorded to find the tensors step closes over
                self._recorded_step(k, keep=action.write_adj_deps)
                if not self.tracked:  # nothing to differentiate: the rest is a plain loop
                    self.storage.clear()
            elif action.write_adj_deps and self.tracked:
                self._recorded_step(k, keep=True)
            else:  # the rest of this action's steps are plain ones
                return self._plain_steps(k, n1, stop)
        return None

    def _transfer(self, action):
        """Copy or Move: a snapshot to the working state (or to another level)."""
        from checkpoint_schedules import Move, StorageType

        leaves, rng = self.storage.read(action.from_storage, action.n, remove=isinstance(action, Move))
        if action.to_storage == StorageType.WORK:
            self.work = leaves
            set_rng_state(rng)  # re-run with the random numbers of the first run
        elif action.to_storage != StorageType.NONE:
            self.storage.write(action.to_storage, action.n, leaves, rng)

    def _reverse_step(self, action):
        if self.bar is not None:
            self.bar.update()
        if self.kept is None or action.n1 - action.n0 != 1 or self.kept[0] != action.n0:
            raise RuntimeError(f"{self.name}: the schedule asked to reverse {action} without its recorded step")
        _, store, inputs, outputs = self.kept
        self.kept = None
        sources = [x if isinstance(x, Tensor) and x._role is TRACKED_LEAF else None for x in inputs] + store.proxies
        cts = pull_back(outputs, self.adjoint, sources)
        # the state's cotangents seed the next reversed step: arrays (a state matrix read by W @ x gets
        # outer products); only the closed-over tensors' cotangents stay low rank, added up over steps
        self.adjoint = [dense(ct) for ct in cts[: len(inputs)]]
        totals, owned = self.external_cts, self.external_owned
        for k, ct in enumerate(cts[len(inputs) :]):
            if ct is None:
                continue
            total = totals[k]
            if total is None:
                totals[k] = ct  # (a LowRank: this loop's own from here on, added to below)
            elif type(ct) is LowRank and type(total) is LowRank:
                # a weight's cotangent through W @ x, as outer products: LOW_RANK_FLUSH steps' of them
                # are added with one matrix product, not one outer product and one add a step
                total.extend(ct)
            else:
                total, ct = dense(total), dense(ct)
                if owned[k] and total.shape == ct.shape:
                    total += ct  # a sum this loop allocated: add in place, no new weight-sized array
                else:
                    total = total + ct
                    owned[k] = True
                totals[k] = total
        self.storage.discard_step(action.n0)  # the backward pass is past it

    # -- forward ----------------------------------------------------------------------------------
    def _forward(self, stop):
        from checkpoint_schedules import Copy, EndForward, Forward, Move

        for action in self.schedule:
            if isinstance(action, Forward):
                stopped = self._advance(action, stop)
                if stopped is not None:
                    self.n_steps = stopped
                    if stopped == 0:
                        return
                    self.schedule.finalize(stopped)
            elif isinstance(action, (Copy, Move)):
                self._transfer(action)
            elif isinstance(action, EndForward):
                return
            else:
                raise RuntimeError(f"{self.name}: unexpected action {action!r} in the forward pass")

    def _online_stop(self, k):
        with no_grad():
            return not self.cond(self.tree.unflatten(self.work))

    def _open_bar(self, total, what):
        if self.bar_class is not None:
            self.bar = self.bar_class(total=total, desc=f"{self.name} {what}", unit="step")

    def _close_bar(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _drop(self):
        if self.storage is not None:
            self.storage.clear()
        self.kept = self.work = None
        self.adjoint = self.external_cts = None

    def record(self, leaves):
        """Run the forward pass and record the loop as one entry; return the final state."""
        self.initial_values = [None if isinstance(x, Tensor) else x for x in leaves]
        self.arg_positions = [i for i, x in enumerate(leaves) if isinstance(x, Tensor)]
        self.rng0 = get_rng_state()
        self.tracked = any(isinstance(x, Tensor) and x._role for x in leaves)
        self.work = [_detached(x) for x in leaves]
        self.schedule = self.make_schedule(self.n_steps)
        self.storage = self.make_storage()
        self._open_bar(self.n_steps, "forward")
        try:
            self._forward(self._online_stop if self.cond is not None else None)
        except BaseException:
            self._drop()
            raise
        finally:
            self._close_bar()
        self.stats.n_steps += self.n_steps
        if self.n_steps == 0:
            return self.tree.unflatten(leaves)
        final = self.work
        positions = [i for i, x in enumerate(final) if is_float_tensor(x)]
        if not self.tracked or not positions:
            self._drop()
            return self.tree.unflatten(final)
        self.positions = positions
        self.layout = Layout([final[i].array for i in positions])
        self.packed = self.layout.pack([final[i].array for i in positions])
        args = tuple(leaves[i] for i in self.arg_positions) + tuple(self.externals)
        out = apply(LOOP, args, {"run": self})
        result = list(final)
        for i, part in zip(positions, self.layout.unpack_tensors(out)):
            result[i] = part
        return self.tree.unflatten(result)

    # -- backward ---------------------------------------------------------------------------------
    def vjp(self, g, saved_arrays):
        """The entry's rule: cotangents of (initial tensor leaves..., externals...)."""
        self.stats.backward_passes += 1
        if isinstance(g, Tensor):  # create_graph=True: the backward pass is itself recorded
            return self._vjp_differentiably(g, saved_arrays)
        user_rng = get_rng_state()
        self.in_backward = True
        try:
            if not self.fresh:  # a second backward (retain_graph), or one after a failure
                self._restart(saved_arrays)
            self.fresh = False
            return self._reverse(g)
        finally:
            self._drop()
            self._close_bar()
            self.in_backward = False
            set_rng_state(user_rng)  # the backward pass leaves the user's random stream alone

    def _vjp_differentiably(self, g, saved):
        """Record the whole loop on the outer tape and differentiate it with ``create_graph=True``.

        Derivatives of derivatives need the history of every step at once, so this one backward
        pass has no memory savings; the loop's values and random numbers are those of the forward.
        """
        leaves = list(self.initial_values)
        for i, a in zip(self.arg_positions, saved):
            leaves[i] = a if isinstance(a, Tensor) else _new_tensor(a)
        user_rng = get_rng_state()
        set_rng_state(self.rng0)
        self.in_backward = True
        try:
            out = self.tree.unflatten(leaves)
            for _ in range(self.n_steps):
                self.stats.rerun_steps += 1
                out = self.step(out)
        finally:
            self.in_backward = False
            set_rng_state(user_rng)
        final, _ = flatten(out)
        sources = [leaves[i] for i in self.arg_positions] + list(self.externals)
        outputs = [final[i] for i in self.positions]
        return tuple(pull_back_differentiably(outputs, self.layout.unpack_tensors(g), sources))

    def _restart(self, saved_arrays):
        """Run the forward pass again from the initial state the entry saved."""
        work = list(self.initial_values)
        for i, a in zip(self.arg_positions, saved_arrays):
            work[i] = _new_tensor(a.copy())
        self.work = work
        set_rng_state(self.rng0)
        self.schedule = self.make_schedule(self.n_steps)
        self.storage = self.make_storage()
        if len(saved_arrays) != len(self.arg_positions):
            raise RuntimeError(f"{self.name}: the initial state is gone; pass retain_graph=True to reverse twice")
        n = self.n_steps
        self._forward((lambda k: k >= n) if self.cond is not None else None)

    def _reverse(self, g):
        from checkpoint_schedules import Copy, EndForward, EndReverse, Forward, Move, Reverse

        self.adjoint = [None] * len(self.work)
        for i, ct in zip(self.positions, self.layout.unpack_arrays(g)):
            self.adjoint[i] = ct
        self.external_cts = [None] * len(self.externals)
        self.external_owned = [False] * len(self.externals)
        self._open_bar(self.total_backward(), "backward")
        for action in self.schedule:
            if isinstance(action, Forward):
                self._advance(action)
            elif isinstance(action, Reverse):
                self._reverse_step(action)
            elif isinstance(action, (Copy, Move)):
                self._transfer(action)
            elif isinstance(action, EndReverse):
                break
            elif isinstance(action, EndForward):
                raise RuntimeError(f"{self.name}: unexpected {action!r} in the backward pass")
        return tuple(self.adjoint[i] for i in self.arg_positions) + tuple(map(dense, self.external_cts))

    def total_backward(self):
        return self.total_rerun + self.n_steps if self.total_rerun is not None else None

    total_rerun = None


def _loop_forward(*arrays, run):
    packed, run.packed = run.packed, None
    return packed


def _loop_vjp(g, out, *saved, run):
    return run.vjp(g, saved[: len(run.arg_positions)])


# save="*" keeps references to the inputs' arrays (no copies): the initial state, for a second
# backward pass, and the closed-over tensors, so that an in-place change to one of them before
# the backward pass is refused (API §8) rather than silently re-run with the new values.
LOOP = defop(new_opcode(), "checkpoint_loop", _loop_forward, save="*", vjp_all=_loop_vjp)


# ------------------------------------------------------------------------------------------------
# The public functions.


def _plain_loop(step, state_, keep_going, stats, bar_class, name, total=None):
    """Run the loop without recording (nothing to differentiate): `keep_going(n, state)` decides."""
    bar = bar_class(total=total, desc=name, unit="step") if bar_class is not None else None
    n = 0
    try:
        while keep_going(n, state_):
            state_ = step(state_)
            n += 1
            if bar is not None:
                bar.update()
    finally:
        if bar is not None:
            bar.close()
    stats.n_steps += n
    stats.forward_steps += n
    return state_


def checkpoint_loop(
    step, state, n_steps, snapshots=None, *, disk_snapshots=0, disk_dir=None, progress=False, stats=None
):
    """``for _ in range(n_steps): state = step(state)``, differentiable in a few snapshots' memory.

    The loop is recorded as one tape entry with binomial (Revolve) checkpointing: at most
    `snapshots` stored states (the initial state counts as one) plus one step's history are
    alive at any time, and `step` is called exactly n_steps + p(n_steps, snapshots) times over
    the forward and the backward pass together, p being the Revolve optimum
    (`revolve_extra_steps`). Gradients reach the initial state and every tensor `step` closes
    over, as without checkpointing.

    >>> import numpy as np, tape as tp
    >>> W = tp.tensor(np.eye(3) * 0.5, requires_grad=True)
    >>> x0 = tp.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> with tp.record():
    ...     xN = tp.checkpoint_loop(lambda x: x + 0.01 * tp.tanh(W @ x), x0, n_steps=1000, snapshots=10)
    ...     loss = tp.sum(xN)
    >>> loss.backward()
    >>> x0.grad.shape, W.grad.shape
    ((3,), (3, 3))

    `state` is a Tensor or a (nested) tuple, list or dict of them; `step` returns the same
    structure. Leaves that are not float tensors (integer tensors, Python numbers) are carried
    along without gradients. `step` must read the same tracked tensors at every step: they are
    found by recording step 0, and a tensor first read later is an error in the backward pass.
    Random numbers drawn with `tp.rand`/`tp.randn` inside `step` are the same when it is re-run.

    `snapshots=None` picks `default_snapshots(n_steps)` (at most 3 re-runs of any step, about
    (6n)^(1/3) snapshots). `disk_snapshots` adds that many snapshots kept in files (in a fresh
    temporary directory under `disk_dir`, removed afterwards), spread with the snapshots in
    memory by `checkpoint_schedules`' multistage schedule: the steps re-run are then
    p(n_steps, snapshots + disk_snapshots). `progress=True` shows tqdm progress bars; `stats`
    takes a `CheckpointStats` to fill. Outside a record block, and inside forward mode (`tp.jvp`,
    `tp.hvp`), this is just the plain loop.
    """
    n_steps = _check_count(n_steps, "n_steps", 0)
    snapshots = default_snapshots(n_steps) if snapshots is None else _check_count(snapshots, "snapshots", 1)
    disk_snapshots = _check_count(disk_snapshots, "disk_snapshots", 0)
    bar_class = _progress_bar(progress)
    stats = CheckpointStats() if stats is None else stats
    if n_steps == 0:
        return state
    if not _recording():
        return _plain_loop(step, state, lambda n, _: n < n_steps, stats, bar_class, "checkpoint_loop", n_steps)
    from checkpoint_schedules import MultistageCheckpointSchedule, StorageType

    leaves, tree = flatten(state)
    run = _LoopRun(
        step,
        tree,
        n_steps,
        lambda n: MultistageCheckpointSchedule(n, snapshots, disk_snapshots),
        lambda: SnapshotStorage(stats, {StorageType.DISK}, disk_dir),
        stats,
        bar_class,
        "checkpoint_loop",
    )
    run.total_rerun = revolve_extra_steps(n_steps, min(snapshots + disk_snapshots, max(n_steps - 1, 1)))
    return run.record(leaves)


def checkpoint_while(
    cond, step, state, *, period=1000, snapshots=None, disk=False, disk_dir=None, progress=False, stats=None
):
    """``while cond(state): state = step(state)``, differentiable, the number of steps unknown.

    The online counterpart of `checkpoint_loop` (reverse mode through a while loop, which
    `jax.lax.while_loop` refuses): a snapshot is stored every `period` steps while the loop runs,
    and the backward pass reverses one period at a time with a binomial schedule over
    `snapshots` more states (`checkpoint_schedules`' two-level schedule). Memory: n/period
    periodic snapshots, kept in files (in a temporary directory under `disk_dir`, removed
    afterwards) when `disk=True`, plus `snapshots` in memory and one step's history.
    `snapshots=None` gives each period the default of `checkpoint_loop` for `period` steps.
    `cond(state)` returns a bool (or a 0-d tensor); it is called once before each step.

    >>> import tape as tp
    >>> x0 = tp.tensor([1.0, 2.0], requires_grad=True)
    >>> with tp.record():
    ...     x = tp.checkpoint_while(lambda x: tp.sum(x) < 100.0, lambda x: x * 1.5, x0)
    ...     loss = tp.sum(x)
    >>> loss.backward()
    >>> x0.grad                                    # 1.5 ** 9: the loop ran 9 steps
    tensor([38.44335938, 38.44335938])
    """
    period = _check_count(period, "period", 1)
    snapshots = max(default_snapshots(period) - 1, 0) if snapshots is None else _check_count(snapshots, "snapshots", 0)
    bar_class = _progress_bar(progress)
    stats = CheckpointStats() if stats is None else stats
    if not _recording():
        return _plain_loop(step, state, lambda _, st: bool(cond(st)), stats, bar_class, "checkpoint_while")
    from checkpoint_schedules import StorageType, TwoLevelCheckpointSchedule

    leaves, tree = flatten(state)
    run = _LoopRun(
        step,
        tree,
        None,
        lambda n: TwoLevelCheckpointSchedule(period, snapshots, binomial_storage=StorageType.RAM),
        lambda: SnapshotStorage(stats, {StorageType.DISK} if disk else (), disk_dir),
        stats,
        bar_class,
        "checkpoint_while",
        cond=cond,
    )
    return run.record(leaves)


def _recording() -> bool:
    """Whether to checkpoint: recording, and not inside forward mode (`tp.jvp`, `tp.hvp`), whose
    tangents must flow through every step; there the loop runs plainly (and is recorded as such)."""
    st = _recording_state()
    return st.recording and not st.dual_depth


def _check_count(value, name, least):
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        value = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if value < least:
        raise ValueError(f"{name} must be >= {least}, got {value}")
    return value
