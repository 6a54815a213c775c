"""What defines a training run: the :class:`Config`, the paper's and the quick recipe, the checks
a configuration must pass, the network it builds, and the command-line options that override it.

:mod:`simam.train` trains a configuration; :mod:`simam.runs` reads what a run wrote;
:mod:`simam.experiments` plans grids of configurations. None of them needs the others to know what
a run is.

**Recipes.** ``paper`` is the SimAM paper's CIFAR recipe (section 4.1), counted in iterations as the
paper counts it: SGD with momentum 0.9, batch 128, weight decay 5e-4, learning rate 0.1 divided by
10 at 32,000 and 48,000 iterations, 64,000 iterations; pad-4 crop and horizontal flip. ``quick``
gets ResNet-20 as far as it can in about a quarter of an hour on a 2-core CPU (see ``QUICK`` for
each choice and its source). Every field of :class:`Config` can be overridden, on the command line.

**The command line.** :func:`config_from_args` is the one road from text to a checked
:class:`Config`: ``python -m simam.train``, a grid's runs (:meth:`simam.experiments.RunSpec.config`)
and the benchmarks' ``--config FIELD=VALUE`` all take it. Its options are written by hand rather
than generated from the fields, because their help gives each default per recipe or says what the
device decides, and several take a form of their own (``--lambda``, comma-separated
``--milestones``, ``--no-FLAG``) that generated options would need as much per-field metadata to
express.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from torch import nn

from simam.attention import PLACES, SimAM, attention_kind, attention_options
from simam.data import dataset_spec
from simam.models import create_model, list_models


@dataclass(frozen=True)
class Config:
    """Everything that defines a run. The defaults are the paper's recipe."""

    recipe: str = "paper"  # the recipe this configuration started from (a label)
    # the network and the data
    model: str = "resnet20"
    attention: str = "simam"
    # SimAM's regulariser (paper: 1e-4 on CIFAR); only the simam attentions use it
    lambda_: float = 1e-4
    # where a block puts the attention (simam.attention.PLACES); None: the paper's place
    place: str | None = None
    dataset: str = "cifar10"
    subset: int | None = None  # train on a seeded, class-balanced subset of this many images
    test_subset: int | None = None  # evaluate on a subset of the test split (smoke tests only)
    augment: bool = True  # pad, random 32x32 crop, random horizontal flip
    padding: int = 4
    # also report the accuracy of test-time flip averaging (beside the plain one)
    eval_flip: bool = False
    # optimisation, counted in iterations (batches)
    iterations: int = 64_000
    batch_size: int = 128
    lr: float = 0.1  # the initial (step) or peak (onecycle) learning rate
    schedule: str = "step"  # "step" or "onecycle", see learning_rate()
    # step: the learning rate is multiplied by gamma at each of these iterations
    milestones: tuple[int, ...] = (32_000, 48_000)
    gamma: float = 0.1
    warmup: int = 0  # onecycle: iterations of linear warm-up
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    norm_bias_decay: bool = True  # weight decay on BN parameters and biases too, as plain SGD does
    label_smoothing: float = 0.0
    seed: int = 0
    # under torchrun: batch norm with the global batch's statistics (CUDA only)
    sync_bn: bool = False
    # how the run is watched and saved, and where it runs: these may change when a run is resumed
    eval_every: int = 1_000
    checkpoint_every: int = 2_000
    data_root: str | None = None  # None: $SIMAM_DATA or ~/.cache/simam
    download: bool = False
    device: str = "auto"  # "auto": CUDA when present, else the CPU
    # mixed precision; None: where the device computes in bfloat16 natively (or on CUDA)
    amp: bool | None = None
    # "bfloat16" or "float16"; None: bfloat16 where the device has it natively
    amp_dtype: str | None = None
    channels_last: bool | None = None  # None: on for CUDA
    # torch.compile of the whole model; None: on for CUDA where Triton runs (7.0+)
    compile: bool | None = None
    # only SimAM's formula compiled (SimAM(compiled=True)); None: device.resolve()
    compile_simam: bool | None = None
    threads: int | None = None  # torch CPU threads; None: torch's default
    # CUDA: deterministic algorithms, no cuDNN autotuning (slower; device.cuda_settings)
    deterministic: bool = False
    progress: bool | None = None  # progress bar; None: when stderr is a terminal and CI is not set


