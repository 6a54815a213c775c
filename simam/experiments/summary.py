"""The summary of a results file: per cell (data set, model, attention, lambda, recipe and any
trainer option that differs from the recipe) the mean and sample standard deviation of the *final*
test accuracy over seeds, beside the SimAM paper's Table 2, as Markdown and CSV."""

from __future__ import annotations

import dataclasses
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from simam.attention import list_attentions
from simam.config import RECIPES, RUNTIME_FIELDS, as_config_value
from simam.experiments.plan import GRID_OPTIONS
from simam.models import list_models
from simam.paper_results import CITATION, PAPER_MODEL_NAMES, paper_accuracy


@dataclass(frozen=True)
class Cell:
    """One cell of the summary: the runs of one configuration over seeds. Accuracies in percent."""

    dataset: str
    model: str
    attention: str
    lambda_: float | None  # SimAM's lambda; None for the other attentions
    place: str | None  # where the blocks put the attention, None for the paper's place
    recipe: str
    overrides: str  # trainer options that differ from the recipe, e.g. "iterations=60, subset=512"
    n: int
    seeds_asked: int
    mean: float
    std: float | None  # sample standard deviation; None for a single seed
    paper_mean: float | None
    paper_std: float | None
    devices: tuple[str, ...]
    gpus_per_run: tuple[int, ...]
    accuracies: tuple[float, ...] = ()  # every seed's final test accuracy, in seed order
    # the same, flip-averaged; None if a run lacks it
    flip_accuracies: tuple[float, ...] | None = None
    # mean training speed over every step, compilation included
    images_per_second: float | None = None
    # the same after compilation and warm-up (runs that record it)
    steady_images_per_second: float | None = None

    @property
    def difference(self) -> float | None:
        return None if self.paper_mean is None else self.mean - self.paper_mean

    @property
    def complete(self) -> bool:
        return self.n >= self.seeds_asked

    @property
    def recipe_label(self) -> str:
        """The recipe with the trainer options that differ from it, as tables and plots name it."""
        return self.recipe if not self.overrides else f"{self.recipe} ({self.overrides})"


def overrides(config: dict[str, Any], recipe: str) -> str:
    """The trainer options of ``config`` that differ from ``recipe``'s, except the grid's own."""
    base = dataclasses.asdict(RECIPES[recipe])
    skip = RUNTIME_FIELDS | GRID_OPTIONS | {"recipe"}
    return ", ".join(
        f"{key}={_show(as_config_value(value))}"
        for key, value in config.items()
        if key in base and key not in skip and as_config_value(value) != base[key]
    )


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def summarise(results: Sequence[dict[str, Any]], seeds: int | None = None) -> list[Cell]:
    """Group result lines by (dataset, model, attention, lambda, place, recipe, overrides) and
    average the final test accuracy over seeds. ``seeds``: the seeds asked of every cell (default:
    per cell, the most that any of its runs was asked for, so that cells of one grid may have
    different targets). A run with several lines counts once (its first line)."""
    first: dict[str, dict[str, Any]] = {}
    for line in results:
        first.setdefault(line["run_id"], line)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for line in first.values():
        key = (
            line["dataset"],
            line["model"],
            line["attention"],
            line["lambda"],
            line.get("place"),
            line["recipe"],
            overrides(line["config"], line["recipe"]),
        )
        groups[key].append(line)
    cells = []
    for (dataset, model, attention, lambda_, place, recipe, options), lines in groups.items():
        lines = sorted(lines, key=lambda line: line["seed"])
        accuracies = [100 * line["final_test_accuracy"] for line in lines]
        flips = [line.get("final_test_accuracy_flip") for line in lines]
        steady = [
            line["steady_images_per_second"]
            for line in lines
            if line.get("steady_images_per_second")
        ]
        paper = paper_accuracy(dataset, model, attention, lambda_) if place is None else None
        cells.append(
            Cell(
                dataset,
                model,
                attention,
                lambda_,
                place,
                recipe,
                options,
                len(lines),
                seeds if seeds is not None else max(line.get("seeds_asked", 1) for line in lines),
                statistics.mean(accuracies),
                statistics.stdev(accuracies) if len(lines) > 1 else None,
                paper[0] if paper else None,
                paper[1] if paper else None,
                tuple(sorted({line["device"] for line in lines})),
                tuple(sorted({line.get("gpus_per_run", 1) for line in lines})),
                tuple(accuracies),
                None if None in flips else tuple(100 * flip for flip in flips),
                statistics.mean(line["train_images_per_second"] for line in lines),
                statistics.mean(steady) if steady else None,
            )
        )
    return sorted(cells, key=_cell_order)


