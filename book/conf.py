"""Sphinx configuration of the course's website: the stored notebooks, rendered without running
them.

Everything a page needs is served from the site itself: MathJax comes from the build folder
(`make book` unpacks it there), the theme ships its own scripts and fonts, and the only address
outside the site is each chapter's Colab link, read from pyproject.toml.
"""

import shutil
import sys
from pathlib import Path

from docutils import nodes

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

BOOK = Path(__file__).resolve().parent
ROOT = BOOK.parent
sys.path.insert(0, str(BOOK))

# The chapters, copied beside this file at every build (the folder is ignored by git): a link from
# one chapter to another then resolves inside the site's sources, as it does in JupyterLab.
shutil.rmtree(BOOK / "notebooks", ignore_errors=True)
shutil.copytree(
    ROOT / "notebooks",
    BOOK / "notebooks",
    ignore=shutil.ignore_patterns("*.py", ".ipynb_checkpoints"),
)

with open(ROOT / "pyproject.toml", "rb") as file:
    PROJECT = tomllib.load(file)["project"]
REPOSITORY = PROJECT["urls"]["Repository"].rstrip("/")
html_baseurl = PROJECT["urls"]["Documentation"]
COLAB = (
    REPOSITORY.replace("https://github.com/", "https://colab.research.google.com/github/")
    + "/blob/main/"
)

project = "SimAM, derived, built and trained"
author = "the simam authors"
html_title = project
extensions = ["myst_nb", "sphinx.ext.githubpages"]  # githubpages: .nojekyll, so _static is served
root_doc = "index"
exclude_patterns = ["**/.ipynb_checkpoints"]

# The stored outputs are the pages: nothing is executed. Exercise solutions come folded.
nb_execution_mode = "off"
nb_custom_formats = {".ipynb": ["notebook_reader.read_notebook", {}, False]}
# Markdown a cell displays (display(Markdown(...))) is read as the notebooks' own Markdown cells
# are, with MyST and the extensions below: its tables become tables and its $...$ formulas
# formulas, as in JupyterLab. ("commonmark", the default, has no tables; "gfm" has no math.)
nb_render_markdown_format = "myst"
myst_enable_extensions = ["dollarmath", "amsmath"]
# As in JupyterLab, $$...$$ may stand inside a paragraph.
myst_dmath_double_inline = True
myst_heading_anchors = 3

# MathJax from the site: `make book` unpacks the npm package's es5 folder into
# build/book/static/mathjax.
html_static_path = ["_static", str(ROOT / "build" / "book" / "static")]
mathjax_path = "mathjax/tex-chtml.js"
html_theme = "furo"
html_css_files = ["book.css"]
html_favicon = "_static/favicon.svg"


# The landing page's placeholders: the addresses it links to, all made from pyproject.toml.
PLACEHOLDERS = {
    "@COLAB@": COLAB,
    "@REPOSITORY@": REPOSITORY,
    "@NAME@": REPOSITORY.rsplit("/", 1)[-1],
}


def fill_placeholders(app, docname, source):
    """Put the repository's addresses into the landing page's links and commands."""
    if docname == root_doc:
        for placeholder, value in PLACEHOLDERS.items():
            source[0] = source[0].replace(placeholder, value)


def add_colab_link(app, doctree):
    """Put an "Open in Colab" link under the title of every chapter."""
    docname = app.env.docname
    # a chapter, not a Markdown page of the folder (the notation)
    if not docname.startswith("notebooks/") or not app.env.doc2path(docname).suffix == ".ipynb":
        return
    url = f"{COLAB}{docname}.ipynb"
    link = nodes.reference("", "Open in Colab", refuri=url, classes=["colab-link"])
    title = next(iter(doctree.findall(nodes.title)))
    title.parent.insert(title.parent.index(title) + 1, nodes.paragraph("", "", link))


# A section whose heading begins with this is a deep dive: a proof or an analysis the rest of its
# chapter does not need.
DEEP_DIVE = "Deep dive"


def fold_deep_dives(app, doctree, docname):
    """Fold every deep dive of a page, with no script: its heading becomes the <summary> of a closed
    <details> element that holds the rest of the section (prose, cells, outputs, subsections, up to
    the next heading of the same or a higher level), and a click on the heading opens it.

    Done when the page is written (doctree-resolved), after the table of contents has been read
    from the sections: the heading stays the section's title, so its level, anchor and permalink
    are those of any other heading."""
    if app.builder.format != "html":
        return
    for section in list(doctree.findall(nodes.section)):
        title = next(iter(section.children), None)
        if not isinstance(title, nodes.title) or not title.astext().startswith(DEEP_DIVE):
            continue
        section.insert(0, nodes.raw("", '<details class="deep-dive"><summary>', format="html"))
        section.insert(2, nodes.raw("", "</summary>", format="html"))
        section.append(nodes.raw("", "</details>", format="html"))


def setup(app):
    app.connect("source-read", fill_placeholders)
    app.connect("doctree-read", add_colab_link)
    app.connect("doctree-resolved", fold_deep_dives)
