"""The op table (`registry`) and the primitives, one module per family."""

from ..forward import derive_jvps  # noqa: E402
from . import elementwise, linalg, reduce, shape  # noqa: F401  (importing fills the table)
from .registry import OPS, GroupOp, Op, OpDef, apply, defop  # noqa: F401

derive_jvps(OPS)
