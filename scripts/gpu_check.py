"""Check every CUDA code path of the course on one GPU, in about 10 minutes, on real CIFAR-10.

    SIMAM_DATA=/path/to/data python scripts/gpu_check.py [--write]     # or: make gpu-check [WRITE=1]

A maintainer runs this on a machine with an NVIDIA GPU before a release. Every check runs, also
after one has failed, and one table gives each check's result and seconds; ``--write`` also writes
it to ``results/gpu/<device name>.md``. The checks, in order:

- **tests**: the test suite's CUDA tests (SimAM on CUDA in every dtype, the loader, Grad-CAM, the
  CUDA settings), which skip themselves on a machine without a GPU.
- **loader**: ``CifarLoader`` on CUDA (channels_last) gives the CPU loader's batches for the same
  seed, and resumes from its ``state_dict``.
- **compiled SimAM**: :func:`simam.attention.simam.simam_compiled` on CUDA equals eager SimAM in
  float32, float16 and bfloat16, forward and backward, on MobileNetV2's 10 feature-map shapes; then
  MobileNetV2 with ``SimAM(compiled=True)`` trains and evaluates without falling back to eager.
- **float16 + compile**, **bfloat16 + compile**: ``python -m simam.train``, whole model compiled,
  200 iterations: finite, better than chance, the gradient scaler saved for float16 (the T4's
  default). bfloat16 is skipped where the GPU lacks it natively (the trainer never chooses it there).
- **SIGKILL and resume**: a compiled run in the automatic precision, killed with SIGKILL at its first
  checkpoint and resumed, finishes with each evaluation once and a test accuracy well above chance.
- **deterministic twice**: two runs with ``--deterministic`` give equal metrics and equal weights.
- **DDP with SyncBN**: ``torchrun`` with two processes, NCCL and ``--sync-bn`` (skipped with one GPU).
- **chapter 5, full mode**: ``notebooks/05_training_cifar_resnets.ipynb`` executed with
  ``SIMAM_QUICK=0`` in a temporary folder, in the time left of ``--budget``.

Exit status: 0 when every check passed or was skipped, 1 when one failed, 2 without a CUDA GPU or
CIFAR-10.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a clone whether or not the package is installed

from simam.attention.simam import simam, simam_compiled  # noqa: E402
from simam.bench.train import TrainerStep  # noqa: E402
from simam.config import Config  # noqa: E402
from simam.data import CifarLoader, load_cifar  # noqa: E402
from simam.runs import read_metrics  # noqa: E402
from simam.settings import data_root  # noqa: E402
from simam.train import resolve  # noqa: E402

CUDA_TESTS = ["tests/test_simam.py", "tests/test_data.py", "tests/test_maps.py", "tests/test_train.py",
              "-k", "cuda or model_device"]  # the tests that skip themselves without a GPU
MOBILENETV2_SHAPES = [(32, 32), (96, 32), (144, 32), (144, 16), (192, 16), (384, 8), (576, 8), (192, 8), (576, 4), (960, 4)]
SHORT_RUN = ["--recipe", "quick", "--model", "resnet20", "--attention", "simam", "--iterations", "200",
             "--warmup", "40", "--eval-every", "100", "--checkpoint-every", "100", "--test-subset", "1000",
             "--device", "cuda", "--no-progress"]


class Skipped(Exception):
    """A check that does not apply to this machine; its message says why."""


@dataclass
class Machine:
    """What the checks share: the GPU, the data, a scratch folder, and the deadline of ``--budget``."""

    device: torch.device
    data: Path
    scratch: Path
    deadline: float


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def run_cli(command: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """A command of the course, from the clone, with its output shown as it runs."""
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(command, cwd=REPO, env=env, timeout=timeout)


def train_cli(machine: Machine, name: str, extra: list[str]) -> dict:
    """``python -m simam.train`` on a short run into ``scratch/name``; its ``final.json``."""
    out = machine.scratch / name
    done = run_cli([sys.executable, "-m", "simam.train", *SHORT_RUN, "--data-root", str(machine.data), "--out", str(out),
                    *extra], timeout=300)
    check(done.returncode == 0, f"python -m simam.train exited with status {done.returncode}")
    return json.loads((out / "final.json").read_text())


def cuda_tests(machine: Machine) -> str:
    output = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *CUDA_TESTS], cwd=REPO,
                            env={**os.environ, "SIMAM_DATA": str(machine.data)}, capture_output=True, text=True,
                            timeout=300).stdout
    print(output[-2000:])
    summary = output.strip().splitlines()[-1] if output.strip() else "no output"
    check(re.search(r"\b\d+ passed\b", summary) is not None and "failed" not in summary and "error" not in summary, summary)
    return summary.strip("= ")


def loader(machine: Machine) -> str:
    images, labels = load_cifar(machine.data, "cifar10", train=True)
    options = {"batch_size": 256, "shuffle": True, "augment": True, "drop_last": True, "seed": 7}
    on_gpu = CifarLoader(images, labels, device=machine.device, channels_last=True, **options)
    for (cpu_x, cpu_y), (gpu_x, gpu_y) in zip(CifarLoader(images, labels, **options), on_gpu):
        check(gpu_x.is_cuda and gpu_x.is_contiguous(memory_format=torch.channels_last), "a GPU batch not channels_last")
        check(torch.equal(cpu_y, gpu_y.cpu()) and torch.allclose(cpu_x, gpu_x.cpu(), atol=1e-5), "the batches differ")
        if on_gpu.position == 3:
            break
    state, expected = on_gpu.state_dict(), next(iter(on_gpu))[1]
    fresh = CifarLoader(images, labels, device=machine.device, channels_last=True, **options)
    fresh.load_state_dict(state)
    check(torch.equal(next(iter(fresh))[1], expected), "a GPU loader resumed from state_dict gives another batch")
    return "the CPU's batches; resumes from state_dict"


def compiled_simam(machine: Machine) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # SimAM's warning that it fell back to eager
        for dtype, tolerance in ((torch.float32, 1e-5), (torch.float16, 1e-2), (torch.bfloat16, 2e-2)):
            torch._dynamo.reset()  # a network trains in one dtype: each starts with no compiled code
            for channels, size in MOBILENETV2_SHAPES:
                x = torch.randn(8, channels, size, size, device=machine.device).to(dtype).requires_grad_()
                ours, theirs = simam_compiled(x), simam(x)
                torch.testing.assert_close(ours.float(), theirs.float(), rtol=tolerance, atol=tolerance)
                grads = [torch.autograd.grad(y.float().square().sum(), x)[0].float() for y in (ours, theirs)]
                torch.testing.assert_close(*grads, rtol=tolerance, atol=tolerance * grads[1].abs().max().item())
                with torch.no_grad():
                    torch.testing.assert_close(simam_compiled(x).float(), simam(x).float(), rtol=tolerance, atol=tolerance)
        images, labels = load_cifar(machine.data, "cifar10", train=True)
        config = resolve(Config(model="mobilenetv2", attention="simam", compile=False, compile_simam=True), machine.device)
        step = TrainerStep.build(config, images[:1024], labels[:1024])
        losses = [loss.item() for loss, _ in zip(step.steps(), range(3))]
        step.model.eval()
        with torch.no_grad():
            step.forward(next(iter(step.loader))[0])
    check(all(math.isfinite(loss) for loss in losses), f"MobileNetV2 losses {losses}")
    return (f"equal to eager in 3 dtypes on {len(MOBILENETV2_SHAPES)} shapes; MobileNetV2 ({config.amp_dtype}) "
            "trained and evaluated compiled")


def precision(amp_dtype: str) -> Callable[[Machine], str]:
    def run(machine: Machine) -> str:
        if amp_dtype == "bfloat16" and not torch.cuda.is_bf16_supported(including_emulation=False):
            raise Skipped("no native bfloat16 on this GPU; the trainer never chooses it here")
        final = train_cli(machine, amp_dtype, ["--amp", "--amp-dtype", amp_dtype, "--compile"])
        check(final["config"]["compile"] and final["config"]["amp_dtype"] == amp_dtype, f"the run used {final['config']}")
        check(final["final_test_accuracy"] > 0.25, f"test accuracy {final['final_test_accuracy']:.3f} after 200 iterations")
        if amp_dtype == "float16":
            saved = torch.load(machine.scratch / amp_dtype / "checkpoint.pt", weights_only=True)
            check(saved["scaler"].get("scale", 0) > 0, "the gradient scaler's state was not saved")
        accuracy, rate = 100 * final["final_test_accuracy"], final["train_images_per_second"]
        return f"{accuracy:.1f}% after 200 iterations, {rate:,.0f} images/s"
    return run


def kill_and_resume(machine: Machine) -> str:
    out = machine.scratch / "killed"
    command = [sys.executable, "-m", "simam.train", *SHORT_RUN, "--iterations", "1000", "--warmup", "200", "--eval-every",
               "250", "--checkpoint-every", "250", "--data-root", str(machine.data), "--out", str(out)]
    child = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 240
    while not (out / "checkpoint.pt").exists():
        check(child.poll() is None, f"the run ended (status {child.returncode}) before its first checkpoint")
        check(time.monotonic() < deadline, "no checkpoint after 240 s")
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    check(child.wait() == -signal.SIGKILL, f"the run ended by itself (status {child.returncode}) before it was killed")
    check(run_cli([*command, "--resume"], timeout=300).returncode == 0, "the resumed run failed")
    final = json.loads((out / "final.json").read_text())
    iterations = [row["iteration"] for row in read_metrics(out)]
    check(iterations == [250, 500, 750, 1000], f"metrics.jsonl rows at {iterations}")
    check(final["final_test_accuracy"] > 0.5, f"test accuracy {final['final_test_accuracy']:.3f} after 1,000 iterations")
    return f"{100 * final['final_test_accuracy']:.1f}% after 1,000 iterations, {final['config']['amp_dtype']}, compiled"


def deterministic_twice(machine: Machine) -> str:
    finals = [train_cli(machine, f"deterministic{n}", ["--deterministic"]) for n in (1, 2)]
    folders = [machine.scratch / f"deterministic{n}" for n in (1, 2)]
    rows = [[{k: v for k, v in row.items() if k != "elapsed_seconds"} for row in read_metrics(out)] for out in folders]
    check(rows[0] == rows[1], f"the metrics differ: {rows[0]} against {rows[1]}")
    weights = [torch.load(out / "checkpoint.pt", weights_only=True)["model"] for out in folders]
    differ = [name for name, tensor in weights[0].items() if not torch.equal(tensor, weights[1][name])]
    check(not differ, f"weights differ: {differ[:5]}")
    return f"equal metrics and weights, {finals[0]['config']['amp_dtype']}, compile {finals[0]['config']['compile']}"


def ddp_sync_bn(machine: Machine) -> str:
    if torch.cuda.device_count() < 2:
        raise Skipped(f"{torch.cuda.device_count()} GPU; DDP over NCCL needs two")
    out = machine.scratch / "ddp"
    args = [arg for arg in SHORT_RUN if arg not in ("--device", "cuda")]
    done = run_cli([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "simam.train",
                    *args, "--sync-bn", "--data-root", str(machine.data), "--out", str(out)], timeout=300)
    check(done.returncode == 0, f"torchrun exited with status {done.returncode}")
    final = json.loads((out / "final.json").read_text())
    expected = {"world_size": 2, "per_rank_batch": 64, "backend": "nccl", "sync_bn": True}
    check(final["distributed"] == expected, f"final.json says {final['distributed']}")
    return f"{100 * final['final_test_accuracy']:.1f}% after 200 iterations on 2 GPUs"


def chapter_5_full(machine: Machine) -> str:
    import nbformat
    from nbclient import NotebookClient

    folder = machine.scratch / "chapter5"
    folder.mkdir()
    notebook = nbformat.read(REPO / "notebooks" / "05_training_cifar_resnets.ipynb", as_version=4)
    os.environ.update(SIMAM_QUICK="0", SIMAM_DATA=str(machine.data))  # the kernel inherits them
    client = NotebookClient(notebook, timeout=max(60, int(machine.deadline - time.monotonic())), kernel_name="python3",
                            resources={"metadata": {"path": str(folder)}})
    client.execute()
    printed = "".join(output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", []))
    check("quick mode: False" in printed, "the notebook did not run in full mode")
    nbformat.write(notebook, folder / "05_training_cifar_resnets.ipynb")
    return f"executed in full mode into {folder.name}/"


CHECKS: list[tuple[str, Callable[[Machine], str]]] = [
    ("tests", cuda_tests),
    ("loader", loader),
    ("compiled SimAM", compiled_simam),
    ("float16 + compile", precision("float16")),
    ("bfloat16 + compile", precision("bfloat16")),
    ("SIGKILL and resume", kill_and_resume),
    ("deterministic twice", deterministic_twice),
    ("DDP with SyncBN", ddp_sync_bn),
    ("chapter 5, full mode", chapter_5_full),
]


def run_checks(checks: list[tuple[str, Callable[[Machine], str]]], machine: Machine) -> list[tuple[str, str, float]]:
    """Each check's name, result (``passed: ...``, ``skipped: ...`` or ``FAILED: ...``) and seconds."""
    rows = []
    for name, run in checks:
        print(f"\n== {name}", flush=True)
        started = time.perf_counter()
        try:
            result = f"passed: {run(machine)}"
        except Skipped as reason:
            result = f"skipped: {reason}"
        except Exception as error:  # every check runs; the table says which failed
            traceback.print_exc()
            result = f"FAILED: {type(error).__name__}: {' '.join(str(error).split())[:300]}"
        rows.append((name, result, time.perf_counter() - started))
        print(f"{name}: {result}", flush=True)
    return rows


