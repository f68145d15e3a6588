"""`tape.scipy`: SciPy's special functions and distributions on Tensors, as HIPS autograd's
`autograd.scipy` (`special`, `stats`).

SciPy is optional (the `scipy` extra): `import tape` never imports it, and importing this package
without it raises ImportError naming the extra. Importing it adds the scipy.special rows to the op
table, after which `scipy.special.erf(x)` on a Tensor also dispatches to tape.

>>> import tape as tp
>>> from tape.scipy import special, stats
>>> float(tp.grad(special.gammaln)(3.0)) == float(special.digamma(3.0))
True
"""

try:
    import scipy  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by tests/test_scipy.py
    raise ImportError(
        "tape.scipy needs SciPy, an optional dependency of tape: pip install 'wengert-tape[scipy]'"
    ) from exc

from . import special, stats  # noqa: E402, F401
