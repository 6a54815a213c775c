"""A study's plan, written before its runs: the question, its cells and seeds, the primary metric,
the comparisons and the family that Holm's correction runs over. ``run --plan FILE`` trains exactly
its cells; the verdict computes exactly its comparisons.

A plan is a TOML file under ``results/plans/``::

    question = "Does SimAM help because of what it computes or because of where it sits?"
    written = "before the runs"            # or "after the runs": its verdicts are then nominal
    dataset = "cifar10"
    model = "resnet20"
    recipe = "quick"
    primary_metric = "final"               # final test accuracy; "flip": flip-averaged

    [cells.simam]                          # a cell: one configuration over seeds
    attention = "simam"
    seeds = 10
    from = "grid"                          # trained before this plan, by the grid study
    [cells.simam_end]
    attention = "simam"
    place = "end_of_branch"                # optional: place, lambda, recipe (else the study's)
    seeds = 10

    [[comparisons]]                        # a contrast of cell means: sum(plus) - sum(minus)
    name = "SimAM: after the convolution − at the end of the branch"
    plus = ["simam"]
    minus = ["simam_end"]
    primary = true                         # the primary family, Holm-corrected together

A study of the recipe itself changes trainer options instead (``options``, for every cell and per
cell); its runs are then named by their cell (``...-quick-ema-seed0``) and kept in a folder of their
own inside the results folder (``folder``), with their own results file::

    folder = "tricks"
    primary_metric = "holdout"             # accuracy on training images held out to choose on
    options = ["--holdout", "5000"]
    [cells.ema]
    attention = "simam"
    seeds = 2
    options = ["--ema", "0.998"]

A study of a recipe against its targets gives a cell the mean it must reach on the primary
metric, in percent, and the seconds each run's whole command may take (``target = 90.0``,
``seconds = 900``); the target table (:mod:`simam.course.targets`) says whether it does.

A screening study of the recipe (a ``base`` cell and one change per other cell) may fix its rule
for adopting a change, in points of the primary metric over base (``adopt_at = 0.15``); the trick
table (:mod:`simam.course.tricks`) applies it.

A comparison is ``primary`` (in the corrected family), ``secondary`` (planned, reported beside it,
not corrected) or ``exploratory`` (decided after looking at results). A plan written after its
runs says so (``written``), and every table and sentence made from it repeats that.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simam.experiments.plan import GridError, RunSpec, check_extra_args, plan

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

METRICS = {
    "final": "final test accuracy",
    "flip": "flip-averaged test accuracy",
    "holdout": "final accuracy on the held-out training images",
}

KINDS = ("primary", "secondary", "exploratory")
BASE = "base"  # the cell a screening study (``adopt_at``) compares every other cell with


@dataclass(frozen=True)
class PlannedCell:
    """One cell of a study: a configuration and the seeds it is planned with (a plan's ``seeds = n``
    is seeds 0..n-1)."""

    name: str
    attention: str
    seeds: tuple[int, ...]
    recipe: str
    place: str | None = None
    lambda_: float | None = None
    # the study that trained this cell's runs before this plan (``from``)
    reused_from: str | None = None
    options: tuple[str, ...] = ()  # trainer options of this cell, after the study's
    # a recipe's targets: the cell's mean on the primary metric (%) at least ``target``, each run's
    # whole command at most ``seconds``
    target: float | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class PlannedComparison:
    """A contrast of cell means, ``sum(plus) - sum(minus)``, on ``metric``, of kind ``kind``
    (:data:`KINDS`)."""

    name: str
    plus: tuple[str, ...]
    minus: tuple[str, ...]
    kind: str
    metric: str


@dataclass(frozen=True)
class Study:
    """A plan as read from its file (see the module's docstring). ``written``:
    ``"before the runs"``, ``"after the runs"``, or ``"standard"`` for the comparisons
    :func:`simam.experiments.judge` makes of any grid without a plan, fixed in the code before any
    result."""

    name: str
    question: str
    written: str
    dataset: str
    model: str
    recipe: str
    primary_metric: str
    cells: dict[str, PlannedCell]
    comparisons: tuple[PlannedComparison, ...]
    notes: str = ""
    # seeds at an interim look, where the plan records one
    interim_seeds: int | None = None
    # the study's place in the course (plans without one come last)
    order: int | None = None
    options: tuple[str, ...] = ()  # trainer options of every cell
    folder: str | None = None  # where its runs live inside the results folder (None: there)
    # a screening study's rule: a cell's change is adopted if its mean beats base's by this (points)
    adopt_at: float | None = None

    @property
    def provenance(self) -> str:
        """When the plan was made, as the tables and sentences say it."""
        return {
            "before the runs": "committed before its first run",
            "after the runs": "written after its runs",
            "standard": "the standard comparisons of a grid, fixed before any result",
        }[self.written]

    def cell_specs(self, cell: str) -> list[RunSpec]:
        """The runs of the cell called ``cell``, in seed order."""
        c = self.cells[cell]
        specs = plan(
            [self.model],
            [c.attention],
            [self.dataset],
            c.seeds,
            [c.recipe],
            None if c.lambda_ is None else [c.lambda_],
            c.place,
        )
        options = self.options + c.options
        if not options:
            return specs
        return [dataclasses.replace(s, variant=cell, options=options) for s in specs]

    def specs(self) -> list[RunSpec]:
        """Every run of the study, cell by cell (finished runs included: the grid skips them)."""
        return [spec for cell in self.cells for spec in self.cell_specs(cell)]

    def run_ids(self, cell: str) -> list[str]:
        """The run ids of the cell called ``cell``, in seed order."""
        return [spec.run_id for spec in self.cell_specs(cell)]

    def results_folder(self, out: str | Path) -> Path:
        """Where this study's runs and results file are, in the results folder ``out``."""
        return Path(out) if self.folder is None else Path(out, self.folder)


PLANS = "plans"


def read_studies(out: str | Path) -> list[Study]:
    """The plans in ``out/plans/``, in the order their ``order`` keys give
    (the order of the course)."""
    studies = [read_study(path) for path in sorted(Path(out, PLANS).glob("*.toml"))]
    return sorted(studies, key=lambda study: (study.order is None, study.order or 0, study.name))


def read_study(path: str | Path) -> Study:
    """The plan in the TOML file ``path``;
    :class:`GridError` names the first thing wrong with it."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise GridError(f"plan {path}: {error}") from None
    try:
        return _study(path.stem, data)
    except (KeyError, TypeError, ValueError) as error:
        message = f"missing {error}" if isinstance(error, KeyError) else str(error)
        raise GridError(f"plan {path}: {message}") from None


def _study(name: str, data: dict[str, Any]) -> Study:
    written = data["written"]
    if written not in ("before the runs", "after the runs"):
        raise ValueError(f"written must be 'before the runs' or 'after the runs', got {written!r}")
    metric = data.get("primary_metric", "final")
    if metric not in METRICS:
        raise ValueError(f"primary_metric must be one of {', '.join(METRICS)}, got {metric!r}")
    cells = {
        key: PlannedCell(
            key,
            cell["attention"],
            tuple(range(int(cell["seeds"]))),
            cell.get("recipe", data["recipe"]),
            cell.get("place"),
            cell.get("lambda"),
            cell.get("from"),
            _options(cell),
            _positive(cell, "target", 100),
            _positive(cell, "seconds"),
        )
        for key, cell in data["cells"].items()
    }
    comparisons = tuple(_comparison(entry, cells, metric) for entry in data.get("comparisons", []))
    study = Study(
        name,
        data["question"],
        written,
        data["dataset"],
        data["model"],
        data["recipe"],
        metric,
        cells,
        comparisons,
        data.get("notes", "").strip(),
        data.get("interim_seeds"),
        data.get("order"),
        _options(data),
        data.get("folder"),
        _adopt_at(data, cells),
    )
    study.specs()  # unknown names, places and seeds fail here, not halfway through a grid
    return study


def _adopt_at(data: dict[str, Any], cells: dict[str, PlannedCell]) -> float | None:
    """A plan's ``adopt_at`` (points, positive), which needs a cell called ``base``."""
    value = data.get("adopt_at")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"adopt_at must be a positive number of points, got {value!r}")
    if BASE not in cells:
        raise ValueError(f"adopt_at needs a cell called {BASE!r} to compare against")
    return float(value)


