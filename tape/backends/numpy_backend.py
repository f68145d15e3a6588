"""The NumPy backend: the executable specification.

Its kernels *are* the op table's forward functions and rules (tape/ops/*.py), written with NumPy
calls, so it adds no kernels of its own. Every other backend's kernels are tested against them.
"""

VJP_KERNELS: dict = {}
