"""SDGPip shards on disk: a deterministic webdataset-style tar writer and a safe reader.

Layout of a built dataset folder ``root/`` (the builder also writes ``root/build.json`` and
``root/index.json``; reading needs only the shards and their sidecars)::

    root/shards/shard-000000.tar    the samples, a plain USTAR tar (webdataset-compatible)
    root/shards/shard-000000.json   its sidecar index: every member's data offset and size

A *sample* is one continuous dance clip of ``N`` frames. Its key matches :data:`KEY_PATTERN`
(no dots: webdataset groups members by the name before the first dot; at most :data:`KEY_MAX_LENGTH`
= 80 characters so every member name fits USTAR's 100-byte name field). Its members, in exactly
this order (the *member order*; the tar holds the samples one after the other):

1. ``{key}.json``: the metadata, :func:`canonical_json` of it (sorted keys, no whitespace);
   a JSON object with ``num_frames`` (N, 1..99999) and whatever the builder adds (source,
   split, fps, ...).
2. ``{key}.{field}.npy``: one ``np.save`` array (``allow_pickle=False``, C order) per per-sample
   field, fields sorted by name, first dimension N.
3. ``{key}.{f:05d}.{field}.{ext}``: frame ``f``'s member of each per-frame field, frame by frame,
   fields in :data:`FIELDS` order.

:data:`FIELDS` is the codec table (field -> codec, dtypes and shape); :data:`CODECS` says how each
codec stores a frame: ``npy`` (whole array per sample), ``npy_frame`` (one ``.npy`` per frame),
``png_gray`` / ``png_rgb`` (8-bit PNG), ``png_tiles`` (``(K, G, G)`` maps side by side in one
``G x K*G`` grayscale PNG) and ``jpg`` (RGB, quality 95, 4:4:4). Extending the format means adding
a row to :data:`FIELDS` (and a codec to :data:`CODECS` if none fits).

The sidecar (sorted keys, no timestamps) holds ``format``, ``version``, ``shard``, ``build_id``,
``tar_name``, ``tar_bytes``, ``tar_sha256`` and per sample ``key``, ``meta``, ``arrays`` (field ->
dtype and full shape, so a reader checks sizes before reading) and ``members`` (field -> one
``[offset, size]`` per per-sample field, N per per-frame field): byte offsets of the member DATA
in the tar, so :meth:`SDGPipShards.read` seeks and reads without parsing the tar.

Determinism: the same samples give byte-identical tar and sidecar files in any process with the
same Pillow/zlib/libjpeg builds (USTAR, mtime 0, uid/gid 0, empty owner names, mode 0644, no PNG
metadata chunks, fixed PNG level and JPEG quality/subsampling, sorted JSON).
Atomicity: the tar and then its sidecar are written through
:func:`~m2penc.checkpoint.atomic_write`; a shard counts as finished only when the sidecar exists
and the tar has the size it records (:func:`finished_shards`). A killed writer leaves only
``.shard-XXXXXX.tar.*.partial`` files, removed by :func:`remove_stale_partials`.

Reading treats every file as hostile: sidecars and tars must be regular files (not symlinks,
FIFOs, devices or folders: a FIFO would block a reader forever, a link could lead outside the
dataset folder); the sidecar is size-bounded and fully validated, including that the members'
``[offset, offset + size)`` data spans follow each other without overlap in the member order,
across samples too (so a tiny shard cannot make many frames decode one member); members are read
with one seek + read inside the tar's recorded size, arrays are checked against the sizes the
sidecar declares *before* anything is allocated, ``.npy`` headers are parsed without
pickle (object dtypes are refused) and images must have the expected format, mode and size.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
from PIL import Image

from ...m2penc.checkpoint import atomic_write
from ...m2penc.errors import InputError
from ...weights_manifest.verify import sha256_of

PathLike = Union[str, os.PathLike]

FORMAT = "m2pdance.sdgpip.shard"
VERSION = 1
SHARD_DIR = "shards"
#: Longest sample key: ``{key}.{f:05d}.{field}.{ext}`` then fits USTAR's 100-byte name field
#: (no prefix split is ever needed).
KEY_MAX_LENGTH = 80
#: Sample keys: 1..KEY_MAX_LENGTH of these characters (no dots, so webdataset's first-dot grouping works).
KEY_PATTERN = re.compile(rf"[A-Za-z0-9_-]{{1,{KEY_MAX_LENGTH}}}")
_SHARD_NAME = re.compile(r"shard-(\d{6})\.(tar|json)")
#: Five-digit frame numbers in member names.
MAX_FRAMES = 99_999
#: PNG zlib level. Measured on 512 x 512 sparse maps (2 CPU cores, Pillow 13): an OpenPose
#: skeleton (RGB) is 12.1 / 11.5 / 6.8 / 6.1 KB at levels 1 / 3 / 6 / 9, encoded in 6.4 / 6.0 /
#: 8.0 / 22 ms; a depth silhouette (gray) 17.1 / 15.4 / 12.1 / 10.9 KB in 2.0 / 2.7 / 5.4 / 37 ms.
#: Level 6 is 20-45 % smaller than 1-3 for a few ms more; 9 saves ~10 % more for 3-7x the time.
PNG_COMPRESS_LEVEL = 6
JPEG_QUALITY = 95
JPEG_SUBSAMPLING = 0          # 4:4:4, no chroma subsampling
#: Largest image a frame may decode to (pixels); a hostile sidecar or PNG cannot ask for more.
MAX_FRAME_PIXELS = 4096 * 4096
#: Largest sidecar index read (bytes) and largest per-sample metadata JSON written or read.
MAX_INDEX_BYTES = 64 << 20
MAX_META_BYTES = 64 << 10
#: Largest ``.npy`` header accepted (numpy's own default limit is 10000 bytes).
MAX_NPY_HEADER = 1 << 16
_BLOCK = tarfile.BLOCKSIZE
_USTAR_NAME_MAX = 100
_REBUILD = "rebuild this shard: re-run the same sdgpip command (finished shards are skipped)"
_BUILD_HINT = "build it with `m2pdance-train sdgpip ... --out DIR`"


# ----- the codec table ----------------------------------------------------------------------

@dataclass(frozen=True)
class Codec:
    """How one field is stored: file extension and whether there is one member per frame."""

    ext: str
    per_frame: bool


@dataclass(frozen=True)
class FieldSpec:
    """One row of the codec table.

    Attributes:
        codec: a key of :data:`CODECS`.
        dtypes: allowed numpy dtype names (stored little-endian).
        shape: the shape after the leading N; ``None`` is any size >= 1.
        square: the last two dimensions must be equal (a ``G x G`` grid).
    """

    codec: str
    dtypes: tuple[str, ...]
    shape: tuple[Optional[int], ...]
    square: bool = False


CODECS: dict[str, Codec] = {
    "npy": Codec("npy", per_frame=False),        # (N, ...) in one .npy per sample
    "npy_frame": Codec("npy", per_frame=True),   # (...) one .npy per frame
    "png_gray": Codec("png", per_frame=True),    # (H, W) uint8, mode L
    "png_rgb": Codec("png", per_frame=True),     # (H, W, 3) uint8, mode RGB
    "png_tiles": Codec("png", per_frame=True),   # (K, G, G) uint8 as one G x (K*G) mode-L image
    "jpg": Codec("jpg", per_frame=True),         # (H, W, 3) uint8 RGB, quality 95, 4:4:4
}

#: The codec table, field -> spec; per-frame members are written in this order.
FIELDS: dict[str, FieldSpec] = {
    "features": FieldSpec("npy", ("float32", "float16"), (None,)),                   # (N, D) music
    "keypoints": FieldSpec("npy", ("float32",), (18, 3)),                             # OpenPose-18 x, y, conf
    "depth": FieldSpec("png_gray", ("uint8",), (None, None)),                         # (N, H, W)
    "normal": FieldSpec("png_rgb", ("uint8",), (None, None, 3)),                      # (N, H, W, 3)
    "semantic": FieldSpec("png_rgb", ("uint8",), (None, None, 3)),
    "skeleton": FieldSpec("png_rgb", ("uint8",), (None, None, 3)),
    "heatmaps": FieldSpec("png_tiles", ("uint8",), (None, None, None), square=True),  # (N, K, G, G)
    "video": FieldSpec("jpg", ("uint8",), (None, None, 3)),                           # (N, H, W, 3)
    "guidance": FieldSpec("npy_frame", ("float16",), (None, None, None), square=True),  # (N, C, G, G)
}
_IMAGE_FRAME_NDIM = {"png_gray": 2, "png_rgb": 3, "png_tiles": 3, "jpg": 3}
for _name, _spec in FIELDS.items():   # the table is data; keep it consistent when extending it
    assert re.fullmatch(r"[a-z][a-z0-9_]*", _name) and _name != "json", _name
    assert _spec.codec in CODECS, (_name, _spec.codec)
    if _spec.codec in _IMAGE_FRAME_NDIM:
        assert _spec.dtypes == ("uint8",) and len(_spec.shape) == _IMAGE_FRAME_NDIM[_spec.codec], _name


def _frame_pixels(codec: str, frame_shape: Sequence[int]) -> int:
    """Pixels one frame of an image codec decodes to (0 for array codecs)."""
    if codec not in _IMAGE_FRAME_NDIM:
        return 0
    pixels = math.prod(frame_shape)
    return pixels // 3 if codec in ("png_rgb", "jpg") else pixels


def _short(value: Any, limit: int = 80) -> str:
    """``repr`` cut to ``limit`` characters (hostile files can hold huge values)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _round_up(offset: int) -> int:
    """``offset`` rounded up to a whole tar block."""
    return -(-offset // _BLOCK) * _BLOCK


def _as_int(value: Any) -> Optional[int]:
    """``value`` as an int if it is a Python or numpy integer (not a bool), else ``None``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def _per_sample_fields(names: Iterable[str]) -> list[str]:
    return sorted(n for n in names if not CODECS[FIELDS[n].codec].per_frame)


def _per_frame_fields(names: Iterable[str]) -> list[str]:
    names = set(names)
    return [n for n in FIELDS if n in names and CODECS[FIELDS[n].codec].per_frame]


def sample_member(key: str, field_name: str) -> str:
    """Tar member name of a per-sample field (``{key}.{field}.npy``)."""
    return f"{key}.{field_name}.{CODECS[FIELDS[field_name].codec].ext}"


def frame_member(key: str, frame: int, field_name: str) -> str:
    """Tar member name of frame ``frame`` of a per-frame field (``{key}.{f:05d}.{field}.{ext}``)."""
    return f"{key}.{frame:05d}.{field_name}.{CODECS[FIELDS[field_name].codec].ext}"


def shard_path(root: PathLike, shard: int) -> Path:
    """``root/shards/shard-XXXXXX.tar``."""
    return Path(root) / SHARD_DIR / f"shard-{shard:06d}.tar"


def index_path(tar_path: PathLike) -> Path:
    """The sidecar of a shard tar: the same name with ``.json``."""
    return Path(tar_path).with_suffix(".json")


# ----- data types ---------------------------------------------------------------------------

@dataclass(frozen=True)
class SampleData:
    """One sample to write.

    Attributes:
        key: matches :data:`KEY_PATTERN`, unique within the shard.
        meta: JSON object with ``num_frames`` (N); written as ``{key}.json`` and into the sidecar.
        fields: field name (a key of :data:`FIELDS`) -> numpy array, first dimension N, e.g.
            ``features (N, D)`` float32/float16, ``keypoints (N, 18, 3)`` float32,
            ``depth (N, H, W)`` uint8, ``normal``/``semantic``/``skeleton``/``video``
            ``(N, H, W, 3)`` uint8, ``heatmaps (N, K, G, G)`` uint8, ``guidance (N, C, G, G)`` float16.
    """

    key: str
    meta: dict = field(hash=False)
    fields: dict = field(hash=False)


@dataclass(frozen=True)
class ArraySpec:
    """dtype name and full shape ``(N, ...)`` of one stored field."""

    dtype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class IndexedSample:
    """One sample of a sidecar: key, metadata, array specs and member ``(offset, size)`` of the DATA.

    ``members[field]`` has one entry for a per-sample field and N for a per-frame field.
    """

    key: str
    meta: dict = field(hash=False)
    arrays: dict = field(hash=False)      # field -> ArraySpec
    members: dict = field(hash=False)     # field -> tuple[tuple[int, int], ...]

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])


@dataclass(frozen=True)
class ShardIndex:
    """A validated sidecar (``shard-XXXXXX.json``) and where its tar is."""

    shard: int
    build_id: str
    tar_path: Path
    json_path: Path
    tar_bytes: int
    tar_sha256: str
    samples: tuple[IndexedSample, ...]

    def to_json(self) -> dict[str, Any]:
        """The sidecar document (written with sorted keys, no whitespace)."""
        return {
            "format": FORMAT, "version": VERSION, "shard": self.shard, "build_id": self.build_id,
            "tar_name": self.tar_path.name, "tar_bytes": self.tar_bytes, "tar_sha256": self.tar_sha256,
            "samples": [{"key": s.key, "meta": s.meta,
                         "arrays": {n: {"dtype": a.dtype, "shape": list(a.shape)} for n, a in s.arrays.items()},
                         "members": {n: [list(m) for m in ms] for n, ms in s.members.items()}}
                        for s in self.samples],
        }


@dataclass(frozen=True)
class SampleRef:
    """A sample of a dataset folder: its shard, key, metadata and frame count."""

    shard: int
    key: str
    meta: dict = field(hash=False)
    num_frames: int


def canonical_json(obj: Any) -> bytes:
    """``obj`` as canonical JSON bytes: UTF-8, sorted keys, no whitespace, NaN/inf refused (``ValueError``).

    What the shards store (``{key}.json`` members, sidecars); equal data gives equal bytes in any process.
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


# ----- codecs -------------------------------------------------------------------------------

class _Corrupt(Exception):
    """A member's bytes are not what the sidecar says; callers add the file and member names."""


def _encode_npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=False)
    return buf.getvalue()


