"""``python -m simam.bench roofline``: how close the trainer's step comes to what this machine's
matrix units can do, and where the rest of the step's time goes.

In one run, on the same torch threads:

1. **The work of a step.** The FLOPs of one training image of the network, forward and backward,
   as ``torch.utils.flop_counter`` counts them (convolutions and matrix products only, so the
   elementwise work of batch norm, activations and SimAM is not in it: a lower bound).
2. **The machine's rate.** A large square matrix product in float32 and in bfloat16, in GFLOP/s:
   the best this CPU does with dense arithmetic on these threads, the roof.
3. **The trainer's rate.** Training images per second of :mod:`simam.train`'s step with its
   defaults for the device (bfloat16 autocast where the CPU has it natively, SimAM's formula
   compiled) and of the same step in float32 with SimAM eager, on the same batches, each times the
   FLOPs per image: the achieved GFLOP/s and their fraction of each roof, printed as ratios.
4. **The convolutions alone.** One 3x3 convolution of each stage of a CIFAR ResNet (16 channels on
   32 x 32, 32 on 16 x 16, 64 on 8 x 8), forward and both backward products, on a batch of the
   step's size, in float32 and bfloat16: the best the step's main work can do with these small
   channel counts, as a fraction of the same roofs. Where it is far below the matrix product, so is
   any step built from these convolutions.
5. **Where the time goes.** ``torch.profiler`` over a few of the trainer's steps, the operators'
   own time grouped as convolutions, batch norm, SimAM, the optimizer, the loss and the rest, and
   the time the loader takes to make a batch, measured apart.

Images are random uint8 pictures made in memory: the arithmetic does not depend on what they show,
and the benchmark runs without the data set. ``--out FILE`` also writes the measurements as JSON,
with the CPU and versions; ``results/roofline.json``, measured with nothing else on the CPU, is the
one chapter 5 shows (:func:`report` prints it again).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import defaultdict
from typing import Any

import torch

from simam.bench import summary
from simam.bench.train import (
    TrainerStep,
    add_round_options,
    alternating_seconds,
    write_record,
)
from simam.config import Config
from simam.data import CifarLoader
from simam.device import describe, resolve, versions
from simam.models import training_flops_per_image

# (label, words in an operator's name that put it in the group), the first match wins
CATEGORIES = (
    ("SimAM", ("simam", "compiled", "triton", "cpp_fused")),
    ("convolutions", ("conv",)),
    ("batch norm", ("batch_norm",)),
    ("optimizer", ("optimizer", "sgd", "_foreach", "addcmul", "lerp")),
    ("loss", ("cross_entropy", "log_softmax", "nll_loss")),
)


def matmul_gflops(dtype: torch.dtype, size: int, repeats: int) -> float:
    """GFLOP/s of ``size`` x ``size`` matrix products in ``dtype``, the best of ``repeats``."""
    generator = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=generator).to(dtype) for _ in range(2))
    a @ b  # the first product sets up the kernels
    best = float("inf")
    for _ in range(repeats):
        begin = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - begin)
    return 2 * size**3 / best / 1e9


# (channels, height and width) of the 3x3 convolutions of a CIFAR ResNet's three stages
STAGES = ((16, 32), (32, 16), (64, 8))


def conv_gflops(channels: int, size: int, batch: int, dtype: torch.dtype, repeats: int) -> float:
    """GFLOP/s of a ``channels`` -> ``channels`` 3x3 convolution on ``size`` x ``size`` maps:
    the forward product and the two of the backward pass (input and weight gradients), in
    ``dtype``, the best of ``repeats``."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(batch, channels, size, size, generator=generator).to(dtype)
    weight = torch.randn(channels, channels, 3, 3, generator=generator).to(dtype)
    x.requires_grad_(True)
    weight.requires_grad_(True)

    def once() -> None:
        out = torch.nn.functional.conv2d(x, weight, padding=1)
        torch.autograd.grad(out, (x, weight), torch.ones_like(out))

    once()  # sets up the kernels
    best = float("inf")
    for _ in range(repeats):
        begin = time.perf_counter()
        once()
        best = min(best, time.perf_counter() - begin)
    return 3 * 2 * batch * channels * channels * 9 * size * size / best / 1e9


def category(name: str) -> str:
    lowered = name.lower()
    return next(
        (label for label, words in CATEGORIES if any(word in lowered for word in words)), "the rest"
    )


def profile_shares(step: TrainerStep, steps: int) -> dict[str, float]:
    """Share of the operators' own CPU time per category over ``steps`` training steps."""
    run = step.steps()
    next(run).item()
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(steps):
            next(run).item()
    run.close()
    totals: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        totals[category(event.key)] += event.self_cpu_time_total
    whole = sum(totals.values())
    return {
        label: value / whole for label, value in sorted(totals.items(), key=lambda item: -item[1])
    }


