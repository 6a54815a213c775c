"""The course's judgment of a grid, computed from its cells: every attention module against the
network without attention, and SimAM against the best other module, on the final test accuracy and
on the flip-averaged one. Each comparison gives the difference of the means with Welch's 95%
interval, Welch's p-value and an exact permutation test's; the module-versus-none comparisons are
corrected together by Holm's method. The verdict sentences are generated from those numbers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from simam import stats
from simam.experiments.plan import plan_lambda_ablation
from simam.experiments.summary import Cell
from simam.paper_results import ATTENTIONS, PAPER_LAMBDA

LEVEL = 0.05  # two-sided significance level of every verdict
EFFECT = 0.4  # points: the size of the paper's ResNet-20 gain, for the seeds a grid needs
LAMBDA_STUDY_SEEDS = 2  # the course's lambda study on CIFAR-10: seeds per lambda
METRICS = {"final": "final test accuracy", "flip": "flip-averaged test accuracy"}


@dataclass(frozen=True)
class Comparison:
    """One module's mean accuracy minus another's, in points, over independent seeds."""

    attention: str
    baseline: str
    metric: str  # a key of METRICS
    n: int
    n_baseline: int
    difference: float
    low: float  # Welch's 95% interval
    high: float
    p_welch: float
    p_permutation: float
    exact: bool  # the permutation test enumerated every split
    holm_welch: float | None = None  # Holm-adjusted over the module-versus-none comparisons
    holm_permutation: float | None = None

    def established(self) -> bool:
        """Positive, and below the level by both tests (Holm-adjusted where corrected)."""
        welch = self.p_welch if self.holm_welch is None else self.holm_welch
        permutation = self.p_permutation if self.holm_permutation is None else self.holm_permutation
        return self.difference > 0 and max(welch, permutation) < LEVEL


@dataclass(frozen=True)
class Judgment:
    """The comparisons of one network's grid, per metric."""

    model: str
    against_none: dict[str, list[Comparison]]  # metric -> every module minus none, Holm-adjusted together
    best_other: str | None  # the module other than SimAM with the highest mean final accuracy
    simam_vs_best: dict[str, Comparison]  # metric -> SimAM minus best_other
    seeds_needed: int | None  # seeds per network to find EFFECT points, from the grid's none and SimAM spread
    seeds: dict[str, int]  # attention -> seeds finished


def _values(cell: Cell, metric: str) -> tuple[float, ...] | None:
    return cell.accuracies if metric == "final" else cell.flip_accuracies


def compare(cell: Cell, baseline: Cell, metric: str = "final") -> Comparison | None:
    """``cell`` minus ``baseline``; None without two seeds of each or without the metric."""
    a, b = _values(cell, metric), _values(baseline, metric)
    if a is None or b is None or len(a) < 2 or len(b) < 2:
        return None
    difference, low, high, _, p_welch = stats.welch(a, b)
    p_permutation, exact = stats.permutation_p(a, b)
    return Comparison(cell.attention, baseline.attention, metric, len(a), len(b), difference, low, high, p_welch,
                      p_permutation, exact)


def grid_cells(cells: Sequence[Cell], model: str) -> dict[str, Cell]:
    """The cells of ``model`` at the paper's lambda, by attention (cells of one table)."""
    return {cell.attention: cell for cell in cells if cell.model == model and cell.lambda_ in (None, PAPER_LAMBDA)}


def judge(cells: Sequence[Cell], model: str) -> Judgment | None:
    """The judgment of ``model``'s cells (one table), or None without two seeds without attention and
    two with SimAM."""
    found = grid_cells(cells, model)
    if "none" not in found or "simam" not in found or compare(found["simam"], found["none"]) is None:
        return None
    against_none, simam_vs_best = {}, {}
    others = [a for a in ATTENTIONS if a not in ("none", "simam") and a in found and found[a].n >= 2]
    best = max(others, key=lambda a: found[a].mean, default=None)
    for metric in METRICS:
        rows = [compare(found[a], found["none"], metric) for a in [*others, "simam"]]
        if None in rows:
            continue
        welch_holm = stats.holm([row.p_welch for row in rows])
        permutation_holm = stats.holm([row.p_permutation for row in rows])
        against_none[metric] = [replace(row, holm_welch=w, holm_permutation=p)
                                for row, w, p in zip(rows, welch_holm, permutation_holm)]
        versus = None if best is None else compare(found["simam"], found[best], metric)
        if versus is not None:
            simam_vs_best[metric] = versus
    return Judgment(model, against_none, best, simam_vs_best, grid_seeds_needed(cells, model),
                    {a: found[a].n for a in ATTENTIONS if a in found})


def grid_seeds_needed(cells: Sequence[Cell], model: str, effect: float = EFFECT) -> int | None:
    """Seeds per network for a two-sided 5% test to find ``effect`` points with 80% power, from the
    measured standard deviations of ``model`` without attention and with SimAM (None without two
    seeds of each)."""
    found = grid_cells(cells, model)
    if any(a not in found or found[a].std is None for a in ("none", "simam")):
        return None
    return stats.seeds_needed(found["none"].std, found["simam"].std, effect)


def _p(value: float) -> str:
    return f"{value:.3f}" if value >= 0.001 else "< 0.001"


