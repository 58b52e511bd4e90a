"""Champ's depth, normal, semantic and mask maps from rasterised fragments (GUIDANCE_MAPS.md sections 1-3).

Exactly what Champ's Blender pass writes, minus Cycles' +-1 LSB dither:

* **depth** (section 2): camera z of the visible surface, normalised per frame over the visible body
  only: nearest = 255, farthest = 0, background = 0; linear in z; one channel (``gray_to_rgb`` for
  the encoder, whose loader calls ``.convert("RGB")``).
* **normal** (section 1): smooth shading - area-weighted vertex normals interpolated with
  perspective-correct barycentrics and renormalised (Cycles' smooth normal) - in OpenCV camera
  coordinates, ``R = (1 + nx)/2, G = (1 - ny)/2, B = (1 - nz)/2``; camera-facing = (128, 128, 255).
* **semantic** (section 3): per-vertex palette colours (:mod:`.palettes`), interpolated across each
  triangle. Cycles converts byte colour attributes to linear light before interpolating and the
  Standard view converts back to sRGB, so blending at part borders happens in linear light here too;
  inside a part the palette comes out exactly. Background black (Champ masks it).
* **mask** (section 3): {0, 255}, hard edges (1 sample per pixel).

Floats become bytes as Blender does, ``floor(255 v + 0.5)`` clamped. Maps are uint8 ``(B, H, W[, 3])``;
:func:`to_image` gives ComfyUI's IMAGE layout, float32 ``(B, H, W, 3)`` in [0, 1] on the /255 grid.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import InputError
from .rasterize import Fragments


def vertex_normals(vertices: torch.Tensor, faces: torch.Tensor) -> torch.Tensor:
    """Area-weighted unit vertex normals: ``(B, V, 3)`` vertices, ``(F, 3)`` faces -> ``(B, V, 3)`` float32.

    Each face adds ``(v1 - v0) x (v2 - v0)`` (twice its area along its outward normal) to its corners.
    """
    v = vertices.float()
    faces = faces.to(v.device, torch.long)
    v0, v1, v2 = (v[:, faces[:, k]] for k in range(3))
    face_n = torch.linalg.cross(v1 - v0, v2 - v0)                       # (B, F, 3)
    out = torch.zeros_like(v)
    for k in range(3):
        out.index_add_(1, faces[:, k], face_n)
    return F.normalize(out, dim=-1)


def interpolate(fragments: Fragments, faces: torch.Tensor, attributes: torch.Tensor) -> torch.Tensor:
    """Per-vertex ``attributes`` ``(B, V, C)`` (or ``(V, C)`` shared by the batch) at the covered pixels -> ``(P, C)``."""
    faces = faces.to(fragments.pixels.device, torch.long)
    corners = faces.index_select(0, fragments.visible_face)              # (P, 3) vertex indices
    attrs = attributes.float()
    if attrs.ndim == 3:
        corners = corners + (fragments.batch_index * attrs.shape[1])[:, None]
        attrs = attrs.reshape(-1, attrs.shape[-1])
    values = attrs.index_select(0, corners.reshape(-1)).view(*corners.shape, attrs.shape[-1])
    return torch.einsum("pk,pkc->pc", fragments.bary, values)


def to_byte(values: torch.Tensor) -> torch.Tensor:
    """Floats in [0, 1] -> uint8 as Blender writes 8-bit images: ``floor(255 v + 0.5)``, clamped."""
    return torch.floor(values * 255.0 + 0.5).clamp_(0, 255).to(torch.uint8)


def _scatter(fragments: Fragments, values: torch.Tensor) -> torch.Tensor:
    """``(P, C)`` uint8 at the covered pixels -> ``(B, H, W, C)`` uint8 on a black background."""
    b, h, w = fragments.face.shape
    out = torch.zeros(b * h * w, values.shape[-1], dtype=torch.uint8, device=values.device)
    out.index_copy_(0, fragments.pixels, values)
    return out.view(b, h, w, values.shape[-1])


def depth_map(fragments: Fragments) -> torch.Tensor:
    """``(B, H, W)`` uint8: per-frame linear depth, nearest visible 255, farthest visible 0, background 0.

    A frame whose visible surface has a single depth is 255 wherever it is visible.
    """
    b = fragments.face.shape[0]
    frame, z = fragments.batch_index, fragments.depth
    near = torch.full((b,), float("inf"), device=z.device).scatter_reduce(0, frame, z, "amin")
    far = torch.full((b,), float("-inf"), device=z.device).scatter_reduce(0, frame, z, "amax")
    span = (far - near).index_select(0, frame)
    value = torch.where(span > 0, (far.index_select(0, frame) - z) / span.clamp(min=1e-30), torch.ones_like(z))
    return _scatter(fragments, to_byte(value)[:, None])[..., 0]


def normal_map(fragments: Fragments, faces: torch.Tensor, normals: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 normal map from camera-space unit vertex normals ``(B, V, 3)`` (OpenCV axes)."""
    n = F.normalize(interpolate(fragments, faces, normals), dim=-1)
    rgb = torch.stack([1 + n[:, 0], 1 - n[:, 1], 1 - n[:, 2]], dim=-1) * 0.5
    return _scatter(fragments, to_byte(rgb))


def srgb_to_linear(c: torch.Tensor) -> torch.Tensor:
    """sRGB-encoded values in [0, 1] -> linear light (IEC 61966-2-1)."""
    return torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] -> sRGB encoding (inverse of :func:`srgb_to_linear`)."""
    c = c.clamp(0, 1)
    return torch.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def semantic_map(fragments: Fragments, faces: torch.Tensor, colors: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, 3)`` uint8 semantic map from per-vertex sRGB byte colours ``(V, 3)`` or ``(B, V, 3)``."""
    if colors.dtype != torch.uint8:
        raise InputError(f"vertex colours must be uint8 sRGB bytes (see palettes.part_colors), got {colors.dtype}")
    linear = srgb_to_linear(colors.float() / 255.0)
    return _scatter(fragments, to_byte(linear_to_srgb(interpolate(fragments, faces, linear))))


def mask_map(fragments: Fragments) -> torch.Tensor:
    """``(B, H, W)`` uint8: 255 where the body is visible, else 0."""
    return fragments.mask.to(torch.uint8) * 255


def gray_to_rgb(gray: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` single-channel map -> ``(B, H, W, 3)`` (what ``PIL .convert("RGB")`` does)."""
    return gray[..., None].expand(*gray.shape, 3)


def to_image(maps: torch.Tensor) -> torch.Tensor:
    """uint8 ``(B, H, W, 3)`` or ``(B, H, W)`` -> ComfyUI IMAGE float32 ``(B, H, W, 3)`` = bytes / 255."""
    if maps.dtype != torch.uint8:
        raise InputError(f"to_image expects uint8 maps, got {maps.dtype}")
    if maps.ndim == 3:
        maps = gray_to_rgb(maps)
    return maps.float().div_(255.0)
