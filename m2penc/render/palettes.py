"""Champ's semantic-map palette as data (GUIDANCE_MAPS.md section 3; copied from guidance_palettes.json).

SMPL part ``k`` (``argmax`` of the vertex's 24 skinning weights) is coloured
``cv2.applyColorMap(uint8(10 * k), COLORMAP_VIRIDIS)`` flipped BGR -> RGB; these are those 24 colours.
Part 0 (pelvis) equals viridis(0), which is why Champ blacks out the background with the mask.
The DWPose skeleton colours live in :mod:`..pose.openpose`.
"""
from __future__ import annotations

import torch

from ..errors import InputError

#: RGB bytes of SMPL parts 0 (pelvis) ... 23 (right_hand).
SEMANTIC_PALETTE_RGB: tuple[tuple[int, int, int], ...] = (
    (68, 1, 84), (71, 16, 99), (72, 29, 111), (71, 42, 122), (69, 55, 129), (65, 66, 135),
    (61, 78, 138), (56, 89, 140), (51, 99, 141), (46, 109, 142), (42, 118, 142), (39, 128, 142),
    (35, 137, 142), (32, 146, 140), (30, 156, 137), (33, 165, 133), (40, 174, 128), (53, 183, 121),
    (70, 192, 111), (90, 200, 100), (112, 207, 87), (137, 213, 72), (162, 218, 55), (189, 223, 38),
)
NUM_PARTS = len(SEMANTIC_PALETTE_RGB)
#: Every map's background (Champ masks the semantic map to black; depth/normal backgrounds are black).
BACKGROUND_RGB = (0, 0, 0)


def part_colors(labels: torch.Tensor) -> torch.Tensor:
    """``(V,)`` SMPL part indices 0..23 -> ``(V, 3)`` uint8 RGB palette colours."""
    if labels.ndim != 1 or labels.dtype.is_floating_point:
        raise InputError(f"part labels must be a 1-D integer tensor, got {labels.dtype} {tuple(labels.shape)}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= NUM_PARTS):
        raise InputError(f"part labels must lie in 0..{NUM_PARTS - 1} (SMPL joints), "
                         f"got {int(labels.min())}..{int(labels.max())}")
    palette = torch.tensor(SEMANTIC_PALETTE_RGB, dtype=torch.uint8, device=labels.device)
    return palette[labels.long()]
