"""Drop the widget state that executing a notebook stores in its metadata (chapter 3's sliders):
it changes at every run, shows nothing without a live kernel, and would make the website load
the widgets' scripts from outside. ``make refresh`` runs it; a test checks no notebook keeps it."""

import sys

import nbformat

for path in sys.argv[1:]:
    notebook = nbformat.read(path, as_version=4)
    if notebook.metadata.pop("widgets", None) is not None:
        nbformat.write(notebook, path)
        print(f"dropped the widget state of {path}")
