"""Jukebox weights files that carry their own architecture, so tiny models load like real ones.

OpenAI's ``.pth.tar`` checkpoints (and their plain safetensors conversions) only fit the ``5b``
config, so loaders used to need a ``config=`` argument for anything else. Smoke runs and ComfyUI
smoke workflows pass nothing but ``vqvae_path``/``prior_path``, exactly as for the real files.
So files written here follow :mod:`..checkpoint`'s pattern: safetensors whose metadata holds
``m2pdance.kind`` (:data:`VQVAE_KIND` / :data:`PRIOR_KIND`), ``m2pdance.config`` (the
:class:`JukeboxConfig` JSON) and ``max_layer`` (prior layers stored, the same key
:func:`.checkpoint_io.convert_jukebox_checkpoint` writes). :func:`config_for_files` reads it
back; files without it are taken to be the ``5b`` model.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Optional

from ..checkpoint import CONFIG_KEY, KIND_KEY, read_metadata, save_model
from ..errors import WeightsError, WeightsMismatchError
from .config import JukeboxConfig
from .files import PathLike
from .prior import TopLevelPrior
from .vqvae import VQVAE

VQVAE_KIND = "jukebox.vqvae"
PRIOR_KIND = "jukebox.prior"
#: Kind written by :func:`.checkpoint_io.convert_jukebox_checkpoint`: 5b tensors, no config.
CONVERTED_KIND = "jukebox"
#: Metadata key holding how many prior layers (1..max_layer) a file stores (JSON int or null).
MAX_LAYER_KEY = "max_layer"


def _require_safetensors(path: Path) -> None:
    if path.suffix != ".safetensors":
        raise WeightsError(f"Jukebox weights are written as safetensors; {path.name} must end in .safetensors")


def save_jukebox_weights(vqvae: VQVAE, prior: TopLevelPrior, vqvae_path: PathLike, prior_path: PathLike,
                         config: Optional[JukeboxConfig] = None) -> tuple[Path, Path]:
    """Write both models as self-describing safetensors (atomically); returns the two paths.

    ``config`` defaults to the models' own; both models must have been built from it, else the
    files would describe an architecture their tensors do not have. The prior may hold fewer
    than ``config.prior_depth`` layers; the file records how many, so loaders can say so.
    """
    config = config or prior.config
    for name, model in (("VQ-VAE", vqvae), ("prior", prior)):
        if model.config != config:
            raise WeightsError(f"the {name} was built from a different JukeboxConfig than the one given")
    vqvae_path, prior_path = Path(vqvae_path), Path(prior_path)
    _require_safetensors(vqvae_path)
    _require_safetensors(prior_path)
    config_json = config.to_json()
    save_model(vqvae_path, vqvae.state_dict(), VQVAE_KIND, config_json)
    save_model(prior_path, prior.state_dict(), PRIOR_KIND, config_json,
               {MAX_LAYER_KEY: json.dumps(prior.n_layers)})
    return vqvae_path, prior_path


def embedded_config(path: PathLike, expected_kind: str) -> Optional[JukeboxConfig]:
    """The config stored in ``path``, or ``None`` for files without one (OpenAI pickles and
    plain conversions). A file of another m2pdance kind is an error naming both kinds."""
    meta = read_metadata(path)
    kind = meta.get(KIND_KEY)
    if kind is None or kind == CONVERTED_KIND:
        return None
    if kind != expected_kind:
        raise WeightsError(f"{Path(path).name} holds a {kind!r} model, but a {expected_kind!r} file was "
                           "expected here; check which file goes into which slot")
    try:
        return JukeboxConfig.from_json(meta[CONFIG_KEY])
    except (KeyError, ValueError) as e:
        raise WeightsError(f"{Path(path).name}: unreadable Jukebox config in its metadata ({e})") from e


def config_for_files(vqvae_file: PathLike, prior_file: PathLike) -> JukeboxConfig:
    """The architecture two weights files describe: their embedded config, else ``5b``.

    When both embed one they must agree (a tiny VQ-VAE next to a different tiny prior would
    otherwise fail later with a list of mis-shaped keys).
    """
    vqvae_config = embedded_config(vqvae_file, VQVAE_KIND)
    prior_config = embedded_config(prior_file, PRIOR_KIND)
    if vqvae_config is not None and prior_config is not None and vqvae_config != prior_config:
        raise WeightsMismatchError(f"{Path(vqvae_file).name} and {Path(prior_file).name} describe different "
                                   "Jukebox architectures; use a VQ-VAE and a prior written together")
    return prior_config or vqvae_config or JukeboxConfig.preset("5b")


def stored_max_layer(prior_file: PathLike) -> Optional[int]:
    """Prior layers a safetensors file holds (``None``: all of them, or not recorded)."""
    value = read_metadata(prior_file).get(MAX_LAYER_KEY)
    return None if value is None else json.loads(value)


def check_stored_layers(prior_file: PathLike, layer: int) -> None:
    """Refuse a ``layer`` deeper than the file holds, with the numbers, before any tensor is read."""
    stored = stored_max_layer(prior_file)
    if stored is not None and layer > stored:
        raise WeightsMismatchError(
            f"{Path(prior_file).name} holds prior layers 1..{stored} only, but layer {layer} was requested; "
            f"pick a layer <= {stored} or a file written with more layers"
        )


def weights_fingerprint(*files: PathLike) -> str:
    """A short id of weights files: resolved path, size and modification time of each.

    Cheap (no hashing of gigabytes) and changes when a file is replaced, which is what the
    feature cache and the loaded-model cache need to stay correct.
    """
    digest = hashlib.blake2b(digest_size=8)
    for file in files:
        path = Path(file).resolve()
        stat = path.stat()
        digest.update(f"{path}:{stat.st_size}:{stat.st_mtime_ns};".encode())
    return digest.hexdigest()
