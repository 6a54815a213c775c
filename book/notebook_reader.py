"""How the website reads a notebook: as stored, with collapsed cells folded as they are in
JupyterLab.

An exercise's solution (tag `solution`) folds whole, code and output, behind "Show the solution";
any other cell whose source is collapsed in JupyterLab (`jupyter: source_hidden`) folds its code.
"""

import nbformat


def read_notebook(text: str) -> nbformat.NotebookNode:
    notebook = nbformat.reads(text, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.setdefault("tags", [])
        if "solution" in tags:
            tags.append("hide-cell")
            cell.metadata["mystnb"] = {
                "code_prompt_show": "Show the solution",
                "code_prompt_hide": "Hide the solution",
            }
        elif cell.metadata.get("jupyter", {}).get("source_hidden"):
            tags.append("hide-input")
    return notebook
