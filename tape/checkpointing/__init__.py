"""Checkpointing: recompute instead of store (API §5).

`checkpoint(fn, *args)` records a function as one entry whose rule re-runs it (`segment.py`);
`checkpoint_loop` and `checkpoint_while` record a whole time-stepping loop as one entry whose
rule runs a binomial schedule from the `checkpoint_schedules` package (`loop.py`), with
snapshots in memory or on disk (`storage.py`).
"""

from .loop import (  # noqa: F401
    CheckpointStats,
    checkpoint_loop,
    checkpoint_while,
    default_snapshots,
    revolve_extra_steps,
)
from .segment import checkpoint  # noqa: F401
