"""`tp.linalg`: the `numpy.linalg` functions tape differentiates (generated from the op table:
every public function registered under a "linalg." name)."""

from . import composite  # noqa: F401  (it registers linalg.norm)
from .ops.registry import FUNCTIONS

globals().update({name.split(".", 1)[1]: fn for name, fn in FUNCTIONS.items() if name.startswith("linalg.")})
