"""Synthetic video for stages 2-3: the beats source with ``appearance`` stores the dancer rendered in a colour
scheme, frame-aligned with the maps (same body, camera and size)."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.render.appearance import COLOUR_SCHEMES, HELDOUT_SCHEMES, TRAINING_SCHEMES, background_image
from m2pdance.training.sdgpip.builder import BUILD_FILE, BuildConfig, run_build
from m2pdance.training.sdgpip.shards import SDGPipShards
from m2pdance.training.sdgpip.sources import BeatsSource, clip_seed, pick_scheme

from .music_files import click_track

SIZE = 128


def test_scheme_per_clip_is_deterministic_and_never_held_out():
    seeds = [clip_seed(0, "beats", f"track{i}.wav") for i in range(200)]
    picked = [pick_scheme("random", s, i) for i, s in enumerate(seeds)]
    assert picked == [pick_scheme("random", s, 0) for s in seeds]           # the seed alone decides
    assert set(picked) == set(TRAINING_SCHEMES) and not set(picked) & set(HELDOUT_SCHEMES)
    assert [pick_scheme("cycle", 0, i) for i in range(len(TRAINING_SCHEMES) + 1)] == [*TRAINING_SCHEMES,
                                                                                       TRAINING_SCHEMES[0]]
    assert pick_scheme(HELDOUT_SCHEMES[0], 5, 0) == HELDOUT_SCHEMES[0]      # named explicitly: allowed
    with pytest.raises(InputError):
        pick_scheme("plaid", 0, 0)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    music = tmp_path_factory.mktemp("music")
    click_track(music / "a.wav", 2.0, bpm=120)
    click_track(music / "b.wav", 1.4, bpm=96, pitch=660)
    config = BuildConfig(source="beats", data=str(music), out=str(tmp_path_factory.mktemp("sdgpip") / "video"),
                         size=SIZE, items_per_shard=2, device="cpu", appearance="cycle")
    return config, run_build(config, show_progress=False)


def test_video_frames_are_the_dancer_in_the_clip_scheme(built):
    config, summary = built
    assert summary["complete"]
    data = SDGPipShards(config.out)
    seen = set()
    for number, ref in enumerate(data.samples):
        scheme = COLOUR_SCHEMES[ref.meta["info"]["appearance"]]
        seen.add(scheme.name)
        clip = next(iter(BeatsSource(config.data, appearance="cycle").clips(ref.meta["sequence"])))
        assert clip.appearance == scheme.name and not scheme.heldout
        arrays = data.read(number, ("video", "depth", "semantic"), gray_as_rgb=False)
        video, mask = arrays["video"].astype(np.int16), arrays["depth"] > 0
        assert video.shape == (ref.num_frames, SIZE, SIZE, 3)
        # JPEG (quality 95) aside: outside the body the scheme's background, on the body not
        bg = background_image(scheme.background, SIZE, SIZE).numpy().astype(np.int16)
        off = np.abs(video - bg).max(-1)
        grow = mask.copy()
        for _ in range(3):                                                  # JPEG rings a few pixels past edges
            grow = grow | np.roll(grow, 1, 1) | np.roll(grow, -1, 1) | np.roll(grow, 1, 2) | np.roll(grow, -1, 2)
        assert off[~grow].mean() < 2 and np.percentile(off[~grow], 99.9) <= 12
        fg = off > 24
        iou = (fg & mask).sum() / (fg | mask).sum()
        assert iou > 0.9, iou
        # the top's region (chest, semantic colour of part 9) shows the scheme's top, shaded: hue kept
        chest = (arrays["semantic"] == (46, 109, 142)).all(-1)
        chest &= ~(np.roll(~chest, 1, 1) | np.roll(~chest, -1, 1) | np.roll(~chest, 1, 2) | np.roll(~chest, -1, 2))
        pixels = video[chest].astype(np.float64)
        top = np.array(scheme.top, dtype=np.float64)
        brightest = pixels[np.argsort(pixels.sum(1))[-max(1, len(pixels) // 10):]].mean(0)
        assert np.abs(brightest - top).max() < 25, (brightest, top)
    assert seen == {TRAINING_SCHEMES[0], TRAINING_SCHEMES[1]}               # cycle over the sorted tracks


def test_appearance_is_a_build_setting(built, tmp_path):
    config, _ = built
    record = json.loads((Path(config.out) / BUILD_FILE).read_text())
    assert record["settings"]["appearance"] == "cycle" and record["source"]["appearance"] == "cycle"
    with pytest.raises(InputError, match="appearance"):
        run_build(replace(config, appearance="random"), show_progress=False)
    plain = replace(config, appearance=None, out=str(tmp_path / "plain"))
    assert "appearance" not in plain.identity()                             # older builds keep their ids
    with pytest.raises(InputError, match="beats"):
        BuildConfig(source="aist", data="x", out="y", appearance="cycle")
