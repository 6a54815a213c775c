"""Every symbol the course's prose uses is in the notation table of chapter 1."""

from __future__ import annotations

import re
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
GLOSSARY_HEADING = "## Notation of the course"
# Indices and shape letters, which the table names in its introduction rather than in a row.
INDICES_AND_SHAPES = set("ijkncCHW")
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


def glossary() -> tuple[str, set[str]]:
    chapter_one = markdown_of(NOTEBOOKS / "01_energy_function.py")
    section = chapter_one.split(GLOSSARY_HEADING, 1)[1].split("\n## ", 1)[0]
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
    section, defined = glossary()
    missing = {}
    for script in sorted(NOTEBOOKS.glob("0*.py")):
        markdown = markdown_of(script).replace(section, "")
        for formula in formulas(markdown):
            for symbol in symbols_in(formula) - defined - INDICES_AND_SHAPES:
                missing.setdefault(symbol, set()).add(script.stem[:2])
    assert not missing, (
        f"symbols without a row in chapter 1's notation table (symbol: chapters): {missing}"
    )


def test_the_check_catches_an_undefined_symbol():
    _, defined = glossary()
    assert "Omega" in symbols_in(r"\Omega_t + \lambda") - defined
