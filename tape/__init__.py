"""tape: reverse-mode automatic differentiation on a Wengert tape, NumPy-native.

>>> import tape as tp
>>> x = tp.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
>>> with tp.record() as t:
...     y = 2 * tp.dot(x, x)
>>> y.backward()
>>> x.grad
tensor([ 0.,  4.,  8., 12.])
"""

from numpy import bool_, float16, float32, float64, int32, int64  # noqa: F401  (dtype names)

from . import linalg  # noqa: F401
from .backends import get_backend, set_backend  # noqa: F401
from .checkpointing import CheckpointStats, checkpoint, checkpoint_loop, checkpoint_while  # noqa: F401
from .compiled import Program, compile, load_program  # noqa: F401, A004
from .composite import (  # noqa: F401
    all,
    any,
    argmax,
    argmin,
    clip,
    equal,
    expand_dims,
    flip,
    greater,
    greater_equal,
    inner,
    isfinite,
    isnan,
    less,
    less_equal,
    log_softmax,
    logical_and,
    logical_not,
    logical_or,
    logsumexp,
    mean,
    moveaxis,
    norm,
    not_equal,
    outer,
    relu,
    sigmoid,
    softmax,
    softplus,
    split,
    square,
    squeeze,
    stack,
    std,
    stop_gradient,
    swapaxes,
    trace,
    var,
)
from .creation import (  # noqa: F401
    arange,
    empty,
    eye,
    full,
    full_like,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    zeros,
    zeros_like,
)
from .custom import Primitive, primitive  # noqa: F401
from .devices import cuda_available  # noqa: F401
from .functional import grad, hessian, hvp, jacfwd, jacobian, jacrev, jvp, value_and_grad, vjp  # noqa: F401
from .ops.elementwise import (  # noqa: F401
    abs,
    add,
    arccos,
    arcsin,
    arctan,
    arctan2,
    cos,
    cosh,
    divide,
    exp,
    expm1,
    log,
    log1p,
    maximum,
    minimum,
    multiply,
    negative,
    power,
    sign,
    sin,
    sinh,
    sqrt,
    subtract,
    tan,
    tanh,
    where,
)
from .ops.linalg import dot, einsum, matmul, tensordot  # noqa: F401
from .ops.reduce import max, min, prod, sum  # noqa: F401
from .ops.shape import astype, broadcast_to, concatenate, pad, reshape, transpose  # noqa: F401
from .record import detect_anomaly, enable_grad, is_recording, no_grad, record  # noqa: F401
from .sweep import grads  # noqa: F401
from .tape import Entry, Tape  # noqa: F401
from .tensor import Tensor, _bind_operators_and_methods, tensor  # noqa: F401

_bind_operators_and_methods()

from .backends import _initial_backend  # noqa: E402

set_backend(_initial_backend())

__version__ = "0.1.0"
