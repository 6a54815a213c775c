"""The results file of a grid, ``results.jsonl``: one JSON line per finished run, only ever
appended to (in one locked write, so that concurrent jobs can share it, and read under the same
lock, so that a reader never takes a line being written for a missing run), and which runs are
pending. The locks are POSIX ``flock`` locks, which the system drops when their process dies."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from simam.attention import attention_kind
from simam.config import Config, changed_settings, config_from_dict
from simam.experiments.plan import GridError, RunSpec
from simam.runs import evaluated_split

with contextlib.suppress(ImportError):
    import fcntl  # POSIX; elsewhere files are neither locked nor shared safely between processes

RESULTS = "results.jsonl"

RUNS = "runs"


def results_path(out: str | Path) -> Path:
    return Path(out) / RESULTS


@contextlib.contextmanager
def locked(file: IO[Any], exclusive: bool = True, wait: bool = True) -> Iterator[bool]:
    """Hold a ``flock`` on the open ``file`` (exclusive, or shared with other readers) for the
    ``with`` block, released after it. Yields whether the lock is held: False only when ``wait`` is
    off and another process holds a conflicting lock."""
    if "fcntl" not in globals():
        yield True
        return
    try:
        fcntl.flock(
            file, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        )
    except BlockingIOError:
        yield False
        return
    try:
        yield True
    finally:
        fcntl.flock(file, fcntl.LOCK_UN)


def read_results(out: str | Path) -> list[dict[str, Any]]:
    """The lines of ``out/results.jsonl`` (an empty list if there is none), read under a shared lock
    so that no line is half written. A line that does not parse (a write cut short by a crash) is
    skipped with a warning."""
    path = results_path(out)
    if not path.exists():
        return []
    with open(path, "rb") as file, locked(file, exclusive=False):
        text = file.read().decode()
    lines = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            warnings.warn(f"{path}, line {number}: not JSON, skipped", stacklevel=2)
    return lines


def append_result(out: str | Path, line: dict[str, Any]) -> None:
    """Append one line to ``out/results.jsonl`` in one write, under an exclusive lock, so that lines
    from concurrent jobs never interleave and no reader sees one half written."""
    path = results_path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as file, locked(file):
        file.seek(0, os.SEEK_END)
        ends_cleanly = file.tell() == 0 or (file.seek(-1, os.SEEK_END), file.read(1))[1] == b"\n"
        file.write((b"" if ends_cleanly else b"\n") + json.dumps(line).encode() + b"\n")
        file.flush()
        os.fsync(file.fileno())


def result_line(
    spec: RunSpec,
    final: dict[str, Any],
    extra_args: Sequence[str],
    seeds_asked: int,
    gpus_per_run: int,
    command_seconds: float | None = None,
) -> dict[str, Any]:
    """The results-file line of a finished run, from its ``final.json``. ``command_seconds``: the
    seconds of the trainer's whole command, from its start to its exit (the run's ``wall_seconds``
    leave out its start-up and loading the data), where one command trained the whole run."""
    config = final["config"]
    split = evaluated_split(config_from_dict(config))
    return {
        "run_id": spec.run_id,
        "dataset": spec.dataset,
        "model": spec.model,
        "attention": spec.attention,
        "lambda": config["lambda_"]
        if "lambda_" in attention_kind(spec.attention).options
        else None,
        "place": spec.place,
        "recipe": spec.recipe,
        "variant": spec.variant,
        "seed": spec.seed,
        "seeds_asked": seeds_asked,
        "extra_args": list(extra_args),
        f"final_{split}_accuracy": final[f"final_{split}_accuracy"],
        f"final_{split}_loss": final[f"final_{split}_loss"],
        f"final_{split}_accuracy_flip": final.get(f"final_{split}_accuracy_flip"),
        f"best_{split}_accuracy_selected_on_{split}_set": final[
            f"best_{split}_accuracy_selected_on_{split}_set"
        ],
        "iterations": final["iterations"],
        "epochs": final["epochs"],
        "wall_seconds": final["wall_seconds"],
        "command_seconds": command_seconds,
        "train_images_per_second": final["train_images_per_second"],
        "steady_images_per_second": final.get("steady_images_per_second"),
        "parameters": final["parameters"],
        "device": final["device"],
        "gpus_per_run": gpus_per_run,
        "distributed": final.get("distributed"),
        "versions": final["versions"],
        "config": config,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def pending(
    specs: Sequence[RunSpec], out: str | Path, extra_args: Sequence[str] = (), gpus_per_run: int = 1
) -> list[RunSpec]:
    """The runs of ``specs`` without a line in ``out/results.jsonl``. Raises :class:`GridError` for
    a configuration no run can use, and when a finished run was trained with another configuration
    than ``extra_args`` now asks for."""
    return unfinished({spec: spec.config(extra_args, gpus_per_run) for spec in specs}, out)


def unfinished(configs: Mapping[RunSpec, Config], out: str | Path) -> list[RunSpec]:
    """The runs of ``configs``, each with the configuration it trains with, that have no line in
    ``out/results.jsonl``. Raises :class:`GridError` when a finished run was trained with another
    configuration."""
    finished = {}
    for line in read_results(out):
        finished.setdefault(line["run_id"], line)
    todo = []
    for spec, config in configs.items():
        line = finished.get(spec.run_id)
        if line is None:
            todo.append(spec)
            continue
        changed = [
            f"{key}={value!r} (it has {ran!r})"
            for key, value, ran in changed_settings(config, line["config"])
        ]
        if changed:
            raise GridError(
                f"{results_path(out)} holds run {spec.run_id} with other settings: "
                f"{'; '.join(changed)}; use another --out"
            )
    return todo