def loader_seconds_per_batch(loader: CifarLoader, batches: int) -> float:
    """Seconds the loader takes to make one batch (crop, flip, normalise), alone."""
    iterator = iter(loader)
    next(iterator)
    begin = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return (time.perf_counter() - begin) / batches


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simam.bench roofline", description=summary(__doc__)
    )
    parser.add_argument("--model", default="resnet20", help="network (default resnet20)")
    parser.add_argument("--attention", default="simam", help="attention module (default simam)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per step (default 128)")
    add_round_options(parser, warmup=5)
    parser.add_argument(
        "--matrix", type=int, default=4096, help="size of the square matrix products (default 4096)"
    )
    parser.add_argument(
        "--profile-steps", type=int, default=5, help="steps under the profiler (default 5)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    parser.add_argument("--out", default=None, help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if (
        min(args.batch_size, args.iterations, args.rounds, args.matrix, args.profile_steps) < 1
        or args.warmup < 0
    ):
        parser.error("sizes and counts must be positive, --warmup non-negative")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    images = torch.randint(
        0,
        256,
        (16 * args.batch_size, 3, 32, 32),
        dtype=torch.uint8,
        generator=torch.Generator().manual_seed(0),
    )
    labels = torch.randint(0, 10, (len(images),), generator=torch.Generator().manual_seed(1))
    base = Config(
        model=args.model,
        attention=args.attention,
        batch_size=args.batch_size,
        device="cpu",
        recipe="quick",
    )
    trainer = resolve(base, device)
    plain = resolve(dataclasses.replace(base, amp=False, compile_simam=False), device)
    steps = {
        "trainer": TrainerStep.build(trainer, images, labels),
        "float32, SimAM eager": TrainerStep.build(plain, images, labels),
    }
    flops = training_flops_per_image(steps["float32, SimAM eager"].model)
    roofs = {
        dtype: matmul_gflops(getattr(torch, dtype), args.matrix, 3)
        for dtype in ("float32", "bfloat16")
    }
    seconds = alternating_seconds(
        {name: step.steps for name, step in steps.items()},
        args.rounds,
        args.warmup,
        args.iterations,
    )
    rates = {
        name: args.rounds * args.iterations * args.batch_size / seconds[name] for name in steps
    }
    convolutions = [
        {
            "channels": channels,
            "size": size,
            "dtype": dtype,
            "gflops": conv_gflops(channels, size, args.batch_size, getattr(torch, dtype), 5),
        }
        for channels, size in STAGES
        for dtype in ("float32", "bfloat16")
    ]
    shares = profile_shares(steps["trainer"], args.profile_steps)
    record = {
        "model": args.model,
        "attention": args.attention,
        "batch_size": args.batch_size,
        "device": describe(device),
        "versions": versions(),
        "trainer": {"amp_dtype": trainer.amp_dtype, "compile_simam": trainer.compile_simam},
        "mflop_per_image": flops / 1e6,
        "matrix": args.matrix,
        "matrix_gflops": roofs,
        "images_per_second": rates,
        "convolutions": convolutions,
        "shares": shares,
        "loader_seconds_per_batch": loader_seconds_per_batch(
            steps["trainer"].loader, args.profile_steps
        ),
    }
    print(report(record))
    if args.out is not None:
        write_record(args.out, record)
    return 0


def report(record: dict[str, Any]) -> str:
    """What :func:`main` measured (``record``, as ``--out`` writes it) as the text it prints."""
    roofs, rates, flops = (
        record["matrix_gflops"],
        record["images_per_second"],
        record["mflop_per_image"] * 1e6,
    )
    trainer, matrix = record["trainer"], record["matrix"]
    lines = [
        f"{record['model']} + {record['attention']}, batch {record['batch_size']}, "
        f"{record['device']}; trainer: {trainer['amp_dtype'] or 'float32'}, SimAM compiled "
        f"{trainer['compile_simam']}. Printed by `python -m simam.bench roofline`.\n",
        f"work of one training image: {flops / 1e6:,.0f} MFLOP (convolutions and matrix products)",
        *(
            f"{matrix} x {matrix} matrix product, {dtype}: {rate:,.0f} GFLOP/s"
            for dtype, rate in roofs.items()
        ),
        "\n| pipeline | images/s | GFLOP/s | of the float32 product | of the bfloat16 product |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, rate in rates.items():
        achieved = rate * flops / 1e9
        lines.append(
            f"| {name} | {rate:,.0f} | {achieved:,.0f} | {achieved / roofs['float32']:.2f} "
            f"| {achieved / roofs['bfloat16']:.2f} |"
        )
    lines += [
        "\ntrainer / the same step in float32 with SimAM eager: "
        f"{rates['trainer'] / rates['float32, SimAM eager']:.2f}x",
        f"\n3x3 convolutions alone, forward and backward, batch {record['batch_size']}:",
        "| channels, map | dtype | GFLOP/s | of the same dtype's product |",
        "| --- | --- | ---: | ---: |",
    ]
    for conv in record["convolutions"]:
        lines.append(
            f"| {conv['channels']}, {conv['size']} x {conv['size']} | {conv['dtype']} "
            f"| {conv['gflops']:,.0f} | {conv['gflops'] / roofs[conv['dtype']]:.2f} |"
        )
    step_seconds = record["batch_size"] / rates["trainer"]
    loader = record["loader_seconds_per_batch"]
    lines.append("\nwhere the trainer's step goes (operators' own CPU time under torch.profiler):")
    lines += [f"  {label:<13} {100 * share:5.1f}%" for label, share in record["shares"].items()]
    lines.append(
        f"  the loader makes a batch in {1e3 * loader:.1f} ms, {100 * loader / step_seconds:.1f}% "
        f"of a step ({1e3 * step_seconds:.0f} ms)"
    )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
