"""Process-group bookkeeping for torchrun: one process per device, rank 0 writes and logs."""

from __future__ import annotations

import hashlib
import os
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn as nn

from .._runtime import resolve_device
from .config import world_size


def _parameters_digest(model: nn.Module) -> bytes:
    """SHA-256 of every parameter's bytes, in name order: equal digests mean bit-identical weights."""
    h = hashlib.sha256()
    for _, t in sorted(model.named_parameters()):
        h.update(t.detach().float().cpu().contiguous().numpy().tobytes())
    return h.digest()


class Distributed:
    """The process group of a torchrun launch; a single process is world size 1, rank 0, and no group."""

    def __init__(self, device: str) -> None:
        self.world = world_size()
        self.rank, self.local_rank = 0, 0
        self.device = resolve_device(device)
        if self.world > 1:
            self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
            if self.device.type == "cuda":
                torch.cuda.set_device(self.local_rank)
                self.device = torch.device("cuda", self.local_rank)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self.rank = dist.get_rank()

    @property
    def main(self) -> bool:
        """Whether this process is the one that evaluates, writes checkpoints and logs."""
        return self.rank == 0

    def wrap(self, model: nn.Module) -> nn.Module:
        """``model`` behind DistributedDataParallel when there are several processes (the same module otherwise)."""
        if self.world == 1:
            return model
        return nn.parallel.DistributedDataParallel(
            model, device_ids=[self.local_rank] if self.device.type == "cuda" else None
        )

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def sync_buffers(self, model: nn.Module) -> None:
        """Give every rank rank 0's BatchNorm statistics, as DDP does at the start of each forward;
        without this each rank keeps the statistics of its own last batch."""
        if self.world > 1:
            for buffer in model.buffers():
                dist.broadcast(buffer, src=0)

    def replicas_identical(self, model: nn.Module) -> Optional[bool]:
        """Whether every rank holds bit-identical parameters (a check that DDP really synchronised)."""
        if self.world == 1:
            return None
        digest = torch.tensor(list(_parameters_digest(model)), dtype=torch.uint8)
        gathered = [torch.empty_like(digest) for _ in range(self.world)]
        dist.all_gather(gathered, digest)
        return all(torch.equal(g, gathered[0]) for g in gathered)

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
