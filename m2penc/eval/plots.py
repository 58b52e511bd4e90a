"""Small PIL plots of evaluation results (no matplotlib): today the beat-alignment chart.

:func:`beat_alignment_plot` draws, over time in seconds, the smoothed mean joint speed whose
local minima are the motion beats (Bailando's BAS), the music beats as vertical lines with a
light band of +-sigma (the BAS tolerance, 3 frames) around each, and the motion beats as dots on
the curve; a title with the score and a legend on top, axis ticks and labels in PIL's default
font. :class:`BeatPlotLayout` maps frames to pixel columns, so callers (and tests) know where
each beat line is drawn.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError

#: The default chart size: readable in a node preview, wide enough for a song's beats.
BEAT_PLOT_SIZE = (1024, 320)
MIN_PLOT_SIZE = (320, 160)
BACKGROUND = (255, 255, 255)
AXIS_COLOUR = (40, 40, 40)
GRID_COLOUR = (228, 228, 228)
TEXT_COLOUR = (25, 25, 25)
CURVE_COLOUR = (55, 55, 55)
MUSIC_BEAT_COLOUR = (226, 87, 30)
MUSIC_BAND_COLOUR = (252, 226, 210)
MOTION_BEAT_COLOUR = (31, 110, 190)
#: Half-width of the band drawn around each music beat, in frames (BAS: sigma^2 = 9).
BAND_FRAMES = 3.0
#: Music beats closer than this (pixels) are drawn as thin lines without bands.
DENSE_BEAT_PIXELS = 8.0
#: The curve and the markers are drawn this many times larger, then scaled down (anti-aliasing).
SUPERSAMPLE = 3


def _font(size: int) -> ImageFont.ImageFont:
    """PIL's default font at ``size`` px (the scalable one on Pillow >= 10.1, else the bitmap one)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: no size argument
        return ImageFont.load_default()


def _nice_step(span: float, target: int) -> float:
    """A 1-2-5 x 10^k step giving about ``target`` intervals over ``span`` (> 0)."""
    raw = span / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * power:
            return factor * power
    return 10.0 * power


def _label(value: float, step: float) -> str:
    decimals = max(0, -int(math.floor(math.log10(step))) if step < 1 else 0)
    return f"{value:.{decimals}f}"


@dataclass(frozen=True)
class BeatPlotLayout:
    """Where the chart's plot area is, in pixels, and how frames map onto it.

    Attributes:
        width, height: the image size.
        left, top, right, bottom: the plot area (inclusive pixel bounds).
        num_frames: frames on the time axis (the speed curve's length, >= 2).
    """

    width: int
    height: int
    left: int
    top: int
    right: int
    bottom: int
    num_frames: int

    @classmethod
    def for_size(cls, width: int, height: int, num_frames: int) -> "BeatPlotLayout":
        """The layout of a ``width x height`` chart of ``num_frames`` frames."""
        if width < MIN_PLOT_SIZE[0] or height < MIN_PLOT_SIZE[1]:
            raise InputError(f"the plot must be at least {MIN_PLOT_SIZE[0]}x{MIN_PLOT_SIZE[1]} pixels, "
                             f"got {width}x{height}")
        if num_frames < 2:
            raise InputError(f"a beat plot needs at least 2 frames, got {num_frames}")
        return cls(width, height, left=72, top=44, right=width - 18, bottom=height - 50, num_frames=num_frames)

    def x_of_frame(self, frame: float) -> float:
        """Pixel column of frame index ``frame`` (frame 0 at ``left``, the last at ``right``)."""
        return self.left + frame / (self.num_frames - 1) * (self.right - self.left)

    def y_of_value(self, value: float, top_value: float) -> float:
        """Pixel row of ``value`` on an axis from 0 (``bottom``) to ``top_value`` (``top``)."""
        return self.bottom - value / top_value * (self.bottom - self.top)


