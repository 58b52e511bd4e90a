"""Fuzzing the file entry points (issue 17): truncated and bit-flipped music, photos and weights.

Every case is a small valid file, cut short or with bytes flipped (seeded, so a failure is
reproducible: its name says how it was made), fed to the entry point users reach:

* music: :func:`m2penc.audio.io.load_audio` (wav, flac, mp3), in one subprocess per format,
  because a bug in PyAV/ffmpeg can crash the interpreter: a crash fails the test, not pytest;
* photos: :func:`m2penc.reference_image.check_photo_file` and ``load_photo`` (png, jpg);
* weights: :func:`m2penc.checkpoint.load_state_dict`, ``read_metadata`` and ``read_config``
  (safetensors, pth).

Each call must succeed or raise one of the project's errors (:class:`M2PDanceError`), and take
less than :data:`CASE_SECONDS`. About 900 cases; under 30 s on 2 cores.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from m2pdance.m2penc.checkpoint import load_state_dict, read_config, read_metadata, save_model
from m2pdance.m2penc.errors import M2PDanceError
from m2pdance.m2penc.reference_image import check_photo_file, load_photo

REPO_PARENT = Path(__file__).resolve().parents[2]
#: Longest any single case may take (seconds): no input may make a reader hang.
CASE_SECONDS = 5.0
#: Mutated cases per seed file.
CASES = {"wav": 100, "flac": 100, "mp3": 100, "png": 100, "jpg": 100, "safetensors": 300, "pth": 100}


def mutations(data: bytes, count: int, seed: int) -> list[tuple[str, bytes]]:
    """``count`` (name, bytes) variants of ``data``: truncations, byte flips in the header or
    anywhere, and both at once."""
    rng = np.random.default_rng(seed)
    out = []
    for case in range(count):
        kind = case % 4
        buf = bytearray(data)
        if kind in (0, 3):  # cut short anywhere, the header included
            cut = int(rng.integers(0, len(buf)))
            buf = buf[:cut]
        if kind in (1, 3) and buf:  # flip 1..8 bytes anywhere
            for at in rng.integers(0, len(buf), size=int(rng.integers(1, 9))):
                buf[at] ^= int(rng.integers(1, 256))
        if kind == 2 and buf:  # flip 1..4 bytes in the first 96 (headers, chunk sizes, dimensions)
            for at in rng.integers(0, min(96, len(buf)), size=int(rng.integers(1, 5))):
                buf[at] ^= int(rng.integers(1, 256))
        out.append((f"case{case:03d}_{['cut', 'flip', 'header', 'cutflip'][kind]}", bytes(buf)))
    return out


def _write_cases(folder: Path, suffix: str, data: bytes, count: int, seed: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, payload in mutations(data, count, seed):
        path = folder / f"{name}.{suffix}"
        path.write_bytes(payload)
        paths.append(path)
    return paths


def _check_in_process(paths: list[Path], *functions) -> None:
    """Each function on each path: success or M2PDanceError, each call under CASE_SECONDS."""
    bad, slow = [], []
    for path in paths:
        for function in functions:
            began = time.perf_counter()
            try:
                function(path)
            except M2PDanceError:
                pass
            except Exception as e:  # noqa: BLE001 -- collected and reported below
                bad.append(f"{path.name} {function.__name__}: {type(e).__name__}: {e}"[:300])
            if time.perf_counter() - began > CASE_SECONDS:
                slow.append(f"{path.name} {function.__name__}: {time.perf_counter() - began:.1f} s")
    assert not bad, "non-project errors:\n" + "\n".join(bad)
    assert not slow, "too slow:\n" + "\n".join(slow)


# ----------------------------------------------------------------------------- music

_AUDIO_CHILD = r"""
import json, sys, time
from m2pdance.m2penc.audio.io import load_audio
from m2pdance.m2penc.errors import M2PDanceError
report = {"bad": [], "slow": [], "ok": 0, "refused": 0}
for path in sys.argv[2:]:
    began = time.perf_counter()
    try:
        load_audio(path)
        report["ok"] += 1
    except M2PDanceError:
        report["refused"] += 1
    except Exception as e:
        report["bad"].append(f"{path}: {type(e).__name__}: {e}"[:300])
    if time.perf_counter() - began > float(sys.argv[1]):
        report["slow"].append(f"{path}: {time.perf_counter() - began:.1f} s")
