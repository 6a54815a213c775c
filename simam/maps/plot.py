"""One figure of attention maps: test images, the Grad-CAM of several networks on them, and SimAM's
own weights per block where a network has SimAM."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import nn

from simam.data import CIFAR10_MEAN, CIFAR10_STD
from simam.maps.common import check_images
from simam.maps.gradcam import GradCam, grad_cam
from simam.maps.simam_weights import (
    channel_mean_map,
    simam_modules,
    simam_weights,
    widest_channel_map,
)


def denormalise(
    images: torch.Tensor, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD
) -> torch.Tensor:
    """Normalised images (N, C, H, W) back to pixels in [0, 1], as
    (N, H, W, C) float32 on the CPU for ``imshow``."""
    check_images(images)
    if len(mean) != images.shape[1] or len(std) != images.shape[1]:
        raise ValueError(
            f"mean and std need one value per channel ({images.shape[1]}), got {len(mean)} "
            f"and {len(std)}"
        )
    images = images.detach().float().cpu()
    pixels = images * torch.tensor(std).view(1, -1, 1, 1) + torch.tensor(mean).view(1, -1, 1, 1)
    return pixels.clamp(0, 1).permute(0, 2, 3, 1).contiguous()


def _class_name(index: int, class_names: Sequence[str] | None) -> str:
    return class_names[index] if class_names is not None else str(index)


def plot_attention_maps(
    images: torch.Tensor,
    models: Mapping[str, nn.Module],
    labels: Sequence[int] | torch.Tensor | None = None,
    class_names: Sequence[str] | None = None,
    *,
    target_class: int | Sequence[int] | torch.Tensor | None = None,
    target_layer: str | None = None,
    simam_blocks: Sequence[str] = (),
    simam_reduction: Literal["mean", "widest"] = "mean",
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
    overlay_alpha: float = 0.5,
    panel_size: float = 1.5,
):
    """A grid with one row per image: the image, then one Grad-CAM overlay per model, then SimAM's
    weights in each of ``simam_blocks`` for every model that has SimAM modules.

    Args:
        images: (N, 3, H, W) normalised with ``mean`` and ``std``, as the models were trained.
        models: display name -> network, e.g. ``{"ResNet-20 + SE": model, ...}``.
        labels, class_names: the true classes, written above each image; a Grad-CAM panel's
            prediction is green where it matches the label, red where not.
        target_class, target_layer: as in :func:`simam.maps.grad_cam` (default: each model's
            predicted class, its last stage); the same for every model.
        simam_blocks: module paths of SimAM modules (see :func:`simam.maps.simam_modules`), e.g.
            the last block of each stage; each must exist in every model that has SimAM.
        simam_reduction: ``"mean"`` draws :func:`~simam.maps.channel_mean_map`, ``"widest"``
            :func:`~simam.maps.widest_channel_map` (its channel is written under the panel).

    Grad-CAM maps are drawn over the image with the colour range fixed at [0, 1]; SimAM maps are
    drawn on their own, at the block's resolution, each with its own colour range (their values
    sit in a narrow band above sigmoid(1/2) ~ 0.622, which a fixed [0.622, 1] range would flatten);
    the range is written under the panel. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt  # imported here: slow to import, and only plotting needs it

    labels = _checked_labels(images, models, labels, simam_reduction)
    cams = {
        name: grad_cam(model, images, target_class, target_layer) for name, model in models.items()
    }
    simam_columns = _simam_columns(images, models, simam_blocks, simam_reduction)
    pixels = denormalise(images, mean, std)
    rows, columns = images.shape[0], 1 + len(cams) + len(simam_columns)
    figure, axes = plt.subplots(
        rows,
        columns,
        figsize=(panel_size * columns, (panel_size + 0.45) * rows),
        squeeze=False,
        layout="constrained",
    )
    for row in range(rows):
        _draw_row(
            axes[row],
            row,
            pixels[row],
            cams,
            simam_columns,
            labels,
            class_names,
            target_class is not None,
            overlay_alpha,
        )
    _titles(axes, cams, simam_columns, labels is not None, simam_reduction)
    return figure


def _checked_labels(
    images: torch.Tensor,
    models: Mapping[str, nn.Module],
    labels: Sequence[int] | torch.Tensor | None,
    simam_reduction: str,
) -> torch.Tensor | None:
    """The labels as a CPU tensor, once the arguments of :func:`plot_attention_maps`
    are found usable."""
    check_images(images)
    if not models:
        raise ValueError("models must name at least one network")
    if simam_reduction not in ("mean", "widest"):
        raise ValueError(f"simam_reduction must be 'mean' or 'widest', got {simam_reduction!r}")
    labels = None if labels is None else torch.as_tensor(labels).cpu()
    if labels is not None and labels.shape != (images.shape[0],):
        raise ValueError(
            f"labels must hold one class per image ({images.shape[0]}), "
            f"got shape {tuple(labels.shape)}"
        )
    return labels