def _encode_png(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


def _encode_frame(codec: str, frame: np.ndarray) -> bytes:
    """One frame of a per-frame field -> member bytes (deterministic)."""
    if codec == "npy_frame":
        return _encode_npy(frame)
    if codec in ("png_gray", "png_rgb"):
        return _encode_png(frame)
    if codec == "png_tiles":
        k, g, _ = frame.shape
        return _encode_png(np.ascontiguousarray(frame.transpose(1, 0, 2).reshape(g, k * g)))
    if codec == "jpg":
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=JPEG_QUALITY, subsampling=JPEG_SUBSAMPLING,
                                    optimize=False, progressive=False)
        return buf.getvalue()
    raise AssertionError(codec)


def _npy_header(head: bytes) -> tuple[tuple[int, ...], np.dtype, int]:
    """Parse an ``.npy`` header without pickle: (shape, dtype, offset of the data)."""
    fp = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp, max_header_size=MAX_NPY_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp, max_header_size=MAX_NPY_HEADER)
        else:
            raise _Corrupt(f"unsupported .npy version {version}")
    except _Corrupt:
        raise
    except Exception as e:  # bad magic, truncated or malformed header
        raise _Corrupt(f"not a valid .npy array ({type(e).__name__}: {e})") from e
    if dtype.hasobject:
        raise _Corrupt(f"the .npy holds Python objects (dtype {dtype}), which would need pickle; refused")
    if fortran:
        raise _Corrupt("the .npy is in Fortran order; shards store C order")
    return tuple(int(d) for d in shape), dtype, fp.tell()


