"""Recording contexts: `record()`, `no_grad()`, `detect_anomaly()`.

Whether operations are recorded is per thread (and per asyncio task): the state lives in a
`contextvars.ContextVar`, so two threads never write into each other's tape. Each thread has one
store of rows (`tape.Store`); a `record()` block is a window onto the rows appended while it was
active, which is why a result of one block can feed the next, and why blocks nest: an inner block's
rows belong to the outer block too.
"""

from __future__ import annotations

import contextvars


class _State:
    __slots__ = ("recording", "anomaly", "store", "active", "dual_depth", "dual_levels")

    def __init__(self, store):
        self.recording = False
        self.anomaly = False
        self.dual_depth = 0  # forward-mode (jvp) calls in progress
        self.dual_levels = 0  # levels handed out so far, so nested jvps never confuse their tangents
        self.store = store
        self.active = None  # innermost Tape handle, for tp.checkpoint and friends


_STATE: contextvars.ContextVar[_State] = contextvars.ContextVar("tape_state")


def _new_state() -> _State:
    from .tape import Store

    state = _State(Store())
    _STATE.set(state)
    return state


def state() -> _State:
    """This thread's recording state (created on first use)."""
    return _STATE.get(None) or _new_state()


def is_recording() -> bool:
    """True inside a `record()` block (and not inside `no_grad()`)."""
    return state().recording


class record:
    """Record every operation run inside the block on this thread's tape.

    >>> import tape as tp
    >>> x = tp.tensor(3.0, requires_grad=True)
    >>> with tp.record() as t:
    ...     y = x * x
    >>> y.backward(); x.grad
    tensor(6.)
    >>> len(t)
    1

    With ``persistent=True`` the tape can answer `t.gradient` more than once.
    """

    def __init__(self, persistent: bool = False):
        self.persistent = persistent

    def __enter__(self):
        from .tape import Tape

        st = state()
        self._saved = (st.recording, st.active)
        self.tape = Tape(st.store, self.persistent)
        st.recording = True
        st.active = self.tape
        return self.tape

    def __exit__(self, *exc):
        st = state()
        st.recording, st.active = self._saved
        self.tape._close()
        return False


class no_grad:
    """Pause recording inside a `record()` block (results computed here have no history).

    >>> import tape as tp
    >>> x = tp.tensor(2.0, requires_grad=True)
    >>> with tp.record():
    ...     with tp.no_grad():
    ...         y = x * 3
    >>> y.requires_grad
    False
    """

    def __enter__(self):
        st = state()
        self._saved = st.recording
        st.recording = False
        return self

    def __exit__(self, *exc):
        state().recording = self._saved
        return False


class enable_grad:
    """Turn recording back on inside `no_grad()` (used by the differentiable sweep)."""

    def __enter__(self):
        st = state()
        self._saved = st.recording
        st.recording = True
        return self

    def __exit__(self, *exc):
        state().recording = self._saved
        return False


class detect_anomaly:
    """Raise `FloatingPointError` at the first op, forward or backward, that makes NaN or Inf.

    The message names the op, the entry's index on the tape and the source line that recorded it.

    >>> import tape as tp
    >>> x = tp.tensor(-1.0, requires_grad=True)
    >>> with tp.detect_anomaly(), tp.record():
    ...     y = tp.sqrt(x)  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    FloatingPointError: sqrt (forward) produced NaN ...
    """

    def __enter__(self):
        st = state()
        self._saved = st.anomaly
        st.anomaly = True
        return self

    def __exit__(self, *exc):
        state().anomaly = self._saved
        return False
