"""Every notebook is stored with its outputs, opens with the Colab install cell, and is paired with
a py:percent script that is exactly what jupytext writes for it (``make refresh`` keeps them so)."""

from __future__ import annotations

import ast
import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
SCRIPT_FORMAT = "py:percent"
JUPYTEXT_HEADER = "# ---\n# jupyter:\n"


def paired_script_text(ipynb: Path) -> str:
    """What ``jupytext --to py:percent -o - NOTEBOOK`` prints (and ``jupytext --sync`` writes):
    the configuration is looked up from the notebook's folder upwards, as the command line does."""
    config = load_jupytext_config(os.path.abspath(ipynb))
    notebook = jupytext.read(ipynb, config=config)
    return jupytext.writes(notebook, fmt=SCRIPT_FORMAT, config=config)


def notebook_names() -> list[str]:
    """Stems of the notebooks, and of scripts that carry a jupytext header (paired scripts)."""
    names = {path.stem for path in NOTEBOOKS.glob("*.ipynb")}
    for path in NOTEBOOKS.glob("*.py"):
        if path.read_text(encoding="utf-8").startswith(JUPYTEXT_HEADER):
            names.add(path.stem)
    return sorted(names)


def per_notebook(test):
    names = notebook_names()
    if names:
        return pytest.mark.parametrize("name", names)(test)
    none = pytest.param(
        None, marks=pytest.mark.skip(reason="no notebooks/*.ipynb in the repository yet")
    )
    return pytest.mark.parametrize("name", [none])(test)


def read_notebook(name: str) -> nbformat.NotebookNode:
    path = NOTEBOOKS / f"{name}.ipynb"
    if not path.is_file():
        pytest.fail(
            f"notebooks/{name}.py is a paired script without its notebook notebooks/{name}.ipynb"
        )
    return nbformat.read(path, as_version=4)


# ----------------------------------------------------------------------------------------------
# The Colab install cell
# ----------------------------------------------------------------------------------------------

_MAGIC = re.compile(r"^(\s*)[%!](.*)$")
_INSTALL = re.compile(r"\binstall\b")


def _as_python(source: str) -> str:
    """IPython magics and shell escapes (``%pip install x``, ``!pip ...``) as plain calls."""
    lines = []
    for line in source.splitlines():
        match = _MAGIC.match(line)
        lines.append(f"{match[1]}_magic({match[2]!r})" if match else line)
    return "\n".join(lines)


def _is_colab_test(node: ast.expr) -> bool:
    """``"google.colab" in sys.modules``."""
    return (
        isinstance(node, ast.Compare)
        and isinstance(node.left, ast.Constant)
        and node.left.value == "google.colab"
        and len(node.ops) == 1
        and isinstance(node.ops[0], ast.In)
        and ast.unparse(node.comparators[0]) == "sys.modules"
    )


def _installs(node: ast.AST) -> bool:
    """A call with the word ``install`` in one of its string constants (pip, a magic, a shell)."""
    return isinstance(node, ast.Call) and any(
        isinstance(const, ast.Constant)
        and isinstance(const.value, str)
        and _INSTALL.search(const.value)
        for const in ast.walk(node)
    )


def colab_install_problem(source: str) -> str | None:
    """None when ``source`` installs something, and only under ``if "google.colab" in sys.modules``;
    otherwise what is wrong with it."""
    try:
        tree = ast.parse(_as_python(source))
    except SyntaxError as error:
        return f"the cell does not parse as Python: {error}"
    # names bound to the test, for ``IN_COLAB = "google.colab" in sys.modules; if IN_COLAB: ...``
    flags = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and _is_colab_test(node.value)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    guards = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.If)
        and (
            _is_colab_test(node.test) or (isinstance(node.test, ast.Name) and node.test.id in flags)
        )
    ]
    if not guards:
        return 'no `if "google.colab" in sys.modules:` guard'
    imports_sys = any(
        isinstance(node, ast.Import) and any(alias.name == "sys" for alias in node.names)
        for node in ast.walk(tree)
    )
    if not imports_sys:
        return "the cell uses sys.modules without `import sys`"
    guarded = {
        id(inner) for guard in guards for statement in guard.body for inner in ast.walk(statement)
    }
    installs = [node for node in ast.walk(tree) if _installs(node)]
    outside = [node for node in installs if id(node) not in guarded]
    if outside:
        return (
            f"installs outside the Colab guard, line {outside[0].lineno}: {ast.unparse(outside[0])}"
        )
    if not installs:
        return "nothing is installed under the Colab guard"
    return None


GOOD_CELLS = [
    'import sys\nif "google.colab" in sys.modules:\n    %pip install -q simam',
    "# install first\nimport sys\n\nif 'google.colab' in sys.modules:\n    import subprocess\n\n"
    "    subprocess.run(\n"
    '        [sys.executable, "-m", "pip", "install", "--quiet", "simam[course]"],\n'
    "        check=True,\n    )",
    'import sys\nIN_COLAB = "google.colab" in sys.modules\nif IN_COLAB:\n    !pip install simam\n'
    "print(IN_COLAB)",
]
BAD_CELLS = [
    ("import sys\n%pip install simam", "no `if"),
    (
        'import sys\nif "google.colab" in sys.modules:\n    pass\n%pip install simam',
        "installs outside",
    ),
    ('import sys\nif "google.colab" not in sys.modules:\n    %pip install simam', "no `if"),
    (
        'import sys\nif "google.colab" in sys.modules:\n    print("on Colab")',
        "nothing is installed",
    ),
    ('if "google.colab" in sys.modules:\n    %pip install simam', "without `import sys`"),
    (
        'import sys\nif "google.colab" in sys.modules:\n    pass\nelse:\n    %pip install x',
        "installs outside",
    ),
    ("import torch", "no `if"),
]


