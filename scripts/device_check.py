"""Check every CUDA code path of the course on one borrowed GPU in under 5 minutes:
``make device-check OUT=folder``.

    make device-check OUT=folder               # python3 scripts/device_check.py --out folder
    make device-check DRY_RUN=1 OUT=folder     # its plumbing on the CPU, at tiny sizes (CI runs it)

Made for a GPU machine lent for minutes: bare (its own ``python3`` with torch, pytest and
hypothesis; no Jupyter, no network, no data), one command, and only the files written under its
output folder coming back. What the checks read comes with the repository: a real CIFAR-10 subset in
``device-data/`` (8,000 training and 2,000 test images in the official layout, 29 MiB; ``make
device-data`` builds it from the official files, and where ``$SIMAM_DATA`` holds them this command
builds it too), and synthetic batches for the speeds.

Each check runs in a child process of its own, under a time limit. Its row is printed and written to
``OUT/device-check.md`` (a Markdown table under a line naming the device, torch, CUDA and Python)
as soon as it ends, the table rewritten whole each time, so a command killed at any moment leaves
every row it finished. A check that overruns its limit is killed with every process it started and
reported as ``timed out after N s``; the others go on. A check may use the seconds that the checks
before it left unused, so the checks end by the sum of the limits, 265 s after they start. The
children's output goes to ``OUT/device-check.log``; a failed check's last lines are also printed.

The rows, with each check's limit and what it should take on one H100. The estimates are not
measurements: no GPU has run these checks yet. Compilation dominates them (torch.compile's caches on
disk start empty on a fresh machine; a later compilation of the same network reuses part of them),
and a Python process that imports torch takes a few seconds before any work.

- **data** (no limit; a few seconds): finds the CIFAR-10 under ``--data-root`` (default
  ``device-data/``), or builds the subset there from ``$SIMAM_DATA``
  (``scripts/make_device_data.py``).
- **files sent** (no limit; under a second): the size of what a device call sends, the checkout's
  tracked and untracked-not-ignored files (``git ls-files``) and the data folder, under 64 MiB.
  Skipped without git (the device machine gets the files without ``.git``); failed so in the dry
  run.
- **tests** (25 s; about 15): the test suite's CUDA tests, ``-k "cuda or model_device"`` (SimAM on
  CUDA in every dtype, the loader, Grad-CAM, the CUDA settings), pytest without the nbval options.
- **compiled SimAM** (30 s; about 20, nine small compilations):
  :func:`simam.attention.simam.simam_compiled` against eager SimAM in float32, float16 and bfloat16,
  forward and backward, on ResNet-20's three feature-map shapes at batch 128, and the time of a
  forward and backward pass of each.
- **bfloat16 + compile** (45 s; about 40, mostly compiling ResNet-20's training and evaluation
  graphs): ``python -m simam.train`` on the subset, 150 iterations, the whole model compiled: a
  finite loss, above twice chance, and its speed with and without the first steps. Skipped where the
  GPU lacks native bfloat16.
- **float16 + GradScaler + compile** (35 s; about 35): the same in float16, the gradient scaler's
  state saved in the checkpoint.
- **deterministic twice** (45 s; about 45, a compilation under deterministic algorithms, then one
  from the cache): two compiled runs with ``--deterministic`` end with equal metrics and weights.
- **SIGKILL and resume** (30 s; about 30): the same run killed with SIGKILL after its first
  checkpoint and resumed ends bit-identical (metrics, weights, momentum) to the first run above.
- **ResNet-20 images/s** (20 s; about 15), **ResNet-56 images/s** (35 s; about 50): the trainer's
  step (:class:`simam.bench.train.TrainerStep`: bfloat16, channels_last, compiled) on synthetic
  batches of 128: the first 10 steps timed apart (compilation, warm-up), then the steady images/s of
  150 steps, and from it the paper recipe's wall time: 64,000 iterations of 128 images and 64
  evaluations of 10,000 (a forward pass counted as a third of a training step, as
  :func:`simam.course.estimated_gpu_minutes` counts it), plus the compilation.

The limits add up to 265 s and the estimates to about 250 s; start-up (importing torch, finding the
data) adds about 10 s, so the command ends within 4.6 minutes. The estimates leave little to spare:
the check most likely to run out of time is ResNet-56's, which is last.

With ``--dry-run`` the same command runs on the CPU at tiny sizes (8 iterations of 16 images, 5
steps for the speeds, one thread), each check limited to 240 s, and skips with its reason what needs
CUDA; it checks the plumbing (the data, the size sent, the children, the table), not the GPU.

Exit status: 0 when every check passed or was skipped, 1 when one failed or timed out, 2 for a
command that cannot start (no CUDA GPU without ``--dry-run``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

import torch

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).resolve()
sys.path.insert(0, str(REPO))  # run from a clone whether or not the package is installed

from simam.attention.simam import simam, simam_compiled  # noqa: E402
from simam.bench.train import TrainerStep  # noqa: E402
from simam.config import PAPER, Config  # noqa: E402
from simam.data import DATASETS, load_cifar  # noqa: E402
from simam.device import compile_blocker, cuda_settings, describe, resolve  # noqa: E402
from simam.runs import atomic_write, read_metrics  # noqa: E402

TABLE, LOG = "device-check.md", "device-check.log"
# bytes a device call sends at most: the working tree and the carried folders
SEND_LIMIT = 64 * 2**20
DRY_RUN_LIMIT = 240  # seconds for each check in the dry run: a guard against a hang on a busy CPU
# the tests that skip themselves without a GPU
CUDA_TESTS = [
    "tests/test_simam.py",
    "tests/test_data.py",
    "tests/test_maps.py",
    "tests/test_train.py",
    "-k",
    "cuda or model_device",
]
# Runs the trainer's command line in a process that sends itself SIGKILL when its KILL_AT_STEP-th
# step begins.
KILLED_AT_STEP = """
import os, signal, sys
import simam.train

