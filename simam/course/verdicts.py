"""The course's verdicts in words: a study's comparisons as a Markdown table and as sentences that
tell primary, secondary and exploratory comparisons apart, which CPU model trained what, and the λ
study's intervals and omnibus test. Every number comes from :mod:`simam.experiments.study_verdict`
and :mod:`simam.stats`; nothing here decides a verdict."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

from simam import stats
from simam.course.targets import target_caption, target_lines, target_table
from simam.course.tricks import trick_caption, trick_table
from simam.experiments.study import METRICS
from simam.experiments.study_verdict import LEVEL, ComparisonResult, StudyVerdict
from simam.experiments.summary import Cell
from simam.experiments.verdict import lambda_cells
from simam.paper_results import PAPER_LAMBDA

FIGURE4_SPREAD = 0.3  # points: the paper's Figure 4 draws every λ within about this of the others


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
    lines = [
        "| comparison | kind | metric | seeds | difference, points [95% CI] "
        "| p: Welch, permutation | p: permutation within CPU models "
        "| Holm-adjusted p: Welch, permutation |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        holm = (
            "—" if row.holm_welch is None else f"{_p(row.holm_welch)}, {_p(row.holm_permutation)}"
        )
        lines.append(
            f"| {row.planned.name} | {row.planned.kind} | {METRICS[row.planned.metric]} "
            f"| {', '.join(map(str, row.seeds))} "
            f"| {row.estimate:+.2f} [{row.low:+.2f}, {row.high:+.2f}] "
            f"| {_p(row.p_welch)}, {_p(row.p_permutation)} | {_p(row.p_within_cpu)} | {holm} |"
        )
    return "\n".join(lines) + "\n"


def cpu_table(verdict: StudyVerdict) -> str:
    """Per CPU model, each cell's finished runs and mean final accuracy:
    which processor trained what."""
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
    holm = (
        ""
        if row.holm_welch is None
        else (
            f"; Holm-adjusted {_p(row.holm_welch)}"
            + ("" if row.holm_permutation is None else f" and {_p(row.holm_permutation)}")
        )
    )
    return (
        f"{row.planned.name} = {row.estimate:+.2f} points (95% CI [{row.low:+.2f}, "
        f"{row.high:+.2f}]; Welch p {_p_is(row.p_welch)}{permutation}{holm})"
    )


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
    family = sum(c.kind == "primary" for c in study.comparisons)
    nominal = study.written == "after the runs"
    title = "Verdict" if verdict.complete else "Interim look, not the verdict,"
    parts = [
        f"**{title} of the {study.name} study** ({verdict.progress()}; plan {study.provenance})."
    ]
    if not verdict.complete:
        parts.append(
            "Its plan fixes its runs in advance; the verdict is what its comparisons say once all "
            "of them are in, and nothing below decides anything before then."
        )
    if family:
        parts.append(
            "A difference is established when every p-value that applies (Welch's, and the "
            f"permutation test's for two cells) is below {LEVEL:g}"
            + (
                f", after Holm's correction over the {family} primary comparisons."
                if family > 1
                else "."
            )
        )
    if nominal:
        parts.append(
            "Its plan was written after its runs, and decisions made after seeing results shaped "
            "them (the plan's notes say which): its p-values are nominal, since their error rates "
            "hold only for a design fixed in advance."
        )
    if study.adopt_at is not None:
        parts.append(
            "It screens changes to a recipe: none of its comparisons is primary or corrected, and "
            f"it adopts a change whose mean beats base's by at least {study.adopt_at:g} points "
            "(the trick table)."
        )
    elif not family and any(c.target is not None for c in study.cells.values()):
        parts.append(
            "It measures a recipe against targets fixed in its plan, not one cell against another: "
            "the target table above is its verdict"
            + (" once every run is in." if not verdict.complete else ".")
        )
    elif primary:
        parts.append(
            f"Primary ({METRICS[study.primary_metric]}): "
            + "; ".join(f"{_claim(row)}: {_outcome(row, nominal)}" for row in primary)
            + "."
        )
        if len(primary) < family:
            parts.append(
                f"{family - len(primary)} of the {family} primary comparisons cannot be computed "
                f"yet (each cell needs two finished runs); Holm's correction counts them as p = 1."
            )
    else:
        parts.append(
            "No primary comparison can be computed yet: each of its cells needs two finished runs."
        )
    for kind in ("secondary", "exploratory"):
        rows = [row for row in verdict.rows if row.planned.kind == kind]
        if rows and study.adopt_at is None:
            parts.append(
                f"{kind.capitalize()}, not part of the verdict: "
                + "; ".join(f"on the {METRICS[row.planned.metric]}, {_claim(row)}" for row in rows)
                + "."
            )
    within = [row for row in primary if row.p_within_cpu is not None]
    if within:
        parts.append(
            "The runs come from "
            + str(len({c for cell in verdict.cells.values() for c in cell.cpus}))
            + " CPU models; exchanging runs only within a CPU model gives "
            + "; ".join(f"p {_p_is(row.p_within_cpu)} for {row.planned.name}" for row in within)
            + " (unadjusted, beside the verdict: it does not decide)."
        )
    for row in primary:
        if row.p_permutation is not None:
            floor = family * stats.smallest_permutation_p(*row.seeds)
            if floor >= LEVEL:
                parts.append(
                    f"With {row.seeds[0]} and {row.seeds[1]} seeds, {row.planned.name}'s "
                    f"permutation p cannot fall below {floor / family:.3f}, nor below {floor:.3f} "
                    f"after Holm's correction over {family}: "
                    "no difference of that size of sample can be established by both tests."
                )
    if verdict.interim:
        parts.append(
            f"At the interim look, {study.interim_seeds} seeds per cell: "
            + "; ".join(f"{_claim(row)}, {_outcome(row)}" for row in verdict.interim)
            + "."
        )
    return " ".join(parts) + "\n"


def study_summary(verdict: StudyVerdict) -> str:
    """A study in a few plain lines, for the course's summary: how far it is, then each primary
    comparison with its outcome (or the rule a screening study decides by)."""
    study = verdict.study
    look = "verdict" if verdict.complete else "interim look, not the verdict"
    lines = [f"{study.name} study, {verdict.progress()}; plan {study.provenance}; {look}:"]
    if study.adopt_at is not None:
        lines.append(
            f"  screens changes to the recipe: adopts one whose mean beats base's by "
            f"{study.adopt_at:g} points or more (its trick table)"
        )
    nominal = study.written == "after the runs"
    for row in verdict.rows:
        if row.planned.kind == "primary":
            outcome = _outcome(row, nominal).strip("*")
            p = row.p_welch if row.holm_welch is None else row.holm_welch
            lines.append(
                f"  {row.planned.name}: {row.estimate:+.2f} points [{row.low:+.2f}, "
                f"{row.high:+.2f}], Holm-adjusted Welch p {_p_is(p)}: {outcome}"
            )
    targets = target_lines(verdict)
    lines += targets
    if (
        study.adopt_at is None
        and not targets
        and not any(r.planned.kind == "primary" for r in verdict.rows)
    ):
        lines.append("  no primary comparison yet: each of its cells needs two finished runs")
    return "\n".join(lines)


def study_section(
    verdict: StudyVerdict, figure: str | None = None, throughput: dict[str, Any] | None = None
) -> str:
    """A study as Markdown: the question, the plan's notes, the table (for a recipe study the
    trick table, with the speeds of ``throughput``), the CPU models and the verdict."""
    study = verdict.study
    command = (
        f"python -m simam.experiments run --plan results/plans/{study.name}.toml --out results/"
    )
    text = (
        f"**Question.** {' '.join(study.question.split())}\n\n**Plan** "
        f"(`results/plans/{study.name}.toml`, {study.provenance}). "
        f"{' '.join(study.notes.split())}\n\n"
    )
    if not verdict.complete:
        text += (
            f"{verdict.progress().capitalize()}. To run or continue it:\n\n"
            f"```sh\n{command}\n```\n\n"
        )
    if study.adopt_at is None:
        text += comparison_table(verdict.rows) + "\n" if verdict.rows else ""
    else:
        text += trick_caption(verdict, throughput) + "\n" + trick_table(verdict, throughput) + "\n"
    targets = target_table(verdict)
    if targets:
        text += target_caption(verdict) + "\n" + targets + "\n"
    text += verdict_text(verdict)
    if len({cpu for cell in verdict.cells.values() for cpu in cell.cpus}) > 1:
        text += "\nFinished runs and mean final test accuracy (%) per CPU model:\n\n" + cpu_table(
            verdict
        )
    return text + (f"\n![{study.name} study]({figure})\n" if figure else "")


def lambda_points(cells: Sequence[Cell], model: str) -> str:
    """SimAM's accuracy at each lambda of ``model``'s cells as a Markdown table: each mean with its
    95% interval from the spread pooled over every lambda (one width for every mean of the same
    number of seeds; needs two seeds somewhere)."""
    group = lambda_cells(cells, model)
    if sum(c.n - 1 for c in group) < 1:
        rows = ["| λ | seeds | final test accuracy %: mean |", "| --- | --- | --- |"]
        rows += [f"| {c.lambda_:g} | {c.n} | {c.mean:.2f} |" for c in group]
        return "\n".join(rows) + "\n\nOne seed per λ: no spread, so no interval.\n"
    intervals, pooled, df = stats.pooled_intervals([c.accuracies for c in group])
    rows = [
        "| λ | seeds | final test accuracy %: mean | 95% CI of the mean "
        f"(pooled spread, {df} degrees of freedom) |",
        "| --- | --- | --- | --- |",
    ]
    for cell, (low, high) in zip(group, intervals):
        grid = " (the grid's)" if cell.lambda_ == PAPER_LAMBDA else ""
        rows.append(
            f"| {cell.lambda_:g}{grid} | {cell.n} | {cell.mean:.2f} | [{low:.2f}, {high:.2f}] |"
        )
    return "\n".join(rows) + "\n"


def lambda_omnibus(cells: Sequence[Cell], model: str) -> str:
    """Whether λ changes SimAM's final accuracy at all, in sentences: a one-way ANOVA and a
    Kruskal-Wallis test across ``model``'s λ cells, the pooled spread, and the smallest difference
    between two λ of the study's seeds that a 5% test would find with 80% power."""
    from scipy import (
        stats as scipy_stats,  # the course's dependency; imported only for this test
    )

    group = lambda_cells(cells, model)
    samples = [c.accuracies for c in group]
    if sum(len(values) - 1 for values in samples) < 1:
        return "One seed per λ: no spread within a λ, so no test of whether λ matters.\n"
    anova, kruskal = scipy_stats.f_oneway(*samples), scipy_stats.kruskal(*samples)
    _, pooled, df = stats.pooled_intervals(samples)
    fewest = min(c.n for c in group)
    smallest = (
        (stats.t_quantile(1 - LEVEL / 2, df) + stats.t_quantile(0.8, df))
        * pooled
        * (2 / fewest) ** 0.5
    )
    below = [p < LEVEL for p in (anova.pvalue, kruskal.pvalue)]
    verdict = (
        "both tests find"
        if all(below)
        else "the two tests disagree on whether"
        if any(below)
        else "nothing shows"
    )
    largest = max(c.n for c in group)
    text = (
        f"Across the {len(group)} values of λ, a one-way ANOVA gives F({len(group) - 1}, {df}) = "
        f"{anova.statistic:.2f}, p = {anova.pvalue:.2f}, and a Kruskal-Wallis test H = "
        f"{kruskal.statistic:.2f}, p = {kruskal.pvalue:.2f}: {verdict} that λ changes the final "
        "test accuracy at this budget. Assuming the seeds of every λ scatter alike, they spread "
        f"by {pooled:.2f} points within a λ (pooled; {largest - 1} of the {df} degrees of freedom "
        f"come from the cell of {largest} seeds); with {fewest} seeds per λ, "
        f"two values of λ would have to differ by about {smallest:.2f} points for a 5% test to "
        "find it with 80% power."
    )
    if smallest > FIGURE4_SPREAD:
        text += (
            " Differences of the size the paper's Figure 4 draws (every λ within about "
            f"{FIGURE4_SPREAD:g} points of the others, ResNet-20 on CIFAR-100) "
            "are beyond this study."
        )
    return text + "\n"