def _check_npy(head: bytes, size: int, spec: ArraySpec, shape: tuple[int, ...]) -> int:
    """Check an ``.npy`` member against the declared dtype and ``shape``; return the data offset."""
    got_shape, dtype, data_start = _npy_header(head)
    want = np.dtype(spec.dtype).newbyteorder("<")
    if dtype != want or got_shape != shape:
        raise _Corrupt(f"the .npy holds {dtype.str} {got_shape}, the index says {want.str} {shape}")
    if data_start + math.prod(shape) * dtype.itemsize != size:
        raise _Corrupt(f"the .npy has {size - data_start} data bytes, {shape} {dtype.str} needs "
                       f"{math.prod(shape) * dtype.itemsize}")
    return data_start


def _decode_image(blob: bytes, fmt: str, mode: str, size: tuple[int, int]) -> np.ndarray:
    """PNG/JPEG bytes -> uint8 array, refusing another format, mode or size before decoding."""
    try:
        with Image.open(io.BytesIO(blob), formats=[fmt]) as image:
            if image.format != fmt or image.mode != mode or image.size != size:
                raise _Corrupt(f"expected a {size[0]}x{size[1]} {mode} {fmt}, found a "
                               f"{image.size[0]}x{image.size[1]} {image.mode} {image.format}")
            image.load()
            return np.asarray(image, dtype=np.uint8)
    except _Corrupt:
        raise
    except Exception as e:  # not an image, truncated data, decompression bomb
        raise _Corrupt(f"not a readable {fmt} image ({type(e).__name__}: {e})") from e


def _decode_frame(codec: str, blob: bytes, spec: ArraySpec) -> np.ndarray:
    """Member bytes of one frame -> ``spec.shape[1:]`` array of ``spec.dtype``."""
    frame_shape = spec.shape[1:]
    if codec == "npy_frame":
        return _decode_npy(blob, ArraySpec(spec.dtype, frame_shape))
    if codec == "png_gray":
        h, w = frame_shape
        return _decode_image(blob, "PNG", "L", (w, h))
    if codec == "png_rgb":
        h, w, _ = frame_shape
        return _decode_image(blob, "PNG", "RGB", (w, h))
    if codec == "png_tiles":
        k, g, _ = frame_shape
        tiles = _decode_image(blob, "PNG", "L", (k * g, g))
        return np.ascontiguousarray(tiles.reshape(g, k, g).transpose(1, 0, 2))
    if codec == "jpg":
        h, w, _ = frame_shape
        return _decode_image(blob, "JPEG", "RGB", (w, h))
    raise AssertionError(codec)


# ----- writing ------------------------------------------------------------------------------

def _check_sample(sample: SampleData, seen: set[str], where: str) -> tuple[dict, dict[str, np.ndarray]]:
    """Validate one sample; return its canonical meta and little-endian C-contiguous arrays."""
    if not isinstance(sample, SampleData):
        raise InputError(f"{where}: samples must be SampleData, got {type(sample).__name__}")
    key = sample.key
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise InputError(f"{where}: sample key {key!r} must be 1-{KEY_MAX_LENGTH} characters of A-Z a-z 0-9 _ - "
                         "(no dots: webdataset groups members by the name before the first dot; the length keeps "
                         "member names inside USTAR's 100 bytes)")
    if key in seen:
        raise InputError(f"{where}: sample key {key!r} appears twice in this shard; keys must be unique")
    where = f"{where}, sample {key!r}"
    if not isinstance(sample.meta, Mapping):
        raise InputError(f"{where}: meta must be a dict (a JSON object), got {type(sample.meta).__name__}")
    try:
        text = canonical_json(dict(sample.meta))
    except (TypeError, ValueError) as e:
        raise InputError(f"{where}: meta must be JSON with string keys and finite numbers ({e})") from e
    if len(text) > MAX_META_BYTES:
        raise InputError(f"{where}: meta is {len(text)} bytes of JSON, more than {MAX_META_BYTES}; keep "
                         "per-sample metadata small (put big data in fields)")
    meta = json.loads(text)
    n = meta.get("num_frames")
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_FRAMES:
        raise InputError(f"{where}: meta['num_frames'] must be an int in 1..{MAX_FRAMES}, got {n!r}")
    if not isinstance(sample.fields, Mapping) or not sample.fields:
        raise InputError(f"{where}: fields must be a non-empty dict field name -> numpy array")
    unknown = sorted(set(sample.fields) - set(FIELDS), key=str)
    if unknown:
        raise InputError(f"{where}: unknown fields {unknown}; known fields (codec table FIELDS): {list(FIELDS)}")
    arrays = {}
    for name, array in sample.fields.items():
        spec = FIELDS[name]
        if not isinstance(array, np.ndarray):
            raise InputError(f"{where}: field {name!r} must be a numpy array, got {type(array).__name__} "
                             "(convert tensors with .cpu().numpy())")
        if array.dtype.name not in spec.dtypes:
            raise InputError(f"{where}: field {name!r} must have dtype {' or '.join(spec.dtypes)}, got {array.dtype}")
        pattern = "(N, " + ", ".join("*" if d is None else str(d) for d in spec.shape) + ")"
        tail = array.shape[1:]
        if (array.ndim != 1 + len(spec.shape) or any(d is not None and t != d for t, d in zip(tail, spec.shape))
                or 0 in tail or (spec.square and tail[-1] != tail[-2])):
            raise InputError(f"{where}: field {name!r} must be {pattern}" + (" with a square G x G grid" if spec.square
                             else "") + f", got {array.shape}")
        if array.shape[0] != n:
            raise InputError(f"{where}: field {name!r} has {array.shape[0]} frames but meta['num_frames'] is {n}")
        if _frame_pixels(spec.codec, tail) > MAX_FRAME_PIXELS:
            raise InputError(f"{where}: field {name!r} frames of {tail} exceed {MAX_FRAME_PIXELS} pixels")
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise InputError(f"{where}: field {name!r} contains NaN or inf")
        arrays[name] = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    longest = max([sample_member(key, f) for f in arrays] + [frame_member(key, n - 1, f) for f in arrays], key=len)
    if len(longest.encode("ascii")) > _USTAR_NAME_MAX:
        raise InputError(f"{where}: member name {longest!r} is longer than USTAR's {_USTAR_NAME_MAX} bytes; "
                         "use a shorter key")
    return meta, arrays


