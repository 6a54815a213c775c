"""Trained networks of the course: the weights that the committed CPU grid produced, loaded by name.

``python -m simam.experiments run ... --out results/`` trains every network of the course's Table 2
(the quick recipe on CIFAR-10) into ``results/runs/<run-id>/``. Its small artefacts are committed:
``results/results.jsonl``, each shown run's ``metrics.jsonl`` and ``final.json``, and, for seed 0
of every attention module, the trained weights as a plain state dict in
``results/weights/<run-id>.pt`` with their SHA-256 in ``results/weights/SHA256SUMS``
(``python -m simam.experiments weights results/`` writes both from the run folders' checkpoints).

:func:`pretrained` rebuilds such a network from its results line and checks the file's hash first::

    model = simam.pretrained("resnet20", "simam")   # eval mode, on the CPU
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import torch
from torch import nn

from simam.config import build_model, config_from_dict
from simam.experiments.plan import RunSpec
from simam.experiments.results import RUNS, read_results
from simam.runs import CHECKPOINT

WEIGHTS = "weights"
SHA256SUMS = "SHA256SUMS"
# The results folder of a checkout of the course (the package is installed from it in editable mode).
DEFAULT_RESULTS = Path(__file__).resolve().parents[1] / "results"


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(results: str | Path) -> dict[str, str]:
    """File name -> SHA-256 from ``results/weights/SHA256SUMS`` (the ``sha256sum`` format)."""
    path = Path(results) / WEIGHTS / SHA256SUMS
    if not path.is_file():
        return {}
    return {name.strip(): digest for digest, name in (line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip())}


def export(results: str | Path, seeds: tuple[int, ...] = (0,), attentions: tuple[str, ...] | None = None) -> list[Path]:
    """Write the model weights of every finished run of ``results`` with a seed in ``seeds`` (and an
    attention in ``attentions``, default any), from its checkpoint, to ``results/weights/<run-id>.pt``,
    and record their hashes. Returns the new files."""
    results = Path(results)
    folder = results / WEIGHTS
    folder.mkdir(parents=True, exist_ok=True)
    sums = read_sums(results)
    written = []
    for line in read_results(results):
        target = folder / f"{line['run_id']}.pt"
        checkpoint = results / RUNS / line["run_id"] / CHECKPOINT
        wanted = line["seed"] in seeds and (attentions is None or line["config"]["attention"] in attentions)
        if not wanted or target.name in sums or not checkpoint.is_file():
            continue
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)["model"]
        torch.save({name: value.clone() for name, value in state.items()}, target)  # clone: no shared storage
        sums[target.name] = sha256(target)
        written.append(target)
    (folder / SHA256SUMS).write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items())))
    return written


def committed_seeds(model: str = "resnet20", attention: str = "simam", dataset: str = "cifar10", recipe: str = "quick",
                    results: str | Path | None = None) -> list[int]:
    """The seeds of this grid cell whose weights are recorded in ``results/weights/SHA256SUMS``, sorted."""
    folder = Path(results) if results is not None else DEFAULT_RESULTS
    sums = read_sums(folder)
    return sorted(line["seed"] for line in read_results(folder)
                  if RunSpec(dataset, model, attention, recipe, line["seed"]).run_id == line["run_id"]
                  and f"{line['run_id']}.pt" in sums)


def pretrained(model: str = "resnet20", attention: str = "simam", dataset: str = "cifar10", recipe: str = "quick",
               seed: int | None = None, results: str | Path | None = None,
               device: str | torch.device = "cpu") -> nn.Module:
    """The committed trained network of one grid run, in eval mode on ``device``.

    ``seed``: the run's seed; ``None`` takes the lowest seed whose weights are committed (seed 0
    where the grid's seed-0 weights are there). ``results``: the results folder (default:
    ``results/`` of the checkout the package runs from). Raises ``FileNotFoundError`` when that
    run's weights are not there, and ``ValueError`` when the file's SHA-256 differs from the
    recorded one.
    """
    folder = Path(results) if results is not None else DEFAULT_RESULTS
    if seed is None:
        seed = min(committed_seeds(model, attention, dataset, recipe, folder), default=0)
    run_id = RunSpec(dataset, model, attention, recipe, seed).run_id
    path = folder / WEIGHTS / f"{run_id}.pt"
    expected = read_sums(folder).get(path.name)
    if not path.is_file() or expected is None:
        have = sorted(p.stem for p in (folder / WEIGHTS).glob("*.pt"))
        raise FileNotFoundError(f"no trained weights for {run_id} in {folder / WEIGHTS}"
                                f"{'; there are: ' + ', '.join(have) if have else ''}. Train it with "
                                f"python -m simam.experiments run --models {model} --attentions {attention} "
                                f"--datasets {dataset} --seeds {seed + 1} --recipe {recipe} --out {folder}, "
                                f"then python -m simam.experiments weights {folder}")
    actual = sha256(path)
    if actual != expected:
        raise ValueError(f"{path} has SHA-256 {actual}, but {folder / WEIGHTS / SHA256SUMS} records {expected}: "
                         "the file is damaged or was replaced")
    line = next(line for line in read_results(folder) if line["run_id"] == run_id)
    network = build_model(dataclasses.replace(config_from_dict(line["config"]), compile_simam=False))
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return network.to(device).eval()
