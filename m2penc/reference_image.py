"""The reference photo as users really supply it: any size, RGBA, grayscale, a batch.

ComfyUI hands images over as IMAGE ``(B, H, W, C)`` float in [0, 1]. Champ wants one RGB image
``(1, 3, H, W)`` at the generation size. Here: the first image of a batch is used; an alpha
channel is composited over white (a transparent background must not turn black); one channel
is repeated to RGB; the photo is centre-cropped to the target aspect ratio and resized, so a
person is never stretched. Tiny or broken images are refused with the fix in the message.

Photo files (:func:`load_photo`, :func:`check_photo_file`) are read with PIL with the tones
right whatever the mode: 16-bit grayscale (``I;16``/``I``) is scaled from 0..65535, palette
images keep their transparency, CMYK/YCbCr/LAB become RGB, EXIF orientation is applied. A file
that is not an image, is truncated, or is larger than :data:`MAX_PHOTO_BYTES` /
:data:`MAX_PHOTO_PIXELS` is refused with :class:`InputError` naming the file, the cheap checks
(header, size, PNG chunk checksums) before any pixel is decoded.
"""
from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import InputError

#: Smallest reference side accepted, in pixels (the VAE downsamples by 8; CLIP sees 224).
MIN_REFERENCE_SIDE = 32
#: Largest photo file accepted, in bytes (100 MiB), checked before the file is opened.
MAX_PHOTO_BYTES = 100 * 2 ** 20
#: Largest photo accepted, in pixels (50 megapixels, e.g. 8660 x 5773), checked on the header
#: before any pixel is decoded (a decompression bomb declares billions).
MAX_PHOTO_PIXELS = 50_000_000
#: What to do about a photo that cannot be read.
_PHOTO_FIX = "re-save it as PNG or JPEG (8-bit RGB), or pick another photo"
#: What PIL and its codecs raise on broken files (UnidentifiedImageError and
#: DecompressionBombError included: they subclass OSError / Exception).
_PIL_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, zlib.error, IndexError, KeyError,
               TypeError, MemoryError, Image.DecompressionBombError)

PathLike = Union[str, Path]


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """IMAGE ``(B, H, W, C)`` with C in {1, 2, 3, 4} -> ``(B, H, W, 3)``; alpha composited over white."""
    if image.ndim == 3:
        image = image[..., None]
    if image.ndim != 4:
        raise InputError(f"reference image must be an IMAGE (batch, height, width, channels), got {tuple(image.shape)}")
    channels = image.shape[-1]
    if channels == 3:
        return image
    if channels == 1:
        return image.expand(*image.shape[:-1], 3)
    if channels in (2, 4):
        color, alpha = image[..., :-1], image[..., -1:].clamp(0, 1)
        color = color.expand(*color.shape[:-1], 3) if color.shape[-1] == 1 else color
        return color * alpha + (1.0 - alpha)
    raise InputError(f"reference image has {channels} channels; expected 1 (gray), 3 (RGB) or 4 (RGBA)")


