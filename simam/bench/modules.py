"""``python -m simam.bench modules``: SimAM's default against the reference formula, side by side.

Compares the default implementation of :class:`simam.attention.SimAM` with the reference code's
formula, forward + backward, measured in one run.

For each feature-map shape the benchmark times one training step of the attention alone (forward,
then backward of a fixed random upstream gradient) for:

* ``simam`` (the default of :class:`simam.attention.SimAM`): a custom autograd function with the
  analytic gradient, in eager PyTorch;
* ``reference``: the reference code's formula in plain autograd ops (:func:`simam_reference`),
  eager;
* with ``--compile`` (the default), both again under ``torch.compile``.

The variants alternate within every repeat, in a rotating order, and the median over the repeats
is reported, so that noise from other work on the machine hits all of them alike. It also reports
the bytes that autograd keeps for the backward pass (distinct storages, input included) relative to
the input's bytes. Targets for the default: at least 2x faster than the eager reference, at most
1.25x the input's bytes saved.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

from simam.attention.simam import SimAM, simam_reference
from simam.bench import summary

DEFAULT_SHAPES = "128x16x32x32,128x64x8x8,32x256x14x14"
TARGET_SPEEDUP = 2.0
TARGET_SAVED = 1.25

Step = Callable[[torch.Tensor], torch.Tensor]


def parse_shapes(text: str) -> list[tuple[int, ...]]:
    """``"128x16x32x32,32x256x14x14"`` -> [(128, 16, 32, 32), (32, 256, 14, 14)]."""
    shapes = []
    for item in text.split(","):
        shape = tuple(int(size) for size in item.strip().lower().split("x"))
        if len(shape) < 3 or min(shape) < 1:
            raise argparse.ArgumentTypeError(
                f"a shape is N x C x spatial sizes, all >= 1; got {item!r}"
            )
        shapes.append(shape)
    return shapes


def saved_bytes(fn: Step, x: torch.Tensor) -> int:
    """Bytes of the distinct storages that autograd keeps for the backward pass of ``fn(x)``."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(x.detach().requires_grad_())
    return sum(storages.values())


def train_step(fn: Step, x: torch.Tensor, grad: torch.Tensor) -> None:
    leaf = x.detach().requires_grad_()
    fn(leaf).backward(grad)


def timed_step(fn: Step, x: torch.Tensor, grad: torch.Tensor) -> float:
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    start = time.perf_counter()
    train_step(fn, x, grad)
    if x.is_cuda:
        torch.cuda.synchronize(x.device)
    return time.perf_counter() - start


def parallel_op_overhead_ms(threads: int) -> float:
    """Median extra milliseconds an elementwise op big enough to use ``threads`` threads takes over
    the same op on one thread: the cost of starting the other threads, which on an oversubscribed
    machine (or a VM waking an idle virtual CPU) can dwarf the op itself."""
    a = torch.randn(1 << 17)
    b = torch.empty_like(a)
    medians = []
    for count in (threads, 1):
        torch.set_num_threads(count)
        times = []
        for _ in range(21):
            start = time.perf_counter()
            torch.mul(a, 2.0, out=b)
            times.append(time.perf_counter() - start)
        medians.append(statistics.median(times))
    torch.set_num_threads(threads)
    return (medians[0] - medians[1]) * 1e3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simam.bench modules", description=summary(__doc__)
    )
    parser.add_argument(
        "--repeats", type=int, default=15, help="timed steps per variant and shape (default 15)"
    )
    parser.add_argument(
        "--shapes",
        type=parse_shapes,
        default=parse_shapes(DEFAULT_SHAPES),
        help=f"comma-separated N x C x spatial shapes (default {DEFAULT_SHAPES})",
    )
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also time both under torch.compile (default on)",
    )
    parser.add_argument("--device", default="cpu", help="device to run on (default cpu)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float16", "bfloat16", "float64"],
        help="dtype of the feature maps (default float32)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=len(os.sched_getaffinity(0)),
        help="torch threads (default: the CPUs this process may use)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    torch.manual_seed(0)
    variants, notes = variants_to_time(
        args.compile, torch.randn(args.shapes[0], device=device, dtype=dtype)
    )
    rows = [
        row
        for shape in args.shapes
        for row in measure(variants, torch.randn(shape, device=device, dtype=dtype), args.repeats)
    ]
    print_report(rows, args.dtype, args.repeats, args.threads, device)
    for note in notes:
        print(note)
    return 0


