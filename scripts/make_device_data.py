"""A compact real CIFAR-10 to send to a GPU machine that has no data and no network.

    SIMAM_DATA=/path/to/data python scripts/make_device_data.py --out device-data
    # or: make device-data

Writes a seeded, class-balanced subset of the official CIFAR-10, 8,000 training and 2,000 test
images by default, in the official "python version" layout: ``device-data/cifar-10-batches-py/``
with five training batch files, ``test_batch`` and ``batches.meta``, as in the official archive
but with fewer images. Every command of the course reads it unchanged with
``SIMAM_DATA=device-data`` or ``--data-root device-data``; ``scripts/device_check.py`` reads it by
default. 29 MiB: the files are left uncompressed, since zlib keeps 92% of CIFAR's pixels and a
compressed format would need a reader of its own.

The official files are read from ``--data-root`` (default ``$SIMAM_DATA``). A complete subset of the
asked sizes already in ``--out`` is kept; the files are written into a temporary folder that is then
renamed into place, so a build cut short never leaves half a subset.
"""

from __future__ import annotations

import argparse
import pickle
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a clone whether or not the package is installed

from simam.data import DATASETS, balanced_subset, load_cifar, load_class_names  # noqa: E402
from simam.settings import data_root  # noqa: E402

SPEC = DATASETS["cifar10"]
TRAIN_IMAGES, TEST_IMAGES, SEED = 8_000, 2_000, 0


def complete(folder: Path) -> bool:
    """Whether ``folder`` (a data root) holds every file of the official CIFAR-10 layout."""
    files = (*SPEC.train_files, *SPEC.test_files, SPEC.meta_file)
    return all((folder / SPEC.folder / name).is_file() for name in files)


def counts(folder: Path) -> tuple[int, int]:
    """The training and test images of the CIFAR-10 under the data root ``folder``."""
    return tuple(len(load_cifar(folder, "cifar10", train=train)[1]) for train in (True, False))


def write_batch(path: Path, images, labels, name: str) -> None:
    """One batch file as the official ones hold it: ``data`` (N, 3072) uint8 and ``labels`` a list
    of ints (pickle protocol 4: the pixels as raw bytes; protocol 2 would inflate them by half)."""
    batch = {
        "batch_label": name,
        "data": images.reshape(len(images), -1).numpy(),
        "labels": labels.tolist(),
    }
    with path.open("wb") as file:
        pickle.dump(batch, file, protocol=4)


def build(
    source: Path,
    out: Path,
    train_images: int = TRAIN_IMAGES,
    test_images: int = TEST_IMAGES,
    seed: int = SEED,
) -> str:
    """Write the subset of the CIFAR-10 under ``source`` into the data root ``out``; what was done,
    in words."""
    if complete(out):
        found = counts(out)
        if found == (train_images, test_images):
            return (
                f"found {out / SPEC.folder} ({found[0]:,} training, {found[1]:,} test images); kept"
            )
        raise ValueError(
            f"{out / SPEC.folder} holds {found[0]:,} training and {found[1]:,} test images, "
            f"not the {train_images:,} and {test_images:,} asked for: "
            "delete it to build the subset again"
        )
    if not complete(source):
        raise FileNotFoundError(
            f"the official CIFAR-10 is not under {source} (it lacks {SPEC.folder}/ or a file "
            "of it): point --data-root or SIMAM_DATA at the folder that holds it"
        )
    parts = len(SPEC.train_files)
    if train_images < parts:
        raise ValueError(
            f"--train {train_images}: at least one image for each of the {parts} "
            "training batch files"
        )
    # a data root of its own, renamed into place once it reads back whole
    staging = out / ".partial"
    shutil.rmtree(staging, ignore_errors=True)  # left by a build that was cut short
    (staging / SPEC.folder).mkdir(parents=True)
    for train, size, names in (
        (True, train_images, SPEC.train_files),
        (False, test_images, SPEC.test_files),
    ):
        images, labels = load_cifar(source, "cifar10", train=train)
        keep = balanced_subset(labels, size, seed)  # a clear error for a size out of range
        for number, (name, chunk) in enumerate(zip(names, keep.tensor_split(len(names)))):
            label = (
                f"{'training' if train else 'testing'} batch {number + 1} of {len(names)}, a subset"
            )
            write_batch(staging / SPEC.folder / name, images[chunk], labels[chunk], label)
    shutil.copyfile(source / SPEC.folder / SPEC.meta_file, staging / SPEC.folder / SPEC.meta_file)
    if (
        counts(staging) != (train_images, test_images)
        or len(load_class_names(staging, "cifar10")) != 10
    ):
        # never expected: the course's own reader
        raise RuntimeError(f"{staging} does not read back as written")
    (staging / SPEC.folder).rename(out / SPEC.folder)
    staging.rmdir()
    return (
        f"built {out / SPEC.folder} from {source}: "
        f"{train_images:,} training, {test_images:,} test images"
    )


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "device-data",
        help="data root to write (default device-data/ in the clone)",
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="folder holding the official cifar-10-batches-py/ (default $SIMAM_DATA)",
    )
    parser.add_argument(
        "--train",
        type=int,
        default=TRAIN_IMAGES,
        help=f"training images (default {TRAIN_IMAGES:,})",
    )
    parser.add_argument(
        "--test", type=int, default=TEST_IMAGES, help=f"test images (default {TEST_IMAGES:,})"
    )
    parser.add_argument(
        "--seed", type=int, default=SEED, help=f"seeds the choice of images (default {SEED})"
    )
    args = parser.parse_args(argv)
    try:
        done = build(args.data_root or data_root(), args.out, args.train, args.test, args.seed)
    except (OSError, ValueError) as error:
        print(f"make_device_data: error: {error}", file=sys.stderr)
        return 2
    print(f"{done}; {folder_bytes(args.out / SPEC.folder) / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
