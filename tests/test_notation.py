"""Every symbol the course's prose uses is in the notation table, notebooks/notation.md, and every
chapter links to that page."""

from __future__ import annotations

import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
NOTATION = NOTEBOOKS / "notation.md"
NOTATION_LINK = "](notation.md)"
# Indices and shape letters, which the table names in its introduction rather than in a row.
INDICES_AND_SHAPES = set("ijkcCHW")
# Commands whose argument is words or a set, not a symbol, and commands that are operators or
# layout.
WORD_ARGUMENTS = r"\\(?:text|mathrm|operatorname|mathbb|label|tag)\s*\{[^{}]*\}"
NOT_SYMBOLS = {
    "frac",
    "tfrac",
    "dfrac",
    "sqrt",
    "sum",
    "prod",
    "max",
    "min",
    "log",
    "exp",
    "det",
    "le",
    "ge",
    "leq",
    "geq",
    "ne",
    "neq",
    "approx",
    "top",
    "in",
    "times",
    "cdot",
    "cdots",
    "dots",
    "ldots",
    "partial",
    "nabla",
    "infty",
    "to",
    "pm",
    "mid",
    "sim",
    "propto",
    "equiv",
    "odot",
    "ll",
    "gg",
    "left",
    "right",
    "bigl",
    "bigr",
    "Bigl",
    "Bigr",
    "big",
    "Big",
    "begin",
    "end",
    "pmatrix",
    "qquad",
    "quad",
    "hat",
    "tilde",
    "bar",
    "boldsymbol",
    "mathbf",
    "mathcal",
    "langle",
    "rangle",
    "lfloor",
    "rfloor",
    "lceil",
    "rceil",
    "lvert",
    "rvert",
    "lVert",
    "rVert",
    "displaystyle",
    "underbrace",
    "overbrace",
    "limits",
    "lim",
    "sup",
    "inf",
    "mathrm",
    "text",
    "operatorname",
    "mathbb",
    "cup",
    "cap",
    "setminus",
    "forall",
    "exists",
    "cdotp",
    "ell",
    "overline",
}


def markdown_of(script: Path) -> str:
    """The markdown cells of a py:percent notebook, without the comment marks."""
    lines, in_markdown = [], False
    for line in script.read_text().splitlines():
        if line.startswith("# %%"):
            in_markdown = "[markdown]" in line
        elif in_markdown and line.startswith("#"):
            lines.append(line[2:])
    return "\n".join(lines)


def symbols_in(math: str) -> set[str]:
    """Latin letters standing alone and Greek letters (``\\ell`` included) in one formula."""
    math = re.sub(WORD_ARGUMENTS, " ", math)
    commands = set(re.findall(r"\\([A-Za-z]+)", math))
    letters = set(
        re.findall(r"(?<![A-Za-z\\])([A-Za-z])(?![A-Za-z])", re.sub(r"\\[A-Za-z]+", " ", math))
    )
    return letters | {name for name in commands if name not in NOT_SYMBOLS} | ({"ell"} & commands)


def formulas(markdown: str) -> list[str]:
    """The formulas of some markdown; a dollar sign inside a code span (`$SIMAM_RUNS`) is not
    maths."""
    markdown = re.sub(r"`[^`\n]*`", " ", markdown)
    return [a or b for a, b in re.findall(r"\$\$(.*?)\$\$|\$([^$]+?)\$", markdown, flags=re.S)]


def chapters() -> list[Path]:
    return sorted(NOTEBOOKS.glob("0*.py"))


def glossary() -> tuple[str, set[str]]:
    """The notation page's text, and the symbols its rows define (those of its first column)."""
    section = NOTATION.read_text(encoding="utf-8")
    rows = [line for line in section.splitlines() if line.startswith("| $")]
    defined = set().union(*(symbols_in(f) for row in rows for f in formulas(row.split("|")[1])))
    return section, defined


def test_the_glossary_has_a_row_per_symbol_group():
    section, defined = glossary()
    assert section.count("\n| $") >= 30
    assert {
        "lambda",
        "mu",
        "sigma",
        "S",
        "s",
        "v",
        "d",
        "z",
        "a",
        "M",
        "e",
        "Q",
        "kappa",
    } <= defined


def test_every_symbol_of_the_prose_is_in_the_glossary():
    _, defined = glossary()
    missing = {}
    for script in chapters():
        for formula in formulas(markdown_of(script)):
            for symbol in symbols_in(formula) - defined - INDICES_AND_SHAPES:
                missing.setdefault(symbol, set()).add(script.stem[:2])
    assert not missing, (
        f"symbols without a row in notebooks/notation.md (symbol: chapters): {missing}"
    )


def test_the_check_catches_an_undefined_symbol():
    _, defined = glossary()
    assert "Omega" in symbols_in(r"\Omega_t + \lambda") - defined


def test_every_chapter_links_to_the_notation_page():
    assert chapters()
    unlinked = [script.stem for script in chapters() if NOTATION_LINK not in markdown_of(script)]
    assert not unlinked, f"chapters without a link to notation.md: {unlinked}"


def test_the_table_lives_only_on_the_notation_page():
    """No chapter keeps a copy of the table (a second copy would drift from the first)."""
    copies = [
        script.stem
        for script in chapters()
        if any(line.startswith("| symbol |") for line in markdown_of(script).splitlines())
    ]
    assert not copies, f"chapters with a notation table of their own: {copies}"
