"""Run-wide settings of the course: quick mode, the data root and seeding.

Every notebook and command reads these environment variables, so the same code runs the full
recipe on a GPU and a small, still-real version on a laptop or in CI:

``SIMAM_QUICK``
    ``1``/``true``/``yes``/``on`` forces quick mode, ``0``/``false``/``no``/``off`` forces the full
    work (any case, surrounding spaces ignored). Unset or empty: quick mode is on in CI (the ``CI``
    variable is set to anything but empty/``0``/``false``/``no``/``off``) and wherever no GPU is
    present. Any other value is an error rather than a guess.
``SIMAM_DATA``
    The folder that holds the data sets (``cifar-10-batches-py/`` and so on).
    Unset: ``~/.cache/simam``.
``SIMAM_RUNS``
    The folder where the notebooks' full mode writes its training runs, e.g. a Google Drive folder
    on Colab, so that they outlive the session. Unset: ``runs/`` in the working folder.
``SIMAM_SMOKE_ITERATIONS``
    For tests of the full mode on a CPU: every run that a notebook trains in full mode stops after
    this many iterations and is evaluated on 1,000 test images (:func:`smoke_overrides`), and the
    chapters that train nothing take their quick-mode sizes (:func:`simam.course.smoke_test`).
    Unset in normal use.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(name: str) -> bool | None:
    """Read a boolean environment variable; ``None`` when it is unset or empty.

    Empty counts as unset, not as false: ``SIMAM_QUICK=`` (or a CI template that expands to
    nothing) must not silently force the full, GPU-sized work.
    """
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{name}={os.environ[name]!r}: expected one of {sorted(_TRUE | _FALSE)}, or unset"
    )


def quick_mode() -> bool:
    """Whether to run the shrunken version of the work (see the module docstring)."""
    forced = _flag("SIMAM_QUICK")
    if forced is not None:
        return forced
    return in_ci() or not torch.cuda.is_available()


def in_ci() -> bool:
    """Whether this runs under continuous integration: ``CI`` set to anything but empty, ``0``,
    ``false``, ``no`` or ``off`` (CI services set it to many values)."""
    return os.environ.get("CI", "").strip().lower() not in _FALSE | {""}


def smoke_overrides() -> dict[str, int]:
    """Training-configuration fields that shrink a full-mode run to ``SIMAM_SMOKE_ITERATIONS``
    iterations (one evaluation on 1,000 test images, one checkpoint); empty when it is unset."""
    value = os.environ.get("SIMAM_SMOKE_ITERATIONS", "").strip()
    if not value:
        return {}
    if not value.isdigit() or int(value) < 2:
        raise ValueError(
            f"SIMAM_SMOKE_ITERATIONS={value!r}: expected a whole number of iterations >= 2, "
            "or unset"
        )
    iterations = int(value)
    return {
        "iterations": iterations,
        "warmup": 1,
        "eval_every": iterations,
        "checkpoint_every": iterations,
        "test_subset": 1_000,
    }


def runs_root() -> Path:
    """The folder of the notebooks' full-mode training runs: ``$SIMAM_RUNS``, else ``runs/``."""
    root = os.environ.get("SIMAM_RUNS", "").strip()
    return Path(root).expanduser() if root else Path("runs")


def data_root() -> Path:
    """The folder that holds the data sets: ``$SIMAM_DATA``, else ``~/.cache/simam``."""
    root = os.environ.get("SIMAM_DATA")
    return Path(root).expanduser() if root else Path.home() / ".cache" / "simam"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); return a CPU generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
