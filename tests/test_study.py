"""Studies planned before their runs: the plan files, the grid they run, the contrasts their verdict
computes (checked against a computation by hand and against scipy), the CPU-stratified test, the
interim look, and that each committed plan was committed before its results."""

from __future__ import annotations

import dataclasses
import json
import shlex
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from run_checks import fake_final

import simam.experiments.__main__ as experiments_main
from simam import stats
from simam.config import FAST, FAST_30, QUICK
from simam.course.targets import target_table
from simam.course.tricks import adopted, trick_table
from simam.course.verdicts import study_section, study_summary, verdict_text
from simam.experiments import (
    GridError,
    RunOutcome,
    judge_studies,
    judge_study,
    plot_study,
    read_studies,
    read_study,
)
from simam.experiments.__main__ import main

REPO = Path(__file__).resolve().parents[1]
PLANS = REPO / "results" / "plans"

PLAN = """
order = 1
question = "Where should the module sit?"
written = "before the runs"
dataset = "cifar10"
model = "resnet20"
recipe = "quick"
primary_metric = "final"

[cells.simam]
attention = "simam"
seeds = 3
[cells.simam_end]
attention = "simam"
place = "end_of_branch"
seeds = 3
[cells.eca]
attention = "eca"
seeds = 3
[cells.eca_conv]
attention = "eca"
place = "after_conv"
seeds = 3

[[comparisons]]
name = "SimAM: before − after"
plus = ["simam"]
minus = ["simam_end"]
kind = "primary"

[[comparisons]]
name = "interaction"
plus = ["simam", "eca"]
minus = ["simam_end", "eca_conv"]
kind = "primary"
"""

ACCURACIES = {
    "simam": [87.0, 87.2, 87.4],
    "simam_end": [86.5, 86.6, 86.9],
    "eca": [86.9, 87.0, 87.3],
    "eca_conv": [86.8, 87.1, 87.0],
}


def write_plan(folder: Path, text: str = PLAN, name: str = "where") -> Path:
    (folder / "plans").mkdir(parents=True, exist_ok=True)
    path = folder / "plans" / f"{name}.toml"
    path.write_text(text)
    return path


def lines_for(study, cpus=("CPU: A, 2 logical cores",) * 3) -> list[dict]:
    return [
        {
            "run_id": run,
            "final_test_accuracy": ACCURACIES[name][seed] / 100,
            "final_test_accuracy_flip": (ACCURACIES[name][seed] + 0.5) / 100,
            "device": cpus[seed],
        }
        for name in study.cells
        for seed, run in enumerate(study.run_ids(name))
    ]


def test_a_plan_names_its_runs_and_the_grid_runs_exactly_them(tmp_path, capsys):
    study = read_study(write_plan(tmp_path))
    assert [spec.run_id for spec in study.specs()][3::3] == [
        "cifar10-resnet20-simam-end_of_branch-quick-seed0",
        "cifar10-resnet20-eca-quick-seed0",
        "cifar10-resnet20-eca-after_conv-quick-seed0",
    ]
    assert (
        main(["commands", "--plan", str(tmp_path / "plans" / "where.toml"), "--out", str(tmp_path)])
        == 0
    )
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 12 and sum("--place end_of_branch" in c for c in commands) == 3
    assert (
        main(["run", "--plan", str(tmp_path / "plans" / "where.toml"), "--attentions", "se"]) == 2
    )
    assert "--plan sets the cells itself; drop --attentions" in capsys.readouterr().err


@pytest.mark.parametrize(
    "change, message",
    [
        (("seeds = 3\n[[comparisons]]", "seeds = 3\n[[comparisons]]"), None),
        (('minus = ["simam_end"]', 'minus = ["simam_ending"]'), "names no cell 'simam_ending'"),
        (
            ('kind = "primary"', 'kind = "main"'),
            "kind must be one of primary, secondary, exploratory",
        ),
        (('written = "before the runs"', 'written = "soon"'), "written must be"),
        (('place = "end_of_branch"', 'place = "nowhere"'), "unknown place 'nowhere'"),
        (('question = "Where should the module sit?"\n', ""), "missing 'question'"),
        (('recipe = "quick"', 'recipe = "quick'), "plan "),
    ],
)
def test_a_bad_plan_is_one_clear_error(tmp_path, change, message):
    path = write_plan(tmp_path, PLAN.replace(*change, 1))
    if message is None:
        assert read_study(path).name == "where"
        return
    with pytest.raises(GridError, match=message):
        read_study(path)


