"""Training curves of :mod:`simam.train` runs, drawn from their output folders in one call."""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import cycle
from pathlib import Path

from simam.runs import FINAL, read_metrics


def run_label(run: Path) -> str:
    """``model + attention (recipe, seed N)`` from the run's final.json, else the folder's name."""
    path = run / FINAL
    if not path.exists():
        return run.name
    config = json.loads(path.read_text())["config"]
    return f"{config['model']} + {config['attention']} ({config['recipe']}, seed {config['seed']})"


def plot_training_curves(
    runs: str | Path | Sequence[str | Path], labels: Sequence[str] | None = None
):
    """Test accuracy, losses and learning rate against iterations for one run folder or several.

    Each run is a folder written by ``python -m simam.train`` (its ``metrics.jsonl``); a run still
    under way is drawn as far as it got. Training loss (dashed) is the mean over the iterations
    since the previous evaluation, with the run's label smoothing; test loss (solid) has none.
    Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt  # imported here: slow to import, and only plotting needs it

    runs = [Path(runs)] if isinstance(runs, (str, Path)) else [Path(run) for run in runs]
    labels = list(labels) if labels is not None else [run_label(run) for run in runs]
    if len(labels) != len(runs):
        raise ValueError(f"{len(runs)} runs but {len(labels)} labels")
    figure, (accuracy_axis, loss_axis, lr_axis) = plt.subplots(
        1, 3, figsize=(15, 4), layout="constrained"
    )
    for run, label, color in zip(
        runs, labels, cycle(plt.rcParams["axes.prop_cycle"].by_key()["color"])
    ):
        rows = read_metrics(run)
        if not rows:
            raise FileNotFoundError(f"{run / 'metrics.jsonl'} holds no evaluations")
        iterations = [row["iteration"] for row in rows]
        accuracy_axis.plot(
            iterations,
            [100 * row["test_accuracy"] for row in rows],
            color=color,
            marker="o",
            markersize=3,
            label=label,
        )
        loss_axis.plot(
            iterations, [row["test_loss"] for row in rows], color=color, label=f"{label}, test"
        )
        loss_axis.plot(
            iterations,
            [row["train_loss"] for row in rows],
            color=color,
            linestyle="--",
            label=f"{label}, train",
        )
        lr_axis.plot(iterations, [row["lr"] for row in rows], color=color, label=label)
    accuracy_axis.set(xlabel="iteration", ylabel="test accuracy (%)", title="Test accuracy (top-1)")
    loss_axis.set(
        xlabel="iteration", ylabel="cross-entropy", title="Loss: training (dashed), test (solid)"
    )
    lr_axis.set(
        xlabel="iteration", ylabel="learning rate", title="Learning rate (at each evaluation)"
    )
    for axis in (accuracy_axis, loss_axis, lr_axis):
        axis.grid(alpha=0.3)
    accuracy_axis.legend(fontsize="small")
    return figure
