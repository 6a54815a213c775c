"""The course's own code, apart from the library: what its notebooks share (CIFAR-10 as every
chapter reads it, whether a test runs the full mode, the GPU time a recipe is estimated to take)
and its report writer (:mod:`simam.course.verdicts`, :mod:`simam.course.readme`). ``import simam``
loads none of it."""

from __future__ import annotations

import dataclasses
import math

import torch

from simam.config import Config, build_model
from simam.data import DATASETS, dataset_spec, load_cifar, load_class_names
from simam.models import training_flops_per_image
from simam.settings import data_root, smoke_overrides


def course_cifar10(train: bool = False) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """CIFAR-10 as every notebook of the course gets it: images, labels and class names of a split,
    read from :func:`simam.settings.data_root`, where the official archive is downloaded first when
    the files are missing (as on Colab). When that download fails (no network, say), one
    ``FileNotFoundError`` says where to put the data instead. Nothing is ever replaced by noise."""
    root = data_root()
    try:
        images, labels = load_cifar(root, "cifar10", train=train, download=True)
    except (
        OSError
    ) as error:  # the download failed (URLError is an OSError), or left the files missing
        spec = DATASETS["cifar10"]
        raise FileNotFoundError(
            f"CIFAR-10 is not under {root / spec.folder} and could not be downloaded ({error}). "
            f"Download {spec.url}, unpack it into a folder and point SIMAM_DATA at that folder, "
            "then run the notebook again."
        ) from None
    return images, labels, load_class_names(root, "cifar10")


def smoke_test() -> bool:
    """Whether this is the test of the full mode (``SIMAM_SMOKE_ITERATIONS`` set): the full mode's
    code runs, with the quick mode's budget."""
    return bool(smoke_overrides())


T4_ACHIEVED_FLOPS = 2e12
"""What the course assumes a T4 (a free Colab GPU) achieves on the CIFAR ResNets: 2 TFLOP/s, 3% of
its 65 TFLOP/s float16 peak, since networks this small (16 to 64 channels) keep a GPU only a few
percent busy. An assumption the notebooks state beside every estimate, not a measurement."""

GPU_COMPILE_SECONDS = (30.0, 180.0)
"""What ``torch.compile`` of one training run's network is assumed to cost on a GPU machine, in
seconds: about 30 when inductor's on-disk cache already holds the network's kernels (a later run of
the same network in the same session: the cache lives in the machine's temporary folder, or in
``TORCHINDUCTOR_CACHE_DIR``), up to about 3 minutes from cold on a machine with two CPU cores, as
Colab's, since Triton compiles its kernels on the CPU. An assumed range, not a measurement: the
device check (``make device-check``) measures the first steps of a run, compilation included."""


def estimated_gpu_minutes(
    config: Config,
    runs: int = 1,
    achieved_flops: float = T4_ACHIEVED_FLOPS,
    compile_seconds: tuple[float, float] = GPU_COMPILE_SECONDS,
) -> tuple[float, float]:
    """The minutes that ``runs`` runs of ``config`` take at ``achieved_flops``, as a range (low,
    high): its training images and its evaluations (a forward pass, counted as a third of a training
    step; flipped copies twice), times the training FLOPs per image that ``FlopCounterMode`` counts
    for its network, plus each run's compilation at the low and the high end of ``compile_seconds``
    (none when ``config.compile`` is False; None, its default, compiles on a GPU). Data loading and
    start-up are left out."""
    flops = training_flops_per_image(build_model(dataclasses.replace(config, compile_simam=False)))
    evaluations = (2 if config.eval_flip else 1) * math.ceil(config.iterations / config.eval_every)
    test_images = config.test_subset or dataset_spec(config.dataset).test_images
    images = config.iterations * config.batch_size + test_images * evaluations / 3
    computing = runs * images * flops / achieved_flops / 60
    low, high = (
        (runs * seconds / 60 for seconds in compile_seconds)
        if config.compile is not False
        else (0.0, 0.0)
    )
    return computing + low, computing + high