def fit_crop(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``(1, 3, H, W)`` -> centre crop to ``width/height`` aspect, then antialiased resize."""
    _, _, h, w = image.shape
    target = width / height
    if w / h > target:
        new_w = max(1, round(h * target))
        left = (w - new_w) // 2
        image = image[..., left:left + new_w]
    else:
        new_h = max(1, round(w / target))
        top = (h - new_h) // 2
        image = image[..., top:top + new_h, :]
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(image, size=(height, width), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)


def prepare_reference(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """ComfyUI IMAGE -> Champ reference ``(1, 3, height, width)`` float32 in [0, 1]."""
    if height % 8 or width % 8:
        raise InputError(f"video size must be multiples of 8, got {width}x{height}")
    if not isinstance(image, torch.Tensor) or not image.is_floating_point():
        raise InputError(f"reference image must be a float tensor (ComfyUI IMAGE), got {type(image).__name__}")
    rgb = to_rgb(image.float())[:1]
    if min(rgb.shape[1:3]) < MIN_REFERENCE_SIDE:
        raise InputError(f"reference image is {rgb.shape[2]}x{rgb.shape[1]} pixels; use a photo of at least "
                         f"{MIN_REFERENCE_SIDE}x{MIN_REFERENCE_SIDE} (ideally the video size, e.g. 512x512)")
    if not torch.isfinite(rgb).all():
        raise InputError("reference image contains NaN or infinite values")
    return fit_crop(rgb.clamp(0, 1).permute(0, 3, 1, 2).contiguous(), height, width)


# ----------------------------------------------------------------------------- photo files

def _photo_error(path: Path, what: str) -> InputError:
    return InputError(f"photo {path.name} {what}; {_PHOTO_FIX} ({path})")


def _open(path: Path) -> Image.Image:
    """``Image.open`` (lazy: header only) with PIL's own bomb check replaced by ours."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(path)
        except Image.DecompressionBombError as e:
            raise _photo_error(path, f"declares too many pixels ({e}); the limit is {MAX_PHOTO_PIXELS:,} "
                                     "pixels") from e
        except UnidentifiedImageError as e:
            raise _photo_error(path, "is not an image file PIL can read (wrong extension or corrupt)") from e
        except _PIL_ERRORS as e:
            raise _photo_error(path, f"could not be opened ({type(e).__name__}: {e})") from e


def check_photo_file(path: PathLike) -> tuple[int, int]:
    """Cheap checks of a photo file before any model loads; returns its ``(width, height)``.

    Reads only the header (plus, for PNG, the chunk checksums via PIL's ``verify``): the file
    exists, is at most :data:`MAX_PHOTO_BYTES`, is an image PIL can identify, declares at most
    :data:`MAX_PHOTO_PIXELS` and sides of at least :data:`MIN_REFERENCE_SIDE`.

    Raises:
        InputError: naming the file, what is wrong and what to do.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"photo file not found: {path}")
    if not path.is_file():
        raise InputError(f"photo path is not a file: {path}")
    size = path.stat().st_size
    if size == 0:
        raise _photo_error(path, "is empty (0 bytes)")
    if size > MAX_PHOTO_BYTES:
        raise InputError(f"photo {path.name} is {size / 2 ** 20:.1f} MiB, above the limit of "
                         f"{MAX_PHOTO_BYTES / 2 ** 20:.0f} MiB; save a smaller copy (e.g. JPEG, at most "
                         f"about 4000 px a side) ({path})")
    with _open(path) as image:
        width, height = image.size
        if width * height > MAX_PHOTO_PIXELS:
            raise InputError(f"photo {path.name} is {width}x{height} pixels, above the limit of "
                             f"{MAX_PHOTO_PIXELS:,} pixels; scale it down (a side of 512-2048 px is plenty) "
                             f"({path})")
        if min(width, height) < MIN_REFERENCE_SIDE:
            raise InputError(f"photo {path.name} is {width}x{height} pixels; use a photo of at least "
                             f"{MIN_REFERENCE_SIDE}x{MIN_REFERENCE_SIDE} (ideally the video size, e.g. 512x512)")
        try:
            image.verify()
        except _PIL_ERRORS as e:
            raise _photo_error(path, f"is corrupt ({type(e).__name__}: {e})") from e
    return width, height


def _to_array(image: Image.Image) -> np.ndarray:
    """A decoded PIL image -> float32 ``(H, W, 3 or 4)`` in [0, 1] with the mode's tones right."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grayscale (PNG opens as I;16 or I): 0..65535, not 0..255 (which clipped to white)
        gray = np.asarray(image).astype(np.float32)
        gray = np.clip(gray, 0, 65535) / 65535.0
        return np.repeat(gray[..., None], 3, axis=-1)
    if mode == "F":
        gray = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
        return np.repeat(np.clip(gray, 0, 1)[..., None], 3, axis=-1)
    has_alpha = "A" in mode or "a" in mode or "transparency" in image.info
    rgb = image.convert("RGBA" if has_alpha else "RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def load_photo(path: PathLike) -> torch.Tensor:
    """A photo file -> ComfyUI IMAGE ``(1, H, W, 3 or 4)`` float32 in [0, 1].

    The tones are right for 8- and 16-bit grayscale, palette (with transparency), RGB(A), CMYK
    and YCbCr files; the EXIF orientation is applied; an alpha channel is kept as the 4th
    channel (:func:`to_rgb` composites it over white). Multi-frame files give their first frame.

    Raises:
        InputError: missing, empty, too large, not an image, truncated or corrupt (see
            :func:`check_photo_file`), naming the file and the fix.
    """
    path = Path(path)
    check_photo_file(path)
    with _open(path) as image:
        try:
            image.load()
            upright = ImageOps.exif_transpose(image)
            array = _to_array(upright)
        except InputError:
            raise
        except _PIL_ERRORS as e:
            raise _photo_error(path, f"could not be decoded ({type(e).__name__}: {e}); the file is truncated "
                                     "or corrupt") from e
    if array.ndim != 3 or min(array.shape[:2]) < 1:
        raise _photo_error(path, f"decoded to an unexpected shape {array.shape}")
    return torch.from_numpy(np.ascontiguousarray(array))[None]
