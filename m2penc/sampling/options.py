"""Options of long-video sampling, validated once, with the reasons for each default.

Defaults (and why):

* ``segment_frames=75``: 5 s at 15 fps, the paper's segment (§3.4, §4.1).
* ``join="condition"``: our training-free stand-in for the paper's UniAnimate-style conditioning
  (Champ has no first-frame branch to condition on): in-painting in time. Segment ``s+1``
  holds the last ``cond_frames`` frames of segment ``s`` and, at every denoising step, their
  latents are replaced by those clean latents forward-noised to the current timestep, so the
  new frames are denoised *around* known frames (in-painting in time, as EDGE does for motion).
  It streams: memory is one segment whatever the video length.
  ``join="average"`` denoises the whole video at once with overlapping context windows whose
  predictions are averaged (Champ's and UniAnimate's released long-video code). It has no seams
  at all but holds every frame's latents and guidance, so memory grows with length.
  ``join="none"`` samples segments independently (only useful to show what conditioning buys).
* ``cond_frames=4``: equal to the context overlap Champ relies on inside a segment.
* ``cond_noise="model"``: the conditioning frames are re-noised with the model's own noise
  estimate, not an independent draw; plain replacement leaves visible seams (numbers in
  :mod:`.conditioning`).
* ``num_steps=20``: Champ's inference config (DDIM, trailing spacing, zero-SNR, v-prediction).
* ``context_size=24, context_overlap=4``: Champ's context windows; ``closed_loop=False`` because a
  segment of a dance is not a loop (see :mod:`.windows`).
* ``noise_prior_t=None``: off. UniAnimate's prior (939) helps *its* model keep identity, but
  Champ was trained with a zero-terminal-SNR schedule whose first step sees pure noise, and it
  already gets identity from the ReferenceNet; a prior biases every frame towards the static
  reference pose. Offered for experiments.
* ``decode_chunk=8``: frames per VAE decode call; bounded memory, and a cancel check between calls.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import InputError
from .conditioning import COND_NOISE_MODES
from ..timeline import DEFAULT_FPS
from .plan import DEFAULT_COND_FRAMES, DEFAULT_SEGMENT_SECONDS, segment_frames_for
from .windows import CONTEXT_OVERLAP, CONTEXT_SIZE

JOIN_MODES: tuple[str, ...] = ("condition", "average", "none")
#: Champ's inference steps (configs/inference/inference.yaml).
DEFAULT_NUM_STEPS = 20
DEFAULT_DECODE_CHUNK = 8


@dataclass(frozen=True)
class LongVideoOptions:
    """How a long video is split, joined and denoised. See the module docstring for defaults."""

    segment_frames: int = segment_frames_for(DEFAULT_SEGMENT_SECONDS, DEFAULT_FPS)
    join: str = "condition"
    cond_frames: int = DEFAULT_COND_FRAMES
    cond_noise: str = "model"
    num_steps: int = DEFAULT_NUM_STEPS
    context_size: int = CONTEXT_SIZE
    context_overlap: int = CONTEXT_OVERLAP
    closed_loop: bool = False
    noise_prior_t: Optional[int] = None
    decode_chunk: int = DEFAULT_DECODE_CHUNK

    def __post_init__(self) -> None:
        if self.join not in JOIN_MODES:
            raise InputError(f"join must be one of {JOIN_MODES}, got {self.join!r}")
        if self.cond_noise not in COND_NOISE_MODES:
            raise InputError(f"cond_noise must be one of {COND_NOISE_MODES}, got {self.cond_noise!r}")
        for name in ("segment_frames", "num_steps", "decode_chunk", "context_size"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.noise_prior_t is not None and not 0 <= self.noise_prior_t < 1000:
            raise InputError(f"noise_prior_t must be a training timestep in [0, 1000), got {self.noise_prior_t}")

    @property
    def effective_cond_frames(self) -> int:
        """Conditioning frames actually used: ``cond_frames`` when joining by conditioning, else 0."""
        return self.cond_frames if self.join == "condition" else 0
