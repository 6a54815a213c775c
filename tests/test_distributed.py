"""Distributed training: the batch shares, the errors, and real two-process runs started by
torchrun.

The runs are those of ``tests/test_train.py`` (ResNet-20 + SimAM, 12 steps of a global batch of 16
over 48 real CIFAR-10 images, 100 test images, one CPU thread per process), started as users start
them, ``python -m torch.distributed.run --standalone --nproc_per_node=2 -m simam.train``, with the
gloo backend on the CPU. They are skipped when ``SIMAM_DATA`` does not hold CIFAR-10.

torch's SyncBatchNorm runs on GPUs only, so on the CPU each rank normalises with the statistics of
its 8 images. The two-process run is therefore checked twice:

- against a one-process reference built here from the library's parts that computes what the two
  ranks compute (each rank's share through the model, the mean of the two gradients, rank 0's
  running statistics kept): bit-identical weights and momentum (halving a gradient is exact in
  floating point, and gloo adds two ranks' gradients as the reference does), and losses equal up to
  float32 round-off of sums taken in another order (measured 1.6e-7; tolerance relative 1e-5);
- against the one-process run with the same global batch of 16, whose batch norm sees all 16
  images: the losses differ by the batch-norm statistics of 8 images instead of 16 (measured at
  most 0.032, 1.3%, at the second evaluation); tolerance 0.05.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from run_checks import KILLED_AT_STEP, RUN, assert_same_weights_and_momentum, rows_without_time
from torch import nn

from simam.config import Config, ConfigError, build_model, check_config, config_from_args
from simam.data import CifarLoader, rank_share
from simam.device import autocast, resolve
from simam.distributed import Launch, rank_seed
from simam.runs import read_metrics
from simam.settings import seed_everything
from simam.step import make_optimizer
from simam.train import evaluate, learning_rate, load_data, main, restore_rng_states, rng_states

REPO = Path(__file__).resolve().parents[1]

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
REFERENCE_RTOL = 1e-5  # float32 round-off of loss sums taken in another order
SINGLE_PROCESS_ATOL = 0.05  # batch-norm statistics of 8 images per rank instead of 16


# Each of two processes runs this script; on rank FAIL_RANK the trainer's function FAIL_AT raises.
FAILING_RANK = """
import os, sys
import simam.train

name = os.environ["FAIL_AT"]
original = getattr(simam.train, name)

def fail_on_one_rank(*args, **kwargs):
    if os.environ["RANK"] == os.environ["FAIL_RANK"]:
        raise OSError(name + " failed on purpose")
    return original(*args, **kwargs)

