"""The experiment runner: planning, the append-only results file, a real grid that resumes an
interrupted run, the cluster commands, the summary beside the paper's Table 2, the results page and
the README's headline, and command-line errors.

The real runs train ResNet-20 for 4 iterations of 16 images on 64 CIFAR-10 training images and
evaluate on 100 test images, one CPU thread each; they are skipped when ``SIMAM_DATA`` does not
hold CIFAR-10. One grid of 4 runs (2 at a time) serves the tests that need real runs; two grid
processes of 2 runs each race on one folder.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import shlex
import statistics
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from run_checks import fake_final

import simam.train
from simam.config import QUICK, changed_settings
from simam.course.readme import (
    HEADLINE_END,
    HEADLINE_START,
    SECTION_END,
    SECTION_START,
    headline,
    link,
    results_section,
    update_page,
    update_readme,
    write_figures,
)
from simam.course.verdicts import (
    comparison_table,
    lambda_omnibus,
    lambda_points,
    verdict_text,
)
from simam.experiments import (
    GridError,
    RunSpec,
    append_result,
    judge,
    launch_command,
    pending,
    plan,
    plan_lambda_ablation,
    plot_lambda_ablation,
    plot_seeds,
    plot_summary,
    read_results,
    run_grid,
    summarise,
    summary_csv,
    summary_markdown,
    worker_slots,
)
from simam.experiments.__main__ import main
from simam.paper_results import FIGURE4_LAMBDAS, PAPER_TABLE2
from simam.runs import read_metrics

REPO = Path(__file__).resolve().parents[1]

TINY = [
    "--iterations",
    "4",
    "--warmup",
    "1",
    "--batch-size",
    "16",
    "--subset",
    "64",
    "--test-subset",
    "100",
    "--eval-every",
    "2",
    "--checkpoint-every",
    "2",
    "--threads",
    "1",
    "--device",
    "cpu",
]
GRID = ["--attentions", "none,simam", "--recipe", "quick", "--workers", "2"]  # x 2 seeds: 4 runs


class Interrupted(Exception):
    """Stands for a kill in the middle of a run."""


pytestmark = pytest.mark.usefixtures("keep_thread_count")


@pytest.fixture(scope="module")
def grid(tmp_path_factory) -> tuple[Path, str]:
    """A 2 x 2 grid run once, after one run was interrupted after its first checkpoint and another
    was killed before its first one. Returns the results folder and the grid's printed output."""
    out = tmp_path_factory.mktemp("grid")
    interrupted = RunSpec("cifar10", "resnet20", "simam", "quick", 0)
    calls, real_step = [0], simam.train.train_step

    def step_then_stop(*args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            raise Interrupted
        return real_step(*args, **kwargs)

    simam.train.train_step = step_then_stop
    try:
        with pytest.raises(Interrupted):
            simam.train.train(interrupted.config(TINY), out / "runs" / interrupted.run_id)
    finally:
        simam.train.train_step = real_step
    assert (
        torch.load(out / "runs" / interrupted.run_id / "checkpoint.pt", weights_only=True)[
            "iteration"
        ]
        == 2
    )
    killed_early = out / "runs" / "cifar10-resnet20-none-quick-seed1"
    killed_early.mkdir(parents=True)
    (killed_early / "metrics.jsonl").write_text('{"iteration": 999, "test_accuracy": 1.0}\n')

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["run", *GRID, "--seeds", "2", "--out", str(out), "--", *TINY]) == 0
    return out, printed.getvalue()


# --------------------------------------------------------------------------------------------------
# A real grid


@pytest.mark.cifar10
def test_a_grid_writes_one_line_per_run_with_its_configuration_and_metrics(grid):
    out, printed = grid
    lines = read_results(out)
    assert sorted(line["run_id"] for line in lines) == [
        f"cifar10-resnet20-{a}-quick-seed{s}" for a in ("none", "simam") for s in (0, 1)
    ]
    assert "0 of 4 runs finished, 4 to run, 2 at a time (CPU, 1 threads each)" in printed
    for line in lines:
        final = json.loads((out / "runs" / line["run_id"] / "final.json").read_text())
        assert (
            line["final_test_accuracy"] == final["final_test_accuracy"]
            and line["config"] == final["config"]
        )
        assert (
            line["config"]["iterations"] == 4
            and line["config"]["seed"] == line["seed"]
            and line["seeds_asked"] == 2
        )
        assert line["device"].startswith("CPU") and set(line["versions"]) >= {
            "python",
            "torch",
            "simam",
        }
        assert line["wall_seconds"] > 0 and line["extra_args"] == TINY
        # the command's seconds include its start-up; a resumed run's command made only its end
        if line["run_id"] == "cifar10-resnet20-simam-quick-seed0":
            assert line["command_seconds"] is None
        else:
            assert line["command_seconds"] > line["wall_seconds"]
        assert line["lambda"] == (1e-4 if line["attention"] == "simam" else None)


