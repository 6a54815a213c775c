"""``python -m simam.bench roofline``: its parts on tiny sizes (the benchmark itself is a command,
timed where nothing else runs)."""

from __future__ import annotations

import json

import pytest
import torch

from simam.bench import roofline
from simam.bench.train import TrainerStep
from simam.config import Config


@pytest.mark.parametrize(
    "name, group",
    [
        ("aten::mkldnn_convolution", "convolutions"),
        ("aten::convolution_backward", "convolutions"),
        ("aten::native_batch_norm", "batch norm"),
        ("SimAMFunction", "SimAM"),
        ("Torch-Compiled Region: 0/0", "SimAM"),
        ("Optimizer.step#SGD.step", "optimizer"),
        ("aten::_foreach_add_", "optimizer"),
        ("aten::log_softmax", "loss"),
        ("aten::relu_", "the rest"),
    ],
)
def test_each_operator_falls_in_one_group(name, group):
    assert roofline.category(name) == group


def test_a_matrix_product_rate_is_positive_and_finite():
    rate = roofline.matmul_gflops(torch.float32, 64, 2)
    assert 0 < rate < float("inf")


def test_a_convolution_rate_counts_three_products_and_is_finite():
    rate = roofline.conv_gflops(8, 8, 4, torch.float32, 2)
    assert 0 < rate < float("inf")


def test_the_profile_shares_sum_to_one_and_name_the_convolutions():
    torch.manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    labels = torch.randint(0, 10, (64,))
    config = Config(
        model="resnet20",
        attention="simam",
        batch_size=16,
        device="cpu",
        amp=False,
        amp_dtype=None,
        channels_last=False,
        compile=False,
        compile_simam=False,
    )
    shares = roofline.profile_shares(TrainerStep.build(config, images, labels), 2)
    assert sum(shares.values()) == pytest.approx(1.0) and shares["convolutions"] > 0.2
    assert (
        roofline.loader_seconds_per_batch(TrainerStep.build(config, images, labels).loader, 2) > 0
    )


def test_the_command_writes_what_it_prints(tmp_path, capsys):
    out = tmp_path / "roofline.json"
    argv = [
        "--batch-size=8",
        "--iterations=1",
        "--rounds=1",
        "--warmup=0",
        "--matrix=64",
        "--profile-steps=1",
        "--threads=1",
        f"--out={out}",
    ]
    assert roofline.main(argv) == 0
    record = json.loads(out.read_text())
    assert capsys.readouterr().out.strip() == roofline.report(record)
    assert record["mflop_per_image"] > 200 and len(record["convolutions"]) == 6
    assert sum(record["shares"].values()) == pytest.approx(1.0)
    assert set(record["images_per_second"]) == {"trainer", "float32, SimAM eager"}
