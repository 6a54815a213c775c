"""The CIFAR reader and the on-device loader: small files in both official layouts, made here, and
the real CIFAR-10 when ``SIMAM_DATA`` points at a folder that holds it."""

from __future__ import annotations

import os
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from simam.data import (
    CIFAR10_MEAN,
    CIFAR10_REFERENCE_STD,
    CIFAR10_STD,
    CIFAR100_MEAN,
    CIFAR100_STD,
    DATASETS,
    CifarFormatError,
    CifarLoader,
    balanced_subset,
    channel_stats,
    crop_and_flip,
    holdout_split,
    load_cifar,
    load_class_names,
)

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------------
# Small files in the official layouts


def write_pickle(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=2))


def random_rows(count: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(count, 3072), dtype=np.uint8)


def make_cifar10(root: Path, per_file: int = 20, seed: int = 0) -> dict[str, np.ndarray]:
    """Five training batches and a test batch of random images, labels cycling over the 10
    classes."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    written = {"train_rows": [], "train_labels": []}
    for i in range(1, 6):
        rows, labels = random_rows(per_file, rng), [(i + k) % 10 for k in range(per_file)]
        write_pickle(
            folder / f"data_batch_{i}",
            {"batch_label": f"training batch {i} of 5", "labels": labels, "data": rows},
        )
        written["train_rows"].append(rows)
        written["train_labels"] += labels
    test_rows = random_rows(per_file, rng)
    write_pickle(
        folder / "test_batch",
        {
            "batch_label": "testing batch 1 of 1",
            "labels": [k % 10 for k in range(per_file)],
            "data": test_rows,
        },
    )
    names = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    write_pickle(
        folder / "batches.meta",
        {"label_names": names, "num_cases_per_batch": per_file, "num_vis": 3072},
    )
    return {
        "train_rows": np.concatenate(written["train_rows"]),
        "train_labels": np.array(written["train_labels"]),
        "test_rows": test_rows,
    }


def make_cifar100(
    root: Path, train: int = 200, test: int = 100, seed: int = 0
) -> dict[str, np.ndarray]:
    """``train`` and ``test`` files with fine and coarse labels, and the meta file."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    written = {}
    for split, count in (("train", train), ("test", test)):
        rows = random_rows(count, rng)
        fine = [k % 100 for k in range(count)]
        write_pickle(
            folder / split,
            {
                "filenames": [f"{k}.png" for k in range(count)],
                "batch_label": split,
                "fine_labels": fine,
                "coarse_labels": [k // 5 for k in fine],
                "data": rows,
            },
        )
        written[split] = rows
    write_pickle(
        folder / "meta",
        {
            "fine_label_names": [f"fine_{k}" for k in range(100)],
            "coarse_label_names": [f"coarse_{k}" for k in range(20)],
        },
    )
    return written


@pytest.fixture
def cifar10_root(tmp_path: Path) -> Path:
    make_cifar10(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------------------------------
# Reading


def test_reads_the_cifar10_layout(tmp_path):
    written = make_cifar10(tmp_path)
    images, labels = load_cifar(tmp_path, "cifar10", train=True)
    assert images.dtype == torch.uint8 and images.shape == (100, 3, 32, 32)
    assert labels.dtype == torch.int64 and labels.tolist() == written["train_labels"].tolist()
    # a row holds 1024 red, then 1024 green, then 1024 blue values, each image row-major
    assert torch.equal(images.reshape(100, -1), torch.from_numpy(written["train_rows"]))
    assert images[7, 1, 2, 5] == written["train_rows"][7, 1024 + 2 * 32 + 5]
    test_images, test_labels = load_cifar(tmp_path, "cifar10", train=False)
    assert torch.equal(test_images.reshape(20, -1), torch.from_numpy(written["test_rows"]))
    assert test_labels.tolist() == [k % 10 for k in range(20)]
    assert load_class_names(tmp_path, "cifar10")[0] == "airplane"


def test_reads_the_cifar100_layout(tmp_path):
    written = make_cifar100(tmp_path)
    images, labels = load_cifar(tmp_path, "cifar100", train=True)
    assert images.shape == (200, 3, 32, 32) and labels.tolist() == [k % 100 for k in range(200)]
    assert torch.equal(images.reshape(200, -1), torch.from_numpy(written["train"]))
    assert load_cifar(tmp_path, "cifar100", train=False)[0].shape == (100, 3, 32, 32)
    names = load_class_names(tmp_path, "cifar100")
    assert len(names) == 100 and names[99] == "fine_99"


def test_unknown_data_set_is_named(tmp_path):
    with pytest.raises(ValueError, match="cifar10, cifar100"):
        load_cifar(tmp_path, "mnist")


def test_missing_files_say_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        load_cifar(tmp_path, "cifar10", train=True)
    message = str(error.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "data_batch_1" in message and "data_batch_5" in message
    assert "cifar-10-python.tar.gz" in message and "download=True" in message


def test_download_fetches_checks_and_unpacks(tmp_path, monkeypatch):
    """The real download path of torchvision, with only the network fetch replaced by a small
    archive."""
    import torchvision.datasets.utils as tv_utils

    source = tmp_path / "source"
    written = make_cifar100(source, train=50, test=20)
    fetched = []

    def fake_download_url(url, root, filename=None, md5=None, max_redirect_hops=3):
        fetched.append((url, md5))
        Path(root).mkdir(parents=True, exist_ok=True)
        with tarfile.open(Path(root) / filename, "w:gz", compresslevel=1) as archive:
            archive.add(source / "cifar-100-python", arcname="cifar-100-python")

    monkeypatch.setattr(tv_utils, "download_url", fake_download_url)
    root = tmp_path / "data"
    images, labels = load_cifar(root, "cifar100", train=True, download=True)
    assert fetched == [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
            "eb9058c3a382ffc7106e4002c42a8d85",
        )
    ]
    assert torch.equal(images.reshape(50, -1), torch.from_numpy(written["train"]))
    assert (root / "cifar-100-python.tar.gz").is_file()
    load_cifar(root, "cifar100", train=False, download=True)  # files present now: no second fetch
    assert len(fetched) == 1
    assert DATASETS["cifar10"].md5 == "c58f30108f718f92721af3b95e74349a"


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _replace(**changes):
    def change(path: Path) -> None:
        batch = pickle.loads(path.read_bytes(), encoding="latin1")
        for key, value in changes.items():
            if value is None:
                del batch[key]
            else:
                batch[key] = value(batch) if callable(value) else value
        write_pickle(path, batch)

    return change


class _RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())


CORRUPTIONS = {
    "truncated": (_truncate, "truncated or corrupt"),
    "not a pickle": (
        lambda path: path.write_bytes(b"this is not a pickle at all"),
        "truncated or corrupt",
    ),
    "code in the pickle": (
        lambda path: write_pickle(path, {"data": _RunsCode()}),
        "refusing to build",
    ),
    "not a dict": (lambda path: write_pickle(path, [1, 2, 3]), "expected a pickled dict"),
    "missing labels": (_replace(labels=None), "missing key"),
    "wrong data shape": (_replace(data=lambda b: b["data"][:, :3000]), r"shape \(N, 3072\)"),
    "wrong data dtype": (_replace(data=lambda b: b["data"].astype(np.float32)), "uint8"),
    "labels out of range": (_replace(labels=lambda b: [10] + b["labels"][1:]), "outside 0..9"),
    "negative label": (_replace(labels=lambda b: [-1] + b["labels"][1:]), "outside 0..9"),
    "count mismatch": (_replace(labels=lambda b: b["labels"][:-1]), "20 images but 19"),
    "labels not integers": (
        _replace(labels=lambda b: [str(x) for x in b["labels"]]),
        "list of integers",
    ),
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_damaged_files_give_a_clear_error_naming_the_file(cifar10_root, corruption):
    damage, message = CORRUPTIONS[corruption]
    path = cifar10_root / "cifar-10-batches-py" / "data_batch_3"
    damage(path)
    with pytest.raises(CifarFormatError, match=message) as error:
        load_cifar(cifar10_root, "cifar10", train=True)
    assert str(path) in str(error.value)


def test_cifar100_coarse_labels_are_checked(tmp_path):
    make_cifar100(tmp_path)
    path = tmp_path / "cifar-100-python" / "test"
    _replace(coarse_labels=lambda b: [20] * len(b["coarse_labels"]))(path)
    with pytest.raises(CifarFormatError, match="coarse_labels"):
        load_cifar(tmp_path, "cifar100", train=False)


def test_cifar10_files_in_the_cifar100_folder_are_rejected(tmp_path):
    make_cifar100(tmp_path)
    write_pickle(
        tmp_path / "cifar-100-python" / "train",
        {"data": random_rows(5, np.random.default_rng(0)), "labels": [0] * 5},
    )
    with pytest.raises(CifarFormatError, match="missing key"):
        load_cifar(tmp_path, "cifar100", train=True)


# --------------------------------------------------------------------------------------------------
# Statistics and subsets


def test_channel_stats_match_a_direct_computation():
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    mean, std = channel_stats(images)
    pixels = images.double().div(255).transpose(0, 1).reshape(3, -1)
    assert np.allclose(mean, pixels.mean(1).numpy(), atol=1e-12)
    assert np.allclose(std, pixels.std(1, unbiased=False).numpy(), atol=1e-12)


def test_balanced_subset_is_balanced_seeded_and_a_subset():
    labels = torch.arange(1000) % 10
    chosen = balanced_subset(labels, 95, seed=3)
    counts = torch.bincount(labels[chosen], minlength=10)
    assert len(chosen) == 95 and len(set(chosen.tolist())) == 95
    assert counts.max() - counts.min() <= 1 and counts.min() == 9
    assert torch.equal(chosen, balanced_subset(labels, 95, seed=3))
    assert not torch.equal(chosen, balanced_subset(labels, 95, seed=4))
    assert torch.equal(chosen, chosen.sort().values)
    with pytest.raises(ValueError, match="between 1 and 1000"):
        balanced_subset(labels, 1001)
    with pytest.raises(ValueError, match="class"):
        balanced_subset(torch.tensor([0, 0, 0, 1]), 4)


# --------------------------------------------------------------------------------------------------
# Augmentation


def reference_crop_flip(
    image: torch.Tensor, top: int, left: int, flip: bool, padding: int, mode: str = "zeros"
) -> torch.Tensor:
    """One image, the obvious way: pad (with zeros, or with numpy's mirror without the edge,
    an implementation independent of torch's), cut the window, mirror."""
    if mode == "zeros":
        padded = F.pad(image, (padding, padding, padding, padding))
    else:
        padded = torch.from_numpy(
            np.pad(image.numpy(), ((0, 0), (padding, padding), (padding, padding)), "reflect")
        )
    window = padded[:, top : top + image.shape[1], left : left + image.shape[2]]
    return window.flip(-1) if flip else window


@pytest.mark.parametrize("mode, padding", [("zeros", 4), ("reflect", 4), ("reflect", 2)])
def test_crop_and_flip_equals_the_per_image_version(mode, padding):
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8, generator=generator)
    corners = torch.randint(0, 2 * padding + 1, (200, 2), generator=generator)
    far = 2 * padding
    corners[:4] = torch.tensor([[0, 0], [far, far], [0, far], [far, 0]])  # the extreme windows
    flips = torch.rand(200, generator=generator) < 0.5
    out = crop_and_flip(batch, corners, flips, padding, mode)
    expected = torch.stack(
        [
            reference_crop_flip(batch[i], *corners[i].tolist(), bool(flips[i]), padding, mode)
            for i in range(200)
        ]
    )
    assert out.dtype == torch.uint8 and torch.equal(out, expected)


def test_reflect_padding_shows_no_black_border_and_an_unknown_mode_is_named():
    batch = torch.full((2, 3, 32, 32), 7, dtype=torch.uint8)
    corners = torch.tensor([[0, 0], [4, 4]])
    out = crop_and_flip(batch, corners, torch.tensor([False, True]), 2, "reflect")
    assert torch.equal(out, batch)  # a constant image translated by reflection stays constant
    with pytest.raises(ValueError, match="pad_mode must be one of zeros, reflect"):
        crop_and_flip(batch, corners, torch.tensor([False, True]), 2, "wrap")


def test_alternate_flips_mirror_each_image_the_other_way_every_epoch_and_resume():
    images = torch.randint(0, 256, (24, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(24) % 10
    options = {"batch_size": 8, "shuffle": True, "augment": True, "padding": 0, "seed": 3}
    loader = CifarLoader(images, labels, dtype=torch.uint8, flips="alternate", **options)

    def flipped_by_image() -> torch.Tensor:
        """One epoch: for each image of the split, whether it came mirrored (padding 0: the
        batches are the images themselves or their mirrors)."""
        flips = torch.full((24,), -1)
        for batch, _ in loader:
            for image in batch:
                for index in range(24):
                    if torch.equal(image, images[index]):
                        flips[index] = 0
                    elif torch.equal(image, images[index].flip(-1)):
                        flips[index] = 1
        assert (flips >= 0).all()  # every image once per epoch
        return flips.bool()

    seen = [flipped_by_image() for _ in range(4)]
    assert 0 < seen[0].sum() < 24  # the first epoch's flips are random
    for earlier, later in zip(seen, seen[1:]):
        assert torch.equal(later, ~earlier)
    # the batches themselves agree: an image and its mirror, epoch after epoch
    resumed = CifarLoader(images, labels, dtype=torch.uint8, flips="alternate", **options)
    resumed.load_state_dict(loader.state_dict())
    assert torch.equal(next(iter(resumed))[0], next(iter(loader))[0])
    with pytest.raises(ValueError, match="flips one of random, alternate"):
        CifarLoader(images, labels, flips="sometimes")


def test_holdout_split_is_balanced_disjoint_and_the_same_for_every_run():
    labels = torch.arange(1000) % 10
    train, held = holdout_split(labels, 100)
    assert len(train) + len(held) == 1000 and not set(train.tolist()) & set(held.tolist())
    assert torch.bincount(labels[held]).tolist() == [10] * 10
    assert torch.equal(holdout_split(labels, 100)[1], held)


def all_crops_and_flips(image: torch.Tensor, padding: int) -> torch.Tensor:
    """Every window of the zero-padded image and of its mirror: (2, 2p+1, 2p+1, C, H, W)."""
    padded = F.pad(image, (padding, padding, padding, padding))
    windows = (
        padded.unfold(1, image.shape[1], 1).unfold(2, image.shape[2], 1).permute(1, 2, 0, 3, 4)
    )
    return torch.stack([windows, windows.flip(-1)])


def test_loader_batches_are_crops_and_flips_of_their_images():
    # no zero pixels: padding is recognisable
    images = torch.randint(1, 256, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    loader = CifarLoader(images, labels, batch_size=16, augment=True, dtype=torch.uint8, seed=1)
    out = torch.cat([batch for batch, _ in loader])
    seen = torch.zeros(2, 9, 9, dtype=torch.bool)
    for i in range(40):
        matches = (all_crops_and_flips(images[i], 4) == out[i]).flatten(3).all(-1)
        assert matches.sum() == 1, f"image {i} is not exactly one crop/flip of its source"
        seen |= matches
    assert seen[0].any() and seen[1].any() and seen.sum() > 20  # both flips and many windows occur


def test_normalisation_matches_totensor_then_normalize():
    images = torch.randint(0, 256, (40, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(40) % 10
    options = dict(batch_size=16, shuffle=True, augment=True, seed=5)
    raw = [batch for batch, _ in CifarLoader(images, labels, dtype=torch.uint8, **options)]
    normalised = [
        batch for batch, _ in CifarLoader(images, labels, std=CIFAR10_REFERENCE_STD, **options)
    ]
    mean, std = (
        torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1),
        torch.tensor(CIFAR10_REFERENCE_STD).view(1, 3, 1, 1),
    )
    for r, n in zip(raw, normalised):
        assert n.dtype == torch.float32
        torch.testing.assert_close(n, (r.float() / 255 - mean) / std, atol=1e-5, rtol=1e-5)
    # a padded pixel is a raw 0 (black), as with torchvision's RandomCrop(32, padding=4)
    black = torch.cat(raw) == 0
    assert black.any()
    assert torch.allclose(
        torch.cat(normalised)[black], (-mean / std).expand(len(black), 3, 32, 32)[black], atol=1e-5
    )


def test_output_dtype_and_channels_last():
    images, labels = (
        torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8),
        torch.arange(20) % 10,
    )
    plain = next(iter(CifarLoader(images, labels, batch_size=8, augment=True)))[0]
    last = next(iter(CifarLoader(images, labels, batch_size=8, augment=True, channels_last=True)))[
        0
    ]
    assert last.is_contiguous(memory_format=torch.channels_last) and torch.equal(plain, last)
    half = next(
        iter(CifarLoader(images, labels, batch_size=8, augment=True, dtype=torch.bfloat16))
    )[0]
    assert half.dtype == torch.bfloat16 and torch.allclose(half.float(), plain, atol=0.02)


# --------------------------------------------------------------------------------------------------
# Order, determinism, resuming


def epochs(loader: CifarLoader, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [batch for _ in range(count) for batch in loader]


def test_an_epoch_covers_every_image_once():
    images, labels = torch.randint(0, 256, (50, 3, 32, 32), dtype=torch.uint8), torch.arange(50)
    loader = CifarLoader(images, labels, batch_size=16, shuffle=True, seed=0)
    assert len(loader) == 4
    batches = list(loader)
    assert [len(b) for _, b in batches] == [16, 16, 16, 2]
    seen = torch.cat([b for _, b in batches])
    assert sorted(seen.tolist()) == list(range(50)) and seen.tolist() != list(range(50))
    for batch_images, batch_labels in batches:
        assert batch_labels.dtype == torch.int64
        mean, std = (
            torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1),
            torch.tensor(CIFAR10_STD).view(1, 3, 1, 1),
        )
        torch.testing.assert_close(
            batch_images, (images[batch_labels].float() / 255 - mean) / std, atol=1e-5, rtol=1e-5
        )
    dropped = CifarLoader(images, labels, batch_size=16, shuffle=True, drop_last=True)
    assert len(dropped) == 3 and [len(b) for _, b in dropped] == [16, 16, 16]
    with pytest.raises(ValueError, match="leaves no batch"):
        CifarLoader(images, labels, batch_size=64, drop_last=True)


def test_same_seed_same_batches_other_seed_other_batches():
    images, labels = (
        torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8),
        torch.arange(30) % 10,
    )
    options = dict(batch_size=8, shuffle=True, augment=True)
    first = epochs(CifarLoader(images, labels, seed=7, **options), 2)
    second = epochs(CifarLoader(images, labels, seed=7, **options), 2)
    other = epochs(CifarLoader(images, labels, seed=8, **options), 2)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, second))
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first, other))
    # each epoch reshuffles
    assert not all(torch.equal(a[1], b[1]) for a, b in zip(first[:4], first[4:]))