step, calls = simam.train.train_step, 0

def step_then_die(*args, **kwargs):
    global calls
    calls += 1
    if calls == int(os.environ["KILL_AT_STEP"]):
        os.kill(os.getpid(), signal.SIGKILL)
    return step(*args, **kwargs)

simam.train.train_step = step_then_die
sys.exit(simam.train.main(sys.argv[1:]))
"""


class Skipped(Exception):
    """A check that does not apply here; its message says why."""


@dataclass(frozen=True)
class Sizes:
    """How much work each check does: on the GPU, or in the dry run on the CPU."""

    device: str
    batch: int
    precision_iterations: (
        int  # the bfloat16 and float16 runs: one evaluation and one checkpoint, at the end
    )
    iterations: (
        int  # the deterministic and killed runs: an evaluation and a checkpoint every `every`
    )
    every: int
    kill_at: int  # the step the killed run dies at, after its first checkpoint
    min_accuracy: float  # of the precision runs
    trainer_options: tuple[str, ...]
    first_steps: int  # of the speed checks, timed apart: compilation and warm-up
    steady_steps: int


GPU = Sizes(
    device="cuda",
    batch=128,
    precision_iterations=150,
    iterations=100,
    every=50,
    kill_at=80,
    min_accuracy=0.2,
    trainer_options=(),
    first_steps=10,
    steady_steps=150,
)
DRY_RUN = Sizes(
    device="cpu",
    batch=16,
    precision_iterations=4,
    iterations=8,
    every=4,
    kill_at=6,
    min_accuracy=0.0,
    trainer_options=("--subset", "256", "--test-subset", "200", "--threads", "1"),
    first_steps=2,
    steady_steps=3,
)


@dataclass(frozen=True)
class Context:
    """What every check is given: the output and scratch folders, the data root, and the mode."""

    out: Path
    scratch: Path
    data: Path
    dry_run: bool

    @property
    def sizes(self) -> Sizes:
        return DRY_RUN if self.dry_run else GPU

    def argv(self) -> list[str]:
        """The options that give a child process this context."""
        return [
            "--out",
            str(self.out),
            "--scratch",
            str(self.scratch),
            "--data-root",
            str(self.data),
            *(["--dry-run"] if self.dry_run else []),
        ]


@dataclass(frozen=True)
class Check:
    name: str
    limit: int  # seconds on one H100 (the module docstring gives the estimate behind each)
    # in a child process: what was found, in words; raises Skipped or fails
    run: Callable[[Context], str]
    needs_data: bool = True


@dataclass(frozen=True)
class Row:
    name: str
    outcome: str  # passed, skipped, FAILED or timed out
    text: str
    seconds: float
    limit: float | None = None  # the check's own
    allowed: float | None = None  # its own and what the checks before it left unused

    def cell(self) -> str:
        text = " ".join(self.text.split()).replace("|", "/")
        return f"{self.outcome}{' ' if self.outcome == 'timed out' else ': '}{text[:500]}"

    def line(self) -> str:
        limit = "" if self.limit is None else f"{self.limit:.0f}"
        if self.allowed is not None and self.allowed >= self.limit + 1:
            limit += f" (up to {self.allowed:.0f})"
        return f"| {self.name} | {self.cell()} | {limit} | {self.seconds:.0f} |"


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


# --------------------------------------------------------------------------------------------------
# The checks, each run in a child process


def run_command(
    command: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """A command of the course from the clone, its output into this check's log."""
    sys.stdout.flush()
    return subprocess.run(
        command, cwd=REPO, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL
    )


