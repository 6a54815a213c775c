"""``python -m simam.bench train``: training images per second of :mod:`simam.train`'s step, fed by
:class:`simam.data.CifarLoader`, against a plain PyTorch training loop, on real CIFAR-10.

Both sides train the same network from the same initial weights with the same augmentation (pad 4,
random 32x32 crop, random horizontal flip, normalise), batches of 128 and SGD with momentum 0.9 and
weight decay 5e-4, in one process with the same torch threads.

- **simam.train**: the trainer's own :func:`simam.step.train_step` with the trainer's defaults for
  the device (on CUDA: channels_last, mixed precision, ``torch.compile``; on a CPU with native
  bfloat16: bfloat16 autocast; on other CPUs: none of them), batches built on the device by
  ``CifarLoader`` (:class:`TrainerStep`, which ``python -m simam.bench compile_simam`` and
  ``scripts/device_check.py`` use too). ``--config FIELD=VALUE`` (repeatable) changes a field of
  :class:`simam.config.Config` before the defaults are chosen, as the trainer's option for the field
  does (``amp=false`` is ``--no-amp``): ``--config amp=false`` trains in float32, ``--config
  channels_last=true`` in channels_last, ``--config compile_simam=false`` with SimAM eager.
- **plain loop**: torchvision's ``CIFAR10`` dataset with PIL transforms
  (``RandomCrop(32, padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``), a
  ``DataLoader`` with ``--workers`` worker processes (pinned memory on CUDA), the eager float32
  model, ``loss.backward()`` and ``optimizer.step()``: the loop of the SimAM reference code and of
  most CIFAR repositories.

Each round runs every pipeline in turn, the order alternating between rounds: a fresh iterator,
``--warmup`` untimed steps (the DataLoader starts its workers there; ``torch.compile`` compiles in
the first round), then ``--iterations`` timed steps, then the iterator is closed so that no worker
keeps preparing batches while the other pipeline is timed. The data root is ``$SIMAM_DATA``.

For every model timed both with and without attention, the last lines give the attention module's
share of the training step in each pipeline: ``1 - (images/s with it) / (images/s without it)``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from simam.bench import summary
from simam.bench.data import torchvision_loader
from simam.config import (
    CONFIG_FIELDS,
    Config,
    ConfigError,
    build_model,
    config_from_args,
    option_name,
)
from simam.data import DATASETS, CifarLoader, load_cifar
from simam.device import resolve, resolve_device
from simam.runs import atomic_write
from simam.settings import data_root
from simam.step import make_optimizer, train_step
from simam.train import average_decay, update_average

CASES = [("resnet20", "none"), ("resnet20", "simam")]
# set by --cases, --batch-size and --device, not --config
BENCH_FIELDS = {
    "model",
    "attention",
    "batch_size",
    "device",
}


@dataclass
class TrainerStep:
    """What :func:`simam.step.train_step` needs, set up as the trainer sets it up for ``config``
    (already resolved for its device), with weights from seed 0, on CifarLoader batches of
    ``images``: the config's padding, pad mode, flips, label smoothing and, where ``config.ema``
    asks for one, the moving average of the weights updated after every step."""

    config: Config
    model: torch.nn.Module
    forward: torch.nn.Module  # the model as it trains: compiled where ``config.compile`` says
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    loader: CifarLoader
    average: torch.nn.Module | None = None  # the moving average of the weights (config.ema)

    @classmethod
    def build(cls, config: Config, images: torch.Tensor, labels: torch.Tensor) -> TrainerStep:
        device = torch.device(config.device)
        torch.manual_seed(0)
        layout = torch.channels_last if config.channels_last else torch.preserve_format
        model = build_model(config).to(device, memory_format=layout)
        loader = CifarLoader(
            images,
            labels,
            batch_size=config.batch_size,
            shuffle=True,
            augment=True,
            padding=config.padding,
            pad_mode=config.pad_mode,
            flips=config.flips,
            drop_last=True,
            device=device,
            channels_last=config.channels_last,
        )
        return cls(
            config,
            model,
            torch.compile(model) if config.compile else model,
            make_optimizer(model, config),
            torch.amp.GradScaler(device.type, enabled=config.amp_dtype == "float16"),
            loader,
            copy.deepcopy(model).requires_grad_(False) if config.ema else None,
        )

    def steps(self) -> Iterator[torch.Tensor]:
        """Training steps without end, each giving its loss (left on the device)."""
        criterion = torch.nn.CrossEntropyLoss(label_smoothing=self.config.label_smoothing)
        iteration = 0
        while True:
            for batch, targets in self.loader:
                loss = train_step(
                    self.forward,
                    batch,
                    targets,
                    criterion,
                    self.optimizer,
                    self.scaler,
                    self.config.amp_dtype,
                )
                iteration += 1
                if self.average is not None:
                    update_average(self.average, self.model, average_decay(self.config, iteration))
                yield loss


def plain(config: Config, workers: int) -> Callable[[], Iterator[torch.Tensor]]:
    """The usual loop: torchvision dataset and DataLoader, eager float32 model, plain SGD step."""
    device = torch.device(config.device)
    torch.manual_seed(0)
    model = build_model(config).to(device)
    optimizer = torch.optim.SGD(
        model.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )
    loader = torchvision_loader(
        config.data_root, config.batch_size, workers, pin_memory=device.type == "cuda"
    )

    def steps() -> Iterator[torch.Tensor]:
        while True:
            for batch, targets in loader:
                batch, targets = (
                    batch.to(device, non_blocking=True),
                    targets.to(device, non_blocking=True),
                )
                loss = F.cross_entropy(model(batch), targets)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                yield loss.detach()

    return steps


def timed_pass(start: Callable[[], Iterator[torch.Tensor]], warmup: int, iterations: int) -> float:
    """Seconds for ``iterations`` steps of a fresh pass, after ``warmup`` untimed ones."""
    steps = start()
    for _ in range(warmup):
        next(steps).item()
    begin = time.perf_counter()
    for _ in range(iterations):
        loss = next(steps)
    loss.item()  # waits for the device
    seconds = time.perf_counter() - begin
    steps.close()  # ends the DataLoader iterator, and with it its workers
    return seconds


def alternating_seconds(
    starts: dict[str, Callable[[], Iterator[torch.Tensor]]],
    rounds: int,
    warmup: int,
    iterations: int,
) -> dict[str, float]:
    """Seconds of ``rounds`` timed passes of each pipeline (:func:`timed_pass`), the pipelines'
    order reversed every other round so that a drift of the machine's speed falls on all alike."""
    seconds = dict.fromkeys(starts, 0.0)
    for round_ in range(rounds):
        for name in list(starts) if round_ % 2 == 0 else list(reversed(starts)):
            seconds[name] += timed_pass(starts[name], warmup, iterations)
    return seconds