# start, mid-epoch, end of epoch, mid second and third epoch
@pytest.mark.parametrize("stop", [0, 3, 4, 6, 11])
def test_state_dict_resumes_the_identical_sequence(stop):
    images, labels = torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8), torch.arange(30)
    options = dict(batch_size=8, shuffle=True, augment=True, seed=11)
    reference = CifarLoader(images, labels, **options)
    sequence, states = [], [reference.state_dict()]
    for _ in range(4):
        for batch in reference:
            sequence.append(batch)
            states.append(reference.state_dict())
    state = pickle.loads(pickle.dumps(states[stop]))  # as if saved in a checkpoint
    resumed = CifarLoader(images, labels, **{**options, "seed": 99})
    resumed.load_state_dict(state)
    rest = []
    while len(rest) < len(sequence) - stop:
        rest.extend(resumed)
    for (a_images, a_labels), (b_images, b_labels) in zip(sequence[stop:], rest):
        assert torch.equal(a_labels, b_labels) and torch.equal(a_images, b_images)
    assert (resumed.epoch, resumed.position) == (reference.epoch, reference.position)


def test_state_of_another_loader_is_refused():
    images, labels = torch.randint(0, 256, (30, 3, 32, 32), dtype=torch.uint8), torch.arange(30)
    state = CifarLoader(images, labels, batch_size=8).state_dict()
    with pytest.raises(ValueError, match="30 images in 4 batches"):
        CifarLoader(images, labels, batch_size=10).load_state_dict(state)