def variants_to_time(compile_them: bool, x: torch.Tensor) -> tuple[dict[str, Step], list[str]]:
    """The default and the reference, and with ``compile_them`` each under ``torch.compile`` where
    it compiles (tried on ``x``); and a note on each compilation."""
    variants: dict[str, Step] = {"simam": SimAM(), "reference": simam_reference}
    notes = []
    if not compile_them:
        return variants, notes
    # dynamic=True: one compilation per variant serves every shape.
    for name in ("simam", "reference"):
        compiled = torch.compile(variants[name], dynamic=True)
        start = time.perf_counter()
        try:
            train_step(compiled, x, torch.randn_like(x))
        except Exception as error:  # a missing compiler, an unsupported device, ...
            notes.append(
                f"torch.compile of {name} failed and is skipped: {type(error).__name__}: {error}"
            )
            continue
        variants[f"{name}, compiled"] = compiled
        notes.append(f"torch.compile of {name}: {time.perf_counter() - start:.0f} s to compile.")
    return variants, notes


def measure(
    variants: dict[str, Step], x: torch.Tensor, repeats: int
) -> list[tuple[tuple[int, ...], str, float, float, str]]:
    """One row per variant for the feature map ``x``: ``(shape, variant, median seconds, speed-up
    over the eager reference, saved bytes over the input's)``. The variants alternate within every
    repeat, in a rotating order."""
    grad = torch.randn_like(x)
    names = list(variants)
    for name in names:  # warm-up: allocator, caches, and any recompilation for this shape
        train_step(variants[name], x, grad)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            seconds[name].append(timed_step(variants[name], x, grad))
    input_bytes = x.numel() * x.element_size()
    reference = statistics.median(seconds["reference"])
    rows = []
    for name in names:
        median = statistics.median(seconds[name])
        try:
            saved = f"{saved_bytes(variants[name], x) / input_bytes:.2f}"
        except Exception:  # saved-tensor hooks and compiled graphs need not mix
            saved = "n/a"
        rows.append((tuple(x.shape), name, median, reference / median, saved))
    return rows


def print_report(
    rows: list[tuple[tuple[int, ...], str, float, float, str]],
    dtype: str,
    repeats: int,
    threads: int,
    device: torch.device,
) -> None:
    """The table of :func:`measure`'s rows, notes on a busy machine,
    and the default against its targets."""
    shape_text = lambda shape: "x".join(map(str, shape))  # noqa: E731
    print(
        f"SimAM forward + backward on {device} ({dtype}), {torch.get_num_threads()} thread(s), "
        f"torch {torch.__version__}; median of {repeats} interleaved steps; "
        "printed by `python -m simam.bench modules`."
    )
    cpus, load = len(os.sched_getaffinity(0)), os.getloadavg()[0]
    if device.type == "cpu" and load > cpus:
        print(f"Note: the machine was busy (load average {load:.1f} on {cpus} CPUs).")
    if (
        device.type == "cpu"
        and threads > 1
        and (overhead := parallel_op_overhead_ms(threads)) > 0.5
    ):
        print(
            f"Note: here each multi-threaded op waits about {overhead:.1f} ms for its threads, so "
            "eager timings count ops rather than work; `--threads 1` measures the work."
        )
    print()
    print("| shape | variant | ms per step | speed-up vs eager reference | saved / input bytes |")
    print("| --- | --- | ---: | ---: | ---: |")
    for shape, name, median, speedup, saved in rows:
        print(f"| {shape_text(shape)} | {name} | {median * 1e3:.2f} | {speedup:.2f}x | {saved} |")
    print()
    met = True
    for shape, name, _, speedup, saved in rows:
        if name != "simam":
            continue
        fast, lean = speedup >= TARGET_SPEEDUP, saved != "n/a" and float(saved) <= TARGET_SAVED
        met = met and fast and lean
        print(
            f"{shape_text(shape)}: {speedup:.2f}x the eager reference's speed (target >= "
            f"{TARGET_SPEEDUP:g}x: {'met' if fast else 'NOT met'}), saves {saved}x the input's "
            f"bytes (target <= {TARGET_SAVED:g}x: {'met' if lean else 'NOT met'})"
        )
    print(f"All targets met: {'yes' if met else 'no'}.")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
