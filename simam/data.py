"""CIFAR-10 and CIFAR-100: the official files, read and checked,
and a loader that lives on the device.

Two parts.

**Reading.** :func:`load_cifar` reads a split from the official "python version" layout
(``cifar-10-batches-py/``, ``cifar-100-python/``) under a root folder, and can download the
official archive first (``download=True``; off by default). It parses the pickles itself, so an
official download and a re-pickled copy of the same arrays read the same way, and it checks what it
reads: a truncated or corrupt file, missing keys, a wrong data shape, labels out of range or a
label count that differs from the image count raise :class:`CifarFormatError` naming the file.
The pickles are read by an unpickler that only builds NumPy arrays and plain Python values, so a
tampered file cannot run code.

**Loading.** :class:`CifarLoader` keeps a whole split as one uint8 tensor on the training device
and builds every batch there, the way the fastest CIFAR-10 trainers do (Keller Jordan's airbench,
tysam-code's hlb-CIFAR10): a few tensor operations crop and flip a whole batch, one
multiply-add normalises it. There are no worker processes and no per-image Python. The
augmentation is the reference recipe (He et al. 2016, used by the SimAM paper): pad each image by 4
pixels, take a random 32x32 window, mirror it with probability 1/2. Padding is with raw 0 pixels
(black) before normalisation, exactly as torchvision's ``RandomCrop(32, padding=4)`` followed by
``ToTensor`` and ``Normalize`` does, so a padded pixel becomes ``-mean / std`` after normalisation.

Shuffling and augmentation draw from one seeded ``torch.Generator`` on the CPU, so the batches are
the same on every device, and :meth:`CifarLoader.state_dict` saves the epoch, the position in it and
the generator, so training resumes mid-epoch with exactly the batches it would have seen.

Two variants for short runs, each an option (off by default): ``pad_mode="reflect"`` pads with
the image's own mirrored border instead of black pixels, so that with a small ``padding`` a crop is
a short translation of real content (the fastest CIFAR-10 trainers translate by up to 2 pixels);
``flips="alternate"`` draws each image's flip at random in the first epoch and mirrors it the other
way in every epoch after, so that over any two epochs every image is seen both ways (the
derandomised flip of Jordan, "94% on CIFAR-10 in 3.29 Seconds on a Single GPU", 2024).
:func:`holdout_split` sets aside a fixed, class-balanced part of the training
split to choose a recipe on, leaving the test split for the final number.

**Sharding.** For data-parallel training each process (rank) builds only its share of every batch
(``rank`` and ``world_size``): every rank draws the same global plan (order, crops and flips) from
the same seed and takes one contiguous slice of each global batch (:func:`rank_share`), so the
shares of all ranks put together are exactly the batch a single process would build. Every rank
keeps the whole split on its device (the 50,000 CIFAR training images are 150 MB of uint8), which
keeps the plan, the position and the saved state independent of the number of ranks.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from simam.settings import data_root

# Per-channel statistics of the 50,000 training images, pixels scaled to [0, 1] (population std
# over all pixels of a channel). CIFAR-10: computed by `channel_stats` on the official training set
# and checked by the tests. CIFAR-100: the values computed the same way and widely published
# (e.g. the pytorch-cifar100 training code); no CIFAR-100 copy is at hand to recompute them.
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)

# The std of the SimAM reference code (and of many CIFAR repositories that copied it). It is not
# CIFAR-10's per-channel std, which is CIFAR10_STD; use it to reproduce the reference exactly.
CIFAR10_REFERENCE_STD = (0.2023, 0.1994, 0.2010)

IMAGE_SHAPE = (3, 32, 32)


@dataclass(frozen=True)
class CifarSpec:
    """Where a CIFAR data set lives, how its official archive is checked,
    and what its files hold."""

    title: str
    folder: str
    url: str
    md5: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_names_key: str
    label_key: str
    num_classes: int
    # further label lists: key -> classes
    other_labels: dict[str, int] = field(default_factory=dict)
    mean: tuple[float, float, float] = CIFAR10_MEAN
    std: tuple[float, float, float] = CIFAR10_STD
    test_images: int = 10_000  # both CIFARs' test splits

    @property
    def archive(self) -> str:
        return self.url.rsplit("/", 1)[-1]


# Addresses and md5 sums of the official archives: https://www.cs.toronto.edu/~kriz/cifar.html
# (the same values torchvision's CIFAR10 and CIFAR100 classes check).
DATASETS: dict[str, CifarSpec] = {
    "cifar10": CifarSpec(
        title="CIFAR-10",
        folder="cifar-10-batches-py",
        url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        md5="c58f30108f718f92721af3b95e74349a",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_files=("test_batch",),
        meta_file="batches.meta",
        label_names_key="label_names",
        label_key="labels",
        num_classes=10,
    ),
    "cifar100": CifarSpec(
        title="CIFAR-100",
        folder="cifar-100-python",
        url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        md5="eb9058c3a382ffc7106e4002c42a8d85",
        train_files=("train",),
        test_files=("test",),
        meta_file="meta",
        label_names_key="fine_label_names",
        label_key="fine_labels",
        num_classes=100,
        other_labels={"coarse_labels": 20},
        mean=CIFAR100_MEAN,
        std=CIFAR100_STD,
    ),
}


class CifarFormatError(ValueError):
    """A CIFAR file exists but does not hold what the official file of that name holds."""


def dataset_spec(name: str) -> CifarSpec:
    """The :class:`CifarSpec` of ``"cifar10"`` or ``"cifar100"``;
    a clear error for anything else."""
    if name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


# --------------------------------------------------------------------------------------------------
# Reading the official files


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, strings, numbers and NumPy arrays, and refuses every other object."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy._core.numeric", "_frombuffer"),  # pickle protocol 5
        ("_codecs", "encode"),  # bytes in protocol-2 pickles written by Python 3
    }

    def find_class(self, module: str, name: str) -> Any:
        # NumPy 1.x wrote it (the official files)
        if module.startswith("numpy.core.") and hasattr(np, "_core"):
            module = "numpy._core." + module.removeprefix("numpy.core.")
        if (module.replace("numpy.core.", "numpy._core."), name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refusing to build {module}.{name}: a CIFAR file holds only arrays"
            )
        return super().find_class(module, name)


def _unpickle(path: Path) -> Any:
    """The object pickled in ``path`` (Python 2 strings decoded as latin-1,
    like the official files need)."""
    try:
        with path.open("rb") as f:
            return _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as error:  # a damaged pickle can raise almost any exception type
        raise CifarFormatError(
            f"{path}: cannot be read as a CIFAR pickle ({type(error).__name__}: {error}); "
            "the file is truncated or corrupt: replace it with the one from the official archive"
        ) from error


def _labels(batch: dict, key: str, count: int, num_classes: int, path: Path) -> np.ndarray:
    """The label list ``batch[key]`` as int64, checked against the image count
    and the class range."""
    labels = np.asarray(batch[key])
    if labels.ndim != 1 or not (labels.size == 0 or np.issubdtype(labels.dtype, np.integer)):
        raise CifarFormatError(
            f"{path}: {key!r} must be a list of integers, got an array of shape {labels.shape} "
            f"and dtype {labels.dtype}"
        )
    if len(labels) != count:
        raise CifarFormatError(
            f"{path}: {count} images but {len(labels)} {key!r}; the file is mislabelled "
            "or cut short"
        )
    if count and (labels.min() < 0 or labels.max() >= num_classes):
        raise CifarFormatError(
            f"{path}: {key!r} range over {labels.min()}..{labels.max()}, outside "
            f"0..{num_classes - 1}; is this a file of the other CIFAR data set?"
        )
    return labels.astype(np.int64)


def read_batch_file(path: str | Path, spec: CifarSpec) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 3, 32, 32) uint8 and labels (N,) int64 of one official batch file, checked."""
    path = Path(path)
    batch = _unpickle(path)
    if not isinstance(batch, dict):
        raise CifarFormatError(f"{path}: expected a pickled dict, found a {type(batch).__name__}")
    required = ["data", spec.label_key, *spec.other_labels]
    missing = [key for key in required if key not in batch]
    if missing:
        raise CifarFormatError(
            f"{path}: missing key(s) {missing}; found {sorted(map(str, batch))}. "
            f"Is this a {spec.title} file (the {spec.folder}/ layout)?"
        )
    data = batch["data"]
    row = math.prod(IMAGE_SHAPE)
    if (
        not isinstance(data, np.ndarray)
        or data.dtype != np.uint8
        or data.ndim != 2
        or data.shape[1] != row
    ):
        described = (
            f"shape {data.shape}, dtype {data.dtype}"
            if isinstance(data, np.ndarray)
            else type(data).__name__
        )
        raise CifarFormatError(
            f"{path}: 'data' must be a uint8 array of shape (N, {row}), got {described}"
        )
    labels = _labels(batch, spec.label_key, len(data), spec.num_classes, path)
    for key, classes in spec.other_labels.items():
        _labels(batch, key, len(data), classes, path)
    return data.reshape(-1, *IMAGE_SHAPE), labels


