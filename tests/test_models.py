"""The CIFAR networks: every model with every attention module builds, runs forward and backward,
puts its attention where the reference code does, and has the parameter count that its
architecture table gives (counted here by hand, independently of the modules)."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from simam.attention import create_attention, list_attentions
from simam.models import (
    MobileNetV2,
    PreActResNet,
    ResNet,
    WideResNet,
    count_parameters,
    create_model,
    list_models,
)

ATTENTIONS = list_attentions()
BIG = {"resnet164", "preresnet164", "wrn28_10"}  # forward/backward with none and simam only


pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------------
# Parameter counts from the architecture tables. Each function gives the count of the network
# without attention and, per block, the channels its attention module sees at the SimAM site
# (after the 3x3 or depthwise convolution) and at the end of the branch.


def conv(cin: int, cout: int, kernel: int, groups: int = 1) -> int:
    return cin // groups * cout * kernel * kernel


def bn(channels: int) -> int:
    return 2 * channels


def resnet_count(
    depth: int, bottleneck: bool, classes: int, preact: bool
) -> tuple[int, list[tuple[int, int]]]:
    """He et al. 2016 (a/b): 3x3 stem conv (16), three stages (16, 32, 64 planes), BN after every
    conv (post-activation) or before it (pre-activation, with one more BN at the end); projection
    shortcuts: 1x1 conv + BN (post-activation) or 1x1 conv (pre-activation)."""
    per_stage = (depth - 2) // (9 if bottleneck else 6)
    expansion = 4 if bottleneck else 1
    total = conv(3, 16, 3) + (0 if preact else bn(16))
    sites, cin = [], 16
    for stage, planes in enumerate((16, 32, 64)):
        for block in range(per_stage):
            out = planes * expansion
            if bottleneck:
                total += conv(cin, planes, 1) + conv(planes, planes, 3) + conv(planes, out, 1)
                total += bn(cin if preact else out) + 2 * bn(planes)
            else:
                total += (
                    conv(cin, planes, 3)
                    + conv(planes, planes, 3)
                    + bn(cin if preact else planes)
                    + bn(planes)
                )
            if (stage > 0 and block == 0) or cin != out:
                total += conv(cin, out, 1) + (0 if preact else bn(out))
            sites.append((planes, out))
            cin = out
    total += (bn(cin) if preact else 0) + cin * classes + classes
    return total, sites


def wrn_count(depth: int, k: int, classes: int) -> tuple[int, list[tuple[int, int]]]:
    """Zagoruyko & Komodakis 2016: stem conv (16), stages of 16k, 32k, 64k, pre-activation blocks,
    1x1 conv shortcuts where the shape changes, final BN."""
    total, sites, cin = conv(3, 16, 3), [], 16
    for stage, width in enumerate((16 * k, 32 * k, 64 * k)):
        for block in range((depth - 4) // 6):
            total += bn(cin) + conv(cin, width, 3) + bn(width) + conv(width, width, 3)
            if (stage > 0 and block == 0) or cin != width:
                total += conv(cin, width, 1)
            sites.append((width, width))
            cin = width
    return total + bn(cin) + cin * classes + classes, sites


MOBILENETV2_TABLE = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def mobilenetv2_count(classes: int) -> tuple[int, list[tuple[int, int]], int]:
    """Sandler et al. 2018 Table 2 (CIFAR strides change no weights), expansion conv in every block,
    1x1 conv + BN shortcut in stride-1 blocks that change the channel count (reference code).
    Also returns the parameters of those shortcuts."""
    total, sites, cin, shortcuts = conv(3, 32, 3) + bn(32), [], 32, 0
    for t, c, n, s in MOBILENETV2_TABLE:
        for block in range(n):
            hidden = cin * t
            total += (
                conv(cin, hidden, 1)
                + bn(hidden)
                + conv(hidden, hidden, 3, groups=hidden)
                + bn(hidden)
            )
            total += conv(hidden, c, 1) + bn(c)
            if (s if block == 0 else 1) == 1 and cin != c:
                shortcuts += conv(cin, c, 1) + bn(c)
            sites.append((hidden, c))
            cin = c
    total += shortcuts + conv(320, 1280, 1) + bn(1280) + 1280 * classes + classes
    return total, sites, shortcuts


def expected(name: str, classes: int = 10) -> tuple[int, list[tuple[int, int]]]:
    if name.startswith("preresnet"):
        depth = int(name.removeprefix("preresnet"))
        return resnet_count(depth, depth == 164, classes, preact=True)
    if name.startswith("resnet"):
        depth = int(name.removeprefix("resnet"))
        return resnet_count(depth, depth == 164, classes, preact=False)
    if name.startswith("wrn"):
        depth, k = map(int, name.removeprefix("wrn").split("_"))
        return wrn_count(depth, k, classes)
    return mobilenetv2_count(classes)[:2]


@functools.cache
def built_count(name: str, attention: str = "none", classes: int = 10, **kwargs) -> int:
    # The wide networks are built on the meta device, which skips drawing their millions of
    # initial weights; the thin deep ones build faster on the CPU.
    with torch.device("meta" if name.startswith("wrn") else "cpu"):
        return count_parameters(create_model(name, attention, classes, **kwargs))


@functools.cache
def attention_count(attention: str, channels: int) -> int:
    return count_parameters(create_attention(attention, channels))


# --------------------------------------------------------------------------------------------------


def test_list_models_and_unknown_names():
    assert list_models() == [
        "resnet20",
        "resnet32",
        "resnet44",
        "resnet56",
        "resnet110",
        "resnet164",
        "preresnet20",
        "preresnet56",
        "preresnet110",
        "preresnet164",
        "wrn16_8",
        "wrn28_10",
        "mobilenetv2",
    ]
    with pytest.raises(ValueError, match="unknown model 'resnet18'; known: resnet20, resnet32"):
        create_model("resnet18")
    assert isinstance(create_model("WRN-16-8"), WideResNet)  # case, '-' and '_' do not matter
    with pytest.raises(ValueError, match="unknown attention"):
        create_model("resnet20", "nonlocal")
    with pytest.raises(ValueError, match="6n \\+ 2"):
        ResNet(21)
    with pytest.raises(ValueError, match="9n \\+ 2"):
        PreActResNet(57, block="bottleneck")


@pytest.mark.parametrize("name", list_models())
def test_parameter_counts_match_the_architecture_tables(name):
    count, sites = expected(name)
    assert built_count(name) == count
    # SimAM adds nothing
    assert built_count(name, "simam") == built_count(name, "simam-exact") == count
    # the big ones share their blocks with smaller ones
    for attention in ATTENTIONS if name not in BIG else []:
        at_conv = attention.startswith("simam")
        added = sum(
            attention_count(attention, simam_site if at_conv else end_site)
            for simam_site, end_site in sites
        )
        assert built_count(name, attention) == count + added, attention


@pytest.mark.parametrize("name", ["resnet20", "preresnet164", "wrn16_8", "mobilenetv2"])
def test_parameter_counts_for_100_classes(name):
    assert built_count(name, classes=100) == expected(name, 100)[0]


# Published sizes for 10 classes: He et al. 2016 (ResNet-20/56/110, with zero-padding shortcuts;
# ResNet-164 and pre-activation ResNet-164, "Identity Mappings"), Zagoruyko & Komodakis 2016 Table
# (WRN-16-8, WRN-28-10), Sandler et al. 2018 (MobileNetV2: 3.4M with the 1000-class classifier,
# 2.2M with a 10-class one, and without projection shortcuts; see below).
PUBLISHED = {
    "resnet20": 0.27e6,
    "resnet56": 0.85e6,
    "resnet110": 1.7e6,
    "resnet164": 1.7e6,
    "preresnet164": 1.7e6,
    "wrn16_8": 11.0e6,
    "wrn28_10": 36.5e6,
    "mobilenetv2": 2.2e6,
}


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_parameter_counts_are_within_2_percent_of_the_published_sizes(name):
    count = built_count(name)
    if name == "mobilenetv2":
        # The reference code's MobileNetV2 adds a residual through 1x1 conv + BN where a stride-1
        # block changes its channel count; the published size counts no such shortcut.
        shortcuts = mobilenetv2_count(10)[2]
        assert shortcuts == 59_152 and abs(count / PUBLISHED[name] - 1) > 0.02
        count -= shortcuts
    assert abs(count / PUBLISHED[name] - 1) < 0.02, count


def small_models() -> list[tuple[str, str]]:
    cases = [(name, attention) for name in list_models() for attention in ATTENTIONS]
    return [
        (name, attention)
        for name, attention in cases
        if name not in BIG or attention in ("none", "simam")
    ]


def build(name: str, attention: str, **kwargs) -> nn.Module:
    """A model of the list, or a one-block-per-stage bottleneck network ("resnet11b",
    "preresnet11b") that covers the bottleneck blocks with every attention module cheaply."""
    if name == "resnet11b":
        return ResNet(11, attention=attention, block="bottleneck", **kwargs)
    if name == "preresnet11b":
        return PreActResNet(11, attention=attention, block="bottleneck", **kwargs)
    return create_model(name, attention, **kwargs)


@pytest.mark.parametrize(
    "name, attention",
    small_models()
    + [(name, attention) for name in ("resnet11b", "preresnet11b") for attention in ATTENTIONS],
)
def test_forward_backward_reaches_every_parameter(name, attention):
    # With the default reduction 16, the SE, CBAM and GC modules of 16-channel blocks have a single
    # hidden unit: behind a ReLU it can be dead for a whole 2-image batch, and GC's LayerNorm over
    # one value is constant, so GC's context path there never gets a gradient (a property of GC at
    # 16 channels, not of the wiring checked here). Reduction 4 keeps four hidden units.
    kwargs = {"reduction": 4} if attention in ("se", "cbam", "gc") else {}
    torch.manual_seed(0)
    model = build(name, attention, **kwargs).train()
    with torch.no_grad():  # zero-initialised weights (GC's last conv) would stop the gradient to
        for p in model.parameters():  # everything before them; give them values to check the wiring
            if not p.any():
                p.normal_(0, 0.1)
    # MobileNetV2 downsamples 8 times: keep 2x2 maps for GC's softmax
    size = 16 if name == "mobilenetv2" else 8
    out = model(torch.randn(2, 3, size, size))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    F.cross_entropy(out, torch.tensor([1, 7])).backward()
    for parameter_name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, parameter_name


def test_attention_kwargs_reach_every_module():
    model = create_model("resnet20", "simam", lambda_=0.25)
    modules = [m for m in model.modules() if type(m).__name__ == "SimAM"]
    assert len(modules) == 9 and all(m.lambda_ == 0.25 for m in modules)
    assert built_count("resnet20", "se", reduction=4) > built_count("resnet20", "se")


def captured(model: nn.Module, x: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of the named submodules and the input of ``attention`` in one forward pass."""
    seen = {}
    handles = [
        model.get_submodule(n).register_forward_hook(
            lambda m, i, o, n=n: seen.setdefault(n, o.clone())
        )
        for n in names
    ]
    handles.append(
        model.get_submodule(names[0].rsplit(".", 1)[0] + ".attention").register_forward_hook(
            lambda m, i, o: seen.setdefault("attention", i[0].clone())
        )
    )
    model(x)
    for handle in handles:
        handle.remove()
    return seen


