"""The trained weights of a grid's finished runs, written as self-describing weights files
(:mod:`simam.zoo`) with their hashes: ``python -m simam.experiments weights DIR``."""

from __future__ import annotations

from pathlib import Path

import torch

from simam.experiments.results import RUNS, read_results
from simam.runs import CHECKPOINT, evaluated_weights
from simam.zoo import WEIGHTS, read_sums, save_weights, write_sums

TRAINED_FIELDS = (
    "run_id",
    "recipe",
    "seed",
    "final_test_accuracy",
    "final_test_accuracy_flip",
    "iterations",
)


def export(
    results: str | Path, seeds: tuple[int, ...] = (0,), attentions: tuple[str, ...] | None = None
) -> list[Path]:
    """Write the weights of every finished run of ``results`` with a seed in ``seeds`` (and an
    attention in ``attentions``, default any), from its checkpoint, to
    ``results/weights/<run-id>.pt``, and record their hashes in ``results/weights/SHA256SUMS``.
    Returns the new files."""
    results = Path(results)
    (results / WEIGHTS).mkdir(parents=True, exist_ok=True)
    sums = read_sums(results)
    written = []
    for line in read_results(results):
        target = results / WEIGHTS / f"{line['run_id']}.pt"
        checkpoint = results / RUNS / line["run_id"] / CHECKPOINT
        wanted = line["seed"] in seeds and (
            attentions is None or line["config"]["attention"] in attentions
        )
        if not wanted or target.name in sums or not checkpoint.is_file():
            continue
        state = evaluated_weights(torch.load(checkpoint, map_location="cpu", weights_only=True))
        trained = {field: line[field] for field in TRAINED_FIELDS if field in line}
        sums[target.name] = save_weights(target, state, line["config"], trained)
        write_sums(results, sums)  # after each file: a killed export keeps every hash it wrote
        written.append(target)
    return written
