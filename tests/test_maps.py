"""Attention maps: Grad-CAM against the class activation map it reduces to, on every attention
module, on blank images and bad input, leaving the model untouched; SimAM's weights against the
modules' own outputs; the reductions; the figure; and a run on real CIFAR-10 test images.

All on the CPU with one thread and random networks (a map's correctness does not need a trained
network); the real-data test is skipped when ``SIMAM_DATA`` does not hold CIFAR-10."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from simam.attention.simam import SIGMOID_HALF, SimAM, simam_exact, simam_reference
from simam.data import CIFAR10_MEAN, CIFAR10_STD, CifarLoader, load_cifar, load_class_names
from simam.energy import importance
from simam.maps import (
    channel_mean_map,
    grad_cam,
    last_stage,
    load_image,
    plot_attention_maps,
    simam_modules,
    simam_weights,
    widest_channel_map,
)
from simam.models import create_model
from simam.settings import data_root

ATTENTIONS = ["none", "se", "cbam", "eca", "gc", "simam", "simam-exact"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(autouse=True)
def seed() -> None:
    torch.manual_seed(0)


class PoolAndLinear(nn.Module):
    """Feature maps -> ``features`` -> global average pool -> linear: Grad-CAM of ``features`` is
    the class activation map ``sum_k w_ck A^k`` (Zhou et al., CVPR 2016) up to a positive factor."""

    def __init__(self, channels: int, classes: int, features: nn.Module | None = None) -> None:
        super().__init__()
        self.features = features if features is not None else nn.Identity()
        self.classifier = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


class SideBranch(PoolAndLinear):
    """A layer that runs but whose output the logits ignore."""

    def __init__(self) -> None:
        super().__init__(channels=3, classes=2)
        self.side = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.side(x)
        return super().forward(x)


def class_activation_map(
    model: PoolAndLinear, features: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """ReLU(sum_k w_ck A^k), (N, 1, h, w)."""
    weights = model.classifier.weight[classes]  # (N, K)
    return F.relu(torch.einsum("nk,nkhw->nhw", weights, features))[:, None]


def normalised(maps: torch.Tensor) -> torch.Tensor:
    return maps / maps.amax(dim=(-2, -1), keepdim=True)


def no_hooks_left(model: nn.Module) -> bool:
    return all(
        not (m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks)
        for m in model.modules()
    )


# --------------------------------------------------------------------------------------------------
# Grad-CAM


@torch.no_grad()
def test_grad_cam_is_the_class_activation_map_of_pool_and_linear() -> None:
    model = PoolAndLinear(channels=6, classes=4)
    x = torch.randn(5, 6, 7, 9)
    result = grad_cam(model, x, target_layer="features")  # no_grad outside must not matter
    predicted = model(x).argmax(dim=1)
    assert torch.equal(result.classes, predicted)
    expected = normalised(class_activation_map(model, x, predicted))[:, 0]
    assert result.maps.shape == (5, 7, 9)
    torch.testing.assert_close(result.maps, expected, atol=1e-6, rtol=1e-5)


def test_grad_cam_upsamples_after_the_relu() -> None:
    """Coarse 4x4 maps: ReLU on the coarse map, bilinear upsampling to 8x8, then the
    maximum -> 1."""
    model = PoolAndLinear(channels=3, classes=2, features=nn.AvgPool2d(2))
    x = torch.randn(4, 3, 8, 8)
    classes = torch.tensor([0, 1, 1, 0])
    result = grad_cam(model, x, target_class=classes, target_layer="features")
    coarse = class_activation_map(model, F.avg_pool2d(x, 2), classes).detach()
    expected = normalised(F.interpolate(coarse, size=(8, 8), mode="bilinear", align_corners=False))[
        :, 0
    ]
    torch.testing.assert_close(result.maps, expected, atol=1e-6, rtol=1e-5)
    assert torch.equal(result.classes, classes)


def test_grad_cam_target_class_changes_the_map() -> None:
    model = PoolAndLinear(channels=6, classes=4)
    x = torch.randn(3, 6, 8, 8)
    first = grad_cam(model, x, target_class=0, target_layer="features").maps
    second = grad_cam(model, x, target_class=1, target_layer="features").maps
    assert (first - second).abs().max() > 0.1
    for cls, maps in ((0, first), (1, second)):
        expected = normalised(class_activation_map(model, x, torch.full((3,), cls)).detach())[:, 0]
        torch.testing.assert_close(maps, expected, atol=1e-6, rtol=1e-5)
    network = create_model("resnet20", attention="simam").eval()
    images = torch.randn(2, 3, 32, 32)
    assert (
        grad_cam(network, images, 0).maps - grad_cam(network, images, 5).maps
    ).abs().max() > 0.01


def test_grad_cam_without_positive_evidence_is_zero() -> None:
    """Every position argues against the class: the map is 0 everywhere, not 0/0."""
    model = PoolAndLinear(channels=2, classes=1)
    with torch.no_grad():
        model.classifier.weight.fill_(1.0)
    result = grad_cam(model, -torch.rand(2, 2, 5, 5) - 0.1, target_layer="features")
    assert torch.equal(result.maps, torch.zeros(2, 5, 5))


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_grad_cam_on_every_attention(attention: str) -> None:
    model = create_model("resnet20", attention=attention)
    images = torch.randn(3, 3, 32, 32)
    result = grad_cam(model, images)
    assert result.layer == "stages.2" == last_stage(model)
    assert result.maps.shape == (3, 32, 32) and result.maps.dtype == torch.float32
    assert torch.isfinite(result.maps).all()
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    peaks = result.maps.amax(dim=(1, 2))
    assert ((peaks == 1) | (peaks == 0)).all()
    with torch.no_grad():
        logits = model.eval()(images)
    torch.testing.assert_close(result.logits, logits)
    assert torch.equal(result.classes, logits.argmax(dim=1))


@pytest.mark.parametrize(
    ("name", "layer"),
    [("preresnet20", "stages.2"), ("wrn16_8", "stages.2"), ("mobilenetv2", "blocks.16")],
)
def test_default_layer_of_every_family(name: str, layer: str) -> None:
    model = create_model(name, attention="simam")
    images = torch.randn(1, 3, 32, 32)
    result = grad_cam(model, images)
    assert result.layer == layer and result.maps.shape == (1, 32, 32) and result.maps.max() <= 1
    assert list(simam_weights(model, images)) == list(simam_modules(model))


@pytest.mark.parametrize("name", ["resnet20", "preresnet20"])
@pytest.mark.parametrize("value", [0.0, 0.7])
def test_grad_cam_is_finite_on_constant_images(name: str, value: float) -> None:
    result = grad_cam(create_model(name, attention="simam"), torch.full((2, 3, 32, 32), value))
    assert torch.isfinite(result.maps).all()
    assert result.maps.min() >= 0 and result.maps.max() <= 1


def test_grad_cam_leaves_the_model_as_it_was() -> None:
    model = create_model("resnet20", attention="cbam").train()
    model.stages[0].eval()  # a part frozen in eval mode must stay so
    parameters = list(model.parameters())
    for index, parameter in enumerate(parameters):
        if index % 2:
            parameter.grad = torch.randn_like(parameter)
    grads_before = [None if p.grad is None else p.grad.clone() for p in parameters]
    modes_before = [m.training for m in model.modules()]
    state_before = {k: v.clone() for k, v in model.state_dict().items()}

    grad_cam(model, torch.randn(2, 3, 32, 32))
    with pytest.raises(ValueError, match="target_class"):
        grad_cam(model, torch.randn(2, 3, 32, 32), target_class=10)  # fails after the forward pass

    assert no_hooks_left(model)
    assert [m.training for m in model.modules()] == modes_before
    for parameter, before in zip(parameters, grads_before):
        assert (parameter.grad is None) if before is None else torch.equal(parameter.grad, before)
    for key, value in model.state_dict().items():  # eval mode: BN running statistics untouched
        assert torch.equal(value, state_before[key]), key


def test_grad_cam_works_on_frozen_models_and_channels_last() -> None:
    model = create_model("resnet20", attention="simam").requires_grad_(False)
    images = torch.randn(2, 3, 32, 32)
    plain = grad_cam(model, images)
    fast = grad_cam(
        model.to(memory_format=torch.channels_last), images.to(memory_format=torch.channels_last)
    )
    torch.testing.assert_close(fast.maps, plain.maps, atol=1e-5, rtol=1e-4)


def test_grad_cam_bad_input() -> None:
    model = create_model("resnet20")
    images = torch.randn(2, 3, 32, 32)
    with pytest.raises(ValueError, match="0..9"):
        grad_cam(model, images, target_class=-1)
    with pytest.raises(ValueError, match="one per image"):
        grad_cam(model, images, target_class=[1, 2, 3])
    with pytest.raises(TypeError, match="integers"):
        grad_cam(model, images, target_class=1.5)
    with pytest.raises(ValueError, match="no module"):
        grad_cam(model, images, target_layer="stages.7")
    with pytest.raises(ValueError, match="shape"):
        grad_cam(model, images[0])
    with pytest.raises(ValueError, match="does not depend"):
        grad_cam(SideBranch(), images, target_layer="side")
    with pytest.raises(ValueError, match="target_layer"):
        grad_cam(PoolAndLinear(3, 2), images)  # no stages: the layer must be named
    with pytest.raises(ValueError, match="not finite"):
        grad_cam(model, images.clone().index_fill_(0, torch.tensor([1]), float("nan")))
    assert no_hooks_left(model)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_grad_cam_runs_on_the_model_device() -> None:
    model = create_model("resnet20", attention="simam")
    images = torch.randn(2, 3, 32, 32)
    on_cpu = grad_cam(model, images)
    on_gpu = grad_cam(model.cuda(), images)  # CPU images follow the model
    assert on_gpu.maps.is_cuda
    torch.testing.assert_close(on_gpu.maps.cpu(), on_cpu.maps, atol=1e-3, rtol=1e-3)
    weights = simam_weights(model, images)
    assert all(w.is_cuda for w in weights.values())


# --------------------------------------------------------------------------------------------------
# SimAM's weights


def inputs_and_outputs(
    model: nn.Module, images: torch.Tensor
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Each SimAM module's input and output in one eval-mode forward pass, read independently."""
    seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = [
        module.register_forward_hook(
            lambda m, i, o, name=name: seen.__setitem__(name, (i[0].clone(), o.clone()))
        )
        for name, module in model.named_modules()
        if isinstance(module, SimAM)
    ]
    with torch.no_grad():
        model.eval()(images)
    for handle in handles:
        handle.remove()
    return seen


