"""Architecture of M2PEnc as data (saved inside every weights file).

The paper fixes the outer shapes (FC to 4096 = 64 x 64, pose guidance ``(N, C_guid, 64, 64)``,
heatmaps ``(N, C_heat, 64, 64)``) but not the inner widths, the number of layers ``L`` or the
attention layout; those are ours and live here, so a weights file always says what it was
trained with. ``paper`` is our reading at the paper's scale; ``tiny`` is for tests.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..audio.featureset import DEFAULT_FPS, FEATURE_DIMS, JUKEBOX
from ..config import ModelConfig
from ..errors import InputError

#: Champ's ``guidance_fea`` width (the denoising UNet's ``conv_in`` output channels).
CHAMP_GUIDANCE_CHANNELS = 320
#: OpenPose-18 body keypoints (DWPose whole-body with neck would be 134).
OPENPOSE_BODY_KEYPOINTS = 18
#: The paper's training clip: 75 frames = 5 s at 15 fps (§4.1).
PAPER_WINDOW_FRAMES = 75
#: The paper's spatial grid: FC output 64 * 64 = 4096, one 64 x 64 "image" per frame.
PAPER_GRID = 64


@dataclass(frozen=True)
class M2PEncConfig(ModelConfig):
    """M2PEnc hyper-parameters.

    Attributes:
        feature_kind: music features the model reads, ``"jukebox"`` or ``"baseline"``.
        in_dim: feature width (4800 or 35); must match ``feature_kind``.
        fps: frame rate the model was trained at (features must have the same).
        grid_size: G; the FC maps each frame to ``G * G`` values shaped as one G x G channel.
        hidden_channels: channels of the 3D stack after the 1 -> C stem convolution.
        num_layers: L, the number of (inflated 3D conv, 3D attention) pairs.
        temporal_kernel, spatial_kernel: inflated kernel size (t, k, k).
        num_heads: attention heads (temporal and spatial).
        norm_groups: GroupNorm groups.
        spatial_attention_stride: spatial attention runs on a G/s x G/s average-pooled grid
            (full 64 x 64 attention over 4096 tokens per frame is not affordable); 0 disables it.
        input_standardize: standardise each feature column with the training data's mean and standard
            deviation (buffers ``input_mean``/``input_std``, saved with the weights; stage 1 measures
            them) before ``input_norm``. Our addition, off in the presets (their files have no such
            buffers). Without it the LayerNorm below sees one frame's 35 baseline columns, where the
            first MFCC (about -240 +- 66) sets the scale: the 0/1 onset and beat columns come out
            ~0.015 apart, and the model cannot see the beats it is meant to dance to.
        input_norm: LayerNorm on the input features before the FC (our addition: EDGE's
            baseline columns span several orders of magnitude).
        guidance_channels: C_guid (Champ: 320).
        heatmap_channels: C_heat (18 OpenPose body keypoints; 134 for DWPose whole-body).
        window_frames: the clip length the model was trained on (paper §4.1: 75 frames = 5 s at
            15 fps); long songs run in windows of this length. Files saved before this field
            existed load with 75.
    """

    feature_kind: str = JUKEBOX
    in_dim: int = FEATURE_DIMS[JUKEBOX]
    fps: float = DEFAULT_FPS
    grid_size: int = PAPER_GRID
    hidden_channels: int = 64
    num_layers: int = 4
    temporal_kernel: int = 3
    spatial_kernel: int = 3
    num_heads: int = 4
    norm_groups: int = 8
    spatial_attention_stride: int = 4
    input_standardize: bool = False
    input_norm: bool = True
    guidance_channels: int = CHAMP_GUIDANCE_CHANNELS
    heatmap_channels: int = OPENPOSE_BODY_KEYPOINTS
    window_frames: int = PAPER_WINDOW_FRAMES

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "paper": {},
        "paper_baseline": {"feature_kind": "baseline", "in_dim": FEATURE_DIMS["baseline"]},
        "tiny": {
            "feature_kind": "baseline", "in_dim": FEATURE_DIMS["baseline"], "grid_size": 16,
            "hidden_channels": 16, "num_layers": 1, "num_heads": 2, "norm_groups": 4,
            "spatial_attention_stride": 4, "guidance_channels": 8,
        },
    }

    def __post_init__(self) -> None:
        if self.feature_kind not in FEATURE_DIMS:
            raise InputError(f"feature_kind must be one of {sorted(FEATURE_DIMS)}, got {self.feature_kind!r}")
        if self.in_dim != FEATURE_DIMS[self.feature_kind]:
            raise InputError(f"in_dim {self.in_dim} does not match {self.feature_kind!r} features "
                             f"({FEATURE_DIMS[self.feature_kind]}-d)")
        for name in ("grid_size", "hidden_channels", "num_layers", "num_heads", "norm_groups",
                     "guidance_channels", "heatmap_channels", "window_frames"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("temporal_kernel", "spatial_kernel"):
            if getattr(self, name) % 2 != 1:
                raise InputError(f"{name} must be odd (same-size padding), got {getattr(self, name)}")
        if self.hidden_channels % self.num_heads or self.hidden_channels % self.norm_groups:
            raise InputError(f"hidden_channels {self.hidden_channels} must be divisible by num_heads "
                             f"{self.num_heads} and norm_groups {self.norm_groups}")
        if self.hidden_channels % 4:
            raise InputError(f"hidden_channels must be a multiple of 4 (2D position code), got {self.hidden_channels}")
        stride = self.spatial_attention_stride
        if stride < 0 or (stride and self.grid_size % stride):
            raise InputError(f"spatial_attention_stride {stride} must be 0 or divide grid_size {self.grid_size}")
