"""The files of a training run, shared by the trainer, the grid, the plots and the notebooks.

A run folder holds ``metrics.jsonl`` (one JSON object per evaluation), ``checkpoint.pt`` (all a
resumed run needs, written every ``checkpoint_every`` iterations and at the end) and ``final.json``
(the results to report); :mod:`simam.train` documents what each holds. Every file is written whole
or not at all (:func:`atomic_write`), so a run killed at any moment leaves readable files.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simam.config import Config, build_model, config_from_dict

METRICS = "metrics.jsonl"

CHECKPOINT = "checkpoint.pt"

FINAL = "final.json"


def run_id(
    dataset: str,
    model: str,
    attention: str,
    recipe: str,
    seed: int,
    lambda_: float | None = None,
    place: str | None = None,
    variant: str | None = None,
) -> str:
    """The name of a run of the course's grids, e.g. ``cifar10-resnet20-simam-quick-seed0``;
    ``lambda_`` only where it is not the attention's default
    (``...-simam-lambda1e-05-quick-seed0``), ``place`` only where it is not the paper's
    (``...-simam-end_of_branch-quick-seed0``), ``variant`` for a recipe changed by a study's options
    (``...-simam-quick-ema-seed0``)."""
    attention = attention if lambda_ is None else f"{attention}-lambda{lambda_:g}"
    attention = attention if place is None else f"{attention}-{place}"
    recipe = recipe if variant is None else f"{recipe}-{variant}"
    return f"{dataset}-{model}-{attention}-{recipe}-seed{seed}"


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``: a reader sees the old file or the new one, never a half-written one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def read_metrics(run: str | Path, up_to: int | None = None) -> list[dict[str, Any]]:
    """The rows of ``run/metrics.jsonl`` (of iterations up to ``up_to``);
    a row cut short by a kill ends them."""
    path = Path(run) / METRICS
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if up_to is not None and row["iteration"] > up_to:
            break
        rows.append(row)
    return rows


def read_final(run: str | Path) -> dict[str, Any]:
    """The results of the finished run ``run`` (its ``final.json``)."""
    path = Path(run) / FINAL
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run} is not a finished run of simam.train")
    return json.loads(path.read_text())


def load_model(run: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The network of the run folder ``run`` with the weights of its last checkpoint, in eval mode
    on ``device``: for attention maps, evaluation or fine-tuning of a trained run."""
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: {run} is not a run folder of simam.train, "
            "or it saved no checkpoint yet"
        )
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return rebuild_network(checkpoint["config"], evaluated_weights(checkpoint), device)


def evaluated_split(config: Config) -> str:
    """The split a run of ``config`` evaluates on, as its metrics name it: ``"test"``, or
    ``"holdout"`` for a run with training images held out (``--holdout``)."""
    return "holdout" if config.holdout else "test"


def evaluated_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights whose accuracy a run reports: the moving average of its weights where it kept one
    (``--ema``), else the weights as trained."""
    return checkpoint.get("average", checkpoint["model"])


def rebuild_network(
    config: dict[str, Any], state_dict: dict[str, torch.Tensor], device: str | torch.device = "cpu"
) -> nn.Module:
    """The network that a stored configuration describes (a run's, or only the fields that build the
    network), with ``state_dict`` loaded, uncompiled, in eval mode on ``device``."""
    model = build_model(dataclasses.replace(config_from_dict(config), compile_simam=False))
    model.load_state_dict(state_dict)
    return model.to(device).eval()
