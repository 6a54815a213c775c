"""Point every Colab badge, notebook install cell and website link at the addresses in
pyproject.toml.

The repository's address is written once, as ``Repository`` under ``[project.urls]``, and the
website's as ``Documentation``. A fork edits those lines and runs
``python scripts/sync_repository.py``: the README's badges and website links, each notebook's badge
link and install cell (both files of each jupytext pair) and CITATION.cff's addresses then name the
fork.
``tests/test_colab.py`` fails while any of them disagrees.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
BADGE = re.compile(r"colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/[\w.-]+/")
# GitHub Pages addresses, as the README links the website.
WEBSITE = re.compile(r"https://[\w-]+\.github\.io/[\w.-]+/")
# The install cell's address (in an .ipynb the quote before it is escaped), the README's pip
# install line and CITATION.cff's.
INSTALL = re.compile(
    r'(REPOSITORY = \\?"|repository-code: "|simam @ git\+)https://github\.com/[\w.-]+/[\w.-]+'
)


def urls() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]


def repository() -> str:
    """The repository's address, from pyproject.toml."""
    url = urls()["Repository"]
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
        raise SystemExit(
            f"pyproject.toml: Repository = {url!r} is not https://github.com/OWNER/NAME"
        )
    return url


def website() -> str:
    """The website's address, from pyproject.toml."""
    url = urls()["Documentation"]
    if not WEBSITE.fullmatch(url):
        raise SystemExit(
            f"pyproject.toml: Documentation = {url!r} is not https://OWNER.github.io/NAME/"
        )
    return url


def badge_path(url: str, branch: str = "main") -> str:
    """What a Colab badge for this repository contains before ``notebooks/NAME.ipynb``."""
    return (
        f"colab.research.google.com/github/{url.removeprefix('https://github.com/')}/blob/{branch}/"
    )


def synced(text: str, url: str, site: str | None = None) -> str:
    text = INSTALL.sub(lambda match: match.group(1) + url, BADGE.sub(badge_path(url), text))
    return text if site is None else WEBSITE.sub(site, text)


def files() -> list[Path]:
    return [
        ROOT / "README.md",
        ROOT / "CITATION.cff",
        *sorted((ROOT / "notebooks").glob("*.py")),
        *sorted((ROOT / "notebooks").glob("*.ipynb")),
    ]


def main() -> int:
    url, site = repository(), website()
    for path in files():
        text = path.read_text()
        if synced(text, url, site) != text:
            path.write_text(synced(text, url, site))
            print(f"updated {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