class _HashingWriter:
    """File wrapper that hashes and counts what tarfile writes."""

    def __init__(self, raw: BinaryIO):
        self.raw, self.sha256, self.count = raw, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.raw.write(data)
        self.sha256.update(data)
        self.count += len(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.raw.flush()


def _add_member(tar: tarfile.TarFile, name: str, data: bytes) -> tuple[int, int]:
    """Append one deterministic regular-file member; return (offset of its data, size)."""
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = len(data), 0, 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    start = tar.offset
    tar.addfile(info, io.BytesIO(data))
    assert tar.offset == start + _BLOCK + _round_up(len(data)), "a USTAR header is one block"
    return start + _BLOCK, len(data)


def write_shard(path: PathLike, samples: Iterable[SampleData], *, shard: int, build_id: str,
                on_sample: Optional[Callable[[SampleData], None]] = None) -> ShardIndex:
    """Write one shard tar and then its sidecar index, atomically and deterministically.

    Args:
        path: ``.../shard-XXXXXX.tar`` with XXXXXX = ``shard`` (see :func:`shard_path`).
        samples: the samples in order; may be a generator building them one at a time (each is
            validated, then its members are written as it arrives).
        shard: the shard number (0..999999).
        build_id: the builder's identifier of this build (stored in the sidecar).
        on_sample: called with each sample after its members are written (progress).

    Any error (an invalid sample, an exception from ``samples``) leaves no tar and no sidecar: the
    previous sidecar of this shard, if any, is removed first, and the temp file is deleted.
    """
    path = Path(path)
    match = _SHARD_NAME.fullmatch(path.name)
    if _as_int(shard) is None or not 0 <= shard <= 999_999:
        raise InputError(f"shard must be an int in 0..999999, got {shard!r}")
    shard = int(shard)
    if not match or match.group(2) != "tar" or int(match.group(1)) != shard:
        raise InputError(f"shard {shard} must be written to a file named shard-{shard:06d}.tar "
                         f"(use shard_path(root, {shard})), got {path.name}")
    if not isinstance(build_id, str) or not 0 < len(build_id) <= 256:
        raise InputError(f"build_id must be a non-empty string of at most 256 characters, got {build_id!r}")
    json_path = index_path(path)
    json_path.unlink(missing_ok=True)   # a crash below must not leave an old index over a new tar
    indexed: list[IndexedSample] = []
    digest: dict[str, Any] = {}

    def write(tmp: str) -> None:
        with open(tmp, "wb") as raw:
            out = _HashingWriter(raw)
            with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT, encoding="utf-8") as tar:
                seen: set[str] = set()
                for sample in samples:
                    meta, arrays = _check_sample(sample, seen, f"shard {path.name}")
                    seen.add(sample.key)
                    indexed.append(_write_sample(tar, sample.key, meta, arrays))
                    tar.members.clear()   # tarfile keeps every TarInfo; nothing reads them when writing
                    if on_sample is not None:
                        on_sample(sample)
            digest["bytes"], digest["sha256"] = out.count, out.sha256.hexdigest()

    atomic_write(path, write)
    index = ShardIndex(shard=shard, build_id=build_id, tar_path=path, json_path=json_path,
                       tar_bytes=digest["bytes"], tar_sha256=digest["sha256"], samples=tuple(indexed))
    text = canonical_json(index.to_json()) + b"\n"
    atomic_write(json_path, lambda tmp: Path(tmp).write_bytes(text))
    return index


def _write_sample(tar: tarfile.TarFile, key: str, meta: dict, arrays: dict[str, np.ndarray]) -> IndexedSample:
    members: dict[str, list[tuple[int, int]]] = {}
    _add_member(tar, f"{key}.json", canonical_json(meta))
    for name in _per_sample_fields(arrays):
        members[name] = [_add_member(tar, sample_member(key, name), _encode_npy(arrays[name]))]
    per_frame = _per_frame_fields(arrays)
    for name in per_frame:
        members[name] = []
    for f in range(meta["num_frames"]):
        for name in per_frame:
            members[name].append(_add_member(tar, frame_member(key, f, name),
                                             _encode_frame(FIELDS[name].codec, arrays[name][f])))
    return IndexedSample(key=key, meta=meta,
                         arrays={n: ArraySpec(a.dtype.name, tuple(a.shape)) for n, a in arrays.items()},
                         members={n: tuple(m) for n, m in members.items()})


def stale_partials(path: PathLike) -> list[Path]:
    """Leftover temp files of one shard (``.shard-XXXXXX.tar.*.partial`` and ``.json``), sorted."""
    path = Path(path)
    names = (f".{path.name}.", f".{index_path(path).name}.")
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.iterdir()
                  if p.name.startswith(names) and p.name.endswith(".partial") and p.is_file())


def remove_stale_partials(path: PathLike) -> list[Path]:
    """Delete :func:`stale_partials` of the shard ``path`` (call it before rebuilding that shard,
    never while another process writes it); return what was removed."""
    removed = stale_partials(path)
    for p in removed:
        p.unlink(missing_ok=True)
    return removed


# ----- reading the sidecar ------------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


