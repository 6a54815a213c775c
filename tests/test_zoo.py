"""Trained networks: exporting a run's weights with their hashes, loading them back by name, from a
path or from a URL (a loopback HTTP server), refusing a damaged file, and, for every network
committed under results/, its hash and its test accuracy."""

from __future__ import annotations

import dataclasses
import functools
import http.server
import json
import threading

import pytest
import torch

from simam.config import QUICK, build_model, config_from_dict
from simam.device import resolve
from simam.experiments import RUNS, RunSpec, results_path
from simam.experiments.weights import export
from simam.runs import CHECKPOINT, FINAL
from simam.train import evaluate, load_data
from simam.zoo import (
    DEFAULT_RESULTS,
    WEIGHTS,
    committed_seeds,
    load_weights,
    pretrained,
    read_sums,
    read_weights,
    save_weights,
    sha256,
)


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
        file.write(
            json.dumps({"run_id": spec.run_id, "seed": seed, "config": dataclasses.asdict(config)})
            + "\n"
        )
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
    assert loaded.keys() == expected.keys() and all(
        torch.equal(loaded[k], expected[k]) for k in expected
    )


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
    with pytest.raises(
        FileNotFoundError,
        match="no trained weights for cifar10-resnet20-simam-quick-seed0.*there are: "
        "cifar10-resnet20-none-quick-seed0",
    ):
        pretrained("resnet20", "simam", results=tmp_path)
    damaged = bytearray(path.read_bytes())
    damaged[-1] ^= 1  # one bit of the last byte
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="SHA-256"):
        pretrained("resnet20", "none", results=tmp_path)


def test_a_weights_file_alone_rebuilds_its_network(tmp_path):
    fake_grid_run(tmp_path, "eca", 0)
    [path] = export(tmp_path)
    moved = tmp_path / "elsewhere" / "eca.pt"  # no results file, no SHA256SUMS beside it
    moved.parent.mkdir()
    path.rename(moved)
    payload = read_weights(moved)
    assert payload["network"] == {
        "model": "resnet20",
        "attention": "eca",
        "lambda_": QUICK.lambda_,
        "dataset": "cifar10",
    }
    assert payload["trained"]["seed"] == 0
    model = pretrained(moved, sha256=sha256(moved))
    # ECA's 1-D convolution, one per block
    assert sum(isinstance(m, torch.nn.Conv1d) for m in model.modules()) == 9
    with pytest.raises(ValueError, match="SHA-256"):
        load_weights(moved, sha256="0" * 64)


def test_a_file_that_is_not_a_weights_file_gets_a_clear_error(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "plain.pt")  # a bare state dict
    with pytest.raises(ValueError, match="not a simam weights file"):
        load_weights(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="not a readable weights file"):
        load_weights(tmp_path / "junk.pt")
    with pytest.raises(ValueError, match="lacks attention"):
        save_weights(tmp_path / "x.pt", {}, {"model": "resnet20"})


@pytest.fixture
def http_folder(tmp_path):
    """A loopback HTTP server over ``tmp_path/served``; yields (folder, base URL)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pretrained_downloads_a_url_checks_its_hash_and_caches_it(
    tmp_path, http_folder, monkeypatch
):
    served, base = http_folder
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    expected = fake_grid_run(tmp_path / "grid", "simam", 0)
    [path] = export(tmp_path / "grid")
    (served / "net.pt").write_bytes(path.read_bytes())
    digest = sha256(path)
    loaded = pretrained(f"{base}/net.pt", sha256=digest).state_dict()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    (served / "net.pt").unlink()  # the second call is served from the cache
    assert pretrained(f"{base}/net.pt", sha256=digest).state_dict().keys() == expected.keys()
    (served / "other.pt").write_bytes(path.read_bytes()[:-1] + b"x")
    with pytest.raises(ValueError, match="hash"):
        load_weights(f"{base}/other.pt", sha256=digest)
    # nothing damaged is kept
    assert not list((tmp_path / "hub" / "checkpoints" / "simam").glob("*other*"))
    with pytest.raises(ValueError, match="needs its SHA-256"):
        load_weights(f"{base}/net.pt")
    with pytest.raises(OSError, match="could not download"):
        load_weights(f"{base}/absent.pt", sha256="0" * 64)


def test_a_missing_network_names_what_there_is_and_a_folder_of_ones_own(tmp_path):
    with pytest.raises(FileNotFoundError, match="there are: .*simam.*--out my-grid") as error:
        pretrained("resnet20", "simam", seed=99)
    assert "site-packages" not in str(error.value)


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
    model = pretrained(
        spec["model"], spec["attention"], spec["dataset"], spec["recipe"], spec["seed"]
    )
    # The precision of the run where this CPU has it natively, float32 elsewhere: a few images of
    # the 10,000 may change their class between the two, no more.
    config = resolve(
        dataclasses.replace(config_from_dict(spec), device="cpu", amp=None, amp_dtype=None),
        torch.device("cpu"),
    )
    test_loader = load_data(config)[1]
    accuracy = evaluate(model, model, test_loader, config.amp_dtype)["test_accuracy"]
    assert accuracy == pytest.approx(final["final_test_accuracy"], abs=0.003)
