"""tape: reverse-mode automatic differentiation on a Wengert tape, NumPy-native.

>>> import tape as tp
>>> x = tp.tensor([0.0, 1.0, 2.0, 3.0], requires_grad=True)
>>> with tp.record() as t:
...     y = 2 * tp.dot(x, x)
>>> y.backward()
>>> x.grad
tensor([ 0.,  4.,  8., 12.])

The operations (`tp.exp`, `tp.matmul`, `tp.mean`, ...) are generated from the op table and the
composites (`tape.ops.registry.FUNCTIONS`); everything else is listed below.
"""

from numpy import bool_, float16, float32, float64, int32, int64  # noqa: F401  (dtype names)

from . import composite, linalg, methods, numpy_extra  # noqa: F401  (methods binds Tensor's operators)
from .backends import get_backend, initial_backend, set_backend  # noqa: F401
from .checkpointing import CheckpointStats, checkpoint, checkpoint_loop, checkpoint_while  # noqa: F401
from .compiled import Program, compile, load_program  # noqa: F401, A004
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
from .ops.registry import FUNCTIONS
from .record import Entry, Tape, record  # noqa: F401
from .sweep import grads  # noqa: F401
from .tape import detect_anomaly, enable_grad, is_recording, no_grad  # noqa: F401
from .tensor import Tensor, tensor  # noqa: F401

globals().update({name: fn for name, fn in FUNCTIONS.items() if "." not in name})

set_backend(initial_backend())

__version__ = "0.1.0"