def _p_is(value: float) -> str:
    """A p-value after its name in a sentence: "= 0.044" or "< 0.001"."""
    text = _p(value)
    return text if text.startswith("<") else f"= {text}"


def _difference(row: Comparison) -> str:
    return f"{row.difference:+.2f} [{row.low:+.2f}, {row.high:+.2f}]"


def judgment_table(judgment: Judgment) -> str:
    """The comparisons as a Markdown table: one row per comparison, the two metrics side by side."""
    head = "| comparison | seeds |"
    rule = "| --- | --- |"
    for metric in judgment.against_none:
        head += f" {METRICS[metric]}: difference [95% CI] | p: Welch, permutation | Holm-adjusted p |"
        rule += " --- | --- | --- |"
    rows = [head, rule]
    comparisons = list(zip(*judgment.against_none.values()))
    if judgment.simam_vs_best:
        comparisons.append(tuple(judgment.simam_vs_best[m] for m in judgment.against_none if m in judgment.simam_vs_best))
    for group in comparisons:
        first = group[0]
        row = f"| {first.attention} − {first.baseline} | {first.n}, {first.n_baseline} |"
        for item in group:
            holm = "—" if item.holm_welch is None else f"{_p(item.holm_welch)}, {_p(item.holm_permutation)}"
            row += f" {_difference(item)} | {_p(item.p_welch)}, {_p(item.p_permutation)} | {holm} |"
        rows.append(row)
    return "\n".join(rows) + "\n"


def _claim(row: Comparison, corrected: bool) -> str:
    holm = f"; Holm-adjusted {_p(row.holm_welch)} and {_p(row.holm_permutation)}" if corrected else ""
    return (f"{row.attention} − {row.baseline} = {row.difference:+.2f} points (95% CI [{row.low:+.2f}, "
            f"{row.high:+.2f}]; Welch p {_p_is(row.p_welch)}, permutation p {_p_is(row.p_permutation)}{holm})")


def _outcome(row: Comparison, versus: str) -> str:
    if row.established():
        return f"SimAM **beats {versus}**"
    if replace(row, difference=-row.difference).established():
        return f"**{versus} beats SimAM**"
    return f"SimAM is **not shown to beat {versus}**"


def verdict_text(judgment: Judgment) -> str:
    """The verdict of a judgment in Markdown sentences, every number taken from it."""
    parts = [f"**Verdict for {judgment.model}, at this budget** (established: a positive difference with "
             f"both p-values below {LEVEL:g}, after Holm's correction over the {len(judgment.against_none['final'])} "
             f"modules against no attention)."]
    for metric, rows in judgment.against_none.items():
        simam = rows[-1]
        state = "established" if simam.established() else "not established"
        parts.append(f"On the {METRICS[metric]}, {_claim(simam, True)}: SimAM's gain over no attention is "
                     f"**{state}**.")
    for metric, row in judgment.simam_vs_best.items():
        parts.append(f"Against {judgment.best_other}, the best other module, on the {METRICS[metric]}: "
                     f"{_claim(row, False)}: {_outcome(row, judgment.best_other)}.")
    simam, compared = judgment.against_none["final"][-1], len(judgment.against_none["final"])
    floor = stats.smallest_permutation_p(simam.n, simam.n_baseline)
    if compared * floor >= LEVEL:
        parts.append(f"With {simam.n} and {simam.n_baseline} seeds no permutation p-value can fall below {floor:.3f}, "
                     f"nor below {compared * floor:.3f} after Holm's correction over {compared}: at this budget the "
                     f"grid cannot establish a gain by both tests, however large.")
    seeds = ", ".join(f"{n} {attention}" for attention, n in judgment.seeds.items())
    if judgment.seeds_needed is not None:
        parts.append(f"A {EFFECT:g}-point effect, at the spread this grid measures without attention and with "
                     f"SimAM, needs {judgment.seeds_needed} seeds per network (two-sided {LEVEL:g} test, 80% power, "
                     f"normal approximation); the grid has {seeds}.")
    return " ".join(parts) + "\n"


def lambda_studies(cells: Sequence[Cell]) -> dict[tuple[str, str, str], list[Cell]]:
    """The SimAM cells of each (dataset, model, recipe) that has SimAM at two lambdas or more, by lambda."""
    studies: dict[tuple[str, str, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        if cell.attention == "simam":
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


def lambda_points(cells: Sequence[Cell], model: str) -> str:
    """SimAM's accuracy at each lambda of ``model``'s cells as a Markdown table, with the t interval of
    each mean where there are two seeds or more."""
    rows = ["| λ | seeds | final test accuracy %: mean | 95% CI of the mean |", "| --- | --- | --- | --- |"]
    simam_cells = sorted((c for c in cells if c.model == model and c.attention == "simam"), key=lambda c: -c.lambda_)
    for cell in simam_cells:
        interval = ("one seed: no interval" if cell.n < 2 else
                    "[{:.2f}, {:.2f}]".format(*stats.mean_interval(cell.accuracies)))
        grid = " (the grid's)" if cell.lambda_ == PAPER_LAMBDA else ""
        rows.append(f"| {cell.lambda_:g}{grid} | {cell.n} | {cell.mean:.2f} | {interval} |")
    return "\n".join(rows) + "\n"
