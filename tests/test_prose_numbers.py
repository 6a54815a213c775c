"""Every figure the chapters' prose states comes from a cell: a number of three or more significant
digits in a Markdown cell must be printed by one of the notebook's stored outputs, unless it is a
year, a reference's volume or pages (the References section), a formula's own arithmetic (inside
$...$) or a constant that the allow-list below names with its source."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))

# Constants the prose cites rather than computes, each with where it comes from.
CITED = {
    "164": "the paper's CIFAR recipe: 164 epochs (Yang et al. 2021, section 4.1; He et al. 2016)",
    "123": "the reference code's second cut of the learning rate, at epoch 123 (82 and 123)",
    "12.7": "Student's t, 0.975 quantile with one degree of freedom: 12.706 (any t table)",
    "65504": "float16's largest finite number (IEEE 754 binary16)",
    "1080": "the GTX 1080 Ti of the paper's Table 3 (a name, not a measurement)",
}

# A number: 1,234 or 12.5 or 123; not part of a word, an identifier, a version or ResNet-164.
NUMBER = re.compile(r"(?<![\w.\-/])(\d{1,3}(?:,\d{3})+|\d+\.\d+|\d{3,})(?![\w.]\d|\w)")
# What is not prose: formulas, inline code, code blocks, link targets.
NOT_PROSE = re.compile(r"\$\$.*?\$\$|\$[^$]*\$|```.*?```|`[^`]*`|\]\([^)]*\)|<[^>]*>", re.S)
YEAR = re.compile(r"(19|20)\d\d")


def significant_digits(number: str) -> int:
    digits = number.replace(",", "")
    if "." in digits:
        return len(digits.replace(".", "").lstrip("0"))
    return len(digits.lstrip("0").rstrip("0"))


def printed_text(notebook: nbformat.NotebookNode) -> str:
    """Everything the notebook's stored outputs show, as text."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts += [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
    return "\n".join(parts)


def prose_numbers(notebook: nbformat.NotebookNode) -> list[str]:
    """The numbers of three or more significant digits in the Markdown cells' prose, outside the
    References section."""
    numbers = []
    for cell in notebook.cells:
        if cell.cell_type != "markdown" or re.match(r"#+ References", cell.source):
            continue
        prose = NOT_PROSE.sub(" ", cell.source)
        numbers += [n for n in NUMBER.findall(prose) if significant_digits(n) >= 3]
    return numbers


def unprinted(notebook: nbformat.NotebookNode) -> list[str]:
    printed = printed_text(notebook)
    plain = printed.replace(",", "")
    return sorted(
        {
            number
            for number in prose_numbers(notebook)
            if number not in printed
            and number.replace(",", "") not in plain
            and number not in CITED
            and not YEAR.fullmatch(number)
        }
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_every_figure_in_the_prose_is_printed_by_a_cell_or_cited(path):
    assert unprinted(nbformat.read(path, as_version=4)) == []


def test_the_check_finds_a_figure_no_cell_prints():
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_markdown_cell(
            "SimAM reaches 92.51% here, $2^{10} = 1024$, in `run_123`, as He et al. (2016) and "
            "the paper's 164 epochs; ResNet-110 and 1e-4 are names and small numbers."
        ),
        nbformat.v4.new_code_cell(
            outputs=[nbformat.v4.new_output("stream", text="final accuracy 92.5%\n")]
        ),
        nbformat.v4.new_markdown_cell("## References\n\n* Someone (2020). *Venue* 353, 1257–1270."),
    ]
    assert unprinted(notebook) == ["92.51"]
    notebook.cells[1].outputs[0].text = "final accuracy 92.51%\n"
    assert unprinted(notebook) == []
