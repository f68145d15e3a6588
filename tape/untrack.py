"""Taking the tape's entries off the cyclic garbage collector's lists.

Every entry is a Python list (tape.py), so CPython's cyclic collector tracks it, and a recording of
tens of thousands of entries costs collections that walk them all. Worse, entries that live through
a young collection are promoted, and enough promotions trigger a *full* collection, which walks
every object of the process (NumPy's and Numba's modules included: some 30 ms here, whatever the
tape holds). Measured before this module, with the collector on as in real use: full collections
took 15% of W1's time (6,000 scalar ops per pass, one every nine passes) and about a sixth of W5's
(10,000 steps, 40,001 entries, one or two per pass). PyTorch's graph nodes are C++ objects, which
the collector never sees.

The collector has nothing to find in an entry: the store frees entries by its own reference counts
(`Store.release`, `drop_history`), and nothing in the tape refers back to an entry (releasing one
empties its SAVED and PARAMS columns, the only ones that may hold user objects). So every
UNTRACK_BATCH slots the store hands the entries made since to `untrack`, which calls CPython's
`PyObject_GC_UnTrack` on each (the public C API that C extensions use for the same purpose; CPython
does it itself for tuples and dicts that can hold no cycle). An untracked list still keeps what it
holds alive: the collector counts its references as outside ones, so nothing is collected early.
The one thing given up: a cycle that runs through a live entry's PARAMS (a custom op's parameter
that holds a Tensor of the same history) is freed when the entry is released, no longer by the
collector should the whole store become garbage first (a thread that ends holding such a history).

The call is made from a Numba loop over the entries' addresses, about 45 ns an entry with the walk
that finds them (W1's median pass: 1% faster, its mean 12%, W5's median 15%); where Numba is not
loaded or cannot link CPython's symbol, through ctypes, about 170 ns an entry.
"""

from __future__ import annotations

import ctypes
import gc
import sys

import numpy as np

_untrack_many = None


def untrack(objects) -> None:
    """Take each container `objects` yields off the cyclic collector's lists (see the module docstring).

    Only for objects freed by reference counting alone: an untracked object in a reference cycle
    would never be collected.

    >>> import gc
    >>> entry = [1, [2]]
    >>> untrack([entry])
    >>> gc.is_tracked(entry)
    False
    """
    global _untrack_many
    if _untrack_many is None:
        _untrack_many = _load()
    _untrack_many(objects)


def _load():
    """The Numba loop where Numba is loaded (the numba backend) and links CPython's symbol, else the
    ctypes call per object (the numpy backend does not import Numba for this)."""
    if "numba" not in sys.modules:
        return _by_ctypes
    try:
        from .backends.numba_untrack import untrack_addresses

        probe = [[]]
        untrack_addresses(np.fromiter(map(id, probe), np.uintp, 1))
        if not gc.is_tracked(probe[0]):

            def by_numba(objects):
                untrack_addresses(np.fromiter(map(id, objects), np.uintp))

            return by_numba
    except Exception:  # no Numba, or it cannot resolve CPython's symbol on this platform
        pass
    return _by_ctypes


def _by_ctypes(objects):
    for o in objects:
        _pyobject_gc_untrack(o)


_pyobject_gc_untrack = ctypes.pythonapi.PyObject_GC_UnTrack
_pyobject_gc_untrack.argtypes = [ctypes.py_object]
_pyobject_gc_untrack.restype = None
