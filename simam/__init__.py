"""SimAM, the parameter-free 3-D attention module (Yang et al., ICML 2021), and the small library
that the course builds around it."""

# The function simam.energy.energy is not re-exported here: it would hide the module simam.energy.
from simam.energy import (
    closed_form_minimiser,
    importance,
    minimal_energy,
    numeric_minimiser,
)
from simam.settings import data_root, quick_mode, seed_everything

__version__ = "0.1.0"
