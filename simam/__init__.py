"""SimAM, the parameter-free 3-D attention module (Yang et al., ICML 2021), and the small library
that the course builds around it: the energy maths, the attention modules, the CIFAR models and data.

    import simam
    block_attention = simam.SimAM()                      # or simam.create_attention("se", 64)
    model = simam.create_model("resnet20", attention="simam", num_classes=10)
"""

import torch

MINIMUM_TORCH = "2.3"
"""The oldest PyTorch the library is tested with (its unit tests pass with torch 2.3.1). Older
releases lack APIs it calls, such as ``torch.amp.GradScaler`` for the CPU."""

if torch.__version__ < MINIMUM_TORCH:  # TorchVersion compares as a version, "2.10" > "2.3"
    raise ImportError(f"simam needs torch {MINIMUM_TORCH} or newer, but this is torch {torch.__version__}: "
                      f"pip install 'torch>={MINIMUM_TORCH}'")

from simam.attention import SimAM, create_attention, list_attentions  # noqa: E402
from simam.data import CifarLoader, load_cifar

# The function simam.energy.energy is not re-exported here: it would hide the module simam.energy.
from simam.energy import (
    closed_form_minimiser,
    importance,
    minimal_energy,
    numeric_minimiser,
)
from simam.models import count_parameters, create_model, insert_attention, list_models
from simam.zoo import pretrained
from simam.settings import data_root, quick_mode, seed_everything

__version__ = "0.1.0"
