"""SimAM's own 3-D weights, read from a network: ``sigmoid(1/E)`` of every neuron of every block.

Yang et al., ICML 2021, equation (6): a SimAM module multiplies its input ``X`` by
``sigmoid(1/E)``, one weight per neuron. These weights are the module's attention map and need
no gradient: one forward pass with a pre-hook on every :class:`~simam.attention.simam.SimAM`
captures each module's input, and the weights are computed from it by
:func:`simam.energy.importance` with the statistics that module uses (``"reference"``, the
reference code's shared mean and ``M - 1`` variance, or ``"exact"`` for ``SimAM(exact=True)``)
and its own ``lambda_``. They lie in [sigmoid(1/2), 1] ~ [0.622, 1]: mathematically below 1, but a
neuron far from its channel's mean (importance above ~17) rounds to 1.0 in float32.
"""

from __future__ import annotations

import torch
from torch import nn

from simam.attention.simam import SimAM
from simam.energy import importance
from simam.maps.common import check_images, evaluation_mode, model_device


def simam_modules(model: nn.Module) -> dict[str, SimAM]:
    """Every SimAM module of ``model`` by module path (``"stages.0.0.attention"``),
    in registration order."""
    return {name: module for name, module in model.named_modules() if isinstance(module, SimAM)}


def simam_weight(x: torch.Tensor, module: SimAM) -> torch.Tensor:
    """The weights ``sigmoid(1/e*)`` that ``module`` gives to the neurons of its input ``x``.

    Computed in at least float32 (16-bit squared deviations overflow), in the module's statistics.
    """
    x = x.to(torch.promote_types(x.dtype, torch.float32))
    statistics = "exact" if module.exact else "reference"
    return torch.sigmoid(importance(x, module.lambda_, statistics))


def simam_weights(model: nn.Module, images: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per SimAM module of ``model``, the weight tensor (N, C, h, w) it applies to ``images``.

    Keys are module paths, in the order the modules ran; each value has the shape of that module's
    input (the block's feature maps at the module's place). ``images`` (N, C, H, W) normalised as in
    training are moved to the model's device; the model runs once, without gradients, in eval mode
    (its flags restored afterwards), and the hooks are removed even when the call fails.
    """
    check_images(images)
    modules = simam_modules(model)
    if not modules:
        raise ValueError(
            f"{type(model).__name__} contains no SimAM module (build it with attention='simam')"
        )
    weights: dict[str, torch.Tensor] = {}

    def hook_for(name: str):
        def keep_weights(module: SimAM, inputs: tuple) -> None:
            if name in weights:
                raise ValueError(
                    f"SimAM module {name!r} ran twice in one forward pass: "
                    "its weights would be ambiguous"
                )
            weights[name] = simam_weight(inputs[0].detach(), module)

        return keep_weights

    handles = [module.register_forward_pre_hook(hook_for(name)) for name, module in modules.items()]
    try:
        with evaluation_mode(model), torch.no_grad():
            model(images.to(model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return weights


def channel_mean_map(weights: torch.Tensor) -> torch.Tensor:
    """(N, h, w): the weight of each position averaged over the channels.

    High where many channels find that position distinctive at once (a neuron far from its
    channel's mean), so it shows where the block as a whole sees something unusual; it is smooth
    and close to the floor sigmoid(1/2) where every channel is near its mean.
    """
    return weights.mean(dim=1)


def widest_channel_map(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, h, w) maps and (N,) channel indices: per image,
    the channel whose weights vary most over space.

    The spread is the spatial standard deviation of the channel's weights. That channel is the most
    selective one: it singles out a few positions (one part of the object, an edge) and leaves the
    rest near sigmoid(1/2), whereas the channel mean blurs such patterns together.
    """
    spread = weights.flatten(2).std(dim=2, correction=0)  # 0, not NaN, for 1x1 maps
    channels = spread.argmax(dim=1)
    return weights[torch.arange(weights.shape[0], device=weights.device), channels], channels
