"""Tensor's operators and methods, bound to the ops: the layer above the op table.

`tensor.py` knows nothing of the engine; this module gives a Tensor NumPy's operators
(``+ - * / ** @``, comparisons, ``x[...]``), the methods registered by the rows and composites
(`registry.METHODS`: ``x.sum()``, ``x.exp()``, ...), NumPy dispatch (`__array_ufunc__`,
`__array_function__`), and the methods that need the tape: `backward`, in-place operators (refused
while recording), `__array__` (refused while recording a tracked tensor), `to`, `astype`.
"""

from __future__ import annotations

from . import composite as cp
from . import devices, interop
from .ops import METHODS, add, astype, divide, matmul, multiply, negative, power, reshape, subtract, transpose
from .ops.elementwise import REMAINDER
from .ops.shape import GETITEM, _index_arrays, to_device
from .sweep import backward
from .tape import state
from .tensor import RESULT, Tensor

T = Tensor


def _backward(self, gradient=None, retain_graph: bool = False, create_graph: bool = False) -> None:
    """Accumulate d(self)/d(leaf) into `.grad` of every leaf that requires grad.

    `gradient` seeds the sweep (required unless self is a scalar). Without `retain_graph` the
    history is released as the sweep passes it.
    """
    backward([self], None if gradient is None else [gradient], retain_graph, create_graph)


def _array(self, dtype=None, copy=None):
    if self._role and state().recording:
        raise TypeError(
            f"cannot convert a Tensor that {'has history' if self._role is RESULT else 'requires grad'} "
            f"(shape {self.shape}, {self.dtype}) to a NumPy array while recording: the gradient "
            "would be lost silently; use x.numpy() or x.detach() to leave the tape on purpose"
        )
    a = devices.to_host(self.array)
    if dtype is not None and a.dtype != dtype:
        return a.astype(dtype)
    return a.copy() if copy else a


def _inplace(what: str, mutate):
    """An in-place operator: refused inside a record block for tracked tensors (the gradient would
    be corrupted); elsewhere it mutates the array and flags recorded entries that saved it."""

    def method(self, value, *index):
        st = state()
        if st.recording and (self._role or (isinstance(value, Tensor) and value._role)):
            raise RuntimeError(
                f"{what}: in-place change of a tensor that requires grad or has history "
                f"(shape {self.shape}, {self.dtype}) inside a record block would corrupt its "
                "gradient; write x = x + v (a new tensor) instead"
            )
        v = value.array if isinstance(value, Tensor) else value
        try:
            mutate(self.array, v, *index)
        except (ValueError, TypeError, IndexError) as exc:
            vshape = getattr(v, "shape", ())
            raise type(exc)(f"{what}: {exc} (tensor shape {self.shape} {self.dtype}, value shape {vshape})") from exc
        # Flag recorded entries that saved (a view of) this array, or the float64 scalar it was made
        # from (Tensor.array): their backward would be wrong.
        st.store.mark_overwritten(self.array, getattr(self, "_scalar", None))
        return self

    return method


def _setitem(self, index, value):
    _inplace("setitem", lambda a, v, idx: a.__setitem__(idx, v))(self, value, _index_arrays(index))


# NumPy functions and ufuncs called on Tensors run tape's ops (tape/interop.py).
T.__array_ufunc__ = lambda self, ufunc, method, *inputs, **kw: interop.array_ufunc(ufunc, method, inputs, kw)
T.__array_function__ = lambda self, func, types, args, kw: interop.array_function(func, types, args, kw)
T.__array__ = _array
# Reflected +, * record the tensor first (`2 * x` prints as mul(v0, 2)); the values are equal.
T.__add__ = T.__radd__ = add
T.__mul__ = T.__rmul__ = multiply
T.__sub__ = subtract
T.__rsub__ = lambda self, other: subtract(other, self)
T.__truediv__ = divide
T.__rtruediv__ = lambda self, other: divide(other, self)
T.__pow__ = power
T.__rpow__ = lambda self, other: power(other, self)
T.__matmul__ = matmul
T.__mod__ = REMAINDER.function
T.__rmod__ = lambda self, other: REMAINDER.function(other, self)
T.__rmatmul__ = lambda self, other: matmul(other, self)
T.__neg__ = negative
T.__pos__ = lambda self: self
T.__abs__ = METHODS["abs"]
T.__getitem__ = GETITEM.function
T.__eq__, T.__ne__ = cp.equal, cp.not_equal
T.__lt__, T.__le__, T.__gt__, T.__ge__ = cp.less, cp.less_equal, cp.greater, cp.greater_equal
T.__and__ = T.__rand__ = cp.bitwise_and
T.__or__ = T.__ror__ = cp.bitwise_or
T.__xor__ = T.__rxor__ = cp.bitwise_xor
T.__invert__ = cp.invert
T.__setitem__ = _setitem
T.__iadd__ = _inplace("iadd", lambda a, v: a.__iadd__(v))
T.__isub__ = _inplace("isub", lambda a, v: a.__isub__(v))
T.__imul__ = _inplace("imul", lambda a, v: a.__imul__(v))
T.__itruediv__ = _inplace("itruediv", lambda a, v: a.__itruediv__(v))
T.zero_ = lambda self: _inplace("zero_", lambda a, v: a.fill(v))(self, 0)
T.zero_.__doc__ = "Set every element to zero, in place (e.g. ``x.grad.zero_()``)."
# The methods the rows and composites registered (`defop(..., method=True)`): x.sum(), x.exp(), ...
for _name, _fn in METHODS.items():
    setattr(T, _name, _fn)
T.T = property(lambda self: transpose(self))
T.flatten = T.ravel = lambda self: reshape(self, -1)
T.transpose = lambda self, *axes: transpose(self, axes[0] if len(axes) == 1 else (axes or None))
T.backward = _backward
T.to = lambda self, device: to_device(self, device)
T.to.__doc__ = 'This tensor on `device` ("cpu" or "cuda"); differentiable.'
T.cpu = lambda self: to_device(self, "cpu")
T.cuda = lambda self: to_device(self, "cuda")
T.astype = astype
