"""Train a CIFAR network with SimAM (or any attention module of the course):
``python -m simam.train``.

Read top to bottom: the learning-rate schedule, evaluation, what a checkpoint restores, the loop in
its named steps (open, build, restore, wrap, evaluate and log, save, finish), and the command line.
What a run is (:class:`~simam.config.Config`, the ``paper`` and ``quick`` recipes and the options
over them) lives in :mod:`simam.config`; the device and what it decides, in :mod:`simam.device`; the
optimiser and one training step, in :mod:`simam.step`; the files a run writes, and reading them
back, in :mod:`simam.runs`.

**Output folder.** ``metrics.jsonl``: one JSON object per evaluation (iteration, epoch, learning
rate, mean training loss since the previous evaluation, test loss, test accuracy, elapsed seconds).
``checkpoint.pt``: everything needed to continue exactly (model, optimiser, gradient scaler, every
random generator, the loader's position, the running loss), written every ``checkpoint_every``
iterations and at the end, atomically. ``final.json``: the full configuration, the final test
accuracy (the number to report), the best one (labelled: it is selected on the test set), wall
time, training images per second, library versions and the device. Images per second twice:
``train_images_per_second`` over every step, and ``steady_images_per_second`` over the steps after
the first ``STEADY_AFTER`` (or a quarter of the run, if shorter) of each session, which compile
the model and warm up (null for a run too short to have any). ``simam.plots.plot_training_curves``
draws the curves from it. With ``--holdout N`` the run trains on the other training images and
evaluates on the N held out, never reading the test split: its ``test_`` keys are then ``holdout_``
keys (``holdout_accuracy``, ``final_holdout_accuracy``). With ``--ema`` the evaluated weights are a
moving average of the trained ones, kept in the checkpoint beside them.

**Resuming.** ``--resume`` continues from ``checkpoint.pt``; on the CPU the weights and metrics at
the end are bit-identical to those of a run that was never interrupted.

**Devices.** CUDA when present, else the CPU (or ``--device``). Precision, channels_last,
torch.compile and threads follow the device (:mod:`simam.device` says how and why); each choice is
switchable and printed when a run starts.

**More than one GPU.** ``torchrun --nproc_per_node=N -m simam.train ...`` runs one training on N
processes with ``DistributedDataParallel`` (Li et al., "PyTorch Distributed", VLDB 2020);
``torchrun`` with ``--nnodes`` and a rendezvous endpoint spreads them over machines. Each process
(rank) takes the GPU of its ``LOCAL_RANK`` and joins an NCCL group (gloo on the CPU).
What stays the same:

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
  (which adds ``distributed``: world size, per-rank batch, backend, SyncBN). The checkpoint holds
  the unwrapped model, so checkpoints move freely between single-process and distributed runs. On
  ``--resume`` rank 0 reads the checkpoint and sends it to the other ranks (the output folder need
  exist only on rank 0's node), and every rank continues with the same random generators and
  loader position. The plan does not depend on the world size, so a run can be resumed on another
  number of processes.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) no process group is made and nothing changes.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from simam import distributed
from simam.config import (
    Config,
    ConfigError,
    build_model,
    changed_settings,
    check_config,
    config_from_args,
)
from simam.data import CifarFormatError, CifarLoader, dataset_spec, holdout_split, load_cifar
from simam.device import (
    autocast,
    cuda_settings,
    describe,
    deterministic_cublas,
    resolve,
    resolve_device,
    versions,
    why_not_compiled,
)
from simam.distributed import Launch
from simam.models import count_parameters
from simam.runs import CHECKPOINT, FINAL, METRICS, atomic_write, evaluated_split, read_metrics
from simam.settings import seed_everything
from simam.step import make_optimizer, train_step

EVAL_BATCH = 1000

SYNC_EVERY = 50  # iterations between looks at the loss: each look waits for the GPU

# first steps of a session left out of steady_images_per_second: compilation and warm-up
STEADY_AFTER = 50


class Diverged(RuntimeError):
    """The training loss became NaN or infinite."""


# --------------------------------------------------------------------------------------------------
# The schedule, and evaluation


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


@torch.no_grad()
def evaluate(
    forward: nn.Module,
    model: nn.Module,
    loader: CifarLoader,
    amp_dtype: str | None,
    flip: bool = False,
    split: str = "test",
) -> dict[str, float]:
    """Mean cross-entropy (without label smoothing) and top-1 accuracy over ``loader``'s split,
    named by ``split``: ``{"test_loss", "test_accuracy"}``, and with ``flip`` also
    ``"test_accuracy_flip"``, the
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
    result = {
        f"{split}_loss": loss.item() / loader.num_images,
        f"{split}_accuracy": correct[0].item() / loader.num_images,
    }
    if flip:
        result[f"{split}_accuracy_flip"] = correct[1].item() / loader.num_images
    return result


