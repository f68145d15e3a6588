"""`Tensor`: a thin handle on an array (NumPy or CuPy) and, when recorded, a slot on the tape.

A Tensor does no math of its own: its operators and methods call the ops in `tape.ops`. It is a
handle, like a PyTorch tensor or a flashlight Variable: ``b = a`` shares the array.

`_rg` says how the Tensor takes part in differentiation: 0 = it does not, 1 = a leaf that
requires grad (its `.grad` is filled by backward), 2 = the output of a recorded op (it has
history). Only kind 2 holds a reference on its row; dropping the last such Tensor (and every row
that reads it) releases the history.
"""

from __future__ import annotations

import numpy as np

from . import devices
from .record import state

_FLOAT_KINDS = "f"

#: Set by `tape.compiled` while some thread records a compiled function (else None, and the
#: conversions below cost one global lookup): a recorded value turned into a Python bool, int or
#: float there becomes a *guard* of the program (API §9). Nothing here knows what a program is.
_capture = None


class Tensor:
    """An array with optional gradient tracking. Build one with `tp.tensor` or a factory.

    >>> import tape as tp
    >>> x = tp.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
    >>> with tp.record():
    ...     y = 2 * tp.dot(x, x)
    >>> y.backward()
    >>> x.grad
    tensor([ 0.,  4.,  8., 12.])
    """

    __slots__ = ("array", "_slot", "_store", "_rg", "grad", "__weakref__")

    def __init__(self, data, dtype=None, requires_grad=False, device=None):
        t = tensor(data, dtype=dtype, requires_grad=requires_grad, device=device)
        self.array, self._slot, self._store, self._rg, self.grad = t.array, -1, None, t._rg, None

    def __del__(self):
        if self._rg == 2:
            try:
                self._store.release(self._slot)
            except Exception:  # interpreter shutdown: the store may be gone already
                pass

    # -- what it is ---------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.array.shape

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def size(self) -> int:
        return self.array.size

    @property
    def device(self) -> str:
        return devices.device_of(self.array)

    @property
    def requires_grad(self) -> bool:
        return self._rg != 0

    @property
    def is_leaf(self) -> bool:
        return self._rg != 2

    @property
    def T(self):
        from .ops.shape import transpose

        return transpose(self)

    def __len__(self):
        if self.array.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def __iter__(self):
        for i in range(len(self)):
            yield self[i]

    def __hash__(self):
        return id(self)

    def __repr__(self):
        a = devices.to_host(self.array)
        body = np.array2string(a, separator=", ", prefix="tensor(")
        extra = ""
        if a.dtype not in (np.float64, np.int64, np.bool_):
            extra += f", dtype={a.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self._rg:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    __str__ = __repr__

    # -- ways out -----------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """A host (NumPy) copy of the values, without history."""
        a = np.array(devices.to_host(self.array), copy=True)
        if _capture is not None and self._rg:
            _capture.guard(self, a)
        return a

    def item(self):
        v = self.array.item()
        if _capture is not None and self._rg:
            _capture.guard(self, v)
        return v

    def tolist(self):
        return self.array.tolist()

    def __array__(self, dtype=None, copy=None):
        if self._rg and state().recording:
            raise TypeError(
                f"cannot convert a Tensor that {'has history' if self._rg == 2 else 'requires grad'} "
                f"(shape {self.shape}, {self.dtype}) to a NumPy array while recording: the gradient "
                "would be lost silently; use x.numpy() or x.detach() to leave the tape on purpose"
            )
        a = devices.to_host(self.array)
        if dtype is not None and a.dtype != dtype:
            return a.astype(dtype)
        return np.array(a, copy=True) if copy else a

    def __bool__(self):
        v = bool(self.array)
        if _capture is not None and self._rg:
            _capture.guard(self, v)
        return v

    def __float__(self):
        v = float(self.array)
        if _capture is not None and self._rg:
            _capture.guard(self, v)
        return v

    def __int__(self):
        v = int(self.array)
        if _capture is not None and self._rg:
            _capture.guard(self, v)
        return v

    def __index__(self):
        if self.array.dtype.kind not in "iub":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        v = int(self.array)
        if _capture is not None and self._rg:
            _capture.guard(self, v)
        return v

    def detach(self) -> Tensor:
        """The same values (shared array), without history."""
        if _capture is not None and self._rg:  # a compiled function's recording: an entry, not a constant
            t = _capture.plain("stop_gradient", (self,), [self.array], self.array, {})
            if t is not None:
                return t
        return _new_tensor(self.array)

    # -- gradients ----------------------------------------------------------------------------
    def requires_grad_(self, flag: bool = True) -> Tensor:
        """Mark this leaf as needing `.grad` (in place); returns self."""
        if self._rg == 2:
            if flag:
                return self
            raise RuntimeError(
                "requires_grad_(False) on a result with history: use x.detach() to get a tensor without it"
            )
        if flag:
            _check_grad_dtype(self.array.dtype, "requires_grad_")
        self._rg = 1 if flag else 0
        return self

    def zero_grad(self) -> None:
        """Set `.grad` back to None."""
        self.grad = None

    def backward(self, gradient=None, retain_graph: bool = False, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

        `gradient` seeds the sweep (required unless self is a scalar). Without `retain_graph` the
        history is released as the sweep passes it.
        """
        from .sweep import backward

        backward([self], None if gradient is None else [gradient], retain_graph, create_graph)

    # -- moving -------------------------------------------------------------------------------
    def to(self, device: str) -> Tensor:
        """This tensor on `device` ("cpu" or "cuda"); differentiable."""
        from .ops.shape import to_device

        return to_device(self, device)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def astype(self, dtype) -> Tensor:
        """A cast copy; differentiable between float dtypes."""
        from .ops.shape import astype

        return astype(self, dtype)

    # -- in place -----------------------------------------------------------------------------
    def _inplace(self, what: str, value, mutate) -> Tensor:
        st = state()
        if st.recording and (self._rg or (isinstance(value, Tensor) and value._rg)):
            raise RuntimeError(
                f"{what}: in-place change of a tensor that requires grad or has history "
                f"(shape {self.shape}, {self.dtype}) inside a record block would corrupt its "
                "gradient; write x = x + v (a new tensor) instead"
            )
        v = value.array if isinstance(value, Tensor) else value
        try:
            mutate(self.array, v)
        except (ValueError, TypeError, IndexError) as exc:
            vshape = getattr(v, "shape", ())
            raise type(exc)(f"{what}: {exc} (tensor shape {self.shape} {self.dtype}, value shape {vshape})") from exc
        # Flag recorded rows that saved (a view of) this array: their backward would be wrong.
        st.store.mark_overwritten(self.array)
        return self

    def __setitem__(self, index, value):
        from .ops.shape import _index_arrays

        idx = _index_arrays(index)
        self._inplace("setitem", value, lambda a, v: a.__setitem__(idx, v))

    def __iadd__(self, other):
        return self._inplace("iadd", other, lambda a, v: a.__iadd__(v))

    def __isub__(self, other):
        return self._inplace("isub", other, lambda a, v: a.__isub__(v))

    def __imul__(self, other):
        return self._inplace("imul", other, lambda a, v: a.__imul__(v))

    def __itruediv__(self, other):
        return self._inplace("itruediv", other, lambda a, v: a.__itruediv__(v))

    def zero_(self) -> Tensor:
        """Set every element to zero, in place (e.g. ``x.grad.zero_()``)."""
        return self._inplace("zero_", 0, lambda a, v: a.fill(v))


class DualTensor(Tensor):
    """A Tensor carrying a tangent for forward mode (made by `tp.jvp`; never on the tape).

    `array` is the innermost primal value; `_primal` the primal one level down (a Tensor that may
    have history, or be a dual of an outer jvp), `_tangent` its tangent, `_level` which jvp owns it.
    """

    __slots__ = ("_primal", "_tangent", "_level")

    def __repr__(self):
        return f"dual({self._primal!r}, tangent={self._tangent!r})"


def _check_grad_dtype(dtype, what: str) -> None:
    if np.dtype(dtype).kind not in _FLOAT_KINDS:
        raise TypeError(
            f"{what}: only floating-point tensors (float16/32/64) can require gradients, not {np.dtype(dtype)}"
        )


def _new_tensor(array) -> Tensor:
    """A Tensor without history around `array` (no copy)."""
    t = object.__new__(Tensor)
    t.array = array
    t._slot = -1
    t._store = None
    t._rg = 0
    t.grad = None
    return t


def _tensor_with_history(array, slot: int, store) -> Tensor:
    t = object.__new__(Tensor)
    t.array = array
    t._slot = slot
    t._store = store
    t._rg = 2
    t.grad = None
    return t


def tensor(data, dtype=None, requires_grad: bool = False, device: str | None = None) -> Tensor:
    """A new Tensor holding a copy of `data` (scalar, nested lists, NumPy/CuPy array, Tensor).

    dtype rules follow NumPy (Python floats -> float64). `device` defaults to where `data` is
    ("cpu" for everything but CuPy arrays).

    >>> import tape as tp
    >>> tp.tensor([1, 2]).dtype
    dtype('int64')
    >>> tp.tensor(2.0, requires_grad=True)
    tensor(2., requires_grad=True)
    """
    if isinstance(data, Tensor):
        data = data.array
    if dtype is not None:
        dtype = np.dtype(dtype)
    if device is None:
        device = devices.device_of(data) if devices.is_device_array(data) else "cpu"
    xp = devices.xp_of(device, "tensor")
    try:
        array = xp.array(data, dtype=dtype, copy=True)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"tensor: cannot make an array from {type(data).__name__}: {exc}") from exc
    if requires_grad:
        _check_grad_dtype(array.dtype, "tensor")
    t = _new_tensor(array)
    t._rg = 1 if requires_grad else 0
    return t


def _bind_operators_and_methods() -> None:
    """Point Tensor's operators and array methods at the ops (NumPy's names and meanings)."""
    from . import composite as cp
    from . import interop
    from .ops import elementwise as ew
    from .ops import linalg as la
    from .ops import reduce as rd
    from .ops import shape as sh

    T = Tensor
    # NumPy functions and ufuncs called on Tensors run tape's ops (tape/interop.py).
    T.__array_ufunc__ = lambda self, ufunc, method, *inputs, **kw: interop.array_ufunc(ufunc, method, inputs, kw)
    T.__array_function__ = lambda self, func, types, args, kw: interop.array_function(func, types, args, kw)
    # Reflected +, * record the tensor first (`2 * x` prints as mul(v0, 2)); the values are equal.
    T.__add__ = T.__radd__ = ew.add
    T.__mul__ = T.__rmul__ = ew.multiply
    T.__sub__ = ew.subtract
    T.__rsub__ = lambda self, other: ew.subtract(other, self)
    T.__truediv__ = ew.divide
    T.__rtruediv__ = lambda self, other: ew.divide(other, self)
    T.__pow__ = ew.power
    T.__rpow__ = lambda self, other: ew.power(other, self)
    T.__matmul__ = la.matmul
    T.__rmatmul__ = lambda self, other: la.matmul(other, self)
    T.__neg__ = ew.negative
    T.__pos__ = lambda self: self
    T.__abs__ = ew.abs
    T.__getitem__ = sh.getitem
    T.__eq__, T.__ne__ = cp.equal, cp.not_equal
    T.__lt__, T.__le__, T.__gt__, T.__ge__ = cp.less, cp.less_equal, cp.greater, cp.greater_equal
    T.__and__ = T.__rand__ = cp.bitwise_and
    T.__or__ = T.__ror__ = cp.bitwise_or
    T.__xor__ = T.__rxor__ = cp.bitwise_xor
    T.__invert__ = cp.invert
    for name in ("exp", "log", "sqrt", "sin", "cos", "tan", "tanh", "sinh", "cosh", "abs", "sign"):
        setattr(T, name, getattr(ew, name))
    for name in ("sum", "prod", "max", "min"):
        setattr(T, name, getattr(rd, name))
    for name in ("mean", "var", "std", "clip", "squeeze", "swapaxes", "argmax", "argmin", "trace", "all", "any"):
        setattr(T, name, getattr(cp, name))
    T.dot = la.dot
    T.reshape = sh.reshape
    T.flatten = T.ravel = lambda self: sh.reshape(self, -1)
    T.transpose = lambda self, *axes: sh.transpose(self, axes[0] if len(axes) == 1 else (axes or None))
