"""The course's judgment of a grid without a plan of its own, and of the λ study.

:func:`judge` gives any grid the standard comparisons, fixed in this code before its results: every module
against the network without attention (the primary family, Holm-corrected together) on the final
test accuracy, the same on the flip-averaged accuracy (secondary), and SimAM against the best other
module by its observed mean (exploratory, since the data chose it). It is a study
(:mod:`simam.experiments.study`) made from the cells, so it is computed and told as a committed plan
is. The λ study gets an omnibus test and intervals from the spread pooled over its λ.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from simam import stats
from simam.experiments.plan import plan_lambda_ablation
from simam.experiments.study import PlannedCell, PlannedComparison, Study
from simam.experiments.study_verdict import LEVEL, StudyVerdict, judge_study
from simam.experiments.summary import Cell
from simam.paper_results import ATTENTIONS, PAPER_LAMBDA

EFFECT = 0.4  # points: the size of the paper's ResNet-20 gain, for the seeds a grid needs
FIGURE4_SPREAD = 0.3  # points: the paper's Figure 4 draws every λ within about this of the others
LAMBDA_STUDY_SEEDS = 2  # the course's lambda study on CIFAR-10: seeds per lambda
NAMES = {"none": "none", "se": "SE", "cbam": "CBAM", "eca": "ECA", "gc": "GC", "simam": "SimAM"}


def grid_cells(cells: Sequence[Cell], model: str) -> dict[str, Cell]:
    """The cells of ``model`` at the paper's lambda and place, by attention (cells of one table)."""
    return {cell.attention: cell for cell in cells
            if cell.model == model and cell.lambda_ in (None, PAPER_LAMBDA) and cell.place is None}


def standard_study(cells: Sequence[Cell], model: str) -> Study | None:
    """The standard comparisons of ``model``'s cells (one table) as a study, or None without two seeds
    without attention and two with SimAM."""
    found = grid_cells(cells, model)
    if any(a not in found or found[a].n < 2 for a in ("none", "simam")):
        return None
    modules = [a for a in ATTENTIONS if a != "none" and a in found and found[a].n >= 2]
    others = [a for a in modules if a != "simam"]
    some = found["none"]
    planned = {a: PlannedCell(a, a, tuple(range(max(found[a].seeds_asked, found[a].n))), some.recipe)
               for a in ["none", *modules]}

    def versus(a: str, b: str, kind: str, metric: str) -> PlannedComparison:
        return PlannedComparison(f"{NAMES[a]} − {NAMES[b]}", (a,), (b,), kind, metric)

    comparisons = [versus(a, "none", "primary", "final") for a in modules]
    if all(found[a].flip_accuracies is not None for a in ["none", *modules]):
        comparisons += [versus(a, "none", "secondary", "flip") for a in modules]
    if others:
        best = max(others, key=lambda a: found[a].mean)
        comparisons += [versus("simam", best, "exploratory", metric) for metric in ("final", "flip")
                        if metric == "final" or found[best].flip_accuracies is not None]
    return Study(model, f"Does any attention module raise {model}'s final test accuracy over no attention?",
                 "standard", some.dataset, model, some.recipe, "final", planned, tuple(comparisons))


def judge(cells: Sequence[Cell], results: Sequence[dict[str, Any]], model: str) -> StudyVerdict | None:
    """The standard comparisons of ``model``'s cells on the result lines they summarise, computed."""
    study = standard_study(cells, model)
    return None if study is None else judge_study(study, results)


def grid_seeds_needed(cells: Sequence[Cell], model: str, effect: float = EFFECT, alpha: float = LEVEL) -> int | None:
    """Seeds per network for a two-sided test at ``alpha`` to find ``effect`` points with 80% power,
    from the measured standard deviations of ``model`` without attention and with SimAM (None without
    two seeds of each). Under Holm's correction over k comparisons the smallest p-value must pass
    ``alpha / k``."""
    found = grid_cells(cells, model)
    if any(a not in found or found[a].std is None for a in ("none", "simam")):
        return None
    return stats.seeds_needed(found["none"].std, found["simam"].std, effect, alpha)


# --------------------------------------------------------------------------------------------------
# The λ study