# (model, first block, where SimAM goes, where the other modules go): the reference code's places
PLACES = [
    (lambda a, **kw: ResNet(20, attention=a, **kw), "stages.1.0", "conv2", "bn2"),
    (
        lambda a, **kw: ResNet(11, attention=a, block="bottleneck", **kw),
        "stages.1.0",
        "conv2",
        "bn3",
    ),
    (lambda a, **kw: PreActResNet(20, attention=a, **kw), "stages.1.0", "conv2", "conv2"),
    (
        lambda a, **kw: PreActResNet(11, attention=a, block="bottleneck", **kw),
        "stages.1.0",
        "conv2",
        "conv3",
    ),
    (lambda a, **kw: WideResNet(10, 1, attention=a, **kw), "stages.1.0", "conv2", "conv2"),
    (lambda a, **kw: MobileNetV2(attention=a, **kw), "blocks.3", "depthwise", "bn3"),
]


@pytest.mark.parametrize("make, block, simam_place, other_place", PLACES)
@pytest.mark.parametrize("attention", ["simam", "se", "gc"])
def test_attention_sits_where_the_reference_code_puts_it(
    make, block, simam_place, other_place, attention
):
    torch.manual_seed(0)
    model = make(attention).eval()
    place = f"{block}.{simam_place if attention == 'simam' else other_place}"
    seen = captured(model, torch.randn(2, 3, 16, 16), [place])
    assert torch.equal(seen["attention"], seen[place])