@pytest.mark.parametrize("source", GOOD_CELLS)
def test_colab_cell_checker_accepts_guarded_installs(source):
    assert colab_install_problem(source) is None


@pytest.mark.parametrize(("source", "problem"), BAD_CELLS)
def test_colab_cell_checker_rejects(source, problem):
    found = colab_install_problem(source)
    assert found is not None and problem in found


# ----------------------------------------------------------------------------------------------
# The comparison is the command line's
# ----------------------------------------------------------------------------------------------


def test_paired_script_text_matches_the_jupytext_command_line(tmp_path):
    """On a throwaway notebook under the project's jupytext.toml, the text this module expects is
    byte for byte what ``jupytext --to py:percent -o -`` prints. (``jupytext --sync`` writes the
    same text; it differs from ``-o -`` only for a notebook whose own metadata lists the paired
    formats, which ``-o -`` drops from the header and ``--sync`` and this module keep.)"""
    (tmp_path / "jupytext.toml").write_text((ROOT / "jupytext.toml").read_text())
    folder = tmp_path / "notebooks"
    folder.mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    notebook.metadata["language_info"] = {"name": "python", "version": "3.11.0"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell(
            "# A title\n\nText with $e_t^*$ and a [link](https://example.org)."
        ),
        nbformat.v4.new_code_cell(GOOD_CELLS[0]),
        nbformat.v4.new_code_cell("x = 1 + 1\nx\n\n\ndef f():\n    return x"),
        nbformat.v4.new_raw_cell("raw text"),
    ]
    result = nbformat.v4.new_output("execute_result", {"text/plain": "2"}, execution_count=1)
    notebook.cells[2].outputs = [result]
    path = folder / "demo.ipynb"
    nbformat.write(notebook, path)

    printed = subprocess.run(
        [sys.executable, "-m", "jupytext", "--to", SCRIPT_FORMAT, "-o", "-", str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout
    expected = paired_script_text(path)
    assert expected == printed
    assert expected.startswith(JUPYTEXT_HEADER) and "%pip install" in expected

    # and a pair that drifted apart is noticed
    notebook.cells[2].source = "x = 1 + 2"
    nbformat.write(notebook, path)
    assert paired_script_text(path) != expected


def test_the_project_pairs_notebooks_with_percent_scripts():
    config = load_jupytext_config(str(NOTEBOOKS / "any.ipynb"))
    assert config is not None, "jupytext.toml is not found from notebooks/"
    formats = config.formats if isinstance(config.formats, str) else ",".join(config.formats)
    assert formats.replace(" ", "") == "ipynb,py:percent"


# ----------------------------------------------------------------------------------------------
# The notebooks themselves
# ----------------------------------------------------------------------------------------------


@per_notebook
def test_notebook_and_script_are_in_sync(name):
    ipynb = NOTEBOOKS / f"{name}.ipynb"
    script = NOTEBOOKS / f"{name}.py"
    if not ipynb.is_file():
        pytest.fail(
            f"notebooks/{name}.py is a paired script without its notebook notebooks/{name}.ipynb"
        )
    if not script.is_file():
        pytest.fail(
            f"notebooks/{name}.ipynb has no paired script notebooks/{name}.py: run `make refresh`"
        )
    expected = paired_script_text(ipynb)
    actual = script.read_text(encoding="utf-8")
    if actual != expected:
        diff = difflib.unified_diff(
            actual.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"notebooks/{name}.py",
            tofile=f"jupytext --to {SCRIPT_FORMAT} notebooks/{name}.ipynb",
        )
        shown = "".join(list(diff)[:80])
        pytest.fail(
            f"notebooks/{name}.py is out of sync with its notebook (run `make refresh`):\n{shown}"
        )


@per_notebook
def test_notebook_is_valid_and_stored_with_outputs(name):
    notebook = read_notebook(name)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"notebooks/{name}.ipynb has no code cell"
    executed = [cell for cell in code if cell.get("outputs")]
    assert executed, f"notebooks/{name}.ipynb is stored without outputs: run `make refresh`"
    errors = [
        output.get("ename")
        for cell in code
        for output in cell.get("outputs", [])
        if output.get("output_type") == "error"
    ]
    assert not errors, f"notebooks/{name}.ipynb is stored with errors: {errors}"


@per_notebook
def test_first_code_cell_installs_only_on_colab(name):
    notebook = read_notebook(name)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code, f"notebooks/{name}.ipynb has no code cell"
    problem = colab_install_problem(code[0].source)
    assert problem is None, f"notebooks/{name}.ipynb, first code cell: {problem}\n{code[0].source}"


@pytest.mark.parametrize("name", notebook_names())
def test_no_notebook_keeps_widget_state(name):
    assert "widgets" not in nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4).metadata, (
        f"run python scripts/drop_widget_state.py notebooks/{name}.ipynb"
    )
