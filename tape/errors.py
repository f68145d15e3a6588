"""Error messages that name the op and the shapes, dtypes and devices involved (API §8)."""

from __future__ import annotations

import numpy as np

from . import devices


def describe(arrays) -> str:
    """'shapes (2, 3), (4,); dtypes float64, float32' for the array arguments of an op."""
    arrays = [a for a in arrays if hasattr(a, "shape")]
    if not arrays:
        return ""
    shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
    dtypes = ", ".join(str(a.dtype) for a in arrays)
    text = f"shapes {shapes}; dtypes {dtypes}"
    devs = {devices.device_of(a) for a in arrays}
    if len(devs) > 1:
        text += "; devices " + ", ".join(devices.device_of(a) for a in arrays)
    return text


def op_error(name: str, arrays, exc: Exception) -> Exception:
    """A copy of `exc` whose message starts with the op's name and ends with its operands (the raw
    arrays the op was given)."""
    devs = {devices.device_of(a) for a in arrays if hasattr(a, "shape")}
    if len(devs) > 1:
        where = describe(arrays)
        return RuntimeError(f"{name}: operands are on different devices ({where}); move them with .to(device)")
    kind = type(exc) if isinstance(exc, (ValueError, TypeError, IndexError, np.linalg.LinAlgError)) else ValueError
    message = str(exc)
    if message.startswith(f"{name}: "):  # NumPy already named the function (e.g. matmul)
        message = message[len(name) + 2 :]
    return kind(f"{name}: {message} ({describe(arrays)})")


def check_finite(a, name: str, phase: str, src: str | None, index: int | None = None) -> None:
    """Under detect_anomaly: raise FloatingPointError if `a` has NaN or Inf."""
    xp = np if isinstance(a, np.ndarray) or not hasattr(a, "__cuda_array_interface__") else devices.cupy()
    a = xp.asarray(a)
    if a.dtype.kind not in "fc" or bool(xp.isfinite(a).all()):
        return
    what = "NaN" if bool(xp.isnan(a).any()) else "Inf"
    where = f" at entry {index}" if index is not None else ""
    line = f", recorded at {src}" if src else ""
    raise FloatingPointError(f"{name} ({phase}){where} produced {what}{line} (shape {tuple(a.shape)}, {a.dtype})")
