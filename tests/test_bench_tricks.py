"""``python -m simam.bench tricks``: the cells it times are the plan's, built as the trainer
builds them, and its table is written whole (the timing itself is a command, run where nothing
else runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from simam.bench import tricks
from simam.bench.train import TrainerStep
from simam.config import Config
from simam.experiments.plan import GridError
from simam.experiments.study import read_study

PLAN = Path(__file__).resolve().parents[1] / "results" / "plans" / "tricks.toml"

TINY_PLAN = """order = 1
question = "q"
written = "before the runs"
dataset = "cifar10"
model = "resnet20"
recipe = "quick"
options = ["--iterations", "100", "--warmup", "10", "--eval-every", "100"]

[cells.base]
attention = "simam"
seeds = 1

[cells.ema]
attention = "simam"
seeds = 1
options = ["--ema", "0.9", "--label-smoothing", "0.2"]
"""


def test_each_cell_is_the_trainer_configuration_its_options_ask_for():
    configs = tricks.cell_configs(read_study(PLAN), None)
    assert list(configs)[-2:] == ["channels_last", "compile"]
    base = configs["base"]
    assert (base.recipe, base.holdout, base.label_smoothing, base.ema) == ("quick", 5000, 0.1, 0.0)
    assert configs["smoothing_02"].label_smoothing == 0.2 and configs["ema"].ema == 0.998
    assert configs["translate_2"].pad_mode == "reflect" and configs["translate_2"].padding == 2
    assert configs["channels_last"].channels_last and not base.channels_last
    assert configs["compile"].compile and not base.compile


def test_a_smaller_batch_scales_every_cell_alike():
    configs = tricks.cell_configs(read_study(PLAN), 32, ())
    assert configs["base"].batch_size == 32 and configs["batch_256"].batch_size == 64


def test_a_plan_without_a_base_cell_or_an_unknown_pipeline_is_refused(tmp_path):
    with pytest.raises(GridError, match="no speed-only pipeline 'fused'"):
        tricks.cell_configs(read_study(PLAN), None, ("fused",))
    plan = tmp_path / "nobase.toml"
    plan.write_text(TINY_PLAN.replace("[cells.base]", "[cells.plain]"))
    with pytest.raises(GridError, match="no cell called 'base'"):
        tricks.cell_configs(read_study(plan), None)


def test_the_step_keeps_the_moving_average_the_config_asks_for():
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (32,))
    config = Config(
        model="resnet20",
        attention="simam",
        batch_size=8,
        device="cpu",
        amp=False,
        amp_dtype=None,
        channels_last=False,
        compile=False,
        compile_simam=False,
        ema=0.9,
        label_smoothing=0.2,
    )
    step = TrainerStep.build(config, images, labels)
    start = step.average.stem[0].weight.clone()
    run = step.steps()
    for _ in range(3):
        next(run)
    average, model = step.average.stem[0].weight, step.model.stem[0].weight
    assert not torch.equal(average, start) and not torch.equal(average, model)
    assert step.loader.batch_size == 8


def test_the_command_times_every_cell_and_writes_its_table(tmp_path, capsys):
    plan = tmp_path / "tiny.toml"
    plan.write_text(TINY_PLAN)
    out = tmp_path / "speed" / "throughput.json"
    argv = [
        f"--plan={plan}",
        "--iterations=1",
        "--rounds=1",
        "--warmup=0",
        "--batch-size=8",
        "--speed-only=channels_last",
        "--threads=1",
        f"--out={out}",
    ]
    assert tricks.main(argv) == 0
    record = json.loads(out.read_text())
    assert [row["cell"] for row in record["rows"]] == ["base", "ema", "channels_last"]
    assert record["rows"][0]["ratio"] == 1.0 and record["plan"] == "tiny"
    assert all(row["images_per_second"] > 0 for row in record["rows"])
    assert "| ema |" in capsys.readouterr().out