setattr(simam.train, name, fail_on_one_rank)
sys.exit(simam.train.main(sys.argv[1:]))
"""


pytestmark = pytest.mark.usefixtures("one_thread")


def torchrun(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TORCHRUN, *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def distributed_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("distributed")
    finished = torchrun(["-m", "simam.train", *RUN, "--out", str(out)])
    assert finished.returncode == 0, finished.stderr[-3000:]
    return out


# --------------------------------------------------------------------------------------------------
# Shares of a batch, and what cannot run


@pytest.mark.parametrize("world_size", [2, 3, 4])
def test_rank_shares_put_together_are_the_single_process_batches(world_size):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.arange(30) % 10
    # 12, 12 and a short 6
    options = {
        "batch_size": 12,
        "shuffle": True,
        "augment": True,
        "seed": 3,
    }
    whole = CifarLoader(images, labels, **options)
    shares = [
        CifarLoader(images, labels, rank=rank, world_size=world_size, **options)
        for rank in range(world_size)
    ]
    for epoch in range(2):  # the second epoch's plan is drawn afresh, and must agree too
        batches = list(whole)
        per_rank = [list(loader) for loader in shares]
        for number, (batch, batch_labels) in enumerate(batches):
            parts = [ranks[number] for ranks in per_rank if number < len(ranks)]
            assert torch.equal(torch.cat([part for part, _ in parts]), batch), (epoch, number)
            assert torch.equal(torch.cat([part for _, part in parts]), batch_labels)
        assert all(loader.state_dict()["epoch"] == whole.state_dict()["epoch"] for loader in shares)
    assert [rank_share(12, rank, 4) for rank in range(4)] == [
        slice(0, 3),
        slice(3, 6),
        slice(6, 9),
        slice(9, 12),
    ]
    # a share can be empty
    assert [len(range(30)[rank_share(2, rank, 3)]) for rank in range(3)] == [
        0,
        1,
        1,
    ]


def test_a_loader_share_resumes_from_the_whole_loaders_state():
    images = torch.randint(
        0, 256, (40, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    labels = torch.arange(40) % 10
    options = {"batch_size": 8, "shuffle": True, "augment": True, "drop_last": True, "seed": 5}
    whole = CifarLoader(images, labels, **options)
    batches = iter(whole)
    next(batches), next(batches)
    share = CifarLoader(images, labels, rank=1, world_size=2, **options)
    share.load_state_dict(whole.state_dict())  # the state of one process continues on two
    rest, mine = [batch for batch, _ in batches], [batch for batch, _ in share]
    assert len(mine) == len(rest) == 3 and all(
        torch.equal(part, batch[4:]) for part, batch in zip(mine, rest)
    )
    with pytest.raises(ValueError, match="rank must be in"):
        CifarLoader(images, labels, rank=2, world_size=2)


def test_a_batch_that_does_not_divide_by_the_world_size_is_named():
    check_config(Config(batch_size=128), world_size=8)
    with pytest.raises(ConfigError, match="batch_size 128 does not divide by the 3 processes"):
        check_config(Config(batch_size=128), world_size=3)


def test_a_checkpoint_from_before_the_sync_bn_option_resumes_and_a_changed_one_is_named(tmp_path):
    from simam.train import _open_run

    config = resolve(Config(device="cpu"), torch.device("cpu"))
    older = {key: value for key, value in dataclasses.asdict(config).items() if key != "sync_bn"}
    torch.save({"config": older, "iteration": 0}, tmp_path / "checkpoint.pt")
    checkpoint, rows = _open_run(config, tmp_path, resume=True)
    assert checkpoint["iteration"] == 0 and rows == []
    with pytest.raises(ConfigError, match="sync_bn=True \\(the run has False\\)"):
        _open_run(dataclasses.replace(config, sync_bn=True), tmp_path, resume=True)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-size", "16"], "batch_size 16 does not divide by the 3 processes"),
        (["--batch-size", "15", "--sync-bn", "--device", "cpu"], "--sync-bn needs CUDA"),
        (
            ["--batch-size", "15", "--device", "cuda:1"],
            "each process takes the GPU of its LOCAL_RANK",
        ),
    ],
)
def test_errors_under_torchrun_are_one_line_naming_the_rank(
    args, message, tmp_path, monkeypatch, capsys
):
    # What torchrun sets; each error is found before any process group is joined.
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert (
        error.count("\n") == 1
        and error.startswith("simam-train[rank 2]: error: ")
        and message in error
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("fail_at", "failing_rank"),
    [
        # rank 0, before it sends the checkpoint: the others wait in the broadcast
        (
            "_open_run",
            0,
        ),
        pytest.param("build_model", 1, marks=pytest.mark.cifar10),  # rank 0 then loads the data
    ],
)
def test_a_rank_that_fails_before_training_stops_every_rank_at_once(
    fail_at, failing_rank, tmp_path
):
    """Two gloo processes started as torchrun starts them, without torchrun, which would stop the
    other process itself: each must end on its own, the other one naming the failed rank."""
    script = tmp_path / "failing_rank.py"
    script.write_text(FAILING_RANK)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    processes = [
        subprocess.Popen(
            [sys.executable, str(script), *RUN, "--out", str(tmp_path / "run")],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={
                **os.environ,
                "RANK": str(rank),
                "LOCAL_RANK": str(rank),
                "WORLD_SIZE": "2",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
                "FAIL_AT": fail_at,
                "FAIL_RANK": str(failing_rank),
                # a rank that aborts (gloo's threads can, when the other rank has gone) prints
                # where each of its threads was, into the stderr the assertions below show
                "PYTHONFAULTHANDLER": "1",
            },
        )
        for rank in range(2)
    ]
    try:
        errors = [process.communicate(timeout=120)[1] for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [1, 1], errors
    assert f"OSError: {fail_at} failed on purpose" in errors[failing_rank]
    other = 1 - failing_rank
    assert errors[other].strip().splitlines()[-1] == (
        f"simam-train[rank {other}]: rank {failing_rank} failed, so this rank stops too: "
        f"OSError: {fail_at} failed on purpose"
    ), errors[other]


# --------------------------------------------------------------------------------------------------
# Real runs


def reference_run(
    args: list[str], world_size: int = 2
) -> tuple[list[dict], nn.Module, torch.optim.Optimizer]:
    """What ``world_size`` DDP ranks without SyncBN compute, in one process, from the library's
    parts: each rank's share goes through the model, the gradient is the mean of the ranks'
    gradients of their mean losses, and the running statistics kept are rank 0's. Returns the
    metrics rows (without times), the model and the optimiser."""
    config = resolve(config_from_args(args)[0], torch.device("cpu"))
    seed_everything(config.seed)
    model = build_model(config)
    optimizer = make_optimizer(model, config)
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    shares = [load_data(config, rank, world_size)[0] for rank in range(world_size)]
    test_loader = load_data(config)[1]
    rows, losses, iteration = [], [], 0
    while iteration < config.iterations:
        for batches in zip(*shares):
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(config, iteration)
            optimizer.zero_grad(set_to_none=True)
            step_losses = []
            for rank, (images, labels) in enumerate(batches):
                # the trainer's precision for this CPU
                with autocast(images.device, config.amp_dtype):
                    loss = criterion(model(images), labels)
                (loss / world_size).backward()  # the gradients add up to the ranks' mean
                step_losses.append(loss.item())
                if rank == 0:
                    rank_0_statistics = [buffer.clone() for buffer in model.buffers()]
            for buffer, kept in zip(model.buffers(), rank_0_statistics):
                buffer.copy_(kept)
            optimizer.step()
            losses.append(sum(step_losses) / world_size)
            iteration += 1
            if iteration % config.eval_every == 0 or iteration == config.iterations:
                rows.append(
                    {
                        "iteration": iteration,
                        "train_loss": sum(losses) / len(losses),
                        **evaluate(model, model, test_loader, config.amp_dtype, config.eval_flip),
                    }
                )
                losses = []
            if iteration == config.iterations:
                break
    return rows, model, optimizer


@pytest.mark.cifar10
def test_two_processes_compute_what_their_ranks_compute_and_follow_the_single_process_run(
    distributed_run, tmp_path
):
    ddp = read_metrics(distributed_run)
    assert [row["iteration"] for row in ddp] == [3, 6, 9, 12]

    reference, model, optimizer = reference_run(RUN)
    for ours, theirs in zip(ddp, reference, strict=True):
        assert (
            ours["iteration"] == theirs["iteration"]
            and ours["test_accuracy"] == theirs["test_accuracy"]
        )
        for key in ("train_loss", "test_loss"):
            assert ours[key] == pytest.approx(theirs[key], rel=REFERENCE_RTOL), (
                ours["iteration"],
                key,
            )
    saved = torch.load(distributed_run / "checkpoint.pt", weights_only=True)
    # the unwrapped model: no "module." prefix
    assert list(saved["model"]) == list(model.state_dict())
    for name, tensor in model.state_dict().items():
        assert torch.equal(saved["model"][name], tensor), name
    for index, state in optimizer.state_dict()["state"].items():
        assert torch.equal(
            saved["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"]
        ), index

    single = tmp_path / "single"
    assert main([*RUN, "--out", str(single)]) == 0
    rows = read_metrics(single)
    for ours, theirs in zip(ddp, rows, strict=True):
        assert abs(ours["train_loss"] - theirs["train_loss"]) < SINGLE_PROCESS_ATOL, ours[
            "iteration"
        ]
        assert abs(ours["test_loss"] - theirs["test_loss"]) < SINGLE_PROCESS_ATOL, ours["iteration"]
    assert ddp[-1]["train_loss"] < ddp[0]["train_loss"]

    final = json.loads((distributed_run / "final.json").read_text())
    assert final["distributed"] == {
        "world_size": 2,
        "per_rank_batch": 8,
        "backend": "gloo",
        "sync_bn": False,
    }
    assert (
        final["config"]["batch_size"] == 16
        and final["final_test_accuracy"] == ddp[-1]["test_accuracy"]
    )
    assert sorted(path.name for path in distributed_run.iterdir()) == [
        "checkpoint.pt",
        "final.json",
        "metrics.jsonl",
    ]


def test_every_rank_has_its_own_random_stream_and_rank_0_keeps_the_runs_seed():
    assert rank_seed(7, 0) == 7
    seeds = [rank_seed(7, rank) for rank in range(1, 8)] + [
        rank_seed(8, rank) for rank in range(1, 8)
    ]
    assert len(set(seeds)) == len(seeds) and 7 not in seeds and 8 not in seeds
    assert all(0 <= seed < 2**63 for seed in seeds)


@pytest.mark.cifar10
def test_the_checkpoint_holds_every_ranks_random_generators_and_they_differ(distributed_run):
    """Dropout draws from the global generator: the ranks must draw different masks, and a resumed
    run must give each rank back its own stream."""
    saved = torch.load(distributed_run / "checkpoint.pt", weights_only=True)
    first, second = saved["rng_by_rank"]
    assert torch.equal(saved["rng"]["torch"], first["torch"])
    assert not torch.equal(first["torch"], second["torch"])


def test_a_checkpoint_from_another_world_size_gives_the_other_ranks_new_streams():
    seed_everything(0)
    saved = rng_states()
    checkpoint = {"rng": saved, "rng_by_rank": [saved, saved], "iteration": 8}
    restore_rng_states(checkpoint, seed=0, world=Launch(rank=0, world_size=3))
    assert torch.equal(torch.get_rng_state(), saved["torch"])
    restore_rng_states(checkpoint, seed=0, world=Launch(rank=2, world_size=3))
    assert not torch.equal(torch.get_rng_state(), saved["torch"])
    # a checkpoint of an older version
    restore_rng_states({"rng": saved, "iteration": 8}, seed=0, world=Launch())
    assert torch.equal(torch.get_rng_state(), saved["torch"])


@pytest.mark.cifar10
def test_a_killed_distributed_run_resumes_bit_identically(distributed_run, tmp_path):
    out, script = tmp_path / "killed", tmp_path / "killed_rank.py"
    script.write_text(KILLED_AT_STEP)
    killed = torchrun(
        [str(script), *RUN, "--out", str(out)], env={"KILL_AT_STEP": "10", "KILL_RANK": "0"}
    )
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr, killed.stderr[-3000:]
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 8
    # row 9 is past the checkpoint
    assert [row["iteration"] for row in read_metrics(out)] == [
        3,
        6,
        9,
    ]

    resumed = torchrun(["-m", "simam.train", *RUN, "--out", str(out), "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # rank 0 alone prints
    assert "resuming at iteration 8" in resumed.stdout and resumed.stdout.count("resuming at") == 1

    assert rows_without_time(out) == rows_without_time(distributed_run)
    assert_same_weights_and_momentum(out, distributed_run)
