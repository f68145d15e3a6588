"""Entries off the cyclic garbage collector's lists (tape/untrack.py): counts of tracked objects, exact.

A recording must not leave one GC-tracked object per entry (each survivor is walked by young
collections and, promoted, triggers full collections of the whole process), and entries taken off
the collector's lists must still be freed, by the store's reference counts, with what they hold.
"""

import gc
import sys
import weakref

import numpy as np

import tape as tp
from tape import untrack as untrack_module
from tape.tape import LEAF, OP, SLOT, UNTRACK_BATCH, state


def _long_loop(x, W, steps):
    for _ in range(steps):
        x = x + 0.01 * tp.tanh(W @ x)
    return x


def _tracked_count():
    gc.collect()
    return len(gc.get_objects())


def test_a_long_recording_leaves_at_most_one_batch_of_entries_tracked():
    rng = np.random.default_rng(0)
    W = tp.tensor(rng.standard_normal((4, 4)) / 2, requires_grad=True)
    x0 = tp.tensor(rng.standard_normal(4), requires_grad=True)
    steps = 3000  # 12,001 entries: about 47 batches
    with tp.record():  # a first run loads what Numba compiled (its machinery makes objects once)
        _long_loop(x0, W, UNTRACK_BATCH).sum().backward()
    before = _tracked_count()
    with tp.record():
        y = _long_loop(x0, W, steps)
        grown = _tracked_count() - before
        store = state().store
        entries = [e for s, e in store.entries.items() if s >= store.untracked_below - 4 * steps]
        tracked = [e for e in entries if gc.is_tracked(e)]
    # without untracking, every one of the 12,000 entries stays tracked
    assert grown < UNTRACK_BATCH + 100, grown
    assert 0 < len(tracked) <= UNTRACK_BATCH
    assert all(e[SLOT] >= store.untracked_below for e in tracked)  # only the newest
    assert len(entries) - len(tracked) >= 4 * steps - UNTRACK_BATCH
    del y


def test_untracked_entries_give_exact_gradients_and_are_freed_with_what_they_saved():
    rng = np.random.default_rng(1)
    n = 20  # more than TRACE_MAX_SIZE elements: the trace keeps no values, only (shape, dtype)
    Wa = rng.standard_normal((n, n)) / n
    xa = rng.standard_normal(n)
    W = tp.tensor(Wa, requires_grad=True)
    x0 = tp.tensor(xa, requires_grad=True)
    steps = 2 * UNTRACK_BATCH
    with tp.record():
        y = x0
        first = None
        for k in range(steps):
            h = tp.tanh(W @ y)
            if k == 1:
                first = weakref.ref(h.array)  # saved by the tanh entry (its output), an early batch
            y = y + 0.01 * h
        loss = tp.sum(y)
    store = state().store
    assert not gc.is_tracked(store.entries[store.untracked_below - UNTRACK_BATCH])
    loss.backward()

    # the oracle: the same loop's adjoints by hand, in float64
    xs = [xa]
    for _ in range(steps):
        xs.append(xs[-1] + 0.01 * np.tanh(Wa @ xs[-1]))
    g = np.ones(n)
    gW = np.zeros((n, n))
    for k in range(steps - 1, -1, -1):
        t = np.tanh(Wa @ xs[k])
        d = 0.01 * g * (1 - t * t)
        gW += np.outer(d, xs[k])
        g = g + Wa.T @ d
    np.testing.assert_allclose(x0.grad.array, g, rtol=1e-10)
    np.testing.assert_allclose(W.grad.array, gW, rtol=1e-10)

    assert first() is None  # consumed by the backward pass: freed though its entry is untracked
    del loss, y, h
    assert not [s for s, e in store.entries.items() if s >= store.untracked_below - 4 * steps and e[OP] is not LEAF]


def test_a_history_dropped_without_backward_is_freed_by_reference_counts():
    x = tp.tensor(np.ones(20), requires_grad=True)
    with tp.record():
        y = x
        for _ in range(3 * UNTRACK_BATCH):
            y = tp.sin(y)
        kept = weakref.ref(tp.sin(y).array)
        z = tp.sin(y)
        probe = weakref.ref(z.array)
    assert probe() is not None
    gc.disable()  # only reference counting may free it
    try:
        del y, z
        assert probe() is None
    finally:
        gc.enable()
    assert kept() is None


def test_both_untrack_paths_take_containers_off_the_lists(monkeypatch):
    chosen = untrack_module._load()  # the Numba loop where it links, else ctypes: either must work
    objects = [[i, [i]] for i in range(12)]
    chosen(iter(objects[:4]))
    untrack_module.untrack(objects[4:8])
    untrack_module._by_ctypes(objects[8:])
    assert not any(gc.is_tracked(o) for o in objects)
    assert all(gc.is_tracked(o[1]) for o in objects)  # what they hold is not touched
    # without Numba loaded (the numpy backend alone), the ctypes call, and no import of Numba for it
    monkeypatch.delitem(sys.modules, "numba")
    assert untrack_module._load() is untrack_module._by_ctypes