def trainer(ctx: Context, out: Path, iterations: int, every: int, *options: str) -> list[str]:
    """``python -m simam.train`` on ResNet-20 + SimAM, quick recipe, into ``out``."""
    sizes = ctx.sizes
    return [
        sys.executable,
        "-m",
        "simam.train",
        "--recipe",
        "quick",
        "--model",
        "resnet20",
        "--attention",
        "simam",
        "--iterations",
        str(iterations),
        "--warmup",
        str(max(1, iterations // 5)),
        "--eval-every",
        str(every),
        "--checkpoint-every",
        str(every),
        "--batch-size",
        str(sizes.batch),
        "--device",
        sizes.device,
        "--data-root",
        str(ctx.data),
        "--out",
        str(out),
        "--no-progress",
        *sizes.trainer_options,
        *options,
    ]


def train(ctx: Context, name: str, iterations: int, every: int, *options: str) -> dict:
    """A finished run of :func:`trainer` in ``scratch/name``: its ``final.json``."""
    out = ctx.scratch / name
    done = run_command(trainer(ctx, out, iterations, every, *options))
    check(
        done.returncode == 0,
        f"python -m simam.train exited with status {done.returncode} (see the log)",
    )
    return json.loads((out / "final.json").read_text())


def same_run(run: Path, other: Path) -> None:
    """Bit-identical metrics (wall-clock times aside), weights and momentum at the end of two
    runs."""
    rows = [
        [{k: v for k, v in row.items() if k != "elapsed_seconds"} for row in read_metrics(r)]
        for r in (run, other)
    ]
    check(rows[0] == rows[1], f"the metrics differ: {rows[0]} against {rows[1]}")
    ours, theirs = (torch.load(r / "checkpoint.pt", weights_only=True) for r in (run, other))
    differ = [
        name
        for name, tensor in theirs["model"].items()
        if not torch.equal(ours["model"][name], tensor)
    ]
    differ += [
        f"momentum {index}"
        for index, state in theirs["optimizer"]["state"].items()
        if not torch.equal(
            ours["optimizer"]["state"][index]["momentum_buffer"], state["momentum_buffer"]
        )
    ]
    check(not differ, f"{len(differ)} tensors differ: {differ[:4]}")


def speeds(final: dict) -> str:
    """The run's training speed, steady and with its first steps (compilation, warm-up)."""
    steady, overall = final["steady_images_per_second"], final["train_images_per_second"]
    steady = (
        "no steady speed (too short a run)" if steady is None else f"{steady:,.0f} images/s steady"
    )
    return f"{steady}, {overall:,.0f} with the first steps"


def cuda_tests(ctx: Context) -> str:
    """pytest without the nbval options of pyproject.toml (no nbval here), its output into the log
    as it runs, its counts read from its JUnit XML report."""
    report = ctx.scratch / "tests.xml"
    done = run_command(
        [
            sys.executable,
            "-m",
            "pytest",
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
            "-q",
            f"--junitxml={report}",
            *CUDA_TESTS,
        ]
    )
    check(
        report.is_file(),
        f"pytest exited with status {done.returncode} and wrote no report (see the log)",
    )
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    failed, errors, skipped, tests = (
        int(suite.get(key, 0)) for key in ("failures", "errors", "skipped", "tests")
    )
    passed = tests - failed - errors - skipped
    summary = f"{passed} passed, {skipped} skipped, {failed} failed, {errors} errors"
    check(
        done.returncode == 0 and passed > 0 and not failed + errors,
        f"pytest status {done.returncode}: {summary}",
    )
    return summary


def compiled_simam(ctx: Context) -> str:
    if ctx.dry_run:
        raise Skipped("needs CUDA; the dry run runs on the CPU")
    device = torch.device("cuda")
    shapes = [(128, 16, 32, 32), (128, 32, 16, 16), (128, 64, 8, 8)]  # ResNet-20's three stages
    timings = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # SimAM's warning that it fell back to eager
        for dtype, tolerance in (
            (torch.float32, 1e-5),
            (torch.float16, 1e-2),
            (torch.bfloat16, 2e-2),
        ):
            began = time.perf_counter()
            for shape in shapes:
                x = torch.randn(shape, device=device).to(dtype).requires_grad_()
                ours, theirs = simam_compiled(x), simam(x)
                torch.testing.assert_close(
                    ours.float(), theirs.float(), rtol=tolerance, atol=tolerance
                )
                grads = [
                    torch.autograd.grad(y.float().square().sum(), x)[0].float()
                    for y in (ours, theirs)
                ]
                torch.testing.assert_close(
                    *grads, rtol=tolerance, atol=tolerance * grads[1].abs().max().item()
                )
                with torch.no_grad():
                    torch.testing.assert_close(
                        simam_compiled(x).float(), simam(x).float(), rtol=tolerance, atol=tolerance
                    )
            torch.cuda.synchronize()
            # the compilations of this dtype, and the comparisons
            first = time.perf_counter() - began
            x = torch.randn(shapes[0], device=device).to(dtype).requires_grad_()
            eager, fused = (
                milliseconds_per_pass(function, x) for function in (simam, simam_compiled)
            )
            timings.append(
                f"{str(dtype).removeprefix('torch.')} {first:.1f} s to compile and compare, "
                f"forward + backward {eager:.3f} ms eager, {fused:.3f} ms compiled"
            )
    return (
        f"equal to eager forward and backward on {len(shapes)} shapes of batch 128; "
        + "; ".join(timings)
    )


def milliseconds_per_pass(
    function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, repeats: int = 50
) -> float:
    """Milliseconds of a forward and backward pass of ``function`` on ``x`` (CUDA), after 3 untimed
    ones."""
    for _ in range(3):
        function(x).sum().backward()
    torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(repeats):
        function(x).sum().backward()
    torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - began) / repeats


def precision(amp_dtype: str) -> Callable[[Context], str]:
    def run(ctx: Context) -> str:
        compiled = []
        if not ctx.dry_run:
            device = torch.device("cuda")
            if amp_dtype == "bfloat16" and not torch.cuda.is_bf16_supported(
                including_emulation=False
            ):
                raise Skipped("no native bfloat16 on this GPU; the trainer never chooses it here")
            blocker = compile_blocker(device)
            if blocker:
                raise Skipped(blocker)
            compiled = ["--compile"]
        elif amp_dtype == "float16":
            raise Skipped(
                "float16 autocast with a gradient scaler needs CUDA; the dry run runs on the CPU"
            )
        iterations = ctx.sizes.precision_iterations
        final = train(
            ctx, amp_dtype, iterations, iterations, "--amp", "--amp-dtype", amp_dtype, *compiled
        )
        config, accuracy = final["config"], final["final_test_accuracy"]
        check(
            config["amp_dtype"] == amp_dtype and config["compile"] is bool(compiled),
            f"the run used {config}",
        )
        check(math.isfinite(final["final_test_loss"]), f"test loss {final['final_test_loss']}")
        check(
            accuracy >= ctx.sizes.min_accuracy,
            f"test accuracy {accuracy:.3f} after {iterations} iterations",
        )
        scaler = ""
        if amp_dtype == "float16":
            saved = torch.load(ctx.scratch / amp_dtype / "checkpoint.pt", weights_only=True)[
                "scaler"
            ]
            check(saved.get("scale", 0) > 0, f"the gradient scaler's state was not saved: {saved}")
            scaler = f"; the scaler's state saved (scale {saved['scale']:g})"
        return (
            f"{100 * accuracy:.1f}% after {iterations} iterations, compiled {config['compile']}; "
            f"{speeds(final)}{scaler}"
        )

    return run


def deterministic_twice(ctx: Context) -> str:
    sizes = ctx.sizes
    finals = [
        train(ctx, f"deterministic{n}", sizes.iterations, sizes.every, "--deterministic")
        for n in (1, 2)
    ]
    same_run(ctx.scratch / "deterministic1", ctx.scratch / "deterministic2")
    config = finals[0]["config"]
    return (
        f"equal metrics, weights and momentum after {sizes.iterations} iterations; "
        f"{config['amp_dtype'] or 'float32'}, compiled {config['compile']}"
    )


def kill_and_resume(ctx: Context) -> str:
    """Killed, resumed, and compared with the first run of ``deterministic twice`` (the same
    command), or with an uninterrupted run of its own where that one did not finish."""
    sizes = ctx.sizes
    reference = ctx.scratch / "deterministic1"
    if not (reference / "final.json").is_file():
        reference = ctx.scratch / "uninterrupted"
        train(ctx, reference.name, sizes.iterations, sizes.every, "--deterministic")
    out = ctx.scratch / "killed"
    command = trainer(ctx, out, sizes.iterations, sizes.every, "--deterministic")
    killed = run_command(
        [sys.executable, "-c", KILLED_AT_STEP, *command[3:]],
        env={"KILL_AT_STEP": str(sizes.kill_at)},
    )
    check(
        killed.returncode == -signal.SIGKILL,
        f"the run ended with status {killed.returncode}, not killed",
    )
    saved = torch.load(out / "checkpoint.pt", weights_only=True)["iteration"]
    check(
        saved == sizes.every,
        f"the checkpoint of the killed run is at iteration {saved}, not {sizes.every}",
    )
    check(
        run_command([*command, "--resume"]).returncode == 0, "the resumed run failed (see the log)"
    )
    same_run(out, reference)
    return (
        f"killed with SIGKILL at step {sizes.kill_at}, resumed from iteration {saved}: "
        f"bit-identical metrics, weights and momentum to an uninterrupted run"
    )


def images_per_second(model: str) -> Callable[[Context], str]:
    def run(ctx: Context) -> str:
        sizes = ctx.sizes
        if ctx.dry_run:
            torch.set_num_threads(1)
        device = torch.device(sizes.device)
        config = resolve(
            Config(model=model, attention="simam", batch_size=sizes.batch, compile_simam=False),
            device,
        )
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(
            0, 256, (50 * sizes.batch, 3, 32, 32), dtype=torch.uint8, generator=generator
        )
        labels = torch.randint(0, 10, (len(images),), generator=generator)
        steps = TrainerStep.build(config, images, labels).steps()
        with cuda_settings(deterministic=False):  # cuDNN's autotuning, as in a run of the trainer
            first, _ = timed_steps(steps, sizes.first_steps)
            seconds, loss = timed_steps(steps, sizes.steady_steps)
        check(math.isfinite(loss), f"the training loss became {loss}")
        rate = sizes.steady_steps * sizes.batch / seconds
        evaluations = math.ceil(PAPER.iterations / PAPER.eval_every)
        test_images = DATASETS[PAPER.dataset].test_images
        paper = first + (PAPER.iterations * PAPER.batch_size + evaluations * test_images / 3) / rate
        return (
            f"{rate:,.0f} images/s steady ({sizes.steady_steps} steps of {sizes.batch}, "
            f"{config.amp_dtype or 'float32'}, compiled {config.compile}); "
            f"first {sizes.first_steps} steps {first:.1f} s (compilation, warm-up); "
            f"the paper recipe ({PAPER.iterations:,} iterations of {PAPER.batch_size}, "
            f"{evaluations} evaluations) would take {paper / 60:.1f} min"
        )

    return run


def timed_steps(steps: Iterator[torch.Tensor], count: int) -> tuple[float, float]:
    """Seconds for ``count`` training steps, the device waited for, and the last loss."""
    began = time.perf_counter()
    for _ in range(count):
        loss = next(steps)
    last = loss.item()  # waits for the device
    return time.perf_counter() - began, last


CHECKS: list[Check] = [
    Check("tests", 25, cuda_tests, needs_data=False),
    Check("compiled SimAM", 30, compiled_simam, needs_data=False),
    Check("bfloat16 + compile", 45, precision("bfloat16")),
    Check("float16 + GradScaler + compile", 35, precision("float16")),
    Check("deterministic twice", 45, deterministic_twice),
    Check("SIGKILL and resume", 30, kill_and_resume),
    Check("ResNet-20 images/s", 20, images_per_second("resnet20"), needs_data=False),
    Check("ResNet-56 images/s", 35, images_per_second("resnet56"), needs_data=False),
]


# --------------------------------------------------------------------------------------------------
# Running the checks: children, limits, the table


def child_command(check: Check, ctx: Context, result: Path) -> list[str]:
    """This script again, running one check and writing its result to ``result``."""
    return [
        sys.executable,
        str(SCRIPT),
        "--child",
        check.name,
        "--result",
        str(result),
        *ctx.argv(),
    ]


def slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", name).strip("-").lower()


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL to the child's process group: the child and everything it started (trainers,
    pytest)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # every process of the group has ended
        pass
    process.wait()


