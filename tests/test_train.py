"""The trainer: a short real run and its files, exact resume after SIGKILL, atomic saving, the stop
on a non-finite loss, command-line errors, and the paper recipe's schedule.

The runs train ResNet-20 with SimAM on 48 real CIFAR-10 training images and evaluate on 100 test
images, one CPU thread, so that they take seconds; they are skipped when ``SIMAM_DATA`` does not
hold CIFAR-10. Only the run that is killed is a child process (importing torch takes seconds on a
busy machine); the others call ``main`` in this process, which is what ``python -m simam.train``
runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from run_checks import KILLED_AT_STEP, RUN, assert_same_weights_and_momentum, rows_without_time

import simam.device
import simam.train
from simam.attention import SimAM
from simam.config import (
    COMPILE_SIMAM_FROM,
    CONFIG_FIELDS,
    PAPER,
    QUICK,
    RECIPES,
    Config,
    ConfigError,
    build_model,
    build_parser,
    check_config,
    config_from_args,
    option_name,
)
from simam.course import GPU_COMPILE_SECONDS, T4_ACHIEVED_FLOPS, estimated_gpu_minutes
from simam.data import CifarLoader
from simam.device import (
    CUBLAS_DETERMINISTIC,
    SYNC_BN_COMPILE_BLOCKER,
    cuda_settings,
    deterministic_cublas,
    resolve,
    why_not_compiled,
)
from simam.models import training_flops_per_image
from simam.runs import atomic_write, evaluated_weights, load_model, read_metrics
from simam.train import (
    average_decay,
    evaluate,
    learning_rate,
    main,
    restore_scaler,
    update_average,
)

REPO = Path(__file__).resolve().parents[1]

# The quick recipe reports the flip-averaged accuracy beside the plain one.
ROW_KEYS = {
    "iteration",
    "epoch",
    "lr",
    "train_loss",
    "test_loss",
    "test_accuracy",
    "test_accuracy_flip",
    "elapsed_seconds",
}
FINAL_KEYS = {
    "config",
    "iterations",
    "epochs",
    "final_test_accuracy",
    "final_test_loss",
    "final_test_accuracy_flip",
    "best_test_accuracy_selected_on_test_set",
    "best_iteration_selected_on_test_set",
    "note",
    "wall_seconds",
    "train_seconds",
    "train_images_per_second",
    "steady_images_per_second",
    "parameters",
    "device",
    "versions",
}


pytestmark = pytest.mark.usefixtures("keep_thread_count")


def kill_at_step_10(args: list[str]) -> None:
    """Run the command line with ``args`` in a child that SIGKILLs itself at its 10th step."""
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_STEP, *args],
        cwd=REPO,
        env={**os.environ, "KILL_AT_STEP": "10"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("uninterrupted")
    torch.set_num_threads(3)
    assert main([*RUN, "--out", str(out)]) == 0  # RUN trains with --threads 1 ...
    assert torch.get_num_threads() == 3  # ... and gives the caller's setting back
    return out


# --------------------------------------------------------------------------------------------------
# A real run


@pytest.mark.cifar10
def test_short_real_run_writes_documented_files_and_the_loss_falls(finished_run):
    rows = read_metrics(finished_run)
    assert [row["iteration"] for row in rows] == [3, 6, 9, 12]
    assert all(set(row) == ROW_KEYS for row in rows)
    assert rows[-1]["epoch"] == 4.0 and rows[-1]["lr"] == pytest.approx(0.05 / 10)
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert all(0 <= row["test_accuracy"] <= 1 and math.isfinite(row["test_loss"]) for row in rows)

    final = json.loads((finished_run / "final.json").read_text())
    assert set(final) == FINAL_KEYS
    assert final["final_test_accuracy"] == rows[-1]["test_accuracy"]
    assert final["best_test_accuracy_selected_on_test_set"] == max(
        row["test_accuracy"] for row in rows
    )
    assert (
        final["config"]["recipe"] == "quick"
        and final["config"]["subset"] == 48
        and final["config"]["device"] == "cpu"
    )
    assert (
        final["parameters"] == 272_474
        and final["steady_images_per_second"] > 0 < final["train_images_per_second"]
    )
    assert set(final["versions"]) >= {"python", "torch", "torchvision", "numpy", "simam"}
    assert torch.load(finished_run / "checkpoint.pt", weights_only=True)["iteration"] == 12


@pytest.mark.cifar10
def test_steady_images_per_second_leaves_out_the_first_steps(tmp_path, monkeypatch):
    """The first step of a session stands in for compilation: a second longer than the others. The
    steady speed leaves out the first quarter of this 12-step run (3 steps); the overall one does
    not."""
    step, calls = simam.train.train_step, []

    def compiles_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(1.0)
        return step(*args, **kwargs)

    monkeypatch.setattr(simam.train, "train_step", compiles_first)
    assert main([*RUN, "--out", str(tmp_path / "run")]) == 0
    final = json.loads((tmp_path / "run" / "final.json").read_text())
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["steady_steps"] == 9 and saved["steady_seconds"] < saved["train_seconds"] - 1.0
    assert final["steady_images_per_second"] == round(9 * 16 / saved["steady_seconds"], 1)
    assert final["steady_images_per_second"] > final["train_images_per_second"]

    assert (
        main([*RUN, "--iterations", "1", "--warmup", "0", "--out", str(tmp_path / "one-step")]) == 0
    )
    assert (
        json.loads((tmp_path / "one-step" / "final.json").read_text())["steady_images_per_second"]
        is None
    )


@pytest.mark.cifar10
def test_sigkill_then_resume_is_bit_identical_to_an_uninterrupted_run(
    finished_run, tmp_path, capsys
):
    out = tmp_path / "killed"
    kill_at_step_10([*RUN, "--out", str(out)])
    # mid-epoch: 3 batches per epoch
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 8
    # row 9 is past the checkpoint
    assert [row["iteration"] for row in read_metrics(out)] == [
        3,
        6,
        9,
    ]
    # as a kill during a save leaves it
    (out / ".checkpoint.pt.999.tmp").write_bytes(b"half a checkpoint")

    capsys.readouterr()
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert "resuming at iteration 8" in capsys.readouterr().out
    assert not list(out.glob(".*.tmp"))

    # no duplicate rows, same values
    assert rows_without_time(out) == rows_without_time(finished_run)
    assert_same_weights_and_momentum(out, finished_run)
    ours = torch.load(out / "checkpoint.pt", weights_only=True)
    theirs = torch.load(finished_run / "checkpoint.pt", weights_only=True)
    assert ours["loader"]["epoch"] == theirs["loader"]["epoch"] and torch.equal(
        ours["loader"]["generator"], theirs["loader"]["generator"]
    )


# The short-run options together: 100 training images held out, a moving average of the weights,
# alternate flips and 2-pixel reflected translations.
TRICKS = [
    "--holdout",
    "100",
    "--ema",
    "0.9",
    "--flips",
    "alternate",
    "--pad-mode",
    "reflect",
    "--padding",
    "2",
]


@pytest.mark.cifar10
def test_a_run_with_the_short_run_options_evaluates_the_held_out_images_and_resumes_exactly(
    tmp_path, monkeypatch
):
    read = []
    load_cifar = simam.train.load_cifar

    def recording(root, name, train, download=False):
        read.append(train)
        return load_cifar(root, name, train, download)

    monkeypatch.setattr(simam.train, "load_cifar", recording)
    whole = tmp_path / "whole"
    assert main([*RUN, *TRICKS, "--out", str(whole)]) == 0
    assert read == [True]  # the test split is never read
    rows = read_metrics(whole)
    assert {"holdout_accuracy", "holdout_accuracy_flip"} <= set(rows[0])
    assert not any(key.startswith("test_") for key in rows[0])
    final = json.loads((whole / "final.json").read_text())
    assert final["final_holdout_accuracy"] == rows[-1]["holdout_accuracy"]
    assert "the test split was not read" in final["note"]
    saved = torch.load(whole / "checkpoint.pt", weights_only=True)
    assert evaluated_weights(saved) is saved["average"]
    assert not torch.equal(
        saved["average"]["classifier.weight"], saved["model"]["classifier.weight"]
    )

    monkeypatch.undo()
    out = tmp_path / "killed"
    kill_at_step_10([*RUN, *TRICKS, "--out", str(out)])
    assert main([*RUN, *TRICKS, "--out", str(out), "--resume"]) == 0
    assert rows_without_time(out) == rows_without_time(whole)
    assert_same_weights_and_momentum(out, whole)
    ours = torch.load(out / "checkpoint.pt", weights_only=True)["average"]
    assert all(torch.equal(ours[name], tensor) for name, tensor in saved["average"].items())


def test_the_average_of_the_weights_moves_by_one_minus_its_decay_and_starts_fast():
    model, average = torch.nn.BatchNorm1d(3), torch.nn.BatchNorm1d(3)
    with torch.no_grad():
        model.weight.fill_(2.0)
        model.num_batches_tracked.fill_(5)
    update_average(average, model, decay=0.75)
    assert torch.allclose(average.weight, torch.full((3,), 1.25))  # 0.75 * 1 + 0.25 * 2
    assert average.num_batches_tracked.item() == 5
    assert not average.weight.requires_grad or average.weight.grad is None
    config = dataclasses.replace(QUICK, ema=0.999)
    assert average_decay(config, 1) == pytest.approx(2 / 11)
    assert average_decay(config, 100_000) == 0.999


@pytest.mark.cifar10
def test_a_run_saved_with_a_float16_scaler_resumes_in_another_precision(
    finished_run, tmp_path, capsys
):
    """A checkpoint of a float16 run on a GPU holds the gradient scaler's state; resumed on the CPU
    (float32 or bfloat16, no scaler) the run goes on and the state is not needed."""
    out = tmp_path / "resumed"
    shutil.copytree(finished_run, out)
    (out / "final.json").unlink()
    checkpoint = torch.load(out / "checkpoint.pt", weights_only=True)
    assert checkpoint["scaler"] == {}  # this run had no scaler: give it the one a float16 run saves
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    torch.save({**checkpoint, "iteration": 8, "scaler": scaler.state_dict()}, out / "checkpoint.pt")

    capsys.readouterr()
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert "resuming at iteration 8" in capsys.readouterr().out
    assert torch.load(out / "checkpoint.pt", weights_only=True)["iteration"] == 12
    assert math.isfinite(read_metrics(out)[-1]["train_loss"])


def test_restore_scaler_across_precisions(capsys):
    """Saved without float16 (CPU, bfloat16, float32): no scaler state, and a float16 run resumed
    from it (on an older GPU) starts a fresh scaler, as a new run does; saved in float16 and resumed
    without it, the disabled scaler has no use for the state."""
    fresh = torch.amp.GradScaler("cpu")
    restore_scaler(fresh, torch.amp.GradScaler("cpu", enabled=False).state_dict())
    assert fresh.state_dict()["scale"] == torch.amp.GradScaler("cpu").state_dict()["scale"]
    assert "starting a fresh one" in capsys.readouterr().err
    used = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    restore_scaler(fresh, used.state_dict())
    assert fresh.state_dict()["scale"] == 2.0**10
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    restore_scaler(disabled, used.state_dict())
    assert disabled.state_dict() == {}


@pytest.mark.parametrize("deterministic", [False, True])
def test_cuda_settings_hold_for_the_run_and_give_the_process_its_own_back(deterministic):
    before = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
    )
    with cuda_settings(deterministic):
        assert torch.backends.cudnn.benchmark is (not deterministic)
        assert torch.backends.cudnn.deterministic is deterministic
        assert torch.are_deterministic_algorithms_enabled() is deterministic
    after = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
    )
    assert after == before


@pytest.mark.cifar10
def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    out = tmp_path / "diverged"
    code = main(
        [*RUN, "--lr", "1e30", "--iterations", "8", "--checkpoint-every", "1", "--out", str(out)]
    )
    assert code == 1
    error = capsys.readouterr().err.strip()
    assert (
        len(error.splitlines()) == 1
        and "training loss became" in error
        and "Traceback" not in error
    )
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert f"holds iteration {saved['iteration']}" in error and saved["iteration"] < 8
    assert all(torch.isfinite(t).all() for t in saved["model"].values() if t.is_floating_point())
    assert not (out / "final.json").exists()


@pytest.mark.cifar10
def test_training_curves_plot_from_run_folders(finished_run):
    from simam.plots import plot_training_curves

    figure = plot_training_curves([finished_run, str(finished_run)])
    accuracy_axis = figure.axes[0]
    assert len(accuracy_axis.lines) == 2 and list(accuracy_axis.lines[0].get_xdata()) == [
        3,
        6,
        9,
        12,
    ]
    assert accuracy_axis.get_legend_handles_labels()[1][0] == "resnet20 + simam (quick, seed 0)"


# --------------------------------------------------------------------------------------------------
# Files


@pytest.mark.cifar10
def test_load_model_rebuilds_the_trained_network_of_a_run(finished_run, tmp_path):
    saved = torch.load(finished_run / "checkpoint.pt", weights_only=True)["model"]
    model = load_model(finished_run)
    assert not model.training
    assert type(model.stages[0][0].attention).__name__ == "SimAM"
    state = model.state_dict()
    assert state.keys() == saved.keys()
    assert all(torch.equal(state[key], saved[key]) for key in saved)
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        load_model(tmp_path)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_write(path, lambda f: f.write(b"complete"))

    def dies_halfway(file):
        file.write(b"half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, dies_halfway)
    assert path.read_bytes() == b"complete"
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]


def test_read_metrics_drops_a_row_cut_short_and_rows_past_a_checkpoint(tmp_path):
    rows = [{"iteration": i, "test_accuracy": 0.5} for i in (4, 8, 12)]
    (tmp_path / "metrics.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows) + '{"iteration": 16, "te'
    )
    assert read_metrics(tmp_path) == rows
    assert read_metrics(tmp_path, up_to=10) == rows[:2]
    assert read_metrics(tmp_path / "missing") == []


# --------------------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "resnet21"], "unknown model 'resnet21'"),
        (["--attention", "transformer"], "unknown attention 'transformer'"),
        (["--iterations", "-5"], "iterations must be at least 1, got -5"),
        (["--iterations", "ten"], "argument --iterations: invalid int value: 'ten'"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--recipe", "fastest"], "argument --recipe: invalid choice"),
        (["--lr", "0"], "lr must be positive"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_bad_options_give_one_line_and_exit_code_2(args, message, tmp_path, capsys):
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("simam-train: error: ") and message in error
    assert not (tmp_path / "run").exists()


def test_missing_data_without_download_gives_one_line_and_exit_code_2(tmp_path, capsys):
    assert (
        main(
            [
                "--data-root",
                str(tmp_path / "empty"),
                "--device",
                "cpu",
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "CIFAR-10 not found" in error and "--download" in error


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    assert main(["--device", "cuda", "--out", str(tmp_path / "run")]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore:'simam.train' found in sys.modules")
def test_python_m_simam_train_exits_2_without_a_traceback(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(
        sys, "argv", ["simam.train", "--model", "resnet21", "--out", str(tmp_path / "run")]
    )
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("simam.train", run_name="__main__")
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert error.startswith("simam-train: error: unknown model") and error.count("\n") == 1


@pytest.mark.cifar10
def test_an_existing_run_needs_resume_and_resume_needs_the_same_settings(finished_run, capsys):
    assert main([*RUN, "--out", str(finished_run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main([*RUN, "--lr", "0.1", "--resume", "--out", str(finished_run)]) == 2
    assert "lr=0.1 (the run has 0.05)" in capsys.readouterr().err


@pytest.mark.cifar10
def test_resuming_a_finished_run_whose_metrics_were_lost_is_a_clear_error(
    finished_run, tmp_path, capsys
):
    copy = tmp_path / "run"
    copy.mkdir()
    (copy / "checkpoint.pt").write_bytes((finished_run / "checkpoint.pt").read_bytes())
    assert main([*RUN, "--resume", "--out", str(copy)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "holds no evaluations" in error


def test_help_lists_every_option_and_exits_0(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for option in [
        "--model",
        "--attention",
        "--dataset",
        "--recipe",
        "--data-root",
        "--out",
        "--seed",
        "--device",
        "--resume",
        "--iterations",
        "--eval-every",
        "--checkpoint-every",
        "--subset",
        "--lambda",
        "--download",
        "--amp",
        "--amp-dtype",
        "--deterministic",
    ]:
        assert option in text


def test_options_read_as_their_recipe_with_the_fields_they_give_over_it():
    """config_from_args, which the trainer, a grid's runs and the benchmarks all read options
    with."""
    config, given = config_from_args(
        [
            "--recipe",
            "quick",
            "--lr",
            "0.3",
            "--no-nesterov",
            "--lambda",
            "0.01",
            "--milestones",
            "5,9",
            "--out",
            "there",
            "--resume",
        ]
    )
    assert config == dataclasses.replace(
        QUICK, lr=0.3, nesterov=False, lambda_=0.01, milestones=(5, 9)
    )
    assert given == {
        "recipe": "quick",
        "lr": 0.3,
        "nesterov": False,
        "lambda_": 0.01,
        "milestones": (5, 9),
        "out": "there",
        "resume": True,
    }
    assert config_from_args([]) == (PAPER, {})
    with pytest.raises(ConfigError, match="batch_size 128 does not divide by the 3 processes"):
        config_from_args([], world_size=3)
    with pytest.raises(ConfigError, match="^warmup must be in 0..iterations-1, got 640$"):
        config_from_args(["--recipe", "quick", "--iterations", "600"])


def test_each_option_is_named_after_what_it_sets_and_helped_by_its_field():
    actions = [action for action in build_parser()._actions if action.dest != "help"]
    assert {action.dest for action in actions} == CONFIG_FIELDS | {"out", "resume"}
    for action in actions:
        assert option_name(action.dest) in action.option_strings
    by_field = {action.dest: action for action in actions}
    for field in dataclasses.fields(Config):
        assert by_field[field.name].help.startswith(field.metadata["help"])
    assert by_field["recipe"].choices == tuple(RECIPES)  # every recipe, and only those
    assert isinstance(by_field["nesterov"], argparse.BooleanOptionalAction)
    assert by_field["milestones"].type("5,9") == (5, 9)
    assert by_field["iterations"].type is int and by_field["lr"].type is float


# --------------------------------------------------------------------------------------------------
# Recipes


def test_paper_recipe_is_the_papers_and_its_schedule_steps_at_32k_and_48k():
    assert (PAPER.iterations, PAPER.batch_size, PAPER.momentum, PAPER.weight_decay) == (
        64_000,
        128,
        0.9,
        5e-4,
    )
    assert (
        PAPER.augment,
        PAPER.padding,
        PAPER.nesterov,
        PAPER.label_smoothing,
        PAPER.norm_bias_decay,
    ) == (True, 4, False, 0.0, True)
    for iteration, expected in [
        (0, 0.1),
        (31_999, 0.1),
        (32_000, 0.01),
        (47_999, 0.01),
        (48_000, 0.001),
        (63_999, 0.001),
    ]:
        assert learning_rate(PAPER, iteration) == pytest.approx(expected, rel=1e-12), iteration


def test_quick_recipe_warms_up_then_decays_to_zero():
    rates = [learning_rate(QUICK, i) for i in range(QUICK.iterations)]
    peak = rates.index(max(rates))
    assert peak == QUICK.warmup - 1 and rates[peak] == QUICK.lr
    assert all(a < b for a, b in zip(rates[:peak], rates[1 : peak + 1]))
    assert all(a > b for a, b in zip(rates[peak:], rates[peak + 1 :]))
    assert 0 < rates[-1] == QUICK.lr / (QUICK.iterations - QUICK.warmup + 1)


def test_every_recipe_is_valid_and_bad_values_are_named():
    for config in RECIPES.values():
        check_config(config)
    with pytest.raises(ConfigError, match="warmup"):
        check_config(Config(schedule="onecycle", iterations=10, warmup=10))
    with pytest.raises(ConfigError, match="milestones"):
        check_config(Config(milestones=(48_000, 32_000)))


# --------------------------------------------------------------------------------------------------
# Choices made for the device


@pytest.mark.parametrize("native", [True, False])
def test_cpu_defaults_follow_native_bfloat16(native, monkeypatch):
    monkeypatch.setattr(simam.device, "native_bfloat16", lambda device: native)
    config = resolve(Config(device="cpu"), torch.device("cpu"))
    assert (config.amp, config.amp_dtype) == ((True, "bfloat16") if native else (False, None))
    assert config.channels_last is False and config.compile is False
    forced = resolve(Config(device="cpu", amp=not native), torch.device("cpu"))
    assert forced.amp is (not native) and forced.amp_dtype == (None if native else "bfloat16")


def test_simam_is_compiled_on_the_cpu_for_runs_long_enough_to_pay_for_it(monkeypatch):
    monkeypatch.setattr(simam.device, "cpp_compiler_found", lambda: True)
    cpu = torch.device("cpu")
    assert resolve(Config(iterations=COMPILE_SIMAM_FROM), cpu).compile_simam is True
    assert resolve(Config(iterations=COMPILE_SIMAM_FROM - 1), cpu).compile_simam is False
    assert resolve(Config(attention="se"), cpu).compile_simam is False
    assert resolve(Config(attention="simam-exact"), cpu).compile_simam is False
    # the whole model is compiled already
    assert resolve(Config(compile=True), cpu).compile_simam is False
    assert resolve(Config(iterations=10, compile_simam=True), cpu).compile_simam is True
    monkeypatch.setattr(simam.device, "cpp_compiler_found", lambda: False)
    assert resolve(Config(), cpu).compile_simam is False
    model = build_model(dataclasses.replace(Config(), compile_simam=True))
    assert all(module.compiled for module in model.modules() if isinstance(module, SimAM))


@pytest.mark.parametrize(
    ("capability", "triton_found", "reason"),
    [
        (
            (6, 0),
            True,
            r"Tesla P100-PCIE-16GB has compute capability 6\.0; Triton, .* needs 7\.0 or higher",
        ),
        ((3, 7), True, r"compute capability 3\.7"),
        ((7, 0), True, None),  # V100
        ((7, 5), True, None),  # T4
        ((9, 0), True, None),  # H100
        ((8, 0), False, r"Triton, .* is not installed \(GPU Tesla P100-PCIE-16GB\)"),
    ],
)
def test_the_whole_model_is_compiled_only_where_triton_runs(capability, triton_found, reason):
    found = simam.device.triton_blocker("Tesla P100-PCIE-16GB", capability, triton_found)
    assert found is None if reason is None else re.search(reason, found)


def test_a_gpu_triton_cannot_compile_for_trains_eagerly_and_says_why(monkeypatch):
    """resolve() on a CUDA device as on a P100, without a GPU: the probes are replaced."""
    cuda = torch.device("cuda", 0)
    why = "Tesla P100-PCIE-16GB has compute capability 6.0; Triton needs 7.0 or higher"
    monkeypatch.setattr(simam.device, "native_bfloat16", lambda device: False)
    monkeypatch.setattr(
        simam.device, "compile_blocker", lambda device: why if device.type == "cuda" else None
    )
    config = resolve(Config(), cuda)
    assert (
        config.compile is False and config.amp_dtype == "float16" and config.channels_last is True
    )
    assert why_not_compiled(cuda, config.compile) == f" ({why})"
    with pytest.raises(ConfigError, match="--compile: Tesla P100.*6.0"):
        resolve(Config(compile=True), cuda)
    assert resolve(Config(compile=False), cuda).compile is False
    monkeypatch.setattr(simam.device, "compile_blocker", lambda device: None)
    assert resolve(Config(), cuda).compile is True and why_not_compiled(cuda, True) == ""


def test_sync_bn_under_ddp_trains_uncompiled_and_says_why(monkeypatch):
    """resolve() on a CUDA device where Triton runs, without a GPU: the probes are replaced."""
    cuda = torch.device("cuda", 0)
    monkeypatch.setattr(simam.device, "native_bfloat16", lambda device: True)
    monkeypatch.setattr(simam.device, "compile_blocker", lambda device: None)
    for asked in (None, True):
        assert resolve(Config(sync_bn=True, compile=asked), cuda, world_size=2).compile is False
        # no DDP, no SyncBN
        assert resolve(Config(sync_bn=True, compile=asked), cuda, world_size=1).compile is True
        assert resolve(Config(sync_bn=False, compile=asked), cuda, world_size=2).compile is True
    assert why_not_compiled(cuda, False, sync_bn_ddp=True) == f" ({SYNC_BN_COMPILE_BLOCKER})"
    assert why_not_compiled(cuda, False) == ""  # turned off by hand: nothing to explain


@pytest.mark.parametrize("initialised", [False, True])
def test_deterministic_mode_sets_the_cublas_workspace_and_warns_when_too_late(
    initialised, monkeypatch
):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: initialised)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        deterministic_cublas()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_DETERMINISTIC
    messages = [str(warning.message) for warning in caught if warning.category is RuntimeWarning]
    assert len(messages) == initialised
    assert all(
        "CUDA was initialised" in m and "export CUBLAS_WORKSPACE_CONFIG=:4096:8" in m
        for m in messages
    )

    # the user's own setting, in time or not: kept, no warning
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deterministic_cublas()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_the_native_bfloat16_probe_answers_for_this_cpu():
    assert isinstance(simam.device.native_bfloat16(torch.device("cpu")), bool)


def test_flip_averaged_accuracy_is_that_of_the_summed_logits_of_each_image_and_its_mirror():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (40,))
    loader = CifarLoader(images, labels, batch_size=16)
    scores = evaluate(model, model, loader, None, flip=True)
    batch = torch.cat([b for b, _ in loader])
    with torch.no_grad():
        plain, summed = model(batch), model(batch) + model(batch.flip(3))
    assert scores["test_accuracy"] == (plain.argmax(1) == labels).sum().item() / len(labels)
    assert scores["test_accuracy_flip"] == (summed.argmax(1) == labels).sum().item() / len(labels)
    # this model is not mirror-symmetric
    assert scores["test_accuracy_flip"] != scores["test_accuracy"]
    assert set(evaluate(model, model, loader, None)) == {"test_loss", "test_accuracy"}


def test_the_gpu_estimate_counts_training_images_evaluations_and_a_range_of_compile_time():
    config = dataclasses.replace(
        QUICK, attention="simam", iterations=100, eval_every=50, eval_flip=True
    )
    flops = training_flops_per_image(build_model(dataclasses.replace(config, compile_simam=False)))
    # two evaluations, each with its flipped copies
    images = 100 * config.batch_size + 10_000 * 4 / 3
    computing = images * flops / T4_ACHIEVED_FLOPS / 60
    low, high = estimated_gpu_minutes(config)  # compile None: compiled on a GPU
    assert (low, high) == pytest.approx(
        (computing + GPU_COMPILE_SECONDS[0] / 60, computing + GPU_COMPILE_SECONDS[1] / 60)
    )
    eager = dataclasses.replace(config, compile=False)
    assert estimated_gpu_minutes(eager) == pytest.approx((computing, computing))
    assert estimated_gpu_minutes(eager, runs=3, achieved_flops=1e12) == pytest.approx(
        (6 * computing, 6 * computing)
    )
    assert estimated_gpu_minutes(config, runs=2, compile_seconds=(60, 120)) == pytest.approx(
        (2 * computing + 2, 2 * computing + 4)
    )
