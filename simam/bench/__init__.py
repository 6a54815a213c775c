"""Benchmarks that print ratios measured side by side in one run: ``python -m simam.bench NAME``.

Each benchmark is a module ``simam.bench.NAME`` with a ``main(argv)`` function.
"""

import pkgutil
import re


def summary(doc: str) -> str:
    """A benchmark module's docstring's first paragraph on one line, as plain text, without the
    command it names (``--help`` shows that): the description its ``--help`` prints."""
    first = " ".join(doc.split("\n\n")[0].split()).split("``: ", 1)[-1]
    plain = re.sub(r"(:\w+:)?`+~?([^`]+?)`+", r"\2", first)  # Sphinx roles and literals
    return plain[:1].upper() + plain[1:]


def names() -> list[str]:
    """The benchmarks, by the name ``python -m simam.bench NAME`` runs them by."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
