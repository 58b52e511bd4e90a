"""RGB frame -> palettised (pal8) PyAV frame with its own 256-colour palette, for GIF.

FFmpeg's GIF encoder only takes 8-bit palettised input; converting RGB with a fixed palette
(``rgb8``, 3-3-2 bits) bands skin and backgrounds badly. Each frame is instead quantised to its
own adaptive palette (PIL median cut), which the GIF encoder stores as a local colour table.
This is per frame, so it streams (FFmpeg's two-pass ``palettegen`` would need all frames first).
"""
from __future__ import annotations

import av
import numpy as np
from PIL import Image

#: Colours in a GIF palette.
GIF_COLOURS = 256


def to_pal8_frame(image: np.ndarray) -> av.VideoFrame:
    """``(H, W, 3)`` uint8 RGB -> ``pal8`` :class:`av.VideoFrame` with an adaptive palette."""
    quantised = Image.fromarray(image, mode="RGB").quantize(colors=GIF_COLOURS, method=Image.Quantize.MEDIANCUT)
    indices = np.asarray(quantised, dtype=np.uint8)  # (H, W) palette indices
    rgb = np.asarray(quantised.getpalette()[: 3 * GIF_COLOURS], dtype=np.uint8).reshape(-1, 3)
    palette = np.zeros((GIF_COLOURS, 4), dtype=np.uint8)  # ARGB per PyAV's pal8 contract
    palette[: rgb.shape[0], 0] = 255
    palette[: rgb.shape[0], 1:] = rgb
    return av.VideoFrame.from_ndarray((indices, palette), format="pal8")
