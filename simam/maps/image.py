"""Any picture as the course's networks see one: a file, an array or a tensor, resized to CIFAR's
32 x 32 and normalised with CIFAR-10's statistics, ready for
:func:`simam.maps.plot_attention_maps`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from simam.data import CIFAR10_MEAN, CIFAR10_STD

CIFAR_SIZE = 32


def load_image(
    source: str | Path | np.ndarray | torch.Tensor,
    size: int = CIFAR_SIZE,
    mean: Sequence[float] = CIFAR10_MEAN,
    std: Sequence[float] = CIFAR10_STD,
) -> torch.Tensor:
    """One picture as a normalised batch of one, (1, 3, size, size) float32.

    ``source``: an image file (PNG, JPEG, ..., read by Pillow); or pixels as an array or tensor,
    (H, W, 3) or (H, W) as a file reader gives them, or (3, H, W) as torchvision does, of integers
    in [0, 255] or floats in [0, 1]. The picture is cropped to its centred square and resized with
    antialiasing, the way CIFAR's 32 x 32 images were made from larger photographs.
    """
    pixels = _read_file(Path(source)) if isinstance(source, (str, Path)) else _pixels(source)
    height, width = pixels.shape[1:]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = pixels[:, top : top + side, left : left + side][None]
    resized = F.interpolate(
        square, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False
    )
    normalised = (resized.clamp(0, 1) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(
        std
    ).view(1, 3, 1, 1)
    return normalised.float()


def _read_file(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise FileNotFoundError(f"no image file {path}")
    try:
        with Image.open(path) as picture:
            data = np.asarray(picture.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(
            f"{path} is not an image file Pillow can read (PNG, JPEG, GIF, WebP, ...)"
        ) from None
    return torch.from_numpy(data.copy()).permute(2, 0, 1).float() / 255


def _pixels(array: np.ndarray | torch.Tensor) -> torch.Tensor:
    """(3, H, W) float pixels in [0, 1] from an array of one of the layouts
    :func:`load_image` takes."""
    pixels = (
        torch.as_tensor(np.asarray(array) if not isinstance(array, torch.Tensor) else array)
        .detach()
        .cpu()
    )
    if pixels.dim() == 2:
        pixels = pixels[None].expand(3, -1, -1)
    elif pixels.dim() == 3 and pixels.shape[-1] in (3, 4) and pixels.shape[0] not in (3, 4):
        pixels = pixels[..., :3].permute(2, 0, 1)
    elif pixels.dim() == 3 and pixels.shape[0] in (3, 4):
        pixels = pixels[:3]
    else:
        raise ValueError(
            f"expected pixels of shape (H, W), (H, W, 3) or (3, H, W), got {tuple(pixels.shape)}"
        )
    if pixels.shape[1] < 1 or pixels.shape[2] < 1:
        raise ValueError(f"the picture is empty: {tuple(pixels.shape)}")
    if pixels.dtype == torch.uint8:
        return pixels.float() / 255
    pixels = pixels.float()
    if not torch.isfinite(pixels).all():
        raise ValueError("the picture has NaN or infinite values")
    if pixels.min() < 0 or pixels.max() > 1:
        raise ValueError(
            f"float pixels must lie in [0, 1] (got {pixels.min().item():.3g} to "
            f"{pixels.max().item():.3g}); pass integers 0-255 as uint8"
        )
    return pixels
