"""``python -m simam.bench train``: its ``--config FIELD=VALUE`` read as the trainer reads its
options, and on real CIFAR-10 with one timed step per pipeline the table of both pipelines for
ResNet-20 with and without SimAM, and SimAM's share of the step in each."""

import importlib
import re

import pytest

import simam.bench
from simam.bench.train import main, parse_args, trainer_options
from simam.config import PAPER


@pytest.mark.cifar10
def test_prints_both_pipelines_and_simams_share_of_the_step(capsys, keep_thread_count):
    assert (
        main(
            [
                "--iterations",
                "1",
                "--warmup",
                "1",
                "--rounds",
                "1",
                "--workers",
                "0",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    rows = re.findall(
        r"^\| resnet20 \| (none|simam) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+)x \|$",
        table,
        re.MULTILINE,
    )
    assert [row[0] for row in rows] == ["none", "simam"]
    for _, plain, ours, ratio in rows:
        plain, ours = float(plain.replace(",", "")), float(ours.replace(",", ""))
        assert plain > 0 and ours > 0 and float(ratio) == pytest.approx(ours / plain, abs=0.02)
    assert re.search(r"^\| resnet20 \| simam \| -?\d+% \| -?\d+% \|$", table, re.MULTILINE)


def test_config_pairs_are_read_as_the_trainers_options(capsys):
    assert trainer_options(
        ["amp=false", "channels_last=true", "amp_dtype=bfloat16", "milestones=10,20"]
    ) == ["--no-amp", "--channels-last", "--amp-dtype", "bfloat16", "--milestones", "10,20"]
    args = parse_args(
        [
            "--cases",
            "resnet20:se",
            "--batch-size",
            "64",
            "--config",
            "lambda_=0.01",
            "--config",
            "compile_simam=false",
        ]
    )
    [config] = args.configs
    assert (
        config.model,
        config.attention,
        config.batch_size,
        config.lambda_,
        config.compile_simam,
    ) == ("resnet20", "se", 64, 0.01, False)
    # the device decides amp
    assert (config.recipe, config.iterations, config.amp) == (
        "paper",
        PAPER.iterations,
        None,
    )
    for pair, message in [
        ("amp", "--config 'amp': expected FIELD=VALUE"),
        ("batch_size=64", "--config 'batch_size=64': expected FIELD=VALUE"),
        ("lr=0", "lr must be positive, got 0.0"),
        ("amp=maybe", "unrecognized arguments: maybe"),
    ]:
        with pytest.raises(SystemExit):
            parse_args(["--config", pair])
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("name", simam.bench.names())
def test_every_benchmarks_help_describes_it_in_whole_sentences(name, capsys):
    module = importlib.import_module(f"simam.bench.{name}")
    with pytest.raises(SystemExit) as exit_:
        module.main(["--help"])
    assert exit_.value.code == 0
    description = capsys.readouterr().out.split("\n\n")[1]
    assert description[0].isupper() and description.rstrip().endswith("."), description
    assert "`" not in description, description
