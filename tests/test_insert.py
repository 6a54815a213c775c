"""insert_attention: the course's modules in torchvision's ResNets, at the paper's places, checked
against each block computed by hand; the parameters it adds; what it refuses."""

from __future__ import annotations

from functools import partial

import pytest
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck

from simam import count_parameters, insert_attention
from simam.attention import CBAM, ECA, GlobalContext, SimAM, SqueezeExcite, create_attention
from simam.models import residual_blocks


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def by_hand_basic(
    block: BasicBlock, x: torch.Tensor, after_conv: nn.Module | None, end: nn.Module | None
) -> torch.Tensor:
    conv2 = block.conv2[0] if after_conv is not None else block.conv2
    bn2 = block.bn2[0] if end is not None else block.bn2
    out = torch.relu(block.bn1(block.conv1(x)))
    out = conv2(out)
    if after_conv is not None:
        out = after_conv(out)
    out = bn2(out)
    if end is not None:
        out = end(out)
    return torch.relu(out + x)


@pytest.mark.parametrize("attention", ["simam", "se", "cbam", "eca", "gc", "simam-exact"])
def test_a_basic_block_computes_the_paper_placement(attention: str) -> None:
    block = BasicBlock(16, 16)
    insert_attention(block, attention)
    block.eval()
    x = torch.randn(2, 16, 8, 8)
    if attention.startswith("simam"):
        expected = by_hand_basic(block, x, after_conv=block.conv2[1], end=None)
    else:
        expected = by_hand_basic(block, x, after_conv=None, end=block.bn2[1])
    torch.testing.assert_close(block(x), expected)


def test_a_bottleneck_gets_simam_after_its_3x3_conv_and_se_after_its_last_norm() -> None:
    simam_block, se_block = Bottleneck(64, 16), Bottleneck(64, 16)
    insert_attention(simam_block, "simam")
    insert_attention(se_block, "se")
    assert isinstance(simam_block.conv2[1], SimAM) and simam_block.conv2[1].channels == 16
    assert isinstance(se_block.bn3[1], SqueezeExcite) and se_block.bn3[1].channels == 64
    assert isinstance(simam_block.bn3, nn.BatchNorm2d) and isinstance(se_block.conv2, nn.Conv2d)


@pytest.mark.parametrize("position, kind", [("after_conv", "conv2"), ("end_of_branch", "bn2")])
def test_position_overrides_the_paper_placement(position: str, kind: str) -> None:
    block = BasicBlock(16, 16)
    insert_attention(block, "eca", position=position)
    assert isinstance(getattr(block, kind)[1], ECA)


def test_resnet18_gets_one_module_per_block_on_its_device_and_dtype_and_still_trains() -> None:
    model = torchvision.models.resnet18(num_classes=10).double()
    insert_attention(model, CBAM)
    modules = [m for m in model.modules() if isinstance(m, CBAM)]
    assert len(modules) == 8 and len(residual_blocks(model)) == 8
    assert {p.dtype for m in modules for p in m.parameters()} == {torch.float64}
    images, labels = torch.randn(8, 3, 32, 32, dtype=torch.float64), torch.randint(0, 10, (8,))
    optimiser = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(5):
        loss = nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for m in modules for p in m.parameters())


def test_resnet50_with_each_module_adds_its_blocks_parameters() -> None:
    with torch.device("meta"):
        base = count_parameters(torchvision.models.resnet50())
    for attention in ("se", "cbam", "eca", "gc", "simam"):
        with torch.device("meta"):
            model = torchvision.models.resnet50()
        insert_attention(model, attention)
        per_block = sum(
            count_parameters(create_attention(attention, b.conv3.out_channels, device="meta"))
            for _, b, _ in residual_blocks(model)
        )
        assert count_parameters(model) - base == per_block
    assert per_block == 0  # SimAM, the last one


def test_weights_loaded_before_inserting_stay_where_they_were() -> None:
    model = torchvision.models.resnet18()
    conv = model.layer2[0].conv2.weight.detach().clone()
    insert_attention(model, "simam")
    assert torch.equal(model.state_dict()["layer2.0.conv2.0.weight"], conv)


def test_refuses_what_it_cannot_tell() -> None:
    with pytest.raises(ValueError, match="found no residual block in VGG"):
        insert_attention(torchvision.models.vgg11(), "simam")
    model = torchvision.models.resnet18()
    insert_attention(model, "simam")
    with pytest.raises(ValueError, match="8 blocks already have attention"):
        insert_attention(model, "se")
    with pytest.raises(ValueError, match="position"):
        insert_attention(torchvision.models.resnet18(), "se", position="before_conv")
    with pytest.raises(ValueError, match="unknown attention"):
        insert_attention(torchvision.models.resnet18(), "sk")


def test_keyword_arguments_reach_every_module() -> None:
    model = insert_attention(torchvision.models.resnet18(), "simam", lambda_=0.1)
    assert {m.lambda_ for m in model.modules() if isinstance(m, SimAM)} == {0.1}
    model = insert_attention(torchvision.models.resnet18(), GlobalContext, reduction=4)
    assert {
        m.transform[0].out_channels * 4 == m.channels
        for m in model.modules()
        if isinstance(m, GlobalContext)
    } == {True}


class Gate(nn.Module):
    """A user's own attention: a plain module class, without device or dtype arguments."""

    def __init__(self, channels: int, scale: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels, 1, 1), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.weight)


@pytest.mark.parametrize(
    "attention",
    [Gate, partial(Gate, scale=2.0), partial(SimAM, lambda_=0.1), SqueezeExcite],
    ids=[
        "plain class",
        "partial of a plain class",
        "partial with factory arguments",
        "class with factory arguments",
    ],
)
def test_any_module_class_or_partial_goes_in_on_the_blocks_device_and_dtype(attention) -> None:
    model = torchvision.models.resnet18(num_classes=10).double()
    insert_attention(model, attention)
    built = type(create_attention(attention, 8))
    modules = [m for m in model.modules() if isinstance(m, built)]
    assert len(modules) == 8
    assert {p.dtype for m in modules for p in m.parameters()} <= {torch.float64}
    assert model(torch.randn(2, 3, 32, 32, dtype=torch.float64)).dtype == torch.float64
    if built is Gate:  # at the end of the branch, sized to the block's channels
        assert [m.weight.shape[0] for m in modules] == [
            b.bn2[0].num_features for _, b, _ in residual_blocks(model)
        ]
