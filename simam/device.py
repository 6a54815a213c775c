"""The device a run computes on, and what it decides there: the trainer (:mod:`simam.train`) and
the benchmarks (:mod:`simam.bench`) set a run up with the same choices.

:func:`resolve_device` turns ``--device`` into a device of this machine, and :func:`resolve` makes
every automatic (None) choice of a :class:`~simam.config.Config` for it, from the probes below
(:func:`native_bfloat16`, :func:`compile_blocker`, :func:`cpp_compiler_found`).
:func:`cuda_settings` and :func:`deterministic_cublas` set CUDA up for a run, :func:`autocast` its
mixed precision; :func:`describe` and :func:`versions` say where and with what it ran.

**Devices.** CUDA when present, else the CPU (or ``--device``). Each choice below is switchable,
and the trainer prints it when a run starts.

- *Precision.* bfloat16 autocast wherever the hardware computes in bfloat16 natively: GPUs that
  have it (else float16 with a gradient scaler), and CPUs with AVX-512 BF16 or AMX
  (:func:`native_bfloat16`). Other CPUs emulate bfloat16, which is slower than float32, so they
  train in float32. ``python -m simam.bench train`` measures the step as the trainer sets it up,
  ``python -m simam.bench train --config amp=false`` in float32.
- *channels_last.* On for CUDA. Off on the CPU: there it speeds the plain network up but slows
  SimAM's per-channel reductions more, so that ResNet-20 + SimAM trains slower with it
  (``python -m simam.bench train --config channels_last=true`` against the default).
- *torch.compile.* The whole model on CUDA GPUs that Triton, which generates torch.compile's GPU
  kernels, supports: compute capability 7.0 or higher, Triton installed (:func:`compile_blocker`;
  elsewhere the line that starts a run says why not), and never with ``--sync-bn`` under DDP, which
  torch.compile does not trace (:data:`SYNC_BN_COMPILE_BLOCKER`). On the CPU only SimAM's formula
  (``compile_simam``, :func:`simam.attention.simam.simam_compiled`), for runs of at least
  ``COMPILE_SIMAM_FROM`` iterations where a C++ compiler is found: compiling the whole ResNet-20 +
  SimAM took minutes on 2 cores for no faster step, while SimAM alone compiles in seconds and
  takes back most of its share of the step (``python -m simam.bench train`` with ``--config
  compile=true`` or ``--config compile_simam=false`` against the default; ``python -m simam.bench
  compile_simam`` for deeper networks).
- *Threads.* torch's default, one per core. ``--threads`` sets it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.metadata
import importlib.util
import os
import platform
import shutil
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

import simam
from simam.attention import attention_kind
from simam.config import COMPILE_SIMAM_FROM, Config, ConfigError
from simam.settings import data_root, in_ci


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` as a device this machine has.

    ``local_rank``: the process's ``LOCAL_RANK`` under ``torchrun``; ``"auto"`` (with a GPU) and
    ``"cuda"`` then mean that process's own GPU, ``cuda:LOCAL_RANK``.
    """
    if local_rank is not None and name.startswith("cuda:"):
        raise ConfigError(
            f"device {name!r} under torchrun: each process takes the GPU of its LOCAL_RANK; "
            "pass --device cuda (or auto)"
        )
    if local_rank is not None and name in ("auto", "cuda") and torch.cuda.is_available():
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {local_rank}, but this machine has {torch.cuda.device_count()} CUDA "
                "GPU(s): start at most that many processes per node"
            )
        return torch.device("cuda", local_rank)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but this torch ({torch.__version__}) sees no CUDA GPU"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ConfigError(
            f"device {name!r} asked for, but this machine has "
            f"{torch.cuda.device_count()} CUDA GPU(s)"
        )
    return device


def native_bfloat16(device: torch.device) -> bool:
    """Whether ``device`` computes in bfloat16 natively rather than by emulation.

    CUDA: compute capability 8.0 or newer (Ampere on; older GPUs emulate it). CPU: AVX-512 BF16 or
    AMX, and oneDNN allowed to use them (``ONEDNN_MAX_CPU_ISA`` below AVX-512 forbids it).
    """
    if device.type == "cuda":
        return torch.cuda.get_device_capability(device)[0] >= 8
    try:
        cpu_has_it = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
        return cpu_has_it and torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):  # a torch without these probes: assume emulation
        return False


def cpp_compiler_found() -> bool:
    """Whether torch.compile can build CPU kernels here: it needs a C++ compiler
    ($CXX, g++ or clang++)."""
    return any(shutil.which(name) for name in (os.environ.get("CXX", ""), "g++", "clang++") if name)


TRITON_MIN_CAPABILITY = (7, 0)  # the oldest GPUs Triton compiles for: Volta


def triton_blocker(gpu: str, capability: tuple[int, int], triton_found: bool) -> str | None:
    """Why torch.compile cannot generate kernels for the GPU named ``gpu`` of compute ``capability``
    (major, minor), or None where it can. A P100 (6.0) or a K80 (3.7) fails at the first step."""
    if not triton_found:
        return (
            f"Triton, which torch.compile generates GPU kernels with, is not installed (GPU {gpu})"
        )
    if tuple(capability) < TRITON_MIN_CAPABILITY:
        return (
            f"{gpu} has compute capability {capability[0]}.{capability[1]}; Triton, which "
            "torch.compile generates GPU kernels with, needs "
            f"{TRITON_MIN_CAPABILITY[0]}.{TRITON_MIN_CAPABILITY[1]} or higher"
        )
    return None


