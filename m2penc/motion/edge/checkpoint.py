"""EDGE weights: its released ``checkpoint.pt`` read without running code, and our self-describing file.

EDGE's ``checkpoint.pt`` (``shared/spec/edge/REPORT.md`` sections 1-2) is a ``torch.save`` zip
(``<folder>/data.pkl`` + ``<folder>/data/<n>`` storages; the folder is ``archive`` or, from
torch < 2, the saved file's stem) holding a dict ``ema_state_dict``, ``model_state_dict``,
``optimizer_state_dict`` and ``normalizer``. The last one is a pickled
``dataset.preprocess.Normalizer`` wrapping a ``dataset.scaler.MinMaxScaler``: EDGE's classes.

Why the pack's own unpickler (:mod:`...safe_pickle`) and not ``torch.load(weights_only=True)``
inside ``torch.serialization.safe_globals``: both refuse unknown globals, but the pack has one
place that decides what a pickle may build (ARCHITECTURE.md), ``safe_globals`` changes torch's
process-wide allow-list while a ComfyUI server may load other files on other threads, and here
storages are only *referenced* while unpickling (:class:`_TensorRef`): the bytes of the EMA
weights and the normalizer are read from the zip afterwards, and the model and optimizer copies
(most of the file) are never read at all. Globals allowed: the base data set, the two EDGE
classes as :class:`~...safe_pickle.InertRecord` stand-ins (their ``__dict__`` becomes plain
data), ``torch._utils._rebuild_tensor_v2`` and ``torch.*Storage`` as inert references. Anything
else is refused by name with nothing executed.

:func:`load_edge` builds :class:`~.model.DanceDecoder` on the meta device and loads strictly
(every one of the 249 keys, the 11 copies of the shared rotary ``freqs`` included). Our format,
written by :func:`save_edge`: safetensors with the weights, the normalizer under ``normalizer.``,
and config, feature kind, normalizer options, source and licence in the metadata.
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from ...checkpoint import PICKLE_SUFFIXES, load_state_dict, load_strict, read_config, read_metadata, save_model
from ...device import resolve_device, resolve_dtype
from ...errors import WeightsError, WeightsNotFoundError
from ...safe_pickle import MAX_PICKLE_BYTES, InertRecord, PickleRules, read_pickle
from .config import FEATURE_DIMS, EDGEConfig
from .model import DanceDecoder
from .normalizer import TENSOR_NAMES, MinMaxNormalizer

PathLike = Union[str, os.PathLike]
EDGE_KIND = "edge"
NORMALIZER_PREFIX = "normalizer."
FEATURE_KIND_KEY = "m2pdance.feature_kind"
NORMALIZER_KEY = "m2pdance.edge_normalizer"
SOURCE = "EDGE (Tseng, Castellon, Liu, CVPR 2023), https://github.com/Stanford-TML/EDGE, checkpoint.pt"
LICENSE = ("EDGE code: MIT. Weights: released by the EDGE authors, trained on AIST++ (annotations CC BY 4.0); "
           "follow their terms when redistributing")
#: Most bytes read from one checkpoint, all records together (EDGE's EMA weights are ~200 MB).
MAX_READ_BYTES = MAX_PICKLE_BYTES
_STORAGES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
             "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
             "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
             "BoolStorage": torch.bool}


class _NormalizerRecord(InertRecord):
    """Stand-in for ``dataset.preprocess.Normalizer``: keeps ``{'scaler': ...}``."""


class _ScalerRecord(InertRecord):
    """Stand-in for ``dataset.scaler.MinMaxScaler``: keeps its fitted tensors and options."""


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


@dataclass(frozen=True)
class _TensorRef:
    """A tensor not yet read: storage ``key`` of ``numel`` ``dtype`` items, viewed at offset/size/stride."""

    key: str
    dtype: torch.dtype
    numel: int
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


@dataclass(frozen=True)
class _Storage:
    """A storage of the zip, ``data/<key>``, of ``numel`` items of ``dtype`` (not read while unpickling)."""

    key: str
    dtype: torch.dtype
    numel: int


def _storage_ref(pid: Any) -> _Storage:
    """``persistent_load`` for ``('storage', torch.<T>Storage, key, location, numel)``; the location is ignored."""
    if (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
            and isinstance(pid[1].dtype, torch.dtype) and isinstance(pid[2], str) and isinstance(pid[4], int)
            and pid[4] >= 0):
        return _Storage(pid[2], pid[1].dtype, pid[4])
    raise WeightsError(f"unexpected torch storage reference {pid!r} (not a torch.save storage id)")


def _ints(value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise WeightsError(f"bad tensor size/stride {value!r} in a torch.save file")
    return value


def _rebuild_tensor(storage: Any, offset: Any, size: Any, stride: Any, *_ignored: Any) -> _TensorRef:
    """``torch._utils._rebuild_tensor_v2`` as data: checks the view lies inside the storage and is no larger."""
    if not isinstance(storage, _Storage):
        raise WeightsError(f"a tensor is built from a {type(storage).__name__}, not a torch storage")
    key, dtype, numel = storage.key, storage.dtype, storage.numel
    size, stride = _ints(size), _ints(stride)
    if not isinstance(offset, int) or len(size) != len(stride) or offset < 0:
        raise WeightsError(f"bad tensor view (offset {offset!r}, size {size}, stride {stride}) in a torch.save file")
    end = offset + sum((n - 1) * s for n, s in zip(size, stride)) + 1 if all(size) else offset
    if end > numel or math.prod(size) > max(numel, 1):
        raise WeightsError(f"tensor view (offset {offset}, size {size}, stride {stride}) runs past or is larger "
                           f"than its {numel}-item storage {key!r}; the file is corrupt")
    return _TensorRef(key, dtype, numel, offset, size, stride)


def _rules() -> PickleRules:
    records: dict[tuple[str, str], Any] = {
        ("dataset.preprocess", "Normalizer"): _NormalizerRecord,
        ("dataset.scaler", "MinMaxScaler"): _ScalerRecord,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    }
    records.update({("torch", name): _StorageType(dtype) for name, dtype in _STORAGES.items()})
    return PickleRules(kind="EDGE checkpoint", error=WeightsError, records=records, persistent_load=_storage_ref,
                       holds="tensors, numbers, plain containers and EDGE's Normalizer/MinMaxScaler",
                       fix="Use EDGE's released checkpoint.pt, or a .safetensors written by m2pdance.")


class _TorchZip:
    """The records of a ``torch.save`` zip file; tensors are read on demand."""

    def __init__(self, path: Path):
        self.path = path
        if not zipfile.is_zipfile(path):
            raise WeightsError(f"{path}: not a torch.save zip file (EDGE's checkpoint.pt is one); "
                               "re-download it, or re-save an old-format file with a current torch")
        self.zip = zipfile.ZipFile(path)
        pickles = [n for n in self.zip.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pickles) != 1:
            raise WeightsError(f"{path}: expected one <folder>/data.pkl in the torch zip, found {pickles}")
        self.folder = pickles[0][:-len("data.pkl")]
        self._storages: dict[str, torch.Tensor] = {}
        self._bytes_read = 0
        if self.folder + "byteorder" in self.zip.namelist() and self._read("byteorder", limit=16).strip() != b"little":
            raise WeightsError(f"{path}: big-endian torch file; re-save it on a little-endian machine")

    def __enter__(self) -> "_TorchZip":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.zip.close()

    def _read(self, name: str, size: Optional[int] = None, limit: int = MAX_PICKLE_BYTES) -> bytes:
        """Record ``name``; if ``size`` is given the record must hold exactly that many bytes (checked first).

        Sizes are the zip's declared ones (reading never goes past them), checked against ``limit``
        per record and :data:`MAX_READ_BYTES` for the whole file before anything is read.
        """
        try:
            found = self.zip.getinfo(self.folder + name).file_size
            if size is not None and found != size:
                raise WeightsError(f"{self.path}: record {name} holds {found} bytes, expected {size}; "
                                   "the file is corrupt")
            if found > limit or self._bytes_read + found > MAX_READ_BYTES:
                raise WeightsError(f"{self.path}: record {name} ({found} bytes) is over the {limit} bytes a record, "
                                   f"or the {MAX_READ_BYTES} bytes a checkpoint, may need; not read")
            self._bytes_read += found
            return self.zip.read(self.folder + name)
        except KeyError:
            raise WeightsError(f"{self.path}: record {name} is missing; the file is truncated or corrupt") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise WeightsError(f"{self.path}: cannot read record {name} ({e}); re-download the file") from None

    def root(self) -> Any:
        try:
            return read_pickle(io.BytesIO(self._read("data.pkl")), str(self.path), _rules())
        except WeightsError as e:  # raised by the storage/tensor hooks, which do not know the file
            if str(self.path) in str(e):
                raise
            raise WeightsError(f"{self.path}: {e}") from None

    def tensor(self, ref: _TensorRef) -> torch.Tensor:
        if ref.key not in self._storages:
            itemsize = torch.empty((), dtype=ref.dtype).element_size()
            data = bytearray(self._read(f"data/{ref.key}", ref.numel * itemsize))
            flat = torch.frombuffer(data, dtype=ref.dtype) if data else torch.empty(0, dtype=ref.dtype)
            self._storages[ref.key] = flat
        return self._storages[ref.key].as_strided(ref.size, ref.stride, ref.offset)


def _tensor(archive: _TorchZip, value: Any, what: str) -> torch.Tensor:
    if not isinstance(value, _TensorRef):
        raise WeightsError(f"{archive.path}: {what} is a {type(value).__name__}, expected a tensor")
    return archive.tensor(value)


def _normalizer(archive: _TorchZip, record: Any) -> MinMaxNormalizer:
    scaler = getattr(record, "scaler", None) if isinstance(record, _NormalizerRecord) else None
    if not isinstance(scaler, _ScalerRecord):
        raise WeightsError(f"{archive.path}: 'normalizer' is not EDGE's Normalizer(MinMaxScaler) "
                           f"(found {type(record).__name__}); this is not an EDGE training checkpoint")
    fields = vars(scaler)
    tensors = {name: _tensor(archive, fields.get(name), f"normalizer.scaler.{name}") for name in TENSOR_NAMES}
    seen = fields.get("n_samples_seen_")
    try:
        return MinMaxNormalizer(**tensors, feature_range=tuple(fields.get("feature_range", (-1, 1))),
                                clip=bool(fields.get("clip", True)),
                                n_samples_seen=seen if isinstance(seen, int) else None)
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{archive.path}: unusable normalizer: {e}") from None


def feature_kind_of(state_dict: Mapping[str, torch.Tensor], source: str) -> str:
    """``"jukebox"`` or ``"baseline"`` from ``cond_projection.weight`` ``(D, 4800)`` / ``(D, 35)``."""
    weight = state_dict.get("cond_projection.weight")
    width = weight.shape[-1] if isinstance(weight, torch.Tensor) and weight.ndim == 2 else None
    for kind, dim in FEATURE_DIMS.items():
        if width == dim:
            return kind
    shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else None
    raise WeightsError(f"{source}: cond_projection.weight is {shape}, expected (D, 4800) for Jukebox features or "
                       "(D, 35) for EDGE's baseline features; this is not an EDGE DanceDecoder checkpoint")


def read_edge_checkpoint(path: PathLike, use_ema: bool = True) -> tuple[dict[str, torch.Tensor], MinMaxNormalizer, str]:
    """``(state_dict, normalizer, feature_kind)`` from EDGE's ``checkpoint.pt``, nothing executed.

    ``use_ema`` picks ``ema_state_dict`` (what EDGE and its test.py load) over ``model_state_dict``.
    Keys come without prefix (a uniform ``module.`` is removed). Tensors are CPU float32 views.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsNotFoundError(f"EDGE checkpoint not found: {path}")
    name = "ema_state_dict" if use_ema else "model_state_dict"
    with _TorchZip(path) as archive:
        root = archive.root()
        if not isinstance(root, Mapping) or name not in root or "normalizer" not in root:
            found = sorted(map(str, root)) if isinstance(root, Mapping) else type(root).__name__
            raise WeightsError(f"{path}: expected EDGE's checkpoint dict with '{name}' and 'normalizer', "
                               f"found {found}")
        weights = root[name]
        if not isinstance(weights, Mapping) or not weights:
            raise WeightsError(f"{path}: '{name}' is not a state dict")
        prefix = "module." if all(str(k).startswith("module.") for k in weights) else ""
        state = {str(k)[len(prefix):]: _tensor(archive, v, f"{name}[{k!r}]") for k, v in weights.items()}
        normalizer = _normalizer(archive, root["normalizer"])
    return state, normalizer, feature_kind_of(state, str(path))


