"""Grids of training runs, their results file, and the tables and plots made from it:
``python -m simam.experiments``.

Read top to bottom: a grid is planned as a list of :class:`RunSpec` (one training run each), run
(several at once, resuming what was interrupted), recorded one line per finished run, then summarised
beside the SimAM paper's Table 2, plotted, and written into the README.

**The output folder** (``--out``, default ``results/``):

- ``runs/<run-id>/``: one ordinary :mod:`simam.train` run folder per run (``metrics.jsonl``,
  ``checkpoint.pt``, ``final.json``) plus ``train.log``, the trainer's output. Run ids read like
  ``cifar10-resnet20-simam-paper-seed0`` (``...-simam-lambda1e-05-paper-seed0`` off the default lambda).
- ``results.jsonl``: one JSON line per finished run (the grid cell, the full configuration, final and
  best test accuracy, wall time, library versions, device). It is only ever appended to, one line per
  run in one locked write, so several cluster jobs can feed the same file. A run is finished when its
  line is there; the first line of a run counts if two jobs raced.

**Resuming.** Running the same grid again skips the finished runs, continues each unfinished run from
its checkpoint (``--resume``) and starts afresh a run that was killed before its first checkpoint.
A results folder holds one set of trainer options: a finished run whose configuration differs from
the one asked for is an error, not a silent reuse.

**Several runs at once.** Each run is a child process, so runs are isolated. On a CPU machine
``--workers`` runs share the cores (``--threads cores // workers`` each, unless the trainer options
say otherwise). With GPUs each worker owns ``--gpus-per-run`` GPUs through ``CUDA_VISIBLE_DEVICES``
(default: as many workers as GPU groups; a parent ``CUDA_VISIBLE_DEVICES`` limits the GPUs used). A
run with one GPU is ``python -m simam.train``; with K > 1 it is launched by torchrun, as
``python -m torch.distributed.run --standalone --nproc_per_node=K -m simam.train`` (the module behind
the ``torchrun`` command, run by this interpreter). ``commands`` prints one shell command per pending
run instead, for any cluster scheduler; each command (``run-one``) trains its run on the GPUs the
scheduler gave it (``CUDA_VISIBLE_DEVICES`` is left alone) and appends its line.

**Summary.** Per cell (data set, model, attention, lambda, recipe and any other trainer option that
differs from the recipe): the mean and sample standard deviation of the *final* test accuracy over
seeds, the number of seeds (marked when fewer than asked), Table 2's value (:mod:`simam.paper_results`)
and the difference, as Markdown and CSV, and plots.

**The lambda study** (``--lambda-ablation``): the paper's Figure 4 grid, ResNet-20 with SimAM for
lambda from 1e-1 down to 1e-6 plus the baseline without attention, on CIFAR-100 as the paper's
figure is (``--datasets`` changes it).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import json
import math
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from typing import Any, NoReturn

from simam.paper_results import (
    CITATION,
    FIGURE4_DATASET,
    FIGURE4_LAMBDAS,
    FIGURE4_MODEL,
    PAPER_LAMBDA,
    PAPER_MODEL_NAMES,
    PAPER_TABLE2,
    paper_accuracy,
)

with contextlib.suppress(ImportError):
    import fcntl  # POSIX: the lock that keeps concurrent appends whole

RESULTS = "results.jsonl"
RUNS = "runs"
LOG = "train.log"
DEFAULT_ATTENTIONS = ("none", "se", "cbam", "eca", "gc", "simam")
# The trainer options that the grid sets itself, per run.
GRID_OPTIONS = {"out", "model", "attention", "dataset", "seed", "lambda_"}
README_START = "<!-- simam-results:start -->"
README_END = "<!-- simam-results:end -->"

__all__ = ["PAPER_TABLE2", "CITATION", "RunSpec", "RunOutcome", "Cell", "GridError", "plan", "plan_lambda_ablation",
           "pending", "run_grid", "run_one", "shell_commands", "read_results", "summarise", "summary_markdown",
           "summary_csv", "write_summary", "plot_summary", "plot_lambda_ablation", "results_section", "update_readme"]


class GridError(ValueError):
    """A grid, an option or a results folder that the runner cannot use."""


# --------------------------------------------------------------------------------------------------
# Planning: the runs of a grid


@dataclass(frozen=True)
class RunSpec:
    """One training run of a grid. ``lambda_`` None: the trainer's default (the paper's 1e-4)."""

    dataset: str
    model: str
    attention: str
    recipe: str
    seed: int
    lambda_: float | None = None

    @property
    def run_id(self) -> str:
        attention = self.attention if self.lambda_ is None else f"{self.attention}-lambda{self.lambda_:g}"
        return f"{self.dataset}-{self.model}-{attention}-{self.recipe}-seed{self.seed}"

    def train_args(self) -> list[str]:
        """The trainer options that make this run (without ``--out``)."""
        args = ["--dataset", self.dataset, "--model", self.model, "--attention", self.attention,
                "--recipe", self.recipe, "--seed", str(self.seed)]
        return args if self.lambda_ is None else [*args, "--lambda", repr(self.lambda_)]

    def config(self, extra_args: Sequence[str] = (), processes: int = 1):
        """The :class:`simam.train.Config` this run trains with, ``extra_args`` included, checked
        for a run on ``processes`` processes (GPUs)."""
        from simam.train import RECIPES, ConfigError, build_parser, check_config

        try:
            args = vars(build_parser().parse_args([*self.train_args(), *extra_args]))
            args.pop("resume")
            config = dataclasses.replace(RECIPES[args.pop("recipe")], **args)
            check_config(config) if processes == 1 else check_config(config, processes)
        except ConfigError as error:
            raise GridError(f"{self.run_id}: {error}") from None
        return config


def plan(models: Iterable[str], attentions: Iterable[str], datasets: Iterable[str], seeds: int | Iterable[int],
         recipes: Iterable[str] = ("paper",), lambdas: Iterable[float] | None = None) -> list[RunSpec]:
    """Every combination, as run specs: datasets, then models, attentions, lambdas, recipes, seeds.

    ``seeds``: a count (seeds 0..n-1) or the seeds themselves. ``lambdas`` apply to the SimAM
    attentions only; the other attentions get one run per seed. Unknown names raise :class:`GridError`.
    """
    from simam.attention import list_attentions
    from simam.data import DATASETS
    from simam.models import list_models
    from simam.train import RECIPES

    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    axes = {"model": (list(models), list_models()), "attention": (list(attentions), list_attentions()),
            "dataset": (list(datasets), list(DATASETS)), "recipe": (list(recipes), list(RECIPES))}
    for axis, (asked, known) in axes.items():
        unknown = [name for name in asked if name not in known]
        if unknown or not asked:
            raise GridError(f"unknown {axis} {unknown[0]!r}; known: {', '.join(known)}" if unknown else f"no {axis} given")
    if not seeds or any(seed < 0 for seed in seeds) or len(set(seeds)) < len(seeds):
        raise GridError(f"seeds must be distinct non-negative integers, got {seeds}")
    lambdas = None if lambdas is None else list(lambdas)
    if lambdas is not None and (not lambdas or any(not (value >= 0 and math.isfinite(value)) for value in lambdas)):
        raise GridError(f"lambdas must be non-negative numbers, got {lambdas}")
    specs = []
    for dataset in axes["dataset"][0]:
        for model in axes["model"][0]:
            for attention in axes["attention"][0]:
                for lambda_ in _lambdas_of(attention, lambdas):
                    for recipe in axes["recipe"][0]:
                        specs += [RunSpec(dataset, model, attention, recipe, seed, lambda_) for seed in seeds]
    return specs


def _lambdas_of(attention: str, lambdas: list[float] | None) -> list[float | None]:
    """The lambdas an attention runs with; the default one as None, so that its run id is the plain one."""
    if lambdas is None or not attention.startswith("simam"):
        return [None]
    return [None if value == PAPER_LAMBDA else value for value in lambdas]


def plan_lambda_ablation(seeds: int | Iterable[int] = 5, recipe: str = "paper", dataset: str = FIGURE4_DATASET,
                         lambdas: Iterable[float] = FIGURE4_LAMBDAS) -> list[RunSpec]:
    """The paper's Figure 4 grid: ResNet-20 without attention, and with SimAM at each lambda.
    The lambda = 1e-4 runs are the ordinary ResNet-20 + SimAM runs (same run ids)."""
    return plan([FIGURE4_MODEL], ["none", "simam"], [dataset], seeds, [recipe], lambdas)


# --------------------------------------------------------------------------------------------------
# The results file


def results_path(out: str | Path) -> Path:
    return Path(out) / RESULTS


def read_results(out: str | Path) -> list[dict[str, Any]]:
    """The lines of ``out/results.jsonl`` (an empty list if there is none). A line that does not
    parse (a write cut short by a crash) is skipped with a warning."""
    path = results_path(out)
    lines = []
    for number, text in enumerate(path.read_text().splitlines() if path.exists() else [], start=1):
        if not text.strip():
            continue
        try:
            lines.append(json.loads(text))
        except json.JSONDecodeError:
            warnings.warn(f"{path}, line {number}: not JSON, skipped", stacklevel=2)
    return lines


def append_result(out: str | Path, line: dict[str, Any]) -> None:
    """Append one line to ``out/results.jsonl`` in one write, under an exclusive lock where the
    system has one (POSIX), so that lines from concurrent jobs never interleave."""
    path = results_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as file:
        if "fcntl" in globals():
            fcntl.flock(file, fcntl.LOCK_EX)
        try:
            file.seek(0, os.SEEK_END)
            ends_cleanly = file.tell() == 0 or (file.seek(-1, os.SEEK_END), file.read(1))[1] == b"\n"
            file.write(((b"" if ends_cleanly else b"\n") + json.dumps(line).encode() + b"\n"))
            file.flush()
            os.fsync(file.fileno())
        finally:
            if "fcntl" in globals():
                fcntl.flock(file, fcntl.LOCK_UN)


def result_line(spec: RunSpec, final: dict[str, Any], extra_args: Sequence[str], seeds_asked: int,
                gpus_per_run: int) -> dict[str, Any]:
    """The results-file line of a finished run, from its ``final.json``."""
    config = final["config"]
    return {
        "run_id": spec.run_id, "dataset": spec.dataset, "model": spec.model, "attention": spec.attention,
        "lambda": config["lambda_"] if spec.attention.startswith("simam") else None,
        "recipe": spec.recipe, "seed": spec.seed, "seeds_asked": seeds_asked, "extra_args": list(extra_args),
        "final_test_accuracy": final["final_test_accuracy"], "final_test_loss": final["final_test_loss"],
        "final_test_accuracy_flip": final.get("final_test_accuracy_flip"),
        "best_test_accuracy_selected_on_test_set": final["best_test_accuracy_selected_on_test_set"],
        "iterations": final["iterations"], "epochs": final["epochs"], "wall_seconds": final["wall_seconds"],
        "train_images_per_second": final["train_images_per_second"], "parameters": final["parameters"],
        "device": final["device"], "gpus_per_run": gpus_per_run, "distributed": final.get("distributed"),
        "versions": final["versions"], "config": config,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def pending(specs: Sequence[RunSpec], out: str | Path, extra_args: Sequence[str] = (),
            gpus_per_run: int = 1) -> list[RunSpec]:
    """The runs of ``specs`` without a line in ``out/results.jsonl``. Raises :class:`GridError` for a
    configuration no run can use, and when a finished run was trained with another configuration
    than ``extra_args`` now asks for."""
    from simam.train import RUNTIME_FIELDS, as_config_value

    finished = {}
    for line in read_results(out):
        finished.setdefault(line["run_id"], line)
    todo = []
    for spec in specs:
        config = dataclasses.asdict(spec.config(extra_args, gpus_per_run))
        line = finished.get(spec.run_id)
        if line is None:
            todo.append(spec)
            continue
        changed = [f"{key}={config[key]!r} (it has {as_config_value(value)!r})" for key, value in line["config"].items()
                   if key in config and key not in RUNTIME_FIELDS and as_config_value(value) != config[key]]
        if changed:
            raise GridError(f"{results_path(out)} holds run {spec.run_id} with other settings: {'; '.join(changed)}; "
                            f"use another --out")
    return todo


# --------------------------------------------------------------------------------------------------
# Running


@dataclass(frozen=True)
class RunOutcome:
    """What became of one run: ``finished`` (its line appended), ``skipped`` (already there) or ``failed``."""

    spec: RunSpec
    status: str
    message: str


def check_extra_args(extra_args: Sequence[str]) -> dict[str, Any]:
    """Trainer options for every run: they must parse, and leave the grid's own options to the grid.
    Returns the options given, by Config field."""
    from simam.train import ConfigError, build_parser

    try:
        given = vars(build_parser().parse_args(list(extra_args)))
    except ConfigError as error:
        raise GridError(f"trainer options: {error}") from None
    # --recipe and --resume have defaults, so they show in ``given`` whether set or not: look at the words
    owned = sorted(set(given) & GRID_OPTIONS)
    owned += [option for option in ("recipe", "resume") if any(arg.startswith(f"--{option}") for arg in extra_args)]
    if owned:
        raise GridError(f"trainer options may not set {', '.join('--' + o.rstrip('_').replace('_', '-') for o in owned)}: "
                        f"the grid sets them (--models, --attentions, --datasets, --seeds, --lambdas, --recipe, --out)")
    return given


def launch_command(spec: RunSpec, run_dir: Path, extra_args: Sequence[str], gpus_per_run: int = 1,
                   resume: bool = False) -> list[str]:
    """The command that trains ``spec`` into ``run_dir``: the trainer, or torchrun for several GPUs."""
    launcher = [sys.executable, "-m", "simam.train"]
    if gpus_per_run > 1:
        launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus_per_run}",
                    "-m", "simam.train"]
    return [*launcher, *spec.train_args(), "--out", str(run_dir), "--no-progress", *extra_args,
            *(["--resume"] if resume else [])]


def run_one(spec: RunSpec, out: str | Path, extra_args: Sequence[str] = (), gpus_per_run: int = 1,
            seeds_asked: int = 1, cuda_devices: str | None = None, threads: int | None = None) -> RunOutcome:
    """Train ``spec`` in a child process into ``out/runs/<run-id>`` and append its results line.

    Skips a finished run; resumes from a checkpoint; clears a run folder that has none (a run killed
    before its first checkpoint). ``cuda_devices``: the child's ``CUDA_VISIBLE_DEVICES`` (None: the
    parent's); ``threads``: its ``--threads`` unless ``extra_args`` set them.
    """
    out = Path(out)
    if not pending([spec], out, extra_args, gpus_per_run):
        return RunOutcome(spec, "skipped", "already in the results file")
    run_dir = out / RUNS / spec.run_id
    resume = (run_dir / "checkpoint.pt").exists()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if threads is not None and not any(arg.startswith("--threads") for arg in extra_args):
        extra_args = [*extra_args, "--threads", str(threads)]
    env = dict(os.environ) if cuda_devices is None else {**os.environ, "CUDA_VISIBLE_DEVICES": cuda_devices}
    command = launch_command(spec, run_dir, extra_args, gpus_per_run, resume)
    with open(run_dir / LOG, "a") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        code = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    final_path = run_dir / "final.json"
    if code != 0 or not final_path.exists():
        return RunOutcome(spec, "failed", f"exit code {code}: {_last_line(run_dir / LOG)} (log: {run_dir / LOG})")
    final = json.loads(final_path.read_text())
    append_result(out, result_line(spec, final, extra_args, seeds_asked, gpus_per_run))
    return RunOutcome(spec, "finished", f"final test accuracy {100 * final['final_test_accuracy']:.2f}%, "
                                        f"{final['wall_seconds']:.0f} s")


def _last_line(path: Path) -> str:
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no output"


def visible_gpus() -> list[str]:
    """The GPUs runs may use: those of ``CUDA_VISIBLE_DEVICES`` when it is set, else all of them."""
    import torch

    count = torch.cuda.device_count()
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is None:
        return [str(index) for index in range(count)]
    return [gpu.strip() for gpu in listed.split(",") if gpu.strip()][:count]


def worker_slots(gpus: Sequence[str], gpus_per_run: int, workers: int | None) -> list[str | None]:
    """One entry per worker: its ``CUDA_VISIBLE_DEVICES``, or None on a machine without GPUs.
    GPUs are cut into groups of ``gpus_per_run``; workers beyond the groups share them in turn."""
    if workers is not None and workers < 1:
        raise GridError(f"workers must be at least 1, got {workers}")
    if not gpus:
        if gpus_per_run > 1:
            raise GridError(f"--gpus-per-run {gpus_per_run} needs GPUs, and none is visible")
        return [None] * (workers or 1)
    groups = [",".join(gpus[i:i + gpus_per_run]) for i in range(0, len(gpus) - gpus_per_run + 1, gpus_per_run)]
    if not groups:
        raise GridError(f"--gpus-per-run {gpus_per_run} asks for more GPUs than the {len(gpus)} visible")
    return [groups[i % len(groups)] for i in range(workers or len(groups))]


def run_grid(specs: Sequence[RunSpec], out: str | Path, workers: int | None = None, gpus_per_run: int = 1,
             extra_args: Sequence[str] = (), gpus: Sequence[str] | None = None) -> list[RunOutcome]:
    """Run every pending run of ``specs``, ``workers`` at a time, each appending its line to
    ``out/results.jsonl``; a failed run is reported in the outcomes and does not stop the others.
    The runs go seed by seed (every cell's seed 0, then every cell's seed 1, ...), so that a grid
    cut short has results in every cell.

    ``gpus``: the GPUs to use (default: :func:`visible_gpus`; none when ``extra_args`` say ``--device cpu``).
    """
    options = check_extra_args(extra_args)
    if gpus_per_run < 1:
        raise GridError(f"gpus per run must be at least 1, got {gpus_per_run}")
    if gpus is None:
        gpus = [] if options.get("device") == "cpu" else visible_gpus()
    slots = worker_slots(gpus, gpus_per_run, workers)
    todo = sorted(pending(specs, out, extra_args, gpus_per_run), key=lambda spec: spec.seed)  # stable: plan order within a seed
    threads = None if gpus else max(1, (os.cpu_count() or 1) // len(slots))
    seeds_asked = len({spec.seed for spec in specs})
    print(f"{len(specs) - len(todo)} of {len(specs)} runs finished, {len(todo)} to run, {len(slots)} at a time "
          f"({', '.join(f'GPU {slot}' for slot in slots) if gpus else f'CPU, {threads} threads each'}) -> {out}", flush=True)

    free: Queue[str | None] = Queue()
    for slot in slots:
        free.put(slot)
    done, lock = [0], threading.Lock()

    def work(spec: RunSpec) -> RunOutcome:
        slot = free.get()
        try:
            outcome = run_one(spec, out, extra_args, gpus_per_run, seeds_asked, slot, threads)
        finally:
            free.put(slot)
        with lock:
            done[0] += 1
            print(f"[{done[0]}/{len(todo)}] {spec.run_id}: {outcome.status}, {outcome.message}", flush=True)
        return outcome

    pool = ThreadPoolExecutor(max_workers=len(slots))
    try:
        return list(pool.map(work, todo))
    finally:  # on Ctrl-C: let the running children stop, start no new ones
        pool.shutdown(wait=True, cancel_futures=True)


def shell_commands(specs: Sequence[RunSpec], out: str | Path, extra_args: Sequence[str] = (),
                   gpus_per_run: int = 1) -> list[str]:
    """One shell command per pending run of ``specs``: each trains its run and appends its line."""
    check_extra_args(extra_args)
    seeds_asked = len({spec.seed for spec in specs})
    commands = []
    for spec in pending(specs, out, extra_args, gpus_per_run):
        args = [sys.executable, "-m", "simam.experiments", "run-one", "--out", str(out), "--dataset", spec.dataset,
                "--model", spec.model, "--attention", spec.attention, "--recipe", spec.recipe, "--seed", str(spec.seed),
                *(["--lambda", repr(spec.lambda_)] if spec.lambda_ is not None else []),
                "--seeds-asked", str(seeds_asked), "--gpus-per-run", str(gpus_per_run)]
        commands.append(shlex.join([*args, *(["--", *extra_args] if extra_args else [])]))
    return commands


# --------------------------------------------------------------------------------------------------
# Summary


@dataclass(frozen=True)
class Cell:
    """One cell of the summary: the runs of one configuration over seeds. Accuracies in percent."""

    dataset: str
    model: str
    attention: str
    lambda_: float | None  # SimAM's lambda; None for the other attentions
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

    @property
    def difference(self) -> float | None:
        return None if self.paper_mean is None else self.mean - self.paper_mean

    @property
    def complete(self) -> bool:
        return self.n >= self.seeds_asked


def overrides(config: dict[str, Any], recipe: str) -> str:
    """The trainer options of ``config`` that differ from ``recipe``'s, except the grid's own."""
    from simam.train import RECIPES, RUNTIME_FIELDS, as_config_value

    base = dataclasses.asdict(RECIPES[recipe])
    skip = RUNTIME_FIELDS | GRID_OPTIONS | {"recipe"}
    return ", ".join(f"{key}={_show(as_config_value(value))}" for key, value in config.items()
                     if key in base and key not in skip and as_config_value(value) != base[key])


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def summarise(results: Sequence[dict[str, Any]], seeds: int | None = None) -> list[Cell]:
    """Group result lines by (dataset, model, attention, lambda, recipe, overrides) and average the
    final test accuracy over seeds. ``seeds``: the seeds asked per cell (default: the most that any
    grid asked for a cell of the same table, i.e. data set, recipe and overrides). A run with
    several lines counts once (its first line)."""
    first: dict[str, dict[str, Any]] = {}
    for line in results:
        first.setdefault(line["run_id"], line)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for line in first.values():
        key = (line["dataset"], line["model"], line["attention"], line["lambda"], line["recipe"],
               overrides(line["config"], line["recipe"]))
        groups[key].append(line)
    asked: dict[tuple, int] = defaultdict(int)  # per table: cells of one grid were asked the same seeds
    for (dataset, _, _, _, recipe, options), lines in groups.items():
        table = (dataset, recipe, options)
        asked[table] = max(asked[table], *(line.get("seeds_asked", 1) for line in lines))
    cells = []
    for (dataset, model, attention, lambda_, recipe, options), lines in groups.items():
        accuracies = [100 * line["final_test_accuracy"] for line in lines]
        paper = paper_accuracy(dataset, model, attention, lambda_)
        cells.append(Cell(
            dataset, model, attention, lambda_, recipe, options, len(lines),
            seeds if seeds is not None else asked[(dataset, recipe, options)],
            statistics.mean(accuracies), statistics.stdev(accuracies) if len(lines) > 1 else None,
            paper[0] if paper else None, paper[1] if paper else None,
            tuple(sorted({line["device"] for line in lines})), tuple(sorted({line.get("gpus_per_run", 1) for line in lines})),
        ))
    return sorted(cells, key=_cell_order)


def _cell_order(cell: Cell) -> tuple:
    from simam.attention import list_attentions
    from simam.models import list_models

    return (cell.dataset, cell.recipe, cell.overrides, list_models().index(cell.model),
            list_attentions().index(cell.attention), -(cell.lambda_ or 0.0))


def _accuracy(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.2f}" if std is None else f"{mean:.2f} ± {std:.2f}"


def _recipe_label(cell: Cell) -> str:
    return cell.recipe if not cell.overrides else f"{cell.recipe} ({cell.overrides})"


def summary_markdown(cells: Sequence[Cell]) -> str:
    """The summary as a Markdown table, with the paper's column and its citation."""
    rows = ["| data set | model | attention | λ | recipe | seeds | ours: top-1 % | paper: top-1 % | ours − paper |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for cell in cells:
        seeds = f"{cell.n}" if cell.complete else f"{cell.n} of {cell.seeds_asked} *"
        difference = "—" if cell.difference is None else f"{cell.difference:+.2f}"
        rows.append(f"| {cell.dataset} | {cell.model} | {cell.attention} | {'' if cell.lambda_ is None else f'{cell.lambda_:g}'} "
                    f"| {_recipe_label(cell)} | {seeds} | {_accuracy(cell.mean, cell.std)} "
                    f"| {_accuracy(cell.paper_mean, cell.paper_std)} | {difference} |")
    notes = [f"Ours: final test accuracy (not the best over training), mean ± sample standard deviation over seeds. "
             f"Paper: {CITATION}."]
    if any(cell.model == "wrn28_10" for cell in cells):
        notes.append(f"The paper's wide network is printed {PAPER_MODEL_NAMES['wrn28_10']}.")
    if not all(cell.complete for cell in cells):
        notes.append("\\* fewer seeds than asked: the grid is not finished.")
    return "\n".join(rows) + "\n\n" + "\n".join(notes) + "\n"


CSV_COLUMNS = ("dataset", "model", "attention", "lambda", "recipe", "overrides", "n", "seeds_asked", "complete",
               "mean", "std", "paper_mean", "paper_std", "difference", "devices")


def summary_csv(cells: Sequence[Cell]) -> str:
    """The summary as CSV, one row per cell, accuracies in percent."""
    import csv
    import io

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in cells:
        writer.writerow([c.dataset, c.model, c.attention, "" if c.lambda_ is None else repr(c.lambda_), c.recipe,
                         c.overrides, c.n, c.seeds_asked, c.complete, f"{c.mean:.4f}",
                         *("" if v is None else f"{v:.4f}" for v in (c.std, c.paper_mean, c.paper_std, c.difference)),
                         "; ".join(c.devices)])
    return text.getvalue()


def write_summary(cells: Sequence[Cell], folder: str | Path) -> list[Path]:
    """``summary.md``, ``summary.csv`` and ``summary.png`` in ``folder``, and ``lambda_ablation.png``
    when the cells hold a lambda study (two lambdas or more for one network); returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / "summary.md", folder / "summary.csv", folder / "summary.png"]
    paths[0].write_text(summary_markdown(cells))
    paths[1].write_text(summary_csv(cells))
    _save(plot_summary(cells), paths[2])
    if _lambda_studies(cells):
        paths.append(folder / "lambda_ablation.png")
        _save(plot_lambda_ablation(cells), paths[-1])
    return paths


def _save(figure, path: Path) -> None:
    import matplotlib.pyplot as plt  # imported here: slow to import, and only plotting needs it

    figure.savefig(path, dpi=120)
    plt.close(figure)


# --------------------------------------------------------------------------------------------------
# Plots


def plot_summary(cells: Sequence[Cell]):
    """Our accuracy per model and attention (bars, sample std as error bars) beside the paper's
    (black dots and bars), one panel per data set and recipe. Returns the matplotlib figure."""
    import matplotlib.pyplot as plt

    cells = [cell for cell in cells if cell.lambda_ in (None, PAPER_LAMBDA)]
    panels = sorted({(cell.dataset, _recipe_label(cell)) for cell in cells})
    figure, axes = plt.subplots(1, max(1, len(panels)), figsize=(6 * max(1, len(panels)), 4), layout="constrained",
                                squeeze=False)
    for axis, (dataset, recipe) in zip(axes[0], panels):
        panel = [cell for cell in cells if (cell.dataset, _recipe_label(cell)) == (dataset, recipe)]
        models = list(dict.fromkeys(cell.model for cell in panel))
        attentions = list(dict.fromkeys(cell.attention for cell in panel))
        width = 0.8 / len(attentions)
        for a, attention in enumerate(attentions):
            for cell in (c for c in panel if c.attention == attention):
                x = models.index(cell.model) + (a - (len(attentions) - 1) / 2) * width
                axis.bar(x, cell.mean, width, yerr=cell.std or 0, capsize=2, color=f"C{a}",
                         label=attention if cell.model == models[0] else None)
                if cell.paper_mean is not None:
                    axis.errorbar(x, cell.paper_mean, yerr=cell.paper_std, fmt="o", color="black", markersize=3,
                                  label="paper" if (a, cell.model) == (0, models[0]) else None)
        means = [cell.mean for cell in panel] + [cell.paper_mean for cell in panel if cell.paper_mean is not None]
        axis.set_ylim(min(means) - 2, max(means) + 1)
        axis.set_xticks(range(len(models)), models)
        axis.set(ylabel="final test accuracy (%)", title=f"{dataset}, {recipe}")
        axis.grid(axis="y", alpha=0.3)
        axis.legend(fontsize="small", ncols=2)
    return figure


def _lambda_studies(cells: Sequence[Cell]) -> dict[tuple, list[Cell]]:
    """The cells of each (dataset, model, recipe) that has SimAM at two lambdas or more."""
    studies: dict[tuple, list[Cell]] = defaultdict(list)
    for cell in cells:
        if cell.attention == "simam":
            studies[(cell.dataset, cell.model, _recipe_label(cell))].append(cell)
    return {key: sorted(group, key=lambda c: c.lambda_) for key, group in studies.items() if len(group) > 1}


def plot_lambda_ablation(cells_or_results: Sequence[Cell] | Sequence[dict[str, Any]]):
    """Final test accuracy against SimAM's lambda (log axis), mean ± sample std over seeds, with the
    baseline without attention as a band, as the paper's Figure 4. Takes cells or result lines."""
    import matplotlib.pyplot as plt

    cells = list(cells_or_results)
    if cells and isinstance(cells[0], dict):
        cells = summarise(cells)
    studies = _lambda_studies(cells)
    if not studies:
        raise GridError("no lambda study in these results: SimAM at two lambdas or more is needed")
    figure, axis = plt.subplots(figsize=(6, 4), layout="constrained")
    for index, ((dataset, model, recipe), group) in enumerate(sorted(studies.items())):
        color = f"C{index}"
        axis.errorbar([c.lambda_ for c in group], [c.mean for c in group], yerr=[c.std or 0 for c in group],
                      marker="o", capsize=3, color=color, label=f"{model} + simam, {dataset}, {recipe}")
        for base in cells:
            if (base.dataset, base.model, _recipe_label(base), base.attention) == (dataset, model, recipe, "none"):
                axis.axhline(base.mean, color=color, linestyle="--", label=f"{model}, no attention")
                if base.std:
                    axis.axhspan(base.mean - base.std, base.mean + base.std, color=color, alpha=0.1)
    axis.axvline(PAPER_LAMBDA, color="gray", linewidth=0.8, label=f"paper's λ = {PAPER_LAMBDA:g}")
    axis.set_xscale("log")
    axis.set(xlabel="λ", ylabel="final test accuracy (%)", title="SimAM's λ (paper: Figure 4)")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    return figure


# --------------------------------------------------------------------------------------------------
# The README's results section


def results_section(results: Sequence[dict[str, Any]], out: str | Path = "results", seeds: int | None = None) -> str:
    """The README's results section, generated from result lines: one table per data set and recipe,
    each stating the recipe, the hardware and the seeds behind it."""
    command = f"`python -m simam.experiments readme {out} --readme README.md`"
    header = f"_Generated by {command} from `{results_path(out)}`; edits by hand are overwritten._\n"
    if not results:
        return (header + "\nNo results yet. Table 2 for ResNet-20 with the quick recipe runs on a CPU (about 15 minutes "
                "a run); the paper's recipe (64,000 iterations a run) needs a GPU. To make either and fill this section:\n\n"
                "```sh\n"
                f"python -m simam.experiments run --models resnet20 --attentions none,se,cbam,eca,gc,simam "
                f"--datasets cifar10 --seeds 3 --recipe quick --out {out}\n"
                f"python -m simam.experiments run --models resnet20,resnet56 --attentions none,se,cbam,eca,gc,simam "
                f"--datasets cifar10 --seeds 5 --recipe paper --out {out}\n"
                f"python -m simam.experiments readme {out} --readme README.md\n"
                "```\n")
    cells = summarise(results, seeds)
    parts = [header]
    for (dataset, recipe), group in _by_table(cells).items():
        devices = sorted({device for cell in group for device in cell.devices})
        gpus = sorted({k for cell in group for k in cell.gpus_per_run})
        fewest, most = min(cell.n for cell in group), max(cell.n for cell in group)
        seeds = f"{most}" if fewest == most else f"{fewest} to {most}"
        per_run = f"; {' or '.join(map(str, gpus))} GPU(s) per run" if any(not d.startswith("CPU") for d in devices) else ""
        label = RECIPE_LABELS.get(group[0].recipe, "")
        parts.append(f"\n### {dataset}, {recipe}\n\n"
                     f"Recipe: {recipe}{label}. Hardware: {'; '.join(devices)}{per_run}. "
                     f"Seeds per cell: {seeds} ({sum(cell.n for cell in group)} runs).\n\n" + summary_markdown(group)
                     + _simam_gains(group) + _reproduce(group, out))
    return "".join(parts)


RECIPE_LABELS = {"quick": " (about 8 epochs on a 2-core CPU, so every accuracy sits below the paper's 164-epoch ones: "
                          "compare the modules with each other, not with the paper)"}


def simam_gain(cells: Sequence[Cell], model: str) -> tuple[float, float] | None:
    """SimAM minus no attention for ``model`` among ``cells``, in points, with the standard error of
    that difference of two means, sqrt(s1^2 / n1 + s2^2 / n2); None without two seeds of each."""
    found = {cell.attention: cell for cell in cells if cell.model == model and cell.lambda_ in (None, 1e-4)}
    plain, simam = found.get("none"), found.get("simam")
    if plain is None or simam is None or plain.n < 2 or simam.n < 2:
        return None
    return simam.mean - plain.mean, math.sqrt(plain.std**2 / plain.n + simam.std**2 / simam.n)


def _simam_gains(cells: Sequence[Cell]) -> str:
    lines = []
    for model in dict.fromkeys(cell.model for cell in cells):
        gain = simam_gain(cells, model)
        if gain is not None:
            lines.append(f"- {model}: SimAM − none = {gain[0]:+.2f} ± {gain[1]:.2f} points (difference of the means "
                         f"± its standard error, {gain[0] / gain[1]:+.1f} standard errors)")
    return "\n" + "\n".join(lines) + "\n" if lines else ""


def _reproduce(cells: Sequence[Cell], out: str | Path) -> str:
    models = ",".join(dict.fromkeys(cell.model for cell in cells))
    attentions = ",".join(dict.fromkeys(cell.attention for cell in cells))
    recipe, dataset = cells[0].recipe, cells[0].dataset
    seeds = max(cell.seeds_asked for cell in cells)
    if cells[0].overrides:  # the trainer options behind the table are in the results file, not in the label
        return ""
    return (f"\nTo reproduce (or continue) it:\n\n```sh\npython -m simam.experiments run --models {models} "
            f"--attentions {attentions} --datasets {dataset} --seeds {seeds} --recipe {recipe} --out {out}\n```\n")


def _by_table(cells: Sequence[Cell]) -> dict[tuple[str, str], list[Cell]]:
    tables: dict[tuple[str, str], list[Cell]] = defaultdict(list)
    for cell in cells:
        tables[(cell.dataset, _recipe_label(cell))].append(cell)
    return dict(tables)


def update_readme(readme: str | Path, results: Sequence[dict[str, Any]], out: str | Path = "results",
                  seeds: int | None = None) -> str:
    """Rewrite the text between the results markers of ``readme``; nothing else changes.
    Returns the new section."""
    readme = Path(readme)
    text = readme.read_text()
    start, end = text.find(README_START), text.find(README_END)
    if start < 0 or end < start:
        raise GridError(f"{readme} lacks the markers {README_START} ... {README_END} that enclose the results section")
    section = results_section(results, out, seeds)
    readme.write_text(text[:start + len(README_START)] + "\n" + section + text[end:])
    return section


# --------------------------------------------------------------------------------------------------
# The command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        raise GridError(message)


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _seeds(text: str) -> list[int]:
    try:
        values = [int(part) for part in _names(text)]
    except ValueError:
        values = []
    if not values:
        raise argparse.ArgumentTypeError(f"expected a count such as 5 or seeds such as 0,1,2, got {text!r}")
    return list(range(values[0])) if len(values) == 1 and "," not in text else values


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in _names(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers such as 1e-4,1e-5, got {text!r}") from None


def _add_grid_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--models", type=_names, help="comma-separated networks (default resnet20)")
    add("--attentions", type=_names, help=f"comma-separated attentions (default {','.join(DEFAULT_ATTENTIONS)})")
    add("--datasets", type=_names, help=f"comma-separated data sets (default cifar10; {FIGURE4_DATASET} with --lambda-ablation)")
    add("--seeds", type=_seeds, default=list(range(5)), help="a count (seeds 0..N-1) or comma-separated seeds (default 5)")
    add("--recipe", type=_names, default=["paper"], help="recipe, or comma-separated recipes (default paper)")
    add("--lambdas", type=_floats, help="comma-separated lambdas for the SimAM attentions (default: the trainer's, 1e-4)")
    add("--lambda-ablation", action="store_true",
        help="the paper's Figure 4 grid: resnet20 without attention and with simam at lambda 1e-1..1e-6")
    add("--out", default="results", help="results folder (default results)")
    add("--gpus-per-run", type=int, default=1, help="GPUs per run; above 1 the run is launched by torchrun (default 1)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simam-experiments", description="Grids of simam.train runs, their results and summary. "
                     "Trainer options for every run follow a lone --, e.g. -- --iterations 60 --subset 512.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="run a grid (resuming what is unfinished)")
    _add_grid_options(run)
    run.add_argument("--workers", type=int, help="runs at once (default: one per GPU group, else 1)")
    _add_grid_options(commands.add_parser("commands", help="print one shell command per pending run"))
    one = commands.add_parser("run-one", help="train one run and append its line (what `commands` prints)")
    for option in ("dataset", "model", "attention"):
        one.add_argument(f"--{option}", required=True)
    one.add_argument("--recipe", default="paper")
    one.add_argument("--seed", type=int, required=True)
    one.add_argument("--lambda", dest="lambda_", type=float)
    one.add_argument("--seeds-asked", type=int, default=1)
    one.add_argument("--gpus-per-run", type=int, default=1)
    one.add_argument("--out", default="results")
    for name, text in (("summary", "mean ± std per cell beside the paper's Table 2: Markdown, CSV, plots"),
                       ("readme", "rewrite the README's results section from the results file")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("out", help="results folder")
        sub.add_argument("--seeds", type=int, help="seeds asked per cell (default: what the grid asked)")
    weights = commands.add_parser("weights", help="write the trained weights of finished runs for simam.pretrained")
    weights.add_argument("out", help="results folder")
    weights.add_argument("--seeds", type=_seeds, default=[0], help="seeds whose weights to write, a count or comma-separated as for run (default: seed 0)")
    commands.choices["summary"].add_argument("--to", help="folder for the files (default: the results folder)")
    commands.choices["readme"].add_argument("--readme", default="README.md", help="the README to update")
    return parser


def _grid(args: argparse.Namespace) -> list[RunSpec]:
    if args.lambda_ablation:
        given = [option for option in ("models", "attentions", "lambdas") if getattr(args, option) is not None]
        if given:
            raise GridError(f"--lambda-ablation sets the models, attentions and lambdas itself; drop --{given[0]}")
        return [spec for dataset in (args.datasets or [FIGURE4_DATASET]) for recipe in args.recipe
                for spec in plan_lambda_ablation(args.seeds, recipe, dataset)]
    return plan(args.models or ["resnet20"], args.attentions or DEFAULT_ATTENTIONS, args.datasets or ["cifar10"],
                args.seeds, args.recipe, args.lambdas)


def main(argv: list[str] | None = None) -> int:
    """The ``simam-experiments`` command; returns the exit status (2: bad options, 1: a run failed)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    argv, extra_args = argv[:split], argv[split + 1:]
    try:
        args = build_parser().parse_args(argv)
        if extra_args and args.command in ("summary", "readme", "weights"):
            raise GridError(f"{args.command} takes no trainer options")
        return _COMMANDS[args.command](args, extra_args)
    except SystemExit as exit_:  # --help
        return exit_.code or 0
    except GridError as error:
        print(f"simam-experiments: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("simam-experiments: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, extra_args: list[str]) -> int:
    outcomes = run_grid(_grid(args), args.out, args.workers, args.gpus_per_run, extra_args)
    return _report(outcomes)


def _report(outcomes: Sequence[RunOutcome]) -> int:
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        print(f"{len(failed)} of {len(outcomes)} runs failed:", file=sys.stderr)
        for outcome in failed:
            print(f"  {outcome.spec.run_id}: {outcome.message}", file=sys.stderr)
        return 1
    return 0


def _commands(args: argparse.Namespace, extra_args: list[str]) -> int:
    if args.gpus_per_run < 1:
        raise GridError(f"gpus per run must be at least 1, got {args.gpus_per_run}")
    for command in shell_commands(_grid(args), args.out, extra_args, args.gpus_per_run):
        print(command)
    return 0


def _run_one(args: argparse.Namespace, extra_args: list[str]) -> int:
    check_extra_args(extra_args)
    spec = plan([args.model], [args.attention], [args.dataset], [args.seed], [args.recipe],
                None if args.lambda_ is None else [args.lambda_])[0]
    if args.gpus_per_run < 1 or args.seeds_asked < 1:
        raise GridError("--gpus-per-run and --seeds-asked must be at least 1")
    outcome = run_one(spec, args.out, extra_args, args.gpus_per_run, args.seeds_asked)
    print(f"{spec.run_id}: {outcome.status}, {outcome.message}")
    return _report([outcome])


def _summary(args: argparse.Namespace, extra_args: list[str]) -> int:
    results = read_results(args.out)
    if not results:
        raise GridError(f"no finished runs in {results_path(args.out)}")
    cells = summarise(results, args.seeds)
    paths = write_summary(cells, args.to or args.out)
    print(summary_markdown(cells))
    print("wrote " + ", ".join(map(str, paths)))
    return 0


def _readme(args: argparse.Namespace, extra_args: list[str]) -> int:
    if not Path(args.readme).is_file():
        raise GridError(f"{args.readme} not found")
    update_readme(args.readme, read_results(args.out), args.out, args.seeds)
    print(f"updated the results section of {args.readme} from {results_path(args.out)}")
    return 0


def _weights(args: argparse.Namespace, extra_args: list[str]) -> int:
    from simam.zoo import export

    for path in export(args.out, tuple(args.seeds)):
        print(f"{path}  {path.stat().st_size / 1e6:.2f} MB")
    return 0


_COMMANDS = {"run": _run, "commands": _commands, "run-one": _run_one, "summary": _summary, "readme": _readme,
             "weights": _weights}


if __name__ == "__main__":
    sys.exit(main())
