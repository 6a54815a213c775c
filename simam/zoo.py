"""Trained networks: weights files that describe their own network, and the course's ones by name.

A weights file is a ``torch.save`` dict that carries what builds its network beside the weights,
so that one file and its SHA-256 are enough to use it::

    {"format": "simam-weights/1",
     "network": {"model": "resnet20", "attention": "simam", "lambda_": 1e-4, "dataset": "cifar10"},
     "trained": {"run_id": ..., "recipe": ..., "seed": ..., "final_test_accuracy": ...},
     "state_dict": {...}}

The course ships the networks of its committed grid (ResNet-20, the quick recipe, CIFAR-10, one
seed per attention module) with the package, their hashes in ``weights/SHA256SUMS`` of the course's
results folder (the ``sha256sum`` format)::

    model = simam.pretrained("resnet20", "simam")           # eval mode, on the CPU
    model = simam.pretrained("https://host/wrn28-10.pt", sha256="9f2c...")   # any weights file

``python -m simam.experiments weights DIR`` writes such files from the finished runs of a grid.
"""

from __future__ import annotations

import hashlib
import os
import urllib.parse
from pathlib import Path
from typing import Any

import torch
from torch import nn

from simam.runs import atomic_write, rebuild_network, run_id

FORMAT = "simam-weights/1"
WEIGHTS = "weights"
SHA256SUMS = "SHA256SUMS"
# What builds the network; the rest of a run's configuration only says how it was trained.
NETWORK_FIELDS = ("model", "attention", "lambda_", "dataset")


def course_results() -> Path:
    """The course's committed results folder: the copy installed with the package
    (``simam/_results``), else ``results/`` of the checkout the package runs from."""
    package = Path(__file__).resolve().parent
    for folder in (package / "_results", package.parent / "results"):
        if (folder / WEIGHTS / SHA256SUMS).is_file():
            return folder
    return package / "_results"


DEFAULT_RESULTS = course_results()


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sums(results: str | Path) -> dict[str, str]:
    """File name -> SHA-256 from ``results/weights/SHA256SUMS``; empty when there is none."""
    path = Path(results) / WEIGHTS / SHA256SUMS
    if not path.is_file():
        return {}
    return {
        name.strip(): digest
        for digest, name in (
            line.split(maxsplit=1) for line in path.read_text().splitlines() if line.strip()
        )
    }


def write_sums(results: str | Path, sums: dict[str, str]) -> None:
    """Write ``results/weights/SHA256SUMS`` whole, sorted by name (``sha256sum -c`` checks it)."""
    text = "".join(f"{digest}  {name}\n" for name, digest in sorted(sums.items()))
    atomic_write(Path(results) / WEIGHTS / SHA256SUMS, lambda file: file.write(text.encode()))


def save_weights(
    path: str | Path,
    state_dict: dict[str, torch.Tensor],
    network: dict[str, Any],
    trained: dict[str, Any] | None = None,
) -> str:
    """Write a weights file (whole or not at all) and return its SHA-256. ``network``: the fields of
    :data:`NETWORK_FIELDS` (a run's configuration may be given whole; the rest is dropped)."""
    missing = [field for field in NETWORK_FIELDS if field not in network]
    if missing:
        raise ValueError(
            f"the network description lacks {', '.join(missing)}; "
            f"it needs {', '.join(NETWORK_FIELDS)}"
        )
    payload = {
        "format": FORMAT,
        "network": {field: network[field] for field in NETWORK_FIELDS},
        "trained": dict(trained or {}),
        "state_dict": {name: value.detach().cpu().clone() for name, value in state_dict.items()},
    }
    path = Path(path)
    atomic_write(path, lambda file: torch.save(payload, file))
    return sha256(path)


