"""``scripts/gpu_check.py`` on a machine without a GPU: it says so and checks nothing, and its
plumbing (every check runs, one table, the exit status, the file ``--write`` writes) works with
stand-in checks and a stand-in GPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_check"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_without_a_gpu_it_says_so_and_checks_nothing(gpu_check, capsys):
    assert gpu_check.main(["--write"]) == 2
    assert "no CUDA GPU visible" in capsys.readouterr().err


def test_every_check_runs_and_one_table_says_how_each_ended(gpu_check, tmp_path, monkeypatch, capsys):
    def passes(machine):
        return "all well"

    def skips(machine):
        raise gpu_check.Skipped("1 GPU; DDP over NCCL needs two")

    def fails(machine):
        raise AssertionError("weights differ: ['fc.weight']")

    monkeypatch.setattr(gpu_check, "CHECKS", [("first", passes), ("second", fails), ("third", skips)])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(gpu_check, "REPO", tmp_path)
    (tmp_path / "data" / "cifar-10-batches-py").mkdir(parents=True)
    (tmp_path / "data" / "cifar-10-batches-py" / "test_batch").touch()

    assert gpu_check.main(["--data-root", str(tmp_path / "data"), "--write"]) == 1  # a check failed
    written = (tmp_path / "results" / "gpu" / "Tesla-T4.md").read_text()
    assert written in capsys.readouterr().out
    lines = written.splitlines()
    assert lines[0].startswith("`scripts/gpu_check.py` on Tesla T4 (compute capability 7.5, 1 GPU(s))")
    assert lines[2:4] == ["| check | result | seconds |", "| --- | --- | ---: |"]
    assert [line.rsplit("|", 2)[0] for line in lines[4:]] == [
        "| first | passed: all well ",
        "| second | FAILED: AssertionError: weights differ: ['fc.weight'] ",
        "| third | skipped: 1 GPU; DDP over NCCL needs two ",
    ]

    monkeypatch.setattr(gpu_check, "CHECKS", [("first", passes), ("third", skips)])
    assert gpu_check.main(["--data-root", str(tmp_path / "data")]) == 0  # passed and skipped only


def test_the_table_goes_to_a_file_named_after_the_device(gpu_check):
    assert gpu_check.device_file("NVIDIA H100 80GB HBM3").name == "NVIDIA-H100-80GB-HBM3.md"
    assert gpu_check.device_file("Tesla P100-PCIE-16GB").relative_to(gpu_check.REPO) == Path(
        "results/gpu/Tesla-P100-PCIE-16GB.md")
