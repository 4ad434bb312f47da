"""Data-parallel training under torchrun (gloo on CPU, nccl on GPU); a no-op in a single process."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist


@dataclass
class Distributed:
    enabled: bool = False
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @classmethod
    def setup(cls) -> Distributed:
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls()
        if not torch_dist.is_initialized():
            torch_dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return cls(True, torch_dist.get_rank(), int(os.environ.get("LOCAL_RANK", "0")), torch_dist.get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        if not self.enabled:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)

    def no_sync_unless(self, wrapped: torch.nn.Module, sync: bool):
        """Skip the gradient all-reduce on all but the last micro-batch of a step."""
        if self.enabled and not sync:
            return wrapped.no_sync()
        return contextlib.nullcontext()

    def all_reduce_sum(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64)
        torch_dist.all_reduce(t)
        return float(t.item())

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def teardown(self) -> None:
        if self.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
