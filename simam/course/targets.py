"""The target table: for each cell of a study whose plan gives it targets (``target``, ``seconds``),
every run's accuracy and whole-command seconds, the cell's mean, and whether the recipe meets its
targets. Every number comes from the results file; nothing is decided before every planned run of
the cell is in."""

from __future__ import annotations

import statistics

from simam.experiments.study import METRICS
from simam.experiments.study_verdict import CellRuns, StudyVerdict


def _accuracy_verdict(runs: CellRuns, target: float) -> str:
    if len(runs.final) < runs.planned:
        return f"decided when all {runs.planned} runs are in ({len(runs.final)} now)"
    mean = statistics.mean(runs.final)
    return "**met**" if mean >= target else f"**missed** by {target - mean:.2f} points"


def _time_verdict(runs: CellRuns, budget: float) -> str:
    timed = [s for s in runs.command_seconds if s is not None]
    over = sum(s > budget for s in timed)
    untimed = len(runs.command_seconds) - len(timed)
    if over:
        return f"**missed**: {over} of {len(runs.command_seconds)} runs over"
    if untimed:
        return f"{untimed} run(s) not timed (resumed)"
    if len(runs.final) < runs.planned:
        return f"decided when all {runs.planned} runs are in ({len(runs.final)} now)"
    return "**met**"


def target_table(verdict: StudyVerdict) -> str:
    """The cells with targets as a Markdown table; an empty string if the plan sets none."""
    cells = [c for c in verdict.study.cells.values() if c.target is not None or c.seconds]
    if not cells:
        return ""
    metric = METRICS[verdict.study.primary_metric]
    lines = [
        f"| cell | recipe | runs | {metric}, % (each seed) | mean ± sd | target | reached "
        "| whole command, s (each seed) | budget, s | within |",
        "| --- | --- | ---: | --- | ---: | ---: | --- | --- | ---: | --- |",
    ]
    for cell in cells:
        runs = verdict.cells[cell.name]
        each = ", ".join(f"{value:.2f}" for value in runs.final) or "—"
        if len(runs.final) > 1:
            mean = f"{statistics.mean(runs.final):.2f} ± {statistics.stdev(runs.final):.2f}"
        else:
            mean = f"{runs.final[0]:.2f}" if runs.final else "—"
        seconds = ", ".join("—" if s is None else f"{s:.0f}" for s in runs.command_seconds)
        target, reached = (
            ("—", "—")
            if cell.target is None
            else (f"{cell.target:.1f}", _accuracy_verdict(runs, cell.target))
        )
        budget, within = (
            ("—", "—")
            if cell.seconds is None
            else (f"{cell.seconds:.0f}", _time_verdict(runs, cell.seconds))
        )
        lines.append(
            f"| {cell.name} | {cell.recipe} | {len(runs.final)} of {runs.planned} | {each} "
            f"| {mean} | {target} | {reached} | {seconds or '—'} | {budget} | {within} |"
        )
    return "\n".join(lines) + "\n"


def target_lines(verdict: StudyVerdict) -> list[str]:
    """Each cell with targets in one plain line, for the course's summary."""
    lines = []
    for cell in verdict.study.cells.values():
        if cell.target is None and cell.seconds is None:
            continue
        runs = verdict.cells[cell.name]
        mean = f"{statistics.mean(runs.final):.2f}%" if runs.final else "no run yet"
        parts = [f"  {cell.name} ({cell.recipe}): {mean}, {len(runs.final)} of {runs.planned} runs"]
        if cell.target is not None:
            parts.append(f"target {cell.target:.1f}%: {_accuracy_verdict(runs, cell.target)}")
        if cell.seconds is not None:
            parts.append(f"within {cell.seconds:.0f} s: {_time_verdict(runs, cell.seconds)}")
        lines.append("; ".join(parts).replace("**", ""))
    return lines


def target_caption(verdict: StudyVerdict) -> str:
    """What the target table's columns are, in one paragraph."""
    cpus = sorted({cpu for runs in verdict.cells.values() for cpu in runs.cpus})
    where = f" Runs on: {', '.join(cpus)}." if cpus else ""
    return (
        f"The {verdict.study.name} study against its targets: a cell reaches its target when the "
        "mean of all its planned seeds is at least the target, and stays within its budget when "
        "every run's whole command (from the trainer's start to its exit, as timed by "
        "`python -m simam.experiments run`) takes at most the budget's seconds; a resumed run's "
        f"command is not timed.{where}\n"
    )
