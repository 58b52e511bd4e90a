"""M2PEnc training losses (paper sec. 3.4, stage 1 and stage 3).

* ``L_guid`` is printed as ``1/(H W C_guid) * sum |f - f_hat|``: the L1 mean over the guidance
  map; here also averaged over frames and batch.
* ``L_heat`` as printed in sec. 3.4 (``exp(k_hat)/(H W C_heat) - k``) is garbled and not a
  loss. Sec. 3.2.1 says the heatmaps are trained "by minimizing ... the mean squared error",
  so :func:`heatmap_loss` is the MSE between predicted and target heatmaps.
* Stage 3 combines Champ's pixel loss with ``L_guid``: ``L_total = 0.5 L_pix + 0.5 L_guid``.
The stage-1 weight between ``L_guid`` and ``L_heat`` is not given in the paper; it defaults to 1.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .model import M2PEncOutput

#: Stage-3 weights of the paper: L_total = 0.5 * L_pix + 0.5 * L_guid.
STAGE3_PIXEL_WEIGHT = 0.5
STAGE3_GUIDANCE_WEIGHT = 0.5


def guidance_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_guid: mean absolute error over all guidance values (same shapes)."""
    return F.l1_loss(pred, target)


def heatmap_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_heat: mean squared error over all heatmap values (same shapes)."""
    return F.mse_loss(pred, target)


@dataclass
class M2PEncLoss:
    """Stage-1 loss and its parts (all scalar tensors)."""

    total: torch.Tensor
    guidance: torch.Tensor
    heatmap: torch.Tensor


def m2penc_loss(output: M2PEncOutput, guidance_target: torch.Tensor, heatmap_target: torch.Tensor,
                heatmap_weight: float = 1.0) -> M2PEncLoss:
    """Stage-1 objective ``L_guid + heatmap_weight * L_heat`` for ``(B, C, N, G, G)`` targets."""
    l_guid = guidance_loss(output.guidance, guidance_target)
    l_heat = heatmap_loss(output.heatmaps, heatmap_target)
    return M2PEncLoss(total=l_guid + heatmap_weight * l_heat, guidance=l_guid, heatmap=l_heat)

