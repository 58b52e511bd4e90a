"""Segment plans and context windows: pure bookkeeping, checked against the paper and Champ."""
from __future__ import annotations

import pytest

from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.sampling import LongVideoOptions, context_windows, plan_segments
from m2pdance.m2penc.sampling.plan import segment_frames_for
from m2pdance.m2penc.timeline import frame_count


def test_paper_defaults_give_75_frame_segments():
    assert segment_frames_for() == 75
    assert LongVideoOptions().segment_frames == 75
    assert frame_count(round(61.99 * 44100), 44100, 15) == 929  # never past the music's end


def test_plan_covers_timeline_once_with_conditioning_overlap():
    segments = plan_segments(200, 75, 4)
    assert [(s.start, s.stop, s.cond) for s in segments] == [(0, 75, 0), (75, 150, 4), (150, 200, 4)]
    assert segments[1].latent_start == 71 and segments[1].num_latent == 79
    assert sum(s.num_new for s in segments) == 200


def test_plan_rejects_conditioning_as_long_as_segment():
    with pytest.raises(InputError, match="cond_frames"):
        plan_segments(100, 4, 4)


def test_open_windows_end_on_last_frame():
    windows = context_windows(79, 24, 4, closed_loop=False)
    assert [w[0] for w in windows] == [0, 20, 40, 55]
    assert windows[-1][-1] == 78 and all(len(w) == 24 for w in windows)


def test_closed_loop_windows_wrap_like_champ():
    windows = context_windows(79, 24, 4, closed_loop=True)
    assert [w[0] for w in windows] == [0, 20, 40, 60]
    assert windows[-1][-5:] == [0, 1, 2, 3, 4]


def test_short_sequence_is_one_window():
    assert context_windows(10, closed_loop=False) == [list(range(10))]


def test_unknown_join_mode_is_rejected():
    with pytest.raises(InputError, match="join"):
        LongVideoOptions(join="crossfade")
