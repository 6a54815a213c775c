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
and the benchmarks' ``--config FIELD=VALUE`` all take it. Its options are made from the fields of
:class:`Config`: each field's metadata holds its help and anything its option needs beyond its type
(choices, a parser of its own for ``--milestones``), so a new field is one line here and its option
follows. Plain ``argparse`` does this in a dozen lines, so no further dependency is needed.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from torch import nn

from simam.attention import PLACES, SimAM, attention_kind, attention_options
from simam.data import FLIP_MODES, PAD_MODES, dataset_spec
from simam.models import create_model, list_models

# iterations: compiling SimAM costs about 12 s and saves about 0.1 s a step on 2 cores
COMPILE_SIMAM_FROM = 200


def option(help: str, shown: str | None = None, **argparse_options: Any) -> dict[str, Any]:
    """A field's command-line option, as the field's metadata: its ``help``, what its default is
    when the recipes do not say (``shown``, for a default of None that the device decides), and any
    further argument of ``add_argument`` (``choices``, ``type``, ``metavar``)."""
    return {"help": help, "shown": shown, "options": argparse_options}


def _field(default: Any, help: str, shown: str | None = None, **argparse_options: Any) -> Any:
    return dataclasses.field(default=default, metadata=option(help, shown, **argparse_options))


def _milestones(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated iterations such as 32000,48000, got {text!r}"
        ) from None


@dataclass(frozen=True)
class Config:
    """Everything that defines a run. The defaults are the paper's recipe. Each field's metadata is
    its command-line option (:func:`build_parser`)."""

    recipe: str = _field(
        "paper",
        "the recipe the options override: paper, the SimAM paper's 64,000-iteration recipe; quick, "
        "about 15 minutes on a 2-core CPU, the course's measuring stick; quick-4x, the quick "
        "recipe at four times its iterations; fast, the quick recipe with the tricks that earned "
        "their place, 15 minutes of a 2-core CPU; fast-30, the same for 30 minutes",
        "default paper",
        choices=("paper", "quick", "quick-4x", "fast", "fast-30"),
    )
    # the network and the data
    model: str = _field("resnet20", f"network: {', '.join(list_models())}")
    attention: str = _field(
        "simam", "attention module: none, se, cbam, eca, gc, simam, simam-exact"
    )
    lambda_: float = _field(
        1e-4, "SimAM's regulariser lambda (paper: 1e-4 on CIFAR)", metavar="LAMBDA"
    )
    place: str | None = _field(
        None,
        "where each block puts the attention: after_conv (right after the 3x3 convolution, before "
        "its batch norm: SimAM's place) or end_of_branch (after the branch's last batch norm: SE's "
        "place)",
        "default: the paper's place for the module",
        choices=PLACES,
    )
    dataset: str = _field("cifar10", "cifar10 or cifar100")
    subset: int | None = _field(
        None, "train on a seeded, class-balanced subset of this many images", "default: all"
    )
    test_subset: int | None = _field(
        None, "evaluate on this many test images, for smoke tests", "default: all"
    )
    holdout: int = _field(
        0,
        "hold out this many training images (a class-balanced choice, the same for every seed), "
        "train on the rest and evaluate on them instead of the test split: the split to choose a "
        "recipe on",
    )
    augment: bool = _field(True, "pad-and-crop and horizontal-flip augmentation")
    padding: int = _field(4, "pixels of padding before the random 32x32 crop")
    pad_mode: str = _field(
        "zeros",
        "what the padding holds: zeros (black pixels, the reference recipe) or reflect (the "
        "image mirrored at its border, so a crop is a translation of real content)",
        choices=PAD_MODES,
    )
    flips: str = _field(
        "random",
        "horizontal flips: random (each image, each epoch) or alternate (random in the first "
        "epoch, then the other way in every epoch after)",
        choices=FLIP_MODES,
    )
    eval_flip: bool = _field(False, "also report the flip-averaged test accuracy")
    # optimisation, counted in iterations (batches)
    iterations: int = _field(64_000, "training steps")
    batch_size: int = _field(128, "images per step")
    lr: float = _field(0.1, "initial (step) or peak (onecycle) learning rate")
    schedule: str = _field("step", "learning-rate schedule", choices=("step", "onecycle"))
    milestones: tuple[int, ...] = _field(
        (32_000, 48_000),
        "step schedule: comma-separated iterations where the rate is multiplied by --gamma",
        type=_milestones,
    )
    gamma: float = _field(0.1, "step schedule factor")
    warmup: int = _field(0, "onecycle: iterations of linear warm-up")
    momentum: float = _field(0.9, "SGD momentum")
    nesterov: bool = _field(False, "Nesterov momentum")
    weight_decay: float = _field(5e-4, "L2 weight decay")
    norm_bias_decay: bool = _field(
        True, "weight decay on BN parameters and biases too, as plain SGD does"
    )
    label_smoothing: float = _field(0.0, "label smoothing of the training loss")
    ema: float = _field(
        0.0,
        "evaluate an exponential moving average of the weights and batch-norm statistics with this "
        "decay per step (0: off, evaluate the weights as trained)",
    )
    seed: int = _field(0, "seeds the weights, the order of the batches and the augmentation")
    sync_bn: bool = _field(
        False,
        "under torchrun: batch norm with the statistics of the global batch, not of each "
        "process's share (CUDA only)",
    )
    # how the run is watched and saved, and where it runs: these may change when a run is resumed
    eval_every: int = _field(1_000, "iterations between evaluations on the test split")
    checkpoint_every: int = _field(2_000, "iterations between checkpoints")
    data_root: str | None = _field(
        None,
        "folder holding cifar-10-batches-py/ or cifar-100-python/",
        "default: $SIMAM_DATA or ~/.cache/simam",
    )
    download: bool = _field(False, "download the official archive when the data are missing")
    device: str = _field("auto", "auto, cpu, cuda or cuda:N (auto: CUDA when present)")
    amp: bool | None = _field(
        None, "mixed precision", "default: on for CUDA and for CPUs with native bfloat16"
    )
    amp_dtype: str | None = _field(
        None,
        "mixed-precision type",
        "default: bfloat16 where the device has it natively, else float16 with a gradient scaler",
        choices=("bfloat16", "float16"),
    )
    channels_last: bool | None = _field(None, "channels_last memory format", "default: on for CUDA")
    compile: bool | None = _field(
        None,
        "torch.compile the whole model",
        "default: on for CUDA GPUs of compute capability 7.0+, where Triton runs",
    )
    compile_simam: bool | None = _field(
        None,
        "torch.compile only SimAM's formula (SimAM(compiled=True))",
        f"default: on the CPU for runs of {COMPILE_SIMAM_FROM:,} iterations or more, where a C++ "
        "compiler is found",
    )
    threads: int | None = _field(
        None,
        "torch CPU threads (on a small or busy machine 1 thread can be several times faster, as "
        "on the 2-core machine the quick recipe was timed on)",
        "default: torch's choice",
    )
    deterministic: bool = _field(
        False,
        "on CUDA: deterministic algorithms and no cuDNN autotuning, so that a run repeats bit for "
        "bit on the same GPU, more slowly",
    )
    progress: bool | None = _field(
        None, "progress bar", "default: when stderr is a terminal and CI is not set"
    )


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