def _cell_order(cell: Cell) -> tuple:
    return (
        cell.dataset,
        cell.recipe,
        cell.overrides,
        list_models().index(cell.model),
        list_attentions().index(cell.attention),
        cell.place or "",
        -(cell.lambda_ or 0.0),
    )


def _accuracy(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _speed(cell: Cell) -> str:
    if cell.images_per_second is None:
        return "—"
    steady = (
        "—" if cell.steady_images_per_second is None else f"{cell.steady_images_per_second:,.0f}"
    )
    return f"{cell.images_per_second:,.0f} ({steady})"


def summary_markdown(cells: Sequence[Cell]) -> str:
    """The summary as a Markdown table, with the paper's column and its citation."""
    rows = [
        "| data set | model | attention | λ | place | recipe | seeds | ours: top-1 % "
        "| paper: top-1 % | ours − paper | images/s: all steps (steady) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for cell in cells:
        seeds = f"{cell.n}" if cell.complete else f"{cell.n} of {cell.seeds_asked} *"
        difference = "—" if cell.difference is None else f"{cell.difference:+.2f}"
        rows.append(
            f"| {cell.dataset} | {cell.model} | {cell.attention} "
            f"| {'' if cell.lambda_ is None else f'{cell.lambda_:g}'} | {cell.place or 'paper'} "
            f"| {cell.recipe_label} | {seeds} | {_accuracy(cell.mean, cell.std)} "
            f"| {_accuracy(cell.paper_mean, cell.paper_std)} | {difference} | {_speed(cell)} |"
        )
    notes = [
        "Ours: final test accuracy (not the best over training), mean ± sample standard deviation "
        f"over seeds. Paper: {CITATION}. Images/s: the training speed, mean over seeds, over every "
        "step (compilation included) and, in brackets, after the first 50 steps of each session "
        "(— where the runs predate it)."
    ]
    if any(cell.model == "wrn28_10" for cell in cells):
        notes.append(f"The paper's wide network is printed {PAPER_MODEL_NAMES['wrn28_10']}.")
    if not all(cell.complete for cell in cells):
        notes.append(
            "\\* fewer seeds than asked: the grid or study behind the cell is not finished."
        )
    return "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n"


CSV_COLUMNS = (
    "dataset",
    "model",
    "attention",
    "lambda",
    "place",
    "recipe",
    "overrides",
    "n",
    "seeds_asked",
    "complete",
    "mean",
    "std",
    "paper_mean",
    "paper_std",
    "difference",
    "devices",
    "images_per_second",
    "steady_images_per_second",
)


def summary_csv(cells: Sequence[Cell]) -> str:
    """The summary as CSV, one row per cell, accuracies in percent."""
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in cells:
        writer.writerow(
            [
                c.dataset,
                c.model,
                c.attention,
                "" if c.lambda_ is None else repr(c.lambda_),
                c.place or "",
                c.recipe,
                c.overrides,
                c.n,
                c.seeds_asked,
                c.complete,
                f"{c.mean:.4f}",
                *(
                    "" if v is None else f"{v:.4f}"
                    for v in (c.std, c.paper_mean, c.paper_std, c.difference)
                ),
                "; ".join(c.devices),
                *(
                    "" if v is None else f"{v:.1f}"
                    for v in (c.images_per_second, c.steady_images_per_second)
                ),
            ]
        )
    return text.getvalue()
