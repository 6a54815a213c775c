"""SimAM, the parameter-free 3-D attention module (Yang et al., ICML 2021), and the small library
that the course builds around it: the energy maths, the attention modules, the CIFAR models and data.

    import simam
    block_attention = simam.SimAM()                      # or simam.create_attention("se", 64)
    model = simam.create_model("resnet20", attention="simam", num_classes=10)
"""

from simam.attention import SimAM, create_attention, list_attentions
from simam.data import CifarLoader, load_cifar

# The function simam.energy.energy is not re-exported here: it would hide the module simam.energy.
from simam.energy import (
    closed_form_minimiser,
    importance,
    minimal_energy,
    numeric_minimiser,
)
from simam.models import count_parameters, create_model, list_models
from simam.zoo import pretrained
from simam.settings import data_root, quick_mode, seed_everything

__version__ = "0.1.0"
