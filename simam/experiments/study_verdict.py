"""A study's verdict, computed from its plan (:mod:`simam.experiments.study`) and the results file:
each planned comparison with Welch's 95% interval and p-value (a contrast of two cell means or
more), an exact permutation test's p-value where it compares two cells, the same test with runs
exchanged only within a CPU model where the runs come from several, and Holm's correction over the
primary family. The course tells them in tables and sentences (:mod:`simam.course.verdicts`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simam import stats
from simam.experiments.results import read_results
from simam.experiments.study import PlannedComparison, Study, read_studies, read_study

LEVEL = 0.05  # two-sided significance level of every verdict


@dataclass(frozen=True)
class CellRuns:
    """The finished runs of one planned cell, in seed order: accuracies in percent
    and CPU models."""

    name: str
    planned: int
    final: tuple[float, ...]  # on the study's split: the test split, or the held-out images
    flip: tuple[float, ...] | None  # None if a run lacks the flip-averaged accuracy
    cpus: tuple[str, ...]
    # each run's whole command (None: not timed, as a resumed run)
    command_seconds: tuple[float | None, ...] = ()

    def values(self, metric: str) -> tuple[float, ...] | None:
        return self.flip if metric == "flip" else self.final


@dataclass(frozen=True)
class ComparisonResult:
    """One planned comparison, computed. ``p_permutation`` and ``p_within_cpu`` are None where the
    test does not apply (more than two cells; runs on one CPU model); the Holm values only for
    primary ones."""

    planned: PlannedComparison
    seeds: tuple[int, ...]  # finished runs per cell, plus cells then minus cells
    estimate: float
    low: float
    high: float
    df: float
    p_welch: float
    p_permutation: float | None
    p_within_cpu: float | None
    holm_welch: float | None = None
    holm_permutation: float | None = None

    def established(self, sign: int = 1) -> bool:
        """``sign`` times the estimate is positive, and every p-value that applies (Holm-adjusted in
        the primary family) is below the level."""
        welch = self.p_welch if self.holm_welch is None else self.holm_welch
        permutation = self.p_permutation if self.holm_permutation is None else self.holm_permutation
        tests = [welch] + ([] if permutation is None else [permutation])
        return sign * self.estimate > 0 and max(tests) < LEVEL


@dataclass(frozen=True)
class StudyVerdict:
    """A study's comparisons, computed on every finished seed (``rows``) and, where the plan records
    an interim look, on the first ``study.interim_seeds`` seeds of each cell (``interim``)."""

    study: Study
    cells: dict[str, CellRuns]
    rows: tuple[ComparisonResult, ...]
    interim: tuple[ComparisonResult, ...] = ()

    @property
    def finished(self) -> tuple[int, int]:
        """(finished runs, planned runs) over the study's cells."""
        return sum(len(c.final) for c in self.cells.values()), sum(
            c.planned for c in self.cells.values()
        )

    @property
    def complete(self) -> bool:
        """Whether every planned run is finished: only then is a plan's verdict its verdict."""
        finished, planned = self.finished
        return finished == planned

    def progress(self) -> str:
        """How far the study is, its own runs told apart from those it reuses:
        "16 of its 20 runs finished, 20 more reused from the grid study"."""
        own = [c for n, c in self.cells.items() if self.study.cells[n].reused_from is None]
        reused = [n for n, c in self.study.cells.items() if c.reused_from is not None]
        done, planned = sum(len(c.final) for c in own), sum(c.planned for c in own)
        text = f"{done} of its {planned} runs finished"
        if reused:
            sources = sorted({self.study.cells[n].reused_from for n in reused})
            count = sum(len(self.cells[n].final) for n in reused)
            text += f", {count} more reused from the {' and '.join(sources)} study"
        return text


def cpu_model(device: str) -> str:
    """The processor of a results line's ``device``, without its core and thread counts."""
    return device.split(",")[0].removeprefix("CPU: ")


