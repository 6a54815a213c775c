"""What the trainer's and the grid's tests share: a tiny run's options, a child that kills itself,
a stand-in ``final.json``, and checks that two training runs ended in the same state."""

from pathlib import Path

import torch

from simam.runs import read_metrics

# 12 steps of 16 over 48 images (4 epochs), evaluations every 3 steps, checkpoints every 4.
RUN = [
    "--model",
    "resnet20",
    "--attention",
    "simam",
    "--recipe",
    "quick",
    "--subset",
    "48",
    "--batch-size",
    "16",
    "--iterations",
    "12",
    "--warmup",
    "3",
    "--lr",
    "0.05",
    "--eval-every",
    "3",
    "--checkpoint-every",
    "4",
    "--test-subset",
    "100",
    "--threads",
    "1",
    "--device",
    "cpu",
    "--no-progress",
]

# Runs the trainer's command line, as a child process or a torchrun rank, and sends itself SIGKILL
# when its KILL_AT_STEP-th step begins: on every process, or under torchrun on rank KILL_RANK alone.
KILLED_AT_STEP = """
import os, signal, sys
import simam.train

step, calls = simam.train.train_step, 0

def step_then_die(*args, **kwargs):
    global calls
    calls += 1
    rank = os.environ.get("RANK", "0")
    if calls == int(os.environ["KILL_AT_STEP"]) and rank == os.environ.get("KILL_RANK", rank):
        os.kill(os.getpid(), signal.SIGKILL)
    return step(*args, **kwargs)

simam.train.train_step = step_then_die
sys.exit(simam.train.main(sys.argv[1:]))
"""


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


def fake_final(config: dict, accuracy: float, split: str = "test") -> dict:
    """A ``final.json`` of a run judged on ``split`` that ended at ``accuracy``, for a stand-in
    trainer."""
    return {
        "config": config,
        f"final_{split}_accuracy": accuracy,
        f"final_{split}_loss": 1.0,
        f"best_{split}_accuracy_selected_on_{split}_set": accuracy,
        "iterations": 4,
        "epochs": 1.0,
        "wall_seconds": 1.0,
        "train_images_per_second": 10.0,
        "parameters": 1,
        "device": "CPU: test",
        "versions": {},
    }