def test_simam_weights_are_what_each_module_multiplies_by() -> None:
    model = create_model("resnet20", attention="simam")
    images = torch.randn(2, 3, 32, 32)
    weights = simam_weights(model, images)
    assert no_hooks_left(model)
    assert list(weights) == list(simam_modules(model)) and len(weights) == 9
    for name, (x, y) in inputs_and_outputs(model, images).items():
        w = weights[name]
        assert w.shape == x.shape  # the block's feature maps: 16x32x32, 32x16x16, 64x8x8
        assert w.min() >= SIGMOID_HALF - 1e-6 and w.max() <= 1
        away_from_zero = x.abs() > 1e-3
        torch.testing.assert_close(w[away_from_zero], (y / x)[away_from_zero], atol=1e-5, rtol=1e-5)
        reference = simam_reference(x.double()) / x.double()
        torch.testing.assert_close(
            w[away_from_zero].double(), reference[away_from_zero], atol=1e-5, rtol=1e-5
        )
    assert {tuple(w.shape[1:]) for w in weights.values()} == {
        (16, 32, 32),
        (32, 16, 16),
        (64, 8, 8),
    }


def test_simam_weights_follow_the_module_statistics_and_lambda() -> None:
    images = torch.randn(2, 3, 32, 32)
    exact_model = create_model("resnet20", attention="simam-exact")
    exact = simam_weights(exact_model, images)
    for name, (x, _) in inputs_and_outputs(exact_model, images).items():
        torch.testing.assert_close(exact[name], torch.sigmoid(importance(x, 1e-4, "exact")))
        away_from_zero = x.abs() > 1e-3
        torch.testing.assert_close(
            exact[name][away_from_zero], (simam_exact(x) / x)[away_from_zero], atol=1e-5, rtol=1e-5
        )
        shared = torch.sigmoid(importance(x, 1e-4, "reference"))
        assert (
            exact[name] - shared
        ).abs().max() > 1e-4  # the statistics differ, and so do the weights

    model = create_model("resnet20", attention="simam", lambda_=0.5)
    weights = simam_weights(model, images)
    for name, (x, y) in inputs_and_outputs(model, images).items():
        away_from_zero = x.abs() > 1e-3
        torch.testing.assert_close(
            weights[name][away_from_zero], (y / x)[away_from_zero], atol=1e-5, rtol=1e-5
        )
        assert (weights[name] - torch.sigmoid(importance(x, 1e-4))).abs().max() > 1e-3


