"""Trained networks by name: exporting a run's weights with their hashes, loading them back, refusing
a damaged file, and, for every network committed under results/, its hash and its test accuracy."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from simam.config import QUICK, build_model, config_from_dict
from simam.experiments import RUNS, RunSpec, results_path
from simam.runs import CHECKPOINT, FINAL
from simam.train import evaluate, load_data, resolve
from simam.zoo import DEFAULT_RESULTS, SHA256SUMS, WEIGHTS, committed_seeds, export, pretrained, read_sums, sha256


def fake_grid_run(results, attention: str, seed: int) -> dict[str, torch.Tensor]:
    """A results line and a checkpoint as a finished grid run leaves them; returns the weights."""
    spec = RunSpec("cifar10", "resnet20", attention, "quick", seed)
    config = dataclasses.replace(QUICK, attention=attention, seed=seed)
    torch.manual_seed(seed)
    state = build_model(config).state_dict()
    run = results / RUNS / spec.run_id
    run.mkdir(parents=True)
    torch.save({"model": state, "iteration": 1}, run / CHECKPOINT)
    with open(results_path(results), "a") as file:
        file.write(json.dumps({"run_id": spec.run_id, "seed": seed, "config": dataclasses.asdict(config)}) + "\n")
    return state


def test_export_writes_the_seed_0_weights_with_their_hashes_and_pretrained_loads_them(tmp_path):
    expected = fake_grid_run(tmp_path, "simam", 0)
    fake_grid_run(tmp_path, "simam", 1)
    written = export(tmp_path)
    assert [path.name for path in written] == ["cifar10-resnet20-simam-quick-seed0.pt"]
    assert read_sums(tmp_path) == {written[0].name: sha256(written[0])}
    assert export(tmp_path) == []  # nothing new to write
    model = pretrained("resnet20", "simam", results=tmp_path)
    assert not model.training
    loaded = model.state_dict()
    assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected)


def test_without_a_seed_pretrained_loads_the_lowest_committed_one(tmp_path):
    fake_grid_run(tmp_path, "gc", 0)
    expected = fake_grid_run(tmp_path, "gc", 2)
    fake_grid_run(tmp_path, "gc", 3)
    export(tmp_path, seeds=(2, 3))
    assert committed_seeds("resnet20", "gc", results=tmp_path) == [2, 3]
    assert committed_seeds("resnet20", "simam", results=tmp_path) == []
    loaded = pretrained("resnet20", "gc", results=tmp_path).state_dict()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    with pytest.raises(FileNotFoundError, match="cifar10-resnet20-gc-quick-seed0"):
        pretrained("resnet20", "gc", seed=0, results=tmp_path)


def test_export_writes_only_the_attentions_asked_for(tmp_path):
    fake_grid_run(tmp_path, "gc", 3)
    fake_grid_run(tmp_path, "simam", 3)
    written = export(tmp_path, seeds=(3,), attentions=("gc",))
    assert [path.name for path in written] == ["cifar10-resnet20-gc-quick-seed3.pt"]
    assert committed_seeds("resnet20", "simam", results=tmp_path) == []


def test_pretrained_refuses_a_damaged_file_and_names_what_is_there(tmp_path):
    fake_grid_run(tmp_path, "none", 0)
    [path] = export(tmp_path)
    with pytest.raises(FileNotFoundError, match="no trained weights for cifar10-resnet20-simam-quick-seed0.*there are: "
                                                "cifar10-resnet20-none-quick-seed0"):
        pretrained("resnet20", "simam", results=tmp_path)
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 1  # one bit of the last byte
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="SHA-256"):
        pretrained("resnet20", "none", results=tmp_path)


COMMITTED = sorted((DEFAULT_RESULTS / WEIGHTS).glob("*.pt"))


def test_committed_weights_are_small_and_all_recorded():
    sums = read_sums(DEFAULT_RESULTS)
    assert sorted(sums) == [path.name for path in COMMITTED]
    assert sum(path.stat().st_size for path in COMMITTED) <= 10 * 2**20


@pytest.mark.cifar10
@pytest.mark.parametrize("path", COMMITTED, ids=[path.stem for path in COMMITTED])
def test_each_committed_network_has_its_hash_and_the_accuracy_of_its_run(path):
    assert sha256(path) == read_sums(DEFAULT_RESULTS)[path.name]
    final = json.loads((DEFAULT_RESULTS / RUNS / path.stem / FINAL).read_text())
    spec = final["config"]
    model = pretrained(spec["model"], spec["attention"], spec["dataset"], spec["recipe"], spec["seed"])
    # The precision of the run where this CPU has it natively, float32 elsewhere: a few images of the
    # 10,000 may change their class between the two, no more.
    config = resolve(dataclasses.replace(config_from_dict(spec), device="cpu", amp=None, amp_dtype=None),
                     torch.device("cpu"))
    test_loader = load_data(config)[1]
    accuracy = evaluate(model, model, test_loader, config.amp_dtype)["test_accuracy"]
    assert accuracy == pytest.approx(final["final_test_accuracy"], abs=0.003)
