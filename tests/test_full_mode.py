"""The notebooks' full (GPU) mode, executed on the CPU with a budget of a few iterations per run.

nbval checks the notebooks in quick mode only, against their stored outputs. The code that runs
only in full mode (other recipes, other folders, other runs to load) would otherwise first run on
a reader's GPU, hours in. Here every chapter runs top to bottom with ``SIMAM_QUICK=0`` and
``SIMAM_SMOKE_ITERATIONS=4`` (runs of four iterations; the quick mode's sizes where nothing trains),
in a temporary working folder, and must finish without an error; chapters 5 and 6 write their runs
where ``SIMAM_RUNS`` says.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


CHAPTERS = sorted(path.stem for path in NOTEBOOKS.glob("*.ipynb"))
TRAINING = {"05_training_cifar_resnets", "06_results_and_attention_maps"}


@pytest.mark.cifar10
@pytest.mark.parametrize("name", CHAPTERS)
def test_full_mode_runs_to_the_end_with_a_tiny_budget(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMAM_QUICK", "0")
    monkeypatch.setenv("SIMAM_SMOKE_ITERATIONS", "4")
    monkeypatch.setenv("SIMAM_RUNS", str(tmp_path / "my-runs"))
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any failure
    printed = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert "quick mode: False" in printed
    if name in TRAINING:
        assert (
            tmp_path / "my-runs"
        ).is_dir()  # the runs went where SIMAM_RUNS says, not into the repository
