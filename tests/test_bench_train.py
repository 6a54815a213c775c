"""``python -m simam.bench train`` on real CIFAR-10 with one timed step per pipeline: the table of both
pipelines for ResNet-20 with and without SimAM, and SimAM's share of the step in each."""

import re

import pytest

from simam.bench.train import main


@pytest.mark.cifar10
def test_prints_both_pipelines_and_simams_share_of_the_step(capsys, keep_thread_count):
    assert main(["--iterations", "1", "--warmup", "1", "--rounds", "1", "--workers", "0", "--threads", "1"]) == 0
    table = capsys.readouterr().out
    rows = re.findall(r"^\| resnet20 \| (none|simam) \| ([\d,]+) \| ([\d,]+) \| ([\d.]+)x \|$", table, re.MULTILINE)
    assert [row[0] for row in rows] == ["none", "simam"]
    for _, plain, ours, ratio in rows:
        plain, ours = float(plain.replace(",", "")), float(ours.replace(",", ""))
        assert plain > 0 and ours > 0 and float(ratio) == pytest.approx(ours / plain, abs=0.02)
    assert re.search(r"^\| resnet20 \| simam \| -?\d+% \| -?\d+% \|$", table, re.MULTILINE)