# ----- regular files only -------------------------------------------------------------------

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_NOT_REGULAR_WHY = ("SDGPip reads only the regular files its builder writes: a link could lead outside the "
                    "dataset folder, a FIFO or device would block reading forever")


class _NotRegular(OSError):
    """A path that must be a regular file is a link, FIFO, device, socket or folder."""


def file_kind(mode: int) -> str:
    """What a non-regular ``st_mode`` is, for messages: ``"a symbolic link"``, ``"a FIFO (named pipe)"``, ..."""
    for test, name in ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"),
                       (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "a special file"


def _not_regular(path: Path) -> Optional[str]:
    """``None`` if ``path`` itself is a regular file (``os.lstat``: a symlink is not followed), else what it is.

    Raises:
        FileNotFoundError: nothing is there.
    """
    mode = os.lstat(path).st_mode
    return None if stat.S_ISREG(mode) else file_kind(mode)


def _open_regular(path: Path, buffering: int = -1) -> BinaryIO:
    """``path`` opened for binary reading if it is a regular file, checked on the open descriptor.

    The open neither follows a final symlink (``O_NOFOLLOW``) nor waits for a FIFO's writer
    (``O_NONBLOCK``), so a file swapped after :func:`_not_regular` still cannot hang the reader.

    Raises:
        _NotRegular: it is not a regular file. OSError: it cannot be opened (missing, a link, permissions).
    """
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _NotRegular(f"{path} is {file_kind(mode)}, not a regular file")
        if _O_NONBLOCK:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb", buffering=buffering)
    except BaseException:
        os.close(fd)
        raise


def read_shard_index(json_path: PathLike) -> ShardIndex:
    """Read and validate a sidecar ``shard-XXXXXX.json`` (does not open the tar)."""
    json_path = Path(json_path)

    def bad(what: str) -> InputError:
        return InputError(f"shard index {json_path}: {what}. The file is corrupt or not an SDGPip "
                          f"index; {_REBUILD}")

    match = _SHARD_NAME.fullmatch(json_path.name)
    if not match or match.group(2) != "json":
        raise InputError(f"{json_path}: an SDGPip shard index is named shard-XXXXXX.json")
    try:
        kind = _not_regular(json_path)
        if kind is not None:
            raise _NotRegular(f"{json_path} is {kind}, not a regular file")
        with _open_regular(json_path) as f:
            size = os.fstat(f.fileno()).st_size
            if size > MAX_INDEX_BYTES:
                raise bad(f"it is {size} bytes, more than the {MAX_INDEX_BYTES} an index may have")
            data = f.read(MAX_INDEX_BYTES + 1)
        if len(data) > MAX_INDEX_BYTES:
            raise bad(f"it holds more than the {MAX_INDEX_BYTES} bytes an index may have")
        doc = json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except InputError:
        raise
    except FileNotFoundError as e:
        raise InputError(f"shard index not found: {json_path}") from e
    except _NotRegular as e:
        raise InputError(f"shard index {e}; {_NOT_REGULAR_WHY}. Remove it and {_REBUILD}") from None
    except (OSError, ValueError, RecursionError) as e:
        raise bad(f"not readable JSON ({type(e).__name__}: {e})") from e
    if not isinstance(doc, dict):
        raise bad("the top level must be a JSON object")
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise bad(f"format/version are {_short(doc.get('format'))}/{_short(doc.get('version'))}, "
                  f"expected {FORMAT!r}/{VERSION}")
    shard, build_id = doc.get("shard"), doc.get("build_id")
    if _as_int(shard) is None or shard != int(match.group(1)):
        raise bad(f"'shard' is {_short(shard)}, the file name says {int(match.group(1))}")
    if not isinstance(build_id, str):
        raise bad(f"'build_id' must be a string, got {_short(build_id)}")
    tar_name, tar_bytes, sha = doc.get("tar_name"), doc.get("tar_bytes"), doc.get("tar_sha256")
    if tar_name != f"shard-{shard:06d}.tar":
        raise bad(f"'tar_name' is {_short(tar_name)}, expected 'shard-{shard:06d}.tar'")
    if _as_int(tar_bytes) is None or tar_bytes < 0 or tar_bytes % _BLOCK:
        raise bad(f"'tar_bytes' must be a non-negative multiple of {_BLOCK}, got {_short(tar_bytes)}")
    if not isinstance(sha, str) or not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise bad(f"'tar_sha256' must be 64 lowercase hex digits, got {_short(sha)}")
    raw_samples = doc.get("samples")
    if not isinstance(raw_samples, list):
        raise bad("'samples' must be a list")
    samples, keys, end = [], set(), 0
    for i, raw in enumerate(raw_samples):
        try:
            sample, end = _parse_sample(raw, tar_bytes, end)
        except _Corrupt as e:
            raise bad(f"samples[{i}]: {e}") from None
        if sample.key in keys:
            raise bad(f"samples[{i}]: key {sample.key!r} appears twice")
        keys.add(sample.key)
        samples.append(sample)
    return ShardIndex(shard=shard, build_id=build_id, tar_path=json_path.with_name(tar_name), json_path=json_path,
                      tar_bytes=tar_bytes, tar_sha256=sha, samples=tuple(samples))


def _parse_sample(raw: Any, tar_bytes: int, start: int) -> tuple[IndexedSample, int]:
    """Validate one sidecar sample whose ``{key}.json`` header may begin at tar byte ``start`` (block-aligned).

    Besides each field's spec and ``[offset, size]`` entries, checks that the members' data spans
    follow each other in the member order (module docstring) without overlapping, each after
    room for its 512-byte header (the first after the ``{key}.json`` header and data, at least
    three blocks), so no two frames can share one member.

    Returns:
        The sample and the block-aligned byte where the next sample may begin.
    """
    if not isinstance(raw, dict):
        raise _Corrupt("must be an object")
    key, meta, arrays, members = raw.get("key"), raw.get("meta"), raw.get("arrays"), raw.get("members")
    if not isinstance(key, str) or not KEY_PATTERN.fullmatch(key):
        raise _Corrupt(f"bad key {_short(key)}")
    if not isinstance(meta, dict):
        raise _Corrupt(f"{key}: 'meta' must be an object")
    n = meta.get("num_frames")
    if _as_int(n) is None or not 1 <= n <= MAX_FRAMES:
        raise _Corrupt(f"{key}: meta.num_frames must be an int in 1..{MAX_FRAMES}, got {_short(n)}")
    if not isinstance(arrays, dict) or not isinstance(members, dict) or set(arrays) != set(members):
        raise _Corrupt(f"{key}: 'arrays' and 'members' must be objects with the same fields")
    specs, spans = {}, {}
    for name, a in arrays.items():
        spec = FIELDS.get(name)
        if spec is None:
            raise _Corrupt(f"{key}: unknown field {_short(name)}")
        shape = a.get("shape") if isinstance(a, dict) else None
        dtype = a.get("dtype") if isinstance(a, dict) else None
        if (dtype not in spec.dtypes or not isinstance(shape, list) or len(shape) != 1 + len(spec.shape)
                or not all(_as_int(d) is not None and d >= 1 for d in shape) or shape[0] != n
                or any(d is not None and s != d for s, d in zip(shape[1:], spec.shape))
                or (spec.square and shape[-1] != shape[-2])):
            raise _Corrupt(f"{key}: field {name!r} array spec {_short(a)} does not fit the codec table")
        codec = spec.codec
        frame_elems = math.prod(shape[1:])
        if _frame_pixels(codec, shape[1:]) > MAX_FRAME_PIXELS:
            raise _Corrupt(f"{key}: field {name!r} frames {shape[1:]} exceed {MAX_FRAME_PIXELS} pixels")
        entries = members[name]
        count = n if CODECS[codec].per_frame else 1
        if not isinstance(entries, list) or len(entries) != count:
            raise _Corrupt(f"{key}: field {name!r} must list {count} [offset, size] members")
        itemsize = np.dtype(dtype).itemsize
        data_bytes = frame_elems * itemsize * (1 if CODECS[codec].per_frame else n)
        for entry in entries:
            if (not isinstance(entry, list) or len(entry) != 2 or not all(_as_int(v) is not None for v in entry)
                    or entry[0] < _BLOCK or entry[0] % _BLOCK or entry[1] < 1 or entry[0] + entry[1] > tar_bytes):
                raise _Corrupt(f"{key}: field {name!r} member {_short(entry)} is not a block-aligned [offset, size] "
                               f"inside the {tar_bytes}-byte tar")
            if codec in ("npy", "npy_frame") and not data_bytes < entry[1] <= data_bytes + MAX_NPY_HEADER:
                raise _Corrupt(f"{key}: field {name!r} member of {entry[1]} bytes cannot hold {dtype} {shape}")
        specs[name] = ArraySpec(dtype, tuple(shape))
        spans[name] = tuple((e[0], e[1]) for e in entries)
    order = [(name, None) for name in _per_sample_fields(spans)]
    order += [(name, f) for f in range(n) for name in _per_frame_fields(spans)]
    lowest = start + 3 * _BLOCK                     # the {key}.json header, >= 1 block of its data, our header
    previous = f"{key}.json (or a member of an earlier sample)"
    for name, f in order:
        offset, size = spans[name][0 if f is None else f]
        member = sample_member(key, name) if f is None else frame_member(key, f, name)
        if offset < lowest:
            raise _Corrupt(f"member {member} has its data at byte {offset}, which overlaps or precedes member "
                           f"{previous} (the earliest it can start is byte {lowest}); members must follow each other "
                           "in the tar in the documented order, without overlapping")
        lowest, previous = _round_up(offset + size) + _BLOCK, member
    return IndexedSample(key=key, meta=meta, arrays=specs, members=spans), lowest - _BLOCK


def _tar_problem(index: ShardIndex) -> Optional[str]:
    """Why the tar of a sidecar is unusable (missing, not a regular file, wrong size), or ``None``."""
    try:
        info = os.lstat(index.tar_path)
    except FileNotFoundError:
        return "is missing"
    if not stat.S_ISREG(info.st_mode):
        return f"is {file_kind(info.st_mode)}, not a regular file ({_NOT_REGULAR_WHY}; remove it)"
    size = info.st_size
    if size != index.tar_bytes:
        return f"has {size} bytes but its index records {index.tar_bytes} (truncated or replaced)"
    return None


def _index_files(root: Path) -> dict[int, Path]:
    folder = root / SHARD_DIR
    if not folder.is_dir():
        return {}
    found = {}
    for p in folder.iterdir():
        m = _SHARD_NAME.fullmatch(p.name)
        if m and m.group(2) == "json":
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def finished_shards(root: PathLike, *, build_id: Optional[str] = None,
                    verify_sha256: bool = False) -> dict[int, ShardIndex]:
    """Shards of ``root`` whose sidecar is valid and whose tar has the recorded size.

    A builder resuming an interrupted run skips these and rebuilds the rest. ``build_id`` keeps
    only shards of that build; ``verify_sha256`` also hashes every tar (reads all of them).
    A sidecar or tar that is not a regular file (a symlink, FIFO, folder ...) is not finished.
    """
    done = {}
    for shard, json_path in _index_files(Path(root)).items():
        try:
            index = read_shard_index(json_path)
        except InputError:
            continue
        if build_id is not None and index.build_id != build_id:
            continue
        if _tar_problem(index) is not None:
            continue
        if verify_sha256 and sha256_of(index.tar_path) != index.tar_sha256:
            continue
        done[shard] = index
    return done


# ----- the dataset --------------------------------------------------------------------------

def _field_list(fields: Union[str, Sequence[str]]) -> list[str]:
    names = [fields] if isinstance(fields, str) else list(fields)
    unknown = [n for n in names if n not in FIELDS]
    if unknown or not names:
        raise InputError(f"fields must be names from the codec table {list(FIELDS)}, got {names}")
    return list(dict.fromkeys(names))


class SDGPipShards:
    """A built SDGPip dataset folder, read through the shard sidecars.

    ``samples`` lists every sample (after the ``sources`` / ``splits`` filters on ``meta["source"]``
    and ``meta["split"]``) in (shard, order-in-shard) order. :meth:`read` is random access (seek +
    read of the members of the asked frames); :meth:`stream` reads whole shards front to back.
    File handles open lazily, are reopened after a fork and are dropped when pickled, so the
    object can go to DataLoader worker processes.
    """

    def __init__(self, root: PathLike, *, sources: Optional[Sequence[str]] = None,
                 splits: Optional[Sequence[str]] = None):
        self.root = Path(root)
        sources = (sources,) if isinstance(sources, str) else sources
        splits = (splits,) if isinstance(splits, str) else splits
        shard_dir = self.root / SHARD_DIR
        if not self.root.is_dir():
            raise InputError(f"SDGPip dataset folder not found: {self.root}; {_BUILD_HINT}")
        indexes = _index_files(self.root)
        tars = sorted(shard_dir.glob("shard-*.tar")) if shard_dir.is_dir() else []
        orphans = [p for p in tars if _SHARD_NAME.fullmatch(p.name) and int(p.name[6:12]) not in indexes]
        if orphans:
            raise InputError(f"{orphans[0]} has no index {index_path(orphans[0]).name}: the build was interrupted "
                             f"while writing it; {_REBUILD}")
        if not indexes:
            raise InputError(f"no SDGPip shards (shards/shard-XXXXXX.json + .tar) in {self.root}; {_BUILD_HINT}")
        self.shards: dict[int, ShardIndex] = {}
        for shard, json_path in indexes.items():
            index = read_shard_index(json_path)
            problem = _tar_problem(index)
            if problem:
                raise InputError(f"shard {index.tar_path} {problem} (index {json_path}); {_REBUILD}")
            first = next(iter(self.shards.values()), None)
            if first is not None and index.build_id != first.build_id:
                raise InputError(f"{json_path.name} is from build {index.build_id!r} but {first.json_path.name} from "
                                 f"{first.build_id!r}; one folder holds one build: {_REBUILD}")
            self.shards[shard] = index
        self.samples: list[SampleRef] = []
        self._where: list[tuple[int, int]] = []
        for shard, index in self.shards.items():
            for pos, s in enumerate(index.samples):
                if sources is not None and s.meta.get("source") not in sources:
                    continue
                if splits is not None and s.meta.get("split") not in splits:
                    continue
                self.samples.append(SampleRef(shard, s.key, s.meta, s.num_frames))
                self._where.append((shard, pos))
        if not self.samples:
            have = sorted({(str(s.meta.get("source")), str(s.meta.get("split")))
                           for i in self.shards.values() for s in i.samples})
            raise InputError(f"no samples in {self.root} match sources={sources} splits={splits}; the dataset "
                             f"has (source, split) {have}")
        self._handles: dict[int, BinaryIO] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.samples)

    # -- file access

    def _file(self, shard: int) -> BinaryIO:
        if self._pid != os.getpid():   # forked: the parent's handles share its file offsets
            self._handles, self._pid = {}, os.getpid()
        handle = self._handles.get(shard)
        if handle is None:
            index = self.shards[shard]
            try:
                handle = self._handles[shard] = _open_regular(index.tar_path, buffering=0)
            except _NotRegular as e:
                raise InputError(f"shard {e} ({_NOT_REGULAR_WHY}); remove it and {_REBUILD}") from None
            except OSError as e:
                raise InputError(f"cannot open shard {index.tar_path} ({e}); {_REBUILD}") from None
        return handle

    def _read_bytes(self, shard: int, offset: int, size: int) -> bytearray:
        """``size`` bytes at ``offset`` of a shard tar (unbuffered: one seek, reads straight into the result)."""
        f = self._file(shard)
        f.seek(offset)
        data = bytearray(size)
        view, got = memoryview(data), 0
        while got < size:
            n = f.readinto(view[got:])
            if not n:
                index = self.shards[shard]
                raise InputError(f"{index.tar_path} ends before byte {offset + size} (its index "
                                 f"{index.json_path.name} says it has {index.tar_bytes}); {_REBUILD}")
            got += n
        return data

    def close(self) -> None:
        """Close open tar handles (they reopen on the next read)."""
        for handle in self._handles.values():
            handle.close()
        self._handles = {}

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_handles": {}}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    def _corrupt(self, shard: int, member: str, offset: int, error: Exception) -> InputError:
        return InputError(f"{self.shards[shard].tar_path}: member {member} (data at byte {offset}): {error}; "
                          f"{_REBUILD}")

    def _sample(self, sample: int, fields: list[str]) -> tuple[SampleRef, int, IndexedSample]:
        number = _as_int(sample)
        if number is None or not 0 <= number < len(self):
            raise IndexError(f"sample {sample!r} out of range [0, {len(self)})")
        shard, pos = self._where[number]
        entry = self.shards[shard].samples[pos]
        missing = [n for n in fields if n not in entry.arrays]
        if missing:
            raise InputError(f"sample {entry.key!r} in {self.shards[shard].tar_path.name} has no fields {missing}; "
                             f"it has {sorted(entry.arrays)}")
        return self.samples[number], shard, entry

    # -- random access

    def read(self, sample: int, fields: Union[str, Sequence[str]], start: int = 0, stop: Optional[int] = None,
             *, gray_as_rgb: bool = True) -> dict[str, np.ndarray]:
        """Frames ``[start, stop)`` of ``fields`` of sample number ``sample``, as numpy arrays.

        Per-sample ``npy`` fields are sliced (only their rows are read); per-frame fields are
        decoded for those frames only. Shapes are the stored ones with L = stop - start frames,
        e.g. ``features (L, D)``, ``heatmaps (L, K, G, G)`` uint8, ``video (L, H, W, 3)`` uint8;
        ``depth`` is ``(L, H, W, 3)`` uint8 with equal channels (Champ's encoders take RGB), or
        ``(L, H, W)`` with ``gray_as_rgb=False``.
        """
        names = _field_list(fields)
        ref, shard, entry = self._sample(sample, names)
        n = ref.num_frames
        first, last = _as_int(start), _as_int(n if stop is None else stop)
        if first is None or last is None or not 0 <= first < last <= n:
            raise InputError(f"frames [{start}, {stop}) are not a non-empty range inside sample {ref.key!r}'s "
                             f"{n} frames")
        start, stop = first, last
        out = {}
        for name in names:
            spec, codec = entry.arrays[name], FIELDS[name].codec
            if codec == "npy":
                out[name] = self._read_rows(shard, entry, name, start, stop)
            else:
                frames = np.empty((stop - start, *spec.shape[1:]), dtype=np.dtype(spec.dtype))
                for i, f in enumerate(range(start, stop)):
                    offset, size = entry.members[name][f]
                    blob = self._read_bytes(shard, offset, size)
                    try:
                        frames[i] = _decode_frame(codec, blob, spec)
                    except _Corrupt as e:
                        raise self._corrupt(shard, frame_member(entry.key, f, name), offset, e) from None
                out[name] = frames
        return _gray_to_rgb(out, gray_as_rgb)

    def _read_rows(self, shard: int, entry: IndexedSample, name: str, start: int, stop: int) -> np.ndarray:
        spec = entry.arrays[name]
        offset, size = entry.members[name][0]
        head = self._read_bytes(shard, offset, min(size, MAX_NPY_HEADER))
        try:
            data_start = _check_npy(head, size, spec, spec.shape)
        except _Corrupt as e:
            raise self._corrupt(shard, sample_member(entry.key, name), offset, e) from None
        dtype = np.dtype(spec.dtype).newbyteorder("<")
        row = math.prod(spec.shape[1:]) * dtype.itemsize
        buf = self._read_bytes(shard, offset + data_start + start * row, (stop - start) * row)
        rows = np.frombuffer(buf, dtype=dtype).reshape(stop - start, *spec.shape[1:])
        return rows.astype(dtype.newbyteorder("="), copy=False)      # no copy on little-endian machines

    # -- streaming

    def stream(self, fields: Union[str, Sequence[str]], *, seed: Optional[int] = None,
               shard_ids: Optional[Sequence[int]] = None,
               gray_as_rgb: bool = True) -> Iterator[tuple[SampleRef, dict[str, np.ndarray]]]:
        """Whole samples, reading each shard tar front to back (``tarfile`` stream mode ``r|``).

        Args:
            fields: which fields to decode (others are skipped); arrays as in :meth:`read`, all frames.
            seed: shuffle the shard order with this seed (``None``: ascending shard order).
                Samples inside a shard keep their order. Use ``seed + epoch`` for a new order per epoch.
            shard_ids: only these shards. To split work across DataLoader workers / ranks, give
                worker ``r`` of ``R`` ``sorted(ds.shards)[r::R]`` (every shard read by exactly one).
        """
        names = _field_list(fields)
        order = sorted(self.shards) if shard_ids is None else list(dict.fromkeys(int(s) for s in shard_ids))
        unknown = [s for s in order if s not in self.shards]
        if unknown:
            raise InputError(f"shard_ids {unknown} are not shards of {self.root}; it has {sorted(self.shards)}")
        if seed is not None:
            order = [order[i] for i in np.random.default_rng(seed).permutation(len(order))]
        wanted: dict[tuple[int, int], int] = {where: i for i, where in enumerate(self._where) if where[0] in order}
        for i in wanted.values():
            self._sample(i, names)                      # every streamed sample has the asked fields
        for shard in order:
            yield from self._stream_shard(shard, names, wanted, gray_as_rgb)

    def _stream_shard(self, shard: int, names: list[str], wanted: dict[tuple[int, int], int],
                      gray_as_rgb: bool) -> Iterator[tuple[SampleRef, dict[str, np.ndarray]]]:
        index = self.shards[shard]
        with _TarStream(index) as tar:
            for pos, entry in enumerate(index.samples):
                take = wanted.get((shard, pos))
                meta_member = tar.next_member(f"{entry.key}.json")
                if meta_member.size > MAX_META_BYTES:
                    raise tar.broken(f"member {meta_member.name} is {meta_member.size} bytes, "
                                     f"more than {MAX_META_BYTES}")
                if take is not None and tar.read_json(meta_member) != entry.meta:
                    raise tar.broken(f"member {meta_member.name} differs from the metadata in the index")
                per_frame = _per_frame_fields(entry.arrays)
                plan = [(n, None) for n in _per_sample_fields(entry.arrays)]
                plan += [(n, f) for f in range(entry.num_frames) for n in per_frame]
                out: dict[str, Any] = {n: [] for n in per_frame if n in names}
                for name, f in plan:
                    offset, size = entry.members[name][0 if f is None else f]
                    expected = sample_member(entry.key, name) if f is None else frame_member(entry.key, f, name)
                    member = tar.next_member(expected)
                    if member.size != size or member.offset_data != offset:
                        raise tar.broken(f"member {expected} is {member.size} bytes at byte {member.offset_data}, "
                                         f"the index says {size} at {offset}")
                    if take is None or name not in names:
                        continue                                  # tarfile skips the data
                    blob, spec = tar.read(member), entry.arrays[name]
                    try:
                        if f is None:
                            out[name] = _decode_npy(blob, spec)
                        else:
                            out[name].append(_decode_frame(FIELDS[name].codec, blob, spec))
                    except _Corrupt as e:
                        raise self._corrupt(shard, expected, offset, e) from None
                tar.forget()
                if take is not None:
                    arrays = {n: np.stack(out[n]) if isinstance(out[n], list) else out[n] for n in names}
                    yield self.samples[take], _gray_to_rgb(arrays, gray_as_rgb)
            tar.expect_end()