def test_the_verdict_computes_each_contrast_as_by_hand(tmp_path):
    study = read_study(write_plan(tmp_path))
    verdict = judge_study(study, lines_for(study))
    before, interaction = verdict.rows
    a, b = ACCURACIES["simam"], ACCURACIES["simam_end"]
    assert before.estimate == pytest.approx(statistics.mean(a) - statistics.mean(b))
    assert (before.low, before.high, before.p_welch) == pytest.approx(
        stats.welch(a, b)[1:3] + stats.welch(a, b)[4:]
    )
    # one CPU model
    assert before.p_permutation == stats.permutation_p(a, b)[0] and before.p_within_cpu is None
    means = {name: statistics.mean(values) for name, values in ACCURACIES.items()}
    assert interaction.estimate == pytest.approx(
        means["simam"] + means["eca"] - means["simam_end"] - means["eca_conv"]
    )
    error = sum(statistics.variance(v) / 3 for v in ACCURACIES.values()) ** 0.5
    assert interaction.high - interaction.estimate == pytest.approx(
        stats.t_quantile(0.975, interaction.df) * error
    )
    assert interaction.p_permutation is None and interaction.holm_permutation is None
    assert before.holm_welch == max(
        stats.holm([before.p_welch, interaction.p_welch])[0], before.p_welch
    )
    # the interaction counts as p = 1
    assert before.holm_permutation == min(1.0, 2 * before.p_permutation)
    section = study_section(verdict)
    assert "committed before its first run" in section and "| interaction | primary |" in section
    assert "12 of its 12 runs finished" in section and "Interim" not in section


def test_the_welch_contrast_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    a, b = ACCURACIES["simam"], ACCURACIES["simam_end"]
    estimate, low, high, df, p = stats.contrast([a, b], [1, -1])
    assert p == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue, rel=1e-9)
    assert (estimate, low, high, df) == pytest.approx(stats.welch(a, b)[:4])


def test_runs_are_exchanged_only_within_their_cpu_model():
    a, b = [87.0, 87.1, 86.0, 86.1], [86.9, 87.2, 85.9, 86.2]
    one = stats.stratified_permutation_p(a, b, ["x"] * 4, ["x"] * 4)
    assert one == stats.permutation_p(a, b)
    # a's runs and b's runs come from two CPU models that differ by a point, in unequal shares
    a, b = [87.0, 87.1, 87.2, 86.0], [86.0, 86.1, 86.2, 87.1]
    p_pooled = stats.permutation_p(a, b)[0]
    p_within, exact = stats.stratified_permutation_p(
        a, b, ["x", "x", "x", "y"], ["y", "y", "y", "x"]
    )
    assert exact and p_within > p_pooled  # the CPU models' difference no longer passes for a's gain


def test_the_interim_look_uses_the_first_seeds(tmp_path):
    path = write_plan(
        tmp_path,
        PLAN.replace('primary_metric = "final"', 'primary_metric = "final"\ninterim_seeds = 2'),
    )
    study = read_study(path)
    verdict = judge_study(study, lines_for(study))
    a, b = ACCURACIES["simam"][:2], ACCURACIES["simam_end"][:2]
    assert verdict.interim[0].estimate == pytest.approx(statistics.mean(a) - statistics.mean(b))
    assert verdict.interim[0].seeds == (2, 2)