def _missing_files(folder: Path, files: Sequence[str]) -> list[str]:
    return [file for file in files if not (folder / file).is_file()]


def download_cifar(root: str | Path, name: str = "cifar10") -> Path:
    """Download the official archive of ``name`` into ``root``, check its md5 and unpack it there.

    Returns the data set's folder. Uses torchvision's downloader, which skips the download when an
    archive with the right checksum is already in ``root``.
    """
    # imported here: slow to import
    from torchvision.datasets.utils import (
        download_and_extract_archive,
    )

    spec = dataset_spec(name)
    root = Path(root).expanduser()
    download_and_extract_archive(
        spec.url, download_root=str(root), filename=spec.archive, md5=spec.md5
    )
    return root / spec.folder


def load_cifar(
    root: str | Path, name: str = "cifar10", train: bool = True, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Images as a uint8 tensor (N, 3, 32, 32) and labels as int64 (N,), read from ``root``.

    ``root`` holds the data set's official folder (``cifar-10-batches-py/`` or
    ``cifar-100-python/``). When files of the split are missing, ``download=True`` fetches the
    official archive first; otherwise a ``FileNotFoundError`` says which files to put where.
    CIFAR-100 gives its 100 fine labels.
    """
    spec = dataset_spec(name)
    root = Path(root).expanduser()
    folder = root / spec.folder
    files = spec.train_files if train else spec.test_files
    missing = _missing_files(folder, files)
    if missing and download:
        download_cifar(root, name)
        missing = _missing_files(folder, files)
        if missing:
            raise FileNotFoundError(
                f"{spec.archive} was downloaded and unpacked into {root}, "
                f"but {folder} still lacks {', '.join(missing)}"
            )
    if missing:
        raise FileNotFoundError(
            f"{spec.title} {'training' if train else 'test'} files not found: {folder} lacks "
            f"{', '.join(missing)}. Unpack the official archive {spec.url} into {root} (it creates "
            f"{spec.folder}/), or pass download=True."
        )
    parts = [read_batch_file(folder / file, spec) for file in files]
    images = np.concatenate([images for images, _ in parts])
    labels = np.concatenate([labels for _, labels in parts])
    return torch.from_numpy(images), torch.from_numpy(labels)


def load_class_names(root: str | Path, name: str = "cifar10") -> list[str]:
    """The class names of ``name`` from its meta file, in label order
    (CIFAR-100: the fine labels)."""
    spec = dataset_spec(name)
    path = Path(root).expanduser() / spec.folder / spec.meta_file
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: unpack the official archive {spec.url} into "
            f"{Path(root).expanduser()}"
        )
    meta = _unpickle(path)
    names = meta.get(spec.label_names_key) if isinstance(meta, dict) else None
    if not isinstance(names, list) or len(names) != spec.num_classes:
        raise CifarFormatError(
            f"{path}: expected {spec.num_classes} names under {spec.label_names_key!r}"
        )
    return [str(name) for name in names]


def channel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of uint8 images (N, C, H, W), pixels scaled to [0, 1].

    Exact and cheap: it counts each of the 256 pixel values per channel and takes the moments of
    that histogram in float64.
    """
    values = torch.arange(256, dtype=torch.float64) / 255
    means, stds = [], []
    for channel in range(images.shape[1]):
        counts = torch.bincount(images[:, channel].flatten(), minlength=256).double().cpu()
        mean = (counts * values).sum() / counts.sum()
        variance = (counts * (values - mean) ** 2).sum() / counts.sum()
        means.append(mean.item())
        stds.append(variance.sqrt().item())
    return tuple(means), tuple(stds)