def beat_alignment_plot(speed: np.ndarray, music_beats: np.ndarray, motion_beats: np.ndarray, fps: float,
                        score: Optional[float] = None, unit: str = "units/s",
                        size: tuple[int, int] = BEAT_PLOT_SIZE) -> np.ndarray:
    """The beat-alignment chart as an RGB image.

    Args:
        speed: ``(L,)`` smoothed mean joint speed per frame step (units per frame), L >= 2.
        music_beats: music beat frame indices (drawn as vertical lines).
        motion_beats: motion beat frame indices (dots on the curve).
        fps: frames per second (the time axis is in seconds, speeds are shown per second).
        score: the BAS, shown in the title (``None`` leaves it out).
        unit: the speed unit per second for the y axis, e.g. ``"m/s"`` or ``"px/s"``.
        size: ``(width, height)`` in pixels (default 1024 x 320).
    Returns:
        ``(height, width, 3)`` uint8.
    """
    curve = np.asarray(speed, dtype=np.float64).reshape(-1) * float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise InputError(f"fps must be a positive number, got {fps!r}")
    if not np.isfinite(curve).all():
        raise InputError("the speed curve holds NaN/inf values")
    width, height = int(size[0]), int(size[1])
    layout = BeatPlotLayout.for_size(width, height, curve.shape[0])
    image = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, normal, title_font = _font(13), _font(15), _font(17)
    frames = curve.shape[0]
    music = [int(b) for b in np.asarray(music_beats).reshape(-1) if 0 <= b < frames]
    motion = [int(b) for b in np.asarray(motion_beats).reshape(-1) if 0 <= b < frames]

    # y axis: 0 .. a nice value above the peak speed
    peak = float(curve.max()) if curve.size and curve.max() > 0 else 1.0
    y_step = _nice_step(peak, 4)
    top_value = y_step * math.ceil(peak * 1.08 / y_step)
    for k in range(int(round(top_value / y_step)) + 1):
        value = k * y_step
        y = round(layout.y_of_value(value, top_value))
        if k:
            draw.line([(layout.left, y), (layout.right, y)], fill=GRID_COLOUR, width=1)
        draw.text((layout.left - 8, y), _label(value, y_step), fill=TEXT_COLOUR, font=small, anchor="rm")

    # music beats: tolerance band, then the line (thin lines, no band, when beats are crowded)
    half = BAND_FRAMES / max(frames - 1, 1) * (layout.right - layout.left)
    spacing = float(np.median(np.diff(music))) * (layout.right - layout.left) / (frames - 1) if len(music) > 1 else 1e9
    crowded = spacing < DENSE_BEAT_PIXELS
    if not crowded:
        for beat in music:
            x = layout.x_of_frame(beat)
            draw.rectangle([round(max(layout.left, x - half)), layout.top, round(min(layout.right, x + half)),
                            layout.bottom - 1], fill=MUSIC_BAND_COLOUR)
    for beat in music:
        x = round(layout.x_of_frame(beat))
        draw.line([(x, layout.top), (x, layout.bottom - 1)], fill=MUSIC_BEAT_COLOUR, width=1 if crowded else 2)

    # x axis: seconds
    duration = (frames - 1) / fps
    x_step = _nice_step(duration, max(2, (layout.right - layout.left) // 90)) if duration > 0 else 1.0
    for k in range(int(math.floor(duration / x_step + 1e-9)) + 1):
        seconds = k * x_step
        x = round(layout.x_of_frame(seconds * fps))
        draw.line([(x, layout.bottom), (x, layout.bottom + 5)], fill=AXIS_COLOUR, width=1)
        draw.text((x, layout.bottom + 8), _label(seconds, x_step), fill=TEXT_COLOUR, font=small, anchor="mt")
    draw.text(((layout.left + layout.right) // 2, height - 6), "time (s)", fill=TEXT_COLOUR, font=normal,
              anchor="md")

    # the speed curve and the motion beats on it, drawn large and scaled down (anti-aliased)
    k = SUPERSAMPLE
    layer = Image.new("RGBA", (width * k, height * k), (0, 0, 0, 0))
    pen = ImageDraw.Draw(layer)
    points = [(k * layout.x_of_frame(i), k * layout.y_of_value(v, top_value)) for i, v in enumerate(curve)]
    pen.line(points, fill=CURVE_COLOUR + (255,), width=2 * k, joint="curve")
    for beat in motion:
        x, y = points[beat]
        pen.ellipse([x - 6 * k, y - 6 * k, x + 6 * k, y + 6 * k], fill=BACKGROUND + (255,))
        pen.ellipse([x - 5 * k, y - 5 * k, x + 5 * k, y + 5 * k], fill=MOTION_BEAT_COLOUR + (255,))
    image = Image.alpha_composite(image.convert("RGBA"), layer.resize((width, height), Image.LANCZOS)).convert("RGB")
    draw = ImageDraw.Draw(image)

    # axes
    draw.line([(layout.left, layout.top), (layout.left, layout.bottom)], fill=AXIS_COLOUR, width=1)
    draw.line([(layout.left, layout.bottom), (layout.right, layout.bottom)], fill=AXIS_COLOUR, width=1)

    # y label, rotated
    text = f"joint speed ({unit})"
    box = draw.textbbox((0, 0), text, font=normal)
    label = Image.new("RGB", (box[2] - box[0] + 4, box[3] - box[1] + 6), BACKGROUND)
    ImageDraw.Draw(label).text((2 - box[0], 3 - box[1]), text, fill=TEXT_COLOUR, font=normal)
    label = label.rotate(90, expand=True)
    centre = (layout.top + layout.bottom) // 2
    image.paste(label, (6, max(0, centre - label.height // 2)))

    # title and legend
    title = "Beat alignment" + (f"   BAS = {score:.3f}" if score is not None else "")
    draw.text((layout.left, 12), title, fill=TEXT_COLOUR, font=title_font, anchor="lt")
    entries = [("music beat", len(music)), ("motion beat", len(motion)), ("joint speed (smoothed)", None)]
    x = layout.right
    for name, count in reversed(entries):
        text = name if count is None else f"{name} ({count})"
        x -= int(draw.textlength(text, font=normal))
        draw.text((x, 22), text, fill=TEXT_COLOUR, font=normal, anchor="lm")
        x -= 8
        if name == "music beat":
            draw.line([(x - 4, 13), (x - 4, 31)], fill=MUSIC_BEAT_COLOUR, width=2)
            x -= 8
        elif name == "motion beat":
            draw.ellipse([x - 11, 17, x - 1, 27], fill=MOTION_BEAT_COLOUR)
            x -= 11
        else:
            draw.line([(x - 22, 22), (x, 22)], fill=CURVE_COLOUR, width=2)
            x -= 22
        x -= 22
    return np.asarray(image, dtype=np.uint8).copy()
