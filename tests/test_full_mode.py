"""The notebooks' full (GPU) mode, executed on the CPU with a budget of a few iterations per run.

nbval checks the notebooks in quick mode only, against their stored outputs. The code that runs
only in full mode (other recipes, other folders, other runs to load) would otherwise first run on
a reader's GPU, hours in. Here chapters 5 and 6 run top to bottom with ``SIMAM_QUICK=0`` and
``SIMAM_SMOKE_ITERATIONS=4``, in a temporary working folder, and must finish without an error.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.cifar10
@pytest.mark.parametrize("name", ["05_training_cifar_resnets", "06_results_and_attention_maps"])
def test_full_mode_runs_to_the_end_with_a_tiny_budget(name, tmp_path, monkeypatch):
    monkeypatch.setenv("SIMAM_QUICK", "0")
    monkeypatch.setenv("SIMAM_SMOKE_ITERATIONS", "4")
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()  # raises CellExecutionError, with the cell and its traceback, on any failure
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    assert "quick mode: False" in printed
    assert (tmp_path / "runs").is_dir()  # the full mode's runs went into the working folder, not the repository
