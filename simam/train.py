"""Train a CIFAR network with SimAM (or any attention module of the course): ``python -m simam.train``.

One file, read top to bottom: the configuration and its two recipes, the learning-rate schedule,
one training step, evaluation, saving, and the loop that ties them together; the command line last.

**Recipes.** ``paper`` is the SimAM paper's CIFAR recipe (section 4.1), counted in iterations as the
paper counts it: SGD with momentum 0.9, batch 128, weight decay 5e-4, learning rate 0.1 divided by
10 at 32,000 and 48,000 iterations, 64,000 iterations; pad-4 crop and horizontal flip. ``quick``
gets ResNet-20 as far as it can in about a quarter of an hour on a 2-core CPU (see ``QUICK`` for
each choice and its source). Every field of :class:`Config` can be overridden, on the command line.

**Output folder.** ``metrics.jsonl``: one JSON object per evaluation (iteration, epoch, learning
rate, mean training loss since the previous evaluation, test loss, test accuracy, elapsed seconds).
``checkpoint.pt``: everything needed to continue exactly (model, optimiser, gradient scaler, every
random generator, the loader's position, the running loss), written every ``checkpoint_every``
iterations and at the end, atomically. ``final.json``: the full configuration, the final test
accuracy (the number to report), the best one (labelled: it is selected on the test set), wall
time, images per second, library versions and the device. ``simam.plots.plot_training_curves``
draws the curves from it.

**Resuming.** ``--resume`` continues from ``checkpoint.pt``; on the CPU the weights and metrics at
the end are bit-identical to those of a run that was never interrupted.

**Devices.** CUDA when present, else the CPU (or ``--device``). Each choice below is switchable
and printed when a run starts.

- *Precision.* bfloat16 autocast wherever the hardware computes in bfloat16 natively: GPUs that
  have it (else float16 with a gradient scaler), and CPUs with AVX-512 BF16 or AMX
  (:func:`native_bfloat16`). Other CPUs emulate bfloat16, which is slower than float32, so they
  train in float32. ResNet-20 + SimAM on 2 cores with AVX-512 BF16, batch 128: 390-400 images/s
  in float32, 565-585 in bfloat16 (AMD EPYC); 321 and 515 (Intel Xeon with AMX). Printed by
  ``python -m simam.bench train``.
- *channels_last.* On for CUDA. Off on the CPU: there it sped the plain network up (float32 349
  to 432 images/s, bfloat16 554 to 723 on the Xeon) but slowed SimAM's per-channel reductions
  more, so ResNet-20 + SimAM trained slower with it in bfloat16 (515 to 363 images/s on the Xeon,
  575 to 520 on the EPYC).
- *torch.compile.* The whole model on CUDA. On the CPU only SimAM's formula (``compile_simam``,
  :func:`simam.attention.simam.simam_compiled`), for runs of at least ``COMPILE_SIMAM_FROM``
  iterations where a C++ compiler is found: compiling the whole ResNet-20 + SimAM took 50-60 s on 2
  cores for a slower bfloat16 step (336 images/s against 358 eager on the Xeon), while SimAM alone
  compiles in about 12 s and takes the step from 358 to 536 images/s (560 without SimAM).
- *Threads.* torch's default, one per core. ``--threads`` sets it.

**More than one GPU.** ``torchrun --nproc_per_node=N -m simam.train ...`` runs one training on N
processes with ``DistributedDataParallel`` (Li et al., "PyTorch Distributed", VLDB 2020); ``torchrun``
with ``--nnodes`` and a rendezvous endpoint spreads them over machines. Each process (rank) takes
the GPU of its ``LOCAL_RANK`` and joins an NCCL group (gloo on the CPU). What stays the same:

- *The batches.* ``batch_size`` is the global batch. Every rank draws the same seeded,
  epoch-dependent plan (order, crops, flips) as a single process and builds only its contiguous
  share of each batch, ``batch_size / world size`` images (``CifarLoader``'s ``rank`` and
  ``world_size``). A batch size that does not divide by the world size is a :class:`ConfigError`:
  unequal shares would weigh the images of the smaller shares more in DDP's average of gradients.
- *The gradient.* DDP averages the ranks' gradients of their mean losses: the gradient of the
  global batch's mean loss. With ``--sync-bn`` (``nn.SyncBatchNorm``, CUDA only in torch) batch
  normalisation also uses the global batch's statistics, so the run computes what one process
  computes, up to the order of floating-point sums. Without it each rank normalises with the
  statistics of its own share (as most data-parallel ImageNet training does, Goyal et al. 2017),
  and the running statistics that are evaluated and saved are rank 0's.
- *The numbers.* The training loss is averaged over the ranks at every look (so a NaN on any rank
  stops all of them at the same iteration); evaluation splits each test batch over the ranks and
  adds up their loss and correct counts, so every test image counts once.
- *The files.* Only rank 0 prints and writes ``metrics.jsonl``, ``checkpoint.pt`` and ``final.json``
  (which adds ``distributed``: world size, per-rank batch, backend, SyncBN). The checkpoint holds the
  unwrapped model, so checkpoints move freely between single-process and distributed runs. On
  ``--resume`` rank 0 reads the checkpoint and sends it to the other ranks (the output folder need
  exist only on rank 0's node), and every rank continues with the same random generators and
  loader position. The plan does not depend on the world size, so a run can be resumed on another
  number of processes.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) no process group is made and nothing changes.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.metadata
import json
import math
import os
import platform
import random
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

import simam
from simam import distributed
from simam.attention import SimAM
from simam.data import CifarFormatError, CifarLoader, dataset_spec, load_cifar
from simam.distributed import Launch
from simam.models import count_parameters, create_model, list_models
from simam.settings import data_root, seed_everything

METRICS = "metrics.jsonl"
CHECKPOINT = "checkpoint.pt"
FINAL = "final.json"
EVAL_BATCH = 1000
SYNC_EVERY = 50  # iterations between looks at the loss: each look waits for the GPU


# --------------------------------------------------------------------------------------------------
# The configuration and the recipes


@dataclass(frozen=True)
class Config:
    """Everything that defines a run. The defaults are the paper's recipe."""

    recipe: str = "paper"  # the recipe this configuration started from (a label)
    # the network and the data
    model: str = "resnet20"
    attention: str = "simam"
    lambda_: float = 1e-4  # SimAM's regulariser (paper: 1e-4 on CIFAR); only the simam attentions use it
    dataset: str = "cifar10"
    subset: int | None = None  # train on a seeded, class-balanced subset of this many images
    test_subset: int | None = None  # evaluate on a subset of the test split (smoke tests only)
    augment: bool = True  # pad, random 32x32 crop, random horizontal flip
    padding: int = 4
    eval_flip: bool = False  # also report the accuracy of test-time flip averaging (beside the plain one)
    # optimisation, counted in iterations (batches)
    iterations: int = 64_000
    batch_size: int = 128
    lr: float = 0.1  # the initial (step) or peak (onecycle) learning rate
    schedule: str = "step"  # "step" or "onecycle", see learning_rate()
    milestones: tuple[int, ...] = (32_000, 48_000)  # step: the learning rate is multiplied by gamma at each
    gamma: float = 0.1
    warmup: int = 0  # onecycle: iterations of linear warm-up
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    norm_bias_decay: bool = True  # weight decay on BN parameters and biases too, as plain SGD does
    label_smoothing: float = 0.0
    seed: int = 0
    sync_bn: bool = False  # under torchrun: batch norm with the global batch's statistics (CUDA only)
    # how the run is watched and saved, and where it runs: these may change when a run is resumed
    eval_every: int = 1_000
    checkpoint_every: int = 2_000
    data_root: str | None = None  # None: $SIMAM_DATA or ~/.cache/simam
    download: bool = False
    device: str = "auto"  # "auto": CUDA when present, else the CPU
    amp: bool | None = None  # mixed precision; None: where the device computes in bfloat16 natively (or on CUDA)
    amp_dtype: str | None = None  # "bfloat16" or "float16"; None: bfloat16 where the device has it natively
    channels_last: bool | None = None  # None: on for CUDA
    compile: bool | None = None  # torch.compile of the whole model; None: on for CUDA
    compile_simam: bool | None = None  # only SimAM's formula compiled (SimAM(compiled=True)); None: see resolve()
    threads: int | None = None  # torch CPU threads; None: torch's default
    deterministic: bool = False  # CUDA: deterministic algorithms, cuDNN autotuning off (slower; see cuda_settings)
    progress: bool | None = None  # progress bar; None: when stderr is a terminal and CI is not set


