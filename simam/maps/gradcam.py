"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization", ICCV 2017), written out in a few tensor operations.

For a class ``c`` with score ``y^c`` (the logit, before the softmax, as in the paper) and the
feature maps ``A^k`` (k = 1..K) of a chosen layer:

    alpha_k = 1/(h w) sum_ij d y^c / d A^k_ij              (the paper's equation 1)
    L^c     = ReLU(sum_k alpha_k A^k)                      (equation 2)

then ``L^c`` is upsampled bilinearly to the input size and divided by its largest value, per image.
See :mod:`simam.maps` for the choices of layer, class and normalisation, and why they are made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from simam.maps.common import check_images, evaluation_mode, model_device


@dataclass
class GradCam:
    """What :func:`grad_cam` returns, all on the model's device and detached.

    Attributes:
        maps: (N, H, W) float32 in [0, 1], H x W the input size; an image whose ``L^c`` is 0
            everywhere (no positive evidence for the class at this layer) gets a map of zeros.
        classes: (N,) the class each map explains.
        logits: (N, num_classes) the model's outputs for the images, in float32.
        layer: the module path of the layer whose feature maps were used (``"stages.2"``).
    """

    maps: torch.Tensor
    classes: torch.Tensor
    logits: torch.Tensor
    layer: str


def last_stage(model: nn.Module) -> str:
    """The module path of the default Grad-CAM layer: the last stage of a course network.

    ResNets, pre-activation ResNets and WRNs keep their stages in ``model.stages``; the output of
    the last one is the output of the last residual block, the last feature maps that still have a
    spatial layout (8x8 on CIFAR). MobileNetV2 keeps its inverted residual blocks in
    ``model.blocks``: the last of them is used (the 1x1 ``head`` convolution after it is not a
    block). Any other network: pass ``target_layer``.
    """
    for container in ("stages", "blocks"):
        sequence = getattr(model, container, None)
        if isinstance(sequence, nn.Sequential) and len(sequence) > 0:
            return f"{container}.{len(sequence) - 1}"
    raise ValueError(
        f"{type(model).__name__} has no 'stages' or 'blocks' sequence to take the last stage from: "
        "pass target_layer (a module path of model.named_modules(), or the module itself)"
    )


def _resolve_layer(model: nn.Module, target_layer: str | nn.Module | None) -> tuple[str, nn.Module]:
    """(module path, module) of ``target_layer``: a path, a submodule,
    or None for :func:`last_stage`."""
    modules = dict(model.named_modules())
    if target_layer is None:
        target_layer = last_stage(model)
    if isinstance(target_layer, str):
        if target_layer not in modules:
            raise ValueError(f"{type(model).__name__} has no module {target_layer!r}")
        return target_layer, modules[target_layer]
    if isinstance(target_layer, nn.Module):
        for name, module in modules.items():
            if module is target_layer:
                return name, module
        raise ValueError(
            f"target_layer {type(target_layer).__name__} is not a submodule of "
            f"{type(model).__name__}"
        )
    raise TypeError(
        f"target_layer must be a module path, a module or None, got {type(target_layer).__name__}"
    )


def _target_classes(
    target_class: int | Sequence[int] | torch.Tensor | None, logits: torch.Tensor
) -> torch.Tensor:
    """(N,) classes on the logits' device: the predicted ones, one for all images,
    or one per image."""
    n, num_classes = logits.shape
    if target_class is None:
        return logits.argmax(dim=1)
    classes = torch.as_tensor(target_class, device=logits.device)
    if classes.is_floating_point() or classes.is_complex() or classes.dtype == torch.bool:
        raise TypeError(f"target_class must hold integers, got dtype {classes.dtype}")
    if classes.dim() == 0:
        classes = classes.expand(n)
    if classes.shape != (n,):
        raise ValueError(
            f"target_class must be one class or one per image ({n}), "
            f"got shape {tuple(classes.shape)}"
        )
    if ((classes < 0) | (classes >= num_classes)).any():
        raise ValueError(f"target_class must lie in 0..{num_classes - 1}, got {classes.tolist()}")
    return classes.long()


def grad_cam(
    model: nn.Module,
    images: torch.Tensor,
    target_class: int | Sequence[int] | torch.Tensor | None = None,
    target_layer: str | nn.Module | None = None,
) -> GradCam:
    """Grad-CAM maps of ``model`` for a batch of ``images`` (N, C, H, W), normalised as in training.

    ``target_class``: None for each image's predicted class, an int for one class for all images,
    or one class per image. ``target_layer``: a module path of ``model.named_modules()``, the
    module itself, or None for :func:`last_stage`. The images are moved to the model's device;
    the model runs in eval mode, and its train/eval flags are restored afterwards.

    The model is left as it was: the forward hook is removed even when the call fails, and no
    parameter's ``.grad`` is created or changed. The hook replaces the layer's output with a
    detached copy that requires grad, so the graph starts at that layer, and the gradient is taken
    with ``torch.autograd.grad`` with respect to that copy only, which never writes ``.grad``.
    Channels-last tensors, autocast and any device work as they do in the model.

    Raises ``ValueError`` if the layer is not run exactly once by the forward pass, if the score
    does not depend on it, or if the activations or gradients are not finite (a NaN input, say).
    """
    check_images(images)
    name, layer = _resolve_layer(model, target_layer)
    images = images.to(model_device(model))
    activation, gradient, classes, logits = _activation_and_gradient(
        model, images, name, layer, target_class
    )
    weights = gradient.float().mean(dim=(2, 3), keepdim=True)  # alpha_k, one per image and channel
    coarse = F.relu((weights * activation.float()).sum(dim=1, keepdim=True))
    if not torch.isfinite(coarse).all():
        raise ValueError(
            f"Grad-CAM of layer {name!r} is not finite: check the images and the model for NaN "
            "or inf"
        )
    upsampled = F.interpolate(coarse, size=images.shape[-2:], mode="bilinear", align_corners=False)[
        :, 0
    ]
    # Bilinear weights are convex, so the map stays >= 0; an all-zero map stays zero (0 / tiny).
    peak = upsampled.amax(dim=(1, 2), keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
    return GradCam(upsampled / peak, classes.detach(), logits.detach().float(), name)


def _activation_and_gradient(
    model: nn.Module,
    images: torch.Tensor,
    name: str,
    layer: nn.Module,
    target_class: int | Sequence[int] | torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The feature maps ``A`` of ``layer`` (detached), the gradient of the target classes' scores
    with respect to them, the classes and the logits: one forward pass through a hook on ``layer``
    that is removed even when the pass fails."""
    captured: list[torch.Tensor] = []

    def keep_output(module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if not isinstance(output, torch.Tensor) or output.dim() != 4:
            raise ValueError(
                f"layer {name!r} must output feature maps (N, K, h, w), got {type(output).__name__}"
            )
        activation = output.detach().requires_grad_(True)
        captured.append(activation)
        return activation.clone()  # later in-place ops (ReLU(inplace=True)) change the clone, not A

    handle = layer.register_forward_hook(keep_output)
    try:
        with evaluation_mode(model), torch.enable_grad():
            logits = model(images)
            if len(captured) != 1:
                raise ValueError(
                    f"layer {name!r} ran {len(captured)} times in the forward pass; "
                    "Grad-CAM needs exactly one"
                )
            if (
                not isinstance(logits, torch.Tensor)
                or logits.dim() != 2
                or logits.shape[0] != images.shape[0]
            ):
                raise ValueError(
                    "the model must return logits (N, num_classes), "
                    f"got {getattr(logits, 'shape', type(logits))}"
                )
            classes = _target_classes(target_class, logits)
            # Images do not interact in eval mode, so the gradient of the summed scores gives each
            # image the gradient of its own score.
            score = logits.gather(1, classes[:, None]).sum()
            (gradient,) = torch.autograd.grad(score, captured, allow_unused=True)
    finally:
        handle.remove()
    if gradient is None:
        raise ValueError(f"the model's output does not depend on layer {name!r}")
    return captured[0].detach(), gradient, classes, logits