def test_simam_weights_need_simam() -> None:
    with pytest.raises(ValueError, match="no SimAM"):
        simam_weights(create_model("resnet20", attention="se"), torch.randn(1, 3, 32, 32))


def test_reductions_of_the_weights() -> None:
    weights = torch.full((2, 3, 4, 4), SIGMOID_HALF)
    weights[0, 1, 2, 3] = 0.99  # image 0: channel 1 singles out one position
    weights[1, 2] = torch.linspace(0.63, 0.9, 16).view(4, 4)  # image 1: channel 2 varies most
    weights[1, 0, 0, 0] = 0.95  # ... more than one outlier in channel 0
    mean = channel_mean_map(weights)
    assert mean.shape == (2, 4, 4)
    torch.testing.assert_close(mean[0, 2, 3], torch.tensor((2 * SIGMOID_HALF + 0.99) / 3))
    maps, channels = widest_channel_map(weights)
    assert channels.tolist() == [1, 2]
    assert torch.equal(maps[0], weights[0, 1]) and torch.equal(maps[1], weights[1, 2])
    assert torch.isfinite(
        widest_channel_map(torch.rand(2, 3, 1, 1))[0]
    ).all()  # 1x1 maps: no NaN spread


# --------------------------------------------------------------------------------------------------
# The figure, and real CIFAR-10 test images


