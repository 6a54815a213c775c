"""The package as an import: it names the oldest torch it works with, and says so on an older one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from torch.torch_version import TorchVersion

import simam

PRETEND = "import torch; torch.__version__ = torch.torch_version.TorchVersion({version!r}); import simam; print('imported')"


@pytest.mark.parametrize("version, imports", [("2.2.2", False), ("1.13.1+cu117", False), ("2.3.0", True), ("2.10.1", True)])
def test_import_says_clearly_when_torch_is_too_old(version: str, imports: bool) -> None:
    result = subprocess.run([sys.executable, "-c", PRETEND.format(version=version)], capture_output=True, text=True, timeout=300)
    if imports:
        assert result.returncode == 0 and "imported" in result.stdout, result.stderr[-2000:]
    else:
        assert result.returncode != 0
        assert f"simam needs torch {simam.MINIMUM_TORCH} or newer, but this is torch {version}" in result.stderr


def test_the_minimum_compares_as_a_version() -> None:
    assert TorchVersion("2.10.0") >= simam.MINIMUM_TORCH and not TorchVersion("2.2.9") >= simam.MINIMUM_TORCH
