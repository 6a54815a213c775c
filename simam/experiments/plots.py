"""Plots of a grid's summary: accuracy per network and attention beside Table 2, the lambda study as
the paper's Figure 4, and the summary files (Markdown, CSV and the plots) written together."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from simam import stats
from simam.experiments.plan import GridError
from simam.experiments.study import BASE, METRICS
from simam.experiments.study_verdict import StudyVerdict
from simam.experiments.summary import Cell, summarise, summary_csv, summary_markdown
from simam.experiments.verdict import grid_cells, lambda_studies
from simam.paper_results import ATTENTIONS, PAPER_LAMBDA, PAPER_TABLE2


def plot_summary(cells: Sequence[Cell]):
    """Our accuracy per model and attention (bars, sample std as error bars) beside the paper's
    (black dots and bars), one panel per data set and recipe. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    cells = [cell for cell in cells if cell.lambda_ in (None, PAPER_LAMBDA)]
    panels = sorted({(cell.dataset, cell.recipe_label) for cell in cells})
    figure, axes = plt.subplots(
        1,
        max(1, len(panels)),
        figsize=(6 * max(1, len(panels)), 4),
        layout="constrained",
        squeeze=False,
    )
    for axis, (dataset, recipe) in zip(axes[0], panels):
        panel = [cell for cell in cells if (cell.dataset, cell.recipe_label) == (dataset, recipe)]
        models = list(dict.fromkeys(cell.model for cell in panel))
        attentions = list(dict.fromkeys(cell.attention for cell in panel))
        width = 0.8 / len(attentions)
        for a, attention in enumerate(attentions):
            for cell in (c for c in panel if c.attention == attention):
                x = models.index(cell.model) + (a - (len(attentions) - 1) / 2) * width
                axis.bar(
                    x,
                    cell.mean,
                    width,
                    yerr=cell.std or 0,
                    capsize=2,
                    color=f"C{a}",
                    label=attention if cell.model == models[0] else None,
                )
                if cell.paper_mean is not None:
                    axis.errorbar(
                        x,
                        cell.paper_mean,
                        yerr=cell.paper_std,
                        fmt="o",
                        color="black",
                        markersize=3,
                        label="paper" if (a, cell.model) == (0, models[0]) else None,
                    )
        means = [cell.mean for cell in panel] + [
            cell.paper_mean for cell in panel if cell.paper_mean is not None
        ]
        axis.set_ylim(min(means) - 2, max(means) + 1)
        axis.set_xticks(range(len(models)), models)
        axis.set(ylabel="final test accuracy (%)", title=f"{dataset}, {recipe}")
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize="small", ncols=2)
    return figure


def _seed_dots(
    axis, x: float, values: Sequence[float], color: str, label: str | None = None
) -> None:
    """Every seed as a dot, spread sideways in seed order so that equal accuracies stay visible."""
    offsets = (
        [0.0]
        if len(values) == 1
        else [-0.15 + 0.3 * i / (len(values) - 1) for i in range(len(values))]
    )
    axis.scatter(
        [x + o for o in offsets], values, s=12, color=color, alpha=0.6, linewidths=0, label=label
    )


def plot_lambda_ablation(cells_or_results: Sequence[Cell] | Sequence[dict[str, Any]]):
    """Final test accuracy against SimAM's lambda (log axis) as the paper's Figure 4: every seed as
    a dot, each mean with its 95% interval from the spread pooled over the lambdas and its number of
    seeds written beside it, and the network without attention as a band (its mean and the 95%
    interval of it). The means are not joined: they rest on different numbers of seeds, and nothing
    says accuracy moves smoothly between two lambdas. Takes cells or result lines."""
    import matplotlib.pyplot as plt

    cells = list(cells_or_results)
    if cells and isinstance(cells[0], dict):
        cells = summarise(cells)
    studies = lambda_studies(cells)
    if not studies:
        raise GridError("no lambda study in these results: SimAM at two lambdas or more is needed")
    figure, axis = plt.subplots(figsize=(6, 3.6), layout="constrained")
    for index, ((dataset, model, recipe), group) in enumerate(sorted(studies.items())):
        color = f"C{index}"
        samples = [c.accuracies for c in group]
        # one seed per λ: no spread to draw
        pooled = sum(len(values) - 1 for values in samples) >= 1
        intervals = (
            stats.pooled_intervals(samples)[0] if pooled else [(c.mean, c.mean) for c in group]
        )
        for k, (cell, (low, high)) in enumerate(zip(group, intervals)):
            axis.scatter(
                [cell.lambda_] * cell.n, cell.accuracies, s=12, color=color, alpha=0.5, linewidths=0
            )
            axis.errorbar(
                cell.lambda_,
                cell.mean,
                yerr=[[cell.mean - low], [high - cell.mean]],
                fmt="o",
                color=color,
                capsize=4,
                linewidth=1.2,
                label=f"{model} + simam, {dataset}, {recipe}" if k == 0 else None,
            )
            axis.annotate(
                f"n={cell.n}",
                (cell.lambda_, high),
                textcoords="offset points",
                xytext=(0, 3),
                ha="center",
                fontsize="x-small",
                color=color,
            )
        for base in cells:
            if (base.dataset, base.model, base.recipe_label, base.attention) == (
                dataset,
                model,
                recipe,
                "none",
            ):
                axis.axhline(
                    base.mean,
                    color="gray",
                    linestyle="--",
                    label=f"{model}, no attention ({base.n} seeds)",
                )
                if base.n >= 2:
                    axis.axhspan(*stats.mean_interval(base.accuracies), color="gray", alpha=0.15)
    # dotted and behind, so that the interval drawn at the paper's lambda stays visible
    axis.axvline(
        PAPER_LAMBDA,
        color="gray",
        linewidth=0.8,
        linestyle=":",
        zorder=0,
        label=f"paper's λ = {PAPER_LAMBDA:g}",
    )
    axis.set_xscale("log")
    axis.set(xlabel="λ", ylabel="final test accuracy (%)")
    axis.set_title(
        "SimAM's λ, as the paper's Figure 4\nbars: 95% CI from the pooled spread; band: 95% CI",
        fontsize="medium",
    )
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return figure