print(json.dumps(report))
"""


def _music_seed(folder: Path, suffix: str) -> bytes:
    rng = np.random.default_rng(1)
    t = np.arange(4000) / 8000
    samples = np.stack([0.4 * np.sin(2 * np.pi * 330 * t), 0.1 * rng.standard_normal(t.size)], axis=1).astype(np.float32)
    path = folder / f"seed.{suffix}"
    if suffix in ("wav", "flac"):
        sf.write(path, samples, 8000)
    else:
        import av

        with av.open(str(path), "w") as container:
            stream = container.add_stream("libmp3lame", rate=8000, layout="stereo")
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples).reshape(1, -1), format="flt",
                                               layout="stereo")
            frame.sample_rate, frame.pts = 8000, 0
            for packet in [*stream.encode(frame), *stream.encode(None)]:
                container.mux(packet)
    return path.read_bytes()


@pytest.mark.parametrize("suffix", ["wav", "flac", "mp3"])
def test_fuzzed_music_files(tmp_path, suffix):
    paths = _write_cases(tmp_path / "cases", suffix, _music_seed(tmp_path, suffix), CASES[suffix],
                         seed=sum(map(ord, suffix)))
    proc = subprocess.run([sys.executable, "-c", _AUDIO_CHILD, str(CASE_SECONDS), *map(str, paths)],
                          capture_output=True, text=True, timeout=120, cwd=REPO_PARENT)
    assert proc.returncode == 0, f"a fuzzed {suffix} crashed the interpreter (exit {proc.returncode}): {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not report["bad"], "non-project errors:\n" + "\n".join(report["bad"])
    assert not report["slow"], "too slow:\n" + "\n".join(report["slow"])
    assert report["ok"] + report["refused"] == len(paths)
    assert report["refused"] > 0  # the mutations do reach the error paths


# ----------------------------------------------------------------------------- photos

def _photo_seed(suffix: str) -> bytes:
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (48, 40, 4 if suffix == "png" else 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG" if suffix == "png" else "JPEG", quality=80)
    return buffer.getvalue()


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_fuzzed_photo_files(tmp_path, suffix):
    paths = _write_cases(tmp_path, suffix, _photo_seed(suffix), CASES[suffix], seed=sum(map(ord, suffix)))
    _check_in_process(paths, check_photo_file, load_photo)


# ----------------------------------------------------------------------------- weights

class _Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = torch.nn.Linear(4, 3)
        self.norm = torch.nn.LayerNorm(3)


def _read_config(path: Path) -> dict:
    return read_config(path, "fuzz-tiny")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")  # torch's note on a flipped protocol byte
@pytest.mark.parametrize("suffix", ["safetensors", "pth"])
def test_fuzzed_weights_files(tmp_path, suffix):
    seed_path = tmp_path / f"seed.{suffix}"
    module = _Tiny()
    if suffix == "safetensors":
        save_model(seed_path, module.state_dict(), kind="fuzz-tiny", config_json=json.dumps({"width": 4}))
    else:
        torch.save({"state_dict": module.state_dict()}, seed_path)
    paths = _write_cases(tmp_path / "cases", suffix, seed_path.read_bytes(), CASES[suffix], seed=sum(map(ord, suffix)))
    _check_in_process(paths, load_state_dict, read_metadata, *([_read_config] if suffix == "safetensors" else []))


@pytest.mark.parametrize("metadata", [{"m2pdance.kind": "fuzz-tiny"},
                                      {"m2pdance.kind": "fuzz-tiny", "m2pdance.config": "{'width': 4"},
                                      {"m2pdance.kind": "fuzz-tiny", "m2pdance.config": "[4]"}])
def test_damaged_config_metadata_is_a_weights_error(tmp_path, metadata):
    """Found by fuzzing: a flipped byte in the safetensors header gave KeyError / JSONDecodeError."""
    from safetensors.torch import save_file

    from m2pdance.m2penc.errors import WeightsError

    path = tmp_path / "damaged.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata=metadata)
    with pytest.raises(WeightsError, match="damaged.safetensors.*missing or damaged"):
        read_config(path, "fuzz-tiny")
