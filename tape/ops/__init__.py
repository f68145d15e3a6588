"""The op table (`registry`) and the primitives, one module per family.

Importing the families fills the table. The public functions generated from the rows are
attributes of this package (``from tape.ops import exp, matmul``): that is how the layers above
(composites, methods, the functional transforms) call them.
"""

from . import elementwise, linalg, reduce, shape  # noqa: F401  (importing fills the table)
from .registry import FUNCTIONS, METHODS, NUMPY, OPS, GroupOp, Op, OpDef, Sample, apply, defop, export  # noqa: F401

globals().update({name: fn for name, fn in FUNCTIONS.items() if "." not in name})