def test_subset_option_keeps_a_balanced_seeded_subset():
    images, labels = (
        torch.randint(0, 256, (200, 3, 32, 32), dtype=torch.uint8),
        torch.arange(200) % 10,
    )
    loader = CifarLoader(images, labels, batch_size=64, subset=50, seed=2)
    assert loader.num_images == 50 and len(loader) == 1
    assert torch.bincount(loader.labels, minlength=10).tolist() == [5] * 10
    again = CifarLoader(images, labels, batch_size=64, subset=50, seed=2)
    assert torch.equal(loader.images, again.images)


def test_from_root_reads_simam_data_and_picks_the_right_statistics(tmp_path, monkeypatch):
    make_cifar100(tmp_path)
    monkeypatch.setenv("SIMAM_DATA", str(tmp_path))
    train = CifarLoader.from_root(name="cifar100", batch_size=64)
    test = CifarLoader.from_root(name="cifar100", train=False, batch_size=64)
    assert (train.shuffle, train.augment, test.shuffle, test.augment) == (True, True, False, False)
    assert train.num_images == 200 and test.num_images == 100
    assert torch.allclose(
        train.bias.flatten(), -torch.tensor(CIFAR100_MEAN) / torch.tensor(CIFAR100_STD)
    )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_equal_cpu_batches():
    images, labels = (
        torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8),
        torch.arange(64) % 10,
    )
    options = dict(batch_size=16, shuffle=True, augment=True, seed=3)
    for (a, la), (b, lb) in zip(
        CifarLoader(images, labels, **options),
        CifarLoader(images, labels, device="cuda", **options),
    ):
        assert b.is_cuda and lb.is_cuda
        assert torch.equal(la, lb.cpu()) and torch.allclose(a, b.cpu(), atol=1e-5)


