"""Several processes, one training: the few pieces of ``torch.distributed`` the trainer uses.

``torchrun`` (``python -m torch.distributed.run``) starts one process per GPU (or per CPU slot) and
tells each one who it is through environment variables: ``RANK`` (0 to ``WORLD_SIZE - 1`` over all
nodes), ``LOCAL_RANK`` (its index on its node, which picks its GPU) and ``WORLD_SIZE``, plus where
to meet the others. :func:`launch` reads them; :func:`process_group` joins the group for the length
of a run (NCCL between GPUs, gloo between CPU processes) and leaves it afterwards, also on errors.

Without ``torchrun`` (``WORLD_SIZE`` unset or 1) there is no process group and every reduction here
returns its input untouched, so a single process computes exactly what it computes without this
module.

A rank whose process ends with an error, before the group forms or in the middle of training, is
``torchrun``'s to handle: its agent stops the other ranks within seconds rather than leaving them
in a collective. :func:`fail_together` is for errors a rank catches and every rank should report
the same way (a configuration error printed once per rank, not a wall of timeouts). A launcher
without such an agent (ranks started by hand) leaves the others waiting until the collective's
timeout.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Launch:
    """Where this process stands in a ``torchrun`` launch (rank 0 of 1 without one)."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """The process that writes files and prints: rank 0."""
        return self.rank == 0


def launch() -> Launch:
    """This process's rank, local rank and world size: from the process group when one exists,
    else from ``torchrun``'s environment variables. Raises ``ValueError`` for inconsistent ones."""
    if dist.is_available() and dist.is_initialized():
        return Launch(
            dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_world_size()
        )
    names = ("RANK", "LOCAL_RANK", "WORLD_SIZE")
    try:
        rank, local_rank, world_size = (
            int(os.environ.get(name, "1" if name == "WORLD_SIZE" else "0")) for name in names
        )
    except ValueError:
        raise ValueError(
            "RANK, LOCAL_RANK and WORLD_SIZE must be integers: "
            + ", ".join(f"{name}={os.environ.get(name)!r}" for name in names)
        ) from None
    if world_size < 1 or not 0 <= rank < world_size or local_rank < 0:
        raise ValueError(
            f"inconsistent launch: RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={world_size}"
        )
    return Launch(rank, local_rank, world_size)


def backend_for(device: torch.device) -> str:
    """NCCL between GPUs, gloo between CPU processes."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[str | None]:
    """Join the process group of a ``torchrun`` launch for the ``with`` block; yield its backend.

    Yields None outside a multi-process launch. A group that already exists (made by the caller)
    is used and left for the caller to destroy; a group made here is destroyed on leaving, also
    when the block raises, so a failed run does not leave the other processes' rendezvous behind.
    """
    if not launch().distributed:
        yield None
        return
    if dist.is_initialized():
        yield dist.get_backend()
        return
    backend = backend_for(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # NCCL and the object broadcasts use the current device
    dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    try:
        yield backend
    finally:
        dist.destroy_process_group()


def is_distributed() -> bool:
    """Whether a process group of more than one process is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Replace ``tensor`` in place by its sum over all ranks (every rank gets the same bits)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """Replace floating-point ``tensor`` in place by its mean over all ranks."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(dist.get_world_size())
    return tensor


def broadcast_object(value: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``value`` (any picklable object, tensors on the CPU) on every rank."""
    if not is_distributed():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(value: Any) -> list[Any]:
    """Every rank's ``value`` (any picklable object), in rank order; ``[value]`` in one process."""
    if not is_distributed():
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered


class RankFailed(RuntimeError):
    """Another rank failed in a block run with :func:`fail_together`; this one stops with it."""


@contextlib.contextmanager
def fail_together(shared: tuple[type[Exception], ...] = ()) -> Iterator[None]:
    """Run the ``with`` block on every rank, then stop every rank if it raised on any.

    Without this, a rank that fails leaves the others waiting in their next collective until the
    process group's timeout (NCCL's: ten minutes or more). Here every rank reports how its block
    ended, in one collective every rank reaches: a failed rank raises its own exception, and the
    others an exception of the same type for the ``shared`` types (its message kept, as for a
    configuration error that every rank should print) or :class:`RankFailed` naming the rank and
    its error. The block itself must not run collectives: a rank that failed before them would
    leave the others waiting there.
    """
    failure: Exception | None = None
    try:
        yield
    except Exception as error:  # reported to the other ranks, then raised again
        failure = error
    if not is_distributed():
        if failure is not None:
            raise failure
        return
    kind = (
        None
        if failure is None
        else next((i for i, kind in enumerate(shared) if isinstance(failure, kind)), None)
    )
    reports = all_gather_object(
        None if failure is None else (kind, type(failure).__name__, str(failure))
    )
    if failure is not None:
        raise failure
    for rank, report in enumerate(reports):
        if report is not None:
            kind, name, message = report
            if kind is not None:
                raise shared[kind](message)
            raise RankFailed(f"rank {rank} failed, so this rank stops too: {name}: {message}")


def rank_seed(seed: int, rank: int) -> int:
    """The seed of rank ``rank``'s own random stream (dropout masks, for one): ``seed`` itself on
    rank 0, so that a run of one process draws what it draws without DDP, and on the other ranks
    a stream that NumPy's ``SeedSequence`` derives from ``(seed, rank)``, independent of the
    others."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, dtype=np.uint64)[0]) >> 1


def broadcast_buffers_(module: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (batch-norm running statistics) into ``module`` on every rank."""
    if is_distributed():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=src)