@dataclass(frozen=True, eq=False)
class EDGEModelBundle:
    """What EDGE needs to make a dance: the denoiser (eval mode), its normalizer and its config."""

    model: DanceDecoder
    normalizer: MinMaxNormalizer
    config: EDGEConfig


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], MinMaxNormalizer, EDGEConfig]:
    config = EDGEConfig.from_dict(read_config(path, EDGE_KIND))
    tensors = load_state_dict(path)
    options = json.loads(read_metadata(path).get(NORMALIZER_KEY, "{}"))
    try:
        normalizer = MinMaxNormalizer.from_tensors(tensors, NORMALIZER_PREFIX, feature_range=tuple(
            options.get("feature_range", (-1, 1))), clip=options.get("clip", True),
            n_samples_seen=options.get("n_samples_seen"))
    except (TypeError, ValueError) as e:
        raise WeightsError(f"{path}: unusable normalizer ({e})") from None
    state = {k: v for k, v in tensors.items() if not k.startswith(NORMALIZER_PREFIX)}
    return state, normalizer, config


def load_edge(path: PathLike, device: Union[str, torch.device, None] = "cpu",
              dtype: Union[str, torch.dtype] = "fp32", config: Optional[EDGEConfig] = None) -> EDGEModelBundle:
    """EDGE from its ``checkpoint.pt`` (or ``.pth``/``.ckpt``) or from a file by :func:`save_edge`.

    Args:
        device, dtype: where and in which precision the denoiser runs (the normalizer stays fp32 CPU).
        config: the architecture a ``.pt`` must fit (default: EDGE's released size, preset
            ``jukebox``/``baseline`` by the checkpoint's feature width). ``.safetensors`` carry their own.
    Raises:
        WeightsError: unreadable file, refused pickle content, or keys/shapes that do not fit.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        state, normalizer, config = _read_safetensors(path)
    elif path.name.endswith(PICKLE_SUFFIXES):
        state, normalizer, kind = read_edge_checkpoint(path)
        config = config or EDGEConfig.preset(kind)
        if config.feature_kind != kind:
            raise WeightsError(f"{path} reads {kind!r} music features but the given config is "
                               f"{config.feature_kind!r}")
    else:
        raise WeightsError(f"{path.name}: unknown EDGE weights format {path.suffix!r}; use EDGE's checkpoint.pt "
                           "or an m2pdance .safetensors")
    with torch.device("meta"):
        model = DanceDecoder(config)
    load_strict(model, state, source=str(path))
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise WeightsError(f"{path}: no values for {left} after loading")
    device_ = resolve_device(device)
    model = model.to(device=device_, dtype=resolve_dtype(dtype, device_)).eval()
    return EDGEModelBundle(model, normalizer.to("cpu", torch.float32), config)


def save_edge(bundle: EDGEModelBundle, path: PathLike) -> Path:
    """Write ``bundle`` as a self-describing safetensors (atomically); load it back with :func:`load_edge`.

    Weights are saved in the model's current dtype (load in fp32 first to keep full precision).
    """
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, value in bundle.model.state_dict().items():          # shared rotary freqs: one copy each
        value = value.detach().cpu()
        storage = value.untyped_storage().data_ptr()
        tensors[key] = value.clone() if storage in seen else value
        seen.add(storage)
    tensors.update(bundle.normalizer.to("cpu", torch.float32).tensors(NORMALIZER_PREFIX))
    norm = bundle.normalizer
    meta = {FEATURE_KIND_KEY: bundle.config.feature_kind, "m2pdance.source": SOURCE, "m2pdance.license": LICENSE,
            NORMALIZER_KEY: json.dumps({"feature_range": list(norm.feature_range), "clip": norm.clip,
                                        "n_samples_seen": norm.n_samples_seen})}
    return save_model(path, tensors, kind=EDGE_KIND, config_json=bundle.config.to_json(), extra_metadata=meta)


def convert_edge_checkpoint(source: PathLike, target: PathLike) -> Path:
    """EDGE's ``checkpoint.pt`` -> our ``.safetensors`` (fp32, strictly checked on the way)."""
    return save_edge(load_edge(source, "cpu", "fp32"), target)
