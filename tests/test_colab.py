"""The course on Colab: every badge and every install cell names the one repository of
pyproject.toml's [project.urls], the install cell leaves Colab's own packages alone, and every
notebook asks Colab for a GPU runtime."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

spec = importlib.util.spec_from_file_location(
    "sync_repository", ROOT / "scripts" / "sync_repository.py"
)
sync_repository = importlib.util.module_from_spec(spec)
pytest.importorskip("tomllib")  # Python 3.11 and newer
spec.loader.exec_module(sync_repository)
URL = sync_repository.repository()
SITE = sync_repository.website()


def install_cell(notebook: nbformat.NotebookNode) -> str:
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_the_install_cell_installs_the_package_alone_from_the_repository(path):
    source = install_cell(nbformat.read(path, as_version=4))
    assert f'REPOSITORY = "{URL}"' in source
    # no extras: JupyterLab and the like stay off Colab
    assert 'f"simam @ git+{REPOSITORY}"' in source
    assert not re.search(r"\btorch\b|jupyter", source.split("REPOSITORY =")[1])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_colab_opens_the_notebook_on_a_gpu(path):
    metadata = nbformat.read(path, as_version=4).metadata
    assert metadata.get("accelerator") == "GPU" and metadata.get("colab", {}).get("gpuType")


def test_the_readme_has_a_badge_into_the_repository_for_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert f"https://{sync_repository.badge_path(URL)}notebooks/{path.name}" in readme, (
            path.name
        )


def test_every_file_agrees_with_pyproject():
    stale = [
        path.name
        for path in sync_repository.files()
        if sync_repository.synced(path.read_text(), URL, SITE) != path.read_text()
    ]
    assert not stale, f"run python scripts/sync_repository.py: {stale}"


def test_the_sync_rewrites_badges_and_install_cells_for_a_fork():
    text = (
        "[badge](https://colab.research.google.com/github/a/b/blob/main/notebooks/x.ipynb)\n"
        '    REPOSITORY = "https://github.com/a/b"  # comment\n'
        '    "    REPOSITORY = \\"https://github.com/a/b\\"\\n",\n'
        "the website: <https://a.github.io/b/>\n"
        'repository-code: "https://github.com/a/b"\nurl: "https://a.github.io/b/"\n'
        'pip install "simam @ git+https://github.com/a/b"\n'
    )
    forked = sync_repository.synced(
        text, "https://github.com/me/simam-fork", "https://me.github.io/simam-fork/"
    )
    assert forked.count("me/simam-fork") == 5 and forked.count("me.github.io/simam-fork/") == 2
    assert "a/b" not in forked and "a.github.io" not in forked
