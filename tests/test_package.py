"""The package as an import and as a wheel: it names the oldest torch it works with, and says so on an
older one; importing it leaves the grid runner out; the wheel carries every folder and the course's results."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from torch.torch_version import TorchVersion

import simam

PRETEND = "import torch; torch.__version__ = torch.torch_version.TorchVersion({version!r}); import simam; print('imported')"


@pytest.mark.parametrize("version, imports", [("2.2.2", False), ("1.13.1+cu117", False), ("2.3.0", True), ("2.10.1", True)])
def test_import_says_clearly_when_torch_is_too_old(version: str, imports: bool) -> None:
    result = subprocess.run([sys.executable, "-c", PRETEND.format(version=version)], capture_output=True, text=True, timeout=300)
    if imports:
        assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-2000:]
    else:
        assert result.returncode != 0
        assert f"simam needs torch {simam.MINIMUM_TORCH} or newer, but this is torch {version}" in result.stderr


def test_the_minimum_compares_as_a_version() -> None:
    assert TorchVersion("2.10.0") >= simam.MINIMUM_TORCH and not TorchVersion("2.2.9") >= simam.MINIMUM_TORCH


def test_import_simam_leaves_the_grid_runner_out() -> None:
    check = "import simam, sys; print(sorted(m for m in sys.modules if m.startswith('simam.experiments')))"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "[]", result.stdout + result.stderr[-2000:]


def test_the_wheel_lists_every_package_folder_and_the_course_results() -> None:
    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    setuptools = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {".".join(path.parent.relative_to(root).parts) for path in (root / "simam").rglob("__init__.py")}
    listed = set(setuptools["packages"])
    assert folders == {name for name in listed if not name.startswith("simam._results")}
    assert setuptools["package-dir"] == {"simam._results": "results"}
    results = root / "results"
    for pattern in setuptools["package-data"]["simam._results"]:
        assert list(results.glob(pattern)), f"{pattern} matches no committed file"
