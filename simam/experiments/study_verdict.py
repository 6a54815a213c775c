"""A study's verdict, computed from its plan (:mod:`simam.experiments.study`) and the results file:
each planned comparison with Welch's 95% interval and p-value (a contrast of two cell means or more),
an exact permutation test's p-value where it compares two cells, the same test with runs exchanged
only within a CPU model where the runs come from several, and Holm's correction over the primary
family. The tables and sentences are generated from those numbers, and say which comparisons are
primary, secondary or exploratory."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simam import stats
from simam.experiments.study import METRICS, PlannedComparison, Study, read_study

LEVEL = 0.05  # two-sided significance level of every verdict


@dataclass(frozen=True)
class CellRuns:
    """The finished runs of one planned cell, in seed order: accuracies in percent and CPU models."""

    name: str
    planned: int
    final: tuple[float, ...]
    flip: tuple[float, ...] | None  # None if a run lacks the flip-averaged accuracy
    cpus: tuple[str, ...]

    def values(self, metric: str) -> tuple[float, ...] | None:
        return self.final if metric == "final" else self.flip


@dataclass(frozen=True)
class ComparisonResult:
    """One planned comparison, computed. ``p_permutation`` and ``p_within_cpu`` are None where the test
    does not apply (more than two cells; runs on one CPU model); the Holm values only for primary ones."""

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
        """``sign`` times the estimate is positive, and every p-value that applies (Holm-adjusted in the
        primary family) is below the level."""
        welch = self.p_welch if self.holm_welch is None else self.holm_welch
        permutation = self.p_permutation if self.holm_permutation is None else self.holm_permutation
        tests = [welch] + ([] if permutation is None else [permutation])
        return sign * self.estimate > 0 and max(tests) < LEVEL


@dataclass(frozen=True)
class StudyVerdict:
    """A study's comparisons, computed on every finished seed (``rows``) and, where the plan records an
    interim look, on the first ``study.interim_seeds`` seeds of each cell (``interim``)."""

    study: Study
    cells: dict[str, CellRuns]
    rows: tuple[ComparisonResult, ...]
    interim: tuple[ComparisonResult, ...] = ()

    @property
    def finished(self) -> tuple[int, int]:
        """(finished runs, planned runs) over the study's cells."""
        return sum(len(c.final) for c in self.cells.values()), sum(c.planned for c in self.cells.values())


def cpu_model(device: str) -> str:
    """The processor of a results line's ``device``, without its core and thread counts."""
    return device.split(",")[0].removeprefix("CPU: ")


def cell_runs(study: Study, results: Sequence[dict[str, Any]], seeds: int | None = None) -> dict[str, CellRuns]:
    """The finished runs of every cell of ``study`` (of its first ``seeds`` seeds, if given)."""
    first: dict[str, dict[str, Any]] = {}
    for line in results:
        first.setdefault(line["run_id"], line)
    cells = {}
    for name, cell in study.cells.items():
        lines = [first[run] for run in study.run_ids(name)[:seeds] if run in first]
        planned = len(cell.seeds[:seeds])
        flips = [line.get("final_test_accuracy_flip") for line in lines]
        cells[name] = CellRuns(name, planned, tuple(100 * line["final_test_accuracy"] for line in lines),
                               None if None in flips else tuple(100 * flip for flip in flips),
                               tuple(cpu_model(line["device"]) for line in lines))
    return cells


def compute(planned: PlannedComparison, cells: dict[str, CellRuns]) -> ComparisonResult | None:
    """``planned`` on ``cells``; None while a cell has fewer than two finished runs or lacks the metric."""
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
    return ComparisonResult(planned, tuple(len(g) for g in groups), estimate, low, high, df, p_welch, p_permutation,
                            p_within_cpu)


