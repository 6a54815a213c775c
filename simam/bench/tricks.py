"""``python -m simam.bench tricks``: training images per second of every cell of a recipe study,
side by side in one run, with the two changes that alter only the speed beside them.

A study's cells change one thing of a recipe each (see ``results/plans/tricks.toml``); some of
them change the work of a step too: a moving average of the weights adds an update per step, a
larger batch fills the matrix units better. This benchmark builds each cell's step as
:mod:`simam.train` builds it (its padding, flips, label smoothing, optimiser, moving average; the
device's defaults for precision and compilation) and times them all in one process, rounds
alternating their order so that a drift of the machine's speed falls on every cell alike. Two
pipelines join the plan's cells, the base cell with channels_last memory and the base cell with the
whole model compiled (``torch.compile``): they change the speed and not the arithmetic, so the
study trains neither.

Each row gives images per second, its ratio to the base cell, and the seconds its first step took
(where ``torch.compile`` compiles: a cost a 15-minute run pays once). Images are random uint8
pictures made in memory; the arithmetic does not depend on what they show. Run it with nothing else
on the CPU. ``--out FILE`` also writes the table as JSON, with the CPU and torch that made it, for
the course's trick table.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import torch

from simam.bench import summary
from simam.bench.train import (
    TrainerStep,
    add_round_options,
    alternating_seconds,
    write_record,
)
from simam.config import Config, ConfigError, config_from_args
from simam.device import describe, resolve, versions
from simam.experiments.plan import GridError
from simam.experiments.study import BASE, Study, read_study

# pipelines beside the plan's cells: their trainer options over the base cell's
SPEED_ONLY = {"channels_last": ("--channels-last",), "compile": ("--compile",)}


def cell_configs(
    study: Study, batch_size: int | None, speed_only: tuple[str, ...] = tuple(SPEED_ONLY)
) -> dict[str, Config]:
    """Each cell's configuration as the trainer reads it, then the ``speed_only`` pipelines
    (names of :data:`SPEED_ONLY`); ``batch_size`` (if given) replaces the base cell's, another
    cell's batch scaling with it."""
    if BASE not in study.cells:
        raise GridError(f"the plan {study.name} has no cell called {BASE!r} to compare against")
    unknown = sorted(set(speed_only) - set(SPEED_ONLY))
    if unknown:
        raise GridError(f"no speed-only pipeline {unknown[0]!r}; known: {', '.join(SPEED_ONLY)}")
    options = {name: study.cell_specs(name)[0].train_args() for name in study.cells}
    options |= {name: [*options[BASE], *SPEED_ONLY[name]] for name in speed_only}
    configs = {}
    for name, args in options.items():
        try:
            config = config_from_args(args)[0]
        except ConfigError as error:
            raise GridError(f"cell {name}: {error}") from None
        if batch_size is not None:
            scale = config.batch_size / config_from_args(options[BASE])[0].batch_size
            config = dataclasses.replace(config, batch_size=round(batch_size * scale))
        configs[name] = config
    return configs


def measure(
    configs: dict[str, Config], args: argparse.Namespace, device: torch.device
) -> list[dict[str, float | str]]:
    """Images per second of every pipeline and the seconds of its first step, one row each."""
    images = torch.randint(
        0, 256, (4096, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    labels = torch.randint(0, 10, (len(images),), generator=torch.Generator().manual_seed(1))
    steps, first = {}, {}
    for name, config in configs.items():
        begin = time.perf_counter()
        steps[name] = TrainerStep.build(resolve(config, device), images, labels)
        run = steps[name].steps()
        next(run).item()  # compiles where the config compiles
        run.close()
        first[name] = time.perf_counter() - begin
        print(f"{name}: first step {first[name]:.1f} s", file=sys.stderr, flush=True)
    seconds = alternating_seconds(
        {name: step.steps for name, step in steps.items()},
        args.rounds,
        args.warmup,
        args.iterations,
    )
    rows = []
    for name, step in steps.items():
        rate = args.rounds * args.iterations * step.config.batch_size / seconds[name]
        rows.append({"cell": name, "images_per_second": rate, "first_step_seconds": first[name]})
    base = next(row["images_per_second"] for row in rows if row["cell"] == BASE)
    for row in rows:
        row["ratio"] = row["images_per_second"] / base
    return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simam.bench tricks", description=summary(__doc__)
    )
    parser.add_argument(
        "--plan",
        default="results/plans/tricks.toml",
        help="the study whose cells are timed (default results/plans/tricks.toml)",
    )
    add_round_options(parser, warmup=3)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="the base cell's batch (default the plan's; other cells scale with it)",
    )
    parser.add_argument(
        "--speed-only",
        default=",".join(SPEED_ONLY),
        help=f"pipelines beside the cells, comma-separated (default {','.join(SPEED_ONLY)})",
    )
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument("--out", default=None, help="also write the table to this JSON file")
    args = parser.parse_args(argv)
    if min(args.iterations, args.rounds, args.batch_size or 1) < 1 or args.warmup < 0:
        parser.error("--iterations, --rounds, --batch-size must be positive, --warmup non-negative")
    try:
        args.study = read_study(args.plan)
        speed_only = tuple(name for name in args.speed_only.split(",") if name)
        args.configs = cell_configs(args.study, args.batch_size, speed_only)
    except GridError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rows = measure(args.configs, args, device)
    header = (
        f"The cells of the plan {args.study.name}, {args.study.model} + "
        f"{args.study.cells[BASE].attention}, {describe(device)}, torch {torch.__version__}: "
        f"{args.rounds} "
        f"round(s) of {args.iterations} timed steps per cell after {args.warmup} warm-up steps. "
        "Printed by `python -m simam.bench tricks`."
    )
    print(header)
    print("\n| cell | images/s | against base | first step (s) |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(
            f"| {row['cell']} | {row['images_per_second']:,.0f} | {row['ratio']:.2f}x "
            f"| {row['first_step_seconds']:.1f} |"
        )
    if args.out is not None:
        record = {
            "plan": args.study.name,
            "device": describe(device),
            "versions": versions(),
            "iterations": args.iterations,
            "rounds": args.rounds,
            "rows": rows,
        }
        write_record(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
