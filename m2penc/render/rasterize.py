"""A batched z-buffer triangle rasteriser in plain torch: headless, CPU or CUDA, no extra packages.

Why our own: Champ's maps come from Blender Cycles at 1 sample per pixel, i.e. hard edges and no
anti-aliasing, so a z-buffer sampled once at every pixel centre ``(x + 0.5, y + 0.5)`` reproduces
them; pulling in pyrender/OpenGL or nvdiffrast would need a display or a GPU.

How (all vectorised; Python loops only over a handful of tile-size buckets and memory chunks):

1. Per triangle: screen bounding box clamped to the image, signed area (back faces and triangles
   off-screen, degenerate or behind the near plane are dropped), and the barycentric edge functions
   as planes relative to the box corner, plus the plane of ``1/z`` (linear in screen space).
2. Triangles are bucketed by box size into tiles of ``4 * 2^k`` x ``4 * 2^m`` pixels, and each bucket
   tests all its (triangle, tile cell) pairs at once by broadcasting the planes over the tile - no
   per-pair gathers, which cost more than the arithmetic on a CPU. Chunks bound the memory.
3. Inside test on the barycentric planes, then per pixel the largest ``1/z`` (nearest surface)
   by ``scatter_reduce(amax)`` on an int64 key ``(float bits of 1/z) << 32 | triangle``: one pass,
   deterministic (ties go to the higher triangle), chunk-friendly.
4. Covered pixels only: barycentrics recomputed for the winning triangle and made perspective-correct
   (``b_i = l_i / z_i / sum_j l_j / z_j``).

Everything is computed in float32 whatever the input dtype (fp16 vertices are upcast first; their own
rounding stays, so transform world to camera in fp32 - 40 m away fp16 has 3 cm depth steps).
Screen convention: pixel ``(i, j)`` covers ``[i, i+1) x [j, j+1)``, so an OpenCV camera with
``cx = W/2`` has its optical axis exactly at the image centre, as Champ's Blender camera does.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import InputError

#: Candidate (triangle, tile cell) pairs handled at once; ~30 bytes each at the peak.
DEFAULT_MAX_PAIRS = 1 << 22
#: Triangles with a vertex nearer than this (camera z, scene units) are dropped (Blender's clip start).
DEFAULT_NEAR = 0.05
_FACE_BITS = 32
#: A pixel centre counts as inside when every barycentric is >= -this: no cracks between triangles
#: sharing an edge through a pixel centre (each evaluates its own planes, so rounding differs).
_EDGE_EPS = 1e-6
#: ... but never more than this many pixels outside an edge: a barycentric tolerance is a distance
#: of up to ``tolerance * longest side``, so triangles longer than 10^4 px (a vertex near the
#: camera plane) get a smaller one; otherwise a 10^6 px triangle would bleed a pixel past its edges.
_EDGE_BLEED_PX = 0.01
#: Smallest candidate tile side; tiles double per side up to the box size.
_MIN_TILE = 4


@dataclass
class Fragments:
    """What is visible at each pixel of a ``(B, H, W)`` batch; the covered pixels stored sparsely.

    Attributes:
        face: ``(B, H, W)`` long, face index into ``faces`` (``-1`` = background).
        pixels: ``(P,)`` long, flat indices ``b*H*W + y*W + x`` of the P covered pixels, ascending.
        visible_face: ``(P,)`` long, the face seen at each covered pixel.
        bary: ``(P, 3)`` float32 perspective-correct barycentrics of the pixel centre.
        depth: ``(P,)`` float32 camera z of the visible surface at the pixel centre.
    """

    face: torch.Tensor
    pixels: torch.Tensor
    visible_face: torch.Tensor
    bary: torch.Tensor
    depth: torch.Tensor

    @property
    def mask(self) -> torch.Tensor:
        """``(B, H, W)`` bool, True where a face is visible."""
        return self.face >= 0

    @property
    def batch_index(self) -> torch.Tensor:
        """``(P,)`` frame index of every covered pixel."""
        b, h, w = self.face.shape
        return torch.div(self.pixels, h * w, rounding_mode="floor")

    def dense_bary(self) -> torch.Tensor:
        """``(B, H, W, 3)`` float32 barycentrics, zero where nothing is visible."""
        out = torch.zeros(*self.face.shape, 3, dtype=torch.float32, device=self.face.device)
        out.view(-1, 3)[self.pixels] = self.bary
        return out

    def dense_depth(self, background: float = 0.0) -> torch.Tensor:
        """``(B, H, W)`` float32 camera z, ``background`` where nothing is visible."""
        out = torch.full(self.face.shape, background, dtype=torch.float32, device=self.face.device)
        out.view(-1)[self.pixels] = self.depth
        return out


@dataclass
class _Triangles:
    """The T triangles that may cover a pixel centre; 1-D tensors of length T unless noted."""

    tri: torch.Tensor        # flat index b*F + f into the batch's faces
    origin: torch.Tensor     # flat pixel index b*H*W + y0*W + x0 of the box's first pixel
    box_w: torch.Tensor      # box size in pixels (long)
    box_h: torch.Tensor
    planes: torch.Tensor     # (9, T): l0 = c0 + a0 dx + b0 dy, l1 likewise, 1/z likewise; dx, dy from the box corner
    inv_z: torch.Tensor      # (3, T): 1/z at the three corners
    clipped: torch.Tensor    # bool: the box touches or crosses the image border
    tolerance: torch.Tensor  # inside test: every barycentric >= -tolerance


def _check(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int) -> None:
    if screen.ndim != 3 or screen.shape[-1] != 3:
        raise InputError(f"screen vertices must be (batch, vertices, 3) [x_px, y_px, z], got {tuple(screen.shape)}")
    if faces.ndim != 2 or faces.shape[-1] != 3 or faces.dtype not in (torch.int32, torch.int64):
        raise InputError(f"faces must be an integer (faces, 3) tensor, got {faces.dtype} {tuple(faces.shape)}")
    if height < 1 or width < 1:
        raise InputError(f"image size must be positive, got {width}x{height}")


def _triangles(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int,
               cull_backfaces: bool, near: float) -> _Triangles:
    """Set up every triangle that can cover a pixel centre (see the module docstring, step 1)."""
    b, f = screen.shape[0], faces.shape[0]
    x, y, z = screen[:, faces.reshape(-1)].reshape(b * f, 3, 3).permute(2, 1, 0)   # each (3 corners, B*F)
    area = (x[1] - x[0]) * (y[2] - y[0]) - (y[1] - y[0]) * (x[2] - x[0])
    # Pixel centres c + 0.5 inside [min, max]  <=>  ceil(min - 0.5) <= c <= floor(max - 0.5).
    x0, x1 = torch.ceil(x.amin(0) - 0.5), torch.floor(x.amax(0) - 0.5)
    y0, y1 = torch.ceil(y.amin(0) - 0.5), torch.floor(y.amax(0) - 0.5)
    clipped = ((x0 <= 0) | (y0 <= 0) | (x1 >= width - 1) | (y1 >= height - 1)).float()
    x0, x1, y0, y1 = x0.clamp(min=0), x1.clamp(max=width - 1), y0.clamp(min=0), y1.clamp(max=height - 1)
    keep = (z.amin(0) > near) & (x1 >= x0) & (y1 >= y0) & torch.isfinite(area)
    # OpenCV screen (y down): a face whose outward normal points at the camera has negative area.
    keep &= (area < 0) if cull_backfaces else (area != 0)
    tri = keep.nonzero().squeeze(1)
    table = torch.cat([x, y, z, torch.stack([area, x0, x1, y0, y1, clipped])]).index_select(1, tri)
    x, y, z, (area, x0, x1, y0, y1, clipped) = table[0:3], table[3:6], table[6:9], table[9:]
    # Corners relative to the box's first pixel centre keep the plane constants small (fp32 safe).
    ox, oy = x - (x0 + 0.5), y - (y0 + 0.5)
    inv_area = 1.0 / area
    # l0 = area(p, p1, p2) / area, l1 = area(p0, p, p2) / area, as planes c + a*dx + b*dy.
    a0, b0 = (y[1] - y[2]) * inv_area, (x[2] - x[1]) * inv_area
    c0 = (ox[1] * oy[2] - oy[1] * ox[2]) * inv_area
    a1, b1 = (y[2] - y[0]) * inv_area, (x[0] - x[2]) * inv_area
    c1 = (ox[2] * oy[0] - oy[2] * ox[0]) * inv_area
    iz = 1.0 / z                                                         # 1/z is linear in screen space
    d0, d1 = iz[0] - iz[2], iz[1] - iz[2]
    planes = torch.stack([c0, a0, b0, c1, a1, b1, iz[2] + c0 * d0 + c1 * d1, a0 * d0 + a1 * d1, b0 * d0 + b1 * d1])
    frame = torch.div(tri, f, rounding_mode="floor")
    origin = frame * (height * width) + y0.long() * width + x0.long()
    longest = torch.stack([torch.hypot(x[k] - x[k - 1], y[k] - y[k - 1]) for k in range(3)]).amax(0)
    tolerance = (_EDGE_BLEED_PX / longest).clamp(max=_EDGE_EPS)
    return _Triangles(tri, origin, (x1 - x0 + 1).long(), (y1 - y0 + 1).long(), planes, iz, clipped > 0, tolerance)


def _buckets(tris: _Triangles) -> list[tuple[torch.Tensor, int, int, bool]]:
    """Group triangles by box size and clipping: ``(indices, tile_h, tile_w, clipped)``, tiles ``4 * 2^k`` px >= the box."""
    kx = torch.ceil(torch.log2(tris.box_w.float().clamp(min=_MIN_TILE) / _MIN_TILE)).long()
    ky = torch.ceil(torch.log2(tris.box_h.float().clamp(min=_MIN_TILE) / _MIN_TILE)).long()
    bucket = (ky * 64 + kx) * 2 + tris.clipped.long()
    order = torch.argsort(bucket)
    ids, sizes = torch.unique_consecutive(bucket[order], return_counts=True)
    return [(group, _MIN_TILE << (b // 128), _MIN_TILE << (b // 2 % 64), bool(b % 2))
            for group, b in zip(torch.split(order, sizes.tolist()), ids.tolist())]


def _nearest_keys(tris: _Triangles, index: torch.Tensor, tile_h: int, tile_w: int, clipped: bool,
                  width: int, zbuf: torch.Tensor) -> None:
    """Steps 2-3 for triangles ``index``, each tested on a ``tile_h x tile_w`` grid of pixel centres
    from its box corner: pack (1/z, triangle) of the covering ones and keep the per-pixel maximum in ``zbuf``.

    Tile cells beyond a box are outside its triangle (up to its tolerance, which can only reach the
    next pixel); boxes at the image border also get an explicit box test so no index leaves the image.
    """
    device = zbuf.device
    p = tris.planes.index_select(1, index)[:, :, None, None]              # (9, T, 1, 1)
    dx = torch.arange(tile_w, device=device, dtype=torch.float32).view(1, 1, -1)
    dy = torch.arange(tile_h, device=device, dtype=torch.float32).view(1, -1, 1)
    l0 = p[0] + p[1] * dx + p[2] * dy                                      # (T, tile_h, tile_w)
    l1 = p[3] + p[4] * dx + p[5] * dy
    tolerance = tris.tolerance.index_select(0, index).view(-1, 1, 1)
    inside = torch.minimum(torch.minimum(l0, l1), 1 - l0 - l1) >= -tolerance
    if clipped:
        inside &= (dx < tris.box_w.index_select(0, index).view(-1, 1, 1))
        inside &= (dy < tris.box_h.index_select(0, index).view(-1, 1, 1))
    hit = inside.view(-1).nonzero().squeeze(1)
    inv_z = (p[6] + p[7] * dx + p[8] * dy).view(-1).index_select(0, hit).clamp(min=1e-30)
    cells = tile_h * tile_w
    tri = index.index_select(0, torch.div(hit, cells, rounding_mode="floor"))
    cell = hit % cells
    pixel = tris.origin.index_select(0, tri) + torch.div(cell, tile_w, rounding_mode="floor") * width + cell % tile_w
    key = (inv_z.view(torch.int32).long() << _FACE_BITS) | tri
    zbuf.scatter_reduce_(0, pixel, key, reduce="amax")


def _resolve(tris: _Triangles, zbuf: torch.Tensor, shape: tuple[int, int, int], num_faces: int) -> Fragments:
    """Step 4: winning triangle per covered pixel -> face index, perspective-correct barycentrics, z."""
    b, h, w = shape
    pixels = (zbuf > 0).nonzero().squeeze(1)
    t = zbuf.index_select(0, pixels) & ((1 << _FACE_BITS) - 1)
    offset = pixels - tris.origin.index_select(0, t)                    # (y - y0) * W + (x - x0)
    fy = torch.div(offset, w, rounding_mode="floor")
    fx, fy = (offset - fy * w).float(), fy.float()
    c0, a0, b0, c1, a1, b1 = (tris.planes[k].index_select(0, t) for k in range(6))
    l0 = c0 + a0 * fx + b0 * fy
    l1 = c1 + a1 * fx + b1 * fy
    iz = [tris.inv_z[k].index_select(0, t) for k in range(3)]
    weighted = torch.stack([l0 * iz[0], l1 * iz[1], (1 - l0 - l1) * iz[2]], dim=1)   # (P, 3): l_i / z_i
    total = weighted.sum(1, keepdim=True)
    visible = tris.tri.index_select(0, t) % num_faces
    face = torch.full((b * h * w,), -1, dtype=torch.long, device=zbuf.device)
    face[pixels] = visible
    return Fragments(face.view(b, h, w), pixels, visible, weighted / total, 1.0 / total.squeeze(1))


def rasterize(screen: torch.Tensor, faces: torch.Tensor, height: int, width: int, *,
              cull_backfaces: bool = True, near: float = DEFAULT_NEAR,
              max_pairs: int = DEFAULT_MAX_PAIRS) -> Fragments:
    """Visible face, barycentrics and depth at every pixel centre of a batch of meshes.

    Args:
        screen: ``(B, V, 3)`` vertices as ``[x_px, y_px, z]``: pixel coordinates (pixel ``(i, j)``
            spans ``[i, i+1) x [j, j+1)``) and camera z (> 0 in front); see ``PinholeCamera.to_screen``.
            Any float dtype; computed in float32.
        faces: ``(F, 3)`` integer vertex indices, counter-clockwise seen from outside.
        height, width: image size in pixels.
        cull_backfaces: drop faces pointing away from the camera (right for closed meshes; faster).
        near: faces with a corner at ``z <= near`` are dropped (no clipping).
        max_pairs: candidate (triangle, tile cell) pairs per chunk; bounds the peak memory (~30 B/pair).
    Returns:
        :class:`Fragments` for the ``(B, height, width)`` images.
    """
    _check(screen, faces, height, width)
    screen = screen.float()
    faces = faces.to(device=screen.device, dtype=torch.long)
    tris = _triangles(screen, faces, height, width, cull_backfaces, near)
    zbuf = torch.zeros(screen.shape[0] * height * width, dtype=torch.long, device=screen.device)
    for index, tile_h, tile_w, clipped in _buckets(tris):
        for chunk in torch.split(index, max(1, max_pairs // (tile_h * tile_w))):
            _nearest_keys(tris, chunk, tile_h, tile_w, clipped, width, zbuf)
    return _resolve(tris, zbuf, (screen.shape[0], height, width), faces.shape[0])