def _positive(table: dict[str, Any], key: str, at_most: float | None = None) -> float | None:
    """A plan's number ``key`` of ``table``, positive (and at most ``at_most``), or None."""
    value = table.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 < value <= (at_most or float("inf"))
    ):
        limit = "" if at_most is None else f" up to {at_most:g}"
        raise ValueError(f"{key} must be a positive number{limit}, got {value!r}")
    return float(value)


def _options(table: dict[str, Any]) -> tuple[str, ...]:
    """A plan's ``options`` (trainer options, a list of strings), checked as the trainer reads
    them, and leaving what a cell is (network, attention, seed, recipe, where it goes) to the
    plan."""
    options = table.get("options", [])
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        raise ValueError(f"options must be a list of strings, got {options!r}")
    try:
        check_extra_args(options)
    except GridError as error:
        raise ValueError(str(error).replace("trainer options", "options")) from None
    return tuple(options)


def _comparison(
    entry: dict[str, Any], cells: dict[str, PlannedCell], primary_metric: str
) -> PlannedComparison:
    plus, minus = tuple(entry["plus"]), tuple(entry.get("minus", ()))
    unknown = [name for name in plus + minus if name not in cells]
    if unknown:
        raise ValueError(
            f"comparison {entry['name']!r} names no cell {unknown[0]!r}; cells: {', '.join(cells)}"
        )
    kind = entry.get("kind", "primary" if entry.get("primary") else "secondary")
    if kind not in KINDS:
        raise ValueError(
            f"comparison {entry['name']!r}: kind must be one of {', '.join(KINDS)}, got {kind!r}"
        )
    metric = entry.get("metric", primary_metric)
    if metric not in METRICS:
        raise ValueError(
            f"comparison {entry['name']!r}: metric must be one of {', '.join(METRICS)}, "
            f"got {metric!r}"
        )
    return PlannedComparison(entry["name"], plus, minus, kind, metric)
