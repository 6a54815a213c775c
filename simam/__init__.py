"""SimAM, the parameter-free 3-D attention module (Yang et al., ICML 2021), and the small library
that the course builds around it: the energy maths, the attention modules, the CIFAR models and
data.

    import simam
    block_attention = simam.SimAM()                      # or simam.create_attention("se", 64)
    model = simam.create_model("resnet20", attention="simam", num_classes=10)
    simam.insert_attention(torchvision_resnet, "simam")  # into a network you did not write

The names below are the library's public API. The training loop, grids of runs, attention maps and
benchmarks are modules of their own (:mod:`simam.train`, :mod:`simam.experiments`,
:mod:`simam.maps`, :mod:`simam.bench`); :mod:`simam.config` and :mod:`simam.runs` say what a run is
and what it writes.
"""

from importlib.metadata import PackageNotFoundError, version

import torch

MINIMUM_TORCH = "2.3"
"""The oldest PyTorch the library is tested with (its unit tests pass with torch 2.3.1). Older
releases lack APIs it calls, such as ``torch.amp.GradScaler`` for the CPU."""

if torch.__version__ < MINIMUM_TORCH:  # TorchVersion compares as a version, "2.10" > "2.3"
    raise ImportError(
        f"simam needs torch {MINIMUM_TORCH} or newer, but this is torch {torch.__version__}: "
        f"pip install 'torch>={MINIMUM_TORCH}'"
    )

from simam.attention import SimAM, create_attention, list_attentions  # noqa: E402
from simam.data import CifarLoader, load_cifar  # noqa: E402

# The function simam.energy.energy is not re-exported here: it would hide the module simam.energy.
from simam.energy import closed_form_minimiser, importance, minimal_energy, numeric_minimiser  # noqa: E402
from simam.models import count_parameters, create_model, insert_attention, list_models  # noqa: E402
from simam.settings import data_root, quick_mode, seed_everything  # noqa: E402
from simam.zoo import pretrained  # noqa: E402

try:
    __version__ = version("simam")  # pyproject.toml's, the one place the version is written
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"

__all__ = [
    # attention modules
    "SimAM",
    "create_attention",
    "list_attentions",
    # networks: the CIFAR ones, anyone else's, and the course's trained ones
    "create_model",
    "list_models",
    "count_parameters",
    "insert_attention",
    "pretrained",
    # the energy function's closed form (chapters 1 and 2)
    "closed_form_minimiser",
    "minimal_energy",
    "importance",
    "numeric_minimiser",
    # data
    "CifarLoader",
    "load_cifar",
    # the course's settings: where the data are, quick mode, seeds
    "data_root",
    "quick_mode",
    "seed_everything",
    "MINIMUM_TORCH",
    "__version__",
]