def test_plot_attention_maps_grid() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = {
        "plain": create_model("resnet20"),
        "SimAM": create_model("resnet20", attention="simam"),
    }
    blocks = ["stages.0.2.attention", "stages.2.2.attention"]
    figure = plot_attention_maps(
        torch.randn(2, 3, 32, 32),
        models,
        labels=[3, 5],
        simam_blocks=blocks,
        simam_reduction="widest",
    )
    assert figure.axes[0].get_subplotspec().get_gridspec().get_geometry() == (2, 1 + 2 + 2)
    assert "channel" in figure.axes[-1].get_xlabel()
    plt.close(figure)
    with pytest.raises(ValueError, match="no SimAM module"):
        plot_attention_maps(torch.randn(1, 3, 32, 32), models, simam_blocks=["stages.0.0"])


@pytest.mark.cifar10
def test_maps_of_real_cifar10_test_images() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images, labels = load_cifar(data_root(), train=False)
    # plane, cat, dog, ship
    chosen = torch.stack([torch.nonzero(labels == cls)[0, 0] for cls in (0, 3, 5, 8)])
    batch, batch_labels = next(iter(CifarLoader(images[chosen], labels[chosen], batch_size=4)))
    models = {name: create_model("resnet20", attention=name) for name in ("none", "simam")}
    for model in models.values():
        result = grad_cam(model, batch, target_class=batch_labels)
        assert result.maps.shape == (4, 32, 32) and torch.isfinite(result.maps).all()
        assert torch.equal(result.classes, batch_labels)
    weights = simam_weights(models["simam"], batch)
    assert all(w.min() >= SIGMOID_HALF - 1e-6 and w.max() <= 1 for w in weights.values())
    figure = plot_attention_maps(
        batch,
        models,
        batch_labels,
        load_class_names(data_root()),
        simam_blocks=["stages.2.2.attention"],
    )
    assert len(figure.axes) == 4 * (1 + 2 + 1)
    assert figure.axes[0].get_title().endswith("airplane")
    plt.close(figure)


# --------------------------------------------------------------------------------------------------
# Any picture, as the networks see one


def test_a_cifar_sized_picture_is_only_normalised(tmp_path):
    pixels = torch.randint(
        0, 256, (3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    expected = (pixels.float() / 255 - torch.tensor(CIFAR10_MEAN).view(3, 1, 1)) / torch.tensor(
        CIFAR10_STD
    ).view(3, 1, 1)
    Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(tmp_path / "picture.png")
    for source in (
        tmp_path / "picture.png",
        str(tmp_path / "picture.png"),
        pixels,
        pixels.permute(1, 2, 0).numpy(),
        pixels.float() / 255,
    ):
        image = load_image(source)
        assert image.shape == (1, 3, 32, 32) and image.dtype == torch.float32
        assert torch.allclose(image[0], expected, atol=1e-5)


def test_a_larger_picture_is_cropped_to_its_centre_square_and_resized():
    wide = torch.zeros(96, 160, 3, dtype=torch.uint8)
    wide[:, 32:128] = 255  # the centre square is white, the sides black
    image = load_image(wide)
    white = (1 - torch.tensor(CIFAR10_MEAN)) / torch.tensor(CIFAR10_STD)
    assert torch.allclose(image[0], white.view(3, 1, 1).expand(3, 32, 32), atol=1e-5)
    grey = load_image(np.full((64, 64), 0.5, dtype=np.float32))
    assert torch.allclose(
        grey[0, :, 5, 5], (0.5 - torch.tensor(CIFAR10_MEAN)) / torch.tensor(CIFAR10_STD), atol=1e-5
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (torch.zeros(4, 5, 6, 7), "expected pixels of shape"),
        (torch.full((8, 8, 3), float("nan")), "NaN or infinite"),
        (torch.full((8, 8, 3), 2.0), "must lie in"),
        (np.zeros((0, 5, 3), dtype=np.uint8), "empty"),
    ],
)
def test_load_image_refuses_what_is_not_a_picture(source, message):
    with pytest.raises(ValueError, match=message):
        load_image(source)


def test_load_image_names_a_missing_or_unreadable_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file"):
        load_image(tmp_path / "absent.png")
    (tmp_path / "notes.png").write_text("not a picture")
    with pytest.raises(ValueError, match="not an image file Pillow can read"):
        load_image(tmp_path / "notes.png")
