"""Check every CUDA code path of the trainer on one GPU, in about 5 minutes, on real CIFAR-10.

    SIMAM_DATA=/path/to/data python scripts/gpu_check.py      # the folder holding cifar-10-batches-py/

A maintainer runs this on a machine with an NVIDIA GPU before a release. In order:

1. **Loader on the device.** ``CifarLoader`` on CUDA (pinned copy, channels_last) gives the CPU
   loader's batches for the same seed, and resumes from its ``state_dict`` on a fresh loader.
2. **Speed.** ResNet-20 and ResNet-56 with SimAM, :func:`simam.train.train_step` with the
   trainer's CUDA defaults (channels_last, mixed precision, ``torch.compile``), and the same without
   compile: training images per second, peak memory, and the projected time of the full paper
   recipe (64,000 iterations of 128 images, 64 evaluations of the 10,000 test images).
3. **Checkpoint and resume, compiled, automatic precision.** ``python -m simam.train`` trains
   ResNet-20 + SimAM (quick recipe, 1,000 iterations); it is killed with SIGKILL as soon as its
   first checkpoint appears, resumed with ``--resume``, and must finish with ``final.json``, no
   duplicate rows in ``metrics.jsonl`` and a test accuracy well above chance.
4. **The other precision.** A short in-process run with the mixed-precision type that step 3 did
   not use: float16 with the gradient scaler where the GPU has bfloat16, else bfloat16; eager, NCHW.

Any failure prints the reason and exits with status 1; no GPU exits with status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a clone whether or not the package is installed

from simam.data import CifarLoader, load_cifar  # noqa: E402
from simam.settings import data_root  # noqa: E402
from simam.config import PAPER, QUICK, Config, build_model  # noqa: E402
from simam.runs import read_metrics  # noqa: E402
from simam.train import make_optimizer, resolve, train, train_step  # noqa: E402


def step(title: str) -> None:
    print(f"\n== {title}", flush=True)


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def loader_on_device(images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> None:
    step("1. CifarLoader on the GPU")
    options = {"batch_size": 256, "shuffle": True, "augment": True, "drop_last": True, "seed": 7}
    on_cpu = CifarLoader(images, labels, **options)
    on_gpu = CifarLoader(images, labels, device=device, channels_last=True, **options)
    for (cpu_x, cpu_y), (gpu_x, gpu_y) in zip(on_cpu, on_gpu):
        check(gpu_x.device == device and gpu_x.is_contiguous(memory_format=torch.channels_last), "GPU batch not channels_last on the GPU")
        check(torch.equal(cpu_y, gpu_y.cpu()), "labels differ between the CPU and GPU loaders")
        check(torch.allclose(cpu_x, gpu_x.cpu(), atol=1e-5), "images differ between the CPU and GPU loaders")
        if on_gpu.position == 3:
            break
    state = on_gpu.state_dict()
    expected = next(iter(on_gpu))[1]
    fresh = CifarLoader(images, labels, device=device, channels_last=True, **options)
    fresh.load_state_dict(state)
    check(torch.equal(next(iter(fresh))[1], expected), "a GPU loader resumed from state_dict gives another batch")
    print("same batches as on the CPU; resumes exactly from state_dict")


def speed(images: torch.Tensor, labels: torch.Tensor, device: torch.device, iterations: int) -> None:
    step("2. Training speed (batch 128)")
    print("| model | compile | images/s | peak memory (GiB) | paper recipe, projected |")
    print("| --- | --- | ---: | ---: | ---: |")
    for model_name in ("resnet20", "resnet56"):
        for compile_ in (False, True):
            config = resolve(Config(model=model_name, attention="simam", device=str(device), compile=compile_), device)
            torch.manual_seed(0)
            model = build_model(config).to(device, memory_format=torch.channels_last)
            forward = torch.compile(model) if compile_ else model
            optimizer = make_optimizer(model, config)
            scaler = torch.amp.GradScaler("cuda", enabled=config.amp_dtype == "float16")
            criterion = torch.nn.CrossEntropyLoss()
            loader = CifarLoader(images, labels, batch_size=128, shuffle=True, augment=True, drop_last=True,
                                 device=device, channels_last=True)
            batches = iter(loader)
            started = time.perf_counter()
            for _ in range(5):  # compiles on the first step
                loss = train_step(forward, *next(batches), criterion, optimizer, scaler, config.amp_dtype)
            check(torch.isfinite(loss).item(), f"{model_name}: non-finite loss while warming up")
            warmup = time.perf_counter() - started
            torch.cuda.reset_peak_memory_stats(device)
            torch.cuda.synchronize(device)
            started = time.perf_counter()
            for _ in range(iterations):
                loss = train_step(forward, *next(batches), criterion, optimizer, scaler, config.amp_dtype)
            torch.cuda.synchronize(device)
            rate = iterations * 128 / (time.perf_counter() - started)
            check(torch.isfinite(loss).item(), f"{model_name}: non-finite loss")
            # Evaluation is forward only, about a third of a training step's work per image (estimate).
            paper = PAPER.iterations * PAPER.batch_size / rate + PAPER.iterations // PAPER.eval_every * 10_000 / (3 * rate)
            memory = torch.cuda.max_memory_allocated(device) / 2**30
            print(f"| {model_name} + simam, {config.amp_dtype}, channels_last | {compile_} (warm-up {warmup:.0f}s) | "
                  f"{rate:,.0f} | {memory:.2f} | {paper / 60:.0f} min |", flush=True)


def kill_and_resume(root: Path, out: Path) -> str:
    step("3. python -m simam.train: compiled, automatic precision, killed by SIGKILL, resumed")
    command = [sys.executable, "-m", "simam.train", "--recipe", "quick", "--model", "resnet20", "--attention", "simam",
               "--iterations", "1000", "--warmup", "200", "--eval-every", "250", "--checkpoint-every", "250",
               "--device", "cuda", "--data-root", str(root), "--no-progress", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(command, cwd=REPO, env=env)
    deadline = time.monotonic() + 240
    while not (out / "checkpoint.pt").exists():
        check(child.poll() is None, f"the run ended (status {child.returncode}) before its first checkpoint")
        check(time.monotonic() < deadline, "no checkpoint after 240 s")
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    check(child.wait() == -signal.SIGKILL, f"the run ended by itself (status {child.returncode}) before it could be killed")
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    print(f"killed with SIGKILL; checkpoint of iteration {saved['iteration']} kept; resuming", flush=True)
    check(subprocess.run([*command, "--resume"], cwd=REPO, env=env).returncode == 0, "the resumed run failed")
    final = json.loads((out / "final.json").read_text())
    rows = read_metrics(out)
    iterations = [row["iteration"] for row in rows]
    check(iterations == sorted(set(iterations)) and iterations[-1] == 1000, f"metrics.jsonl rows: {iterations}")
    check(final["final_test_accuracy"] > 0.5, f"final test accuracy {final['final_test_accuracy']:.3f} after 1,000 iterations")
    check(final["config"]["compile"] and final["config"]["channels_last"], "the run did not use compile and channels_last")
    print(f"resumed run finished: {100 * final['final_test_accuracy']:.2f}% test accuracy, "
          f"precision {final['config']['amp_dtype']}, rows at {iterations}")
    return final["config"]["amp_dtype"]


def other_precision(root: Path, used: str, out: Path) -> None:
    amp_dtype = "float16" if used == "bfloat16" else "bfloat16"
    step(f"4. {amp_dtype} mixed precision{' with the gradient scaler' if amp_dtype == 'float16' else ''}, eager, NCHW")
    if amp_dtype == "bfloat16":
        print("skipped: this GPU has no native bfloat16, and the trainer never chooses it there")
        return
    config = dataclasses.replace(QUICK, iterations=200, warmup=40, eval_every=200, checkpoint_every=100, data_root=str(root),
                                 device="cuda", amp=True, amp_dtype=amp_dtype, compile=False, channels_last=False, progress=False)
    final = train(config, out)
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    check(final["final_test_accuracy"] > 0.3, f"{amp_dtype}: final test accuracy {final['final_test_accuracy']:.3f} after 200 iterations")
    if amp_dtype == "float16":
        check(saved["scaler"].get("scale", 0) > 0, "the gradient scaler's state was not saved")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", type=Path, default=None, help="folder holding cifar-10-batches-py/ (default $SIMAM_DATA)")
    parser.add_argument("--iterations", type=int, default=50, help="timed training steps per speed measurement (default 50)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(f"gpu_check: no CUDA GPU visible to torch {torch.__version__} (CUDA build {torch.version.cuda}); "
              "this script checks the GPU code paths: run it on a machine with an NVIDIA GPU", file=sys.stderr)
        return 2
    root = args.data_root or data_root()
    if not (root / "cifar-10-batches-py" / "test_batch").is_file():
        print(f"gpu_check: CIFAR-10 not found under {root}; set SIMAM_DATA or pass --data-root", file=sys.stderr)
        return 2
    os.environ["SIMAM_DATA"] = str(root)
    device = torch.device("cuda")
    print(f"{torch.cuda.get_device_name(device)}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
          f"bfloat16 native: {torch.cuda.is_bf16_supported(including_emulation=False)}")
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as folder:
            images, labels = load_cifar(root, "cifar10", train=True)
            loader_on_device(images, labels, device)
            speed(images, labels, device, args.iterations)
            used = kill_and_resume(root, Path(folder) / "killed")
            other_precision(root, used, Path(folder) / "other")
    except Exception as error:  # any failure: say so loudly and fail
        traceback.print_exc()
        print(f"\nGPU CHECK FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    print(f"\nGPU check passed in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