def compile_blocker(device: torch.device) -> str | None:
    """Why the whole model cannot be compiled on CUDA ``device``, or None (also for the CPU, where
    the trainer compiles only SimAM's formula by default)."""
    if device.type != "cuda":
        return None
    return triton_blocker(
        torch.cuda.get_device_name(device),
        torch.cuda.get_device_capability(device),
        importlib.util.find_spec("triton") is not None,
    )


SYNC_BN_COMPILE_BLOCKER = (
    "SyncBatchNorm under DDP: torch.compile breaks the graph at every SyncBatchNorm and "
    "fails on its collectives (pytorch/pytorch#107372)"
)


def resolve(config: Config, device: torch.device, world_size: int = 1) -> Config:
    """``config`` with every automatic (None) choice made for ``device``, in a launch of
    ``world_size`` processes. With ``sync_bn`` under DDP the whole model trains uncompiled, also
    where ``compile`` asks for it: the line that starts the run says why
    (:data:`SYNC_BN_COMPILE_BLOCKER`)."""
    cuda = device.type == "cuda"
    native_bf16 = native_bfloat16(device)
    amp = (cuda or native_bf16) if config.amp is None else config.amp
    amp_dtype = config.amp_dtype
    if amp and amp_dtype is None:
        amp_dtype = "bfloat16" if native_bf16 or not cuda else "float16"
    if amp and amp_dtype == "float16" and not cuda:
        raise ConfigError("float16 mixed precision needs CUDA; on the CPU use amp_dtype bfloat16")
    blocker = compile_blocker(device)
    if config.compile and blocker:
        raise ConfigError(f"--compile: {blocker}; train without it (--no-compile)")
    compile_model = (cuda and blocker is None) if config.compile is None else config.compile
    if config.sync_bn and world_size > 1:
        compile_model = False
    compile_simam = config.compile_simam
    if compile_simam is None:  # what compiling the whole model already covers, or not worth it
        compile_simam = (
            not compile_model
            and not cuda
            and config.iterations >= COMPILE_SIMAM_FROM
            and attention_kind(config.attention).compiles
            and cpp_compiler_found()
        )
    return dataclasses.replace(
        config,
        device=str(device),
        amp=amp,
        amp_dtype=amp_dtype if amp else None,
        channels_last=cuda if config.channels_last is None else config.channels_last,
        compile=compile_model,
        compile_simam=compile_simam,
        threads=torch.get_num_threads(),
        progress=(sys.stderr.isatty() and not in_ci())
        if config.progress is None
        else config.progress,
        data_root=str(
            data_root() if config.data_root is None else Path(config.data_root).expanduser()
        ),
    )


def why_not_compiled(device: torch.device, compiled: bool, sync_bn_ddp: bool = False) -> str:
    """`` (the reason)`` where the whole model is not compiled because ``device`` cannot be, or
    because it trains with SyncBatchNorm under DDP (``sync_bn_ddp``)."""
    blocker = (
        None
        if compiled
        else compile_blocker(device) or (SYNC_BN_COMPILE_BLOCKER if sync_bn_ddp else None)
    )
    return f" ({blocker})" if blocker else ""


@contextlib.contextmanager
def cuda_settings(deterministic: bool) -> Iterator[None]:
    """cuDNN's autotuning for the length of a run (fixed shapes: it picks the fastest convolutions),
    or with ``deterministic`` PyTorch's deterministic algorithms instead; the process's own settings
    come back afterwards, so a notebook that trains goes on as it was.

    Deterministic mode repeats a run bit for bit on the same GPU and software; it is slower, and an
    operation without a deterministic kernel warns rather than stops the run. cuBLAS also needs
    ``CUBLAS_WORKSPACE_CONFIG``, which :func:`deterministic_cublas` sets before CUDA is first used.
    """
    saved = (
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved[0], saved[1]
        torch.use_deterministic_algorithms(saved[2], warn_only=saved[3])


# a cuBLAS workspace setting under which its results repeat (CUDA 10.2+)
CUBLAS_DETERMINISTIC = ":4096:8"


def deterministic_cublas() -> None:
    """Set ``CUBLAS_WORKSPACE_CONFIG`` for deterministic cuBLAS where it is unset. cuBLAS reads it
    when CUDA first uses it in the process, so where CUDA is already initialised (a notebook that
    used the GPU before) this may come too late, and a warning says how to set it in time."""
    if os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        return
    if torch.cuda.is_initialized():
        warnings.warn(
            "--deterministic: CUDA was initialised in this process before CUBLAS_WORKSPACE_CONFIG "
            "was set, so cuBLAS may have read it unset and matrix products may not repeat bit for "
            "bit. Set it before Python starts "
            f"(export CUBLAS_WORKSPACE_CONFIG={CUBLAS_DETERMINISTIC}) "
            "or before the first use of CUDA in the notebook.",
            RuntimeWarning,
            stacklevel=2,
        )
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = CUBLAS_DETERMINISTIC


def autocast(device: torch.device, amp_dtype: str | None) -> contextlib.AbstractContextManager:
    """Mixed precision on ``device`` in ``amp_dtype``; nothing when that is None."""
    if amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=getattr(torch, amp_dtype))


def describe(device: torch.device) -> str:
    """``device`` in words: the GPU's name and CUDA version, or the CPU's model, cores
    and torch threads."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError, StopIteration):
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        cpu = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    return f"CPU: {cpu}, {os.cpu_count()} logical cores, {torch.get_num_threads()} torch threads"


def versions() -> dict[str, str | None]:
    """The versions of Python, the libraries a run computes with, and CUDA
    and cuDNN where present."""
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": importlib.metadata.version("torchvision"),
        "numpy": np.__version__,
        "simam": simam.__version__,
        "cuda": torch.version.cuda,
        "cudnn": str(torch.backends.cudnn.version()) if torch.cuda.is_available() else None,
    }
