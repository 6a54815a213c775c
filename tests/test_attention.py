"""The attention modules: shapes, parameter counts against formulas written from the papers'
architectures and against the SimAM paper's ResNet-50 figures, agreement with a direct computation,
gradients, memory formats, training and evaluation modes, the factory, and bad input."""

from __future__ import annotations

import math
from functools import partial

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from simam.attention import (
    CBAM,
    ECA,
    GlobalContext,
    SimAM,
    SqueezeExcite,
    create_attention,
    eca_kernel_size,
    list_attentions,
)

NAMES = ["none", "se", "cbam", "eca", "gc", "simam", "simam-exact"]
LEARNED = [SqueezeExcite, CBAM, ECA, GlobalContext]
BUILDERS = LEARNED + [SimAM, partial(SimAM, exact=True)]

# Output channels of the 16 bottleneck blocks of ImageNet ResNet-50 (stages of 3, 4, 6, 3 blocks),
# where SE, CBAM and ECA sit: after the last BN of the residual branch, before the add.
RESNET50_BLOCK_CHANNELS = [256] * 3 + [512] * 4 + [1024] * 6 + [2048] * 3


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def perturb_last_conv(module: GlobalContext) -> GlobalContext:
    """Move GC's zero-initialised last conv off zero, so the whole transform is exercised."""
    with torch.no_grad():
        for p in module.transform[-1].parameters():
            p.normal_(std=0.1)
    return module


# --- parameter formulas, from the architectures as the papers describe them -----------------------


