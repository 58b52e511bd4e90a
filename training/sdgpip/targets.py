"""Per-frame training targets of one clip: Champ's four maps, keypoints, heatmaps, music features.

What the paper's stage 1 learns to predict from music (sec. 3.1-3.2) is Champ's pose guidance:
the sum of Champ's four guidance encoders over the depth, normal, semantic and DWPose-skeleton
maps of the dancer, plus keypoint heatmaps. This module renders those for a clip
(:class:`.sources.Clip`) with the pack's renderer (the same maps the Render Pose Maps node makes,
GUIDANCE_MAPS.md) and pairs them with the music features of the same frames.

Two storage modes (:data:`STORE_MODES`):

* ``maps`` (default): the four maps as uint8 images (PNG in the shard) and the guidance is computed
  in the training loader by the frozen encoders on the training device
  (:class:`..guidance_targets.GuidanceTargets`). About 63 kB per frame at 512 x 512 (normal maps are
  more than half; ``benchmarks/sdgpip.py``), 35 GB for the paper's 560k frames.
* ``guidance``: additionally the encoded guidance ``(C, G, G)`` float16 per frame, computed here
  with the encoders given (320 x 64 x 64 x 2 B = 2.6 MB per frame at the paper's size: small sets
  only; 560k frames would be ~1.5 TB).

Music features are extracted over the WHOLE track, as M2PEnc sees them at inference, then the
rows of the clip's frames are taken (:func:`track_features`, :func:`clip_feature_rows`).

Heatmaps are on the guidance grid, ``size / 8`` (64 for 512 maps): the M2PEnc output grid.
They are stored quantised to uint8 (``round(255 * h)``; error <= 1/510).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Optional

import numpy as np
import torch

from ...m2penc.audio.features import extract_music_features
from ...m2penc.audio.featureset import BASELINE, JUKEBOX
from ...m2penc.errors import InputError
from ...m2penc.progress import NO_CONTROL, RunControl
from ...m2penc.render.appearance import Appearance
from ...m2penc.render.camera import PinholeCamera
from ...m2penc.render.keypoints import keypoints_to_grid_heatmaps
from ...m2penc.render.pose_maps import BodyLike, iter_pose_maps, motion_camera
from ..guidance_targets import GuidanceTargets
from .sources import Clip

#: Renderer map name -> Champ guidance type (the encoder that reads it), in Champ's order.
CHAMP_TYPE_OF_MAP: dict[str, str] = {"depth": "depth", "normal": "normal", "semantic": "semantic_map",
                                     "skeleton": "dwpose"}
MAP_FIELDS: tuple[str, ...] = tuple(CHAMP_TYPE_OF_MAP)
STORE_MODES: tuple[str, ...] = ("maps", "guidance")
#: ``--features`` names -> the pack's feature kinds (``light`` is EDGE's 35-d librosa set).
FEATURE_KINDS: dict[str, str] = {"light": BASELINE, "jukebox": JUKEBOX}
#: Guidance (and heatmap) grid = map size / this (Champ's VAE downsampling).
LATENT_FACTOR = 8
#: Frames rendered per renderer batch.
RENDER_BATCH = 16


@dataclass(frozen=True)
class TargetSettings:
    """How every clip's targets are made (one value per dataset).

    Attributes:
        fps: frame rate of every per-frame target (the paper: 15).
        size: square map (and video) side in pixels, a multiple of 8 (the paper: 512 maps,
            640 video crops; one size here so maps and frames align).
        feature_kind: ``baseline`` (light, 35-d) or ``jukebox`` (4800-d).
        store: ``maps`` or ``guidance`` (see the module docstring).
        jukebox: keyword arguments for :func:`extract_music_features` when ``feature_kind`` is
            ``jukebox`` (``vqvae_path``, ``prior_path``, ``layer``, ``device``, ``dtype``).
    """

    fps: float = 15.0
    size: int = 512
    feature_kind: str = BASELINE
    store: str = "maps"
    jukebox: Optional[Mapping[str, Any]] = None

    def __post_init__(self) -> None:
        if not (np.isfinite(self.fps) and 1 <= self.fps <= 120):
            raise InputError(f"fps must be in [1, 120], got {self.fps}")
        if not (isinstance(self.size, int) and 64 <= self.size <= 2048 and self.size % LATENT_FACTOR == 0):
            raise InputError(f"size must be a multiple of {LATENT_FACTOR} in [64, 2048] pixels, got {self.size!r}")
        if self.feature_kind not in FEATURE_KINDS.values():
            raise InputError(f"feature kind must be one of {sorted(FEATURE_KINDS.values())}, got {self.feature_kind!r}")
        if self.store not in STORE_MODES:
            raise InputError(f"store must be one of {STORE_MODES}, got {self.store!r}")

    @property
    def grid(self) -> int:
        """Side of the guidance and heatmap grid: ``size / 8``."""
        return self.size // LATENT_FACTOR


def track_features(clip: Clip, settings: TargetSettings, control: RunControl = NO_CONTROL) -> np.ndarray:
    """``(T, D)`` float32 features of the clip's whole track at ``settings.fps`` (as at inference)."""
    extra = dict(settings.jukebox or {}) if settings.feature_kind == JUKEBOX else {}
    # No tempo hint (AIST++ names give one): inference never has it, and the beat feature must match.
    result = extract_music_features(clip.music, kind=settings.feature_kind, fps=settings.fps, control=control,
                                    **extra)
    return np.ascontiguousarray(result.features.cpu().numpy(), dtype=np.float32)