def read_weights(path: str | Path) -> dict[str, Any]:
    """The contents of a weights file, checked to be one."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (
        Exception
    ) as error:  # a truncated file, a pickle of something else, not a torch file at all
        raise ValueError(f"{path} is not a readable weights file: {error}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        found = payload.get("format") if isinstance(payload, dict) else type(payload).__name__
        raise ValueError(
            f"{path} is not a simam weights file ({FORMAT!r}; it holds {found!r}): "
            "write one with simam.zoo.save_weights, or load a plain state dict into "
            "simam.create_model(...) yourself"
        )
    return payload


def load_weights(
    source: str | Path, sha256: str | None = None, device: str | torch.device = "cpu"
) -> nn.Module:
    """The network of a weights file, a path or an http(s) URL, in eval mode on ``device``.

    ``sha256``: the file's expected SHA-256, required for a URL (the download is checked against it
    and cached under ``torch.hub.get_dir()``), checked when given for a path."""
    source = str(source)
    if urllib.parse.urlparse(source).scheme in ("http", "https"):
        path = _download(source, sha256)
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no weights file {path}")
        _check_hash(path, sha256, "the expected hash")
    payload = read_weights(path)
    return rebuild_network(payload["network"], payload["state_dict"], device)


def _download(url: str, expected: str | None) -> Path:
    if not expected:
        raise ValueError(f"a URL needs its SHA-256: load_weights({url!r}, sha256='...')")
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pt"
    path = Path(torch.hub.get_dir()) / "checkpoints" / "simam" / f"{expected[:16]}-{name}"
    if path.is_file() and sha256(path) == expected.lower():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # writes to a temporary file and moves it into place: a killed download leaves nothing
        torch.hub.download_url_to_file(
            url, os.fspath(path), hash_prefix=expected.lower(), progress=False
        )
    except RuntimeError as error:  # torch's words for a hash that does not match
        raise ValueError(
            f"{url}: {error}; the file changed on the server, or the hash given is wrong"
        ) from None
    except OSError as error:  # no network, a refused connection, an HTTP error
        raise OSError(f"could not download {url}: {error}") from None
    return path


def _check_hash(path: Path, expected: str | None, where: str) -> None:
    if expected is None:
        return
    actual = sha256(path)
    if actual != expected.lower():
        raise ValueError(
            f"{path.name} has SHA-256 {actual}, but {where} is {expected}: "
            "the file is damaged or was replaced"
        )


def committed_seeds(
    model: str = "resnet20",
    attention: str = "simam",
    dataset: str = "cifar10",
    recipe: str = "quick",
    results: str | Path | None = None,
) -> list[int]:
    """The seeds of this grid cell whose weights are recorded in ``results/weights/SHA256SUMS``,
    sorted."""
    prefix = run_id(dataset, model, attention, recipe, 0).removesuffix("0")
    names = read_sums(DEFAULT_RESULTS if results is None else results)
    seeds = (
        name[len(prefix) : -len(".pt")]
        for name in names
        if name.startswith(prefix) and name.endswith(".pt")
    )
    return sorted(int(seed) for seed in seeds if seed.isdigit())


def pretrained(
    model: str | Path = "resnet20",
    attention: str = "simam",
    dataset: str = "cifar10",
    recipe: str = "quick",
    seed: int | None = None,
    results: str | Path | None = None,
    device: str | torch.device = "cpu",
    sha256: str | None = None,
) -> nn.Module:
    """A trained network in eval mode on ``device``: one of the course's, by name,
    or any weights file.

    By name: the run of the grid cell (``model``, ``attention``, ``dataset``, ``recipe``) with
    ``seed``, or the lowest seed whose weights are recorded; ``results``: a results folder written
    by ``python -m simam.experiments weights`` (default: the course's, installed with the package).
    ``model`` may instead be a path or URL of a weights file, with its ``sha256``
    (:func:`load_weights`). Raises ``FileNotFoundError`` for weights that are not there, and
    ``ValueError`` for a file whose SHA-256 is not the recorded one.
    """
    if isinstance(model, Path) or "://" in model or model.endswith(".pt"):
        return load_weights(model, sha256, device)
    folder = Path(DEFAULT_RESULTS if results is None else results)
    if seed is None:
        seed = min(committed_seeds(model, attention, dataset, recipe, folder), default=0)
    name = f"{run_id(dataset, model, attention, recipe, seed)}.pt"
    expected = read_sums(folder).get(name)
    if expected is None:
        raise FileNotFoundError(
            _missing(name, model, attention, dataset, recipe, seed, folder, results is None)
        )
    path = folder / WEIGHTS / name
    if not path.is_file():
        raise FileNotFoundError(
            f"{name} is recorded in {SHA256SUMS} but its file is missing from "
            f"{'the installed course results' if results is None else folder / WEIGHTS}"
        )
    _check_hash(path, expected, f"{SHA256SUMS} records")
    payload = read_weights(path)
    return rebuild_network(payload["network"], payload["state_dict"], device)


def _missing(
    name: str,
    model: str,
    attention: str,
    dataset: str,
    recipe: str,
    seed: int,
    folder: Path,
    course: bool,
) -> str:
    have = sorted(read_sums(folder))
    where = "the course's committed networks" if course else str(folder / WEIGHTS)
    listing = f"; there are: {', '.join(n.removesuffix('.pt') for n in have)}" if have else ""
    if course and not have:
        listing = (
            "; this installation carries none (reinstall simam from its repository to get them)"
        )
    return (
        f"no trained weights for {name.removesuffix('.pt')} in {where}{listing}. "
        "Train it into a folder of your own: "
        f"python -m simam.experiments run --models {model} --attentions {attention} "
        f"--datasets {dataset} --recipe {recipe} --seeds {seed}, --out my-grid, then "
        f"python -m simam.experiments weights my-grid --seeds {seed}, and load it with "
        f"simam.pretrained(..., results='my-grid')"
    )
