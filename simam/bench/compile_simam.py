"""``python -m simam.bench compile_simam``: SimAM's formula compiled (``SimAM(compiled=True)``)
against eager SimAM in the trainer's training step, for networks with many SimAM shapes, on real
CIFAR-10: compilations, recompilations, fallbacks to eager, and training images per second.

For every model (default MobileNetV2, with 10 feature-map shapes at SimAM, and WRN-16-8, with 3),
one process builds the trainer's step twice (:class:`simam.bench.train.TrainerStep`, with the
trainer's defaults for the device but the whole model never compiled): SimAM eager, and SimAM
compiled. Each is warmed up by ``--warmup`` training steps and one evaluation forward (grad off:
other compiled code than training's), then timed over ``--iterations`` steps; rounds alternate the
order. The compiled side's first warm-up includes the compilations, counted from torch's own
counter of graphs (a recompilation is every graph after the first) and reported with the seconds
they took. A fallback is a SimAM module's warning that torch's recompile limit stopped it, one
per module that runs eager from then on (see :mod:`simam.attention.simam`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings

import torch

from simam.bench import summary
from simam.bench.train import TrainerStep, benchmark_inputs
from simam.config import Config
from simam.device import autocast, describe, resolve

MODELS = ("mobilenetv2", "wrn16_8")


def warm_up(step: TrainerStep, steps: int) -> None:
    """``steps`` training steps and an evaluation forward of one batch, as training
    and evaluation alternate."""
    passes = step.steps()
    for _ in range(steps):
        next(passes).item()
    batch, _ = next(iter(step.loader))
    step.model.eval()
    with torch.no_grad(), autocast(batch.device, step.config.amp_dtype):
        step.forward(batch).float().sum().item()
    step.model.train()
    passes.close()


def timed(step: TrainerStep, iterations: int) -> float:
    """Seconds for ``iterations`` training steps."""
    passes = step.steps()
    begin = time.perf_counter()
    for _ in range(iterations):
        loss = next(passes)
    loss.item()  # waits for the device
    seconds = time.perf_counter() - begin
    passes.close()
    return seconds


def compare(
    config: Config, args: argparse.Namespace, images: torch.Tensor, labels: torch.Tensor
) -> dict[str, float]:
    """Compilations, fallbacks, warm-up seconds and images per second of SimAM eager
    and compiled."""
    from torch._dynamo.utils import counters  # torch's count of the graphs it compiled

    torch._dynamo.reset()  # no graphs from an earlier model
    sides = {
        compiled: TrainerStep.build(
            dataclasses.replace(config, compile_simam=compiled), images, labels
        )
        for compiled in (False, True)
    }
    graphs = counters["stats"]["unique_graphs"]
    result = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for compiled, step in sides.items():
            begin = time.perf_counter()
            warm_up(step, args.warmup)
            result[f"warmup_{compiled}"] = time.perf_counter() - begin
        seconds = dict.fromkeys(sides, 0.0)
        for round_ in range(args.rounds):
            for compiled in sorted(sides, reverse=round_ % 2 == 1):
                seconds[compiled] += timed(sides[compiled], args.iterations)
    result["compiles"] = counters["stats"]["unique_graphs"] - graphs
    result["fallbacks"] = sum("recompile limit" in str(warning.message) for warning in caught)
    for compiled in sides:
        result[f"rate_{compiled}"] = (
            args.rounds * args.iterations * args.batch_size / seconds[compiled]
        )
    return result


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m simam.bench compile_simam", description=summary(__doc__)
    )
    parser.add_argument(
        "--models",
        default=",".join(MODELS),
        help=f"comma-separated models (default {','.join(MODELS)})",
    )
    parser.add_argument(
        "--iterations", type=int, default=5, help="timed steps per side and round (default 5)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed training steps before timing (default 2)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds, each timing both sides once (default 1)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (default 64)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice)"
    )
    args = parser.parse_args(argv)
    if min(args.iterations, args.rounds, args.batch_size, args.warmup) < 1:
        parser.error("--iterations, --rounds, --batch-size and --warmup must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    inputs = benchmark_inputs("python -m simam.bench compile_simam", args)
    if inputs is None:
        return 2
    *data, device = inputs
    rows = []
    for model_name in args.models.split(","):
        config = resolve(
            Config(
                model=model_name,
                attention="simam",
                batch_size=args.batch_size,
                device=str(device),
                compile=False,
                compile_simam=False,
            ),
            device,
        )
        r = compare(config, args, *data)
        rows.append(
            f"| {model_name} | {r['compiles']} | {max(r['compiles'] - 1, 0)} | {r['fallbacks']} | "
            f"{r['warmup_True']:.0f} s | {r['rate_False']:,.1f} | {r['rate_True']:,.1f} | "
            f"{r['rate_True'] / r['rate_False']:.2f}x |"
        )
        print(rows[-1], file=sys.stderr, flush=True)
    print(
        f"SimAM compiled against eager in the training step, CIFAR-10, batch {args.batch_size}, "
        f"{args.rounds} round(s) of {args.iterations} timed steps after {args.warmup} warm-up "
        f"steps and one evaluation forward, {config.amp_dtype or 'float32'}, channels_last "
        f"{config.channels_last}, on {describe(device)}. Printed by "
        "`python -m simam.bench compile_simam`.\n"
    )
    print(
        "| model | compilations | recompilations | fallbacks to eager | compiled warm-up | "
        "eager (images/s) | compiled (images/s) | compiled / eager |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