def test_the_committed_plans_read_and_come_in_the_course_order():
    studies = read_studies(REPO / "results")
    assert [s.name for s in studies] == ["grid", "placement", "budget", "tricks", "fast"]
    assert [s.written for s in studies] == ["after the runs"] + ["before the runs"] * 4
    reused = {
        s.name: sorted(name for name, cell in s.cells.items() if cell.reused_from) for s in studies
    }
    assert reused == {
        "grid": [],
        "placement": ["eca", "simam"],
        "budget": ["none", "simam"],
        "tricks": [],
        "fast": [],
    }
    assert [len(s.specs()) for s in studies[1:]] == [40, 30, 26, 6]
    assert all("--holdout" in spec.train_args() for spec in studies[3].specs())
    # the fast study reads the test split: no held-out images, every run of a cell alone timed
    assert not any("--holdout" in spec.train_args() for spec in studies[4].specs())
    assert {(c.target, c.seconds) for c in studies[4].cells.values()} == {
        (90.0, 900.0),
        (91.5, 1800.0),
    }


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(), reason="no git history here"
)
def test_each_plan_written_before_its_runs_was_committed_before_their_results():
    if _git("rev-parse", "--is-shallow-repository") == "true":
        pytest.skip("a shallow clone holds no history to check the order in")
    checked = 0
    studies = read_studies(REPO / "results")
    for study in studies:
        added = _git(
            "log", "--diff-filter=A", "--format=%H", "--", f"results/plans/{study.name}.toml"
        ).splitlines()
        if study.written != "before the runs" or not added:
            continue
        plan_commit = added[-1]
        for name, cell in study.cells.items():
            if cell.reused_from:  # another study's runs, trained before this plan
                continue
            folder = study.results_folder("results")
            for run in study.run_ids(name):
                results = _git(
                    "log", "--diff-filter=A", "--format=%H", "--", f"{folder}/runs/{run}/final.json"
                ).splitlines()
                if results:
                    first = results[-1]
                    ancestor = subprocess.run(
                        ["git", "-C", str(REPO), "merge-base", "--is-ancestor", plan_commit, first]
                    )
                    assert first != plan_commit and ancestor.returncode == 0, (
                        f"{run} came before {study.name}'s plan"
                    )
                    checked += 1
    assert checked == len(
        [
            line
            for line in _git("ls-files", "results").splitlines()
            if line.endswith("final.json")
            and (
                line.startswith(tuple(f"results/{s.folder}/runs/" for s in studies if s.folder))
                or any(f"-{p}-" in line for p in ("end_of_branch", "after_conv", "quick-4x"))
            )
        ]
    )


def test_a_primary_comparison_not_yet_computable_still_counts_in_holms_family(tmp_path):
    study = read_study(write_plan(tmp_path))
    # no ECA before the BN
    lines = [line for line in lines_for(study) if "after_conv" not in line["run_id"]]
    verdict = judge_study(study, lines)
    (before,) = verdict.rows  # the interaction needs the missing cell
    assert before.holm_welch == min(1.0, 2 * before.p_welch)  # corrected for the family of two
    text = study_section(verdict)
    assert "1 of the 2 primary comparisons cannot be computed yet" in text


def test_a_plan_written_after_its_runs_gives_nominal_verdicts(tmp_path):
    study = read_study(write_plan(tmp_path, PLAN.replace('"before the runs"', '"after the runs"')))
    text = study_section(judge_study(study, lines_for(study)))
    assert "written after its runs" in text and "its p-values are nominal" in text
    assert "**established" not in text  # only "nominally established" or "not established"


RECIPE_PLAN = """
question = "Which change to the quick recipe helps?"
written = "before the runs"
folder = "recipe"
dataset = "cifar10"
model = "resnet20"
recipe = "quick"
primary_metric = "holdout"
options = ["--holdout", "5000"]

[cells.base]
attention = "simam"
seeds = 3
[cells.ema]
attention = "simam"
seeds = 3
options = ["--ema", "0.998"]

[[comparisons]]
name = "ema − base"
plus = ["ema"]
minus = ["base"]
kind = "secondary"
"""


def test_a_study_of_the_recipe_names_its_runs_by_cell_and_keeps_them_in_its_folder(
    tmp_path, capsys, monkeypatch
):
    path = write_plan(tmp_path, RECIPE_PLAN, "recipe")
    study = read_study(path)
    assert study.run_ids("ema")[0] == "cifar10-resnet20-simam-quick-ema-seed0"
    assert study.cell_specs("ema")[0].train_args()[-4:] == ["--holdout", "5000", "--ema", "0.998"]
    config = study.cell_specs("ema")[2].config()
    assert (config.holdout, config.ema, config.seed) == (5000, 0.998, 2)
    assert main(["commands", "--plan", str(path), "--out", str(tmp_path)]) == 0
    commands = capsys.readouterr().out.splitlines()
    assert len(commands) == 6
    assert all(f"--out {tmp_path / 'recipe'}" in command for command in commands)
    assert sum("--variant ema --options '--holdout 5000 --ema 0.998'" in c for c in commands) == 3

    # a printed command trains the cell's run: its id and options
    trained = []
    monkeypatch.setattr(
        experiments_main,
        "run_one",
        lambda spec, *args: trained.append(spec) or RunOutcome(spec, "finished", ""),
    )
    command = next(c for c in commands if "--variant ema" in c)
    assert main(shlex.split(command)[3:]) == 0
    assert trained[0].run_id == "cifar10-resnet20-simam-quick-ema-seed0"
    assert trained[0].config().ema == 0.998
    assert main(["run-one", *shlex.split(command)[4:], "--variant", "x", "--options", ""]) == 2

    lines = [
        {
            "run_id": run,
            "final_holdout_accuracy": (88.0 + 0.5 * (name == "ema") + 0.1 * seed) / 100,
            "device": "CPU: A, 2 logical cores",
        }
        for name in study.cells
        for seed, run in enumerate(study.run_ids(name))
    ]
    verdict = judge_study(study, lines)
    assert verdict.cells["ema"].final == pytest.approx((88.5, 88.6, 88.7))
    assert verdict.rows[0].estimate == pytest.approx(0.5)
    assert verdict.rows[0].holm_welch is None  # secondary: not corrected


