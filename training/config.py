"""Training settings as frozen, JSON-serialisable dataclasses: :class:`RunConfig` and one per stage.

A training run is fully described by its config: it is written next to the outputs
(``stage<k>_config.json``) and into every checkpoint, so a run can be repeated or resumed from its
folder alone. Config files are TOML or JSON (never executed); command-line flags override single
fields with :meth:`RunConfig.with_overrides`. :class:`RunConfig` holds what every stage shares
(data, optimisation, the engine); each stage adds its own fields and ``paper`` / ``tiny`` presets.

Defaults follow the paper where it says something (sec. 4.1: AdamW, lr 1e-5, batches of 24
sequences of 75 frames = 5 s at 15 fps) and are marked as ours where it does not (weight decay,
gradient clipping, loss weights, checkpoint cadence).
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Optional, TypeVar

try:                                    # Python >= 3.11
    import tomllib
except ModuleNotFoundError:             # pragma: no cover - Python 3.10
    import tomli as tomllib

from ..m2penc.encoder.config import M2PEncConfig
from ..m2penc.errors import InputError
from .sharding import SHARDING
from .trainer import MIXED_PRECISION

#: How training windows are drawn from the shards (see :mod:`.datasets`).
WINDOW_SAMPLING = ("random", "sequential")
C = TypeVar("C", bound="RunConfig")


@dataclass(frozen=True)
class RunConfig:
    """What every training stage shares: data, output, optimisation and the engine.

    Attributes:
        data_dir: the training data (for stage 1 also a folder of stage-1 safetensors shards).
        data_splits, data_sources: SDGPip samples used (``None``: all).
        output_dir: where weights, checkpoints, ``metrics.jsonl`` and ``tensorboard/`` go.
        batch_size: the global batch per optimizer step, over every process and micro-step.
        lr: AdamW learning rate (paper: 1e-5).
        weight_decay: AdamW decay on >= 2-d weights only (ours; the paper does not say).
        betas: AdamW betas (PyTorch defaults).
        grad_clip: max global gradient norm; 0 disables clipping (ours, as minGPT).
        steps: optimizer steps; exactly one of ``steps`` and ``epochs`` is set.
        epochs: passes over the data's non-overlapping items.
        seed: seeds model initialisation, data order and every torch RNG.
        device: ``auto`` (this process's GPU), ``cpu`` or ``cuda``.
        mixed_precision: ``no``, ``bf16`` or ``fp16`` autocast (fp32 master weights; fp16 with loss scaling).
        grad_accumulation: micro-batches per optimizer step; each of N processes runs micro-batches of
            ``batch_size / (N * grad_accumulation)``.
        gradient_checkpointing: recompute M2PEnc's blocks, both U-Nets' blocks and the motion modules in
            the backward pass (same values, less activation memory).
        lr_schedule, lr_warmup_steps: ``constant``, ``cosine`` or ``linear`` after a linear warm-up.
        optimizer: ``adamw`` or ``adamw8bit`` (bitsandbytes, CUDA).
        ema_decay: EMA of the trained weights (0 = off); the exported weights are the EMA when on.
        sharding: ``ddp`` (a model replica per process) or ``fsdp`` (parameters, gradients and AdamW
            state sharded over the processes, PyTorch's FSDP2; for stage 2's two full U-Nets).
        tensorboard: write the step scalars to ``output_dir/tensorboard``.
        preview_every: steps between TensorBoard previews of the model's output (0 = none).
        checkpoint_every: steps between resumable checkpoints; 0 = only at the end.
        keep_checkpoints: how many of the newest checkpoints to keep (0 keeps all).
        log_every: steps between loss log lines (every step goes to ``metrics.jsonl``).
        num_workers: DataLoader worker processes reading the data.
        resume: a checkpoint folder, or ``latest`` for the newest one under ``output_dir``.
    """

    data_dir: Optional[str] = None
    data_splits: Optional[list[str]] = None
    data_sources: Optional[list[str]] = None
    output_dir: str = "runs/train"
    batch_size: int = 24
    lr: float = 1e-5
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    grad_clip: float = 1.0
    steps: Optional[int] = None
    epochs: Optional[int] = None
    seed: int = 0
    device: str = "auto"
    mixed_precision: str = "no"
    grad_accumulation: int = 1
    gradient_checkpointing: bool = False
    lr_schedule: str = "constant"
    lr_warmup_steps: int = 0
    optimizer: str = "adamw"
    ema_decay: float = 0.0
    sharding: str = "ddp"
    tensorboard: bool = True
    preview_every: int = 500
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    num_workers: int = 0
    resume: Optional[str] = None

    #: The stage's name in messages and file names.
    STAGE: ClassVar[str] = "run"
    #: Named starting points for ``--preset``; a config file or flags refine them.
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Fields holding filesystem paths: relative values in a config file are relative to that file.
    PATH_FIELDS: ClassVar[tuple[str, ...]] = ("data_dir", "output_dir", "resume")
    #: Float fields that must be finite and >= 0.
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = ("lr", "weight_decay", "grad_clip", "ema_decay")

    def __post_init__(self) -> None:
        for name in ("batch_size", "log_every", "grad_accumulation"):
            _require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("checkpoint_every", "keep_checkpoints", "num_workers", "lr_warmup_steps", "preview_every"):
            _require(getattr(self, name) >= 0, f"{name} must be >= 0, got {getattr(self, name)}")
        _require((self.steps is None) != (self.epochs is None),
                 f"set exactly one of steps and epochs, got steps={self.steps}, epochs={self.epochs}")
        _require((self.steps or self.epochs or 0) >= 1, "steps/epochs must be >= 1")
        _require(self.mixed_precision in MIXED_PRECISION,
                 f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r} (parameters always "
                 "stay float32; bf16/fp16 autocast the forward)")
        _require(self.sharding in SHARDING, f"sharding must be one of {SHARDING}, got {self.sharding!r}")
        _require(self.batch_size % self.grad_accumulation == 0,
                 f"batch_size ({self.batch_size}) must be a multiple of grad_accumulation ({self.grad_accumulation})")
        for name in self.NON_NEGATIVE:
            value = getattr(self, name)
            _require(math.isfinite(value) and value >= 0, f"{name} must be a finite number >= 0, got {value}")
        _require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        _require(self.ema_decay < 1, f"ema_decay must be < 1, got {self.ema_decay}")
        _require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas),
                 f"betas must be two numbers in [0, 1), got {self.betas}")

    # ----- construction -------------------------------------------------------------------

    @classmethod
    def preset(cls: type[C], name: str, **overrides: Any) -> C:
        """The named preset (``paper``, ``tiny``) with some fields changed."""
        if name not in cls.PRESETS:
            raise InputError(f"no {cls.STAGE} preset {name!r}; available: {sorted(cls.PRESETS)}")
        return cls.from_dict({**cls.PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any]) -> C:
        """Build from plain JSON values; unknown keys are an error (usually a typo)."""
        if not isinstance(data, dict):
            raise InputError(f"a {cls.STAGE} config must be a JSON object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"unknown {cls.STAGE} config keys {unknown}; known keys: {sorted(names)}")
        values = dict(data)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        try:
            return cls(**values)
        except TypeError as e:  # e.g. a comparison of a string with an int in __post_init__
            raise InputError(f"invalid {cls.STAGE} config value: {e}") from e

    @classmethod
    def from_json_file(cls: type[C], path: str | Path, base: Optional[C] = None) -> C:
        """Read a TOML (``.toml``) or JSON config file (on top of ``base``, default: the ``paper`` preset).

        Relative paths inside the file are taken relative to the file's folder, so a config
        checked in next to its data works from any working directory.
        """
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{cls.STAGE} config file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
            data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except (json.JSONDecodeError, tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            kind = "TOML" if path.suffix.lower() == ".toml" else "JSON"
            raise InputError(f"{path} is not valid {kind}: {e}") from e
        if not isinstance(data, dict):
            raise InputError(f"{path} must hold a JSON object of {cls.STAGE} settings")
        for key in cls.PATH_FIELDS:
            value = data.get(key)
            if isinstance(value, str) and value != "latest" and not Path(value).is_absolute():
                data[key] = str(path.parent / value)
        return (base or cls.preset("paper")).with_overrides(data)

    def with_overrides(self: C, overrides: dict[str, Any]) -> C:
        """A copy with fields replaced; setting ``steps`` clears ``epochs`` and vice versa."""
        merged = {**self.to_dict(), **overrides}
        if overrides.get("steps") is not None and "epochs" not in overrides:
            merged["epochs"] = None
        if overrides.get("epochs") is not None and "steps" not in overrides:
            merged["steps"] = None
        return self.from_dict(merged)

    # ----- serialisation and derived values -----------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values of every field."""
        data = dataclasses.asdict(self)
        data["betas"] = list(self.betas)
        return data

    def to_json(self) -> str:
        """Canonical JSON (sorted keys, indented) as written next to a run's outputs."""
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    def total_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps of the whole run, given how many steps one epoch takes."""
        return self.steps if self.steps is not None else self.epochs * steps_per_epoch


#: The CPU-sized stage-1 preset: the tiny M2PEnc, short windows, a few steps.
_STAGE1_TINY: dict[str, Any] = {
    "model_preset": "tiny", "batch_size": 2, "sequence_length": 16, "lr": 3e-3,
    "steps": 40, "epochs": None, "checkpoint_every": 20, "log_every": 5, "device": "cpu",
}


@dataclass(frozen=True)
class Stage1Config(RunConfig):
    """Stage 1 (M2PEnc pre-training): :class:`RunConfig` plus the model, windows and loss weights.

    Attributes:
        model_preset: :class:`M2PEncConfig` preset (``paper``, ``paper_baseline``, ``tiny``).
        model_config_file: JSON file of a full :class:`M2PEncConfig`; replaces ``model_preset``.
        model_overrides: single :class:`M2PEncConfig` fields changed on top of the preset/file.
        data_dir: an SDGPip build (``m2pdance-train sdgpip --out``) or a folder of stage-1
            safetensors shards (:mod:`.datasets`, e.g. ``make-toy-data``).
        guidance_encoders: folder of Champ's ``guidance_encoder_*`` files; needed when the SDGPip
            data stores maps (the default), whose guidance targets are encoded while training.
        batch_size: sequences per step (paper: 24).
        sequence_length: frames per sequence (paper: 75 = 5 s at 15 fps).
        window_sampling: ``random`` (uniform over every start frame) or ``sequential``
            (non-overlapping windows in file order).
        epochs: passes over the non-overlapping windows of the data (paper: "over 20,000").
        guidance_weight, heatmap_weight: ``w_g * L_guid + w_h * L_heat`` (the paper gives no
            weights; 1 and 1 are ours).
    """

    model_preset: str = "paper"
    model_config_file: Optional[str] = None
    model_overrides: dict[str, Any] = field(default_factory=dict)
    guidance_encoders: Optional[str] = None
    output_dir: str = "runs/stage1"
    sequence_length: int = 75
    window_sampling: str = "random"
    epochs: Optional[int] = 20000
    guidance_weight: float = 1.0
    heatmap_weight: float = 1.0

    STAGE: ClassVar[str] = "stage-1"
    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {"paper": {}, "tiny": _STAGE1_TINY, "smoke": _STAGE1_TINY}
    PATH_FIELDS: ClassVar[tuple[str, ...]] = RunConfig.PATH_FIELDS + ("model_config_file", "guidance_encoders")
    NON_NEGATIVE: ClassVar[tuple[str, ...]] = RunConfig.NON_NEGATIVE + ("guidance_weight", "heatmap_weight")

    def __post_init__(self) -> None:
        super().__post_init__()
        _require(self.sequence_length >= 1, f"sequence_length must be >= 1, got {self.sequence_length}")
        _require(self.window_sampling in WINDOW_SAMPLING,
                 f"window_sampling must be one of {WINDOW_SAMPLING}, got {self.window_sampling!r}")

    def model_config(self) -> M2PEncConfig:
        """The :class:`M2PEncConfig` to train: preset or file, then ``model_overrides``."""
        if self.model_config_file is not None:
            path = Path(self.model_config_file)
            if not path.is_file():
                raise InputError(f"model config file not found: {path}")
            try:
                base = M2PEncConfig.from_json(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as e:
                raise InputError(f"{path} is not valid JSON: {e}") from e
            return base.replace(**self.model_overrides) if self.model_overrides else base
        return M2PEncConfig.preset(self.model_preset, **self.model_overrides)


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InputError(message)