def run_child(
    check: Check,
    ctx: Context,
    limit: float,
    allowed: float,
    command: Callable[[Check, Context, Path], list[str]],
) -> Row:
    """``check`` in a child process of its own group, stopped after ``allowed`` seconds (``limit``
    its own)."""
    result = ctx.scratch / f"{slug(check.name)}.json"
    argv = command(check, ctx, result)
    env = {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    # A group of its own, so that a kill reaches the trainers it starts; the same session, so that
    # whoever stops this command stops them too.
    group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    with open(ctx.out / LOG, "ab") as log:
        log.write(f"\n== {check.name} (limit {allowed:.0f} s)\n".encode())
        log.flush()
        start = log.tell()
        began = time.monotonic()
        child = subprocess.Popen(
            argv,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            **group,
        )
        try:
            child.wait(timeout=max(allowed, 0.1))
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            kill_group(child)  # also what a finished check left behind
    seconds = time.monotonic() - began
    if timed_out:
        return Row(check.name, "timed out", f"after {allowed:.0f} s", seconds, limit, allowed)
    if result.is_file():
        found = json.loads(result.read_text())
        return Row(check.name, found["outcome"], found["text"], seconds, limit, allowed)
    last = log_tail(ctx.out / LOG, start, 1)
    return Row(
        check.name,
        "FAILED",
        f"exited with status {child.returncode} and no result: {' '.join(last)}",
        seconds,
        limit,
        allowed,
    )


def log_tail(path: Path, start: int, lines: int) -> list[str]:
    """The last ``lines`` lines of ``path`` from byte ``start`` on."""
    with open(path, "rb") as file:
        file.seek(start)
        return file.read().decode(errors="replace").splitlines()[-lines:]


class Report:
    """The table in ``OUT/device-check.md``, rewritten whole and atomically at each row, and printed
    row by row."""

    def __init__(self, out: Path, title: str) -> None:
        self.path = out / TABLE
        self.lines = [
            title,
            "",
            "| check | result | limit (s) | seconds |",
            "| --- | --- | ---: | ---: |",
        ]
        self.rows: list[Row] = []
        self._write()
        print("\n".join(self.lines), flush=True)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        self.lines.append(row.line())
        self._write()
        print(row.line(), flush=True)

    def finish(self, seconds: float) -> None:
        counts = {
            outcome: sum(row.outcome == outcome for row in self.rows)
            for outcome in ("passed", "skipped", "FAILED", "timed out")
        }
        self.lines += [
            "",
            ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
            + f"; {seconds:.0f} s in all.",
        ]
        self._write()
        print("\n" + self.lines[-1], flush=True)

    def _write(self) -> None:
        text = "\n".join(self.lines) + "\n"
        atomic_write(self.path, lambda file: file.write(text.encode()))


def run_checks(
    checks: list[Check],
    ctx: Context,
    report: Report,
    has_data: bool,
    command: Callable[[Check, Context, Path], list[str]] = child_command,
) -> None:
    """Every check in turn; each may run until the sum of its own limit and those of the checks
    before it, counted from the start of the first."""
    began, limits = time.monotonic(), 0.0
    for check_ in checks:
        limit = DRY_RUN_LIMIT if ctx.dry_run else check_.limit
        limits += limit
        if check_.needs_data and not has_data:
            report.add(Row(check_.name, "skipped", "no CIFAR-10 (see the data row)", 0.0, limit))
            continue
        row = run_child(check_, ctx, limit, began + limits - time.monotonic(), command)
        report.add(row)
        if row.outcome in ("FAILED", "timed out"):
            print("\n".join(f"    {line}" for line in log_tail(ctx.out / LOG, 0, 15)), flush=True)


def child_main(args: argparse.Namespace, checks: list[Check]) -> int:
    """One check, in the child process: its result as JSON in ``--result``."""
    found = {c.name: c for c in checks}
    if args.child not in found:
        print(
            f"device_check: no check named {args.child!r}; the checks: {', '.join(found)}",
            file=sys.stderr,
        )
        return 2
    ctx = Context(args.out, args.scratch, args.data_root, args.dry_run)
    try:
        outcome, text = "passed", found[args.child].run(ctx)
    except Skipped as reason:
        outcome, text = "skipped", str(reason)
    except Exception as error:  # reported in the table; the traceback goes to the log
        traceback.print_exc()
        outcome, text = "FAILED", f"{type(error).__name__}: {error}"
    atomic_write(
        args.result,
        lambda file: file.write(json.dumps({"outcome": outcome, "text": text}).encode()),
    )
    return 1 if outcome == "FAILED" else 0


# --------------------------------------------------------------------------------------------------
# What the checks start from: the data, the size of what is sent, the device


def prepare_data(ctx: Context) -> Row:
    """The CIFAR-10 under ``ctx.data``, or the subset built there from ``$SIMAM_DATA``."""
    began, how = time.monotonic(), "found"
    spec = DATASETS["cifar10"]
    if not all(
        (ctx.data / spec.folder / name).is_file() for name in (*spec.train_files, *spec.test_files)
    ):
        how = "built from $SIMAM_DATA"
        with open(ctx.out / LOG, "ab") as log:
            log.write(b"\n== data\n")
            log.flush()
            build = [
                sys.executable,
                str(REPO / "scripts" / "make_device_data.py"),
                "--out",
                str(ctx.data),
            ]
            built = subprocess.run(
                build,
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.PIPE,
                text=True,
            )
        if built.returncode != 0:
            why = built.stderr.strip().removeprefix("make_device_data: error: ")
            return Row(
                "data",
                "FAILED",
                f"no CIFAR-10 under {ctx.data}, and {why}. Build it with `make device-data` "
                "where the official files are, and send device-data/ along",
                time.monotonic() - began,
            )
    sizes = [len(load_cifar(ctx.data, "cifar10", train=train)[1]) for train in (True, False)]
    return Row(
        "data",
        "passed",
        f"{ctx.data.name}/ {how}: {sizes[0]:,} training and {sizes[1]:,} test images, "
        f"{folder_bytes(ctx.data) / 2**20:.1f} MiB",
        time.monotonic() - began,
    )


def folder_bytes(folder: Path) -> int:
    return sum(path.lstat().st_size for path in folder.rglob("*") if path.is_file())


def sent_bytes(repo: Path, carried: list[Path]) -> tuple[int, int]:
    """Bytes a device call sends: the checkout's tracked and untracked-not-ignored files, and the
    ``carried`` folders (ignored, named in the call). Raises ``OSError`` where git cannot list
    them."""
    listed = subprocess.run(
        ["git", "-C", str(repo), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:
        raise OSError(listed.stderr.strip() or f"git exited with status {listed.returncode}")
    files = {repo / name for name in listed.stdout.split("\0") if name}
    tree = sum(path.lstat().st_size for path in files if path.is_file() or path.is_symlink())
    extra = {
        path
        for folder in carried
        for path in folder.rglob("*")
        if path.is_file() and path not in files
    }
    return tree, sum(path.lstat().st_size for path in extra)


def files_sent(ctx: Context) -> Row:
    """The size of what a device call sends; the data folder counts where it can travel, inside the
    checkout."""
    began = time.monotonic()
    inside = ctx.data.is_relative_to(REPO)
    try:
        tree, data = sent_bytes(REPO, [ctx.data] if ctx.data.is_dir() and inside else [])
    except OSError as error:  # no git, or no .git (as on the device machine)
        # the dry run is where the size must be known
        outcome = "FAILED" if ctx.dry_run else "skipped"
        return Row(
            "files sent",
            outcome,
            f"not computed without a git checkout ({error})",
            time.monotonic() - began,
        )
    total = tree + data
    text = (
        f"{total / 2**20:.1f} MiB of {SEND_LIMIT / 2**20:.0f}: "
        f"the checkout's files {tree / 2**20:.1f} MiB, "
        + (
            f"{ctx.data.name}/ {data / 2**20:.1f} MiB"
            if inside
            else f"{ctx.data} outside it, not sent"
        )
    )
    return Row(
        "files sent", "passed" if total < SEND_LIMIT else "FAILED", text, time.monotonic() - began
    )


def title(dry_run: bool) -> str:
    """The line over the table: where it ran, torch, CUDA and Python, and when."""
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    software = (
        f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}, "
        f"Python {platform.python_version()}"
    )
    if dry_run:
        return (
            f"`make device-check DRY_RUN=1` on the {describe(torch.device('cpu'))}, tiny sizes; "
            f"{software}; {when}."
        )
    device = torch.device("cuda")
    capability = ".".join(map(str, torch.cuda.get_device_capability(device)))
    return (
        f"`make device-check` on {torch.cuda.get_device_name(device)} "
        f"(compute capability {capability}, {torch.cuda.device_count()} GPU(s)); "
        f"{software}; {when}."
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {TABLE} and {LOG}")
    parser.add_argument(
        "--dry-run", action="store_true", help="on the CPU at tiny sizes: the plumbing, not the GPU"
    )
    parser.add_argument(
        "--data-root",
        type=Path,
        default=REPO / "device-data",
        help="folder holding cifar-10-batches-py/ (default device-data/ in the clone, built there "
        "from $SIMAM_DATA where it is missing)",
    )
    # the children's: the parent's scratch folder
    parser.add_argument("--scratch", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child", help=argparse.SUPPRESS)  # the children's: the check to run
    # the children's: where its result goes
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(
    argv: list[str] | None = None,
    checks: list[Check] | None = None,
    command: Callable[[Check, Context, Path], list[str]] = child_command,
) -> int:
    args = parse_args(argv)
    args.data_root = args.data_root.expanduser().resolve()
    if args.child:
        return child_main(args, CHECKS if checks is None else checks)
    if not args.dry_run and not torch.cuda.is_available():
        print(
            f"device_check: no CUDA GPU visible to torch {torch.__version__} "
            f"(CUDA build {torch.version.cuda}); these checks are of the GPU code paths. "
            "Nothing was checked; --dry-run (DRY_RUN=1) checks the command's plumbing on the CPU.",
            file=sys.stderr,
        )
        return 2
    began = time.monotonic()
    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / LOG).write_bytes(b"")
    # Stopped from outside, this process exits through run_child's clean-up, which kills the running
    # check.
    stopped = signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    try:
        with tempfile.TemporaryDirectory(prefix="device-check-") as scratch:
            ctx = Context(out, Path(scratch), args.data_root, args.dry_run)
            report = Report(out, title(args.dry_run))
            data = prepare_data(ctx)
            report.add(data)
            report.add(files_sent(ctx))
            run_checks(
                CHECKS if checks is None else checks, ctx, report, data.outcome == "passed", command
            )
            report.finish(time.monotonic() - began)
    finally:
        signal.signal(signal.SIGTERM, stopped)
    print(f"written to {out / TABLE}; the checks' output in {out / LOG}")
    return 1 if any(row.outcome in ("FAILED", "timed out") for row in report.rows) else 0


if __name__ == "__main__":
    sys.exit(main())
