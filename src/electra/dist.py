"""Distributed setup from the torchrun environment (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR/PORT`); without
it a single process. NCCL on CUDA, gloo on CPU."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as td

from electra.errors import ElectraError


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def env_rank() -> int:
    return int(os.environ.get("RANK", 0))


def pick_device(name: str = "auto", local_rank: int = 0) -> torch.device:
    """`auto`: this process's GPU if there is one, else CPU; or an explicit `cpu` / `cuda` / `cuda:N` / `mps`."""
    if name == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ElectraError(f"device {name!r} requested but CUDA is not available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def init_from_env(device: str = "auto", timeout_minutes: float = 30.0) -> DistInfo:
    """Join the process group torchrun describes (if any) and choose this process's device."""
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = pick_device(device, local_rank)
    if world > 1 and not td.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        backend = "nccl" if dev.type == "cuda" else "gloo"
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        td.init_process_group(
            backend, rank=rank, world_size=world, timeout=timedelta(minutes=timeout_minutes), **kwargs
        )
    return DistInfo(rank, world, local_rank, dev)


def print0(*args, **kwargs) -> None:
    """print on the main process only."""
    if env_rank() == 0:
        print(*args, **kwargs)


def barrier(info: DistInfo) -> None:
    if info.distributed:
        if info.device.type == "cuda":
            td.barrier(device_ids=[info.device.index])
        else:
            td.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """In-place sum over all processes (a no-op in a single process); returns the tensor."""
    if info.distributed:
        td.all_reduce(tensor, op=td.ReduceOp.SUM)
    return tensor


def cleanup() -> None:
    if td.is_available() and td.is_initialized():
        td.destroy_process_group()