def add_round_options(parser: argparse.ArgumentParser, warmup: int) -> None:
    """The options of :func:`alternating_seconds`: steps timed, steps untimed, rounds."""
    parser.add_argument(
        "--iterations", type=int, default=20, help="timed steps per pipeline and round (default 20)"
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=warmup,
        help=f"untimed steps before each timed block (default {warmup})",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds, the pipelines' order alternating (default 2)"
    )


def write_record(path: str | Path, record: dict[str, Any]) -> None:
    """A benchmark's measurements as JSON at ``path``, its folder made if need be, written whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=1) + "\n"
    atomic_write(path, lambda file: file.write(text.encode()))


def trainer_options(pairs: list[str]) -> list[str]:
    """``["amp=false", "amp_dtype=bfloat16"]`` as the trainer's options
    ``["--no-amp", "--amp-dtype", "bfloat16"]``, which :func:`simam.config.config_from_args` reads:
    true and false turn an on/off option on or off, any other value is the option's argument as the
    trainer takes it."""
    fields = sorted(CONFIG_FIELDS - BENCH_FIELDS)
    options = []
    for pair in pairs:
        field, equals, value = pair.partition("=")
        if not equals or field not in fields:
            raise ConfigError(
                f"--config {pair!r}: expected FIELD=VALUE with FIELD one of {', '.join(fields)}"
            )
        option = option_name(field)
        options += {"true": [option], "false": ["--no-" + option.removeprefix("--")]}.get(
            value, [option, value]
        )
    return options


def benchmark_inputs(
    prog: str, args: argparse.Namespace
) -> tuple[torch.Tensor, torch.Tensor, torch.device] | None:
    """What a benchmark of training steps starts from, once ``args.threads`` is applied: the
    CIFAR-10 training images and labels under ``$SIMAM_DATA`` and the device of ``args.device``;
    None after saying that the images are missing."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    root, spec = data_root(), DATASETS["cifar10"]
    if not all(
        (root / spec.folder / file).is_file() for file in (*spec.train_files, spec.meta_file)
    ):
        print(f"{prog}: error: CIFAR-10 not found under {root}; set SIMAM_DATA", file=sys.stderr)
        return None
    return (*load_cifar(root, "cifar10", train=True), resolve_device(args.device))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simam.bench train", description=summary(__doc__)
    )
    add_round_options(parser, warmup=3)
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="DataLoader worker processes of the plain loop (default 2)",
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads of the main process (default: torch's choice)",
    )
    parser.add_argument(
        "--cases",
        default=",".join(f"{m}:{a}" for m, a in CASES),
        help="comma-separated MODEL:ATTENTION pairs (default: ResNet-20, none and simam)",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a field of the trainer's Config before its defaults are chosen (repeatable)",
    )
    args = parser.parse_args(argv)
    if min(args.iterations, args.rounds, args.batch_size) < 1 or min(args.warmup, args.workers) < 0:
        parser.error(
            "--iterations, --rounds, --batch-size must be positive, --warmup "
            "and --workers non-negative"
        )
    try:  # each case's configuration, before its defaults for the device are chosen
        options = trainer_options(args.config)
        args.configs = [
            config_from_args(
                [
                    "--model",
                    model_name,
                    "--attention",
                    attention,
                    "--batch-size",
                    str(args.batch_size),
                    *options,
                ]
            )[0]
            for model_name, attention in (case.split(":") for case in args.cases.split(","))
        ]
    except ConfigError as error:
        parser.error(str(error))
    return args


