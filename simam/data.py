"""CIFAR-10 and CIFAR-100 from the official "python version" files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
FILES = {
    ("cifar10", True): [f"data_batch_{i}" for i in range(1, 6)],
    ("cifar10", False): ["test_batch"],
    ("cifar100", True): ["train"],
    ("cifar100", False): ["test"],
}
LABEL_KEY = {"cifar10": "labels", "cifar100": "fine_labels"}


def load_cifar(root: str | Path, name: str = "cifar10", train: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as a uint8 tensor (N, 3, 32, 32) and labels as int64 (N,), read from ``root``."""
    if name not in FOLDERS:
        raise ValueError(f"unknown data set {name!r}; known: {sorted(FOLDERS)}")
    folder = Path(root).expanduser() / FOLDERS[name]
    images, labels = [], []
    for file in FILES[name, train]:
        path = folder / file
        if not path.is_file():
            raise FileNotFoundError(f"{path} is missing: put the official {FOLDERS[name]}/ folder under {root}")
        with path.open("rb") as f:
            batch = pickle.load(f, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(batch[LABEL_KEY[name]], dtype=np.int64))
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))