@torch.no_grad()
def update_average(average: nn.Module, model: nn.Module, decay: float) -> None:
    """One step of an exponential moving average of ``model`` in ``average``:
    ``average = decay * average + (1 - decay) * model`` for every parameter and floating-point
    buffer (batch norm's running statistics); integer buffers (its step count) are copied."""
    for averaged, current in zip(average.state_dict().values(), model.state_dict().values()):
        if averaged.is_floating_point():
            averaged.lerp_(current, 1 - decay)
        else:
            averaged.copy_(current)


def average_decay(config: Config, iteration: int) -> float:
    """The decay of the weights' average after step ``iteration`` (counted from 1): ``config.ema``,
    lowered early on to ``(1 + iteration) / (10 + iteration)`` (as TensorFlow's
    ``ExponentialMovingAverage`` does with ``num_updates``) so that the first, random weights do
    not linger in the average of a short run."""
    return min(config.ema, (1 + iteration) / (10 + iteration))


# --------------------------------------------------------------------------------------------------
# What a checkpoint restores, and what a run records


def rng_states() -> dict[str, Any]:
    """Every global random generator's state,
    in types that ``torch.load(weights_only=True)`` reads."""
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
    if (
        states["cuda"]
        and torch.cuda.is_available()
        and len(states["cuda"]) == torch.cuda.device_count()
    ):
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
        print(
            f"{_name()}: the checkpoint was saved without a float16 gradient scaler; "
            "starting a fresh one",
            file=sys.stderr,
        )


# --------------------------------------------------------------------------------------------------
# The run


def load_data(
    config: Config, rank: int = 0, world_size: int = 1
) -> tuple[CifarLoader, CifarLoader]:
    """The training loader (shuffled, augmented, whole batches only) and the evaluation loader, each
    yielding share ``rank`` of ``world_size`` of every batch. The evaluation loader holds the test
    split, or with ``config.holdout`` the training images held out (the test split is then not
    read)."""
    spec = dataset_spec(config.dataset)
    root = Path(config.data_root)
    folder = root / spec.folder
    files = spec.train_files if config.holdout else (*spec.train_files, *spec.test_files)
    missing = [f for f in files if not (folder / f).is_file()]
    if missing and not config.download:
        raise ConfigError(
            f"{spec.title} not found: {folder} lacks {', '.join(missing)}; point --data-root "
            f"(or SIMAM_DATA) at the folder that holds {spec.folder}/, or pass --download"
        )
    try:
        train_split = load_cifar(root, config.dataset, train=True, download=config.download)
        if not config.holdout:
            eval_split = load_cifar(root, config.dataset, train=False, download=config.download)
    except (OSError, CifarFormatError) as error:  # a failed download, a damaged file
        raise ConfigError(" ".join(str(error).split())) from None
    if config.holdout:
        images, labels = train_split
        if config.holdout > len(labels) - config.batch_size:
            raise ConfigError(
                f"holdout {config.holdout} leaves less than one batch of {config.batch_size} of "
                f"the {len(labels):,} training images"
            )
        kept, held = holdout_split(labels, config.holdout)
        train_split, eval_split = (images[kept], labels[kept]), (images[held], labels[held])
    options = {
        "mean": spec.mean,
        "std": spec.std,
        "device": config.device,
        "channels_last": config.channels_last,
        "seed": config.seed,
        "rank": rank,
        "world_size": world_size,
    }
    train_loader = CifarLoader(
        *train_split,
        batch_size=config.batch_size,
        shuffle=True,
        augment=config.augment,
        padding=config.padding,
        pad_mode=config.pad_mode,
        flips=config.flips,
        drop_last=True,
        subset=config.subset,
        **options,
    )
    eval_loader = CifarLoader(
        *eval_split, batch_size=EVAL_BATCH, subset=config.test_subset, **options
    )
    return train_loader, eval_loader


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
    # given back at the end: a notebook goes on with its own setting
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        device = resolve_device(config.device, world.local_rank if world.distributed else None)
        if config.deterministic and device.type == "cuda":
            deterministic_cublas()  # before resolve(), whose probes of the GPU initialise CUDA
        config = resolve(config, device, world.world_size)
        if config.sync_bn and world.distributed and device.type != "cuda":
            raise ConfigError(
                "--sync-bn needs CUDA: torch's SyncBatchNorm runs on GPUs only; "
                "train on the CPU without it"
            )
        with (
            distributed.process_group(device) as backend,
            cuda_settings(config.deterministic and device.type == "cuda"),
        ):
            return _train(config, device, Path(out), resume, world, backend)
    finally:
        torch.set_num_threads(threads)


