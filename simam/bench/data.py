"""``python -m simam.bench data``: images per second of :class:`simam.data.CifarLoader` against
torchvision's ``CIFAR10`` dataset with a standard ``DataLoader``, on one epoch of real CIFAR-10.

Both pipelines do the reference code's training augmentation: pad 4 with zeros and take a random
32x32 crop, random horizontal flip, normalise; batches of 128 in a new random order every epoch.
torchvision's pipeline is the reference code's: ``RandomCrop(32, padding=4)`` (the reference
writes it as ``Pad(4)`` then ``RandomCrop(32)``, the same thing), ``RandomHorizontalFlip()``,
``ToTensor()``, ``Normalize(mean, std)``, applied image by image to PIL images in ``--workers``
worker processes (default 2 for a 2-core machine; the reference defaults to 16), without
persistent workers. The two run in one process, epochs interleaved, and only the data is
consumed: each batch is summed and dropped, no model runs.

:class:`CifarLoader` works in the main process with ``--threads`` torch threads, 1 by default: half
the cores that torchvision's two workers use, and its batch operations (a few hundred kilobytes
each) gain little from more threads, while on a busy machine the threads' synchronisation can cost
many times the work itself.

torchvision's ``CIFAR10`` checks the md5 sum of every file and so refuses copies that are not
byte-identical to the official archive (such as a re-pickled offline copy). The benchmark uses
``UncheckedCIFAR10``, torchvision's class with its md5 sums set to ``None``: its own pickle reading
and its own ``__getitem__`` are unchanged, only the checksum comparison is skipped (files must still
exist).

The data root is ``$SIMAM_DATA`` (see :func:`simam.settings.data_root`).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterable

import torch

from simam.bench import summary
from simam.data import CIFAR10_MEAN, CIFAR10_STD, DATASETS, CifarLoader, load_cifar
from simam.settings import data_root


def _unchecked_cifar10() -> type:
    """torchvision's CIFAR10 with every md5 sum set to None,
    so only the files' presence is checked."""
    from torchvision.datasets import CIFAR10

    class UncheckedCIFAR10(CIFAR10):
        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    return UncheckedCIFAR10


def torchvision_loader(
    root: str, batch_size: int, workers: int, pin_memory: bool
) -> torch.utils.data.DataLoader:
    """The reference code's training pipeline: torchvision dataset, per-image transforms,
    DataLoader."""
    from torchvision import transforms

    augment = transforms.Compose(
        [
            transforms.RandomCrop(32, padding=4),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD),
        ]
    )
    dataset = _unchecked_cifar10()(root, train=True, transform=augment)
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=workers, pin_memory=pin_memory
    )


def consume(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]], device: torch.device
) -> tuple[int, float]:
    """Touch every batch on ``device`` (sum it); return the image count and the seconds it took."""
    start = time.perf_counter()
    count, total = 0, torch.zeros((), device=device)
    for images, labels in batches:
        images = images.to(device, non_blocking=True)
        total += images.sum() + labels.to(device, non_blocking=True).sum()
        count += len(images)
    total.item()  # waits for the device
    return count, time.perf_counter() - start


def timed(make: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    made = make()
    return made, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simam.bench data", description=summary(__doc__)
    )
    parser.add_argument(
        "--epochs", type=int, default=1, help="epochs per loader, interleaved (default 1)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=128, help="images per batch (default 128)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="DataLoader worker processes for torchvision (default 2)",
    )
    parser.add_argument(
        "--device",
        default="cpu",
        help="where batches are delivered (default cpu; cuda on a GPU machine)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the main process, where CifarLoader works (default 1)",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    root = data_root()
    spec = DATASETS["cifar10"]
    missing = [
        file
        for file in (*spec.train_files, spec.meta_file)
        if not (root / spec.folder / file).is_file()
    ]
    if missing:
        print(
            f"CIFAR-10 not found: {root / spec.folder} lacks {', '.join(missing)}. Set SIMAM_DATA "
            f"to the folder that holds {spec.folder}/ (or unpack {spec.url} under {root}).",
            file=sys.stderr,
        )
        return 2
    device = torch.device(args.device)

    tv_loader, tv_setup = timed(
        lambda: torchvision_loader(str(root), args.batch_size, args.workers, device.type == "cuda")
    )

    def make_ours() -> CifarLoader:
        images, labels = load_cifar(root, "cifar10", train=True)
        return CifarLoader(
            images, labels, batch_size=args.batch_size, shuffle=True, augment=True, device=device
        )

    our_loader, our_setup = timed(make_ours)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds, images = measure({"torchvision": tv_loader, "simam": our_loader}, args.epochs, device)
    print_report(seconds, images, {"torchvision": tv_setup, "simam": our_setup}, args, device)
    return 0


def measure(
    loaders: dict[str, Iterable[tuple[torch.Tensor, torch.Tensor]]],
    epochs: int,
    device: torch.device,
) -> tuple[dict[str, float], dict[str, int]]:
    """Seconds and images per loader over ``epochs`` epochs,
    the loaders taking turns epoch by epoch."""
    seconds = {name: 0.0 for name in loaders}
    images = {name: 0 for name in loaders}
    for _ in range(epochs):
        for name, loader in loaders.items():
            count, elapsed = consume(loader, device)
            images[name] += count
            seconds[name] += elapsed
    return seconds, images


def print_report(
    seconds: dict[str, float],
    images: dict[str, int],
    setup: dict[str, float],
    args: argparse.Namespace,
    device: torch.device,
) -> None:
    rate = {name: images[name] / seconds[name] for name in seconds}
    print(
        f"CIFAR-10 training split, {args.epochs} epoch(s) of {images['simam'] // args.epochs:,} "
        f"images per loader, batch {args.batch_size}, crop + flip + normalise, batches delivered "
        f"on {device}; {torch.get_num_threads()} torch thread(s) in the main process; "
        "printed by `python -m simam.bench data`."
    )
    print()
    print("| loader | set-up (s) | seconds per epoch | images/s |")
    print("| --- | ---: | ---: | ---: |")
    print(
        f"| torchvision CIFAR10 + DataLoader ({args.workers} workers) | {setup['torchvision']:.2f} "
        f"| {seconds['torchvision'] / args.epochs:.2f} | {rate['torchvision']:,.0f} |"
    )
    print(
        f"| simam.data.CifarLoader | {setup['simam']:.2f} | {seconds['simam'] / args.epochs:.2f} | "
        f"{rate['simam']:,.0f} |"
    )
    print()
    print(
        f"CifarLoader delivers {rate['simam'] / rate['torchvision']:.1f}x the images per second of "
        "torchvision's pipeline."
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