# The fast recipe: the quick recipe with the changes the tricks study adopted by the rule its plan
# fixed before its runs (results/plans/tricks.toml: a change joins when its mean held-out accuracy
# over two seeds beats the quick recipe's by 0.15 points), and nothing else: reflected translations
# by 2 pixels (as airbench, Jordan 2024) and a peak rate of 0.4; one evaluation, at the end.
# Sized on a 2-core AMD EPYC with nothing beside it (results/fast/sizing): a run of 4,200
# iterations on the held-out split trained for 900 s (0.214 s an iteration) in a whole command of
# 915 s. 3,900 iterations then take about 856 s with the test split's evaluation, 5% inside the
# 15 minutes. results/plans/fast.toml measures the recipe on the test split.
FAST_ITERATIONS = 3_900
FAST = dataclasses.replace(
    QUICK,
    recipe="fast",
    iterations=FAST_ITERATIONS,  # 10 epochs
    warmup=FAST_ITERATIONS // 5,
    lr=0.4,
    padding=2,
    pad_mode="reflect",
    eval_every=FAST_ITERATIONS,
    checkpoint_every=500,
)

# The same recipe for 30 minutes of the same CPU, 5% inside them as above: twice the iterations,
# the same schedule's shape.
FAST_30 = dataclasses.replace(
    FAST,
    recipe="fast-30",
    iterations=2 * FAST_ITERATIONS,
    warmup=2 * FAST_ITERATIONS // 5,
    eval_every=2 * FAST_ITERATIONS,
)

RECIPES = {"paper": PAPER, "quick": QUICK, "quick-4x": QUICK_4X, "fast": FAST, "fast-30": FAST_30}


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
        (
            c.pad_mode == "zeros" or c.padding < 32,
            f"reflect padding mirrors at most 31 pixels of a 32-pixel image, got {c.padding}",
        ),
        (0 <= c.ema < 1, f"ema must be a decay in [0, 1), got {c.ema}"),
        (c.holdout >= 0, f"holdout must be non-negative, got {c.holdout}"),
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


def build_parser() -> argparse.ArgumentParser:
    """The trainer's options: one per field of :class:`Config`, named by :func:`option_name`, with
    the help and the argparse arguments of the field's metadata (a flag with ``--no-`` for a
    boolean field) and its default per recipe; then ``--out`` and ``--resume``, which say where a
    run goes rather than what it is. Only the options given are parsed: they override the recipe."""
    parser = OneLineParser(
        prog="simam-train",
        description="Train a CIFAR network with SimAM or another attention module. Options not "
        "given take the value of the recipe (--recipe); "
        "see simam/config.py for what each recipe does and why.",
        argument_default=argparse.SUPPRESS,
    )
    for field in dataclasses.fields(Config):
        metadata = field.metadata
        shown = metadata["shown"] or _defaults(field.name)
        options = dict(metadata["options"])
        if field.type.startswith("bool"):
            options["action"] = argparse.BooleanOptionalAction
        elif "type" not in options and "choices" not in options:
            options["type"] = {"int": int, "float": float}.get(field.type.split(" | ")[0], str)
        parser.add_argument(
            option_name(field.name),
            dest=field.name,
            help=f"{metadata['help']} ({shown})",
            **options,
        )
    parser.add_argument(
        "--out", help="output folder (default runs/MODEL-ATTENTION-RECIPE-seedSEED)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in --out from its checkpoint"
    )
    return parser