@pytest.mark.parametrize(
    "options, message",
    [
        ('["--seed", "3"]', "options may not set --seed"),
        ('["--ema", "1.5"]', "ema must be a decay in"),
        ('"--ema 0.9"', "options must be a list of strings"),
    ],
)
def test_options_that_a_plan_cannot_give_are_one_clear_error(tmp_path, options, message):
    text = RECIPE_PLAN.replace('options = ["--ema", "0.998"]', f"options = {options}")
    with pytest.raises(GridError, match=message):
        read_study(write_plan(tmp_path, text, "recipe"))


def test_a_study_not_yet_complete_is_an_interim_look_and_counts_reused_runs_apart(tmp_path):
    text = PLAN.replace(
        "seeds = 3\n[cells.simam_end]", 'seeds = 3\nfrom = "grid"\n[cells.simam_end]'
    )
    study = read_study(write_plan(tmp_path, text))
    lines = lines_for(study)
    complete = judge_study(study, lines)
    assert complete.complete and complete.progress() == (
        "9 of its 9 runs finished, 3 more reused from the grid study"
    )
    assert verdict_text(complete).startswith("**Verdict of the where study**")
    missing = [line for line in lines if not line["run_id"].endswith("eca-quick-seed2")]
    running = judge_study(study, missing)
    assert not running.complete and running.progress().startswith("8 of its 9 runs finished")
    assert verdict_text(running).startswith("**Interim look, not the verdict, of the where study**")


