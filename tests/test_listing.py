"""The README's list of supported operations is the one generated from the op table."""

import pathlib

import numpy as np

import tape as tp
from tape import listing
from tape.ops.registry import FUNCTIONS

README = pathlib.Path(__file__).resolve().parent.parent / "README.md"


def test_the_readme_lists_what_the_op_table_registers():
    block = listing.readme_block(README.read_text())
    assert block == listing.markdown(), "README.md's list is stale: run `python -m tape.listing --write`"


def test_every_public_function_is_listed_once():
    groups = listing.groups()
    stats = groups.pop("`tape.scipy.stats`", [])
    count = sum(len(names) for names in groups.values()) + sum(len(s.split("(")[1].split()) for s in stats)
    assert count == len(FUNCTIONS)
    for title, names in groups.items():
        assert len(names) == len(set(names)), title


def test_a_new_function_appears_in_the_list():
    def brand_new(x):
        """np.brand_new; the result is a Tensor without history."""
        return x

    FUNCTIONS["brand_new"] = brand_new
    try:
        assert "`brand_new`" in listing.markdown()
        assert "brand_new" in listing.groups()["results without history"]
    finally:
        del FUNCTIONS["brand_new"]


def test_the_counts_are_those_of_the_tables():
    n_numpy, n_scipy = listing.dispatched()
    assert n_numpy >= 98 and n_scipy >= 30  # the seven linalg decompositions joined the 91 of before
    assert np.linalg.svd in tp.ops.NUMPY and f"In all {len(FUNCTIONS)} public functions" in listing.markdown()
