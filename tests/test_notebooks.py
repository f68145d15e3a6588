"""The notebooks in notebooks/: each one runs top to bottom, and the committed files are the generator's.

Every notebook checks its own numbers (against the references' printed values, closed forms or
finite differences) in `assert` cells, so executing it is the test: a failing cell fails here with
the cell's traceback. The notebooks are committed without outputs, and `notebooks/build.py`
writes them; a notebook edited by hand (or a build.py change not rebuilt) fails the first test.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"


def _load_build():
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOK_DIR / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BUILD = _load_build()
NAMES = list(BUILD.NOTEBOOKS)


def test_committed_notebooks_are_what_build_py_writes():
    committed = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
    assert committed == sorted(NAMES), "run `python notebooks/build.py` and commit the result"
    for name in NAMES:
        on_disk = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
        built = BUILD.build(name)
        assert [(c.cell_type, c.source) for c in on_disk.cells] == [(c.cell_type, c.source) for c in built.cells], (
            f"{name}.ipynb differs from notebooks/build.py: run `python notebooks/build.py`"
        )
        # Committed stripped (see the README): no outputs, no execution counts.
        for cell in on_disk.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{name}.ipynb has outputs"


def _images(nb) -> int:
    return sum(
        1
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") in ("display_data", "execute_result") and "image/png" in out.get("data", {})
    )


@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs(name, monkeypatch):
    # A headless backend for anything that bypasses the notebooks' `%matplotlib inline`.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK_DIR / f"{name}.ipynb", as_version=4)
    # One more cell, to check that the kernel ("python3") is this interpreter, not another Python's.
    nb.cells.append(new_code_cell("import sys, tape\nprint(sys.prefix)\nprint(tape.__file__)"))
    client = NotebookClient(
        nb,
        kernel_name="python3",
        timeout=None,  # no time limit: the suite sets none, and a busy shared machine must not fail it
        resources={"metadata": {"path": str(NOTEBOOK_DIR)}},  # relative paths as in Jupyter
    )
    client.execute()

    # The kernel may deliver the two lines as one stream output or as two.
    printed = "".join(out.get("text", "") for out in nb.cells[-1].outputs if out.get("output_type") == "stream")
    prefix, tape_file = printed.splitlines()
    assert Path(prefix).resolve() == Path(sys.prefix).resolve()
    import tape

    assert Path(tape_file).resolve() == Path(tape.__file__).resolve()
    assert _images(nb) >= BUILD.FIGURES[name], f"{name} drew {_images(nb)} figures, expected {BUILD.FIGURES[name]}"
