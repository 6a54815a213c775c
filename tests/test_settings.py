"""quick_mode, data_root and seed_everything read the environment as simam/settings.py documents."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from simam import settings
from simam.course import smoke_test
from simam.settings import data_root, quick_mode, runs_root, seed_everything


@pytest.fixture
def clean_env(monkeypatch):
    """No SIMAM_* or CI variable from the surrounding shell (CI services set CI themselves)."""
    for name in ["SIMAM_QUICK", "SIMAM_DATA", "SIMAM_RUNS", "SIMAM_SMOKE_ITERATIONS", "CI"]:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def set_gpu(monkeypatch, available: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: available)


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "Yes", "on", " on ", "True\n"])
@pytest.mark.parametrize("gpu", [True, False])
def test_simam_quick_forces_quick_mode_on(clean_env, value, gpu):
    set_gpu(clean_env, gpu)
    clean_env.setenv("SIMAM_QUICK", value)
    assert quick_mode() is True


@pytest.mark.parametrize("value", ["0", "false", "False", "NO", "off", " 0 "])
@pytest.mark.parametrize("ci", [None, "true"])
@pytest.mark.parametrize("gpu", [True, False])
def test_simam_quick_forces_quick_mode_off_even_in_ci_and_without_gpu(clean_env, value, ci, gpu):
    set_gpu(clean_env, gpu)
    if ci:
        clean_env.setenv("CI", ci)
    clean_env.setenv("SIMAM_QUICK", value)
    assert quick_mode() is False


@pytest.mark.parametrize("ci", ["true", "1", "yes", "woodpecker", "TRUE"])
def test_ci_turns_quick_mode_on_when_simam_quick_is_unset(clean_env, ci):
    set_gpu(clean_env, True)
    clean_env.setenv("CI", ci)
    assert quick_mode() is True


@pytest.mark.parametrize("ci", [None, "", "0", "false", "no", "off"])
def test_without_ci_quick_mode_follows_the_gpu(clean_env, ci):
    if ci is not None:
        clean_env.setenv("CI", ci)
    set_gpu(clean_env, True)
    assert quick_mode() is False
    set_gpu(clean_env, False)
    assert quick_mode() is True


def test_empty_simam_quick_counts_as_unset(clean_env):
    clean_env.setenv("SIMAM_QUICK", "")
    set_gpu(clean_env, True)
    assert quick_mode() is False
    set_gpu(clean_env, False)
    assert quick_mode() is True
    clean_env.setenv("CI", "true")
    set_gpu(clean_env, True)
    assert quick_mode() is True


@pytest.mark.parametrize("value", ["maybe", "2", "y", "enable", "tru"])
def test_invalid_simam_quick_is_an_error_that_lists_the_choices(clean_env, value):
    clean_env.setenv("SIMAM_QUICK", value)
    with pytest.raises(ValueError) as error:
        quick_mode()
    message = str(error.value)
    assert f"SIMAM_QUICK={value!r}" in message
    for choice in ["0", "1", "false", "true", "no", "yes", "off", "on"]:
        assert repr(choice) in message


def test_data_root_defaults_to_the_cache_folder(clean_env, tmp_path):
    clean_env.setenv("HOME", str(tmp_path))
    assert data_root() == tmp_path / ".cache" / "simam"
    clean_env.setenv("SIMAM_DATA", "")  # empty counts as unset
    assert data_root() == tmp_path / ".cache" / "simam"


def test_data_root_honours_simam_data(clean_env, tmp_path):
    clean_env.setenv("SIMAM_DATA", str(tmp_path / "datasets"))
    assert data_root() == tmp_path / "datasets"
    assert isinstance(data_root(), Path)
    clean_env.setenv("HOME", str(tmp_path))
    clean_env.setenv("SIMAM_DATA", "~/cifar")
    assert data_root() == tmp_path / "cifar"


def test_runs_root_is_runs_unless_simam_runs_names_another_folder(clean_env, tmp_path):
    assert runs_root() == Path("runs")
    clean_env.setenv("SIMAM_RUNS", " ")  # blank counts as unset
    assert runs_root() == Path("runs")
    clean_env.setenv("HOME", str(tmp_path))
    clean_env.setenv("SIMAM_RUNS", "~/drive/simam-runs")
    assert runs_root() == tmp_path / "drive" / "simam-runs"


def test_smoke_test_follows_simam_smoke_iterations(clean_env):
    assert not smoke_test()
    clean_env.setenv("SIMAM_SMOKE_ITERATIONS", "4")
    assert smoke_test()
    clean_env.setenv("SIMAM_SMOKE_ITERATIONS", "four")
    with pytest.raises(ValueError, match="whole number"):
        smoke_test()


def draws():
    return (
        [random.random() for _ in range(3)],
        np.random.rand(3).tolist(),
        np.random.randint(0, 10**9, size=3).tolist(),
        torch.rand(3).tolist(),
        torch.randn(2, 2, dtype=torch.float64).tolist(),
    )


def test_seed_everything_makes_python_numpy_and_torch_reproducible():
    generator = seed_everything(1234)
    first = draws()
    first_generated = torch.rand(4, generator=generator).tolist()
    generator = seed_everything(1234)
    assert draws() == first
    assert torch.rand(4, generator=generator).tolist() == first_generated
    # the returned generator is a CPU generator seeded like the global one
    assert isinstance(generator, torch.Generator) and generator.device.type == "cpu"
    seed_everything(1234)
    assert torch.rand(4, generator=seed_everything(1234)).tolist() == torch.rand(4).tolist()


def test_different_seeds_give_different_draws():
    seed_everything(1)
    first = draws()
    seed_everything(2)
    second = draws()
    for a, b in zip(first, second):
        assert a != b


def test_module_documents_every_variable():
    for name in ("SIMAM_QUICK", "SIMAM_DATA", "SIMAM_RUNS", "SIMAM_SMOKE_ITERATIONS"):
        assert name in settings.__doc__