def _open_run(
    config: Config, out: Path, resume: bool
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The checkpoint to continue from (None: start afresh) and the metrics rows up to it, once
    ``out`` is found usable: a run already there needs ``resume``, with the same settings."""
    checkpoint_path, metrics_path = out / CHECKPOINT, out / METRICS
    checkpoint = None
    if resume and checkpoint_path.exists():
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=True)
        changed = [
            f"{key}={value!r} (the run has {ran!r})"
            for key, value, ran in changed_settings(config, checkpoint["config"])
        ]
        if changed:
            raise ConfigError(
                f"--resume with other settings than the run in {out}: {'; '.join(changed)}"
            )
    elif not resume and (checkpoint_path.exists() or metrics_path.exists()):
        raise ConfigError(
            f"{out} already holds a run: pass --resume to continue it, or choose another --out"
        )
    # Rows of iterations after the checkpoint describe work that is about to be redone.
    return checkpoint, read_metrics(out, up_to=0 if checkpoint is None else checkpoint["iteration"])


@dataclass
class _Run:
    """A run in progress: what it was given, what it built, and what the loop moves forward."""

    config: Config
    out: Path
    world: Launch
    device: torch.device
    rows: list[dict[str, Any]]  # the metrics so far
    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    train_loader: CifarLoader
    eval_loader: CifarLoader  # the test split, or the held-out training images
    # the model as it trains: wrapped by DDP, compiled, as configured
    forward: nn.Module | None = None
    # the model as it evaluates (never DDP: no collective per batch): the weights' average if any
    eval_forward: nn.Module | None = None
    average: nn.Module | None = None  # the moving average of the weights (config.ema)
    iteration: int = 0
    elapsed_before: float = 0.0  # seconds spent in earlier sessions, before a resume
    train_seconds: float = 0.0  # time in training steps only, between evaluations and saves
    # the part of train_seconds after each session's first steps (steady_from)
    steady_seconds: float = 0.0
    steady_steps: int = 0  # the steps timed in steady_seconds
    saved: int | None = None  # iteration of the last checkpoint
    loss_sum: torch.Tensor | None = None  # training loss since the last evaluation, on the device
    loss_count: int = 0
    session_start: float = dataclasses.field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        return self.elapsed_before + time.perf_counter() - self.session_start


def _train(
    config: Config,
    device: torch.device,
    out: Path,
    resume: bool,
    world: Launch,
    backend: str | None,
) -> dict[str, Any]:
    """:func:`train` once the device is chosen and this process is in its process group (if any)."""
    checkpoint, rows = _open_on_every_rank(config, out, resume, world)
    # a rank that cannot start stops them all
    with distributed.fail_together(shared=(ConfigError,)):
        run = _build(config, device, out, world, rows)
        if checkpoint is not None:
            _restore(run, checkpoint)
        if world.main:
            _prepare_folder(run)
    _wrap(run, backend)
    bar = tqdm(
        total=config.iterations,
        initial=run.iteration,
        disable=not (config.progress and world.main),
        unit="it",
        dynamic_ncols=True,
    )
    run.session_start = segment_start = time.perf_counter()
    segment_first = run.iteration  # the iteration the timed segment started at
    # Steady speed: the steps after this session's compilation and warm-up,
    # which a look at the loss starts.
    steady_from = run.iteration + max(
        1, min(STEADY_AFTER, (config.iterations - run.iteration) // 4)
    )
    run.model.train()
    while run.iteration < config.iterations:
        for images, labels in run.train_loader:
            lr = learning_rate(config, run.iteration)
            for group in run.optimizer.param_groups:
                group["lr"] = lr
            run.loss_sum += train_step(
                run.forward,
                images,
                labels,
                run.criterion,
                run.optimizer,
                run.scaler,
                config.amp_dtype,
            )
            run.loss_count += 1
            run.iteration += 1
            if run.average is not None:
                update_average(run.average, run.model, average_decay(config, run.iteration))
            bar.update()

            last = run.iteration == config.iterations
            evaluate_now = run.iteration % config.eval_every == 0 or last
            save_now = run.iteration % config.checkpoint_every == 0 or last
            if not (
                evaluate_now
                or save_now
                or run.iteration % SYNC_EVERY == 0
                or run.iteration == steady_from
            ):
                continue
            train_loss = _training_loss(run, lr, bar)
            seconds = time.perf_counter() - segment_start
            run.train_seconds += seconds
            if segment_first >= steady_from:
                run.steady_seconds += seconds
                run.steady_steps += run.iteration - segment_first
            if evaluate_now:
                _evaluate_and_log(run, lr, train_loss, bar)
            if save_now:
                _save(run)
            segment_start, segment_first = time.perf_counter(), run.iteration
            if last:
                break
    bar.close()
    return _finish(run, backend)


def _open_on_every_rank(
    config: Config, out: Path, resume: bool, world: Launch
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """:func:`_open_run` on rank 0 (the output folder need exist only on its node); the other ranks
    get what it found, or its error, so that every rank stops or carries on together."""
    opened = None
    with distributed.fail_together(shared=(ConfigError,)):
        if world.main:
            opened = _open_run(config, out, resume)
    return distributed.broadcast_object(opened)


def _build(
    config: Config, device: torch.device, out: Path, world: Launch, rows: list[dict[str, Any]]
) -> _Run:
    """The network, its optimiser, gradient scaler and loss, and the data, freshly initialised."""
    seed_everything(config.seed)
    model = build_model(config).to(device)  # the same initial weights on every rank
    if world.distributed:  # but each rank its own stream from here on: its own dropout masks
        torch.manual_seed(distributed.rank_seed(config.seed, world.rank))
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    if config.sync_bn and world.distributed:
        # the same parameters and state_dict keys
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    train_loader, eval_loader = load_data(config, world.rank, world.world_size)
    average = copy.deepcopy(model).requires_grad_(False) if config.ema else None
    return _Run(
        config,
        out,
        world,
        device,
        rows,
        model,
        make_optimizer(model, config),
        torch.amp.GradScaler(device.type, enabled=config.amp_dtype == "float16"),
        nn.CrossEntropyLoss(label_smoothing=config.label_smoothing),
        train_loader,
        eval_loader,
        loss_sum=torch.zeros((), device=device),
        average=average,
    )


def _restore(run: _Run, checkpoint: dict[str, Any]) -> None:
    """Continue from ``checkpoint``: weights, optimiser, scaler, loader position, random generators,
    the clocks and the running loss."""
    run.model.load_state_dict(checkpoint["model"])
    if run.average is not None:
        run.average.load_state_dict(checkpoint["average"])
    run.optimizer.load_state_dict(checkpoint["optimizer"])
    restore_scaler(run.scaler, checkpoint["scaler"])
    run.train_loader.load_state_dict(checkpoint["loader"])
    restore_rng_states(checkpoint, run.config.seed, run.world)
    run.iteration = run.saved = checkpoint["iteration"]
    run.elapsed_before, run.train_seconds = checkpoint["elapsed"], checkpoint["train_seconds"]
    # absent from checkpoints of older versions: the steady speed is then this session's
    run.steady_seconds, run.steady_steps = (
        checkpoint.get("steady_seconds", 0.0),
        checkpoint.get("steady_steps", 0),
    )
    run.loss_sum.copy_(checkpoint["loss_sum"])
    run.loss_count = checkpoint["loss_count"]


def _prepare_folder(run: _Run) -> None:
    """Rank 0: the output folder, without what a killed save left,
    and the metrics up to the checkpoint."""
    run.out.mkdir(parents=True, exist_ok=True)
    for leftover in run.out.glob(".*.tmp"):  # left by a run killed while saving; never read
        leftover.unlink()
    atomic_write(
        run.out / METRICS,
        lambda f: f.write("".join(json.dumps(row) + "\n" for row in run.rows).encode()),
    )


def _wrap(run: _Run, backend: str | None) -> None:
    """DDP and torch.compile around the model, as configured; then the line that starts the run."""
    config, world, model = run.config, run.world, run.model
    if world.distributed:
        wrapped = DistributedDataParallel(
            model, device_ids=[run.device.index] if run.device.type == "cuda" else None
        )
        run.forward = torch.compile(wrapped) if config.compile else wrapped
    else:
        run.forward = torch.compile(model) if config.compile else model
    if run.average is not None:
        run.eval_forward = torch.compile(run.average) if config.compile else run.average
    elif world.distributed:
        run.eval_forward = torch.compile(model) if config.compile else model
    else:
        run.eval_forward = run.forward  # one compilation serves both
    processes = (
        (
            f"{world.world_size} processes ({backend}, "
            f"per-rank batch {config.batch_size // world.world_size}, "
            f"SyncBN {'on' if config.sync_bn else 'off'}), "
        )
        if world.distributed
        else ""
    )
    if world.main:
        print(
            f"{config.model} + {config.attention} on {config.dataset}, {config.recipe} recipe, "
            f"{count_parameters(model):,} parameters, {processes}{describe(run.device)}, "
            f"precision {config.amp_dtype or 'float32'}, "
            f"channels_last {config.channels_last}, compile {config.compile}"
            f"{why_not_compiled(run.device, config.compile, config.sync_bn and world.distributed)}"
            f", SimAM compiled {config.compile_simam}; "
            f"{'resuming at' if run.iteration else 'starting at'} iteration {run.iteration} of "
            f"{config.iterations} -> {run.out}"
        )


def _training_loss(run: _Run, lr: float, bar: tqdm) -> float:
    """The mean training loss since the last evaluation, the same on every rank; stops the run if
    it is not finite (every rank at the same iteration, the last checkpoint kept)."""
    distributed.all_reduce_mean_(run.loss_sum)  # every rank now holds the global batch's mean
    train_loss = run.loss_sum.item() / run.loss_count  # waits for the device
    if not math.isfinite(train_loss):
        bar.close()
        kept = (
            "no checkpoint was written"
            if run.saved is None
            else f"{run.out / CHECKPOINT} holds iteration {run.saved}"
        )
        raise Diverged(
            f"the training loss became {train_loss} by iteration {run.iteration} (learning rate "
            f"{lr:g}); stopped, {kept}. Lower the learning rate, or check the data and model."
        )
    bar.set_postfix(loss=f"{train_loss:.3f}", lr=f"{lr:.4g}", refresh=False)
    return train_loss


def _evaluate_and_log(run: _Run, lr: float, train_loss: float, bar: tqdm) -> None:
    """One evaluation on the test split (or the held-out images), appended to ``metrics.jsonl``
    (rank 0) and printed."""
    config, split = run.config, evaluated_split(run.config)
    evaluated = run.model if run.average is None else run.average
    # every rank evaluates rank 0's running statistics, the saved ones
    distributed.broadcast_buffers_(evaluated)
    scores = evaluate(
        run.eval_forward, evaluated, run.eval_loader, config.amp_dtype, config.eval_flip, split
    )
    elapsed = run.elapsed()
    row = {
        "iteration": run.iteration,
        "epoch": round(run.iteration / len(run.train_loader), 4),
        "lr": lr,
        "train_loss": train_loss,
        **scores,
        "elapsed_seconds": round(elapsed, 3),
    }
    run.rows.append(row)
    if run.world.main:
        with open(run.out / METRICS, "a") as file:
            file.write(json.dumps(row) + "\n")
            file.flush()
            os.fsync(file.fileno())
        flipped = (
            f" (flip-averaged {100 * scores[f'{split}_accuracy_flip']:.2f}%)"
            if config.eval_flip
            else ""
        )
        bar.write(
            f"iteration {run.iteration:>6}  epoch {row['epoch']:7.2f}  lr {lr:.4g}  "
            f"train loss {train_loss:.4f}  {split} loss {scores[f'{split}_loss']:.4f}  "
            f"{split} accuracy {100 * scores[f'{split}_accuracy']:.2f}%{flipped}  {elapsed:.0f}s",
            file=sys.stdout,
        )
    run.loss_sum.zero_()
    run.loss_count = 0


def _save(run: _Run) -> None:
    """The checkpoint: everything a resumed run needs, every rank's random generators included."""
    elapsed = run.elapsed()
    rng_by_rank = distributed.all_gather_object(rng_states())  # every rank's dropout stream
    # No barrier after saving: no rank can finish the next step before rank 0 joins its gradient
    # all-reduce, and a rank killed meanwhile leaves the checkpoint whole.
    if run.world.main:
        state = {
            "config": dataclasses.asdict(run.config),
            "iteration": run.iteration,
            "model": run.model.state_dict(),
            # the weights the run evaluates, where they are an average (config.ema)
            **({} if run.average is None else {"average": run.average.state_dict()}),
            "optimizer": run.optimizer.state_dict(),
            "scaler": run.scaler.state_dict(),
            "loader": run.train_loader.state_dict(),
            "rng": rng_by_rank[0],
            "rng_by_rank": rng_by_rank,
            "loss_sum": run.loss_sum.cpu(),
            "loss_count": run.loss_count,
            "elapsed": elapsed,
            "train_seconds": run.train_seconds,
            "steady_seconds": run.steady_seconds,
            "steady_steps": run.steady_steps,
        }
        atomic_write(run.out / CHECKPOINT, lambda f: torch.save(state, f))
    run.saved = run.iteration


def _finish(run: _Run, backend: str | None) -> dict[str, Any]:
    """``final.json`` (rank 0) and its summary line; every rank returns the same results."""
    config, rows = run.config, run.rows
    if not rows:  # a finished run resumed after its metrics file was lost
        raise ConfigError(
            f"{run.out / METRICS} holds no evaluations, but {run.out / CHECKPOINT} is at the last "
            "iteration: restore the metrics file, or train afresh in another --out"
        )
    split = evaluated_split(config)
    best = max(rows, key=lambda row: row[f"{split}_accuracy"])
    final = {
        "config": dataclasses.asdict(config),
        "iterations": run.iteration,
        "epochs": rows[-1]["epoch"],
        f"final_{split}_accuracy": rows[-1][f"{split}_accuracy"],
        f"final_{split}_loss": rows[-1][f"{split}_loss"],
        **(
            {f"final_{split}_accuracy_flip": rows[-1][f"{split}_accuracy_flip"]}
            if config.eval_flip
            else {}
        ),
        f"best_{split}_accuracy_selected_on_{split}_set": best[f"{split}_accuracy"],
        f"best_iteration_selected_on_{split}_set": best["iteration"],
        "note": (
            "final_test_accuracy is the result to report. The best one is the highest of all "
            "evaluations, picked by looking at the test set: an optimistic figure, "
            "not an estimate for new data."
            if split == "test"
            else f"Evaluated on {config.holdout:,} training images held out from training, to "
            "choose a recipe on; the test split was not read."
        ),
        "wall_seconds": round(run.elapsed(), 3),
        "train_seconds": round(run.train_seconds, 3),
        "train_images_per_second": round(run.iteration * config.batch_size / run.train_seconds, 1),
        "steady_images_per_second": (
            round(run.steady_steps * config.batch_size / run.steady_seconds, 1)
            if run.steady_steps
            else None
        ),
        "parameters": count_parameters(run.model),
        "device": describe(run.device),
        "versions": versions(),
    }
    if run.world.distributed:
        final["distributed"] = {
            "world_size": run.world.world_size,
            "per_rank_batch": config.batch_size // run.world.world_size,
            "backend": backend,
            "sync_bn": config.sync_bn,
        }
    if run.world.main:
        atomic_write(
            run.out / FINAL, lambda f: f.write((json.dumps(final, indent=2) + "\n").encode())
        )
        flipped = (
            f" (flip-averaged {100 * final[f'final_{split}_accuracy_flip']:.2f}%)"
            if config.eval_flip
            else ""
        )
        print(
            f"final {split} accuracy {100 * final[f'final_{split}_accuracy']:.2f}%{flipped} "
            f"(best {100 * best[f'{split}_accuracy']:.2f}% at iteration {best['iteration']}, "
            f"selected on the {split} set); {final['wall_seconds']:.0f}s, "
            f"{final['train_images_per_second']:.0f} training images/s"
            + (
                ""
                if final["steady_images_per_second"] is None
                else f" ({final['steady_images_per_second']:.0f} after compilation and warm-up)"
            )
        )
    return final


# --------------------------------------------------------------------------------------------------
# The command line


def _name() -> str:
    """The command's name in its messages; under torchrun every process reports its own errors,
    so the name says which process speaks."""
    world_size, rank = os.environ.get("WORLD_SIZE", "").strip(), os.environ.get("RANK", "?").strip()
    return "simam-train" if world_size in ("", "1") else f"simam-train[rank {rank}]"


def main(argv: list[str] | None = None) -> int:
    """The ``simam-train`` command; returns the exit status (2: bad options or data, 1: diverged).

    Under ``torchrun`` each process runs this, and ``torchrun`` itself exits with 1 when any
    process fails; a process that stops because another rank failed ends with status 1 without
    returning.
    """
    try:
        config, options = config_from_args(sys.argv[1:] if argv is None else argv)
        out = (
            options.get("out")
            or f"runs/{config.model}-{config.attention}-{config.recipe}-seed{config.seed}"
        )
        train(config, out, resume=options.get("resume", False))
    except SystemExit as exit_:  # --help
        return exit_.code or 0
    except ConfigError as error:
        print(f"{_name()}: error: {error}", file=sys.stderr)
        return 2
    except Diverged as error:
        print(f"{_name()}: {error}", file=sys.stderr)
        return 1
    except distributed.RankFailed as error:
        print(f"{_name()}: {error}", file=sys.stderr)
        # The process group is gone and nothing is left to write. Ending here skips the
        # interpreter's exit, where torch's C++ teardown can abort once another rank has left
        # ("terminate called without an active exception", about one exit in 50 to 200 on a
        # 2-core CPU), which would turn this status 1 into a SIGABRT.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    except KeyboardInterrupt:
        print(
            f"{_name()}: interrupted; continue with --resume from the last checkpoint",
            file=sys.stderr,
        )
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
