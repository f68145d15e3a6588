"""Compiled programs (API §9): a recorded tape lowered to flat integer columns and replayed.

This package sits above the tape, the ops and the sweep; nothing below imports it.
"""

from .compile import CompiledFunction, compile  # noqa: F401
from .program import Program, load_program  # noqa: F401
