"""The demo recipe: a small model set trained end to end by this pack's own pipeline on synthetic data.

One command (``m2pdance-train demo --out DIR``) runs, each step resumable and skipped when done:

1. **music** (:mod:`.music_set`): seeded songs of several tempos, meters and styles, a ``train``
   split and a ``heldout`` split of tempos and patterns training never hears;
2. **init**: the seeded starting weights: both U-Nets, Champ's four guidance encoders (``conv_out``
   zero-initialised, as Champ starts them) and the CLIP image encoder at the demo sizes; CLIP stays
   at this random initialisation (no trained one exists at these sizes; it only has to tell the
   reference photos apart, the ReferenceNet carries their appearance);
3. **data**: an SDGPip build (:mod:`..sdgpip.builder`) of the train songs danced by the beat
   choreographer (``variety``: ``looped``, one loop per beat, the one nearest the beat's loudness, so
   the pose is a function of any window of the music), rendered with the open body at ``size``
   pixels: Champ's four maps, keypoints, heatmaps, light music features, and the frames of the body
   in clothes colours (one scheme per clip, so the reference's colours carry information);
4. **vae** (:mod:`.vae`): the small VAE (SD's architecture, 8x, 4 channels) on the frames;
5. **stage2**: Champ's image stage (:class:`..champ_stages.Stage2Config` ``guidance = "maps"``): the
   guidance encoders, the ReferenceNet and the denoising U-Net trained together on the rendered maps,
   which is how the Champ weights the paper starts from were made (none exist at these sizes; the
   paper's stage 2 then fine-tunes them on M2PEnc's guidance, which this recipe leaves to stage 3's
   ``L_pix``). It runs first so that stage 1 has trained encoders to imitate;
6. **guided**: the same build again with the trained encoders' guidance stored (``store = "guidance"``;
   encoding the maps at every step would triple stage 1's time);
7. **stage1**: the paper's stage 1, M2PEnc regressing that guidance and the keypoint heatmaps
   (:mod:`..stage1`);
8. **stage3**: the paper's stage 3, motion modules and M2PEnc jointly (:mod:`..champ_stages`);
9. **export**: the demo set in ComfyUI's ``models/`` layout (:data:`DEMO_FILES`), float16, each file
   carrying the recipe and the git revision it was trained from, plus ``demo_metrics.json`` (every
   stage's first and final loss) that a shortened re-run is compared with.

Everything is seeded from ``seed``; the same recipe on the same machine gives the same files.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import torch

from ...m2penc.champ.autoencoder import build_vae
from ...m2penc.champ.config import (GUIDANCE_TYPES, DenoisingUNetConfig, GuidanceEncoderConfig,
                                    ImageEncoderConfig, VAEConfig)
from ...m2penc.champ.denoising_unet import DenoisingUNet3D
from ...m2penc.champ.guidance_encoder import GuidanceEncoder
from ...m2penc.champ.image_encoder import build_image_encoder
from ...m2penc.champ.models import ChampModels, save_champ_models
from ...m2penc.champ.reference_unet import ReferenceUNet
from ...m2penc.checkpoint import atomic_write, read_metadata
from ...m2penc.encoder.config import M2PEncConfig
from ...m2penc.errors import InputError
from ...m2penc.motion.choreography.planner import VARIETIES, check_joint_speed
from ...m2penc.progress import NO_CONTROL, RunControl
from ...weights_manifest.demo import DEMO_DIR, DEMO_FILES, RECORD, make_record

LOG = logging.getLogger("m2pdance.training")

_CROSS, _PLAIN = "CrossAttnDownBlock2D", "DownBlock2D"
METRICS_FILE = "demo_metrics.json"
#: The ``quick`` preset's metrics from a reference run, which a re-run must reproduce (tests, CI).
QUICK_REFERENCE = Path(__file__).with_name("quick_metrics.json")
RECIPE_FILE = "demo_recipe.json"
#: Metadata keys of every exported file.
RECIPE_KEY, REVISION_KEY = "m2pdance.demo_recipe", "m2pdance.git_revision"


@dataclass(frozen=True)
class DemoRecipe:
    """Everything the demo recipe does, as data (``--preset full`` or ``quick``; ``--set key=value``).

    Attributes:
        seed: seeds the music, the choreography, every initialisation and every training run.
        size, fps: frame side in pixels (a multiple of 8; the guidance grid is ``size / 8``) and frame rate.
        train_songs, heldout_songs: songs per split; ``song_seconds`` their length range.
        unet, vae, guidance_encoder, image_encoder, m2penc: model sizes (fields of
            :class:`DenoisingUNetConfig`, :class:`VAEConfig`, :class:`GuidanceEncoderConfig`,
            :class:`ImageEncoderConfig`, :class:`M2PEncConfig` on top of their ``tiny`` presets; the VAE on
            its ``demo`` preset).
        variety: how the beat choreographer picks moves (``looped``: every beat one loop, the one nearest the
            beat's loudness, so the pose is a function of any window of the music, which M2PEnc's regression
            can learn; ``by_level`` moves span 2-4 beats counted from the song's start, which a window cannot
            see, and ``seeded`` dances vary with each clip's seed: a regressor learns their average pose).
        max_joint_speed: the choreographer's joint speed limit (m/s). The one-beat loops raise the arms to a T and
            past the shoulders and back inside a beat, which moves the hands at about 7 m/s at 120 BPM (more at faster
            tempos; above ~7.5 m/s the angular speed limit sets their size); at the choreographer's default 5 m/s
            the limiter shrinks them to small moves a 128-px video barely shows.
        window_frames: M2PEnc's window (stage 1 sequences, the feature windows stage 2 reads along).
        clip_frames: stage-3 clip length.
        vae_run, stage1_run, stage2_run, stage3_run: run settings of each step (steps, batch, lr...).
    """

    seed: int = 0
    size: int = 128
    fps: float = 15.0
    train_songs: int = 24
    heldout_songs: int = 6
    song_seconds: tuple[float, float] = (8.0, 12.0)
    unet: dict[str, Any] = field(default_factory=lambda: {
        "block_out_channels": [32, 64, 128], "down_block_types": [_CROSS, _CROSS, _PLAIN], "layers_per_block": 1,
        "num_attention_heads": 4, "cross_attention_dim": 32, "norm_num_groups": 8,
        "motion_num_attention_heads": 4, "motion_max_seq_length": 32})
    vae: dict[str, Any] = field(default_factory=dict)
    guidance_encoder: dict[str, Any] = field(default_factory=lambda: {"embedding_channels": 32})
    image_encoder: dict[str, Any] = field(default_factory=dict)
    # input_standardize: without it the beat column of the light features is invisible to M2PEnc (its LayerNorm
    # scales each frame by the first MFCC); measured on 6 held-out songs: the slow ones' BAS went from 0.01-0.4 to ~0.8
    m2penc: dict[str, Any] = field(default_factory=lambda: {"hidden_channels": 32, "num_layers": 2, "norm_groups": 8,
                                                            "num_heads": 4, "input_standardize": True})
    variety: str = "looped"
    max_joint_speed: float = 8.0
    window_frames: int = 60
    clip_frames: int = 8
    # vae_run steps: at 700 the VAE's colours drift to the data's mean (a red top came out orange or navy, purple teal)
    # and thin arms fade; a trial at 1300 on the same data brought reds, yellows and the arms back (L1 of whole-image
    # reconstructions of the reference photos and frames 0.13 -> 0.10); 1200 keeps the recipe within 45 minutes
    vae_run: dict[str, Any] = field(default_factory=lambda: {"steps": 1200, "batch_size": 8, "lr": 2e-3,
                                                             "kl_weight": 1e-6})
    # heatmap_weight: L_heat is an MSE over sparse 16 x 16 maps, ~0.001 where L_guid is ~0.03; at weight 1 the
    # heatmaps stay a blur of the poses and their keypoints miss the beats (measured: BAS ratio 0.8 vs 2.0 at 10)
    stage1_run: dict[str, Any] = field(default_factory=lambda: {"steps": 800, "batch_size": 4, "lr": 2e-3,
                                                                "heatmap_weight": 10.0})
    stage2_run: dict[str, Any] = field(default_factory=lambda: {"steps": 1300, "batch_size": 8, "lr": 3e-4})
    stage3_run: dict[str, Any] = field(default_factory=lambda: {"steps": 300, "batch_size": 2, "lr": 2e-4})

    PRESETS: ClassVar[dict[str, dict[str, Any]]] = {
        "full": {},
        # CI: the same pipeline, a few songs and steps; its metrics are compared with a recorded run
        "quick": {"train_songs": 2, "heldout_songs": 1, "song_seconds": [5.0, 5.0],
                  "vae_run": {"steps": 8, "batch_size": 4, "lr": 2e-3, "kl_weight": 1e-6},
                  "stage1_run": {"steps": 8, "batch_size": 2, "lr": 2e-3, "heatmap_weight": 10.0},
                  "stage2_run": {"steps": 6, "batch_size": 4, "lr": 3e-4},
                  "stage3_run": {"steps": 3, "batch_size": 1, "lr": 2e-4}},
    }

    def __post_init__(self) -> None:
        def whole(name: str, low: int) -> None:
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
                raise InputError(f"{name} must be an integer >= {low}, got {value!r}")

        for name, low in (("seed", 0), ("size", 64), ("train_songs", 1), ("heldout_songs", 0),
                          ("window_frames", 8), ("clip_frames", 2)):
            whole(name, low)
        if self.variety not in VARIETIES:
            raise InputError(f"variety must be one of {VARIETIES}, got {self.variety!r}")
        object.__setattr__(self, "max_joint_speed", check_joint_speed(self.max_joint_speed))   # 8 and 8.0: one recipe
        if self.size % 8:
            raise InputError(f"size must be a multiple of 8 (the VAE and the guidance grid), got {self.size}")
        if not (isinstance(self.fps, (int, float)) and 1 <= self.fps <= 60):
            raise InputError(f"fps must be a number in [1, 60], got {self.fps!r}")
        seconds = self.song_seconds
        if not (len(seconds) == 2 and all(isinstance(x, (int, float)) for x in seconds)
                and 2.0 <= seconds[0] <= seconds[1] <= 120.0):
            raise InputError(f"song_seconds must be [shortest, longest] within [2, 120] s, got {list(seconds)}")
        if seconds[0] * self.fps < self.window_frames:
            raise InputError(f"songs of {seconds[0]} s at {self.fps} fps are shorter than M2PEnc's window of "
                             f"{self.window_frames} frames; make song_seconds longer or window_frames shorter")
        unet = self.unet_config()                # every model and run config validates here, before any work
        if self.clip_frames > unet.motion_max_seq_length:
            raise InputError(f"clip_frames {self.clip_frames} exceeds the motion modules' "
                             f"motion_max_seq_length {unet.motion_max_seq_length}")
        if len(self.vae_config().block_out_channels) != 4:
            raise InputError(f"the VAE needs 4 levels (8x downsampling, as the guidance grid size / 8 assumes), got "
                             f"block_out_channels {list(self.vae_config().block_out_channels)}")
        self.guidance_config()
        self.image_encoder_config()
        self.m2penc_config()
        self.run_configs(DemoPaths(Path("demo")))

    def run_configs(self, paths: "DemoPaths") -> dict[str, Any]:
        """Every training step's config (VAE, stages 1-3) for a run under ``paths``."""
        from ..champ_stages import CHAMP_DIR, Stage2Config, Stage3Config
        from ..config import Stage1Config
        from ..stage1 import WEIGHTS_FILE
        from .vae import VAE_FILE, VAEStageConfig

        data, guided, vae_file = str(paths.data), str(paths.guided_data), str(paths.run("vae") / VAE_FILE)
        m2penc_file = str(paths.run("stage1") / WEIGHTS_FILE)
        trained_champ = paths.run("stage2") / CHAMP_DIR           # the image stage's U-Nets and guidance encoders
        return {
            "vae": VAEStageConfig.preset("demo", data_dir=data, output_dir=str(paths.run("vae")), model=self.vae,
                                         **self._run_settings("vae")),
            "stage2": Stage2Config.preset(
                "tiny", data_dir=data, output_dir=str(paths.run("stage2")), guidance="maps",
                champ=str(paths.init_champ / "denoising_unet.safetensors"), vae=vae_file,
                image_encoder=str(paths.init_image_encoder), guidance_encoders=str(paths.init_champ),
                window_frames=self.window_frames, **self._run_settings("stage2")),
            "stage1": Stage1Config.preset("tiny", data_dir=guided, output_dir=str(paths.run("stage1")),
                                          model_overrides=self.m2penc_config().to_dict(),
                                          sequence_length=self.window_frames, **self._run_settings("stage1")),
            "stage3": Stage3Config.preset(
                "tiny", data_dir=guided, output_dir=str(paths.run("stage3")),
                champ=str(trained_champ / "denoising_unet.safetensors"), vae=vae_file,
                image_encoder=str(paths.init_image_encoder), m2penc=m2penc_file, num_frames=self.clip_frames,
                **self._run_settings("stage3")),
        }

    def _run_settings(self, step: str) -> dict[str, Any]:
        """The engine settings every demo run shares, then the recipe's own for ``step``."""
        run = getattr(self, f"{step}_run")
        if not isinstance(run, dict):
            raise InputError(f"{step}_run must be a JSON object of run settings, got {run!r}")
        shared = {"seed": self.seed, "device": "cpu", "epochs": None, "resume": "latest", "checkpoint_every": 100,
                  "keep_checkpoints": 1, "log_every": 25, "preview_every": 0, "lr_schedule": "cosine",
                  "lr_warmup_steps": 10, "grad_clip": 1.0}
        return {**shared, **run}

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "DemoRecipe":
        """The named preset with some fields replaced."""
        if name not in cls.PRESETS:
            raise InputError(f"no demo preset {name!r}; available: {sorted(cls.PRESETS)}")
        return cls.from_dict({**cls.PRESETS[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DemoRecipe":
        """From plain JSON values; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"unknown demo recipe keys {unknown}; known keys: {sorted(names)}")
        values = dict(data)
        if "song_seconds" in values:
            if not isinstance(values["song_seconds"], (list, tuple)):
                raise InputError(f"song_seconds must be [shortest, longest], got {values['song_seconds']!r}")
            values["song_seconds"] = tuple(values["song_seconds"])
        try:
            return cls(**values)
        except TypeError as e:                   # e.g. a string compared with a number in a config check
            raise InputError(f"invalid demo recipe value: {e}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values of every field."""
        data = dataclasses.asdict(self)
        data["song_seconds"] = list(self.song_seconds)
        return data

    # ----- the models -------------------------------------------------------------------------

    def unet_config(self) -> DenoisingUNetConfig:
        """Both U-Nets' architecture (the ReferenceNet is its :meth:`~DenoisingUNetConfig.spatial` part)."""
        return DenoisingUNetConfig.preset("tiny", **_tuples(self.unet))

    def vae_config(self) -> VAEConfig:
        return VAEConfig.preset("demo", **_tuples(self.vae))

    def guidance_config(self) -> GuidanceEncoderConfig:
        return GuidanceEncoderConfig.preset("tiny", **_tuples(self.guidance_encoder))

    def image_encoder_config(self) -> ImageEncoderConfig:
        return ImageEncoderConfig.preset("tiny", **_tuples(self.image_encoder))

    def m2penc_config(self) -> M2PEncConfig:
        """M2PEnc on the light features at the recipe's grid, predicting the U-Net's guidance channels."""
        unet = self.unet_config()
        return M2PEncConfig.preset("tiny", fps=self.fps, grid_size=self.size // 8,
                                   guidance_channels=unet.block_out_channels[0],
                                   window_frames=self.window_frames, **_tuples(self.m2penc))

    def initial_models(self) -> ChampModels:
        """The seeded starting weights of every Champ module (module docstring, step 3)."""
        unet = self.unet_config()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            denoiser = DenoisingUNet3D(unet)
            reference = ReferenceUNet(unet.spatial())
            # the ReferenceNet starts as the denoiser's spatial layers, as both start from SD-1.5 in Champ
            spatial = {k: v for k, v in denoiser.state_dict().items() if k in reference.state_dict()}
            reference.load_state_dict(spatial, strict=False)
            encoders = {t: GuidanceEncoder(self.guidance_config()) for t in GUIDANCE_TYPES}
            for encoder in encoders.values():            # Champ starts its guidance encoders' conv_out at zero
                torch.nn.init.zeros_(encoder.conv_out.weight)
                torch.nn.init.zeros_(encoder.conv_out.bias)
            return ChampModels(reference_unet=reference, denoising_unet=denoiser, guidance_encoders=encoders,
                               vae=build_vae(self.vae_config()), image_encoder=build_image_encoder(self.image_encoder_config()))


def _tuples(values: dict[str, Any]) -> dict[str, Any]:
    """JSON lists -> tuples (the config dataclasses hold tuples)."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}


def git_revision(folder: Path) -> str:
    """The checked-out commit of the repository holding ``folder`` (``+dirty`` with local changes), or ``unknown``."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=folder, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=folder,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if head.returncode != 0:
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


# ----- running it ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DemoPaths:
    """Where each step of a recipe run writes, under ``root``."""

    root: Path

    @property
    def music(self) -> Path:
        return self.root / "music"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def guided_data(self) -> Path:
        """The same build with the trained guidance encoders' guidance stored (stages 1 and 3)."""
        return self.root / "data_guided"

    @property
    def init_champ(self) -> Path:
        return self.root / "init" / "champ"

    @property
    def init_image_encoder(self) -> Path:
        return self.root / "init" / "image_encoder.safetensors"

    def run(self, step: str) -> Path:
        return self.root / step

    @property
    def demo_set(self) -> Path:
        """The exported set, laid out as ComfyUI's ``models/`` folder."""
        return self.root / "demo_set"


def _done(path: Path, step: str) -> bool:
    if path.is_file():
        LOG.info("demo recipe: %s already done (%s)", step, path)
        return True
    return False


def _make_music(recipe: DemoRecipe, paths: DemoPaths, control: RunControl) -> None:
    from .music_set import MUSIC_SET_FILE, build_music_set

    if _done(paths.music / MUSIC_SET_FILE, "music"):
        return
    build_music_set(paths.music, seed=recipe.seed, train_count=recipe.train_songs,
                    heldout_count=recipe.heldout_songs, seconds=recipe.song_seconds)


def _build(recipe: DemoRecipe, paths: DemoPaths, control: RunControl, out: Path, **store: str) -> None:
    """The SDGPip build of the train songs into ``out`` (``store``: what to store, and the encoders for it)."""
    from ..sdgpip.builder import BuildConfig, run_build
    from .music_set import TRAIN

    config = BuildConfig(source="beats", data=str(paths.music / TRAIN), out=str(out), split="train",
                         fps=recipe.fps, size=recipe.size, features="light", seed=recipe.seed, items_per_shard=4,
                         appearance="cycle", variety=recipe.variety, max_joint_speed=recipe.max_joint_speed,
                         device="cpu", **store)
    summary = run_build(config, control=control, show_progress=True)
    if not summary["complete"]:
        raise InputError(f"the demo's SDGPip build in {out} did not finish; re-run the same command")


def _build_data(recipe: DemoRecipe, paths: DemoPaths, control: RunControl) -> None:
    _build(recipe, paths, control, paths.data, store="maps")


def _build_guided(recipe: DemoRecipe, paths: DemoPaths, control: RunControl) -> None:
    from ..champ_stages import CHAMP_DIR

    _build(recipe, paths, control, paths.guided_data, store="guidance",
           guidance_encoders=str(paths.run("stage2") / CHAMP_DIR))


def _write_init(recipe: DemoRecipe, paths: DemoPaths, control: RunControl) -> None:
    if _done(paths.init_image_encoder, "init"):
        return
    models = recipe.initial_models()
    stems = ["reference_unet", "denoising_unet"] + [f"guidance_encoder_{t}" for t in models.guidance_encoders]
    save_champ_models(models, paths.init_champ, stems)
    # written last: its presence marks the step done
    save_champ_models(models, paths.init_image_encoder.parent, ["image_encoder"])


def _train_vae(recipe: DemoRecipe, paths: DemoPaths, control: RunControl) -> None:
    from .vae import VAE_FILE, run_vae_stage

    if not _done(paths.run("vae") / VAE_FILE, "vae"):
        run_vae_stage(recipe.run_configs(paths)["vae"], control)


def _train_stage1(recipe: DemoRecipe, paths: DemoPaths, control: RunControl) -> None:
    from ..stage1 import WEIGHTS_FILE, run_stage1

    if not _done(paths.run("stage1") / WEIGHTS_FILE, "stage1"):
        run_stage1(recipe.run_configs(paths)["stage1"], control)


def _train_stage2(recipe: DemoRecipe, paths: DemoPaths, control: RunControl) -> None:
    from ..champ_stages import CHAMP_DIR, run_stage2

    if not _done(paths.run("stage2") / CHAMP_DIR / "denoising_unet.safetensors", "stage2"):
        run_stage2(recipe.run_configs(paths)["stage2"], control)


def _train_stage3(recipe: DemoRecipe, paths: DemoPaths, control: RunControl) -> None:
    from ..champ_stages import M2PENC_FILE, run_stage3

    if not _done(paths.run("stage3") / M2PENC_FILE, "stage3"):
        run_stage3(recipe.run_configs(paths)["stage3"], control)


def _sources(paths: DemoPaths) -> dict[str, Path]:
    """Where each file of the demo set comes from in a finished run."""
    from ..champ_stages import CHAMP_DIR, M2PENC_FILE
    from .vae import VAE_FILE

    stage3 = paths.run("stage3")
    found = {"denoising_unet": stage3 / CHAMP_DIR / "denoising_unet.safetensors",
             "reference_unet": stage3 / CHAMP_DIR / "reference_unet.safetensors",
             "vae": paths.run("vae") / VAE_FILE, "image_encoder": paths.init_image_encoder,
             "m2penc": stage3 / M2PENC_FILE}
    for role in DEMO_FILES:
        if role.startswith("guidance_encoder_"):
            found[role] = paths.run("stage2") / CHAMP_DIR / f"{role}.safetensors"     # Champ's image stage trained them
    return found


def stage_metrics(run_dir: Path) -> dict[str, Any]:
    """First and final values of a run's ``metrics.jsonl`` (every scalar it logged) and its step count."""
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip()]
    if not lines:
        raise InputError(f"{run_dir}/metrics.jsonl is empty: the run did not train")
    scalars = [k for k, v in lines[-1].items() if isinstance(v, (int, float)) and k not in ("step", "lr")]
    return {"steps": int(lines[-1].get("step", len(lines))),
            "first": {k: lines[0][k] for k in scalars if k in lines[0]},
            "final": {k: lines[-1][k] for k in scalars}}


def export_demo_set(recipe: DemoRecipe, paths: DemoPaths, revision: str) -> dict[str, Any]:
    """Write the demo set (float16, recipe and revision in every file's metadata) and its metrics file."""
    from safetensors.torch import load_file

    from ...m2penc.checkpoint import CONFIG_KEY, KIND_KEY, save_model

    recipe_json = json.dumps(recipe.to_dict(), sort_keys=True)
    sources = _sources(paths)
    for role, relative in DEMO_FILES.items():
        source = sources[role]
        meta = read_metadata(source)
        tensors = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(source)).items()}
        extra = {k: v for k, v in meta.items() if k not in (KIND_KEY, CONFIG_KEY)}
        save_model(paths.demo_set / relative, tensors, meta[KIND_KEY], meta[CONFIG_KEY],
                   {**extra, RECIPE_KEY: recipe_json, REVISION_KEY: revision})
    metrics = {"recipe": recipe.to_dict(), "revision": revision,
               "stages": {step: stage_metrics(paths.run(step)) for step in ("vae", "stage1", "stage2", "stage3")},
               "bytes": sum((paths.demo_set / r).stat().st_size for r in DEMO_FILES.values())}
    text = json.dumps(metrics, sort_keys=True, indent=1).encode()
    atomic_write(paths.root / METRICS_FILE, lambda tmp: Path(tmp).write_bytes(text))
    return metrics


def run_demo_recipe(recipe: DemoRecipe, out: Path, control: RunControl = NO_CONTROL,
                    revision: Optional[str] = None) -> dict[str, Any]:
    """Run (or resume) every step of the recipe into ``out``; returns the metrics written to ``demo_metrics.json``."""
    paths = DemoPaths(Path(out))
    paths.root.mkdir(parents=True, exist_ok=True)
    saved = paths.root / RECIPE_FILE
    recipe_json = json.dumps(recipe.to_dict(), sort_keys=True, indent=1)
    if saved.is_file() and json.loads(saved.read_text(encoding="utf-8")) != recipe.to_dict():
        raise InputError(f"{paths.root} holds a run of another recipe ({saved}); use a new --out folder")
    atomic_write(saved, lambda tmp: Path(tmp).write_text(recipe_json, encoding="utf-8"))
    steps: dict[str, Callable[[DemoRecipe, DemoPaths, RunControl], None]] = {
        "music": _make_music, "init": _write_init, "data": _build_data, "vae": _train_vae,
        "stage2": _train_stage2, "guided": _build_guided, "stage1": _train_stage1, "stage3": _train_stage3}
    for name, step in steps.items():
        control.check_cancel()
        LOG.info("demo recipe: %s", name)
        step(recipe, paths, control)
    return export_demo_set(recipe, paths, revision or git_revision(Path(__file__).parent))


def ship_demo_set(paths: DemoPaths, metrics: dict[str, Any], destination: Path = DEMO_DIR) -> Path:
    """Copy a finished run's demo set into the pack (``weights_manifest/demo-set``) with its record.

    Only a run of the ``full`` preset's training lengths may replace what the pack ships."""
    full = DemoRecipe.preset("full").to_dict()
    if any(metrics["recipe"][f"{step}_run"]["steps"] < full[f"{step}_run"]["steps"]
           for step in ("vae", "stage1", "stage2", "stage3")):
        raise InputError("this run trained fewer steps than the full preset; only a full run may replace the "
                         "shipped demo set (drop --ship, or run --preset full)")
    for relative in DEMO_FILES.values():
        target = destination / relative
        atomic_write(target, lambda tmp, s=paths.demo_set / relative: shutil.copyfile(s, tmp))
    record = make_record(destination, {"recipe": metrics["recipe"], "revision": metrics["revision"],
                                       "stages": metrics["stages"]})
    text = json.dumps(record, sort_keys=True, indent=1).encode()
    return atomic_write(destination / RECORD, lambda tmp: Path(tmp).write_bytes(text))
