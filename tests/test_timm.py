"""timm as a real client: SimAM and every baseline fill the attention slot of timm's ResNet blocks
(``attn_layer``) and the squeeze-excite slot of its EfficientNet blocks (``se_layer``), which build
them with PyTorch's factory arguments and timm's ``rd_ratio``/``act_layer``; they train there,
compile there, and :func:`simam.insert_attention` recognises timm's ResNet blocks."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from torch import nn

from simam import insert_attention
from simam.attention import CBAM, ECA, GlobalContext, SimAM, SqueezeExcite

timm = pytest.importorskip("timm", reason="timm is a test dependency: pip install -e '.[test]'")
from timm.models.resnet import BasicBlock, Bottleneck, ResNet  # noqa: E402

# timm's EfficientNet initialises every linear layer's bias, so SE goes there with biases (as
# timm's own SE has them); in the ResNet slot the course's default (no bias) works.
MODULES = {
    "simam": SimAM,
    "se": SqueezeExcite,
    "cbam": CBAM,
    "eca": ECA,
    "gc": GlobalContext,
}
SE_SLOT = {**MODULES, "se": partial(SqueezeExcite, bias=True)}


def small_resnet(attn_layer=None, block=BasicBlock) -> nn.Module:
    """A timm ResNet with one block per stage: every code path of the full one, compiles quickly."""
    return ResNet(
        block=block, layers=[1, 1, 1, 1], num_classes=10, block_args=dict(attn_layer=attn_layer)
    )


def lowers_the_loss(model: nn.Module, steps: int = 6) -> tuple[float, float]:
    """First and last loss of a few Adam steps on one fixed batch (the model can memorise it)."""
    torch.manual_seed(0)
    images, labels = torch.randn(16, 3, 32, 32), torch.randint(0, 10, (16,))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    model.train()
    for _ in range(steps):
        loss = nn.functional.cross_entropy(model(images), labels)
        optimiser.zero_grad()
        loss.backward()
        assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
        optimiser.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


@pytest.mark.parametrize("name", list(MODULES))
def test_every_module_fills_timm_resnet_attention_slot_and_trains(name: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model("resnet26", block_args=dict(attn_layer=MODULES[name]), num_classes=10)
    attention = [m for m in model.modules() if isinstance(m, MODULES[name])]
    assert len(attention) == 8  # one per bottleneck block of ResNet-26's [2, 2, 2, 2] stages
    first, last = lowers_the_loss(model)
    assert last < first


@pytest.mark.parametrize("name", list(SE_SLOT))
def test_every_module_fills_timm_efficientnet_squeeze_excite_slot_and_trains(name: str) -> None:
    torch.manual_seed(0)
    model = timm.create_model("efficientnet_b0", se_layer=SE_SLOT[name], num_classes=10)
    kind = MODULES[name]
    assert sum(isinstance(m, kind) for m in model.modules()) == 16  # every MBConv block of B0
    first, last = lowers_the_loss(model, steps=4)
    assert last < first


def test_timm_passes_its_block_activation_and_ratio_to_the_squeeze_excite_slot() -> None:
    """EfficientNet-B0's SE sees the block's SiLU and a hidden width of a quarter of the block's
    input channels (``rd_ratio = 0.25 / expansion``): the course's SE builds exactly that."""
    model = timm.create_model("efficientnet_b0", se_layer=SE_SLOT["se"], num_classes=10)
    se = model.blocks[1][0].se  # input 16 channels, expansion 6: 96 channels, hidden 4
    assert isinstance(se.act, nn.SiLU)
    assert (se.channels, se.reduce.out_features) == (96, 4)


def test_timm_builds_the_modules_in_the_asked_dtype() -> None:
    model = timm.create_model(
        "resnet26", block_args=dict(attn_layer=GlobalContext), dtype=torch.float64
    )
    assert {p.dtype for p in model.parameters()} == {torch.float64}


@pytest.mark.parametrize("name", list(MODULES))
def test_compiled_timm_resnet_with_attention_equals_eager(name: str) -> None:
    torch.manual_seed(0)
    model = small_resnet(MODULES[name])
    if name == "gc":  # move GC's zero-initialised last conv, so its whole transform counts
        for module in model.modules():
            if isinstance(module, GlobalContext):
                nn.init.normal_(module.transform[-1].weight, std=0.1)
    model.eval()
    x = torch.randn(4, 3, 32, 32)
    torch._dynamo.reset()
    compiled = torch.compile(model)
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("block, expected", [(BasicBlock, 4), (Bottleneck, 4)])
def test_insert_attention_recognises_timm_resnet_blocks(block, expected: int) -> None:
    model = small_resnet(block=block)
    insert_attention(model, "simam")
    inserted = [m for m in model.modules() if isinstance(m, SimAM)]
    assert len(inserted) == expected
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_insert_attention_refuses_a_timm_block_whose_slot_is_filled() -> None:
    with pytest.raises(ValueError, match="already have attention"):
        insert_attention(small_resnet(SqueezeExcite), "simam")
