"""`tp.linalg`: solve, inv, det (differentiable), as in `numpy.linalg`."""

from .composite import norm  # noqa: F401
from .ops.linalg import det, inv, solve  # noqa: F401
