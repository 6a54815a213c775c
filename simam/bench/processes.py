"""``python -m simam.bench processes``: training images per second of one trainer process that
uses every core, against one process per core, apart and as one data-parallel run.

On a CPU, torch spreads each operation of a step over its process's threads and joins them at its
end. ResNet-20's operations are small (16 channels of 32 x 32 pixels at the start), so starting
and joining the threads is a visible share of their time, and a step on two threads is less than
twice as fast as on one. Processes of one thread each pay nothing of the kind. This benchmark
measures what the threads cost, with the trainer itself (``python -m simam.train`` in
subprocesses, on real CIFAR-10, its steady images per second read from its ``final.json``):

- *one process*: one run on all ``--cores`` threads, the trainer as it is usually started;
- *processes apart*: ``--cores`` independent runs of one thread each, at the same time: the
  images per second of them all, the most the cores can give without threads;
- *data-parallel*: one run over ``--cores`` processes of one thread each (``torchrun``, gloo),
  each rank a share of every batch, their gradients averaged each step: the same run as the
  first, the threads' cost traded for the averaging's.

Rounds alternate the order. Run it with nothing else on the CPU. ``--out FILE`` also writes the
table as JSON, with the CPU and torch that made it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from simam.bench import summary
from simam.bench.train import trainer_options, write_record
from simam.config import COMPILE_SIMAM_FROM, ConfigError
from simam.device import describe, versions
from simam.runs import FINAL

PIPELINES = ("one process", "processes apart", "data-parallel")


def trainer_arguments(args: argparse.Namespace, threads: int, out: Path) -> list[str]:
    """The trainer's options for one timed run of ``threads`` threads into ``out``: a short run,
    evaluated once on a few test images at its end."""
    return [
        "-m",
        "simam.train",
        "--model",
        args.model,
        "--attention",
        args.attention,
        "--recipe",
        "quick",
        "--batch-size",
        str(args.batch_size),
        "--iterations",
        str(args.iterations),
        "--warmup",
        str(args.iterations // 4),
        "--eval-every",
        str(args.iterations),
        "--checkpoint-every",
        str(args.iterations),
        "--test-subset",
        "100",
        "--device",
        "cpu",
        "--threads",
        str(threads),
        "--no-progress",
        "--out",
        str(out),
        *args.options,
    ]


def run_all(commands: list[list[str]], outs: list[Path], threads: int) -> list[float]:
    """Run ``commands`` at once, each writing its run into the matching folder of ``outs``; the
    steady images per second of each run."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        for command in commands
    ]
    errors = [process.communicate()[1] for process in processes]
    for process, error in zip(processes, errors, strict=True):
        if process.returncode != 0:
            raise RuntimeError(
                f"{' '.join(process.args)} failed ({process.returncode}): {error[-2000:]}"
            )
    rates = []
    for out in outs:
        final = json.loads((out / FINAL).read_text())
        # a run too short to leave its first steps out has no steady rate: then all its steps'
        rates.append(final["steady_images_per_second"] or final["train_images_per_second"])
    return rates


def timed(pipeline: str, args: argparse.Namespace, scratch: Path) -> float:
    """Images per second of ``pipeline`` (one of :data:`PIPELINES`), all its processes together."""
    cores, python = args.cores, [sys.executable]
    if pipeline == "one process":
        out = scratch / "one"
        return run_all([python + trainer_arguments(args, cores, out)], [out], cores)[0]
    if pipeline == "processes apart":
        outs = [scratch / f"apart-{i}" for i in range(cores)]
        commands = [python + trainer_arguments(args, 1, out) for out in outs]
        return sum(run_all(commands, outs, 1))
    out = scratch / "parallel"
    torchrun = [*python, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={cores}"]
    return run_all([torchrun + trainer_arguments(args, 1, out)], [out], 1)[0]


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each pipeline's images per second, the mean over ``args.rounds`` rounds whose order
    alternates, and its ratio to one process."""
    totals = dict.fromkeys(PIPELINES, 0.0)
    for round_ in range(args.rounds):
        for pipeline in PIPELINES if round_ % 2 == 0 else reversed(PIPELINES):
            with tempfile.TemporaryDirectory(prefix="simam-processes-") as scratch:
                totals[pipeline] += timed(pipeline, args, Path(scratch)) / args.rounds
    shapes = {
        "one process": (1, args.cores),
        "processes apart": (args.cores, 1),
        "data-parallel": (args.cores, 1),
    }
    return [
        {
            "pipeline": pipeline,
            "processes": shapes[pipeline][0],
            "threads": shapes[pipeline][1],
            "images_per_second": round(rate, 1),
            "ratio": round(rate / totals["one process"], 3),
        }
        for pipeline, rate in totals.items()
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simam.bench processes", description=summary(__doc__)
    )
    parser.add_argument("--model", default="resnet20", help="network (default resnet20)")
    parser.add_argument("--attention", default="simam", help="attention module (default simam)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    parser.add_argument(
        "--iterations",
        type=int,
        default=COMPILE_SIMAM_FROM,
        help=f"steps of each timed run (default {COMPILE_SIMAM_FROM}, the fewest for which the "
        "trainer compiles SimAM on the CPU, as in a real run)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds, the pipelines' order alternating (default 2)"
    )
    parser.add_argument(
        "--cores",
        type=int,
        default=os.cpu_count(),
        help=f"threads of one process, processes of the others (default {os.cpu_count()})",
    )
    parser.add_argument(
        "--config",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a field of the trainer's Config for every run (repeatable)",
    )
    parser.add_argument("--out", default=None, help="also write the table to this JSON file")
    args = parser.parse_args(argv)
    if min(args.iterations, args.rounds, args.batch_size) < 1 or args.cores < 2:
        parser.error("--iterations, --rounds, --batch-size must be positive, --cores at least 2")
    if args.batch_size % args.cores:
        parser.error(f"--batch-size {args.batch_size} must divide among {args.cores} ranks")
    try:
        args.options = trainer_options(args.config)
    except ConfigError as error:
        parser.error(str(error))
    return args


def report(record: dict[str, Any]) -> str:
    """The table of a record that :func:`main` wrote (``--out``), as it printed it."""
    lines = [
        f"{record['model']} + {record['attention']}, batch {record['batch_size']}, "
        f"{record['device']}, torch {record['versions']['torch']}: {record['rounds']} round(s) "
        f"of a {record['iterations']}-step run per pipeline, steady images per second (after the "
        "first steps). Printed by `python -m simam.bench processes`.",
        "",
        "| pipeline | processes x threads | images/s | against one process |",
        "| --- | --- | ---: | ---: |",
    ]
    lines += [
        f"| {row['pipeline']} | {row['processes']} x {row['threads']} "
        f"| {row['images_per_second']:,.0f} | {row['ratio']:.2f}x |"
        for row in record["rows"]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    rows = measure(args)
    torch.set_num_threads(args.cores)  # so that the record names the cores used
    record = {
        "model": args.model,
        "attention": args.attention,
        "batch_size": args.batch_size,
        "iterations": args.iterations,
        "rounds": args.rounds,
        "device": describe(torch.device("cpu")),
        "versions": versions(),
        "rows": rows,
    }
    print(report(record))
    if args.out is not None:
        write_record(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