def clip_feature_rows(features: np.ndarray, clip: Clip, fps: float) -> np.ndarray:
    """The rows of the track's ``features (T, D)`` under the clip's frames: ``(N, D)``."""
    first = int(round(clip.music_offset * fps))
    count = clip.motion.num_frames
    if first < 0 or first + count > features.shape[0]:
        raise InputError(f"clip {clip.key} covers frames [{first}, {first + count}) of {clip.sequence} but the "
                         f"music has {features.shape[0]} frames at {fps} fps; the clip must lie inside its music")
    return features[first:first + count]


def clip_camera(clip: Clip, body: BodyLike, size: int) -> PinholeCamera:
    """The clip's own camera, or one fixed camera framing the whole clip (as Render Pose Maps does)."""
    if clip.camera is not None:
        if (clip.camera.width, clip.camera.height) != (size, size):
            raise InputError(f"clip {clip.key}: its camera renders {clip.camera.width}x{clip.camera.height}, "
                             f"not {size}x{size}")
        return clip.camera
    poses, trans = clip.motion.to_torch()
    return motion_camera(body, poses, trans, size, size)


def clip_appearance(clip: Clip, body: BodyLike) -> Optional[Appearance]:
    """How the clip's synthetic video frames are rendered (its :attr:`~.sources.Clip.appearance`), or ``None``."""
    return None if clip.appearance is None else Appearance.of(body, clip.appearance)


def render_targets(clip: Clip, body: BodyLike, camera: PinholeCamera, settings: TargetSettings,
                   start: int, stop: int, control: RunControl = NO_CONTROL,
                   appearance: Optional[Appearance] = None) -> dict[str, np.ndarray]:
    """Maps, keypoints and heatmaps of the clip's frames ``[start, stop)`` (``n = stop - start``).

    Returns:
        ``depth (n, S, S)`` uint8 (the renderer's gray depth), ``normal``/``semantic``/``skeleton``
        ``(n, S, S, 3)`` uint8, ``keypoints (n, 18, 3)`` float32 OpenPose-18 canvas pixels +
        confidence, ``heatmaps (n, 18, G, G)`` uint8 (``G = S / 8``); with ``appearance``
        (:func:`clip_appearance`) also ``video (n, S, S, 3)`` uint8, the body rendered in its colour scheme.
    """
    poses, trans = clip.motion.to_torch()
    parts: dict[str, list[np.ndarray]] = {}
    for _, maps in iter_pose_maps(body, poses[start:stop], trans[start:stop], camera, RENDER_BATCH, control,
                                  as_uint8=True, appearance=appearance):
        heat = keypoints_to_grid_heatmaps(maps["keypoints"], settings.size, settings.size, settings.grid)
        batch = {"depth": maps["depth"][..., 0], "normal": maps["normal"], "semantic": maps["semantic"],
                 "skeleton": maps["skeleton"], "keypoints": maps["keypoints"].float(),
                 "heatmaps": (heat.clamp(0, 1) * 255).round().to(torch.uint8)}
        if appearance is not None:
            batch["video"] = maps["appearance"]
        for key, value in batch.items():
            parts.setdefault(key, []).append(value.cpu().numpy())
    return {key: np.ascontiguousarray(np.concatenate(values)) for key, values in parts.items()}


def stored_guidance(targets: GuidanceTargets, maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """``(n, C, G, G)`` float16 guidance of uint8 maps (gray depth expanded), as training computes it."""
    frames = []
    for name in MAP_FIELDS:
        array = torch.from_numpy(maps[name])
        frames.append(array[..., None].expand(*array.shape, 3) if array.ndim == 3 else array)
    stacked = torch.stack(frames, dim=1)[None]                             # (1, n, 4, S, S, 3) uint8
    return targets(stacked.to(targets.device))[0].cpu().numpy().astype(np.float16)


def iter_clip_chunks(clip: Clip, body: BodyLike, camera: PinholeCamera, settings: TargetSettings, track: np.ndarray,
                     chunk_frames: int, encoders: Optional[GuidanceTargets] = None,
                     control: RunControl = NO_CONTROL) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Yield ``(frame_start, fields)`` for consecutive chunks of at most ``chunk_frames`` frames.

    ``fields`` holds :func:`render_targets`' arrays, ``features (n, D)`` float32, ``video (n, S, S, 3)``
    uint8 when the clip has video (its own frames, or rendered in its appearance scheme with the maps),
    and ``guidance (n, C, G, G)`` float16 in ``guidance`` mode.
    Long clips are cut so one sample's arrays stay bounded (~4 MB per frame at 512, so 300
    frames ~ 1.2 GB); every chunk uses the clip's one ``camera`` (:func:`clip_camera`).
    """
    if settings.store == "guidance" and not encoders:
        raise InputError("store='guidance' needs Champ's guidance encoders (--guidance-encoders FOLDER)")
    features = clip_feature_rows(track, clip, settings.fps)
    video = iter(clip.video()) if clip.video is not None else None
    appearance = clip_appearance(clip, body)
    total = clip.motion.num_frames
    for start in range(0, total, chunk_frames):
        stop = min(start + chunk_frames, total)
        fields = render_targets(clip, body, camera, settings, start, stop, control, appearance)
        fields["features"] = np.ascontiguousarray(features[start:stop])
        if video is not None:
            fields["video"] = _take_frames(video, stop - start, clip, settings.size)
        if settings.store == "guidance":
            fields["guidance"] = stored_guidance(encoders, fields)
        yield start, fields


def _take_frames(video: Iterator[np.ndarray], count: int, clip: Clip, size: int) -> np.ndarray:
    frames = []
    for frame in video:
        frames.append(frame)
        if len(frames) == count:
            break
    if len(frames) < count or any(f.shape != (size, size, 3) for f in frames):
        raise InputError(f"the video of {clip.sequence} has fewer frames than its motion or frames not "
                         f"{size}x{size}x3; check the video file is complete")
    return np.stack(frames)