def _draw_row(
    axes,
    row: int,
    pixels: torch.Tensor,
    cams: Mapping[str, GradCam],
    simam_columns: Sequence[tuple],
    labels: torch.Tensor | None,
    class_names: Sequence[str] | None,
    targeted: bool,
    overlay_alpha: float,
) -> None:
    """One image's row: the image (its label above), its Grad-CAM per model, its SimAM maps."""
    axes[0].imshow(pixels.numpy())
    if labels is not None:
        axes[0].set_title(_class_name(int(labels[row]), class_names), fontsize="small")
    for column, cam in enumerate(cams.values(), start=1):
        _draw_grad_cam(axes[column], pixels, cam, row, labels, class_names, targeted, overlay_alpha)
    for column, (_, _, maps, channels) in enumerate(simam_columns, start=1 + len(cams)):
        _draw_simam_map(axes[column], maps[row], None if channels is None else int(channels[row]))


def _simam_columns(
    images: torch.Tensor,
    models: Mapping[str, nn.Module],
    simam_blocks: Sequence[str],
    simam_reduction: str,
) -> list[tuple[str, str, torch.Tensor, torch.Tensor | None]]:
    """One ``(model name, block, (N, h, w) maps, channel indices or None)`` per
    SimAM panel column."""
    columns = []
    for name, model in models.items():
        if not simam_blocks or not simam_modules(model):
            continue
        weights = simam_weights(model, images)
        for block in simam_blocks:
            if block not in weights:
                raise ValueError(
                    f"{name} has no SimAM module {block!r}; it has {', '.join(weights)}"
                )
            if simam_reduction == "mean":
                columns.append((name, block, channel_mean_map(weights[block]).cpu(), None))
            else:
                maps, channels = widest_channel_map(weights[block])
                columns.append((name, block, maps.cpu(), channels.cpu()))
    if simam_blocks and not columns:
        raise ValueError("simam_blocks were given but none of the models has SimAM modules")
    return columns


def _draw_grad_cam(
    axis,
    pixels: torch.Tensor,
    cam: GradCam,
    row: int,
    labels: torch.Tensor | None,
    class_names: Sequence[str] | None,
    targeted: bool,
    overlay_alpha: float,
) -> None:
    """Image ``row``'s Grad-CAM over its pixels, its prediction and probability underneath (green
    where it matches the label, red where not), and the class mapped where it was chosen."""
    axis.imshow(pixels.numpy())
    axis.imshow(cam.maps[row].cpu().numpy(), cmap="jet", alpha=overlay_alpha, vmin=0, vmax=1)
    predicted = int(cam.logits[row].argmax())
    probability = cam.logits[row].softmax(dim=0)[predicted].item()
    text = f"{_class_name(predicted, class_names)} {probability:.2f}"
    if targeted:
        text += f"\nmap: {_class_name(int(cam.classes[row]), class_names)}"
    colour = "black" if labels is None else ("green" if predicted == int(labels[row]) else "red")
    axis.set_xlabel(text, fontsize="x-small", color=colour)


def _draw_simam_map(axis, simam_map: torch.Tensor, channel: int | None) -> None:
    """One image's SimAM map in its own colour range, the range (and the channel) underneath."""
    axis.imshow(simam_map.numpy(), cmap="magma")
    low, high = simam_map.min().item(), simam_map.max().item()
    axis.set_xlabel(
        f"{low:.3f}..{high:.3f}" + ("" if channel is None else f"\nchannel {channel}"),
        fontsize="x-small",
    )


def _titles(
    axes,
    cams: Mapping[str, GradCam],
    simam_columns: Sequence[tuple],
    labelled: bool,
    simam_reduction: str,
) -> None:
    """The column titles over the first row, and no ticks on any panel."""
    axes[0, 0].set_title(
        "image" if not labelled else f"image\n{axes[0, 0].get_title()}", fontsize="small"
    )
    for column, name in enumerate(cams, start=1):
        axes[0, column].set_title(f"{name}\nGrad-CAM {cams[name].layer}", fontsize="x-small")
    for column, (name, block, _, _) in enumerate(simam_columns, start=1 + len(cams)):
        axes[0, column].set_title(
            f"{name}\nSimAM {block.removesuffix('.attention')}\n{simam_reduction}",
            fontsize="x-small",
        )
    for axis in axes.flat:
        axis.set_xticks([])
        axis.set_yticks([])
