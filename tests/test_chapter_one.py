"""Chapter 1 shows before it proves, and keeps its main path short.

* SimAM's weights on a real picture (a figure) come before the first code cell that uses SymPy.
* The main path, the chapter's Markdown outside its "Deep dive" sections, its exercises and its
  references, stays under 4,000 words (counted as `wc -w` counts them, formulas included).
* A "Deep dive" section holds a proof or an analysis the main path does not need, and the website
  folds it (book/conf.py): only chapters 1 and 2 have them, and each opens with its own heading
  cell (JupyterLab folds a section by its heading cell) and has something to fold.
* The analysis of leave-one-out against channel statistics is in one chapter only, as a deep dive;
  the others link to it.

The stored notebooks are read with nbformat; nothing is executed. Each check is a function that the
tests run on the course's notebooks and on small notebooks made here that must fail it.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CHAPTER_ONE = "01_energy_function"
DEEP_DIVE_CHAPTERS = {"01_energy_function", "02_closed_form_vs_numeric"}
MAIN_PATH_WORDS = 4000
DEEP_DIVE = "Deep dive"
OFF_THE_MAIN_PATH = ("Exercises", "References")  # besides the deep dives
# The one analysis of leave-one-out against channel statistics: its heading, and the exact minimum
# of equation (2) as a function of r_t and M, its central formula (spaces removed).
LEAVE_ONE_OUT_HEADING = "Deep dive: leave-one-out against channel statistics"
LEAVE_ONE_OUT_FORMULA = "(M-1)^2-Mr"

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
# "Deep dive" opening a line without being a Markdown heading: bold or plain text posing as one.
FAKE_HEADING = re.compile(r"^\s*(\*\*|__)?Deep dive\b")


def chapters() -> dict[str, nbformat.NotebookNode]:
    return {
        path.stem: nbformat.read(path, as_version=4) for path in sorted(NOTEBOOKS.glob("0*.ipynb"))
    }


def markdown_lines(notebook: nbformat.NotebookNode):
    """(cell index, line number in the cell, line, heading match or None) for every line of every
    Markdown cell; a line inside a fenced code block is never a heading."""
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type != "markdown":
            continue
        fenced = False
        for number, line in enumerate(cell.source.splitlines()):
            if line.lstrip().startswith("```"):
                fenced = not fenced
            yield index, number, line, None if fenced else HEADING.match(line)


def main_path_words(notebook: nbformat.NotebookNode) -> int:
    """The words of the Markdown outside deep dives, exercises and references. A section runs from
    its heading to the next heading of the same or a higher level, across cells."""
    words, skipped_level = 0, None
    for _, _, line, heading in markdown_lines(notebook):
        if heading:
            level, text = len(heading[1]), heading[2]
            if skipped_level is not None and level <= skipped_level:
                skipped_level = None
            if skipped_level is None and (text.startswith(DEEP_DIVE) or text in OFF_THE_MAIN_PATH):
                skipped_level = level
        if skipped_level is None:
            words += len(line.split())
    return words


def figure_before_sympy(notebook: nbformat.NotebookNode) -> bool:
    """Whether a code cell shows a figure (image/png) before the first code cell that names the
    module sympy (the Colab cell's comment "SymPy" is not code that uses it)."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        if re.search(r"\bsympy\b", cell.source):
            return False
        if any("image/png" in output.get("data", {}) for output in cell.get("outputs", [])):
            return True
    return False


def deep_dive_problems(notebooks: dict[str, nbformat.NotebookNode]) -> list[str]:
    """Every deep dive outside chapters 1 and 2, not a heading, not at the top of its cell, or with
    nothing under it before the next heading of its level or higher."""
    problems = []
    for name, notebook in notebooks.items():
        lines = list(markdown_lines(notebook))
        for position, (cell, number, line, heading) in enumerate(lines):
            if heading is None:
                if FAKE_HEADING.match(line):
                    problems.append(f"{name}, cell {cell}: not a heading: {line.strip()}")
                continue
            if not heading[2].startswith(DEEP_DIVE):
                continue
            if name not in DEEP_DIVE_CHAPTERS:
                problems.append(f"{name}: a deep dive outside chapters 1 and 2: {heading[2]}")
            if number != 0:
                problems.append(f"{name}, cell {cell}: does not open its cell: {heading[2]}")
            level = len(heading[1])
            rest = lines[position + 1 :]
            end = next(
                (i for i, (_, _, _, h) in enumerate(rest) if h and len(h[1]) <= level), len(rest)
            )
            end_cell = rest[end][0] if end < len(rest) else len(notebook.cells)
            prose = "".join(text for _, _, text, _ in rest[:end]).strip()
            code = any(notebook.cells[i].cell_type == "code" for i in range(cell + 1, end_cell))
            if not prose and not code:
                problems.append(f"{name}, cell {cell}: nothing under {heading[2]}")
    return problems


def chapters_with_the_analysis(notebooks: dict[str, nbformat.NotebookNode]) -> dict[str, set]:
    """For the leave-one-out analysis's heading and its central formula, the chapters that have
    it."""
    found = {"heading": set(), "formula": set()}
    for name, notebook in notebooks.items():
        for _, _, line, heading in markdown_lines(notebook):
            if heading and heading[2] == LEAVE_ONE_OUT_HEADING:
                found["heading"].add(name)
            if LEAVE_ONE_OUT_FORMULA in re.sub(r"\s", "", line):
                found["formula"].add(name)
    return found


# ---- the course's notebooks ----------------------------------------------------------------------


def test_chapter_one_main_path_is_under_4000_words():
    words = main_path_words(chapters()[CHAPTER_ONE])
    assert words < MAIN_PATH_WORDS, f"chapter 1's main path has {words} words"


def test_chapter_one_shows_a_figure_before_it_uses_sympy():
    assert figure_before_sympy(chapters()[CHAPTER_ONE])


def test_deep_dives_are_headings_of_chapters_1_and_2_that_open_a_section():
    notebooks = chapters()
    assert any(
        heading and heading[2].startswith(DEEP_DIVE)
        for _, _, _, heading in markdown_lines(notebooks[CHAPTER_ONE])
    )
    assert deep_dive_problems(notebooks) == []


def test_the_leave_one_out_analysis_is_in_chapter_one_only():
    assert chapters_with_the_analysis(chapters()) == {
        "heading": {CHAPTER_ONE},
        "formula": {CHAPTER_ONE},
    }


# ---- the checks fail where they must -------------------------------------------------------------


def test_the_word_count_leaves_out_deep_dives_exercises_and_references():
    notebook = new_notebook(
        cells=[
            new_markdown_cell("# 1. A chapter\n\none two three"),
            new_markdown_cell("### Deep dive: a proof\n\nfour five six"),
            new_markdown_cell("seven, still in the deep dive"),
            new_code_cell("x = 1"),
            new_markdown_cell("### Back on the main path\n\neight"),
            new_markdown_cell("## Exercises\n\nnine\n\n### An exercise\n\nten"),
            new_markdown_cell("## References\n\neleven"),
        ]
    )
    # "# 1. A chapter" (4) + "one two three" (3) + "### Back on the main path" (6) + "eight" (1)
    assert main_path_words(notebook) == 14
    # the same section, no longer a deep dive, counts: 5 + 3 words in its cell, 6 in the next
    notebook.cells[1].source = "### Not deep: a proof\n\nfour five six"
    assert main_path_words(notebook) == 14 + 14


def test_a_figure_after_sympy_does_not_count():
    figure = new_code_cell(
        "plt.show()", outputs=[new_output("display_data", data={"image/png": "iVBOR"})]
    )
    derivation = new_code_cell("import sympy as sp")
    colab = new_code_cell("# Colab keeps its own SymPy")
    assert figure_before_sympy(new_notebook(cells=[colab, figure, derivation]))
    assert not figure_before_sympy(new_notebook(cells=[colab, derivation, figure]))
    assert not figure_before_sympy(new_notebook(cells=[colab, new_code_cell("1 + 1"), derivation]))


def test_misplaced_deep_dives_are_found():
    def chapter(*cells):
        return new_notebook(cells=list(cells))

    fine = chapter(
        new_markdown_cell("## 2. A section"),
        new_markdown_cell("### Deep dive: a proof\n\nwhy"),
        new_code_cell("x = 1"),
        new_markdown_cell("### Deep dive: a computation"),
        new_code_cell("y = 2"),
        new_markdown_cell("### Back"),
    )
    assert deep_dive_problems({CHAPTER_ONE: fine}) == []
    problems = deep_dive_problems(
        {
            "03_building_simam": chapter(new_markdown_cell("### Deep dive: elsewhere\n\ntext")),
            CHAPTER_ONE: chapter(
                new_markdown_cell("Some prose.\n\n### Deep dive: mid-cell\n\ntext"),
                new_markdown_cell("**Deep dive: bold, not a heading**\n\ntext"),
                new_markdown_cell("### Deep dive: empty"),
                new_markdown_cell("### Next"),
            ),
        }
    )
    expected = [
        "03_building_simam: a deep dive outside chapters 1 and 2",
        f"{CHAPTER_ONE}, cell 0: does not open its cell",
        f"{CHAPTER_ONE}, cell 1: not a heading",
        f"{CHAPTER_ONE}, cell 2: nothing under",
    ]
    assert len(problems) == len(expected)
    assert all(problem.startswith(start) for problem, start in zip(problems, expected)), problems


def test_a_second_copy_of_the_analysis_is_found():
    analysis = new_markdown_cell(
        f"### {LEAVE_ONE_OUT_HEADING}\n\n$$e = \\frac{{4((M-1)^2 - M r_t)}}{{2}}$$"
    )
    link = new_markdown_cell('[chapter 1\'s deep dive "Leave-one-out against channel statistics"]')
    notebooks = {
        CHAPTER_ONE: new_notebook(cells=[analysis]),
        "02_closed_form_vs_numeric": new_notebook(cells=[link]),
    }
    assert chapters_with_the_analysis(notebooks) == {
        "heading": {CHAPTER_ONE},
        "formula": {CHAPTER_ONE},
    }
    notebooks["02_closed_form_vs_numeric"].cells.append(analysis)
    assert chapters_with_the_analysis(notebooks) == {
        "heading": {CHAPTER_ONE, "02_closed_form_vs_numeric"},
        "formula": {CHAPTER_ONE, "02_closed_form_vs_numeric"},
    }