def plot_seeds(cells: Sequence[Cell], model: str):
    """Left: every seed of every module of ``model`` (one table's cells) as a dot, with each mean
    and its 95% interval. Right: each module minus no attention with Welch's 95% interval, beside
    the same difference in the paper's Table 2 (5 runs each). Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    found = grid_cells(cells, model)
    attentions = [a for a in ATTENTIONS if a in found]
    if "none" not in found:
        raise GridError(f"no {model} without attention among these cells: nothing to compare with")
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8), layout="constrained")
    for x, attention in enumerate(attentions):
        cell = found[attention]
        _seed_dots(left, x, cell.accuracies, f"C{x}")
        interval = stats.mean_interval(cell.accuracies) if cell.n >= 2 else (cell.mean, cell.mean)
        left.errorbar(
            x,
            cell.mean,
            yerr=[[cell.mean - interval[0]], [interval[1] - cell.mean]],
            fmt="_",
            color="black",
            markersize=14,
            capsize=4,
        )
    left.set_xticks(range(len(attentions)), [f"{a}\n{found[a].n} seeds" for a in attentions])
    left.set(
        ylabel="final test accuracy (%)",
        title=f"{model}, {found['none'].recipe_label}: every seed, mean, 95% CI",
    )
    for x, attention in enumerate(attentions[1:], start=1):
        if found[attention].n >= 2 and found["none"].n >= 2:
            difference, low, high, _, _ = stats.welch(
                found[attention].accuracies, found["none"].accuracies
            )
            right.errorbar(
                x - 0.12,
                difference,
                yerr=[[difference - low], [high - difference]],
                fmt="o",
                color=f"C{x}",
                capsize=3,
                label="ours" if x == 1 else None,
            )
        paper, base = (
            PAPER_TABLE2.get((found["none"].dataset, model, attention)),
            PAPER_TABLE2.get((found["none"].dataset, model, "none")),
        )
        if paper and base:
            difference, low, high, _, _ = stats.welch_from_summaries(
                paper[0], paper[1], 5, base[0], base[1], 5
            )
            right.errorbar(
                x + 0.12,
                difference,
                yerr=[[difference - low], [high - difference]],
                fmt="s",
                color="black",
                markerfacecolor="white",
                capsize=3,
                label="paper, Table 2 (5 runs each)" if x == 1 else None,
            )
    right.axhline(0, color="gray", linewidth=0.8)
    right.set_xticks(range(1, len(attentions)), attentions[1:])
    right.set(ylabel="difference (points)", title="module minus no attention, with Welch's 95% CI")
    right.legend(fontsize="small")
    for axis in (left, right):
        axis.grid(axis="y", alpha=0.3)
    return figure


def plot_study(verdict: StudyVerdict):
    """Every seed of every cell of a study, one panel per attention module and one column per cell
    in it (its place, recipe or λ), with each mean and its 95% interval; the means of a panel's
    columns are joined, so that two panels with unequal slopes show an interaction.
    A screening study (a plan with ``adopt_at``) is drawn by :func:`plot_screening` instead.
    Returns the figure."""
    import matplotlib.pyplot as plt

    study = verdict.study
    if study.adopt_at is not None:
        return plot_screening(verdict)
    modules = list(dict.fromkeys(cell.attention for cell in study.cells.values()))
    figure, axes = plt.subplots(
        1,
        len(modules),
        figsize=(3.2 * len(modules) + 1, 3.6),
        layout="constrained",
        sharey=True,
        squeeze=False,
    )
    for index, (axis, module) in enumerate(zip(axes[0], modules)):
        names = [name for name, cell in study.cells.items() if cell.attention == module]
        means = []
        for x, name in enumerate(names):
            runs = verdict.cells[name]
            _seed_dots(axis, x, runs.final, f"C{index}")
            if len(runs.final) >= 2:
                low, high = stats.mean_interval(runs.final)
                mean = sum(runs.final) / len(runs.final)
                axis.errorbar(
                    x,
                    mean,
                    yerr=[[mean - low], [high - mean]],
                    fmt="_",
                    color="black",
                    markersize=14,
                    capsize=4,
                )
                means.append((x, mean))
        if len(means) > 1:
            axis.plot(*zip(*means), color="black", linewidth=0.8)
        labels = [
            _column_label(study.cells[name], study.recipe)
            + f"\n{len(verdict.cells[name].final)} seeds"
            for name in names
        ]
        axis.set_xticks(range(len(names)), labels, fontsize="small")
        axis.set_xlim(-0.5, len(names) - 0.5)
        axis.set_title(module)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(f"{METRICS[study.primary_metric]} (%)")
    figure.suptitle(f"{study.name} study: every seed, mean, 95% CI")
    return figure


def plot_screening(verdict: StudyVerdict):
    """A screening study (a plan with ``adopt_at``): one row per cell, every seed a dot and the
    mean a bar, beside base's mean (dashed) and the line a cell's mean must reach for the plan's
    rule (dotted). No interval: with two seeds a cell it spans several points, and the rule, not
    a test, decides. Returns the figure."""
    import matplotlib.pyplot as plt

    study = verdict.study
    names = list(study.cells)
    figure, axis = plt.subplots(figsize=(7, 0.32 * len(names) + 1.3), layout="constrained")
    for y, name in enumerate(names):
        runs = verdict.cells[name].final
        axis.scatter(runs, [y] * len(runs), s=14, color="C0", alpha=0.6, linewidths=0)
        if runs:
            axis.plot([sum(runs) / len(runs)] * 2, [y - 0.3, y + 0.3], color="black")
    base = verdict.cells[BASE].final
    if base:
        base_mean = sum(base) / len(base)
        axis.axvline(base_mean, color="gray", linestyle="--", linewidth=0.8, label="base's mean")
        axis.axvline(
            base_mean + study.adopt_at,
            color="C2",
            linestyle=":",
            label=f"base + {study.adopt_at:g}, the rule's threshold for a cell's mean",
        )
    finished, planned = verdict.finished
    axis.set_yticks(
        range(len(names)),
        [
            f"{name} ({len(verdict.cells[name].final)} of {verdict.cells[name].planned})"
            for name in names
        ],
        fontsize="small",
    )
    axis.invert_yaxis()  # the plan's order, top to bottom
    axis.set(
        xlabel=f"{METRICS[study.primary_metric]} (%)",
        title=f"{study.name} study, {finished} of {planned} runs: every seed, and each mean",
    )
    axis.grid(axis="x", alpha=0.3)
    figure.legend(fontsize="small", loc="outside lower center", ncols=2)
    return figure


def _column_label(cell, study_recipe: str) -> str:
    """What sets a study's cell apart from the others of its module: its place, recipe or λ."""
    parts = (
        [cell.place or "paper's place"]
        if cell.place is not None or cell.attention != "none"
        else []
    )
    if cell.recipe != study_recipe or not parts:
        parts.append(cell.recipe)
    if cell.lambda_ is not None:
        parts.append(f"λ = {cell.lambda_:g}")
    return ", ".join(parts)


def write_summary(cells: Sequence[Cell], folder: str | Path) -> list[Path]:
    """``summary.md``, ``summary.csv`` and ``summary.png`` in ``folder``, and
    ``lambda_ablation.png`` when the cells hold a lambda study (two lambdas or more for one
    network); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "summary.md", folder / "summary.csv", folder / "summary.png"]
    paths[0].write_text(summary_markdown(cells))
    paths[1].write_text(summary_csv(cells))
    _save(plot_summary(cells), paths[2])
    if lambda_studies(cells):
        paths.append(folder / "lambda_ablation.png")
        _save(plot_lambda_ablation(cells), paths[-1])
    return paths


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt  # imported here: slow to import, and only plotting needs it

    # no version stamp: the same file from the same data
    figure.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(figure)
