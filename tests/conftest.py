"""Fixtures the compiled-program tests share."""

from __future__ import annotations

import pytest

import tape as tp
from tape.compiled import kernels


@pytest.fixture
def small_programs_in_kernels(monkeypatch):
    """Programs of a few entries (every op case is one) run in the kernels too."""
    monkeypatch.setattr(kernels, "MIN_ENTRIES", 1)


@pytest.fixture
def backend():
    """`tp.set_backend`, with the backend in use restored afterwards."""
    before = tp.get_backend()
    yield tp.set_backend
    tp.set_backend(before)


@pytest.fixture(params=["numba", "numpy"])
def each_backend(request, small_programs_in_kernels):
    """The test once through the kernels (small programs too) and once through the Python replay."""
    before = tp.get_backend()
    tp.set_backend(request.param)
    yield request.param
    tp.set_backend(before)