CONFIG_FIELDS = frozenset(field.name for field in dataclasses.fields(Config))

RUNTIME_FIELDS = {
    "eval_every",
    "checkpoint_every",
    "data_root",
    "download",
    "device",
    "amp",
    "amp_dtype",
    "channels_last",
    "compile",
    "compile_simam",
    "threads",
    "deterministic",
    "progress",
}

PAPER = Config()

# The quick recipe: the standard tricks for short runs, none of which changes the network, sized to
# finish within 15 minutes of a 2-core CPU, whole command included. Sized on a 2-core Intel Xeon
# with AMX (bfloat16 autocast and SimAM compiled, the trainer's defaults there): 3,300 iterations of
# ResNet-20 + SimAM fit in 15 minutes and ended at 87.63% final test accuracy (88.39%
# flip-averaged); 3,200 leave a margin of about half a minute for a busier machine. Where the CPU
# lacks native bfloat16 the same recipe trains in float32, more slowly.
# QUICK_SIZED_AT is that sizing run's train_images_per_second (compilation included); chapter 5
# prices the paper recipe with it. To measure it on another machine:
#   python -m simam.train --recipe quick --iterations 3300 --out /tmp/quick-sizing
#   python -c "import json; print(json.load(open('/tmp/quick-sizing/final.json'))
#       ['train_images_per_second'])"
QUICK_SIZED_AT = 494

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
    # Tricks", CVPR 2019, section 3.1): decay regularises the weights that can overfit; these are
    # few.
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

# The quick recipe at four times its iterations, the same schedule's shape (warm-up 20%): how a gain
# measured at 8 epochs changes at 33, for the course's budget study (results/plans/budget.toml).
QUICK_4X = dataclasses.replace(
    QUICK,
    recipe="quick-4x",
    iterations=4 * QUICK.iterations,
    warmup=4 * QUICK.warmup,
    eval_every=4 * QUICK.eval_every,
)

RECIPES = {"paper": PAPER, "quick": QUICK, "quick-4x": QUICK_4X}


# iterations: compiling SimAM costs about 12 s and saves about 0.1 s a step on 2 cores
COMPILE_SIMAM_FROM = 200


class ConfigError(ValueError):
    """A configuration, command line or data folder that a run cannot start from."""