RUNTIME_FIELDS = {"eval_every", "checkpoint_every", "data_root", "download", "device", "amp", "amp_dtype",
                  "channels_last", "compile", "compile_simam", "threads", "deterministic", "progress"}

PAPER = Config()

# The quick recipe: the standard tricks for short runs, none of which changes the network, sized to
# finish within 15 minutes of a 2-core CPU, whole command included. Sized on a 2-core Intel Xeon with
# AMX (bfloat16 autocast and SimAM compiled, the trainer's defaults there), where ResNet-20 + SimAM
# trains at QUICK_SIZED_AT images/s: 3,300 iterations took 14 min 56 s and ended at 87.63% final
# test accuracy (88.39% flip-averaged); 3,200 leave a margin of about half a minute for a busier
# machine. Where the CPU lacks native bfloat16 the same recipe trains in float32, more slowly.
QUICK_SIZED_AT = 494  # images/s, measured over the whole 3,300-iteration run, compilation included
QUICK = dataclasses.replace(
    PAPER,
    recipe="quick",
    iterations=3_200,  # 8.2 epochs
    # One cycle (Smith & Topin, "Super-Convergence", 2019): warm up linearly to a learning rate
    # above the paper's (20% of the run, as Goyal et al. 2017 warm up before a large rate), then
    # decay linearly to zero, so that the short run ends annealed.
    schedule="onecycle",
    lr=0.2,
    warmup=640,
    milestones=(),
    # Nesterov momentum (Sutskever et al., ICML 2013): the look-ahead gradient is a little better
    # at high learning rates.
    nesterov=True,
    # No weight decay on BN scales and shifts and on biases ("no bias decay", He et al., "Bag of
    # Tricks", CVPR 2019, section 3.1): decay regularises the weights that can overfit; these are few.
    norm_bias_decay=False,
    # Label smoothing 0.1 (Szegedy et al., "Rethinking the Inception Architecture", CVPR 2016).
    label_smoothing=0.1,
    # Batch 128 as in the paper: on the CPU a larger batch was no faster per image, and a short run
    # gains from more steps.
    # Flip-averaged test accuracy beside the plain one (test-time augmentation with the training
    # flip, as Krizhevsky et al., NeurIPS 2012, averaged crops and flips): worth 0.76 points in the
    # run above. The plain accuracy stays the number to report.
    eval_flip=True,
    # Two evaluations, halfway and at the end: each costs two passes over the 10,000 test images.
    eval_every=1_600,
    checkpoint_every=400,
)

RECIPES = {"paper": PAPER, "quick": QUICK}


class ConfigError(ValueError):
    """A configuration, command line or data folder that a run cannot start from."""


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


