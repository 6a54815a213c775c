"""The course's judgment of a grid without a plan of its own, and of the λ study.

:func:`judge` gives any grid the standard comparisons, fixed in this code before its results: every
module against the network without attention (the primary family, Holm-corrected together) on the
final test accuracy, the same on the flip-averaged accuracy (secondary), and SimAM against the best
other module by its observed mean (exploratory, since the data chose it). It is a study
(:mod:`simam.experiments.study`) made from the cells, so it is computed and told as a committed plan
is. The λ study's cells are gathered here; :mod:`simam.course.verdicts` tests and tells them.
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
LAMBDA_STUDY_SEEDS = 2  # the course's lambda study on CIFAR-10: seeds per lambda
NAMES = {"none": "none", "se": "SE", "cbam": "CBAM", "eca": "ECA", "gc": "GC", "simam": "SimAM"}


def grid_cells(cells: Sequence[Cell], model: str) -> dict[str, Cell]:
    """The cells of ``model`` at the paper's lambda and place, by attention (cells of one table)."""
    return {
        cell.attention: cell
        for cell in cells
        if cell.model == model and cell.lambda_ in (None, PAPER_LAMBDA) and cell.place is None
    }


def standard_study(cells: Sequence[Cell], model: str) -> Study | None:
    """The standard comparisons of ``model``'s cells (one table) as a study, or None without two
    seeds without attention and two with SimAM."""
    found = grid_cells(cells, model)
    if any(a not in found or found[a].n < 2 for a in ("none", "simam")):
        return None
    modules = [a for a in ATTENTIONS if a != "none" and a in found and found[a].n >= 2]
    others = [a for a in modules if a != "simam"]
    some = found["none"]
    planned = {
        a: PlannedCell(a, a, tuple(range(max(found[a].seeds_asked, found[a].n))), some.recipe)
        for a in ["none", *modules]
    }

    def versus(a: str, b: str, kind: str, metric: str) -> PlannedComparison:
        return PlannedComparison(f"{NAMES[a]} − {NAMES[b]}", (a,), (b,), kind, metric)

    comparisons = [versus(a, "none", "primary", "final") for a in modules]
    if all(found[a].flip_accuracies is not None for a in ["none", *modules]):
        comparisons += [versus(a, "none", "secondary", "flip") for a in modules]
    if others:
        best = max(others, key=lambda a: found[a].mean)
        comparisons += [
            versus("simam", best, "exploratory", metric)
            for metric in ("final", "flip")
            if metric == "final" or found[best].flip_accuracies is not None
        ]
    return Study(
        model,
        f"Does any attention module raise {model}'s final test accuracy over no attention?",
        "standard",
        some.dataset,
        model,
        some.recipe,
        "final",
        planned,
        tuple(comparisons),
    )


def judge(
    cells: Sequence[Cell], results: Sequence[dict[str, Any]], model: str
) -> StudyVerdict | None:
    """The standard comparisons of ``model``'s cells on the result lines they summarise,
    computed."""
    study = standard_study(cells, model)
    return None if study is None else judge_study(study, results)


def grid_seeds_needed(
    cells: Sequence[Cell], model: str, effect: float = EFFECT, alpha: float = LEVEL
) -> int | None:
    """Seeds per network for a two-sided test at ``alpha`` to find ``effect`` points with 80% power,
    from the measured standard deviations of ``model`` without attention and with SimAM (None
    without two seeds of each). Under Holm's correction over k comparisons the smallest p-value must
    pass ``alpha / k``."""
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
    return {
        key: sorted(group, key=lambda c: c.lambda_)
        for key, group in studies.items()
        if len(group) > 1
    }


def lambda_study_runs(results: Sequence[dict], dataset: str, recipe: str) -> tuple[int, int]:
    """(finished, planned) runs of the course's lambda study off the grid's lambda: SimAM at each
    lambda of the paper's Figure 4 except 1e-4, ``LAMBDA_STUDY_SEEDS`` seeds each."""
    specs = [
        spec
        for spec in plan_lambda_ablation(LAMBDA_STUDY_SEEDS, recipe, dataset)
        if spec.attention == "simam" and spec.lambda_ not in (None, PAPER_LAMBDA)
    ]
    finished = {line["run_id"] for line in results}
    return sum(spec.run_id in finished for spec in specs), len(specs)


def lambda_study_command(dataset: str, recipe: str, out: str = "results/") -> str:
    """The command that runs or continues the course's lambda study."""
    return (
        f"python -m simam.experiments run --lambda-ablation --datasets {dataset} "
        f"--seeds {LAMBDA_STUDY_SEEDS} --recipe {recipe} --out {out}"
    )


def lambda_cells(cells: Sequence[Cell], model: str) -> list[Cell]:
    return sorted(
        (c for c in cells if c.model == model and c.attention == "simam" and c.place is None),
        key=lambda c: -c.lambda_,
    )
