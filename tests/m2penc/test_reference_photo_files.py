"""Photo files as users supply them (issue 17): every mode with the right tones, bad files refused fast.

Before ``load_photo`` the library read photos with ``Image.open(path).convert("RGBA")``: a
16-bit grayscale PNG came out almost all white (mean 0.998 for mid-grey).
"""
from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from m2pdance.m2penc import reference_image
from m2pdance.m2penc.errors import InputError
from m2pdance.m2penc.reference_image import check_photo_file, load_photo, prepare_reference

SIZE = (48, 40)  # width, height


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: Path, width: int, height: int, bit_depth: int, color_type: int, rows) -> Path:
    """A PNG written by hand (for 16-bit RGB and bombs, which PIL does not write)."""
    compressor = zlib.compressobj(1)
    body = b"".join(compressor.compress(b"\x00" + row) for row in rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", body) + _chunk(b"IEND", b""))
    return path


def test_16bit_grayscale_png_mid_grey_is_half(tmp_path):
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full(SIZE[::-1], 32768, dtype=np.uint16)).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    image = load_photo(path)
    assert image.shape == (1, SIZE[1], SIZE[0], 3) and str(image.dtype) == "torch.float32"
    assert image.mean().item() == pytest.approx(0.5, abs=1e-3)


def test_16bit_grayscale_gradient_keeps_its_tones(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, SIZE[0]).astype(np.uint16), (SIZE[1], 1))
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp).save(path)
    image = load_photo(path)
    np.testing.assert_allclose(image[0, 0, :, 0].numpy(), ramp[0] / 65535.0, atol=1e-4)
    tiff = tmp_path / "ramp16.tif"
    Image.fromarray(ramp).save(tiff)
    np.testing.assert_allclose(load_photo(tiff)[0, 0, :, 0].numpy(), ramp[0] / 65535.0, atol=1e-4)


def test_16bit_rgb_png(tmp_path):
    rows = [struct.pack(">" + "H" * 3 * SIZE[0], *([65535, 32768, 0] * SIZE[0])) for _ in range(SIZE[1])]
    path = write_png(tmp_path / "rgb16.png", *SIZE, bit_depth=16, color_type=2, rows=rows)
    image = load_photo(path)
    np.testing.assert_allclose(image[0].mean(dim=(0, 1)).numpy(), [1.0, 0.5, 0.0], atol=3e-3)


