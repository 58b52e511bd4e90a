"""Context windows: Champ's closed-loop uniform windows and the open-loop windows of a dance segment."""
from __future__ import annotations

import pytest

from m2pdance.m2penc.sampling.windows import context_windows
from m2pdance.m2penc.errors import InputError


def test_short_clip_is_one_window():
    assert context_windows(24, closed_loop=True) == [list(range(24))]
    assert context_windows(5, size=24, closed_loop=True) == [[0, 1, 2, 3, 4]]


def test_champ_defaults_wrap_round_the_end():
    windows = context_windows(50, closed_loop=True)
    assert [w[0] for w in windows] == [0, 20, 40]
    assert all(len(w) == 24 for w in windows)
    assert windows[-1] == list(range(40, 50)) + list(range(14))
    assert set().union(*map(set, windows)) == set(range(50))


def test_small_windows_match_champ_vector_layout():
    assert context_windows(20, size=6, overlap=2, closed_loop=True)[-1] == [16, 17, 18, 19, 0, 1]
    assert len(context_windows(20, size=6, overlap=2, closed_loop=True)) == 5


def test_open_loop_ends_on_the_last_frame_instead_of_wrapping():
    assert context_windows(42, size=24, overlap=4, closed_loop=False) == [list(range(24)), list(range(18, 42))]
    assert len(context_windows(42, size=24, overlap=4, closed_loop=True)) == 3


@pytest.mark.parametrize("frames,size,overlap", [(0, 24, 4), (30, 24, 24), (30, 24, -1)])
def test_invalid_arguments_are_rejected(frames: int, size: int, overlap: int):
    with pytest.raises(InputError):
        context_windows(frames, size, overlap, closed_loop=True)
