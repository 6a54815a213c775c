"""Running a grid: each run a child process (``python -m simam.train``, or torchrun for several
GPUs), several at once on the CPU cores or GPU groups, each appending its line to the results file
when it finishes; or one shell command per pending run for a cluster scheduler."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import Queue
from typing import IO

from simam.config import Config
from simam.experiments.plan import GridError, RunSpec, check_extra_args
from simam.experiments.results import (
    RUNS,
    append_result,
    locked,
    pending,
    result_line,
    unfinished,
)
from simam.runs import CHECKPOINT, FINAL, evaluated_split, read_final

LOG = "train.log"

LOCK_SUFFIX = ".lock"  # out/runs/<run-id>.lock: held by the process that trains the run


@dataclass(frozen=True)
class RunOutcome:
    """What became of one run: ``finished`` (its line appended), ``skipped`` (already there)
    or ``failed``."""

    spec: RunSpec
    status: str
    message: str


def launch_command(
    spec: RunSpec,
    run_dir: Path,
    extra_args: Sequence[str],
    gpus_per_run: int = 1,
    resume: bool = False,
) -> list[str]:
    """The command that trains ``spec`` into ``run_dir``: the trainer,
    or torchrun for several GPUs."""
    launcher = [sys.executable, "-m", "simam.train"]
    if gpus_per_run > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={gpus_per_run}",
            "-m",
            "simam.train",
        ]
    return [
        *launcher,
        *spec.train_args(),
        "--out",
        str(run_dir),
        "--no-progress",
        *extra_args,
        *(["--resume"] if resume else []),
    ]


def run_one(
    spec: RunSpec,
    out: str | Path,
    extra_args: Sequence[str] = (),
    gpus_per_run: int = 1,
    seeds_asked: int = 1,
    cuda_devices: str | None = None,
    threads: int | None = None,
) -> RunOutcome:
    """Train ``spec`` in a child process into ``out/runs/<run-id>`` and append its results line.

    Skips a finished run, and a run that another process is training (it holds the run's lock,
    ``out/runs/<run-id>.lock``); resumes from a checkpoint; clears a run folder that has none (a
    run killed before its first checkpoint). ``cuda_devices``: the child's ``CUDA_VISIBLE_DEVICES``
    (None: the parent's); ``threads``: its ``--threads`` unless ``extra_args`` set them.
    """
    return _run_configured(
        spec,
        spec.config(extra_args, gpus_per_run),
        Path(out),
        extra_args,
        gpus_per_run,
        seeds_asked,
        cuda_devices,
        threads,
    )


def _run_configured(
    spec: RunSpec,
    config: Config,
    out: Path,
    extra_args: Sequence[str],
    gpus_per_run: int,
    seeds_asked: int,
    cuda_devices: str | None,
    threads: int | None,
) -> RunOutcome:
    """:func:`run_one` once the run's configuration is known: ``config``,
    what the trainer makes of its options."""
    lock_path = out / RUNS / f"{spec.run_id}{LOCK_SUFFIX}"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock, locked(lock, wait=False) as owned:
        if not owned:
            return RunOutcome(
                spec, "skipped", f"another process is training it (it holds {lock_path})"
            )
        # under the lock: a run another process just finished
        if not unfinished({spec: config}, out):
            return RunOutcome(spec, "skipped", "already in the results file")
        return _train_locked(
            spec,
            out,
            extra_args,
            gpus_per_run,
            seeds_asked,
            cuda_devices,
            threads,
            lock,
            evaluated_split(config),
        )


def _train_locked(
    spec: RunSpec,
    out: Path,
    extra_args: Sequence[str],
    gpus_per_run: int,
    seeds_asked: int,
    cuda_devices: str | None,
    threads: int | None,
    lock: IO[str],
    split: str,
) -> RunOutcome:
    """:func:`run_one` once this process holds the run's lock. The child inherits the lock, so that
    the run stays owned while the child lives, even if this process is killed. ``split``: the split
    the run is judged on (:func:`simam.runs.evaluated_split`), which its outcome reports."""
    run_dir = out / RUNS / spec.run_id
    resume = (run_dir / CHECKPOINT).exists()
    if run_dir.exists() and not resume:
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if threads is not None and not any(arg.startswith("--threads") for arg in extra_args):
        extra_args = [*extra_args, "--threads", str(threads)]
    env = (
        dict(os.environ)
        if cuda_devices is None
        else {**os.environ, "CUDA_VISIBLE_DEVICES": cuda_devices}
    )
    command = launch_command(spec, run_dir, extra_args, gpus_per_run, resume)
    with open(run_dir / LOG, "a") as log:
        log.write(f"$ {shlex.join(command)}\n")
        log.flush()
        started = time.monotonic()
        code = subprocess.run(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            pass_fds=(lock.fileno(),) if os.name == "posix" else (),
        ).returncode
    if code != 0 or not (run_dir / FINAL).exists():
        return RunOutcome(
            spec, "failed", f"exit code {code}: {_last_line(run_dir / LOG)} (log: {run_dir / LOG})"
        )
    # the whole command, start-up to exit, where one command made the whole run
    command_seconds = None if resume else round(time.monotonic() - started, 3)
    final = read_final(run_dir)
    append_result(
        out, result_line(spec, final, extra_args, seeds_asked, gpus_per_run, command_seconds)
    )
    return RunOutcome(
        spec,
        "finished",
        f"final {split} accuracy {100 * final[f'final_{split}_accuracy']:.2f}%, "
        f"{final['wall_seconds']:.0f} s",
    )


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
    groups = [
        ",".join(gpus[i : i + gpus_per_run])
        for i in range(0, len(gpus) - gpus_per_run + 1, gpus_per_run)
    ]
    if not groups:
        raise GridError(
            f"--gpus-per-run {gpus_per_run} asks for more GPUs than the {len(gpus)} visible"
        )
    return [groups[i % len(groups)] for i in range(workers or len(groups))]


def run_grid(
    specs: Sequence[RunSpec],
    out: str | Path,
    workers: int | None = None,
    gpus_per_run: int = 1,
    extra_args: Sequence[str] = (),
    gpus: Sequence[str] | None = None,
) -> list[RunOutcome]:
    """Run every pending run of ``specs``, ``workers`` at a time, each appending its line to
    ``out/results.jsonl``; a failed run is reported in the outcomes and does not stop the others.
    The runs go seed by seed (every cell's seed 0, then every cell's seed 1, ...), so that a grid
    cut short has results in every cell.

    ``gpus``: the GPUs to use (default: :func:`visible_gpus`;
    none when ``extra_args`` say ``--device cpu``).
    """
    options = check_extra_args(extra_args)
    if gpus_per_run < 1:
        raise GridError(f"gpus per run must be at least 1, got {gpus_per_run}")
    if gpus is None:
        gpus = [] if options.get("device") == "cpu" else visible_gpus()
    slots = worker_slots(gpus, gpus_per_run, workers)
    # each run's options, parsed once
    configs = {spec: spec.config(extra_args, gpus_per_run) for spec in specs}
    # stable: plan order within a seed
    todo = sorted(unfinished(configs, out), key=lambda spec: spec.seed)
    threads = None if gpus else max(1, (os.cpu_count() or 1) // len(slots))
    seeds_asked = len({spec.seed for spec in specs})
    print(
        f"{len(specs) - len(todo)} of {len(specs)} runs finished, {len(todo)} to run, "
        f"{len(slots)} at a time "
        f"({', '.join(f'GPU {slot}' for slot in slots) if gpus else f'CPU, {threads} threads each'}"
        f") -> {out}",
        flush=True,
    )

    free: Queue[str | None] = Queue()
    for slot in slots:
        free.put(slot)
    done, lock = [0], threading.Lock()

    def work(spec: RunSpec) -> RunOutcome:
        slot = free.get()
        try:
            outcome = _run_configured(
                spec, configs[spec], Path(out), extra_args, gpus_per_run, seeds_asked, slot, threads
            )
        except Exception as error:  # reported with the others; the grid goes on
            outcome = RunOutcome(spec, "failed", f"{type(error).__name__}: {error}")
        finally:
            free.put(slot)
        with lock:
            done[0] += 1
            print(
                f"[{done[0]}/{len(todo)}] {spec.run_id}: {outcome.status}, {outcome.message}",
                flush=True,
            )
        return outcome

    pool = ThreadPoolExecutor(max_workers=len(slots))
    try:
        return list(pool.map(work, todo))
    finally:  # on Ctrl-C: let the running children stop, start no new ones
        pool.shutdown(wait=True, cancel_futures=True)


def shell_commands(
    specs: Sequence[RunSpec], out: str | Path, extra_args: Sequence[str] = (), gpus_per_run: int = 1
) -> list[str]:
    """One shell command per pending run of ``specs``: each trains its run and appends its line."""
    check_extra_args(extra_args)
    seeds_asked = len({spec.seed for spec in specs})
    commands = []
    for spec in pending(specs, out, extra_args, gpus_per_run):
        args = [
            sys.executable,
            "-m",
            "simam.experiments",
            "run-one",
            "--out",
            str(out),
            "--dataset",
            spec.dataset,
            "--model",
            spec.model,
            "--attention",
            spec.attention,
            "--recipe",
            spec.recipe,
            "--seed",
            str(spec.seed),
            *(["--lambda", repr(spec.lambda_)] if spec.lambda_ is not None else []),
            *(["--place", spec.place] if spec.place is not None else []),
            *(
                ["--variant", spec.variant, "--options", shlex.join(spec.options)]
                if spec.variant is not None
                else []
            ),
            "--seeds-asked",
            str(seeds_asked),
            "--gpus-per-run",
            str(gpus_per_run),
        ]
        commands.append(shlex.join([*args, *(["--", *extra_args] if extra_args else [])]))
    return commands