def _with_holm(rows: list[ComparisonResult], family: int) -> tuple[ComparisonResult, ...]:
    """Holm's correction over the primary rows, for a family of ``family`` planned comparisons. A
    planned comparison that cannot be computed yet, and a primary row without a permutation test in
    the permutation column, count as p = 1: every other row is corrected for the whole family."""
    primary = [i for i, row in enumerate(rows) if row.planned.kind == "primary"]
    missing = [1.0] * (family - len(primary))
    welch = stats.holm([rows[i].p_welch for i in primary] + missing)
    permutation = stats.holm([1.0 if rows[i].p_permutation is None else rows[i].p_permutation for i in primary]
                             + missing)
    rows = list(rows)
    for i, w, p in zip(primary, welch, permutation):
        rows[i] = dataclasses.replace(rows[i], holm_welch=w,
                                      holm_permutation=None if rows[i].p_permutation is None else p)
    return tuple(rows)


def judge_study(study: Study | str | Path, results: Sequence[dict[str, Any]]) -> StudyVerdict:
    """The verdict of ``study`` (a :class:`Study` or a plan's path) on the lines of a results file."""
    study = study if isinstance(study, Study) else read_study(study)
    cells = cell_runs(study, results)
    family = sum(c.kind == "primary" for c in study.comparisons)
    rows = [row for row in (compute(c, cells) for c in study.comparisons) if row is not None]
    interim: tuple[ComparisonResult, ...] = ()
    if study.interim_seeds:
        early = cell_runs(study, results, study.interim_seeds)
        interim = _with_holm([row for row in (compute(c, early) for c in study.comparisons
                                              if c.kind == "primary") if row is not None], family)
    return StudyVerdict(study, cells, _with_holm(rows, family), interim)


# --------------------------------------------------------------------------------------------------
# Tables and sentences


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.3f}" if value >= 0.001 else "< 0.001"


def _p_is(value: float) -> str:
    """A p-value after its name in a sentence: "= 0.044" or "< 0.001"."""
    text = _p(value)
    return text if text.startswith("<") else f"= {text}"


