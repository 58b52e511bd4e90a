"""Synthetic "video" of a posed body: the body in clothes colours, Lambert-shaded, over a background.

The synthetic SDGPip sources (the beat choreographer) make motion and music but no video; stages 2-3
of training need frames paired with the guidance maps. These are those frames: the body of the maps
(same vertices, same camera) with every SMPL part painted by a :class:`ColourScheme` -- skin, hair,
top, bottom, shoes -- so the reference photo's colours matter to the model, shaded so it looks 3D:

* colour: per-vertex scheme colours (SMPL part ``k`` -> a region, :func:`part_regions`; the top and
  back of the head -> hair, :func:`hair_vertices`), interpolated in linear light like the semantic map;
* shading (linear light): ``ambient + key * max(0, n . l)`` with the smooth normals of the normal map
  (:func:`.maps.vertex_normals`, :func:`.maps.interpolate`) and a key light fixed in camera space
  (:class:`Light`); ``ambient + key = 1``, so a surface facing the light shows the scheme colour exactly;
* background: a soft vertical gradient (or a plain colour) of the scheme, :func:`background_image`;
* antialiasing: ``supersample`` x ``supersample`` samples per pixel (the camera scaled, one rasterisation
  at the larger size), averaged in linear light; pixels no sample covers are exactly the background.
  ``supersample=1`` shades the maps' own fragments (hard edges, the silhouette IS the maps' mask).

:func:`reference_photo` renders a scheme's dancer standing in a slight A-pose, framed like the training
frames (:func:`.pose_maps.motion_camera`): the demo's reference photo.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence, Union

import torch
import torch.nn.functional as F

from ..body.skeleton import NUM_JOINTS
from ..errors import InputError
from .camera import PinholeCamera
from .maps import interpolate, linear_to_srgb, srgb_to_linear, to_byte, vertex_normals
from .rasterize import Fragments, rasterize

RGB = tuple[int, int, int]
#: Scheme regions, in the order of :func:`part_regions`' indices.
REGIONS: tuple[str, ...] = ("skin", "hair", "top", "bottom", "shoes")
SKIN, HAIR, TOP, BOTTOM, SHOES = range(len(REGIONS))
SLEEVES: tuple[str, ...] = ("long", "short", "none")
LEGS: tuple[str, ...] = ("long", "shorts")
#: Samples per pixel side of the builder's video frames.
DEFAULT_SUPERSAMPLE = 2
#: SMPL part -> region with long sleeves and long trousers (parts named in ``skeleton.SMPL_JOINT_NAMES``).
_BASE_REGION: tuple[int, ...] = (
    BOTTOM,                 # 0 pelvis
    BOTTOM, BOTTOM,         # 1, 2 hips (thighs)
    TOP,                    # 3 spine1 (belly)
    BOTTOM, BOTTOM,         # 4, 5 knees (calves)
    TOP,                    # 6 spine2
    SHOES, SHOES,           # 7, 8 ankles (feet)
    TOP,                    # 9 spine3 (chest)
    SHOES, SHOES,           # 10, 11 toes
    SKIN,                   # 12 neck
    TOP, TOP,               # 13, 14 collars
    SKIN,                   # 15 head (hair: hair_vertices)
    TOP, TOP,               # 16, 17 shoulders (upper arms)
    TOP, TOP,               # 18, 19 elbows (forearms)
    SKIN, SKIN, SKIN, SKIN,  # 20-23 wrists (palms) and hands (fingers)
)
assert len(_BASE_REGION) == NUM_JOINTS


def _rgb(value: Sequence[int], what: str) -> RGB:
    out = tuple(int(v) for v in value)
    if len(out) != 3 or any(not 0 <= v <= 255 for v in out) or any(int(v) != v for v in value):
        raise InputError(f"{what} must be three integers in 0..255 (RGB), got {tuple(value)!r}")
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class ColourScheme:
    """One dancer's look as data: sRGB bytes per region and how much skin shows.

    Attributes:
        name: identifier (a shard's sample metadata records it).
        skin, hair, top, bottom, shoes: RGB bytes of each region.
        sleeves: ``long`` (forearms in the top colour), ``short`` (forearms skin) or ``none``
            (upper arms skin too).
        legs: ``long`` (calves in the bottom colour) or ``shorts`` (calves skin).
        background: ``(top_row, bottom_row)`` colours of a vertical gradient (equal = plain).
        heldout: kept out of training (evaluation looks only); :data:`TRAINING_SCHEMES` skips it.
    """

    name: str
    skin: RGB
    hair: RGB
    top: RGB
    bottom: RGB
    shoes: RGB
    sleeves: str = "long"
    legs: str = "long"
    background: tuple[RGB, RGB] = ((236, 236, 240), (200, 200, 208))
    heldout: bool = False

    def __post_init__(self) -> None:
        for name in REGIONS:
            object.__setattr__(self, name, _rgb(getattr(self, name), f"scheme {self.name!r} {name}"))
        if len(self.background) != 2:
            raise InputError(f"scheme {self.name!r}: background must be (top_row_rgb, bottom_row_rgb)")
        object.__setattr__(self, "background", tuple(_rgb(c, f"scheme {self.name!r} background")
                                                     for c in self.background))
        if self.sleeves not in SLEEVES or self.legs not in LEGS:
            raise InputError(f"scheme {self.name!r}: sleeves must be one of {SLEEVES} and legs one of {LEGS}, got "
                             f"{self.sleeves!r}, {self.legs!r}")

    @property
    def region_colours(self) -> torch.Tensor:
        """``(5, 3)`` uint8, :data:`REGIONS` order."""
        return torch.tensor([getattr(self, name) for name in REGIONS], dtype=torch.uint8)

    def as_dict(self) -> dict:
        """JSON-able record (a build's settings hash it)."""
        return {"name": self.name, **{r: list(getattr(self, r)) for r in REGIONS}, "sleeves": self.sleeves,
                "legs": self.legs, "background": [list(c) for c in self.background], "heldout": self.heldout}


_S = ColourScheme
#: The named looks; clearly different tops, bottoms, skin tones and backgrounds. Two are held out.
COLOUR_SCHEMES: dict[str, ColourScheme] = {s.name: s for s in (
    _S("red_jeans", skin=(224, 180, 150), hair=(60, 40, 30), top=(200, 40, 45), bottom=(50, 75, 130),
       shoes=(240, 240, 240), sleeves="short", background=((235, 236, 240), (195, 198, 210))),
    _S("yellow_black", skin=(140, 95, 65), hair=(25, 20, 20), top=(240, 200, 40), bottom=(35, 35, 40),
       shoes=(200, 40, 40), sleeves="none", background=((215, 225, 240), (150, 165, 195))),
    _S("green_khaki", skin=(250, 215, 190), hair=(200, 160, 90), top=(40, 140, 80), bottom=(190, 170, 120),
       shoes=(90, 60, 40), background=((240, 235, 225), (205, 195, 180))),
    _S("white_red", skin=(95, 60, 40), hair=(20, 15, 15), top=(245, 245, 245), bottom=(180, 30, 50),
       shoes=(30, 30, 30), sleeves="short", legs="shorts", background=((70, 80, 100), (35, 40, 55))),
    _S("purple_grey", skin=(200, 150, 115), hair=(110, 50, 30), top=(120, 60, 170), bottom=(120, 120, 125),
       shoes=(245, 245, 245), background=((240, 230, 235), (210, 190, 200))),
    _S("orange_navy", skin=(235, 195, 165), hair=(150, 90, 40), top=(240, 120, 30), bottom=(30, 40, 90),
       shoes=(40, 40, 40), sleeves="none", background=((225, 240, 235), (170, 200, 190))),
    _S("black_white", skin=(175, 125, 90), hair=(30, 25, 20), top=(30, 30, 35), bottom=(235, 235, 230),
       shoes=(220, 60, 40), sleeves="short", background=((245, 225, 200), (215, 180, 150))),
    _S("cyan_pink", skin=(245, 205, 180), hair=(230, 200, 130), top=(40, 180, 200), bottom=(230, 110, 160),
       shoes=(250, 250, 250), sleeves="short", legs="shorts", background=((230, 230, 230), (230, 230, 230))),
    # held out: combinations no training look has (a blue top, a brown top; brown/teal bottoms)
    _S("blue_brown", skin=(160, 110, 80), hair=(40, 30, 25), top=(50, 100, 220), bottom=(130, 85, 50),
       shoes=(30, 30, 30), sleeves="short", background=((235, 235, 225), (190, 190, 175)), heldout=True),
    _S("brown_teal", skin=(230, 190, 160), hair=(90, 55, 30), top=(140, 85, 50), bottom=(30, 120, 120),
       shoes=(240, 200, 60), background=((220, 220, 235), (165, 165, 190)), heldout=True),
)}
#: The schemes training picks from (not held out), in a fixed order.
TRAINING_SCHEMES: tuple[str, ...] = tuple(n for n, s in COLOUR_SCHEMES.items() if not s.heldout)
HELDOUT_SCHEMES: tuple[str, ...] = tuple(n for n, s in COLOUR_SCHEMES.items() if s.heldout)


def get_scheme(scheme: Union[str, ColourScheme]) -> ColourScheme:
    """A scheme by name (or itself)."""
    if isinstance(scheme, ColourScheme):
        return scheme
    if scheme not in COLOUR_SCHEMES:
        raise InputError(f"unknown colour scheme {scheme!r}; choose one of {', '.join(COLOUR_SCHEMES)}")
    return COLOUR_SCHEMES[scheme]


@dataclass(frozen=True)
class Light:
    """Lambert lighting in linear light: ``ambient + key * max(0, n . direction)``.

    ``direction`` points from the surface to the key light, in OpenCV camera axes (x right, y down,
    z forward): the default light is above, left and in front of the camera's subject.
    """

    ambient: float = 0.4
    key: float = 0.6
    direction: tuple[float, float, float] = (-0.35, -0.55, -0.76)

    def unit(self, device: torch.device) -> torch.Tensor:
        return F.normalize(torch.tensor(self.direction, dtype=torch.float32, device=device), dim=0)


DEFAULT_LIGHT = Light()


def part_regions(scheme: ColourScheme) -> torch.Tensor:
    """``(24,)`` long: the region (:data:`REGIONS` index) of every SMPL part under ``scheme``."""
    table = list(_BASE_REGION)
    if scheme.sleeves in ("short", "none"):
        table[18] = table[19] = SKIN
    if scheme.sleeves == "none":
        table[16] = table[17] = SKIN
    if scheme.legs == "shorts":
        table[4] = table[5] = SKIN
    return torch.tensor(table, dtype=torch.long)


def hair_vertices(part_labels: torch.Tensor, rest_vertices: torch.Tensor) -> torch.Tensor:
    """``(V,)`` bool: head vertices (part 15) on the top or back of the head in the rest pose (y up, facing +z).

    Works for any body of the pack: the head's box in the rest pose decides (face and ears stay skin).
    """
    head = part_labels == 15
    out = torch.zeros_like(head)
    if not bool(head.any()):
        return out
    v = rest_vertices.float()[head]
    lo, hi = v.amin(0), v.amax(0)
    centre, half = (lo + hi) / 2, ((hi - lo) / 2).clamp(min=1e-6)
    x, y, z = ((v - centre) / half).unbind(1)
    # a hairline at the forehead, lower over the temples and ears, and the back of the head down to the neck
    out[head] = (y > 0.35 + 0.15 * z.clamp(min=0) - 0.3 * x.abs()) | ((z < -0.3) & (y > -0.75))
    return out


def rest_pose_vertices(body) -> torch.Tensor:
    """``(V, 3)`` the body's vertices in SMPL's rest pose (zero rotations, pelvis at the origin)."""
    device = body.faces.device
    with torch.no_grad():
        return body(torch.zeros(1, NUM_JOINTS, 3, device=device), torch.zeros(1, 3, device=device)).vertices[0]


def scheme_vertex_colours(scheme: Union[str, ColourScheme], part_labels: torch.Tensor,
                          hair: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``(V, 3)`` uint8 sRGB colour of every vertex: its part's region colour, hair where ``hair`` (``(V,)`` bool)."""
    scheme = get_scheme(scheme)
    labels = part_labels.long()
    if labels.ndim != 1 or (labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= NUM_JOINTS)):
        raise InputError(f"part labels must be a 1-D tensor of SMPL parts 0..23, got {tuple(labels.shape)}")
    region = part_regions(scheme).to(labels.device)[labels]
    if hair is not None:
        region = torch.where(hair.to(labels.device), torch.full_like(region, HAIR), region)
    return scheme.region_colours.to(labels.device)[region]


def body_colours(body, scheme: Union[str, ColourScheme]) -> torch.Tensor:
    """``(V, 3)`` uint8 vertex colours of a body model (``faces``, ``part_labels``, callable) under ``scheme``."""
    return scheme_vertex_colours(scheme, body.part_labels, hair_vertices(body.part_labels, rest_pose_vertices(body)))


Background = Union[RGB, tuple[RGB, RGB], torch.Tensor]


def background_image(background: Background, height: int, width: int) -> torch.Tensor:
    """``(H, W, 3)`` uint8: a plain colour ``(r, g, b)``, a vertical gradient ``((top rgb), (bottom rgb))``
    (sRGB bytes interpolated at the pixel-row centres, rounded), or an ``(H, W, 3)`` uint8 image as is."""
    if isinstance(background, torch.Tensor):
        if background.dtype != torch.uint8 or tuple(background.shape) != (height, width, 3):
            raise InputError(f"a background image must be uint8 ({height}, {width}, 3), got {background.dtype} "
                             f"{tuple(background.shape)}")
        return background
    if len(background) == 3 and all(isinstance(c, (int, float)) for c in background):
        top = bottom = _rgb(background, "background")          # type: ignore[arg-type]
    elif len(background) == 2:
        top, bottom = (_rgb(c, "background") for c in background)  # type: ignore[union-attr]
    else:
        raise InputError(f"background must be (r, g, b), ((r, g, b), (r, g, b)) or an image, got {background!r}")
    t = ((torch.arange(height, dtype=torch.float32) + 0.5) / height)[:, None]
    rows = torch.tensor(top, dtype=torch.float32) * (1 - t) + torch.tensor(bottom, dtype=torch.float32) * t
    return torch.floor(rows + 0.5).clamp(0, 255).to(torch.uint8)[:, None, :].expand(height, width, 3).contiguous()


def shading(fragments: Fragments, faces: torch.Tensor, normals: torch.Tensor, light: Light = DEFAULT_LIGHT
            ) -> torch.Tensor:
    """``(P,)`` Lambert factor at the covered pixels from camera-space unit vertex normals ``(B, V, 3)``."""
    n = F.normalize(interpolate(fragments, faces, normals), dim=-1)
    return light.ambient + light.key * (n @ light.unit(n.device)).clamp(min=0)


def shade_fragments(fragments: Fragments, faces: torch.Tensor, normals: torch.Tensor, colours: torch.Tensor,
                    light: Light = DEFAULT_LIGHT) -> torch.Tensor:
    """``(P, 3)`` float32 LINEAR-light colour at the covered pixels: interpolated colour times :func:`shading`.

    ``colours``: ``(V, 3)`` or ``(B, V, 3)`` uint8 sRGB vertex colours (:func:`scheme_vertex_colours`).
    """
    if colours.dtype != torch.uint8:
        raise InputError(f"vertex colours must be uint8 sRGB bytes, got {colours.dtype}")
    albedo = interpolate(fragments, faces, srgb_to_linear(colours.float() / 255.0))
    return albedo * shading(fragments, faces, normals, light)[:, None]


def _composite(fragments: Fragments, linear: torch.Tensor, background: torch.Tensor, factor: int) -> tuple:
    """Linear colours at the covered samples over ``background (H, W, 3)`` uint8 -> uint8 ``(B, H, W, 3)``, coverage."""
    b, sh, sw = fragments.face.shape
    h, w = sh // factor, sw // factor
    dense = torch.zeros(b * sh * sw, 4, dtype=torch.float32, device=linear.device)
    dense[fragments.pixels] = torch.cat([linear, torch.ones_like(linear[:, :1])], dim=1)
    dense = dense.view(b, sh, sw, 4).permute(0, 3, 1, 2)
    if factor > 1:
        dense = F.avg_pool2d(dense, factor)                               # area average in linear light
    premultiplied, coverage = dense[:, :3].permute(0, 2, 3, 1), dense[:, 3]
    bg = background.to(linear.device)
    bg_linear = srgb_to_linear(bg.float() / 255.0)
    out = to_byte(linear_to_srgb(premultiplied + (1 - coverage[..., None]) * bg_linear))
    out = torch.where((coverage > 0)[..., None], out, bg.expand(b, h, w, 3))
    return out, coverage


def render_fragments_appearance(fragments: Fragments, faces: torch.Tensor, normals: torch.Tensor,
                                colours: torch.Tensor, background: Background,
                                light: Light = DEFAULT_LIGHT) -> torch.Tensor:
    """One sample per pixel (hard edges) from existing fragments, e.g. the maps' own rasterisation.

    Args:
        fragments: :func:`.rasterize.rasterize` output for ``(B, H, W)``.
        normals: ``(B, V, 3)`` camera-space unit vertex normals (:func:`.maps.vertex_normals` of the
            camera-space vertices, what :func:`.maps.normal_map` takes).
        colours: ``(V, 3)`` uint8 vertex colours; background: see :func:`background_image`.
    Returns:
        ``(B, H, W, 3)`` uint8; its silhouette is ``fragments.mask`` exactly.
    """
    _, h, w = fragments.face.shape
    bg = background_image(background, h, w)
    return _composite(fragments, shade_fragments(fragments, faces, normals, colours, light), bg, 1)[0]


def render_appearance(vertices: torch.Tensor, faces: torch.Tensor, colours: torch.Tensor, camera: PinholeCamera,
                      background: Optional[Background] = None, scheme: Optional[ColourScheme] = None,
                      supersample: int = DEFAULT_SUPERSAMPLE, light: Light = DEFAULT_LIGHT,
                      return_coverage: bool = False):
    """World vertices ``(B, V, 3)`` -> uint8 ``(B, H, W, 3)`` frames (inputs as :func:`.pose_maps.render_mesh_maps`).

    Args:
        colours: ``(V, 3)`` uint8 vertex colours (:func:`body_colours`).
        camera: the maps' camera; frames are ``camera.height x camera.width``.
        background: see :func:`background_image`; ``None``: ``scheme.background`` (or plain white).
        supersample: samples per pixel side (1: hard edges, the maps' silhouette exactly).
        return_coverage: also return ``(B, H, W)`` float32 covered fraction of each pixel.
    """
    if not (isinstance(supersample, int) and 1 <= supersample <= 8):
        raise InputError(f"supersample must be an integer in [1, 8], got {supersample!r}")
    if background is None:
        background = scheme.background if scheme is not None else (255, 255, 255)
    h, w = camera.height, camera.width
    bg = background_image(background, h, w)
    view = camera
    if supersample > 1:
        s = supersample
        view = PinholeCamera(w * s, h * s, camera.fx * s, camera.fy * s, camera.cx * s, camera.cy * s,
                             camera.rotation, camera.translation)
    cam_vertices = view.world_to_camera(vertices)
    fragments = rasterize(view.project(cam_vertices), faces, view.height, view.width)
    linear = shade_fragments(fragments, faces, vertex_normals(cam_vertices, faces), colours, light)
    frames, coverage = _composite(fragments, linear, bg, supersample)
    return (frames, coverage) if return_coverage else frames


#: The reference photo's pose: arms lowered from SMPL's T-pose to this many degrees from the body ...
A_POSE_ARM_DEGREES = 25.0
#: ... elbows slightly bent (degrees), and the legs a little apart (degrees per hip).
A_POSE_ELBOW_DEGREES = 8.0
A_POSE_HIP_DEGREES = 3.0


def a_pose() -> torch.Tensor:
    """``(24, 3)`` axis-angle: standing, arms ~25 degrees from the body, elbows soft, feet slightly apart."""
    poses = torch.zeros(NUM_JOINTS, 3)
    down = math.radians(90.0 - A_POSE_ARM_DEGREES)
    poses[16, 2], poses[17, 2] = -down, down                   # left arm (+x) and right arm (-x) down
    elbow = math.radians(A_POSE_ELBOW_DEGREES)
    poses[18, 1], poses[19, 1] = elbow, -elbow                 # forearms forward a little
    hip = math.radians(A_POSE_HIP_DEGREES)
    poses[1, 2], poses[2, 2] = hip, -hip                       # legs slightly apart
    return poses


def reference_photo(scheme: Union[str, ColourScheme] = TRAINING_SCHEMES[0], size: int = 512, body=None,
                    supersample: int = DEFAULT_SUPERSAMPLE, light: Light = DEFAULT_LIGHT) -> torch.Tensor:
    """``(size, size, 3)`` uint8: the dancer of ``scheme`` standing in :func:`a_pose`, framed like the
    training frames of a synthetic clip (:func:`.pose_maps.motion_camera`: full body, centred, 80 % of
    the height), over the scheme's background. ``body``: default the open body."""
    from ..body.open_body import OpenBody
    from .pose_maps import motion_camera

    if not (isinstance(size, int) and 16 <= size <= 4096):
        raise InputError(f"size must be an integer number of pixels in [16, 4096], got {size!r}")
    scheme = get_scheme(scheme)
    body = OpenBody() if body is None else body
    device = body.faces.device
    poses, trans = a_pose()[None].to(device), torch.zeros(1, 3, device=device)
    camera = motion_camera(body, poses, trans, size, size)
    with torch.no_grad():
        vertices = body(poses, trans).vertices
    return render_appearance(vertices, body.faces, body_colours(body, scheme), camera, scheme=scheme,
                             supersample=supersample, light=light)[0].cpu()


@dataclass(frozen=True)
class Appearance:
    """What :func:`.pose_maps.iter_pose_maps` needs to render appearance frames with the maps."""

    colours: torch.Tensor                                  # (V, 3) uint8 vertex colours
    background: Background
    supersample: int = DEFAULT_SUPERSAMPLE
    light: Light = field(default=DEFAULT_LIGHT)

    @classmethod
    def of(cls, body, scheme: Union[str, ColourScheme], supersample: int = DEFAULT_SUPERSAMPLE) -> "Appearance":
        scheme = get_scheme(scheme)
        return cls(body_colours(body, scheme), scheme.background, supersample)

    def render(self, vertices: torch.Tensor, faces: torch.Tensor, camera: PinholeCamera,
               fragments: Optional[Fragments] = None, normals: Optional[torch.Tensor] = None) -> torch.Tensor:
        """uint8 ``(B, H, W, 3)``; ``supersample == 1`` with the maps' fragments and normals: no new rasterisation."""
        if self.supersample == 1 and fragments is not None and normals is not None:
            return render_fragments_appearance(fragments, faces, normals, self.colours, self.background, self.light)
        return render_appearance(vertices, faces, self.colours, camera, self.background,
                                 supersample=self.supersample, light=self.light)