def check_config(config: Config, world_size: int = 1) -> None:
    """Raise :class:`ConfigError` naming the first value that no run on ``world_size``
    processes can use."""
    c = config
    rules = [
        (c.iterations >= 1, f"iterations must be at least 1, got {c.iterations}"),
        (c.batch_size >= 1, f"batch_size must be at least 1, got {c.batch_size}"),
        (
            c.batch_size % world_size == 0,
            f"batch_size {c.batch_size} does not divide by the {world_size} processes: the batch "
            f"is global and each process takes batch_size / {world_size} images of it; "
            f"choose a multiple of {world_size}",
        ),
        (c.eval_every >= 1, f"eval_every must be at least 1, got {c.eval_every}"),
        (c.checkpoint_every >= 1, f"checkpoint_every must be at least 1, got {c.checkpoint_every}"),
        (c.lr > 0, f"lr must be positive, got {c.lr}"),
        (
            c.schedule in ("step", "onecycle"),
            f"schedule must be 'step' or 'onecycle', got {c.schedule!r}",
        ),
        (
            all(m >= 1 for m in c.milestones) and list(c.milestones) == sorted(set(c.milestones)),
            f"milestones must be increasing positive iterations, got {c.milestones}",
        ),
        (c.gamma > 0, f"gamma must be positive, got {c.gamma}"),
        (
            c.schedule == "step" or 0 <= c.warmup < c.iterations,
            f"warmup must be in 0..iterations-1, got {c.warmup}",
        ),
        (0 <= c.momentum < 1, f"momentum must be in [0, 1), got {c.momentum}"),
        (c.momentum > 0 or not c.nesterov, "Nesterov momentum needs momentum > 0"),
        (c.weight_decay >= 0, f"weight_decay must be non-negative, got {c.weight_decay}"),
        (0 <= c.label_smoothing < 1, f"label_smoothing must be in [0, 1), got {c.label_smoothing}"),
        (c.padding >= 0, f"padding must be non-negative, got {c.padding}"),
        (c.lambda_ >= 0, f"lambda must be non-negative, got {c.lambda_}"),
        (
            c.subset is None or c.subset >= c.batch_size,
            f"subset must hold at least one batch of {c.batch_size}, got {c.subset}",
        ),
        (
            c.test_subset is None or c.test_subset >= 1,
            f"test_subset must be at least 1, got {c.test_subset}",
        ),
        (
            c.amp_dtype in (None, "bfloat16", "float16"),
            f"amp_dtype must be 'bfloat16' or 'float16', got {c.amp_dtype!r}",
        ),
        (c.threads is None or c.threads >= 1, f"threads must be at least 1, got {c.threads}"),
        (
            c.place is None or c.place in PLACES,
            f"place must be one of {', '.join(PLACES)}, got {c.place!r}",
        ),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message)
    try:
        dataset_spec(c.dataset)
        attention_kind(c.attention)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def as_config_value(value: Any) -> Any:
    """A value read back from a checkpoint or a JSON file, as a Config holds it
    (lists were tuples)."""
    return tuple(value) if isinstance(value, list) else value


