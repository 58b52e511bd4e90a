"""Reference attention (MagicAnimate/Champ "ReferenceNet"), as diffusers attention processors.

Champ monkey-patches the ``forward`` of every spatial transformer block. We get the same maths
from diffusers' processor hook instead, with the per-call state passed explicitly through
``cross_attention_kwargs={"reference": ...}`` (no global mode flags):

* **write** (:class:`ReferenceWrite`, ReferenceNet, run once at timestep 0): every spatial
  ``attn1`` stores its input - the block's ``norm1`` output, ``(B, L, C)`` - in a bank keyed by
  the block's module path, cast to the bank dtype (Champ casts to float16, even in fp32 runs).
  Detached by default; training the ReferenceNet keeps the graph (``detach=False``), as Champ's
  training does (the cast is differentiable).
* **read** (:class:`ReferenceRead`, denoising U-Net): ``attn1`` of the block with the same path
  uses query ``n = norm1(x)`` and keys/values ``cat([n, bank], tokens)``, the bank being
  broadcast over the frames. The bank holds one entry shared by every batch element (inference)
  or one per batch element (training: each sample its own reference). Batch elements flagged
  ``False`` in ``use_reference`` (the CFG unconditional branch, training's condition dropout)
  run plain self-attention instead.

Pairing blocks by module path equals Champ's pairing (each U-Net's blocks in registration order,
stable-sorted by width, zipped) because both U-Nets have the same spatial layout and
registration order (down, up, mid).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Union

import torch
from diffusers.models.attention import BasicTransformerBlock
from diffusers.models.attention_processor import Attention, AttnProcessor2_0
from torch import nn

from ..errors import InputError


class ReferenceWrite:
    """Write-mode context: ``bank[block_path] = attn1 input (B, L, C)`` in ``dtype``.

    A plain class on purpose, not a dataclass: wrappers that rebuild the dataclasses and dicts in
    a module's inputs (FSDP2 does, to hook the tensors needing gradients) would hand later blocks
    a copy, and their writes would be lost.

    Attributes:
        dtype: dtype the bank is stored in (Champ: float16).
        bank: filled by the pass.
        detach: store the inputs detached (inference); ``False`` keeps the autograd graph so a
            loss on the denoiser trains the ReferenceNet.
        closed: set after the pass; a closed writer stores nothing (a gradient-checkpointing
            recomputation of the ReferenceNet in the backward pass must not replace the bank the
            denoiser has read).
    """

    def __init__(self, dtype: torch.dtype = torch.float16, detach: bool = True) -> None:
        self.dtype, self.detach = dtype, detach
        self.bank: dict[str, torch.Tensor] = {}
        self.closed = False

    def __repr__(self) -> str:
        return (f"ReferenceWrite(dtype={self.dtype}, detach={self.detach}, closed={self.closed}, "
                f"blocks={sorted(self.bank)})")


@dataclass
class ReferenceRead:
    """Read-mode context.

    Attributes:
        bank: block path -> reference tokens written by the ReferenceNet: ``(1, L_ref, C)``
            shared by every batch element, or ``(B, L_ref, C)`` with one entry per batch element
            of the denoiser call (entries of unflagged elements are never read).
        use_reference: one flag per batch element of the denoiser call (before frames are folded
            into the batch); ``False`` means plain self-attention (CFG unconditional rows).
    """

    bank: Mapping[str, torch.Tensor]
    use_reference: tuple[bool, ...]


ReferenceContext = Union[ReferenceWrite, ReferenceRead, None]


def row_runs(use_reference: tuple[bool, ...], rows: int) -> list[tuple[int, int, bool]]:
    """Contiguous ``(start, stop, flag)`` row ranges of the ``(B F)`` rows seen inside the U-Net.

    Batch element ``b`` owns rows ``[b F, (b + 1) F)``; neighbours with the same flag merge, so
    CFG's ``(False,) * B + (True,) * B`` is two slices. Plain Python: no device sync.
    """
    if rows % len(use_reference):
        raise InputError(f"{rows} attention rows cannot be split into {len(use_reference)} batch elements")
    per = rows // len(use_reference)
    runs: list[tuple[int, int, bool]] = []
    for b, flag in enumerate(use_reference):
        if runs and runs[-1][2] == flag:
            runs[-1] = (runs[-1][0], (b + 1) * per, flag)
        else:
            runs.append((b * per, (b + 1) * per, flag))
    return runs


class ReferenceAttnProcessor:
    """Self-attention processor of one spatial block that writes or reads the reference bank."""

    def __init__(self, block_path: str) -> None:
        self.block_path = block_path
        self._sdpa = AttnProcessor2_0()

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        temb: Optional[torch.Tensor] = None,
        reference: ReferenceContext = None,
    ) -> torch.Tensor:
        """``hidden_states``: ``(N, L, C)`` = ``norm1(x)``; returns the attention output ``(N, L, C)``."""
        if isinstance(reference, ReferenceWrite) and not reference.closed:
            stored = hidden_states.detach() if reference.detach else hidden_states
            reference.bank[self.block_path] = stored.to(reference.dtype)
        if not isinstance(reference, ReferenceRead):
            return self._sdpa(attn, hidden_states, None, attention_mask)
        return self._read(attn, hidden_states, reference)

    def _read(self, attn: Attention, hidden_states: torch.Tensor, reference: ReferenceRead) -> torch.Tensor:
        if self.block_path not in reference.bank:
            raise InputError(f"the reference bank has no entry for block {self.block_path!r}")
        entries = reference.bank[self.block_path]
        batch = len(reference.use_reference)
        if entries.shape[0] not in (1, batch):
            raise InputError(f"the reference bank of block {self.block_path!r} has {entries.shape[0]} entries for "
                             f"{batch} batch elements; write one shared entry or one per batch element")
        per = hidden_states.shape[0] // batch
        parts = []
        for start, stop, with_reference in row_runs(reference.use_reference, hidden_states.shape[0]):
            query = hidden_states[start:stop]
            if with_reference:
                if entries.shape[0] == 1:
                    bank = entries.to(query.dtype).expand(query.shape[0], -1, -1)
                else:   # batch element b owns rows [b F, (b + 1) F): its entry repeated over its frames
                    bank = entries[start // per:stop // per].to(query.dtype).repeat_interleave(per, dim=0)
                parts.append(self._sdpa(attn, query, torch.cat([query, bank], dim=1)))
            else:
                parts.append(self._sdpa(attn, query, None))
        return parts[0] if len(parts) == 1 else torch.cat(parts)


class CrossAttnProcessor(AttnProcessor2_0):
    """diffusers' SDPA processor that accepts (and ignores) the ``reference`` keyword."""

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        temb: Optional[torch.Tensor] = None,
        reference: ReferenceContext = None,
    ) -> torch.Tensor:
        """Plain (cross-)attention; shapes as in :class:`AttnProcessor2_0`."""
        return super().__call__(attn, hidden_states, encoder_hidden_states, attention_mask, temb)


def spatial_blocks(unet: nn.Module) -> dict[str, BasicTransformerBlock]:
    """The spatial transformer blocks of a U-Net by module path (motion modules excluded)."""
    return {
        name: module
        for name, module in unet.named_modules()
        if isinstance(module, BasicTransformerBlock) and ".attentions." in f".{name}"
    }


def install_reference_processors(unet: nn.Module) -> None:
    """Give every spatial block a bank-aware ``attn1`` and a keyword-tolerant ``attn2``."""
    for path, block in spatial_blocks(unet).items():
        block.attn1.set_processor(ReferenceAttnProcessor(path))
        if block.attn2 is not None:
            block.attn2.set_processor(CrossAttnProcessor())