def lambda_studies(cells: Sequence[Cell]) -> dict[tuple[str, str, str], list[Cell]]:
    """The SimAM cells (at the paper's place) of each (dataset, model, recipe) that has SimAM at two
    lambdas or more, by lambda."""
    studies: dict[tuple[str, str, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        if cell.attention == "simam" and cell.place is None:
            studies[(cell.dataset, cell.model, cell.recipe_label)].append(cell)
    return {key: sorted(group, key=lambda c: c.lambda_) for key, group in studies.items() if len(group) > 1}


def lambda_study_runs(results: Sequence[dict], dataset: str, recipe: str) -> tuple[int, int]:
    """(finished, planned) runs of the course's lambda study off the grid's lambda: SimAM at each
    lambda of the paper's Figure 4 except 1e-4, ``LAMBDA_STUDY_SEEDS`` seeds each."""
    specs = [spec for spec in plan_lambda_ablation(LAMBDA_STUDY_SEEDS, recipe, dataset)
             if spec.attention == "simam" and spec.lambda_ not in (None, PAPER_LAMBDA)]
    finished = {line["run_id"] for line in results}
    return sum(spec.run_id in finished for spec in specs), len(specs)


def lambda_study_command(dataset: str, recipe: str, out: str = "results/") -> str:
    """The command that runs or continues the course's lambda study."""
    return (f"python -m simam.experiments run --lambda-ablation --datasets {dataset} --seeds {LAMBDA_STUDY_SEEDS} "
            f"--recipe {recipe} --out {out}")


def _lambda_cells(cells: Sequence[Cell], model: str) -> list[Cell]:
    return sorted((c for c in cells if c.model == model and c.attention == "simam" and c.place is None),
                  key=lambda c: -c.lambda_)


def lambda_points(cells: Sequence[Cell], model: str) -> str:
    """SimAM's accuracy at each lambda of ``model``'s cells as a Markdown table: each mean with its 95%
    interval from the spread pooled over every lambda (one width for every mean of the same number of
    seeds; needs two seeds somewhere)."""
    group = _lambda_cells(cells, model)
    if sum(c.n - 1 for c in group) < 1:
        rows = ["| λ | seeds | final test accuracy %: mean |", "| --- | --- | --- |"]
        rows += [f"| {c.lambda_:g} | {c.n} | {c.mean:.2f} |" for c in group]
        return "\n".join(rows) + "\n\nOne seed per λ: no spread, so no interval.\n"
    intervals, pooled, df = stats.pooled_intervals([c.accuracies for c in group])
    rows = [f"| λ | seeds | final test accuracy %: mean | 95% CI of the mean (pooled spread, {df} degrees of freedom) |",
            "| --- | --- | --- | --- |"]
    for cell, (low, high) in zip(group, intervals):
        grid = " (the grid's)" if cell.lambda_ == PAPER_LAMBDA else ""
        rows.append(f"| {cell.lambda_:g}{grid} | {cell.n} | {cell.mean:.2f} | [{low:.2f}, {high:.2f}] |")
    return "\n".join(rows) + "\n"


def lambda_omnibus(cells: Sequence[Cell], model: str) -> str:
    """Whether λ changes SimAM's final accuracy at all, in sentences: a one-way ANOVA and a
    Kruskal-Wallis test across ``model``'s λ cells, the pooled spread, and the smallest difference
    between two λ of the study's seeds that a 5% test would find with 80% power."""
    from scipy import stats as scipy_stats  # the course's dependency; imported only for this test

    group = _lambda_cells(cells, model)
    samples = [c.accuracies for c in group]
    if sum(len(values) - 1 for values in samples) < 1:
        return "One seed per λ: no spread within a λ, so no test of whether λ matters.\n"
    anova, kruskal = scipy_stats.f_oneway(*samples), scipy_stats.kruskal(*samples)
    _, pooled, df = stats.pooled_intervals(samples)
    fewest = min(c.n for c in group)
    smallest = (stats.t_quantile(1 - LEVEL / 2, df) + stats.t_quantile(0.8, df)) * pooled * (2 / fewest) ** 0.5
    below = [p < LEVEL for p in (anova.pvalue, kruskal.pvalue)]
    verdict = ("both tests find" if all(below) else "the two tests disagree on whether" if any(below)
               else "nothing shows")
    largest = max(c.n for c in group)
    text = (f"Across the {len(group)} values of λ, a one-way ANOVA gives F({len(group) - 1}, {df}) = "
            f"{anova.statistic:.2f}, p = {anova.pvalue:.2f}, and a Kruskal-Wallis test H = {kruskal.statistic:.2f}, "
            f"p = {kruskal.pvalue:.2f}: {verdict} that λ changes the final test accuracy at this budget. Assuming "
            f"the seeds of every λ scatter alike, they spread by {pooled:.2f} points within a λ (pooled; {largest - 1} "
            f"of the {df} degrees of freedom come from the cell of {largest} seeds); with {fewest} seeds per λ, two "
            f"values of λ would have to differ by about {smallest:.2f} points for a 5% test to find it with 80% power.")
    if smallest > FIGURE4_SPREAD:
        text += (f" Differences of the size the paper's Figure 4 draws (every λ within about {FIGURE4_SPREAD:g} "
                 f"points of the others, ResNet-20 on CIFAR-100) are beyond this study.")
    return text + "\n"