def balanced_subset(labels: torch.Tensor, size: int, seed: int = 0) -> torch.Tensor:
    """Sorted indices of ``size`` images drawn at random
    (seeded) with the classes as equal as possible.

    Every class gets ``size // classes`` images; the ``size % classes`` left over go to classes
    drawn at random, one each.
    """
    labels = labels.cpu()
    classes = torch.unique(labels).tolist()
    if not 1 <= size <= len(labels):
        raise ValueError(f"subset size must be between 1 and {len(labels)}, got {size}")
    generator = torch.Generator().manual_seed(seed)
    per_class = torch.full((len(classes),), size // len(classes))
    per_class[torch.randperm(len(classes), generator=generator)[: size % len(classes)]] += 1
    chosen = []
    for label, count in zip(classes, per_class.tolist()):
        members = torch.nonzero(labels == label).flatten()
        if count > len(members):
            raise ValueError(
                f"class {label} has {len(members)} images, "
                f"fewer than the {count} a balanced subset of {size} needs"
            )
        chosen.append(members[torch.randperm(len(members), generator=generator)[:count]])
    return torch.cat(chosen).sort().values


# --------------------------------------------------------------------------------------------------
# Augmenting whole batches


def holdout_split(labels: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted indices ``(train, holdout)`` of a training split with ``size`` images held out: a
    class-balanced choice (:func:`balanced_subset`) that is the same for every run seed, so that
    every run of a study is chosen on the same images."""
    held = torch.zeros(len(labels), dtype=torch.bool)
    held[balanced_subset(labels, size, seed=0)] = True
    return torch.nonzero(~held).flatten(), torch.nonzero(held).flatten()


PAD_MODES = ("zeros", "reflect")
FLIP_MODES = ("random", "alternate")


def crop_and_flip(
    batch: torch.Tensor,
    corners: torch.Tensor,
    flips: torch.Tensor,
    padding: int,
    pad_mode: str = "zeros",
) -> torch.Tensor:
    """Crop and mirror a whole batch at once, given each image's window and flip: what torchvision's
    ``RandomCrop(size, padding)`` followed by ``RandomHorizontalFlip`` do to one image at a time.

    Image ``i`` of ``batch`` (B, C, H, W) is padded by ``padding`` pixels on every side (zero
    pixels, or with ``pad_mode="reflect"`` the image mirrored at its border, as ``F.pad``
    reflects), the H x W window whose top-left corner is ``corners[i] = (top, left)`` in the padded
    image is cut out (``0 <= top, left <= 2 * padding``) and, where ``flips[i]``, mirrored
    left-right.

    How: mirroring commutes with either padding, which is the same on both sides, and the mirror of
    the window at ``left`` is the window at ``2 * padding - left`` of the mirrored image. So the
    images to flip are mirrored first; then all (2 * padding + 1)^2 windows of the padded batch are
    one strided view (no copy), from which each image takes its own window.
    """
    size, channels, height, width = batch.shape
    batch = torch.where(flips[:, None, None, None], batch.flip(-1), batch)
    if pad_mode not in PAD_MODES:
        raise ValueError(f"pad_mode must be one of {', '.join(PAD_MODES)}, got {pad_mode!r}")
    padded = F.pad(batch, (padding,) * 4, mode="constant" if pad_mode == "zeros" else "reflect")
    stride_b, stride_c, stride_h, stride_w = padded.stride()
    shifts = 2 * padding + 1
    windows = padded.as_strided(  # windows[i, top, left] = padded[i, :, top:top + H, left:left + W]
        (size, shifts, shifts, channels, height, width),
        (stride_b, stride_h, stride_w, stride_c, stride_h, stride_w),
    )
    left = torch.where(flips, 2 * padding - corners[:, 1], corners[:, 1])
    return windows[torch.arange(size, device=batch.device), corners[:, 0], left]


# --------------------------------------------------------------------------------------------------
# The loader


def rank_share(size: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous share of a batch of ``size`` images split over ``world_size``
    ranks: images ``rank * size // world_size`` up to ``(rank + 1) * size // world_size``.

    The shares tile the batch with no overlap; they are all ``size / world_size`` images when that
    divides, else they differ by at most one image (and are empty for some ranks when
    ``size < world_size``).
    """
    return slice(rank * size // world_size, (rank + 1) * size // world_size)


def _check_loader_arguments(
    images: torch.Tensor, labels: torch.Tensor, batch_size: int, rank: int, world_size: int
) -> None:
    """Raise a clear error for arguments no :class:`CifarLoader` can use."""
    if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            "expected uint8 images (N, C, H, W) and N labels, "
            f"got {images.dtype} {tuple(images.shape)} and {tuple(labels.shape)}"
        )
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    if not 0 <= rank < world_size:
        raise ValueError(
            f"rank must be in 0..world_size-1, got rank {rank} of world_size {world_size}"
        )


class CifarLoader:
    """Batches of a CIFAR split built on the device: shuffled, cropped, flipped
    and normalised there.

    ``images`` (N, 3, 32, 32) uint8 and ``labels`` (N,) are copied once to ``device`` (through
    pinned memory, without blocking, on CUDA). Each epoch draws its order, crop corners and flips
    from the loader's own CPU generator in one go, so the batches do not depend on the device or on
    any global seed. Iterating gives ``(images, labels)``: images (B, 3, 32, 32) of ``dtype``,
    normalised with ``mean`` and ``std`` (in [0, 1] pixel units; ``dtype=torch.uint8`` gives the raw
    augmented pixels instead), in ``channels_last`` memory format if asked, and int64 labels, both
    on ``device``.

    Args:
        batch_size: images per batch; the last batch of an epoch is smaller unless ``drop_last``.
        shuffle: a new random order every epoch (else the stored order).
        augment: random crop with ``padding`` pixels of padding and random horizontal flip.
        pad_mode: ``"zeros"`` (black pixels, the reference recipe) or ``"reflect"``
            (:func:`crop_and_flip`).
        flips: ``"random"`` (each epoch afresh) or ``"alternate"`` (random in the first epoch,
            then the other way every epoch; the first flips come from the loader's generator, drawn
            when the loader is made, so the epochs' orders and crops differ from a random-flip
            loader's of the same seed).
        mean, std: per-channel statistics for normalisation (default CIFAR-10's; the reference
            code's std is :data:`CIFAR10_REFERENCE_STD`).
        device: where the split lives and the batches are made (``"cuda"`` on a GPU).
        dtype: of the images yielded (``torch.bfloat16`` halves the traffic to the model).
        channels_last: yield images in ``torch.channels_last`` memory format.
        subset: keep only this many images, a seeded class-balanced choice
            (:func:`balanced_subset`).
        seed: seeds the loader's generator (and the subset).
        rank, world_size: yield only share ``rank`` of ``world_size`` of every batch
            (:func:`rank_share`); ``batch_size`` stays the global batch, and ``len`` counts global
            batches. A rank whose share is empty (a batch of fewer than ``world_size`` images, such
            as a short last one) skips that batch, so ranks can then yield different numbers of
            batches.

    One pass at a time: the loader itself holds the position in the epoch, which is what
    :meth:`state_dict` saves. The state does not depend on ``rank`` or ``world_size``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int = 128,
        shuffle: bool = False,
        augment: bool = False,
        padding: int = 4,
        pad_mode: str = "zeros",
        flips: str = "random",
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        drop_last: bool = False,
        subset: int | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        _check_loader_arguments(images, labels, batch_size, rank, world_size)
        if pad_mode not in PAD_MODES or flips not in FLIP_MODES:
            raise ValueError(
                f"pad_mode must be one of {', '.join(PAD_MODES)} and flips one of "
                f"{', '.join(FLIP_MODES)}, got {pad_mode!r} and {flips!r}"
            )
        if subset is not None:
            keep = balanced_subset(labels, subset, seed)
            images, labels = images[keep], labels[keep]
        self.device = torch.device(device)
        self.images = self._to_device(images.contiguous())
        self.labels = self._to_device(labels.to(torch.int64))
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.padding = padding
        self.pad_mode = pad_mode
        self.flips = flips
        self.dtype = dtype
        self.channels_last = channels_last
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        if len(self) == 0:
            raise ValueError(
                f"drop_last with batch_size {batch_size} leaves no batch of the "
                f"{self.num_images} images"
            )
        # normalised = (pixel / 255 - mean) / std = pixel * scale + bias, with pixel in 0..255
        std_255 = torch.tensor(std, dtype=torch.float32) * 255
        self.scale = (1 / std_255).view(1, -1, 1, 1).to(self.device)
        self.bias = (
            (-torch.tensor(mean, dtype=torch.float32) * 255 / std_255)
            .view(1, -1, 1, 1)
            .to(self.device)
        )
        self.generator = torch.Generator().manual_seed(seed)
        # each image's flip in even epochs (alternate flips; odd epochs mirror it)
        self.first_flips = (
            torch.rand(self.num_images, generator=self.generator) < 0.5
            if flips == "alternate"
            else None
        )
        self.epoch = 0  # the epoch under way, or the next one if none is
        self.position = 0  # batches of that epoch handed out so far
        self._plan: dict[str, torch.Tensor] | None = None  # order, corners and flips of the epoch
        self._plan_state: torch.Tensor | None = None  # generator state the plan was drawn from

    @classmethod
    def from_root(
        cls,
        root: str | Path | None = None,
        name: str = "cifar10",
        train: bool = True,
        download: bool = False,
        **options: Any,
    ) -> CifarLoader:
        """A loader over a split read by :func:`load_cifar` (``root`` defaults to ``$SIMAM_DATA``).

        The training split is shuffled and augmented and the test split is not, unless ``options``
        say otherwise; normalisation defaults to the data set's own mean and std.
        """
        spec = dataset_spec(name)
        images, labels = load_cifar(data_root() if root is None else root, name, train, download)
        options = {
            "shuffle": train,
            "augment": train,
            "mean": spec.mean,
            "std": spec.std,
            **options,
        }
        return cls(images, labels, **options)

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.device.type == "cuda":
            return tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor.to(self.device)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def __len__(self) -> int:
        """Batches per epoch."""
        if self.drop_last:
            return self.num_images // self.batch_size
        return math.ceil(self.num_images / self.batch_size)

    def _draw_plan(self) -> None:
        """Draw the order, crop corners and flips of the epoch from the generator
        (and advance it)."""
        n = self.num_images
        self._plan_state = self.generator.get_state()
        plan = {
            "order": torch.randperm(n, generator=self.generator)
            if self.shuffle
            else torch.arange(n)
        }
        if self.augment:
            plan["corners"] = torch.randint(
                0, 2 * self.padding + 1, (n, 2), generator=self.generator
            )
            plan["flips"] = (
                self.first_flips[plan["order"]] ^ bool(self.epoch % 2)
                if self.first_flips is not None
                else torch.rand(n, generator=self.generator) < 0.5
            )
        self._plan = {key: self._to_device(value) for key, value in plan.items()}

    def _batch(self, number: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's share of batch ``number`` of the current epoch."""
        start = number * self.batch_size
        share = rank_share(
            min(self.batch_size, self.num_images - start), self.rank, self.world_size
        )
        window = slice(start + share.start, start + share.stop)
        index = self._plan["order"][window]
        images = self.images.index_select(0, index)
        if self.augment:
            images = crop_and_flip(
                images,
                self._plan["corners"][window],
                self._plan["flips"][window],
                self.padding,
                self.pad_mode,
            )
        if self.dtype != torch.uint8:
            images = torch.addcmul(self.bias, images.float(), self.scale).to(self.dtype)
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images, self.labels.index_select(0, index)

    def _close_finished_epoch(self) -> None:
        if self.position >= len(self):
            self.epoch += 1
            self.position = 0
            self._plan = None

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The rest of the current epoch, or a new epoch if the last one was finished."""
        self._close_finished_epoch()
        if self._plan is None:
            self._draw_plan()
        while self.position < len(self):
            self.position += 1  # a batch counts as consumed once handed out
            images, labels = self._batch(self.position - 1)
            if len(labels):  # empty only for a rank's share of a short batch
                yield images, labels
        self._close_finished_epoch()

    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: epoch, batches handed out in it,
        and the generator at its start."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "generator": (
                self._plan_state if self._plan is not None else self.generator.get_state()
            ).clone(),
            "num_images": self.num_images,
            "batches_per_epoch": len(self),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume where :meth:`state_dict` was taken:
        the next batch is the one that would have come."""
        if (state["num_images"], state["batches_per_epoch"]) != (self.num_images, len(self)):
            raise ValueError(
                f"this state is of a loader with {state['num_images']} images in "
                f"{state['batches_per_epoch']} batches per epoch; "
                f"this loader has {self.num_images} in {len(self)}"
            )
        self.generator.set_state(state["generator"])
        self.epoch, self.position = state["epoch"], state["position"]
        self._draw_plan()  # the epoch's plan again, and the generator where it was after drawing it

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.num_images} images, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, augment={self.augment}, device={self.device}, "
            f"dtype={self.dtype}, epoch={self.epoch}, position={self.position}"
            + (f", rank={self.rank}, world_size={self.world_size})" if self.world_size > 1 else ")")
        )
