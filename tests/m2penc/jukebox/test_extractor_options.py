"""Compute dtype, progress reporting and cancellation of the extractor (tiny random model)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from m2pdance.m2penc.errors import GenerationCancelled
from m2pdance.m2penc.jukebox.random_weights import tiny_extractor
from m2pdance.m2penc.progress import RunControl


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_compute_stays_close_to_fp32(make_music, dtype):
    audio = make_music(3.0)
    reference = tiny_extractor(layer=6, seed=1).extract(audio, fps=30.0)
    half = tiny_extractor(layer=6, seed=1, dtype=dtype).extract(audio, fps=30.0)
    assert half.dtype == np.float32 and half.shape == reference.shape
    scale = np.abs(reference).max()
    tolerance = 0.02 if dtype == torch.float16 else 0.1
    assert np.abs(half - reference).max() < tolerance * scale


def test_progress_reaches_the_end_and_cancel_stops_early(make_music):
    audio = make_music(8.0)  # 3 windows of the tiny prior
    extractor = tiny_extractor(layer=3, seed=1, overlap_seconds=0.5)
    events: list[tuple[str, int, int]] = []
    extractor.extract(audio, fps=15.0, control=RunControl(progress=lambda *e: events.append(e)))
    prior_events = [e for e in events if e[0] == "jukebox: prior layers"]
    assert prior_events[-1][1] == prior_events[-1][2] == len(prior_events) and len(prior_events) >= 9
    with pytest.raises(GenerationCancelled):
        extractor.extract(audio, fps=15.0, control=RunControl(should_cancel=lambda: True))
