"""Fully sharded data parallel (PyTorch's FSDP2, ``torch.distributed.fsdp.fully_shard``) for the engine.

With ``sharding = "fsdp"`` every process keeps 1/N of each parameter, gradient and AdamW moment
(ZeRO-3) instead of a full replica: stage 2 trains two full SD-1.5 U-Nets, whose fp32 weights,
gradients and moments alone take ~14 GiB per replica. Parameters become ``DTensor`` shards; a
unit's full weights are gathered for its forward and backward and freed after.

Why FSDP2 straight from PyTorch rather than through Accelerate's plugin: Accelerate turns its FSDP
plugin off on CPU process groups (its ``MULTI_CPU`` mode has no FSDP), so the same code could not
be tested on gloo; ``fully_shard`` runs on both (NCCL on GPUs, gloo on CPUs) and is what
Accelerate's ``fsdp_version=2`` calls underneath. Accelerate still starts the processes and picks
the device.

Units: the model may say which sub-modules to shard on their own (``model.fsdp_units()``, e.g. the
U-Nets' down/mid/up blocks, so only one block's full weights exist at a time); everything else is
gathered with the root. A unit called through another method than ``forward`` (the VAE's
``encode``) names it, so FSDP gathers it for that call too. FSDP gathers a unit again for its
backward when a gradient reaches the unit's *outputs*; a unit whose gradient arrives through a side
channel (the ReferenceNet's blocks, when trained: through the reference bank their attention
writes) must stay gathered from its forward to its backward (``reshard_after_forward=False``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import nn

#: How the engine replicates or shards the model over processes.
SHARDING = ("ddp", "fsdp")


@dataclass(frozen=True)
class FSDPUnit:
    """A sub-module sharded as its own FSDP unit.

    Attributes:
        module: the sub-module.
        reshard_after_forward: free its gathered weights after its forward (``False``: keep them until
            its backward, for gradients that do not come back through its outputs).
        methods: other methods than ``forward`` that run it (e.g. ``("encode",)``), gathered likewise.
    """

    module: nn.Module
    reshard_after_forward: bool = True
    methods: tuple[str, ...] = ()


def fsdp_units(model: nn.Module) -> list[FSDPUnit]:
    """The sub-modules ``model`` asks to shard as their own units (``model.fsdp_units()``; none by default)."""
    units = getattr(model, "fsdp_units", None)
    return list(units()) if callable(units) else []


def shard_model(model: nn.Module, device: torch.device, num_processes: int,
                units: Iterable[FSDPUnit] = ()) -> nn.Module:
    """Shard ``model`` (already on ``device``) in place over ``num_processes``: each unit, then the root.

    Returns the same module object (FSDP2 swaps its class); its parameters are ``DTensor`` shards.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard, register_fsdp_forward_method

    mesh = init_device_mesh(device.type, (num_processes,))
    for unit in units:
        fully_shard(unit.module, mesh=mesh, reshard_after_forward=unit.reshard_after_forward)
        for method in unit.methods:
            register_fsdp_forward_method(unit.module, method)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(tensor: torch.Tensor) -> bool:
    from torch.distributed.tensor import DTensor

    return isinstance(tensor, DTensor)


def local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a ``DTensor`` (a plain tensor as it is)."""
    return tensor.to_local() if is_sharded(tensor) else tensor


def full(tensor: torch.Tensor) -> torch.Tensor:
    """The whole tensor (a collective for a ``DTensor``: every process must call it, in the same order)."""
    return tensor.full_tensor() if is_sharded(tensor) else tensor


def shard_like(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``value`` (the whole tensor, same on every process) cut as ``like`` is cut; no communication.

    A plain ``like`` gives ``value`` on ``like``'s device and dtype.
    """
    value = value.to(device=like.device, dtype=like.dtype)
    if not is_sharded(like):
        return value
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(value, like.device_mesh, like.placements, src_data_rank=None)


def local_like(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A saved shard ``value`` (this process's part of a tensor shaped like ``like``) as a ``DTensor`` like ``like``.

    A plain ``like`` gives ``value`` on ``like``'s device.
    """
    value = value.to(device=like.device)
    return _from_local(value, like) if is_sharded(like) else value


def _from_local(value: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    from torch.distributed.tensor import DTensor

    return DTensor.from_local(value, like.device_mesh, like.placements, shape=like.shape, stride=like.stride(),
                              run_check=False)
