"""The Numba loop of tape/untrack.py: `PyObject_GC_UnTrack` on each address, with no Python per object.

Numba links the function by its name against the running interpreter (CPython exports its C API), so
the compiled loop caches like the other kernels.
"""

import numba
from numba import types

_pyobject_gc_untrack = types.ExternalFunction("PyObject_GC_UnTrack", types.void(types.uintp))


@numba.njit(cache=True)
def untrack_addresses(addresses):
    """`PyObject_GC_UnTrack(addresses[i])` for each i: the addresses (ids) of live containers."""
    for i in range(addresses.shape[0]):
        _pyobject_gc_untrack(addresses[i])