@pytest.mark.cifar10
def test_an_interrupted_run_resumes_from_its_checkpoint_and_one_without_a_checkpoint_restarts(grid):
    out, _ = grid
    resumed = out / "runs" / "cifar10-resnet20-simam-quick-seed0"
    log = (resumed / "train.log").read_text()
    assert "resuming at iteration 2 of 4" in log and "starting at iteration 0" not in log
    assert [row["iteration"] for row in read_metrics(resumed)] == [2, 4]
    restarted = out / "runs" / "cifar10-resnet20-none-quick-seed1"
    assert "starting at iteration 0 of 4" in (restarted / "train.log").read_text()
    # the leftover row 999 is gone
    assert [row["iteration"] for row in read_metrics(restarted)] == [
        2,
        4,
    ]


@pytest.mark.cifar10
def test_running_the_grid_again_runs_nothing(grid, capsys):
    out, _ = grid
    before = (out / "results.jsonl").read_bytes()
    assert main(["run", *GRID, "--seeds", "2", "--out", str(out), "--", *TINY]) == 0
    assert "4 of 4 runs finished, 0 to run" in capsys.readouterr().out
    assert (out / "results.jsonl").read_bytes() == before


@pytest.mark.cifar10
def test_commands_print_one_per_pending_run_and_each_appends_its_line(grid, capsys):
    out, _ = grid
    assert main(["commands", *GRID[:-2], "--seeds", "3", "--out", str(out), "--", *TINY]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 2 and all(
        "run-one" in command and "--seed 2" in command for command in commands
    )
    args = shlex.split(commands[1])
    assert args[:4] == [sys.executable, "-m", "simam.experiments", "run-one"]
    assert main(args[3:]) == 0  # what the shell would run, in this process
    assert "cifar10-resnet20-simam-quick-seed2: finished" in capsys.readouterr().out
    lines = read_results(out)
    assert (
        len(lines) == 5
        and lines[-1]["run_id"] == "cifar10-resnet20-simam-quick-seed2"
        and lines[-1]["seeds_asked"] == 3
    )
    assert main(["commands", *GRID[:-2], "--seeds", "3", "--out", str(out), "--", *TINY]) == 0
    assert capsys.readouterr().out.splitlines() == commands[:1]


@pytest.mark.cifar10
def test_a_finished_run_with_other_settings_is_an_error(grid, capsys):
    out, _ = grid
    assert main(["run", *GRID, "--seeds", "2", "--out", str(out), "--", *TINY, "--lr", "0.3"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "with other settings: lr=0.3 (it has 0.2)" in error


@pytest.mark.cifar10
def test_summary_command_writes_markdown_csv_and_plot_from_the_results(grid, tmp_path, capsys):
    out, _ = grid
    assert main(["summary", str(out), "--to", str(tmp_path)]) == 0
    lines = [line for line in read_results(out) if line["attention"] == "none"]
    ours = [100 * line["final_test_accuracy"] for line in lines]
    row = next(
        r for r in csv.DictReader((tmp_path / "summary.csv").open()) if r["attention"] == "none"
    )
    assert int(row["n"]) == len(ours) and float(row["mean"]) == pytest.approx(
        statistics.mean(ours), abs=1e-4
    )
    assert (
        float(row["std"]) == pytest.approx(statistics.stdev(ours), abs=1e-4)
        and float(row["paper_mean"]) == 92.33
    )
    assert (tmp_path / "summary.png").stat().st_size > 0 and "| cifar10 | resnet20 | none |" in (
        tmp_path / "summary.md"
    ).read_text()


@pytest.mark.cifar10
def test_two_grid_processes_on_one_folder_train_each_run_once(tmp_path):
    """Two ``run`` commands on the same --out, as when a cluster command is launched twice: each run
    is trained by one of them while the other skips it, and its folder is never cleared under it."""
    command = [
        sys.executable,
        "-m",
        "simam.experiments",
        "run",
        "--attentions",
        "none,simam",
        "--recipe",
        "quick",
        "--seeds",
        "1",
        "--workers",
        "1",
        "--out",
        str(tmp_path),
        "--",
        *TINY,
    ]
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    printed = "".join(process.communicate(timeout=300)[0] for process in processes)
    assert [process.returncode for process in processes] == [0, 0], printed
    run_ids = ["cifar10-resnet20-none-quick-seed0", "cifar10-resnet20-simam-quick-seed0"]
    assert sorted(line["run_id"] for line in read_results(tmp_path)) == run_ids
    for run_id in run_ids:
        assert printed.count(f"{run_id}: finished") == 1, printed
        log = (tmp_path / "runs" / run_id / "train.log").read_text()
        assert log.count("$ ") == 1 and log.count("starting at iteration 0 of 4") == 1
        assert [row["iteration"] for row in read_metrics(tmp_path / "runs" / run_id)] == [2, 4]
    # both started together: the lock met at least once
    assert "another process is training it" in printed


# --------------------------------------------------------------------------------------------------
# Running, without training


def test_each_worker_owns_its_gpus_and_cpu_workers_share_the_cores(tmp_path, monkeypatch):
    # records what the run was given
    def launch(spec, run_dir, extra_args, gpus_per_run=1, resume=False):
        final = fake_final(dataclasses.asdict(spec.config(extra_args)), 0.5)
        script = (
            f"import json, os; final = json.loads({json.dumps(final)!r}); "
            f"final['device'] = os.environ.get('CUDA_VISIBLE_DEVICES', '') + ' ' + "
            f"{' '.join(extra_args)!r}; "
            f"open({str(run_dir / 'final.json')!r}, 'w').write(json.dumps(final))"
        )
        return [sys.executable, "-c", script]

    monkeypatch.setattr("simam.experiments.grid.launch_command", launch)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    specs = plan(["resnet20"], ["none", "se", "simam"], ["cifar10"], 2)
    run_grid(specs, tmp_path / "gpu", gpus=["3", "5", "6", "7"], gpus_per_run=2)
    assert {line["device"] for line in read_results(tmp_path / "gpu")} <= {"3,5 ", "6,7 "}
    assert {line["gpus_per_run"] for line in read_results(tmp_path / "gpu")} == {2}
    run_grid(specs, tmp_path / "cpu", workers=4, gpus=[])
    assert {line["device"] for line in read_results(tmp_path / "cpu")} == {" --threads 2"}


def test_a_failed_run_is_reported_and_the_others_still_finish(tmp_path, monkeypatch, capsys):
    def launch(spec, run_dir, extra_args, gpus_per_run=1, resume=False):
        if spec.seed == 0:
            return [
                sys.executable,
                "-c",
                "print('the training loss became nan'); raise SystemExit(1)",
            ]
        final = json.dumps(fake_final(dataclasses.asdict(spec.config(extra_args)), 0.5))
        return [
            sys.executable,
            "-c",
            f"open({str(run_dir / 'final.json')!r}, 'w').write({final!r})",
        ]

    monkeypatch.setattr("simam.experiments.grid.launch_command", launch)
    assert (
        main(
            [
                "run",
                "--attentions",
                "none",
                "--seeds",
                "2",
                "--out",
                str(tmp_path),
                "--",
                "--device",
                "cpu",
            ]
        )
        == 1
    )
    assert [line["run_id"] for line in read_results(tmp_path)] == [
        "cifar10-resnet20-none-paper-seed1"
    ]
    error = capsys.readouterr().err
    assert (
        "1 of 2 runs failed" in error
        and "cifar10-resnet20-none-paper-seed0: exit code 1: the training loss became nan" in error
    )


def test_an_exception_in_one_run_is_reported_as_failed_and_the_grid_goes_on(
    tmp_path, monkeypatch, capsys
):
    """Not only a run whose trainer fails: an error raised while starting a run (a full disk, a
    folder that cannot be made) is that run's failure, and the other runs still finish."""

    def launch(spec, run_dir, extra_args, gpus_per_run=1, resume=False):
        if spec.seed == 1:
            raise OSError("No space left on device")
        final = json.dumps(fake_final(dataclasses.asdict(spec.config(extra_args)), 0.5))
        return [
            sys.executable,
            "-c",
            f"open({str(run_dir / 'final.json')!r}, 'w').write({final!r})",
        ]

    monkeypatch.setattr("simam.experiments.grid.launch_command", launch)
    assert (
        main(
            [
                "run",
                "--attentions",
                "none",
                "--seeds",
                "3",
                "--out",
                str(tmp_path),
                "--",
                "--device",
                "cpu",
            ]
        )
        == 1
    )
    assert [line["run_id"] for line in read_results(tmp_path)] == [
        "cifar10-resnet20-none-paper-seed0",
        "cifar10-resnet20-none-paper-seed2",
    ]
    error = capsys.readouterr().err
    assert "1 of 3 runs failed" in error and "seed1: OSError: No space left on device" in error


def test_several_gpus_per_run_are_launched_by_torchrun_on_their_own_gpus(tmp_path):
    spec = RunSpec("cifar10", "resnet56", "se", "paper", 3)
    command = launch_command(spec, tmp_path, ["--iterations", "9"], gpus_per_run=2, resume=True)
    assert command[:6] == [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
    ]
    assert command[6] == "simam.train" and command[-1] == "--resume" and "--iterations" in command
    assert launch_command(spec, tmp_path, [])[:3] == [sys.executable, "-m", "simam.train"]
    assert worker_slots(["0", "1", "2", "3"], 2, None) == ["0,1", "2,3"]
    assert worker_slots(["0", "1", "2"], 1, 5) == ["0", "1", "2", "0", "1"]
    assert worker_slots([], 1, 3) == [None, None, None]
    with pytest.raises(GridError, match="more GPUs than the 3 visible"):
        worker_slots(["0", "1", "2"], 4, None)


def test_concurrent_appends_stay_whole_lines(tmp_path):
    (tmp_path / "results.jsonl").write_text('{"run_id": "cut"')  # a line cut short by a crash
    threads = [
        threading.Thread(
            target=append_result, args=(tmp_path, {"run_id": f"r{i}", "pad": "x" * 5000})
        )
        for i in range(20)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with pytest.warns(UserWarning, match="line 1: not JSON"):
        lines = read_results(tmp_path)
    assert sorted(line["run_id"] for line in lines) == sorted(f"r{i}" for i in range(20))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX flock")
def test_a_reader_waits_for_a_line_being_written(tmp_path):
    """A finished run whose line is half written when the results are read must not look pending:
    the reader waits for the writer's lock."""
    import fcntl

    spec = RunSpec("cifar10", "resnet20", "none", "quick", 0)
    text = json.dumps({"run_id": spec.run_id, "config": dataclasses.asdict(spec.config())}) + "\n"
    found = []
    with open(tmp_path / "results.jsonl", "a") as writer:
        fcntl.flock(writer, fcntl.LOCK_EX)
        writer.write(text[:20])
        writer.flush()
        reader = threading.Thread(target=lambda: found.extend(pending([spec], tmp_path)))
        reader.start()
        reader.join(timeout=0.5)
        assert reader.is_alive()  # waiting, not reading half a line
        writer.write(text[20:])
        writer.flush()
        fcntl.flock(writer, fcntl.LOCK_UN)
    reader.join(timeout=10)
    assert not reader.is_alive() and found == []


# --------------------------------------------------------------------------------------------------
# Planning


def test_the_lambda_ablation_command_prints_figure_4s_runs(tmp_path, capsys):
    assert main(["commands", "--lambda-ablation", "--seeds", "1", "--out", str(tmp_path)]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 7 and all(
        "--dataset cifar100 --model resnet20" in command for command in commands
    )
    assert sum("--attention none" in command for command in commands) == 1
    assert sum("--lambda" in command for command in commands) == 5  # 1e-4 is the trainer's default


def test_plan_crosses_every_axis_and_lambdas_apply_to_simam_only():
    specs = plan(
        ["resnet20", "resnet56"], ["none", "simam"], ["cifar10"], 2, ["paper"], [1e-4, 1e-2]
    )
    assert len(specs) == 2 * (1 + 2) * 2
    assert len({spec.run_id for spec in specs}) == len(specs)
    assert "cifar10-resnet56-simam-lambda0.01-paper-seed1" in {spec.run_id for spec in specs}
    # 1e-4 is the default: plain id
    assert "cifar10-resnet56-simam-paper-seed1" in {spec.run_id for spec in specs}
    assert plan(["resnet20"], ["se"], ["cifar100"], [3, 7])[1].train_args() == [
        "--dataset",
        "cifar100",
        "--model",
        "resnet20",
        "--attention",
        "se",
        "--recipe",
        "paper",
        "--seed",
        "7",
    ]
    with pytest.raises(GridError, match="unknown model 'resnet21'"):
        plan(["resnet21"], ["none"], ["cifar10"], 1)


def test_lambda_ablation_is_figure_4s_grid_with_the_baseline():
    specs = plan_lambda_ablation(seeds=2)
    assert {spec.dataset for spec in specs} == {"cifar100"} and {spec.model for spec in specs} == {
        "resnet20"
    }
    lambdas = {spec.lambda_ for spec in specs if spec.attention == "simam"}
    assert lambdas == {1e-1, 1e-2, 1e-3, None, 1e-5, 1e-6} and len(FIGURE4_LAMBDAS) == 6
    assert len(specs) == 2 * 7 and sum(spec.attention == "none" for spec in specs) == 2
    lambda_of = {spec.run_id: spec.config().lambda_ for spec in specs}
    assert lambda_of["cifar100-resnet20-simam-lambda1e-06-paper-seed0"] == 1e-6
    assert lambda_of["cifar100-resnet20-simam-paper-seed0"] == 1e-4


# --------------------------------------------------------------------------------------------------
# Summary, on result lines made here


def line(
    attention: str,
    seed: int,
    accuracy: float,
    lambda_: float | None = None,
    seeds_asked: int = 3,
    model: str = "resnet20",
    **overrides,
) -> dict:
    lam = 1e-4 if lambda_ is None else lambda_
    config = dataclasses.asdict(
        dataclasses.replace(
            QUICK, model=model, attention=attention, seed=seed, lambda_=lam, **overrides
        )
    )
    suffix = "" if lambda_ is None else f"-lambda{lambda_:g}"
    return {
        "run_id": f"cifar10-{model}-{attention}{suffix}-quick-seed{seed}"
        + "".join(f"-{k}{v}" for k, v in overrides.items()),
        "dataset": "cifar10",
        "model": model,
        "attention": attention,
        "lambda": lam if attention.startswith("simam") else None,
        "recipe": "quick",
        "seed": seed,
        "seeds_asked": seeds_asked,
        "final_test_accuracy": accuracy,
        "device": "CPU: test",
        "gpus_per_run": 1,
        "train_images_per_second": 400.0 + 10 * seed,
        "steady_images_per_second": None,
        "config": config,
    }


SYNTHETIC = [
    line("none", 0, 0.80),
    line("none", 1, 0.82),
    line("none", 2, 0.87),
    line("simam", 0, 0.84),
    line("simam", 1, 0.86),
    line("simam", 0, 0.10),  # a second line of a run: ignored
    line("none", 0, 0.50, iterations=60),
]


def test_summarise_gives_mean_and_sample_std_per_cell_beside_the_paper():
    none, simam_cell, none_short = summarise(SYNTHETIC)  # the recipe's own cells first
    assert (none.attention, none.overrides, none.n, none.complete) == ("none", "", 3, True)
    assert none.mean == pytest.approx(83.0) and none.std == pytest.approx(
        statistics.stdev([80, 82, 87])
    )
    assert (
        (none.paper_mean, none.paper_std)
        == PAPER_TABLE2[("cifar10", "resnet20", "none")]
        == (92.33, 0.19)
    )
    assert none.difference == pytest.approx(83.0 - 92.33)
    assert simam_cell.n == 2 and not simam_cell.complete and simam_cell.mean == pytest.approx(85.0)
    assert simam_cell.lambda_ == 1e-4 and simam_cell.paper_mean == 92.73
    assert none_short.overrides == "iterations=60" and none_short.n == 1 and none_short.std is None
    assert summarise(SYNTHETIC, seeds=2)[1].complete


def test_summary_markdown_and_csv_mark_cells_short_of_seeds():
    cells = summarise(SYNTHETIC)
    table = summary_markdown(cells)
    assert (
        "| cifar10 | resnet20 | none |  | paper | quick | 3 | "
        "83.00 ± 3.61 | 92.33 ± 0.19 | -9.33 | 410 (—) |" in table
    )
    assert "| quick | 2 of 3 * | 85.00 ± 1.41 | 92.73 ± 0.18 | -7.73 |" in table
    assert "| quick (iterations=60) | 1 of 3 * | 50.00 | 92.33 ± 0.19 |" in table
    assert "ICML 2021, Table 2" in table and "fewer seeds than asked" in table
    rows = summary_csv(cells).splitlines()
    assert rows[0].startswith(
        "dataset,model,attention,lambda,place,recipe,overrides,n,seeds_asked,complete,mean,std"
    )
    assert rows[2].split(",")[:12] == [
        "cifar10",
        "resnet20",
        "simam",
        "0.0001",
        "",
        "quick",
        "",
        "2",
        "3",
        "False",
        "85.0000",
        "1.4142",
    ]
    # seeds 0 and 1; no run recorded its steady speed
    assert rows[2].split(",")[-2:] == [
        "405.0",
        "",
    ]
    steady = [dict(line("none", s, 0.8), steady_images_per_second=500.0 + s) for s in range(2)]
    assert summarise(steady)[0].steady_images_per_second == 500.5
    assert "| 405 (500) |" in summary_markdown(summarise(steady))


def test_other_lambdas_have_no_paper_value_and_plot_as_figure_4():
    lines = [line("none", s, 0.8 + s / 100) for s in range(2)]
    lines += [
        line("simam", s, 0.81 + s / 100 + i / 1000, lambda_=lam)
        for i, lam in enumerate([1e-2, 1e-3, None])
        for s in range(2)
    ]
    cells = summarise(lines)
    assert [(c.lambda_, c.paper_mean) for c in cells if c.attention == "simam"] == [
        (1e-2, None),
        (1e-3, None),
        (1e-4, 92.73),
    ]
    axis = plot_lambda_ablation(lines).axes[0]
    # one error bar per mean
    means = sorted(container.lines[0].get_xdata()[0] for container in axis.containers)
    assert means == [1e-4, 1e-3, 1e-2] and axis.get_xscale() == "log"
    assert [text.get_text() for text in axis.texts] == ["n=2"] * 3  # each mean says its seeds
    # means of a sweep are not joined
    assert not [line for line in axis.lines if len(line.get_xdata()) > 2]
    figure = plot_summary(cells)
    assert len(figure.axes[0].patches) == 2  # the bars of none and simam at the paper's lambda
    with pytest.raises(GridError, match="no lambda study"):
        plot_lambda_ablation(SYNTHETIC[:3])


def test_each_cell_is_asked_the_seeds_of_its_own_runs():
    lines = [line("none", s, 0.8, seeds_asked=10) for s in range(5)] + [
        line("se", s, 0.8, seeds_asked=5) for s in range(5)
    ]
    table = summary_markdown(summarise(lines))
    assert (
        "| none |  | paper | quick | 5 of 10 * |" in table
        and "| se |  | paper | quick | 5 |" in table
    )


def grid_lines(shift_simam: float) -> list[dict]:
    """Five seeds per module; SimAM's accuracies sit ``shift_simam`` points above the baseline's."""
    spread = [-0.2, -0.1, 0.0, 0.1, 0.25]
    base = {
        "none": 86.0,
        "se": 86.1,
        "cbam": 85.9,
        "eca": 86.2,
        "gc": 86.0,
        "simam": 86.0 + shift_simam,
    }
    return [
        dict(
            line(attention, seed, (mean + spread[(seed + index) % 5]) / 100, seeds_asked=5),
            final_test_accuracy_flip=(mean + 0.5 + spread[seed]) / 100,
        )
        for index, (attention, mean) in enumerate(base.items())
        for seed in range(5)
    ]


def test_the_standard_verdict_corrects_for_five_modules_and_explores_simam_against_the_best_other():
    clear_lines, unclear_lines = grid_lines(1.5), grid_lines(0.1)
    clear = judge(summarise(clear_lines), clear_lines, "resnet20")
    unclear = judge(summarise(unclear_lines), unclear_lines, "resnet20")
    for verdict in (clear, unclear):
        primary = [row for row in verdict.rows if row.planned.kind == "primary"]
        assert [row.planned.name for row in primary] == [
            "SE − none",
            "CBAM − none",
            "ECA − none",
            "GC − none",
            "SimAM − none",
        ]
        assert all(row.holm_welch >= row.p_welch and row.seeds == (5, 5) for row in primary)
        assert sorted(row.holm_permutation for row in primary) == sorted(
            min(
                1,
                max(
                    (5 - k) * p
                    for k, p in enumerate(sorted(r.p_permutation for r in primary)[: i + 1])
                ),
            )
            for i in range(5)
        )
        kinds = [
            (row.planned.name, row.planned.kind, row.planned.metric) for row in verdict.rows[5:]
        ]
        assert kinds[-2:] == [
            ("SimAM − ECA", "exploratory", "final"),
            ("SimAM − ECA", "exploratory", "flip"),
        ]
        assert {kind for _, kind, _ in kinds[:-2]} == {"secondary"}  # the flip-averaged accuracy
    assert clear.rows[4].established() and not unclear.rows[4].established()
    text = verdict_text(clear)
    simam = clear.rows[4]
    assert (
        f"SimAM − none = {simam.estimate:+.2f} points (95% CI [{simam.low:+.2f}, {simam.high:+.2f}]"
        in text
    )
    assert "**established, positive**" in text and "Exploratory, not part of the verdict: " in text
    assert "p = <" not in text and ("p < 0.001" in text) == (simam.p_welch < 0.001)
    # 5 + 5 seeds: the smallest permutation p is 2/252, times 5 is 0.04
    assert "cannot fall below" not in text
    fewer = [
        line for line in clear_lines if not (line["attention"] == "simam" and line["seed"] > 2)
    ]
    assert (
        "SimAM − none's permutation p cannot fall below 0.018, "
        "nor below 0.089 after Holm's correction over 5"
        in verdict_text(judge(summarise(fewer), fewer, "resnet20"))
    )
    assert comparison_table(clear.rows).count("\n") == 2 + 12


def test_the_verdict_needs_two_seeds_and_the_lambda_table_pools_the_spread():
    lines = grid_lines(1.0)[:26]
    assert judge(summarise(lines), lines, "resnet20") is None  # one seed of SimAM
    cells = summarise(
        [line("simam", 0, 0.87, lambda_=1e-2), line("simam", 0, 0.86), line("simam", 1, 0.87)]
    )
    table = lambda_points(cells, "resnet20")
    assert "pooled spread, 1 degrees of freedom" in table and "| 0.01 | 1 | 87.00 | [" in table
    # one pooled spread, 0.71 points with 1 degree of freedom: half-widths
    # t(0.975, 1) * 0.71 / sqrt(n)
    half = 12.706 * statistics.stdev([86, 87]) / math.sqrt(2)
    assert f"| 0.0001 (the grid's) | 2 | 86.50 | [{86.5 - half:.2f}, {86.5 + half:.2f}] |" in table


def test_the_lambda_omnibus_test_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    lines = [
        line("simam", s, (87 + 0.1 * s + (0.3 if lam == 1e-2 else 0)) / 100, lambda_=lam)
        for lam in (1e-2, 1e-3, None)
        for s in range(3)
    ]
    cells = summarise(lines)
    groups = [[87 + 0.1 * s + shift for s in range(3)] for shift in (0.3, 0.0, 0.0)]
    anova, kruskal = scipy_stats.f_oneway(*groups), scipy_stats.kruskal(*groups)
    text = lambda_omnibus(cells, "resnet20")
    assert f"F(2, 6) = {anova.statistic:.2f}, p = {anova.pvalue:.2f}" in text
    assert f"H = {kruskal.statistic:.2f}, p = {kruskal.pvalue:.2f}" in text


def test_the_figures_show_every_seed_and_are_small(tmp_path):
    lines = grid_lines(0.5) + [
        line("simam", s, 0.86, lambda_=lam, seeds_asked=2) for lam in (1e-1, 1e-5) for s in (0, 1)
    ]
    figure = plot_seeds(summarise(lines), "resnet20")
    left, right = figure.axes
    assert (
        sum(
            len(c.get_offsets())
            for c in left.collections
            if c.get_offsets().ndim == 2 and len(c.get_offsets()) == 5
        )
        == 30
    )
    assert len(right.get_legend().get_texts()) == 2  # ours beside the paper's
    paths = write_figures(lines, tmp_path)
    assert [p.name for p in paths] == [
        "cifar10-resnet20-quick-seeds.png",
        "cifar10-resnet20-quick-lambda.png",
    ]
    assert all(p.stat().st_size < 100_000 for p in paths)
    assert write_figures(lines, tmp_path) and [p.read_bytes() for p in paths] == [
        p.read_bytes() for p in write_figures(lines, tmp_path)
    ]


# --------------------------------------------------------------------------------------------------
# The results page and the README's headline


def test_the_results_section_is_generated_between_the_markers_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a results folder without plans: the standard verdict
    page = Path("book/guide/results.md")
    page.parent.mkdir(parents=True)
    page.write_text(
        f"# Results\n\nIntro.\n\n{SECTION_START}\nold text\n{SECTION_END}\n\n## After\nkept\n"
    )
    gpu_lines = [dict(line, device="NVIDIA H200 (CUDA 13.0)") for line in SYNTHETIC[:5]]
    section = update_page(page, gpu_lines, "results")
    text = page.read_text()
    assert text.startswith(f"# Results\n\nIntro.\n\n{SECTION_START}\n") and text.endswith(
        f"{SECTION_END}\n\n## After\nkept\n"
    )
    assert "old text" not in text and section in text
    # headings start at level 2, under the page's title
    assert (
        "\n## cifar10, quick\n" in section
        and "Recipe: quick (about 8 epochs on a 2-core CPU" in section
    )
    assert (
        "\n### resnet20: the verdict\n" in section
        and "| SimAM − none | primary | final test accuracy | 2, 3 | +2.00 [" in section
    )
    assert verdict_text(judge(summarise(gpu_lines), gpu_lines, "resnet20")) in section
    # the figure is linked from the page's folder, two below the results folder's
    assert "![every seed of resnet20](../../results/cifar10-resnet20-quick-seeds.png)" in section
    assert (
        "--attentions none,simam --datasets cifar10 --seeds 3 --recipe quick --out results"
        in section
    )
    assert "Hardware: NVIDIA H200 (CUDA 13.0); 1 GPU(s) per run." in section
    assert "Seeds per cell: 2 to 3 (5 runs)." in section and "2 of 3 *" in section
    command = (
        "python -m simam.course.readme results --page book/guide/results.md --readme README.md"
    )
    assert command in section

    empty = results_section([], "results", page=page)
    assert "No results yet" in empty and "python -m simam.experiments run" in empty
    assert command in empty
    update_page(page, [], "results")
    assert empty in page.read_text() and "## cifar10" not in page.read_text()


def test_figure_links_are_relative_to_the_file_that_holds_them(tmp_path, monkeypatch):
    figure = "results/cifar10-resnet20-quick-seeds.png"
    assert link(figure, "README.md") == figure
    assert link(figure, "book/guide/results.md") == "../../" + figure
    assert link("book/guide/results.md", "README.md") == "book/guide/results.md"
    monkeypatch.chdir(tmp_path)  # paths relative to the working folder and absolute ones agree
    assert link(tmp_path / figure, tmp_path / "docs" / "results.md") == "../" + figure


def test_the_readme_headline_is_generated_between_its_markers_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readme = Path("README.md")
    readme.write_text(
        f"# Title\n\n## Results\n\n{HEADLINE_START}\nold\n{HEADLINE_END}\n\n## After\n"
    )
    text = update_readme(readme, SYNTHETIC, "results", page="book/guide/results.md")
    assert readme.read_text() == (
        f"# Title\n\n## Results\n\n{HEADLINE_START}\n{text}{HEADLINE_END}\n\n## After\n"
    )
    # the table with the most runs, without trainer overrides; every number from the results
    assert (
        "resnet20 on cifar10, recipe quick (about 8 epochs" in text and "iterations=60" not in text
    )
    assert "| none | 3 | 83.00 ± 3.61 |  |  |" in text
    row = next(line for line in text.splitlines() if line.startswith("| simam |"))
    table = [cell for cell in summarise(SYNTHETIC) if not cell.overrides]
    verdict = judge(table, SYNTHETIC, "resnet20")
    simam_row = next(r for r in verdict.rows if r.planned.name == "SimAM − none")
    assert row == (
        f"| simam | 2 of 3 * | 85.00 ± 1.41 | {simam_row.estimate:+.2f} "
        f"[{simam_row.low:+.2f}, {simam_row.high:+.2f}] | **not established** |"
    )
    assert (
        "the standard comparisons of a grid, fixed before any result (5 of 6 runs finished)" in text
    )
    assert "![every seed of resnet20](results/cifar10-resnet20-quick-seeds.png)" in text
    assert "[Results](book/guide/results.md)" in text
    assert "--page book/guide/results.md --readme README.md" in text

    empty = headline([], "results")
    assert "No results yet: [the results page](book/guide/results.md)" in empty
    with pytest.raises(GridError, match="lacks the markers"):
        update_page(readme, SYNTHETIC, "results")


def test_the_readme_command_says_in_one_line_what_is_wrong(tmp_path, capsys):
    from simam.course.readme import main as readme_main

    page, readme = tmp_path / "results.md", tmp_path / "README.md"
    assert readme_main([str(tmp_path), "--page", str(page), "--readme", str(readme)]) == 2
    assert capsys.readouterr().err.strip().endswith("results.md not found")
    page.write_text("no markers\n")
    assert readme_main([str(tmp_path), "--page", str(page), "--readme", str(readme)]) == 2
    assert capsys.readouterr().err.strip().endswith("README.md not found")
    assert readme_main([str(tmp_path), "--seeds", "three"]) == 2
    assert "invalid int value" in capsys.readouterr().err


def _between(text: str, start: str, end: str) -> str:
    assert text.count(start) == 1 and text.count(end) == 1 and text.index(start) < text.index(end)
    return text[text.index(start) + len(start) : text.index(end)]


def test_the_committed_results_page_and_headline_are_what_the_readme_command_writes(
    monkeypatch,
):
    monkeypatch.chdir(REPO)  # the command runs from the checkout's root
    # results/results.jsonl is committed with the files it fills; without it they say how to make
    # it
    results = read_results("results")
    page = Path("book/guide/results.md").read_text()
    assert _between(page, SECTION_START, SECTION_END) == "\n" + results_section(results, "results/")
    readme = Path("README.md").read_text()
    assert _between(readme, HEADLINE_START, HEADLINE_END) == "\n" + headline(results, "results/")


# --------------------------------------------------------------------------------------------------
# The command line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--models", "resnet21"], "unknown model 'resnet21'"),
        (["run", "--seeds", "two"], "argument --seeds: expected a count"),
        (["run", "--lambda-ablation", "--models", "resnet56"], "drop --models"),
        (["run", "--", "--out", "elsewhere"], "trainer options may not set --out"),
        (["run", "--", "--lambda", "0.1"], "trainer options may not set --lambda"),
        (["run", "--", "--iterations", "ten"], "argument --iterations: invalid int value"),
        (["run", "--", "--iterations", "0"], "iterations must be at least 1"),
        (["run", "--gpus-per-run", "2", "--", "--device", "cpu"], "--gpus-per-run 2 needs GPUs"),
        (["run", "--workers", "0", "--", "--device", "cpu"], "workers must be at least 1"),
        (["summary", "RESULTS"], "no finished runs in"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
    ],
)
def test_bad_options_give_one_line_and_exit_code_2(args, message, tmp_path, capsys):
    args = [str(tmp_path) if a == "RESULTS" else a.replace("RESULTS", str(tmp_path)) for a in args]
    if args[0] in ("run", "commands"):
        args[1:1] = ["--out", str(tmp_path / "results")]
    assert main(args) == 2
    error = capsys.readouterr().err
    assert (
        error.count("\n") == 1
        and error.startswith("simam-experiments: error: ")
        and message in error
    )
    assert not (tmp_path / "results").exists()


def test_pending_reads_a_missing_results_file_as_empty(tmp_path):
    specs = plan(["resnet20"], ["none"], ["cifar10"], 2)
    assert pending(specs, tmp_path / "nothing") == specs


def test_a_setting_a_finished_run_lacks_is_compared_with_its_own_recipe(tmp_path):
    """A results line written before a field existed: the field had its default in the run's own
    recipe (quick's label smoothing 0.1), not in the paper's (0)."""
    spec = RunSpec("cifar10", "resnet20", "none", "quick", 0)
    stored = dataclasses.asdict(spec.config())
    del stored["label_smoothing"]
    append_result(tmp_path, {"run_id": spec.run_id, "config": stored})
    assert pending([spec], tmp_path) == []
    assert changed_settings(spec.config(), stored) == []
    assert changed_settings(dataclasses.replace(spec.config(), label_smoothing=0.0), stored) == [
        ("label_smoothing", 0.0, 0.1)
    ]


def test_a_run_off_the_paper_place_names_its_place():
    from simam.experiments.plan import plan

    ids = {
        spec.attention: spec.run_id
        for spec in plan(
            ["resnet20"],
            ["none", "simam", "eca"],
            ["cifar10"],
            [0],
            ["quick"],
            place="end_of_branch",
        )
    }
    # ECA's paper place is the end of the branch
    assert ids == {
        "none": "cifar10-resnet20-none-quick-seed0",
        "simam": "cifar10-resnet20-simam-end_of_branch-quick-seed0",
        "eca": "cifar10-resnet20-eca-quick-seed0",
    }
    spec = plan(["resnet20"], ["simam"], ["cifar10"], [0], ["quick"], place="end_of_branch")[0]
    assert (
        spec.train_args()[-2:] == ["--place", "end_of_branch"]
        and spec.config().place == "end_of_branch"
    )
