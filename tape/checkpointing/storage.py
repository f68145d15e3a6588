"""Where snapshots live: in memory, or in files of a private temporary directory.

A snapshot is a loop's state at the start of a step plus the random generator's state there, so
that re-running from it draws the same numbers. Schedules name storage *levels* (RAM, DISK);
`SnapshotStorage` maps each level to memory or to files, which is how the online schedule's
"disk" level can live in memory when the user asks for it.

Arrays are copied on the way in and on the way out (a move out needs no copy): a step that
changes its input in place (allowed outside recording) can then never corrupt a snapshot.
Files are removed as soon as the schedule moves their snapshot out, and the directory goes when
the loop is done, fails, or is garbage-collected without a backward pass.
"""

from __future__ import annotations

import os
import pickle
import shutil
import tempfile
import weakref

import numpy as np

from ..devices import is_device_array
from ..tensor import Tensor, _new_tensor


def _copy(value):
    """A copy of an array (NumPy or CuPy); other values (numbers) are kept as they are."""
    return value.copy() if isinstance(value, np.ndarray) or is_device_array(value) else value


class SnapshotStorage:
    """Snapshots keyed by (level, step); `disk_levels` says which levels are files."""

    def __init__(self, stats, disk_levels=frozenset(), disk_dir=None):
        self.stats = stats
        self.disk_levels = frozenset(disk_levels)
        self.disk_dir = disk_dir
        self.ram: dict = {}  # key -> (mask, values, rng, nbytes)
        self.files: dict = {}  # key -> (path, nbytes)
        self.ram_bytes = 0
        self.disk_bytes = 0
        self.levels: set = set()  # the levels written so far (RAM, DISK): at most a few
        self.directory = None
        self._cleanup = None

    def __len__(self):
        return len(self.ram) + len(self.files)

    def _dir(self) -> str:
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="tape-checkpoint-", dir=self.disk_dir)
            self._cleanup = weakref.finalize(self, shutil.rmtree, self.directory, True)
        return self.directory

    def write(self, level, n: int, leaves, rng) -> None:
        """Store a copy of the state `leaves` (and `rng`) at step `n` on `level`."""
        key = (level, n)
        self.discard(key)
        self.levels.add(level)
        mask = [isinstance(x, Tensor) for x in leaves]
        values = [_copy(x.array if m else x) for x, m in zip(leaves, mask)]
        if level in self.disk_levels:
            path = os.path.join(self._dir(), f"step-{n}-{getattr(level, 'name', level)}.pkl".lower())
            with open(path, "wb") as f:
                pickle.dump((mask, values, rng), f, protocol=pickle.HIGHEST_PROTOCOL)
            nbytes = os.path.getsize(path)
            self.files[key] = (path, nbytes)
            self.disk_bytes += nbytes
        else:
            nbytes = sum(getattr(v, "nbytes", 0) for v in values)
            self.ram[key] = (mask, values, rng, nbytes)
            self.ram_bytes += nbytes
        self.stats._held(len(self), self.ram_bytes, self.disk_bytes)

    def read(self, level, n: int, remove: bool):
        """(leaves, rng) of the snapshot at step `n` on `level`; `remove` deletes it (a move)."""
        key = (level, n)
        if key in self.ram:
            if remove:
                mask, values, rng, nbytes = self.ram.pop(key)
                self.ram_bytes -= nbytes
            else:
                mask, values, rng, _ = self.ram[key]
                values = [_copy(v) for v in values]
        else:
            path, nbytes = self.files[key]
            with open(path, "rb") as f:
                mask, values, rng = pickle.load(f)
            if remove:
                self._remove_file(key)
        return [_new_tensor(v) if m else v for v, m in zip(values, mask)], rng

    def discard(self, key) -> None:
        """Forget the snapshot under `key` = (level, step), if there is one."""
        if key in self.ram:
            self.ram_bytes -= self.ram.pop(key)[3]
        elif key in self.files:
            self._remove_file(key)

    def discard_step(self, n: int) -> None:
        """Forget every snapshot at step `n` (the backward pass is past it)."""
        for level in self.levels:
            self.discard((level, n))

    def _remove_file(self, key) -> None:
        path, nbytes = self.files.pop(key)
        self.disk_bytes -= nbytes
        try:
            os.remove(path)
        except FileNotFoundError:
            pass

    def clear(self) -> None:
        """Drop every snapshot and remove the directory."""
        self.ram.clear()
        self.files.clear()
        self.ram_bytes = self.disk_bytes = 0
        if self._cleanup is not None:
            self._cleanup()  # rmtree, once
            self._cleanup = None
            self.directory = None
