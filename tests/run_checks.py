"""Checks that two training runs ended in the same state, shared by the trainer's tests."""

from pathlib import Path

import torch

from simam.runs import read_metrics


def rows_without_time(run: Path) -> list[dict]:
    """The run's metrics rows without their wall-clock field, which no two runs share."""
    return [{k: v for k, v in row.items() if k != "elapsed_seconds"} for row in read_metrics(run)]


def assert_same_weights_and_momentum(run: Path, other: Path) -> None:
    """The checkpoints of ``run`` and ``other`` hold bit-identical weights and momentum buffers."""
    ours = torch.load(run / "checkpoint.pt", weights_only=True)
    theirs = torch.load(other / "checkpoint.pt", weights_only=True)
    assert ours["model"].keys() == theirs["model"].keys()
    for name, tensor in theirs["model"].items():
        assert torch.equal(ours["model"][name], tensor), name
    for index, state in theirs["optimizer"]["state"].items():
        assert torch.equal(
            ours["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"]
        ), index