def cell_runs(
    study: Study, results: Sequence[dict[str, Any]], seeds: int | None = None
) -> dict[str, CellRuns]:
    """The finished runs of every cell of ``study`` (of its first ``seeds`` seeds, if given)."""
    first: dict[str, dict[str, Any]] = {}
    for line in results:
        first.setdefault(line["run_id"], line)
    cells = {}
    for name, cell in study.cells.items():
        lines = [first[run] for run in study.run_ids(name)[:seeds] if run in first]
        planned = len(cell.seeds[:seeds])
        split = "holdout" if study.primary_metric == "holdout" else "test"
        flips = [line.get(f"final_{split}_accuracy_flip") for line in lines]
        cells[name] = CellRuns(
            name,
            planned,
            tuple(100 * line[f"final_{split}_accuracy"] for line in lines),
            None if None in flips else tuple(100 * flip for flip in flips),
            tuple(cpu_model(line["device"]) for line in lines),
            tuple(line.get("command_seconds") for line in lines),
        )
    return cells


def compute(planned: PlannedComparison, cells: dict[str, CellRuns]) -> ComparisonResult | None:
    """``planned`` on ``cells``; None while a cell has fewer than two finished runs
    or lacks the metric."""
    names = planned.plus + planned.minus
    groups = [cells[name].values(planned.metric) for name in names]
    if any(group is None or len(group) < 2 for group in groups):
        return None
    weights = [1.0] * len(planned.plus) + [-1.0] * len(planned.minus)
    estimate, low, high, df, p_welch = stats.contrast(groups, weights)
    p_permutation = p_within_cpu = None
    if len(planned.plus) == 1 and len(planned.minus) == 1:
        p_permutation = stats.permutation_p(*groups)[0]
        plus, minus = cells[planned.plus[0]], cells[planned.minus[0]]
        if len(set(plus.cpus + minus.cpus)) > 1:
            p_within_cpu = stats.stratified_permutation_p(*groups, plus.cpus, minus.cpus)[0]
    return ComparisonResult(
        planned,
        tuple(len(g) for g in groups),
        estimate,
        low,
        high,
        df,
        p_welch,
        p_permutation,
        p_within_cpu,
    )


def _with_holm(rows: list[ComparisonResult], family: int) -> tuple[ComparisonResult, ...]:
    """Holm's correction over the primary rows, for a family of ``family`` planned comparisons. A
    planned comparison that cannot be computed yet, and a primary row without a permutation test in
    the permutation column, count as p = 1: every other row is corrected for the whole family."""
    primary = [i for i, row in enumerate(rows) if row.planned.kind == "primary"]
    missing = [1.0] * (family - len(primary))
    welch = stats.holm([rows[i].p_welch for i in primary] + missing)
    permutation = stats.holm(
        [1.0 if rows[i].p_permutation is None else rows[i].p_permutation for i in primary] + missing
    )
    rows = list(rows)
    for i, w, p in zip(primary, welch, permutation):
        rows[i] = dataclasses.replace(
            rows[i], holm_welch=w, holm_permutation=None if rows[i].p_permutation is None else p
        )
    return tuple(rows)


def judge_in(study: Study, results: Sequence[dict[str, Any]], out: str | Path) -> StudyVerdict:
    """``study``'s verdict on ``results``, the lines of the results folder ``out`` or, for a study
    with a folder of its own there (a study of the recipe), on that folder's."""
    return judge_study(
        study, results if study.folder is None else read_results(study.results_folder(out))
    )


def judge_studies(out: str | Path) -> list[StudyVerdict]:
    """The verdict of every plan in ``out/plans/``, in the course's order (:func:`judge_in`)."""
    results = read_results(out)
    return [judge_in(study, results, out) for study in read_studies(out)]


def judge_study(study: Study | str | Path, results: Sequence[dict[str, Any]]) -> StudyVerdict:
    """The verdict of ``study`` (a :class:`Study` or a plan's path) on the lines
    of a results file."""
    study = study if isinstance(study, Study) else read_study(study)
    cells = cell_runs(study, results)
    family = sum(c.kind == "primary" for c in study.comparisons)
    rows = [row for row in (compute(c, cells) for c in study.comparisons) if row is not None]
    interim: tuple[ComparisonResult, ...] = ()
    if study.interim_seeds:
        early = cell_runs(study, results, study.interim_seeds)
        interim = _with_holm(
            [
                row
                for row in (compute(c, early) for c in study.comparisons if c.kind == "primary")
                if row is not None
            ],
            family,
        )
    return StudyVerdict(study, cells, _with_holm(rows, family), interim)