def comparison_table(rows: Sequence[ComparisonResult]) -> str:
    """The computed comparisons as a Markdown table, one row each."""
    lines = ["| comparison | kind | metric | seeds | difference, points [95% CI] | p: Welch, permutation "
             "| p: permutation within CPU models | Holm-adjusted p: Welch, permutation |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        holm = "—" if row.holm_welch is None else f"{_p(row.holm_welch)}, {_p(row.holm_permutation)}"
        lines.append(f"| {row.planned.name} | {row.planned.kind} | {METRICS[row.planned.metric]} "
                     f"| {', '.join(map(str, row.seeds))} | {row.estimate:+.2f} [{row.low:+.2f}, {row.high:+.2f}] "
                     f"| {_p(row.p_welch)}, {_p(row.p_permutation)} | {_p(row.p_within_cpu)} | {holm} |")
    return "\n".join(lines) + "\n"


def cpu_table(verdict: StudyVerdict) -> str:
    """Per CPU model, each cell's finished runs and mean final accuracy: which processor trained what."""
    cpus = sorted({cpu for cell in verdict.cells.values() for cpu in cell.cpus})
    lines = ["| cell | " + " | ".join(cpus) + " |", "| --- |" + " --- |" * len(cpus)]
    for cell in verdict.cells.values():
        entries = []
        for cpu in cpus:
            values = [v for v, c in zip(cell.final, cell.cpus) if c == cpu]
            entries.append(f"{len(values)}: {statistics.mean(values):.2f}" if values else "0")
        lines.append(f"| {cell.name} | " + " | ".join(entries) + " |")
    return "\n".join(lines) + "\n"


def _claim(row: ComparisonResult) -> str:
    permutation = "" if row.p_permutation is None else f", permutation p {_p_is(row.p_permutation)}"
    holm = "" if row.holm_welch is None else (
        f"; Holm-adjusted {_p(row.holm_welch)}" + ("" if row.holm_permutation is None else f" and {_p(row.holm_permutation)}"))
    return (f"{row.planned.name} = {row.estimate:+.2f} points (95% CI [{row.low:+.2f}, {row.high:+.2f}]; "
            f"Welch p {_p_is(row.p_welch)}{permutation}{holm})")


def _outcome(row: ComparisonResult, nominal: bool = False) -> str:
    """The outcome in bold; ``nominal`` for a plan written after its runs, whose p-values keep their
    meaning only for a design fixed in advance."""
    word = "nominally established" if nominal else "established"
    if row.established(+1):
        return f"**{word}, positive**"
    if row.established(-1):
        return f"**{word}, negative**"
    return "**not established**"


def verdict_text(verdict: StudyVerdict) -> str:
    """The study's verdict in Markdown sentences, every number taken from ``verdict``."""
    study, primary = verdict.study, [row for row in verdict.rows if row.planned.kind == "primary"]
    finished, planned = verdict.finished
    family = sum(c.kind == "primary" for c in study.comparisons)
    nominal = study.written == "after the runs"
    parts = [f"**Verdict of the {study.name} study** ({finished} of {planned} planned runs finished; plan "
             f"{study.provenance}). "
             f"A difference is established when every p-value that applies (Welch's, and the permutation "
             f"test's for two cells) is below {LEVEL:g}"
             + (f", after Holm's correction over the {family} primary comparisons." if family > 1 else ".")]
    if nominal:
        parts.append("Its plan was written after its runs, and decisions made after seeing results shaped them "
                     "(the plan's notes say which): its p-values are nominal, since their error rates hold only "
                     "for a design fixed in advance.")
    if primary:
        parts.append(f"Primary ({METRICS[study.primary_metric]}): "
                     + "; ".join(f"{_claim(row)}: {_outcome(row, nominal)}" for row in primary) + ".")
        if len(primary) < family:
            parts.append(f"{family - len(primary)} of the {family} primary comparisons cannot be computed yet "
                         f"(each cell needs two finished runs); Holm's correction counts them as p = 1.")
    else:
        parts.append("No primary comparison can be computed yet: each of its cells needs two finished runs.")
    for kind in ("secondary", "exploratory"):
        rows = [row for row in verdict.rows if row.planned.kind == kind]
        if rows:
            parts.append(f"{kind.capitalize()}, not part of the verdict: "
                         + "; ".join(f"on the {METRICS[row.planned.metric]}, {_claim(row)}" for row in rows) + ".")
    within = [row for row in primary if row.p_within_cpu is not None]
    if within:
        parts.append("The runs come from " + str(len({c for cell in verdict.cells.values() for c in cell.cpus}))
                     + " CPU models; exchanging runs only within a CPU model gives "
                     + "; ".join(f"p {_p_is(row.p_within_cpu)} for {row.planned.name}" for row in within)
                     + " (unadjusted, beside the verdict: it does not decide).")
    for row in primary:
        if row.p_permutation is not None:
            floor = family * stats.smallest_permutation_p(*row.seeds)
            if floor >= LEVEL:
                parts.append(f"With {row.seeds[0]} and {row.seeds[1]} seeds, {row.planned.name}'s permutation p "
                             f"cannot fall below {floor / family:.3f}, nor below {floor:.3f} after Holm's correction "
                             f"over {family}: no difference of that size of sample can be established by both tests.")
    if verdict.interim:
        parts.append(f"At the interim look, {study.interim_seeds} seeds per cell: "
                     + "; ".join(f"{_claim(row)}, {_outcome(row)}" for row in verdict.interim) + ".")
    return " ".join(parts) + "\n"


def study_section(verdict: StudyVerdict, figure: str | None = None) -> str:
    """A study as Markdown: the question, the plan's notes, the table, the CPU models and the verdict."""
    study = verdict.study
    finished, planned = verdict.finished
    command = f"python -m simam.experiments run --plan results/plans/{study.name}.toml --out results/"
    text = (f"**Question.** {' '.join(study.question.split())}\n\n**Plan** (`results/plans/{study.name}.toml`, "
            f"{study.provenance}). {' '.join(study.notes.split())}\n\n")
    if finished < planned:
        text += f"{finished} of its {planned} runs are finished. To run or continue it:\n\n```sh\n{command}\n```\n\n"
    text += (comparison_table(verdict.rows) + "\n" if verdict.rows else "") + verdict_text(verdict)
    if len({cpu for cell in verdict.cells.values() for cpu in cell.cpus}) > 1:
        text += "\nFinished runs and mean final test accuracy (%) per CPU model:\n\n" + cpu_table(verdict)
    return text + (f"\n![{study.name} study]({figure})\n" if figure else "")
