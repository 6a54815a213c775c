"""Plots of a grid's summary: accuracy per network and attention beside Table 2, the lambda study as
the paper's Figure 4, and the summary files (Markdown, CSV and the plots) written together."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simam.experiments.plan import GridError
from simam.experiments.summary import Cell, summarise, summary_csv, summary_markdown
from simam.paper_results import PAPER_LAMBDA


def plot_summary(cells: Sequence[Cell]):
    """Our accuracy per model and attention (bars, sample std as error bars) beside the paper's
    (black dots and bars), one panel per data set and recipe. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    cells = [cell for cell in cells if cell.lambda_ in (None, PAPER_LAMBDA)]
    panels = sorted({(cell.dataset, cell.recipe_label) for cell in cells})
    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), layout="constrained",
                                squeeze=False)
    for axis, (dataset, recipe) in zip(axes[0], panels):
        panel = [cell for cell in cells if (cell.dataset, cell.recipe_label) == (dataset, recipe)]
        models = list(dict.fromkeys(cell.model for cell in panel))
        attentions = list(dict.fromkeys(cell.attention for cell in panel))
        width = 0.8 / len(attentions)
        for a, attention in enumerate(attentions):
            for cell in (c for c in panel if c.attention == attention):
                x = models.index(cell.model) + (a - (len(attentions) - 1) / 2) * width
                axis.bar(x, cell.mean, width, yerr=cell.std or 0, capsize=2, color=f"C{a}",
                         label=attention if cell.model == models[0] else None)
                if cell.paper_mean is not None:
                    axis.errorbar(x, cell.paper_mean, yerr=cell.paper_std, fmt="o", color="black", markersize=3,
                                  label="paper" if (a, cell.model) == (0, models[0]) else None)
        means = [cell.mean for cell in panel] + [cell.paper_mean for cell in panel if cell.paper_mean is not None]
        axis.set_ylim(min(means) - 2, max(means) + 1)
        axis.set_xticks(range(len(models)), models)
        axis.set(ylabel="final test accuracy (%)", title=f"{dataset}, {recipe}")
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize="small", ncols=2)
    return figure


def _lambda_studies(cells: Sequence[Cell]) -> dict[tuple, list[Cell]]:
    """The cells of each (dataset, model, recipe) that has SimAM at two lambdas or more."""
    studies: dict[tuple, list[Cell]] = defaultdict(list)
    for cell in cells:
        if cell.attention == "simam":
            studies[(cell.dataset, cell.model, cell.recipe_label)].append(cell)
    return {key: sorted(group, key=lambda c: c.lambda_) for key, group in studies.items() if len(group) > 1}


def plot_lambda_ablation(cells_or_results: Sequence[Cell] | Sequence[dict[str, Any]]):
    """Final test accuracy against SimAM's lambda (log axis), mean ± sample std over seeds, with the
    baseline without attention as a band, as the paper's Figure 4. Takes cells or result lines."""
    import matplotlib.pyplot as plt

    cells = list(cells_or_results)
    if cells and isinstance(cells[0], dict):
        cells = summarise(cells)
    studies = _lambda_studies(cells)
    if not studies:
        raise GridError("no lambda study in these results: SimAM at two lambdas or more is needed")
    figure, axis = plt.subplots(figsize=(6, 4), layout="constrained")
    for index, ((dataset, model, recipe), group) in enumerate(sorted(studies.items())):
        color = f"C{index}"
        axis.errorbar([c.lambda_ for c in group], [c.mean for c in group], yerr=[c.std or 0 for c in group],
                      marker="o", capsize=3, color=color, label=f"{model} + simam, {dataset}, {recipe}")
        for base in cells:
            if (base.dataset, base.model, base.recipe_label, base.attention) == (dataset, model, recipe, "none"):
                axis.axhline(base.mean, color=color, linestyle="--", label=f"{model}, no attention")
                if base.std:
                    axis.axhspan(base.mean - base.std, base.mean + base.std, color=color, alpha=0.1)
    axis.axvline(PAPER_LAMBDA, color="gray", linewidth=0.8, label=f"paper's λ = {PAPER_LAMBDA:g}")
    axis.set_xscale("log")
    axis.set(xlabel="λ", ylabel="final test accuracy (%)", title="SimAM's λ (paper: Figure 4)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return figure


def write_summary(cells: Sequence[Cell], folder: str | Path) -> list[Path]:
    """``summary.md``, ``summary.csv`` and ``summary.png`` in ``folder``, and ``lambda_ablation.png``
    when the cells hold a lambda study (two lambdas or more for one network); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "summary.md", folder / "summary.csv", folder / "summary.png"]
    paths[0].write_text(summary_markdown(cells))
    paths[1].write_text(summary_csv(cells))
    _save(plot_summary(cells), paths[2])
    if _lambda_studies(cells):
        paths.append(folder / "lambda_ablation.png")
        _save(plot_lambda_ablation(cells), paths[-1])
    return paths


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt  # imported here: slow to import, and only plotting needs it

    figure.savefig(path, dpi=120)
    plt.close(figure)