def measure(
    config: Config, args: argparse.Namespace, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, float]:
    """Images per second of both pipelines, rounds alternating their order."""
    pipelines = {
        "simam.train": TrainerStep.build(config, images, labels).steps,
        "plain loop": plain(config, args.workers),
    }
    seconds = alternating_seconds(pipelines, args.rounds, args.warmup, args.iterations)
    return {
        name: args.rounds * args.iterations * args.batch_size / seconds[name] for name in pipelines
    }


def print_tables(
    results: list[tuple[str, str, float, float]], args: argparse.Namespace, config: Config
) -> None:
    print(
        f"Training steps on CIFAR-10, batch {args.batch_size}, {args.rounds} round(s) of "
        f"{args.iterations} timed steps per pipeline after {args.warmup} warm-up steps, on "
        f"{config.device} with {torch.get_num_threads()} torch thread(s); simam.train: "
        f"{config.amp_dtype or 'float32'}, channels_last {config.channels_last}, compile "
        f"{config.compile}, SimAM compiled {config.compile_simam}; plain loop: float32 eager, "
        f"DataLoader with {args.workers} workers. Printed by `python -m simam.bench train`."
    )
    print("\n| model | attention | plain loop (images/s) | simam.train (images/s) | speed-up |")
    print("| --- | --- | ---: | ---: | ---: |")
    for model_name, attention, plain_rate, our_rate in results:
        print(
            f"| {model_name} | {attention} | {plain_rate:,.0f} | {our_rate:,.0f} | "
            f"{our_rate / plain_rate:.2f}x |"
        )
    baselines = {
        model_name: (plain_rate, our_rate)
        for model_name, attention, plain_rate, our_rate in results
        if attention == "none"
    }
    shares = [
        (m, a, 1 - p / baselines[m][0], 1 - o / baselines[m][1])
        for m, a, p, o in results
        if a != "none" and m in baselines
    ]
    if shares:
        print("\n| model | attention | its share of the step: plain loop | simam.train |")
        print("| --- | --- | ---: | ---: |")
        for model_name, attention, plain_share, our_share in shares:
            print(
                f"| {model_name} | {attention} | {100 * plain_share:.0f}% | "
                f"{100 * our_share:.0f}% |"
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inputs = benchmark_inputs("python -m simam.bench train", args)
    if inputs is None:
        return 2
    *data, device = inputs
    results = []
    for config in args.configs:
        config = resolve(config, device)
        rates = measure(config, args, *data)
        results.append((config.model, config.attention, rates["plain loop"], rates["simam.train"]))
        print(
            f"{config.model} + {config.attention}: plain loop {rates['plain loop']:,.0f} images/s, "
            f"simam.train {rates['simam.train']:,.0f} images/s",
            file=sys.stderr,
            flush=True,
        )
    print_tables(results, args, config)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