def test_palette_with_transparency_keeps_alpha(tmp_path):
    palette = Image.new("P", SIZE)
    palette.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    pixels = np.zeros(SIZE[::-1], dtype=np.uint8)
    pixels[:, SIZE[0] // 2:] = 1
    palette.putdata(pixels.ravel().tolist())
    path = tmp_path / "palette.png"
    palette.save(path, transparency=1)
    image = load_photo(path)
    assert image.shape[-1] == 4
    assert image[0, 0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert image[0, 0, -1, 3].item() == 0.0  # transparent index
    rgb = prepare_reference(image, 40, 48)
    assert rgb[0, :, 0, -1].tolist() == [1.0, 1.0, 1.0]  # composited over white


def test_cmyk_jpeg_and_tiff(tmp_path):
    cmyk = Image.new("CMYK", SIZE, (255, 0, 0, 0))  # pure cyan
    for name in ("cyan.jpg", "cyan.tif"):
        cmyk.save(tmp_path / name)
        image = load_photo(tmp_path / name)
        assert image.shape[-1] == 3
        np.testing.assert_allclose(image[0].mean(dim=(0, 1)).numpy(), [0.0, 1.0, 1.0], atol=0.03)


def test_exif_rotation_is_applied(tmp_path):
    pixels = np.zeros((SIZE[1], SIZE[0], 3), dtype=np.uint8)
    pixels[: SIZE[1] // 2] = 255  # top half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=95)
    image = load_photo(path)
    assert image.shape == (1, SIZE[0], SIZE[1], 3)  # upright: width and height swapped
    assert image[0, :, -1].mean() > 0.9 and image[0, :, 0].mean() < 0.1  # the white top is now on the right


@pytest.mark.parametrize("mode, value, expected", [
    ("L", 128, [128 / 255] * 3),
    ("LA", (64, 255), [64 / 255] * 3 + [1.0]),
    ("RGBA", (10, 20, 30, 128), [10 / 255, 20 / 255, 30 / 255, 128 / 255]),
    ("RGB", (200, 100, 50), [200 / 255, 100 / 255, 50 / 255]),
    ("1", 1, [1.0, 1.0, 1.0]),
])
def test_8bit_modes(tmp_path, mode, value, expected):
    path = tmp_path / f"{mode}.png"
    Image.new(mode, SIZE, value).save(path)
    image = load_photo(path)
    np.testing.assert_allclose(image[0, 0, 0].numpy(), expected, atol=1e-6)


def _assert_refused_fast(path: Path, match: str) -> None:
    for function in (check_photo_file, load_photo):
        began = time.perf_counter()
        with pytest.raises(InputError, match=match) as info:
            function(path)
        assert time.perf_counter() - began < 2.0
        assert path.name in str(info.value)


def test_truncated_png(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    _assert_refused_fast(path, "re-save it")


def test_truncated_jpeg_is_refused_at_decode(tmp_path):
    path = tmp_path / "cut.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (200, 200, 3), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="cut.jpg.*truncated"):
        load_photo(path)


def test_non_image_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not pixels\n" * 50)
    _assert_refused_fast(path, "not an image")


def test_empty_and_missing(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    _assert_refused_fast(tmp_path / "empty.png", "empty")
    with pytest.raises(InputError, match="not found"):
        check_photo_file(tmp_path / "missing.png")


@pytest.mark.parametrize("side", [10_000, 40_000])  # above our limit; above PIL's own bomb error
def test_decompression_bomb(tmp_path, side):
    path = tmp_path / f"bomb{side}.png"
    write_png(path, side, side, bit_depth=1, color_type=0, rows=[bytes(side // 8)] * 64)  # rows cut short
    _assert_refused_fast(path, "pixels")


def test_byte_limit_is_checked_before_opening(tmp_path, monkeypatch):
    path = tmp_path / "big.png"
    Image.new("RGB", SIZE).save(path)
    monkeypatch.setattr(reference_image, "MAX_PHOTO_BYTES", 64)
    monkeypatch.setattr(reference_image.Image, "open", lambda *a, **k: pytest.fail("opened"))
    _assert_refused_fast(path, "MiB")


def test_tiny_photo_refused_before_decoding(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8)).save(path)
    _assert_refused_fast(path, "at least 32x32")


def test_dance_checks_the_photo_before_any_model_loads(tmp_path, monkeypatch):
    from m2pdance.m2penc import dance

    monkeypatch.setattr(dance, "load_m2penc", lambda *a, **k: pytest.fail("models loaded before the photo check"))
    photo = tmp_path / "photo.png"
    photo.write_text("not an image")
    weights = dance.DanceWeights(m2penc="m.safetensors", champ="c", vae="v", image_encoder="i")
    began = time.perf_counter()
    with pytest.raises(InputError, match="photo.png"):
        dance.make_dance_video(tmp_path / "music.wav", photo, tmp_path / "out.mp4", weights)
    assert time.perf_counter() - began < 2.0


def test_dance_encode_photo_reads_16bit_tones(tmp_path, monkeypatch):
    from m2pdance.m2penc import dance

    seen = []
    monkeypatch.setattr(dance, "encode_reference", lambda models, pixels: seen.append(pixels))
    path = tmp_path / "grey16.png"
    Image.fromarray(np.full((64, 64), 32768, dtype=np.uint16)).save(path)
    dance.encode_photo(None, path, 64, 64)
    assert seen[0].shape == (1, 3, 64, 64)
    assert seen[0].mean().item() == pytest.approx(0.5, abs=2e-3)
