"""The trick table: each cell of a recipe study (a plan with ``adopt_at``) with what it changes, its
mean accuracy on the held-out images, its difference from base with Welch's 95% interval, what the
plan's rule decides, and its training speed from ``python -m simam.bench tricks`` (the file
:data:`THROUGHPUT` in the study's folder). Every number comes from the results and that file."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from simam.experiments.study import BASE, METRICS
from simam.experiments.study_verdict import StudyVerdict

THROUGHPUT = "throughput.json"  # written by python -m simam.bench tricks --out


def read_throughput(folder: str | Path) -> dict[str, Any] | None:
    """What ``python -m simam.bench tricks --out`` wrote into ``folder``, or None if it has not."""
    path = Path(folder, THROUGHPUT)
    return json.loads(path.read_text()) if path.is_file() else None


def _decision(verdict: StudyVerdict, cell: str) -> str:
    row = next(
        (r for r in verdict.rows if r.planned.plus == (cell,) and r.planned.minus == (BASE,)),
        None,
    )
    if row is None:
        return "—", "waiting for two runs of it and of base"
    interval = f"{row.estimate:+.2f} [{row.low:+.2f}, {row.high:+.2f}]"
    if not verdict.complete:  # the plan decides on every run, not on the first ones in
        finished, planned = verdict.finished
        return interval, f"decided when all {planned} runs are in ({finished} now)"
    return interval, "**adopt**" if row.estimate >= verdict.study.adopt_at else "keep base"


def adopted(verdict: StudyVerdict) -> list[str]:
    """The cells whose change the plan's rule adopts, in the plan's order: none until every run of
    the study is in."""
    return [name for name in verdict.study.cells if _decision(verdict, name)[1] == "**adopt**"]


def trick_table(verdict: StudyVerdict, throughput: dict[str, Any] | None) -> str:
    """The study's cells (then the speed-only pipelines of ``throughput``) as a Markdown table."""
    study = verdict.study
    if study.adopt_at is None:
        raise ValueError(f"the plan {study.name} has no adopt_at rule: it is not a recipe study")
    speeds = {row["cell"]: row for row in (throughput or {}).get("rows", [])}
    metric = METRICS[study.primary_metric]
    lines = [
        f"| cell | trainer options over the recipe's | runs | {metric}, % (mean) "
        f"| − base, points [95% CI] | rule: adopt at ≥ {study.adopt_at:+.2f} | images/s "
        "| speed against base |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    names = [*study.cells, *(name for name in speeds if name not in study.cells)]
    for name in names:
        cell, runs = study.cells.get(name), verdict.cells.get(name)
        if cell is None:
            options, count, mean, interval, rule = "—", "—", "—", "—", "not trained: speed only"
        else:
            options = " ".join(cell.options) or "—"
            count = f"{len(runs.final)} of {runs.planned}"
            mean = f"{statistics.mean(runs.final):.2f}" if runs.final else "—"
            interval, rule = ("", "the reference") if name == BASE else _decision(verdict, name)
        speed = speeds.get(name)
        rate, ratio = (
            ("—", "—")
            if speed is None
            else (f"{speed['images_per_second']:,.0f}", f"{speed['ratio']:.2f}x")
        )
        options = options if options == "—" else f"`{options}`"
        lines.append(
            f"| {name} | {options} | {count} | {mean} | {interval} | {rule} | {rate} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


def trick_caption(verdict: StudyVerdict, throughput: dict[str, Any] | None) -> str:
    """Where the table's numbers come from, in one paragraph."""
    finished, planned = verdict.finished
    speed = (
        "Speed: not measured yet (`python -m simam.bench tricks --out "
        f"results/{verdict.study.folder}/{THROUGHPUT}`, with nothing else on the CPU)."
        if throughput is None
        else (
            f"Speed: training images per second of each cell's step, timed side by side by "
            f"`python -m simam.bench tricks` ({throughput['rounds']} rounds of "
            f"{throughput['iterations']} steps each) on {throughput['device']}, nothing else "
            "running; channels_last and the whole model compiled change the speed only, so the "
            "study does not train them."
        )
    )
    return (
        f"The {verdict.study.name} study, {finished} of {planned} runs finished: "
        f"{verdict.study.model} + SimAM, the {verdict.study.recipe} recipe with one change per "
        f"cell, judged on the {METRICS[verdict.study.primary_metric]}. The interval is Welch's; "
        "with two runs a cell it is wide, and the plan decides by the rule of the column "
        "headed rule, fixed before the runs and applied once all of them are in, not by a test. "
        f"{speed}\n"
    )
