"""The package as an import and as a published project: it names the oldest torch it works with, and
says so on an older one; importing it leaves the grid runner out; the wheel carries every folder and
the course's results; the licence, citation, scripts and extras agree with pyproject.toml."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from torch.torch_version import TorchVersion

import simam

REPO = Path(__file__).resolve().parents[1]

PRETEND = (
    "import torch; torch.__version__ = torch.torch_version.TorchVersion({version!r}); "
    "import simam; print('imported')"
)


@pytest.mark.parametrize(
    "version, imports",
    [("2.2.2", False), ("1.13.1+cu117", False), ("2.3.0", True), ("2.10.1", True)],
)
def test_import_says_clearly_when_torch_is_too_old(version: str, imports: bool) -> None:
    result = subprocess.run(
        [sys.executable, "-c", PRETEND.format(version=version)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if imports:
        assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-2000:]
    else:
        assert result.returncode != 0
        assert (
            f"simam needs torch {simam.MINIMUM_TORCH} or newer, but this is torch {version}"
            in result.stderr
        )


def test_the_minimum_compares_as_a_version() -> None:
    assert (
        TorchVersion("2.10.0") >= simam.MINIMUM_TORCH
        and not TorchVersion("2.2.9") >= simam.MINIMUM_TORCH
    )


def test_import_simam_leaves_the_grid_runner_out() -> None:
    check = (
        "import simam, sys; "
        "print(sorted(m for m in sys.modules if m.startswith('simam.experiments')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and result.stdout.strip() == "[]", (
        result.stdout + result.stderr[-2000:]
    )


def test_the_wheel_lists_every_package_folder_and_the_course_results() -> None:
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {
        ".".join(path.parent.relative_to(REPO).parts)
        for path in (REPO / "simam").rglob("__init__.py")
    }
    listed = set(setuptools["packages"])
    assert folders == {name for name in listed if not name.startswith("simam._results")}
    assert setuptools["package-dir"] == {"simam._results": "results"}
    results = REPO / "results"
    for pattern in setuptools["package-data"]["simam._results"]:
        assert list(results.glob(pattern)), f"{pattern} matches no committed file"


def test_what_a_published_project_carries_agrees_with_pyproject() -> None:
    """The licence file, the citation's version and licence, the console scripts and the extras."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    yaml = pytest.importorskip("yaml")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith(
        "MIT License\n"
    )
    citation = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert (str(citation["version"]), citation["license"]) == (
        project["version"],
        project["license"],
    )
    assert citation["references"][0]["title"].startswith(
        "SimAM: A Simple, Parameter-Free Attention Module"
    )
    for command, target in project["scripts"].items():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), command
    assert set(project["scripts"]) == {"simam-train", "simam-experiments", "simam-bench"}
    assert project["optional-dependencies"]["plots"] == ["matplotlib"]
    assert "simam[plots]" in project["optional-dependencies"]["course"]
