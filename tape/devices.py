"""Devices: "cpu" arrays are NumPy arrays, "cuda" arrays are CuPy arrays.

CuPy is imported only when a CUDA array is asked for, so the CPU package never needs it.
"""

from __future__ import annotations

import numpy as np

DEVICES = ("cpu", "cuda")
_cupy = None


def cupy():
    """The cupy module, or a RuntimeError that says whether CuPy or the GPU is missing."""
    global _cupy
    if _cupy is None:
        try:
            import cupy as cp
        except ImportError as exc:
            raise RuntimeError(
                "device 'cuda' needs CuPy, which is not installed: pip install 'wengert-tape[cuda]'"
            ) from exc
        try:
            count = cp.cuda.runtime.getDeviceCount()
        except Exception as exc:  # cupy's CUDARuntimeError when there is no driver
            raise RuntimeError(f"device 'cuda': CuPy is installed but no CUDA GPU is usable ({exc})") from exc
        if count == 0:
            raise RuntimeError("device 'cuda': CuPy is installed but no CUDA GPU is visible")
        _cupy = cp
    return _cupy


def cuda_available() -> bool:
    """True when CuPy imports and sees a GPU."""
    try:
        cupy()
    except RuntimeError:
        return False
    return True


def is_device_array(a) -> bool:
    return hasattr(a, "__cuda_array_interface__")


def device_of(a) -> str:
    return "cuda" if hasattr(a, "__cuda_array_interface__") else "cpu"


def check_device(device, what: str) -> str:
    if device not in DEVICES:
        raise ValueError(f"{what}: unknown device {device!r}; expected one of {DEVICES}")
    return device


def xp_of(device: str, what: str):
    """The array module (numpy or cupy) for `device`."""
    check_device(device, what)
    return np if device == "cpu" else cupy()


def to_host(a):
    return a.get() if hasattr(a, "__cuda_array_interface__") else a


def to_device(a, device: str):
    """`a` moved to `device` (no copy when it is there already)."""
    check_device(device, "to")
    if device_of(a) == device:
        return a
    return np.asarray(a.get()) if device == "cpu" else cupy().asarray(a)
