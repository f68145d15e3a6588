"""`tp.linalg`: the `numpy.linalg` functions tape differentiates (generated from the op table:
every public function registered under a "linalg." name)."""

from .composite import FUNCTIONS  # noqa: F401  (composite registers linalg.norm)

globals().update({name.split(".", 1)[1]: fn for name, fn in FUNCTIONS.items() if name.startswith("linalg.")})