@pytest.mark.parametrize(
    "name, attention", [("resnet20", "simam"), ("mobilenetv2", "cbam"), ("preresnet20", "eca")]
)
def test_channels_last_gives_the_same_output(name, attention):
    torch.manual_seed(0)
    model = create_model(name, attention).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        expected_out = model(x)
        model = model.to(memory_format=torch.channels_last)
        out = model(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected_out, atol=1e-4, rtol=1e-4)


def test_a_model_runs_under_torch_compile():
    """The smallest ResNet with SimAM through TorchInductor on the CPU (a compile takes seconds)."""
    torch.manual_seed(0)
    model = ResNet(8, attention="simam").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model)(x), model(x), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("make, block, conv_place, end_place", PLACES)
@pytest.mark.parametrize("attention", ["simam", "se"])
@pytest.mark.parametrize("place", ["after_conv", "end_of_branch"])
def test_place_puts_any_module_at_either_place(
    make, block, conv_place, end_place, attention, place
):
    torch.manual_seed(0)
    model = make(attention, place=place).eval()
    layer = f"{block}.{conv_place if place == 'after_conv' else end_place}"
    seen = captured(model, torch.randn(2, 3, 16, 16), [layer])
    assert torch.equal(seen["attention"], seen[layer])


@pytest.mark.parametrize("attention, moved_to", [("simam", "end_of_branch"), ("eca", "after_conv")])
def test_a_moved_module_changes_the_block_and_keeps_the_state_dict_keys(attention, moved_to):
    torch.manual_seed(0)
    paper = create_model("resnet20", attention)
    moved = create_model("resnet20", attention, place=moved_to)
    assert list(moved.state_dict()) == list(paper.state_dict())
    moved.load_state_dict(paper.state_dict())  # the same weights: only the place differs
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():  # training mode: each batch norm standardises what reaches it
        assert not torch.allclose(paper.train()(x), moved.train()(x), atol=1e-3)


@pytest.mark.parametrize("name", list_models())
def test_every_network_takes_a_module_class_or_a_partial(name):
    from simam.attention import SimAM, SqueezeExcite

    simams = [
        m
        for m in create_model(name, functools.partial(SimAM, lambda_=0.1)).modules()
        if isinstance(m, SimAM)
    ]
    assert simams and all(m.lambda_ == 0.1 for m in simams)
    assert any(isinstance(m, SqueezeExcite) for m in create_model(name, SqueezeExcite).modules())
    with pytest.raises(ValueError, match="place must be one of"):
        create_model(name, "simam", place="before_conv")


def test_an_option_no_part_of_the_network_takes_is_one_clear_error():
    with pytest.raises(
        TypeError, match="attention 'none' takes no option 'dropout' .*its options: rd_ratio"
    ):
        create_model("resnet20", dropout=0.3)  # WRN's option, given to a ResNet
    assert create_model("wrn16_8", dropout=0.1).stages[0][0].dropout.p == 0.1