def changed_settings(config: Config, stored: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """The settings of ``config`` that differ from a run's ``stored`` configuration (a checkpoint's
    or a results line's), as ``(field, config's value, the run's value)``; the runtime fields may
    differ. A field the run lacks (written before the field existed) had its default in the run's
    own recipe."""
    recipe = RECIPES.get(stored.get("recipe", "paper"), PAPER)
    ran = {
        **dataclasses.asdict(recipe),
        **{key: as_config_value(value) for key, value in stored.items()},
    }
    return [
        (key, value, ran[key])
        for key, value in dataclasses.asdict(config).items()
        if key not in RUNTIME_FIELDS and value != ran[key]
    ]


def config_from_dict(values: dict[str, Any]) -> Config:
    """The :class:`Config` stored as ``values`` (a checkpoint's or ``final.json``'s); fields it
    lacks, from runs of an older version, take their defaults, and ones this version lacks are
    dropped."""
    return Config(
        **{key: as_config_value(value) for key, value in values.items() if key in CONFIG_FIELDS}
    )


def build_model(config: Config) -> nn.Module:
    """The network of ``config``, freshly initialised from torch's global generator, its SimAM
    modules compiled if ``config.compile_simam`` says so."""
    try:
        model = create_model(
            config.model,
            attention=config.attention,
            num_classes=dataset_spec(config.dataset).num_classes,
            place=config.place,
            **attention_options(config.attention, lambda_=config.lambda_),
        )
    except ValueError as error:  # unknown model or attention
        raise ConfigError(str(error)) from None
    for module in model.modules():  # the same arithmetic, fused into one kernel per shape
        if isinstance(module, SimAM) and not module.exact:
            module.compiled = bool(config.compile_simam)
    return model


# --------------------------------------------------------------------------------------------------
# The command line: options over a recipe


class OneLineParser(argparse.ArgumentParser):
    """An argument parser that raises ``error_type`` with argparse's one-line message instead of
    printing a usage block and exiting, so that a command reports every bad input the same way."""

    error_type: type[Exception] = ConfigError

    def error(self, message: str) -> NoReturn:
        raise self.error_type(message)


def config_from_args(args: Sequence[str], world_size: int = 1) -> tuple[Config, dict[str, Any]]:
    """The :class:`Config` that the trainer's options ``args`` ask for, checked for a run on
    ``world_size`` processes: their recipe (``--recipe``, else ``paper``) with the fields they give
    over it. Also returns the options given, by name: those fields, ``recipe``, and ``out`` and
    ``resume``, which say where a run goes rather than what it is. Raises :class:`ConfigError` with
    a one-line message for text that does not parse and for a configuration no run can use
    (:func:`check_config`)."""
    given = vars(build_parser().parse_args(list(args)))
    fields = {key: value for key, value in given.items() if key in CONFIG_FIELDS}
    config = dataclasses.replace(RECIPES[given.get("recipe", PAPER.recipe)], **fields)
    check_config(config, world_size)
    return config, given


def option_name(name: str) -> str:
    """The trainer's option that sets ``name``, a field of :class:`Config` or ``out`` or ``resume``:
    ``--batch-size`` for ``batch_size``, ``--lambda`` for ``lambda_``."""
    return "--" + name.rstrip("_").replace("_", "-")


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
        raise argparse.ArgumentTypeError(
            f"expected comma-separated iterations such as 32000,48000, got {text!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="simam-train",
        description="Train a CIFAR network with SimAM or another attention module. Options not "
        "given take the value of the recipe (--recipe); "
        "see simam/config.py for what each recipe does and why.",
        # only the options given appear: they override the recipe
        argument_default=argparse.SUPPRESS,
    )
    flag = argparse.BooleanOptionalAction
    add = parser.add_argument
    add(
        "--recipe",
        choices=sorted(RECIPES),
        help="paper: the SimAM paper's 64,000-iteration recipe; quick: about 15 minutes on a "
        "2-core CPU; quick-4x: the quick recipe at four times its iterations (default paper)",
    )
    add("--model", help=f"network: {', '.join(list_models())} ({_defaults('model')})")
    add(
        "--attention",
        help="attention module: none, se, cbam, eca, gc, simam, simam-exact "
        f"({_defaults('attention')})",
    )
    add(
        "--lambda",
        dest="lambda_",
        type=float,
        metavar="LAMBDA",
        help=f"SimAM's regulariser lambda ({_defaults('lambda_')})",
    )
    add(
        "--place",
        choices=PLACES,
        help="where each block puts the attention: after_conv (right after the 3x3 "
        "convolution, before its batch norm: SimAM's place) or end_of_branch (after the branch's "
        "last batch norm: SE's place) (default: the paper's place for the module)",
    )
    add("--dataset", help=f"cifar10 or cifar100 ({_defaults('dataset')})")
    add(
        "--data-root",
        help="folder holding cifar-10-batches-py/ or cifar-100-python/ "
        "(default $SIMAM_DATA or ~/.cache/simam)",
    )
    add(
        "--download",
        action="store_true",
        help="download the official archive when the data are missing",
    )
    add("--out", help="output folder (default runs/MODEL-ATTENTION-RECIPE-seedSEED)")
    add("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    add(
        "--seed",
        type=int,
        help="seeds the weights, the order of the batches and the augmentation "
        f"({_defaults('seed')})",
    )
    add("--device", help="auto, cpu, cuda or cuda:N (default auto: CUDA when present)")
    add("--iterations", type=int, help=f"training steps ({_defaults('iterations')})")
    add("--batch-size", type=int, help=f"images per step ({_defaults('batch_size')})")
    add(
        "--lr",
        type=float,
        help=f"initial (step) or peak (onecycle) learning rate ({_defaults('lr')})",
    )
    add(
        "--schedule",
        choices=["step", "onecycle"],
        help=f"learning-rate schedule ({_defaults('schedule')})",
    )
    add(
        "--milestones",
        type=_milestones,
        help="step schedule: comma-separated iterations where the rate is multiplied by --gamma "
        f"({_defaults('milestones')})",
    )
    add("--gamma", type=float, help=f"step schedule factor ({_defaults('gamma')})")
    add(
        "--warmup", type=int, help=f"onecycle: iterations of linear warm-up ({_defaults('warmup')})"
    )
    add("--momentum", type=float, help=f"SGD momentum ({_defaults('momentum')})")
    add("--nesterov", action=flag, help=f"Nesterov momentum ({_defaults('nesterov')})")
    add("--weight-decay", type=float, help=f"L2 weight decay ({_defaults('weight_decay')})")
    add(
        "--norm-bias-decay",
        action=flag,
        help=f"weight decay on BN parameters and biases too ({_defaults('norm_bias_decay')})",
    )
    add(
        "--label-smoothing",
        type=float,
        help=f"label smoothing of the training loss ({_defaults('label_smoothing')})",
    )
    add(
        "--augment",
        action=flag,
        help=f"pad-and-crop and horizontal-flip augmentation ({_defaults('augment')})",
    )
    add(
        "--eval-flip",
        action=flag,
        help=f"also report the flip-averaged test accuracy ({_defaults('eval_flip')})",
    )
    add(
        "--padding",
        type=int,
        help=f"pixels of zero padding before the random crop ({_defaults('padding')})",
    )
    add(
        "--subset",
        type=int,
        help="train on a class-balanced subset of this many images (default: all)",
    )
    add(
        "--test-subset",
        type=int,
        help="evaluate on this many test images, for smoke tests (default: all)",
    )
    _add_runtime_options(parser)
    return parser


def _add_runtime_options(parser: argparse.ArgumentParser) -> None:
    """The options that say how a run is evaluated, saved and computed, and where."""
    flag = argparse.BooleanOptionalAction
    add = parser.add_argument
    add(
        "--eval-every",
        type=int,
        help=f"iterations between evaluations on the test split ({_defaults('eval_every')})",
    )
    add(
        "--checkpoint-every",
        type=int,
        help=f"iterations between checkpoints ({_defaults('checkpoint_every')})",
    )
    add(
        "--amp",
        action=flag,
        help="mixed precision (default: on for CUDA and for CPUs with native bfloat16)",
    )
    add(
        "--amp-dtype",
        choices=["bfloat16", "float16"],
        help="mixed-precision type (default: bfloat16 where the device has it natively, else "
        "float16 with a gradient scaler)",
    )
    add(
        "--deterministic",
        action=flag,
        help="on CUDA: deterministic algorithms and no cuDNN autotuning, so that a "
        "run repeats bit for bit on the same GPU, more slowly (default: off)",
    )
    add("--channels-last", action=flag, help="channels_last memory format (default: on for CUDA)")
    add(
        "--compile",
        action=flag,
        help="torch.compile the model (default: on for CUDA GPUs of compute capability 7.0+)",
    )
    add(
        "--compile-simam",
        action=flag,
        help="torch.compile only SimAM's formula (default: on the CPU for runs of "
        f"{COMPILE_SIMAM_FROM:,} iterations or more, where a C++ compiler is found)",
    )
    add(
        "--threads",
        type=int,
        help="torch CPU threads (default: torch's choice; on a small or busy machine "
        "1 thread can be several times faster, as on the 2-core machine the quick "
        "recipe was timed on)",
    )
    add(
        "--progress",
        action=flag,
        help="progress bar (default: when stderr is a terminal and CI is not set)",
    )
    add(
        "--sync-bn",
        action=flag,
        help="under torchrun: batch norm with the statistics of the global batch, "
        f"not of each process's share (CUDA only; {_defaults('sync_bn')})",
    )
