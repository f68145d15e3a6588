"""Backends: which kernels run the CPU ops.

``tp.set_backend("numba")`` (the default) installs fused Numba kernels for the backward rules where
they beat NumPy on large arrays, and one-thread loops where one call replaces several NumPy calls on
small ones; ``tp.set_backend("numpy")`` runs the op table's NumPy rules, and
writes a unary op's cotangent into the incoming one when the sweep owns it (both backends do).
The environment variable ``TAPE_BACKEND`` picks the backend at import. Both give equal results
(to rounding), which tests/test_backends.py checks kernel by kernel. CUDA arrays always run NumPy's
API on CuPy (`device="cuda"`), whatever the CPU backend.
"""

from __future__ import annotations

import os

from ..ops.registry import use_kernels

BACKENDS = ("numba", "numpy")
_active = "numpy"


def _kernels(name):
    if name == "numba":
        from . import numba_backend

        return numba_backend.VJP_KERNELS
    from . import numpy_backend

    return numpy_backend.VJP_KERNELS


def set_backend(name: str) -> None:
    """Choose the CPU kernels: "numba" (fused backward kernels for large arrays) or "numpy".

    >>> import tape as tp
    >>> tp.set_backend("numpy"); tp.get_backend()
    'numpy'
    >>> tp.set_backend("numba")
    """
    global _active
    if name not in BACKENDS:
        raise ValueError(f"set_backend: unknown backend {name!r}; expected one of {BACKENDS}")
    use_kernels(_kernels(name))
    _active = name


def get_backend() -> str:
    """The name of the active CPU backend."""
    return _active


def initial_backend() -> str:
    """The backend named by TAPE_BACKEND (numba by default)."""
    name = os.environ.get("TAPE_BACKEND", "numba").strip().lower()
    if name not in BACKENDS:
        raise ValueError(f"TAPE_BACKEND={name!r} is not a backend; expected one of {BACKENDS}")
    return name