def test_the_trick_table_applies_the_plans_rule_and_shows_the_speeds(tmp_path):
    plan = RECIPE_PLAN.replace(
        'options = ["--holdout", "5000"]', 'options = ["--holdout", "5000"]\nadopt_at = 0.15'
    )
    plan += '[cells.lr]\nattention = "simam"\nseeds = 3\noptions = ["--lr", "0.4"]\n'
    plan += (
        '[[comparisons]]\nname = "lr − base"\nplus = ["lr"]\nminus = ["base"]\nkind = "secondary"\n'
    )
    study = read_study(write_plan(tmp_path, plan, "recipe"))
    assert study.adopt_at == 0.15
    gains = {"base": 0.0, "ema": 0.5, "lr": 0.1}
    lines = [
        {
            "run_id": run,
            "final_holdout_accuracy": (88.0 + gains[name] + 0.1 * seed) / 100,
            "device": "CPU: A, 2 logical cores",
        }
        for name in study.cells
        for seed, run in enumerate(study.run_ids(name))
        if name != "lr" or seed < 2
    ]
    verdict = judge_study(study, lines)
    speeds = {
        "device": "CPU: A, 2 logical cores, 2 torch threads",
        "rounds": 3,
        "iterations": 20,
        "rows": [
            {"cell": "base", "images_per_second": 600.0, "ratio": 1.0},
            {"cell": "ema", "images_per_second": 570.0, "ratio": 0.95},
            {"cell": "compile", "images_per_second": 660.0, "ratio": 1.1},
        ],
    }

    def table_rows(verdict):
        table = trick_table(verdict, speeds)
        return {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}

    # one run of lr is missing: the rule waits for it, for every cell
    rows = table_rows(verdict)
    assert (
        "| 3 of 3 | 88.60 | +0.50 [" in rows["ema"] and "| 2 of 3 | 88.15 | +0.05 [" in rows["lr"]
    )
    assert all(
        "decided when all 9 runs are in (8 now) |" in rows[name] and "adopt**" not in rows[name]
        for name in ("ema", "lr")
    )
    lr_seed_2 = {**lines[-1], "run_id": study.run_ids("lr")[2], "final_holdout_accuracy": 0.886}
    rows = table_rows(judge_study(study, [*lines, lr_seed_2]))
    assert (
        "| 3 of 3 | 88.60 | +0.50 [" in rows["ema"] and "**adopt** | 570 | 0.95x |" in rows["ema"]
    )
    assert "| 3 of 3 | 88.30 | +0.20 [" in rows["lr"] and "**adopt** | — | — |" in rows["lr"]
    assert adopted(verdict) == [] and adopted(judge_study(study, [*lines, lr_seed_2])) == [
        "ema",
        "lr",
    ]
    rows = table_rows(judge_study(study, [*lines, {**lr_seed_2, "final_holdout_accuracy": 0.880}]))
    assert "| 3 of 3 | 88.10 | +0.00 [" in rows["lr"] and "keep base | — | — |" in rows["lr"]
    assert "not trained: speed only | 660 | 1.10x |" in rows["compile"]
    # its figure: a row per cell, every seed a dot, the rule's threshold at base's mean + 0.15
    (axis,) = plot_study(verdict).axes
    assert [label.get_text() for label in axis.get_yticklabels()] == [
        "base (3 of 3)",
        "ema (3 of 3)",
        "lr (2 of 3)",
    ]
    assert sum(len(dots.get_offsets()) for dots in axis.collections) == 8
    threshold = [line.get_xdata()[0] for line in axis.lines if line.get_linestyle() == ":"]
    assert threshold == pytest.approx([88.1 + 0.15])
    section = study_section(verdict, None, speeds)
    assert (
        "| rule: adopt at ≥ +0.15 |" in section and "none of its comparisons is primary" in section
    )
    assert (
        "No primary comparison" not in section
        and "(3 rounds of 20 steps each) on CPU: A" in section
    )


@pytest.mark.parametrize(
    "value, message", [("0", "adopt_at must be a positive"), ('"big"', "adopt_at must be")]
)
def test_a_bad_adoption_rule_is_one_clear_error(tmp_path, value, message):
    plan = RECIPE_PLAN.replace('folder = "recipe"', f'folder = "recipe"\nadopt_at = {value}')
    with pytest.raises(GridError, match=message):
        read_study(write_plan(tmp_path, plan, "recipe"))
    without_base = plan.replace("adopt_at = " + value, "adopt_at = 0.2").replace(
        "cells.base", "cells.plain"
    )
    with pytest.raises(GridError, match="needs a cell called 'base'"):
        read_study(
            write_plan(
                tmp_path, without_base.replace('minus = ["base"]', 'minus = ["plain"]'), "recipe"
            )
        )


TARGET_PLAN = """
question = "Does the fast recipe reach its targets?"
written = "before the runs"
folder = "fast"
dataset = "cifar10"
model = "resnet20"
recipe = "quick"
primary_metric = "final"

[cells.fast]
attention = "simam"
seeds = 3
target = 90.0
seconds = 900
[cells.longer]
attention = "simam"
recipe = "quick-4x"
seeds = 2
target = 91.5
"""


