"""Compiled programs (API §9): a recorded tape lowered to flat integer columns and replayed.

This package sits above the tape, the ops and the sweep; nothing below imports it.
"""

from ..record import Tape
from .compile import CompiledFunction, compile  # noqa: F401
from .program import Program, compile_tape, load_program  # noqa: F401


def _tape_compile(self, inputs, outputs):
    """Freeze what this block recorded into a `tp.Program` (API §9), valid for the recorded path.

    `inputs`: the Tensors the program takes (leaves or results of earlier blocks); `outputs`:
    a Tensor or a list of them, computed in this block.

    >>> import numpy as np, tape as tp
    >>> x = tp.tensor(2.0, requires_grad=True)
    >>> with tp.record() as t:
    ...     y = x * x + 1.0
    >>> p = t.compile(inputs=[x], outputs=y)
    >>> float(p(np.array(3.0)))
    10.0
    """
    return compile_tape(self, self._store, self._first, self._end, inputs, outputs)


# The handle lives below this package; the method is bound from here, as tape/methods.py binds the
# Tensor's, so that nothing below imports the compiled layer.
Tape.compile = _tape_compile