# --------------------------------------------------------------------------------------------------
# The real CIFAR-10


def real_cifar10_root() -> Path | None:
    root = os.environ.get("SIMAM_DATA")
    if root and (Path(root).expanduser() / "cifar-10-batches-py" / "data_batch_1").is_file():
        return Path(root).expanduser()
    return None


needs_real_cifar10 = pytest.mark.skipif(
    real_cifar10_root() is None,
    reason="real CIFAR-10 not found: set SIMAM_DATA to a folder that holds cifar-10-batches-py/",
)


@pytest.fixture(scope="module")
def real_train():
    return load_cifar(real_cifar10_root(), "cifar10", train=True)


@needs_real_cifar10
def test_real_cifar10_counts_and_pixel_statistics(real_train):
    images, labels = real_train
    assert images.shape == (50000, 3, 32, 32)
    assert torch.bincount(labels, minlength=10).tolist() == [5000] * 10
    test_labels = load_cifar(real_cifar10_root(), "cifar10", train=False)[1]
    assert torch.bincount(test_labels, minlength=10).tolist() == [1000] * 10
    mean, std = channel_stats(images)
    assert np.allclose(mean, CIFAR10_MEAN, atol=5e-5), mean
    assert np.allclose(std, CIFAR10_STD, atol=5e-5), std
    # the reference code's std is not CIFAR-10's
    assert not np.allclose(std, CIFAR10_REFERENCE_STD, atol=1e-2)
    assert len(load_class_names(real_cifar10_root())) == 10


@needs_real_cifar10
def test_real_cifar10_loader_normalises_to_zero_mean_unit_std(real_train):
    images, labels = real_train
    loader = CifarLoader(images, labels, batch_size=2500, subset=5000, seed=0)
    batch = torch.cat([batch for batch, _ in loader])
    per_channel = batch.transpose(0, 1).reshape(3, -1)
    assert per_channel.mean(1).abs().max() < 0.03 and (per_channel.std(1) - 1).abs().max() < 0.03