def _decode_npy(blob: bytes, spec: ArraySpec) -> np.ndarray:
    """A whole ``.npy`` member -> array of ``spec`` (checked against the header first)."""
    start = _check_npy(blob, len(blob), spec, spec.shape)
    dtype = np.dtype(spec.dtype).newbyteorder("<")
    return np.frombuffer(blob, dtype=dtype, offset=start).reshape(spec.shape).astype(dtype.newbyteorder("="))


def _gray_to_rgb(arrays: dict[str, np.ndarray], gray_as_rgb: bool) -> dict[str, np.ndarray]:
    """``png_gray`` fields ``(L, H, W)`` -> ``(L, H, W, 3)`` with equal channels, if asked."""
    if not gray_as_rgb:
        return arrays
    return {n: np.repeat(a[..., None], 3, axis=-1) if FIELDS[n].codec == "png_gray" else a
            for n, a in arrays.items()}


_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError)


class _TarStream:
    """A shard tar read front to back with ``tarfile`` mode ``r|``; every failure names the file."""

    def __init__(self, index: ShardIndex):
        self.index = index

    def broken(self, what: str) -> InputError:
        return InputError(f"{self.index.tar_path}: {what}; the tar does not match its index "
                          f"{self.index.json_path.name}: {_REBUILD}")

    def __enter__(self) -> "_TarStream":
        try:
            self.raw = _open_regular(self.index.tar_path)
        except OSError as e:
            raise self.broken(f"cannot open it ({e})") from e
        try:
            self.tar = tarfile.open(fileobj=self.raw, mode="r|", bufsize=1 << 20)
        except _TAR_ERRORS as e:
            self.raw.close()
            raise self.broken(f"not a readable tar ({type(e).__name__}: {e})") from e
        return self

    def __exit__(self, *exc: Any) -> None:
        self.raw.close()

    def next_member(self, expected: str) -> tarfile.TarInfo:
        """The next member, which must be the regular file ``expected``."""
        try:
            member = self.tar.next()
        except _TAR_ERRORS as e:
            raise self.broken(f"unreadable where member {expected} should be ({type(e).__name__}: {e})") from e
        if member is None or member.name != expected or not member.isreg():
            found = "the end of the tar" if member is None else _short(member.name)
            raise self.broken(f"expected member {expected!r}, found {found}")
        return member

    def read(self, member: tarfile.TarInfo) -> bytes:
        """The data of the current member (its size was checked against the index)."""
        try:
            data = self.tar.extractfile(member).read()
        except _TAR_ERRORS as e:
            raise self.broken(f"member {member.name} is unreadable ({type(e).__name__}: {e})") from e
        if len(data) != member.size:
            raise self.broken(f"member {member.name} is truncated")
        return data

    def read_json(self, member: tarfile.TarInfo) -> Any:
        try:
            return json.loads(self.read(member).decode("utf-8"), parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            raise self.broken(f"member {member.name} is not JSON ({e})") from e

    def forget(self) -> None:
        """Drop the TarInfo objects tarfile keeps of every member read so far (memory)."""
        self.tar.members.clear()

    def expect_end(self) -> None:
        try:
            trailing = self.tar.next()
        except _TAR_ERRORS as e:
            raise self.broken(f"unreadable after the last sample ({type(e).__name__}: {e})") from e
        if trailing is not None:
            raise self.broken(f"unexpected member {_short(trailing.name)} after the last sample")