def check_config(config: Config, world_size: int = 1) -> None:
    """Raise :class:`ConfigError` naming the first value that no run on ``world_size`` processes can use."""
    c = config
    rules = [
        (c.iterations >= 1, f"iterations must be at least 1, got {c.iterations}"),
        (c.batch_size >= 1, f"batch_size must be at least 1, got {c.batch_size}"),
        (c.batch_size % world_size == 0,
         f"batch_size {c.batch_size} does not divide by the {world_size} processes: the batch is global and each "
         f"process takes batch_size / {world_size} images of it; choose a multiple of {world_size}"),
        (c.eval_every >= 1, f"eval_every must be at least 1, got {c.eval_every}"),
        (c.checkpoint_every >= 1, f"checkpoint_every must be at least 1, got {c.checkpoint_every}"),
        (c.lr > 0, f"lr must be positive, got {c.lr}"),
        (c.schedule in ("step", "onecycle"), f"schedule must be 'step' or 'onecycle', got {c.schedule!r}"),
        (all(m >= 1 for m in c.milestones) and list(c.milestones) == sorted(set(c.milestones)),
         f"milestones must be increasing positive iterations, got {c.milestones}"),
        (c.gamma > 0, f"gamma must be positive, got {c.gamma}"),
        (c.schedule == "step" or 0 <= c.warmup < c.iterations, f"warmup must be in 0..iterations-1, got {c.warmup}"),
        (0 <= c.momentum < 1, f"momentum must be in [0, 1), got {c.momentum}"),
        (c.momentum > 0 or not c.nesterov, "Nesterov momentum needs momentum > 0"),
        (c.weight_decay >= 0, f"weight_decay must be non-negative, got {c.weight_decay}"),
        (0 <= c.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {c.label_smoothing}"),
        (c.padding >= 0, f"padding must be non-negative, got {c.padding}"),
        (c.lambda_ >= 0, f"lambda must be non-negative, got {c.lambda_}"),
        (c.subset is None or c.subset >= c.batch_size, f"subset must hold at least one batch of {c.batch_size}, got {c.subset}"),
        (c.test_subset is None or c.test_subset >= 1, f"test_subset must be at least 1, got {c.test_subset}"),
        (c.amp_dtype in (None, "bfloat16", "float16"), f"amp_dtype must be 'bfloat16' or 'float16', got {c.amp_dtype!r}"),
        (c.threads is None or c.threads >= 1, f"threads must be at least 1, got {c.threads}"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message)
    try:
        dataset_spec(c.dataset)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a device this machine has.

    ``local_rank``: the process's ``LOCAL_RANK`` under ``torchrun``; ``"auto"`` (with a GPU) and
    ``"cuda"`` then mean that process's own GPU, ``cuda:LOCAL_RANK``.
    """
    if local_rank is not None and name.startswith("cuda:"):
        raise ConfigError(f"device {name!r} under torchrun: each process takes the GPU of its LOCAL_RANK; "
                          "pass --device cuda (or auto)")
    if local_rank is not None and name in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank}, but this machine has {torch.cuda.device_count()} CUDA GPU(s): "
                              "start at most that many processes per node")
        return torch.device("cuda", local_rank)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(f"device {name!r} asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return device


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively rather than by emulation.

    CUDA: compute capability 8.0 or newer (Ampere on; older GPUs emulate it). CPU: AVX-512 BF16 or
    AMX, and oneDNN allowed to use them (``ONEDNN_MAX_CPU_ISA`` below AVX-512 forbids it).
    """
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    try:
        cpu_has_it = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return cpu_has_it and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # a torch without these probes: assume emulation
        return False


COMPILE_SIMAM_FROM = 200  # iterations: compiling SimAM costs about 12 s and saves about 0.1 s a step on 2 cores


def cpp_compiler_found() -> bool:
    """Whether torch.compile can build CPU kernels here: it needs a C++ compiler ($CXX, g++ or clang++)."""
    return any(shutil.which(name) for name in (os.environ.get("CXX", ""), "g++", "clang++") if name)


def resolve(config: Config, device: torch.device) -> Config:
    """``config`` with every automatic (None) choice made for ``device``."""
    cuda = device.type == "cuda"
    native_bf16 = native_bfloat16(device)
    amp = (cuda or native_bf16) if config.amp is None else config.amp
    amp_dtype = config.amp_dtype
    if amp and amp_dtype is None:
        amp_dtype = "bfloat16" if native_bf16 or not cuda else "float16"
    if amp and amp_dtype == "float16" and not cuda:
        raise ConfigError("float16 mixed precision needs CUDA; on the CPU use amp_dtype bfloat16")
    in_ci = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no", "off")
    compile_model = cuda if config.compile is None else config.compile
    compile_simam = config.compile_simam
    if compile_simam is None:  # what compiling the whole model already covers, or not worth it
        compile_simam = (not compile_model and not cuda and config.iterations >= COMPILE_SIMAM_FROM
                         and config.attention.strip().lower() == "simam" and cpp_compiler_found())
    return dataclasses.replace(
        config,
        device=str(device),
        amp=amp,
        amp_dtype=amp_dtype if amp else None,
        channels_last=cuda if config.channels_last is None else config.channels_last,
        compile=compile_model,
        compile_simam=compile_simam,
        threads=torch.get_num_threads(),
        progress=(sys.stderr.isatty() and not in_ci) if config.progress is None else config.progress,
        data_root=str(data_root() if config.data_root is None else Path(config.data_root).expanduser()),
    )


# --------------------------------------------------------------------------------------------------
# Schedule, optimiser, one step, evaluation


def learning_rate(config: Config, iteration: int) -> float:
    """The learning rate of step ``iteration`` (counted from 0).

    ``step``: ``lr`` times ``gamma`` once per milestone reached, so with the paper's milestones
    steps 0..31,999 use 0.1, steps 32,000..47,999 use 0.01 and later steps 0.001.
    ``onecycle``: rises linearly to ``lr`` over the ``warmup`` first steps (step ``warmup - 1``
    uses ``lr``), then falls linearly towards zero, one (iterations - warmup + 1)-th of ``lr`` per
    step, so that the last step uses ``lr / (iterations - warmup + 1)``.
    """
    if config.schedule == "step":
        return config.lr * config.gamma ** sum(iteration >= m for m in config.milestones)
    if iteration < config.warmup:
        return config.lr * (iteration + 1) / config.warmup
    return config.lr * (config.iterations - iteration) / (config.iterations - config.warmup + 1)


def build_model(config: Config) -> nn.Module:
    """The network of ``config``, freshly initialised from torch's global generator, its SimAM
    modules compiled if ``config.compile_simam`` says so."""
    simam_options = {"lambda_": config.lambda_} if config.attention.strip().lower().startswith("simam") else {}
    try:
        model = create_model(config.model, attention=config.attention,
                             num_classes=dataset_spec(config.dataset).num_classes, **simam_options)
    except ValueError as error:  # unknown model or attention
        raise ConfigError(str(error)) from None
    for module in model.modules():  # the same arithmetic, fused into one kernel per shape
        if isinstance(module, SimAM) and not module.exact:
            module.compiled = bool(config.compile_simam)
    return model


def make_optimizer(model: nn.Module, config: Config) -> torch.optim.SGD:
    """SGD with momentum; weight decay on every parameter, or only on the weights of convolutions
    and linear layers (the parameters with more than one dimension) if ``norm_bias_decay`` is off."""
    params = list(model.parameters())
    decayed = [p for p in params if p.ndim > 1 or config.norm_bias_decay]
    groups = [{"params": decayed, "weight_decay": config.weight_decay}]
    if len(decayed) < len(params):
        groups.append({"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0})
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def autocast(device: torch.device, amp_dtype: str | None) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` in ``amp_dtype``; nothing when that is None."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, amp_dtype))


def train_step(
    forward: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    criterion: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp_dtype: str | None,
) -> torch.Tensor:
    """One SGD step on a batch; returns its loss, detached and left on the device (no sync)."""
    with autocast(images.device, amp_dtype):
        loss = criterion(forward(images), labels)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()  # the scaler is a pass-through unless float16 needs it
    scaler.step(optimizer)
    scaler.update()
    return loss.detach()


@torch.no_grad()
def evaluate(forward: nn.Module, model: nn.Module, loader: CifarLoader, amp_dtype: str | None,
             flip: bool = False) -> dict[str, float]:
    """Mean cross-entropy (without label smoothing) and top-1 accuracy over ``loader``'s split:
    ``{"test_loss", "test_accuracy"}``, and with ``flip`` also ``"test_accuracy_flip"``, the
    accuracy of the mean of the logits of each image and its mirror image (test-time augmentation
    with the flip that training used; the plain accuracy stays the headline number).

    Under DDP each rank evaluates its share of every batch and the sums are added over the ranks,
    so every image counts once.
    """
    model.eval()
    loss = torch.zeros((), device=loader.device)
    correct = torch.zeros(2, dtype=torch.int64, device=loader.device)  # plain, flip-averaged
    for images, labels in loader:
        with autocast(images.device, amp_dtype):
            logits = forward(images).float()
            if flip:
                flipped = logits + forward(images.flip(3)).float()
                correct[1] += (flipped.argmax(dim=1) == labels).sum()
        loss += F.cross_entropy(logits, labels, reduction="sum")
        correct[0] += (logits.argmax(dim=1) == labels).sum()
    distributed.all_reduce_sum_(loss)
    distributed.all_reduce_sum_(correct)
    model.train()
    result = {"test_loss": loss.item() / loader.num_images, "test_accuracy": correct[0].item() / loader.num_images}
    if flip:
        result["test_accuracy_flip"] = correct[1].item() / loader.num_images
    return result


# --------------------------------------------------------------------------------------------------
# Files that survive a kill


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, flush it to disk, then rename it
    over ``path``: a reader sees the old file or the new one, never a half-written one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if os.name == "posix":  # make the rename itself durable
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def read_metrics(run: str | Path, up_to: int | None = None) -> list[dict[str, Any]]:
    """The rows of ``run/metrics.jsonl`` (of iterations up to ``up_to``); a row cut short by a kill ends them."""
    path = Path(run) / METRICS
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        if up_to is not None and row["iteration"] > up_to:
            break
        rows.append(row)
    return rows


def rng_states() -> dict[str, Any]:
    """Every global random generator's state, in types that ``torch.load(weights_only=True)`` reads."""
    name, keys, position, has_gauss, cached = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": (name, keys.tolist(), position, has_gauss, cached),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
    }


def set_rng_states(states: dict[str, Any]) -> None:
    random.setstate(states["python"])
    name, keys, position, has_gauss, cached = states["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(states["torch"])
    if states["cuda"] and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def restore_rng_states(checkpoint: dict[str, Any], seed: int, world: Launch) -> None:
    """Put back this rank's random generators from ``checkpoint``. Checkpoints hold every rank's
    (``rng_by_rank``); one from a run with another number of processes, or from before ranks had
    their own streams, gives every rank rank 0's state, and the other ranks then a new stream of
    their own (:func:`simam.distributed.rank_seed`)."""
    by_rank = checkpoint.get("rng_by_rank")
    if by_rank is not None and len(by_rank) == world.world_size:
        set_rng_states(by_rank[world.rank])
        return
    set_rng_states(checkpoint["rng"])
    if world.rank > 0:
        torch.manual_seed(distributed.rank_seed(seed + checkpoint["iteration"], world.rank))


def restore_scaler(scaler: torch.amp.GradScaler, saved: dict[str, Any]) -> None:
    """Load the gradient scaler's state, also across precisions: a run saved without float16 (on
    the CPU, in bfloat16 or float32) has no scaler state, and one resumed in float16 starts from a
    fresh scale, as a new run does (a disabled scaler ignores any state)."""
    if saved or not scaler.is_enabled():
        scaler.load_state_dict(saved)
    else:
        print(f"{_name()}: the checkpoint was saved without a float16 gradient scaler; starting a fresh one",
              file=sys.stderr)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return f"CPU: {cpu}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"


def versions() -> dict[str, str | None]:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": importlib.metadata.version("torchvision"),
        "numpy": np.__version__,
        "simam": simam.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.cuda.is_available() else None,
    }


# --------------------------------------------------------------------------------------------------
# The run


def load_data(config: Config, rank: int = 0, world_size: int = 1) -> tuple[CifarLoader, CifarLoader]:
    """The training loader (shuffled, augmented, whole batches only) and the test loader, each
    yielding share ``rank`` of ``world_size`` of every batch."""
    spec = dataset_spec(config.dataset)
    root = Path(config.data_root)
    folder = root / spec.folder
    missing = [f for f in (*spec.train_files, *spec.test_files) if not (folder / f).is_file()]
    if missing and not config.download:
        raise ConfigError(f"{spec.title} not found: {folder} lacks {', '.join(missing)}; point --data-root "
                          f"(or SIMAM_DATA) at the folder that holds {spec.folder}/, or pass --download")
    try:
        train_split = load_cifar(root, config.dataset, train=True, download=config.download)
        test_split = load_cifar(root, config.dataset, train=False, download=config.download)
    except (OSError, CifarFormatError) as error:  # a failed download, a damaged file
        raise ConfigError(" ".join(str(error).split())) from None
    options = {"mean": spec.mean, "std": spec.std, "device": config.device, "channels_last": config.channels_last,
               "seed": config.seed, "rank": rank, "world_size": world_size}
    train_loader = CifarLoader(*train_split, batch_size=config.batch_size, shuffle=True, augment=config.augment,
                               padding=config.padding, drop_last=True, subset=config.subset, **options)
    test_loader = CifarLoader(*test_split, batch_size=EVAL_BATCH, subset=config.test_subset, **options)
    return train_loader, test_loader


def train(config: Config, out: str | Path, resume: bool = False) -> dict[str, Any]:
    """Train as ``config`` says, writing into the folder ``out``; return what ``final.json`` holds.

    ``resume``: continue from ``out/checkpoint.pt`` (start afresh if there is none). Raises
    :class:`ConfigError` for a configuration or a data folder that cannot be used, and
    :class:`Diverged` when the loss becomes NaN or infinite (the last checkpoint is kept).
    Under ``torchrun`` every process calls this and they train one model together (see the module
    docstring): rank 0 writes the files, and every rank returns the same results.
    """
    try:
        world = distributed.launch()
    except ValueError as error:
        raise ConfigError(str(error)) from None
    check_config(config, world.world_size)
    threads = torch.get_num_threads()  # given back at the end: a notebook goes on with its own setting
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        device = resolve_device(config.device, world.local_rank if world.distributed else None)
        config = resolve(config, device)
        if config.sync_bn and world.distributed and device.type != "cuda":
            raise ConfigError("--sync-bn needs CUDA: torch's SyncBatchNorm runs on GPUs only; train on the CPU without it")
        with distributed.process_group(device) as backend, cuda_settings(config.deterministic and device.type == "cuda"):
            return _train(config, device, Path(out), resume, world, backend)
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def cuda_settings(deterministic: bool) -> Iterator[None]:
    """cuDNN's autotuning for the length of a run (fixed shapes: it picks the fastest convolutions),
    or with ``deterministic`` PyTorch's deterministic algorithms instead; the process's own settings
    come back afterwards, so a notebook that trains goes on as it was.

    Deterministic mode repeats a run bit for bit on the same GPU and software; it is slower, and an
    operation without a deterministic kernel warns rather than stops the run. It also sets
    ``CUBLAS_WORKSPACE_CONFIG`` (if unset), which cuBLAS needs for repeatable results.
    """
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


def _open_run(config: Config, out: Path, resume: bool) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The checkpoint to continue from (None: start afresh) and the metrics rows up to it, once
    ``out`` is found usable: a run already there needs ``resume``, with the same settings."""
    checkpoint_path, metrics_path = out / CHECKPOINT, out / METRICS
    checkpoint = None
    if resume and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        saved, defaults = checkpoint["config"], dataclasses.asdict(PAPER)  # a field newer than the run had its default
        changed = [f"{key}={value!r} (the run has {saved.get(key, defaults[key])!r})"
                   for key, value in dataclasses.asdict(config).items()
                   if key not in RUNTIME_FIELDS and value != as_config_value(saved.get(key, defaults[key]))]
        if changed:
            raise ConfigError(f"--resume with other settings than the run in {out}: {'; '.join(changed)}")
    elif not resume and (checkpoint_path.exists() or metrics_path.exists()):
        raise ConfigError(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    # Rows of iterations after the checkpoint describe work that is about to be redone.
    return checkpoint, read_metrics(out, up_to=0 if checkpoint is None else checkpoint["iteration"])


def _train(config: Config, device: torch.device, out: Path, resume: bool, world: Launch, backend: str | None) -> dict[str, Any]:
    """:func:`train` once the device is chosen and this process is in its process group (if any)."""
    checkpoint_path, metrics_path = out / CHECKPOINT, out / METRICS
    # Only rank 0 looks at the output folder (which need exist only on its node); the other ranks
    # get what it found, or its error, so that every rank stops or carries on together.
    opened = None
    if world.main:
        try:
            opened = _open_run(config, out, resume)
        except ConfigError as error:
            opened = error
    opened = distributed.broadcast_object(opened)
    if isinstance(opened, ConfigError):
        raise opened
    checkpoint, rows = opened

    seed_everything(config.seed)
    model = build_model(config).to(device)  # the same initial weights on every rank
    if world.distributed:  # but each rank its own stream from here on: its own dropout masks
        torch.manual_seed(distributed.rank_seed(config.seed, world.rank))
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.sync_bn and world.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)  # the same parameters and state_dict keys
    train_loader, test_loader = load_data(config, world.rank, world.world_size)
    optimizer = make_optimizer(model, config)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp_dtype == "float16")
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)

    iteration, elapsed, train_seconds, saved = 0, 0.0, 0.0, None  # saved: iteration of the last checkpoint
    loss_sum, loss_count = torch.zeros((), device=device), 0  # training loss since the last evaluation
    if checkpoint is not None:
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        restore_scaler(scaler, checkpoint["scaler"])
        train_loader.load_state_dict(checkpoint["loader"])
        restore_rng_states(checkpoint, config.seed, world)
        iteration, elapsed, train_seconds = checkpoint["iteration"], checkpoint["elapsed"], checkpoint["train_seconds"]
        saved = iteration
        loss_sum.copy_(checkpoint["loss_sum"])
        loss_count = checkpoint["loss_count"]
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        for leftover in out.glob(".*.tmp"):  # left by a run killed while saving; never read
            leftover.unlink()
        atomic_write(metrics_path, lambda f: f.write("".join(json.dumps(row) + "\n" for row in rows).encode()))

    if world.distributed:
        wrapped = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        forward = torch.compile(wrapped) if config.compile else wrapped
        # Evaluation runs the plain model: DDP's forward would exchange buffers, a collective, per batch.
        eval_forward = torch.compile(model) if config.compile else model
    else:
        forward = eval_forward = torch.compile(model) if config.compile else model
    processes = (f"{world.world_size} processes ({backend}, per-rank batch {config.batch_size // world.world_size}, "
                 f"SyncBN {'on' if config.sync_bn else 'off'}), ") if world.distributed else ""
    if world.main:
        print(f"{config.model} + {config.attention} on {config.dataset}, {config.recipe} recipe, "
              f"{count_parameters(model):,} parameters, {processes}{describe(device)}, precision {config.amp_dtype or 'float32'}, "
              f"channels_last {config.channels_last}, compile {config.compile}, SimAM compiled {config.compile_simam}; "
              f"{'resuming at' if iteration else 'starting at'} iteration {iteration} of {config.iterations} -> {out}")

    bar = tqdm(total=config.iterations, initial=iteration, disable=not (config.progress and world.main),
               unit="it", dynamic_ncols=True)
    session_start = time.perf_counter()
    elapsed_before = elapsed
    segment_start = session_start  # training time is counted between evaluations and saves
    model.train()
    while iteration < config.iterations:
        for images, labels in train_loader:
            lr = learning_rate(config, iteration)
            for group in optimizer.param_groups:
                group["lr"] = lr
            loss_sum += train_step(forward, images, labels, criterion, optimizer, scaler, config.amp_dtype)
            loss_count += 1
            iteration += 1
            bar.update()

            last = iteration == config.iterations
            evaluate_now = iteration % config.eval_every == 0 or last
            save_now = iteration % config.checkpoint_every == 0 or last
            if not (evaluate_now or save_now or iteration % SYNC_EVERY == 0):
                continue
            # Every rank now holds the mean over the ranks (the global batch's mean), so the check
            # below stops all of them together, and the checkpoint holds what every rank resumes with.
            distributed.all_reduce_mean_(loss_sum)
            train_loss = loss_sum.item() / loss_count  # waits for the device
            if not math.isfinite(train_loss):
                bar.close()
                kept = "no checkpoint was written" if saved is None else f"{checkpoint_path} holds iteration {saved}"
                raise Diverged(f"the training loss became {train_loss} by iteration {iteration} (learning rate {lr:g}); "
                               f"stopped, {kept}. Lower the learning rate, or check the data and model.")
            bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{lr:.4g}", refresh=False)
            now = time.perf_counter()
            train_seconds += now - segment_start
            if evaluate_now:
                distributed.broadcast_buffers_(model)  # every rank evaluates rank 0's running statistics, the saved ones
                scores = evaluate(eval_forward, model, test_loader, config.amp_dtype, config.eval_flip)
                elapsed = elapsed_before + time.perf_counter() - session_start
                row = {"iteration": iteration, "epoch": round(iteration / len(train_loader), 4), "lr": lr,
                       "train_loss": train_loss, **scores, "elapsed_seconds": round(elapsed, 3)}
                rows.append(row)
                if world.main:
                    with open(metrics_path, "a") as file:
                        file.write(json.dumps(row) + "\n")
                        file.flush()
                        os.fsync(file.fileno())
                    flipped = f" (flip-averaged {100 * scores['test_accuracy_flip']:.2f}%)" if config.eval_flip else ""
                    bar.write(f"iteration {iteration:>6}  epoch {row['epoch']:7.2f}  lr {lr:.4g}  train loss {train_loss:.4f}  "
                              f"test loss {scores['test_loss']:.4f}  test accuracy {100 * scores['test_accuracy']:.2f}%"
                              f"{flipped}  {elapsed:.0f}s", file=sys.stdout)
                loss_sum.zero_()
                loss_count = 0
            if save_now:
                elapsed = elapsed_before + time.perf_counter() - session_start
                rng_by_rank = distributed.all_gather_object(rng_states())  # every rank's dropout stream
                # No barrier after saving: no rank can finish the next step before rank 0 joins its
                # gradient all-reduce, and a rank killed meanwhile leaves the checkpoint whole.
                if world.main:
                    state = {
                        "config": dataclasses.asdict(config),
                        "iteration": iteration,
                        "model": model.state_dict(),
                        "optimizer": optimizer.state_dict(),
                        "scaler": scaler.state_dict(),
                        "loader": train_loader.state_dict(),
                        "rng": rng_by_rank[0],
                        "rng_by_rank": rng_by_rank,
                        "loss_sum": loss_sum.cpu(),
                        "loss_count": loss_count,
                        "elapsed": elapsed,
                        "train_seconds": train_seconds,
                    }
                    atomic_write(checkpoint_path, lambda f: torch.save(state, f))
                saved = iteration
            segment_start = time.perf_counter()
            if last:
                break
    bar.close()

    if not rows:  # a finished run resumed after its metrics file was lost
        raise ConfigError(f"{metrics_path} holds no evaluations, but {checkpoint_path} is at the last iteration: "
                          "restore the metrics file, or train afresh in another --out")
    best = max(rows, key=lambda row: row["test_accuracy"])
    final = {
        "config": dataclasses.asdict(config),
        "iterations": iteration,
        "epochs": rows[-1]["epoch"],
        "final_test_accuracy": rows[-1]["test_accuracy"],
        "final_test_loss": rows[-1]["test_loss"],
        **({"final_test_accuracy_flip": rows[-1]["test_accuracy_flip"]} if config.eval_flip else {}),
        "best_test_accuracy_selected_on_test_set": best["test_accuracy"],
        "best_iteration_selected_on_test_set": best["iteration"],
        "note": "final_test_accuracy is the result to report. The best one is the highest of all evaluations, "
                "picked by looking at the test set: an optimistic figure, not an estimate for new data.",
        "wall_seconds": round(elapsed_before + time.perf_counter() - session_start, 3),
        "train_seconds": round(train_seconds, 3),
        "train_images_per_second": round(iteration * config.batch_size / train_seconds, 1),
        "parameters": count_parameters(model),
        "device": describe(device),
        "versions": versions(),
    }
    if world.distributed:
        final["distributed"] = {"world_size": world.world_size, "per_rank_batch": config.batch_size // world.world_size,
                                "backend": backend, "sync_bn": config.sync_bn}
    if world.main:
        atomic_write(out / FINAL, lambda f: f.write((json.dumps(final, indent=2) + "\n").encode()))
        flipped = f" (flip-averaged {100 * final['final_test_accuracy_flip']:.2f}%)" if config.eval_flip else ""
        print(f"final test accuracy {100 * final['final_test_accuracy']:.2f}%{flipped} "
              f"(best {100 * best['test_accuracy']:.2f}% at iteration {best['iteration']}, selected on the test set); "
              f"{final['wall_seconds']:.0f}s, {final['train_images_per_second']:.0f} training images/s")
    return final


def as_config_value(value: Any) -> Any:
    """A value read back from a checkpoint or a JSON file, as a Config holds it (lists were tuples)."""
    return tuple(value) if isinstance(value, list) else value


def config_from_dict(values: dict[str, Any]) -> Config:
    """The :class:`Config` stored as ``values`` (a checkpoint's or ``final.json``'s); fields it lacks,
    from runs of an older version, take their defaults, and ones this version lacks are dropped."""
    fields = {field.name for field in dataclasses.fields(Config)}
    return Config(**{key: as_config_value(value) for key, value in values.items() if key in fields})


def load_model(run: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The network of the run folder ``run`` with the weights of its last checkpoint, in eval mode
    on ``device``: for attention maps, evaluation or fine-tuning of a trained run."""
    path = Path(run) / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {run} is not a run folder of simam.train, or it saved no checkpoint yet")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    model = build_model(dataclasses.replace(config_from_dict(checkpoint["config"]), compile_simam=False))
    model.load_state_dict(checkpoint["model"])
    return model.to(device).eval()


# --------------------------------------------------------------------------------------------------
# The command line


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, no usage block
        raise ConfigError(message)


def _defaults(name: str) -> str:
    """The default of field ``name``, per recipe where the recipes differ."""

    def shown(value: Any) -> str:
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, tuple):
            return ",".join(map(str, value)) or "none"
        return f"{value:,}" if isinstance(value, int) else str(value)

    values = {recipe: shown(getattr(config, name)) for recipe, config in RECIPES.items()}
    if len(set(values.values())) == 1:
        return f"default {values['paper']}"
    return "default " + ", ".join(f"{value} ({recipe})" for recipe, value in values.items())


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated iterations such as 32000,48000, got {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="simam-train",
        description="Train a CIFAR network with SimAM or another attention module. Options not given take "
                    "the value of the recipe (--recipe); see simam/train.py for what each recipe does and why.",
        argument_default=argparse.SUPPRESS,  # only what is given overrides the recipe
    )
    flag = argparse.BooleanOptionalAction
    add = parser.add_argument
    add("--recipe", choices=sorted(RECIPES), default="paper",
        help="paper: the SimAM paper's 64,000-iteration recipe; quick: about 15 minutes on a 2-core CPU (default paper)")
    add("--model", help=f"network: {', '.join(list_models())} ({_defaults('model')})")
    add("--attention", help=f"attention module: none, se, cbam, eca, gc, simam, simam-exact ({_defaults('attention')})")
    add("--lambda", dest="lambda_", type=float, metavar="LAMBDA", help=f"SimAM's regulariser lambda ({_defaults('lambda_')})")
    add("--dataset", help=f"cifar10 or cifar100 ({_defaults('dataset')})")
    add("--data-root", help="folder holding cifar-10-batches-py/ or cifar-100-python/ (default $SIMAM_DATA or ~/.cache/simam)")
    add("--download", action="store_true", help="download the official archive when the data are missing")
    add("--out", help="output folder (default runs/MODEL-ATTENTION-RECIPE-seedSEED)")
    add("--resume", action="store_true", default=False, help="continue the run in --out from its checkpoint")
    add("--seed", type=int, help=f"seeds the weights, the order of the batches and the augmentation ({_defaults('seed')})")
    add("--device", help="auto, cpu, cuda or cuda:N (default auto: CUDA when present)")
    add("--iterations", type=int, help=f"training steps ({_defaults('iterations')})")
    add("--batch-size", type=int, help=f"images per step ({_defaults('batch_size')})")
    add("--lr", type=float, help=f"initial (step) or peak (onecycle) learning rate ({_defaults('lr')})")
    add("--schedule", choices=["step", "onecycle"], help=f"learning-rate schedule ({_defaults('schedule')})")
    add("--milestones", type=_milestones,
        help=f"step schedule: comma-separated iterations where the rate is multiplied by --gamma ({_defaults('milestones')})")
    add("--gamma", type=float, help=f"step schedule factor ({_defaults('gamma')})")
    add("--warmup", type=int, help=f"onecycle: iterations of linear warm-up ({_defaults('warmup')})")
    add("--momentum", type=float, help=f"SGD momentum ({_defaults('momentum')})")
    add("--nesterov", action=flag, help=f"Nesterov momentum ({_defaults('nesterov')})")
    add("--weight-decay", type=float, help=f"L2 weight decay ({_defaults('weight_decay')})")
    add("--norm-bias-decay", action=flag, help=f"weight decay on BN parameters and biases too ({_defaults('norm_bias_decay')})")
    add("--label-smoothing", type=float, help=f"label smoothing of the training loss ({_defaults('label_smoothing')})")
    add("--augment", action=flag, help=f"pad-and-crop and horizontal-flip augmentation ({_defaults('augment')})")
    add("--eval-flip", action=flag, help=f"also report the flip-averaged test accuracy ({_defaults('eval_flip')})")
    add("--padding", type=int, help=f"pixels of zero padding before the random crop ({_defaults('padding')})")
    add("--subset", type=int, help="train on a class-balanced subset of this many images (default: all)")
    add("--test-subset", type=int, help="evaluate on this many test images, for smoke tests (default: all)")
    add("--eval-every", type=int, help=f"iterations between evaluations on the test split ({_defaults('eval_every')})")
    add("--checkpoint-every", type=int, help=f"iterations between checkpoints ({_defaults('checkpoint_every')})")
    add("--amp", action=flag, help="mixed precision (default: on for CUDA and for CPUs with native bfloat16)")
    add("--amp-dtype", choices=["bfloat16", "float16"],
        help="mixed-precision type (default: bfloat16 where the device has it natively, else float16 with a "
             "gradient scaler)")
    add("--deterministic", action=flag, help="on CUDA: deterministic algorithms and no cuDNN autotuning, so that a "
                                             "run repeats bit for bit on the same GPU, more slowly (default: off)")
    add("--channels-last", action=flag, help="channels_last memory format (default: on for CUDA)")
    add("--compile", action=flag, help="torch.compile the model (default: on for CUDA)")
    add("--compile-simam", action=flag, help="torch.compile only SimAM's formula (default: on the CPU for runs of "
                                             f"{COMPILE_SIMAM_FROM:,} iterations or more, where a C++ compiler is found)")
    add("--threads", type=int, help="torch CPU threads (default: torch's choice; on a small or busy machine "
                                    "1 thread can be several times faster, as on the 2-core machine the quick recipe was timed on)")
    add("--progress", action=flag, help="progress bar (default: when stderr is a terminal and CI is not set)")
    add("--sync-bn", action=flag, help="under torchrun: batch norm with the statistics of the global batch, "
                                       f"not of each process's share (CUDA only; {_defaults('sync_bn')})")
    return parser


def _name() -> str:
    """The command's name in its messages; under torchrun every process reports its own errors,
    so the name says which process speaks."""
    world_size, rank = os.environ.get("WORLD_SIZE", "").strip(), os.environ.get("RANK", "?").strip()
    return "simam-train" if world_size in ("", "1") else f"simam-train[rank {rank}]"


def main(argv: list[str] | None = None) -> int:
    """The ``simam-train`` command; returns the exit status (2: bad options or data, 1: diverged).

    Under ``torchrun`` each process runs this; ``torchrun`` itself exits with 1 when any process fails.
    """
    try:
        args = vars(build_parser().parse_args(argv))
        recipe, resume = args.pop("recipe"), args.pop("resume")
        config = dataclasses.replace(RECIPES[recipe], **{k: v for k, v in args.items() if k != "out"})
        out = args.get("out") or f"runs/{config.model}-{config.attention}-{recipe}-seed{config.seed}"
        train(config, out, resume=resume)
    except SystemExit as exit_:  # --help
        return exit_.code or 0
    except ConfigError as error:
        print(f"{_name()}: error: {error}", file=sys.stderr)
        return 2
    except Diverged as error:
        print(f"{_name()}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{_name()}: interrupted; continue with --resume from the last checkpoint", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