def test_the_target_table_decides_on_every_planned_seed_and_every_runs_time(tmp_path):
    study = read_study(write_plan(tmp_path, TARGET_PLAN, "fast"))
    assert (study.cells["fast"].target, study.cells["fast"].seconds) == (90.0, 900.0)
    assert (study.cells["longer"].target, study.cells["longer"].seconds) == (91.5, None)
    assert study.run_ids("fast")[0] == "cifar10-resnet20-simam-quick-seed0"

    def line(cell, seed, accuracy, seconds):
        return {
            "run_id": study.run_ids(cell)[seed],
            "final_test_accuracy": accuracy / 100,
            "device": "CPU: A, 2 logical cores",
            "command_seconds": seconds,
        }

    def rows(lines):
        table = target_table(judge_study(study, lines))
        return {row.split(" | ")[0].strip("| "): row for row in table.splitlines()}

    lines = [line("fast", 0, 90.4, 880.2), line("fast", 1, 89.9, 870.0)]
    row = rows(lines)["fast"]
    assert "| 2 of 3 | 90.40, 89.90 | 90.15 ± 0.35 | 90.0 |" in row
    assert row.count("decided when all 3 runs are in (2 now)") == 2 and "met" not in row
    assert "| 880, 870 | 900 |" in row
    row = rows([*lines, line("fast", 2, 89.9, 899.0)])["fast"]
    assert "90.07 ± 0.29 | 90.0 | **met** |" in row and row.endswith("| 900 | **met** |")
    row = rows([*lines, line("fast", 2, 89.6, 901.0)])["fast"]
    assert "| **missed** by 0.03 points |" in row and "**missed**: 1 of 3 runs over |" in row
    row = rows([*lines, line("fast", 2, 90.0, None)])["fast"]
    assert "| 880, 870, — | 900 | 1 run(s) not timed (resumed) |" in row
    longer = rows([line("longer", 0, 91.0, 1700.0), line("longer", 1, 91.4, 1750.0)])["longer"]
    assert "| quick-4x | 2 of 2 |" in longer and "**missed** by 0.30 points" in longer
    assert longer.endswith("| — | — |")
    section = study_section(judge_study(study, lines))
    assert "the target table above is its verdict once every run is in." in section
    assert "No primary comparison" not in section
    assert study_summary(judge_study(study, lines)).splitlines()[1:] == [
        "  fast (quick): 90.15%, 2 of 3 runs; target 90.0%: decided when all 3 runs are in "
        "(2 now); within 900 s: decided when all 3 runs are in (2 now)",
        "  longer (quick-4x): no run yet, 0 of 2 runs; target 91.5%: decided when all 2 runs "
        "are in (0 now)",
    ]
    assert target_table(judge_study(read_study(write_plan(tmp_path)), [])) == ""


@pytest.mark.parametrize(
    "change, message",
    [("target = 90.0", "target = 101"), ("seconds = 900", "seconds = -5")],
)
def test_a_bad_target_is_one_clear_error(tmp_path, change, message):
    key = message.split(" =")[0]
    with pytest.raises(GridError, match=f"{key} must be a positive number"):
        read_study(write_plan(tmp_path, TARGET_PLAN.replace(change, message), "fast"))


def test_a_run_judged_on_held_out_images_reports_that_accuracy(tmp_path, monkeypatch, capsys):
    path = write_plan(tmp_path, RECIPE_PLAN.replace("seeds = 3", "seeds = 1"), "recipe")

    def launch(spec, run_dir, extra_args, gpus_per_run=1, resume=False):
        final = fake_final(dataclasses.asdict(spec.config(extra_args)), 0.885, "holdout")
        script = f"open({str(run_dir / 'final.json')!r}, 'w').write({json.dumps(final)!r})"
        return [sys.executable, "-c", script]

    monkeypatch.setattr("simam.experiments.grid.launch_command", launch)
    assert main(["run", "--plan", str(path), "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert printed.count("finished, final holdout accuracy 88.50%") == 2


def test_the_fast_recipe_is_the_quick_recipe_with_the_adopted_changes_and_nothing_else():
    (verdict,) = [v for v in judge_studies(REPO / "results") if v.study.name == "tricks"]
    if not verdict.complete:
        pytest.skip("the tricks study is not complete: its rule has adopted nothing yet")
    base = verdict.study.cell_specs("base")[0].config()
    sized = {"iterations", "warmup", "eval_every", "checkpoint_every"}
    expected = {}
    for name in adopted(verdict):
        config = verdict.study.cell_specs(name)[0].config()
        for field in dataclasses.fields(config):
            value = getattr(config, field.name)
            if value != getattr(base, field.name):
                expected[field.name] = value
    changed = {
        field.name
        for field in dataclasses.fields(QUICK)
        if getattr(FAST, field.name) != getattr(QUICK, field.name)
    }
    assert changed - sized - {"recipe"} == set(expected) - sized
    for name, value in expected.items():
        if name not in sized:
            assert getattr(FAST, name) == value, name
    share = expected.get("warmup", base.warmup) / base.iterations
    for recipe in (FAST, FAST_30):
        assert recipe.warmup / recipe.iterations == pytest.approx(share, abs=1e-3)
        assert recipe.eval_every == recipe.iterations  # one evaluation, at the end
    assert {
        f.name
        for f in dataclasses.fields(QUICK)
        if getattr(FAST_30, f.name) != getattr(FAST, f.name)
    } == {"recipe", "iterations", "warmup", "eval_every"}