def hidden_width(channels: int, reduction: int = 16) -> int:
    return max(1, channels // reduction)


def se_parameters(channels: int, bias: bool, reduction: int = 16) -> int:
    """Two FC layers C -> h -> C (weights C h each), biases h and C."""
    h = hidden_width(channels, reduction)
    return 2 * channels * h + (h + channels if bias else 0)


def cbam_parameters(channels: int, bias: bool = True, reduction: int = 16, kernel: int = 7) -> int:
    """The shared MLP (as SE), a k x k conv 2 -> 1 without bias, and a 1-channel BN
    (scale, shift)."""
    return se_parameters(channels, bias, reduction) + 2 * kernel * kernel + 2


def eca_kernel(channels: int) -> int:
    """t = (log2 C + 1) / 2, truncated, plus one if even (gamma = 2, b = 1)."""
    k = int((math.log2(channels) + 1) / 2)
    return k if k % 2 == 1 else k + 1


def gc_parameters(channels: int, reduction: int = 16) -> int:
    """Context conv C -> 1 (no bias), conv C -> h with bias, LayerNorm (h scales, h shifts),
    conv h -> C with bias."""
    h = hidden_width(channels, reduction)
    return channels + (channels * h + h) + 2 * h + (h * channels + channels)


CHANNEL_COUNTS = [1, 3, 16, 31, 64, 100, 256, 2048]


@pytest.mark.parametrize("channels", CHANNEL_COUNTS)
def test_parameter_counts_match_their_formulas(channels: int) -> None:
    assert count_parameters(SimAM(channels)) == 0
    assert count_parameters(SimAM(channels, exact=True)) == 0
    assert count_parameters(SqueezeExcite(channels)) == se_parameters(channels, bias=False)
    assert count_parameters(SqueezeExcite(channels, bias=True)) == se_parameters(
        channels, bias=True
    )
    assert count_parameters(SqueezeExcite(channels, reduction=4)) == se_parameters(
        channels, False, 4
    )
    assert count_parameters(CBAM(channels)) == cbam_parameters(channels)
    assert count_parameters(CBAM(channels, bias=False)) == cbam_parameters(channels, bias=False)
    assert count_parameters(CBAM(channels, kernel_size=3)) == cbam_parameters(channels, kernel=3)
    assert count_parameters(ECA(channels)) == eca_kernel(channels)
    assert count_parameters(GlobalContext(channels)) == gc_parameters(channels)
    assert count_parameters(GlobalContext(channels, reduction=4)) == gc_parameters(channels, 4)


def test_resnet50_totals_reproduce_simam_table_3() -> None:
    """SimAM paper, Table 3: parameters each module adds to ImageNet ResNet-50."""

    def total(build) -> int:
        return sum(count_parameters(build(c)) for c in RESNET50_BLOCK_CHANNELS)

    # Table 3 prints millions to 3 decimals, so "equal" means within rounding: 500 parameters.
    se = total(SqueezeExcite)
    assert se == 2_514_944  # sum of 2 C^2 / 16: FC layers without bias
    assert abs(se - 2.515e6) <= 500
    cbam = total(CBAM)
    assert cbam == 2_532_592  # MLP with biases, 7x7 conv without, BN: 2 C^2/16 + C + C/16 + 100
    assert abs(cbam - 2.533e6) <= 500
    # The other bias choice misses each figure, so the table counts SE without and CBAM with biases.
    assert total(lambda c: SqueezeExcite(c, bias=True)) == 2_530_992
    assert total(lambda c: CBAM(c, bias=False)) == 2_516_544

    # ECA: the adaptive rule gives k = 5 for C = 256..1024 and 7 for C = 2048, so
    # 3*5 + 4*5 + 6*5 + 3*7 = 86. Table 3 prints 88 and the ECA paper's abstract 80; neither follows
    # from the published rule on the block outputs, so we accept the 2-parameter gap to Table 3.
    eca = total(ECA)
    assert eca == 86
    assert abs(eca - 88) <= 2

    assert total(SimAM) == 0


@pytest.mark.parametrize(
    "channels, expected",
    [
        (1, 1),
        (2, 1),
        (16, 3),
        (64, 3),
        (100, 3),
        (128, 5),
        (256, 5),
        (512, 5),
        (1024, 5),
        (2048, 7),
        (4096, 7),
    ],
)
def test_eca_kernel_size(channels: int, expected: int) -> None:
    assert eca_kernel_size(channels) == expected
    assert eca_kernel_size(channels) == eca_kernel(channels)
    assert ECA(channels).kernel_size == expected


def test_eca_kernel_size_options() -> None:
    assert eca_kernel_size(64, gamma=1, b=0) == 7  # t = 6, rounded up to the odd 7
    assert ECA(64, kernel_size=9).kernel_size == 9
    assert count_parameters(ECA(64, kernel_size=9)) == 9
    for bad in (0, 4, -3):
        with pytest.raises(ValueError, match="odd"):
            ECA(64, kernel_size=bad)
    with pytest.raises(ValueError, match="gamma"):
        eca_kernel_size(64, gamma=0)
    with pytest.raises(ValueError, match="channels"):
        eca_kernel_size(0)


# --- shapes and behaviour ------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("channels", [1, 16, 64, 256])
@pytest.mark.parametrize("size", [1, 7, 32])
def test_shape_is_preserved(name: str, channels: int, size: int) -> None:
    x = torch.randn(2, channels, size, size)  # N = 2: CBAM's BN needs more than one value to train
    module = create_attention(name, channels)
    y = module(x)
    assert y.shape == x.shape
    assert y.dtype == x.dtype
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("build", [SqueezeExcite, ECA])
@pytest.mark.parametrize("shape", [(2, 16, 9), (2, 16, 3, 4, 5)])
def test_channel_attention_takes_any_number_of_spatial_dims(build, shape: tuple[int, ...]) -> None:
    x = torch.randn(shape)
    module = build(16)
    y = module(x)
    # The gate depends only on the spatial mean, so flattening space must not change the result.
    flat = module(x.flatten(2)).view(shape)
    torch.testing.assert_close(y, flat)


def test_se_matches_direct_computation() -> None:
    module = SqueezeExcite(32, reduction=4, bias=True)
    x = torch.randn(3, 32, 5, 6)
    w1, b1, w2, b2 = (
        module.reduce.weight,
        module.reduce.bias,
        module.expand.weight,
        module.expand.bias,
    )
    mean = x.mean(dim=(2, 3))
    gate = torch.sigmoid(torch.relu(mean @ w1.T + b1) @ w2.T + b2)
    torch.testing.assert_close(module(x), x * gate[:, :, None, None])


def test_eca_matches_direct_computation() -> None:
    channels, k = 20, 5
    module = ECA(channels, kernel_size=k)
    x = torch.randn(3, channels, 4, 4)
    w = module.conv.weight.view(k)
    # zero padding at both ends of the channel axis
    mean = F.pad(x.mean(dim=(2, 3)), (k // 2, k // 2))
    logits = sum(w[j] * mean[:, j : j + channels] for j in range(k))
    torch.testing.assert_close(module(x), x * torch.sigmoid(logits)[:, :, None, None])


def test_cbam_matches_direct_computation() -> None:
    module = CBAM(32, reduction=4).eval()
    with torch.no_grad():
        module.spatial_gate.norm.running_mean.fill_(0.3)
        module.spatial_gate.norm.running_var.fill_(2.0)
        module.spatial_gate.norm.weight.fill_(1.5)
        module.spatial_gate.norm.bias.fill_(-0.2)
    x = torch.randn(2, 32, 9, 9)
    first, second = module.channel_gate.mlp[0], module.channel_gate.mlp[2]

    def mlp(v: torch.Tensor) -> torch.Tensor:
        return torch.relu(v @ first.weight.T + first.bias) @ second.weight.T + second.bias

    after_channel = (
        x * torch.sigmoid(mlp(x.mean(dim=(2, 3))) + mlp(x.amax(dim=(2, 3))))[:, :, None, None]
    )
    maps = torch.stack([after_channel.amax(dim=1), after_channel.mean(dim=1)], dim=1)
    conv = F.conv2d(maps, module.spatial_gate.conv.weight, padding=3)
    norm = (conv - 0.3) / math.sqrt(2.0 + module.spatial_gate.norm.eps) * 1.5 - 0.2
    torch.testing.assert_close(module(x), after_channel * torch.sigmoid(norm))


def test_gc_matches_direct_computation() -> None:
    module = perturb_last_conv(GlobalContext(32, reduction=4))
    x = torch.randn(2, 32, 5, 7)
    logits = torch.einsum("nchw,c->nhw", x, module.context_logits.weight.view(32))
    weights = logits.flatten(1).softmax(dim=1).view(2, 5, 7)
    context = (x * weights[:, None]).sum(dim=(2, 3))
    conv1, norm, _, conv2 = module.transform
    hidden = context @ conv1.weight.view(8, 32).T + conv1.bias
    variance = hidden.var(1, unbiased=False, keepdim=True)
    hidden = (hidden - hidden.mean(1, keepdim=True)) / torch.sqrt(variance + norm.eps)
    hidden = torch.relu(hidden * norm.weight.view(8) + norm.bias.view(8))
    added = hidden @ conv2.weight.view(32, 8).T + conv2.bias
    torch.testing.assert_close(module(x), x + added[:, :, None, None])


def test_gc_starts_as_identity() -> None:
    x = torch.randn(2, 64, 7, 7)
    assert torch.equal(GlobalContext(64)(x), x)


def test_gc_with_one_hidden_channel_ignores_its_context() -> None:
    # C = 16 at reduction 16 leaves h = 1: LayerNorm over one value returns its shift,
    # whatever x is.
    module = perturb_last_conv(GlobalContext(16))
    a, b = torch.randn(2, 16, 5, 5), torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(module(a) - a, module(b) - b)


# --- gradients -----------------------------------------------------------------------------------

LEARNED_CASES = {
    "se": lambda: SqueezeExcite(64),
    "se-bias": lambda: SqueezeExcite(64, bias=True),
    "cbam": lambda: CBAM(64),
    "eca": lambda: ECA(64),
    # Perturbed: the zero-initialised last conv would otherwise block every gradient before it.
    "gc-perturbed": lambda: perturb_last_conv(GlobalContext(64)),
}


@pytest.mark.parametrize("case", list(LEARNED_CASES))
def test_every_parameter_receives_a_gradient(case: str) -> None:
    module = LEARNED_CASES[case]()
    x = torch.randn(2, 64, 7, 7, requires_grad=True)
    y = module(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"{case}: {name} got no gradient"


def test_gc_at_initialisation_trains_only_its_last_conv() -> None:
    module = GlobalContext(64)
    x = torch.randn(2, 64, 7, 7)
    y = module(x)
    (y * torch.randn_like(y)).sum().backward()
    last = {id(p) for p in module.transform[-1].parameters()}
    for name, p in module.named_parameters():
        assert (p.grad.abs().sum() > 0) == (id(p) in last), name


@pytest.mark.parametrize("name", ["simam", "simam-exact"])
def test_simam_passes_gradients_to_its_input(name: str) -> None:
    x = torch.randn(2, 16, 7, 7, requires_grad=True)
    y = create_attention(name, 16)(x)
    (y * torch.randn_like(y)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


# --- memory formats and modes --------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_channels_last_gives_the_same_output(name: str) -> None:
    module = create_attention(name, 32)
    if isinstance(module, GlobalContext):
        perturb_last_conv(module)
    x = torch.randn(2, 32, 9, 9)
    expected = module(x)
    torch.testing.assert_close(module(x.to(memory_format=torch.channels_last)), expected)
    module.to(memory_format=torch.channels_last)
    torch.testing.assert_close(module(x.to(memory_format=torch.channels_last)), expected)


@pytest.mark.parametrize("name", NAMES)
def test_training_and_evaluation_modes_both_work(name: str) -> None:
    module = create_attention(name, 32)
    x = torch.randn(4, 32, 8, 8)
    for _ in range(3):
        train_out = module.train()(x)
    eval_out = module.eval()(x)
    assert train_out.shape == eval_out.shape == x.shape
    assert torch.isfinite(train_out).all() and torch.isfinite(eval_out).all()
    if name == "cbam":
        # Evaluation uses the BN's running statistics, which training moved towards the batch's.
        norm = module.spatial_gate.norm
        assert norm.num_batches_tracked.item() == 3
        assert not torch.allclose(norm.running_mean, torch.zeros(1))
        # A single 1x1 sample is fine in evaluation, where BN needs no batch statistics.
        assert module(x[:1, :, :1, :1]).shape == (1, 32, 1, 1)
    else:
        torch.testing.assert_close(train_out, eval_out)


# --- factory -------------------------------------------------------------------------------------


def test_list_attentions() -> None:
    assert list_attentions() == NAMES


@pytest.mark.parametrize(
    "name, expected_type",
    [
        ("none", nn.Identity),
        ("simam", SimAM),
        ("simam-exact", SimAM),
        ("se", SqueezeExcite),
        ("cbam", CBAM),
        ("eca", ECA),
        ("gc", GlobalContext),
    ],
)
def test_create_attention_builds_every_name(name: str, expected_type: type) -> None:
    assert type(create_attention(name, 64)) is expected_type
    assert type(create_attention(name.upper().replace("-", "_"), 64)) is expected_type


def test_create_attention_passes_keyword_arguments_through() -> None:
    assert create_attention("se", 64, reduction=8).reduce.out_features == 8
    assert create_attention("se", 64, bias=True).reduce.bias is not None
    assert create_attention("cbam", 64, kernel_size=3).spatial_gate.conv.kernel_size == (3, 3)
    assert create_attention("eca", 64, kernel_size=7).kernel_size == 7
    assert create_attention("gc", 64, reduction=4).transform[0].out_channels == 16
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(
        create_attention("simam", None, lambda_=0.1)(x), SimAM(lambda_=0.1)(x)
    )
    torch.testing.assert_close(create_attention("simam-exact", 8)(x), SimAM(8, exact=True)(x))
    assert not torch.allclose(
        create_attention("simam", 8)(x), create_attention("simam-exact", 8)(x)
    )
    with pytest.raises(TypeError):
        create_attention("none", 8, reduction=16)


def test_create_attention_takes_a_class_or_a_partial() -> None:
    assert type(create_attention(SqueezeExcite, 64)) is SqueezeExcite
    assert create_attention(partial(SqueezeExcite, reduction=8), 64).reduce.out_features == 8
    assert create_attention(SimAM, 64, lambda_=0.1).lambda_ == 0.1
    with pytest.raises(TypeError, match="not an nn.Module"):
        create_attention(lambda channels: channels, 64)
    with pytest.raises(TypeError, match="a string, a module class or a partial"):
        create_attention(3, 64)


# --- PyTorch's and timm's module conventions ------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_factory_arguments_place_and_type_every_parameter(name: str) -> None:
    """Every module takes ``device`` and ``dtype`` like a ``torch.nn`` layer: on the meta device no
    memory is allocated, and in float64 every parameter and floating buffer is float64."""
    meta = create_attention(name, 64, device="meta")
    assert all(t.device.type == "meta" for t in [*meta.parameters(), *meta.buffers()])
    wide = create_attention(name, 64, dtype=torch.float64)
    tensors = [*wide.parameters(), *(b for b in wide.buffers() if b.is_floating_point())]
    assert all(t.dtype == torch.float64 for t in tensors)
    x = torch.randn(2, 64, 6, 6, dtype=torch.float64)
    assert wide(x).dtype == torch.float64


@pytest.mark.parametrize("name", NAMES)
def test_every_module_fills_a_squeeze_excite_slot(name: str) -> None:
    """timm's EfficientNet and MobileNetV3 blocks call ``se_layer(channels, act_layer=...)``, after
    probing ``se_layer(8, rd_ratio=1.0)``; every module accepts both."""
    create_attention(name, 8, rd_ratio=1.0)
    module = create_attention(name, 32, rd_ratio=0.25, act_layer=nn.SiLU)
    assert module(torch.randn(2, 32, 5, 5)).shape == (2, 32, 5, 5)


def test_rd_ratio_and_act_layer_shape_the_bottleneck() -> None:
    se = SqueezeExcite(32, rd_ratio=0.25, act_layer=nn.SiLU)
    assert se.reduce.out_features == 8 and isinstance(se.act, nn.SiLU)
    assert SqueezeExcite(40, rd_ratio=1 / 6).reduce.out_features == 7  # round(6.67)
    cbam = CBAM(32, rd_ratio=0.5, act_layer=nn.GELU)
    assert cbam.channel_gate.mlp[0].out_features == 16 and isinstance(
        cbam.channel_gate.mlp[1], nn.GELU
    )
    gc = GlobalContext(32, rd_ratio=0.125, act_layer=nn.SiLU)
    assert gc.transform[0].out_channels == 4 and isinstance(gc.transform[2], nn.SiLU)
    for ratio in (0, -0.5, 1.5, "1/4", True):
        with pytest.raises(ValueError, match="rd_ratio"):
            SqueezeExcite(32, rd_ratio=ratio)
    with pytest.raises(TypeError, match="act_layer"):
        SqueezeExcite(32, act_layer="relu")


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown attention 'sk'") as error:
        create_attention("sk", 64)
    for name in NAMES:
        assert name in str(error.value)


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("build", BUILDERS)
def test_bad_input_gives_clear_errors(build) -> None:
    module = build(16)
    with pytest.raises(ValueError, match="shape"):
        module(torch.randn(2, 16))
    with pytest.raises(ValueError, match="built for 16 channels, got input with 8"):
        module(torch.randn(2, 8, 5, 5))
    with pytest.raises(TypeError, match="floating-point"):
        module(torch.ones(2, 16, 5, 5, dtype=torch.int64))


@pytest.mark.parametrize("build", [CBAM, GlobalContext])
def test_spatial_modules_require_two_spatial_dims(build) -> None:
    module = build(16)
    for shape in [(2, 16, 9), (2, 16, 3, 4, 5)]:
        with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
            module(torch.randn(shape))


@pytest.mark.parametrize("build", BUILDERS)
def test_bad_construction_arguments(build) -> None:
    for channels in (0, -4, 2.5):
        with pytest.raises(ValueError, match="channels"):
            build(channels)


def test_cbam_spatial_batch_norm_moves_its_running_statistics_with_the_reference_momentum() -> None:
    """The authors' CBAM code builds the spatial gate's BatchNorm with momentum 0.01: after one
    training step its running mean is 1% of the batch's mean, not PyTorch's default 10%."""
    torch.manual_seed(0)
    module = CBAM(32)
    norm = module.spatial_gate.norm
    assert norm.momentum == 0.01
    x = torch.randn(4, 32, 8, 8) + 1.0
    captured = {}
    norm.register_forward_hook(
        lambda _, inputs, __: captured.setdefault("input", inputs[0].detach())
    )
    module.train()(x)
    batch_mean = captured["input"].mean()
    torch.testing.assert_close(
        norm.running_mean, (0.01 * batch_mean).reshape(1), rtol=1e-5, atol=1e-7
    )
