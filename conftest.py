"""pytest's settings for the whole repository.

The test command runs the quick course: notebooks executed by nbval see ``SIMAM_QUICK=1`` unless the
caller set ``SIMAM_QUICK`` (``SIMAM_QUICK=0 make test`` checks the full version, on a GPU, against
outputs that were stored in quick mode, so expect differences). Without this a machine with a GPU
would start the paper's 64,000-iteration runs inside the notebooks.
"""

import os


def pytest_configure() -> None:
    if not os.environ.get("SIMAM_QUICK", "").strip():
        os.environ["SIMAM_QUICK"] = "1"