def table(rows: list[tuple[str, str, float]], title: str) -> str:
    lines = [title, "", "| check | result | seconds |", "| --- | --- | ---: |"]
    lines += [f"| {name} | {result.replace('|', '/')} | {seconds:.0f} |" for name, result, seconds in rows]
    return "\n".join(lines) + "\n"


def device_file(name: str) -> Path:
    """``results/gpu/<name>.md``, the name kept to letters, digits, dots and dashes."""
    return REPO / "results" / "gpu" / (re.sub(r"[^A-Za-z0-9.]+", "-", name).strip("-") + ".md")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None,
                        help="folder holding cifar-10-batches-py/ (default $SIMAM_DATA)")
    parser.add_argument("--write", action="store_true", help="also write the table to results/gpu/<device name>.md")
    parser.add_argument("--budget", type=float, default=600, help="seconds for all checks; chapter 5 gets what is left")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU visible to torch {torch.__version__} (CUDA build {torch.version.cuda}); these checks "
              "are of the GPU code paths: run them on a machine with an NVIDIA GPU. Nothing was checked.", file=sys.stderr)
        return 2
    root = args.data_root or data_root()
    if not (root / "cifar-10-batches-py" / "test_batch").is_file():
        print(f"gpu_check: CIFAR-10 not found under {root}; set SIMAM_DATA or pass --data-root", file=sys.stderr)
        return 2
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    with tempfile.TemporaryDirectory() as scratch:
        rows = run_checks(CHECKS, Machine(device, root, Path(scratch), time.monotonic() + args.budget))
    capability = ".".join(map(str, torch.cuda.get_device_capability(device)))
    text = table(rows, f"`scripts/gpu_check.py` on {name} (compute capability {capability}, "
                       f"{torch.cuda.device_count()} GPU(s)), torch {torch.__version__}, CUDA {torch.version.cuda}: "
                       f"{sum(row[2] for row in rows):.0f} s in all.")
    print("\n" + text)
    if args.write:
        path = device_file(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"written to {path.relative_to(REPO)}")
    return 1 if any(result.startswith("FAILED") for _, result, _ in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
