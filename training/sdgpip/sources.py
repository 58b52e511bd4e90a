"""The SDGPip motion sources (paper sec. 3.1): where the builder's clips -- motion, music, camera -- come from.

Three sources (:data:`SOURCES`), one interface (:class:`MotionSource`): ``items()`` lists the work
items from the folder listing alone (nothing decoded, sorted, so a build can be split and resumed),
``clips(item)`` makes that item's :class:`Clip` s, ``describe()`` gives the JSON facts that identify
what the source produces (the build's settings record).

* ``aist``: the real dances. One clip per AIST++ sequence of the split (:class:`.aist.AISTDataset`):
  the motion resampled from 60 fps to the build fps, the sequence's music, and camera C09 turned
  into a ``size x size`` camera of the dancer crop (:meth:`.aist.AISTDataset.dancer_crop`), so the
  rendered maps align pixel for pixel with the cropped video frames. Why the camera is rewritten:
  AIST++ places joints as ``world_m = s / 100 * FK(poses, trans + rest_pelvis)`` while the renderer's
  body puts the pelvis at ``trans`` unscaled; camera-space points ``s / 100 * (R FK + R rest + t * 100 / s)``
  project like their unscaled version, so one camera with the same ``R`` and
  ``t' = R rest_pelvis + t * 100 / s`` sees the unscaled motion exactly where AIST++'s projection puts
  the joints (only depth is scaled, by ``100 / s``).
* ``beats``: one clip per music file of a folder, danced by the procedural beat choreographer
  (:func:`~m2penc.audio.rhythm.music_choreography`). With ``appearance`` each clip also names a colour
  scheme (:mod:`~m2penc.render.appearance`) and the builder renders its video frames: the same body and
  camera as the maps, painted in the scheme (synthetic video for stages 2-3).
* ``edge``: per music file, the paper's teacher EDGE on non-overlapping full slices of one EDGE
  window (5 s) at offsets 0, 5, 10 ... s; each slice is generated on its own (features of the slice
  alone, as EDGE extracts them, and a seed of its own from :func:`clip_seed`), so a re-run reproduces
  every slice and one slice never depends on another. A track shorter than one slice gives no clip.

Every clip's motion is y-up at the build fps with the pelvis at ``trans`` (metres), and covers
``min(motion frames, music frames)`` frames of the music from ``music_offset``
(:func:`~m2penc.timeline.frame_count`). Music is always the WHOLE track: the builder extracts features
over it, as at inference, and takes the clip's rows.

Music folders (``beats``, ``edge``): every file with an extension :func:`~m2penc.audio.io.load_audio`
reads, found recursively and sorted by relative POSIX path; hidden files and folders are skipped;
links leading outside the folder, anything that is not a regular file once links inside the folder
are followed (a FIFO or device named ``*.wav`` would block decoding forever), unreadable files and
names that are not printable UTF-8 are refused up front, all in one :class:`InputError`.
"""
from __future__ import annotations

import hashlib
import inspect
import itertools
import json
import logging
import os
import re
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Protocol, Union

import numpy as np
import torch

from ...m2penc.audio.edge_slices import edge_music_windows
from ...m2penc.audio.features import extract_music_features
from ...m2penc.audio.io import SUPPORTED_EXTENSIONS, load_audio, trim_audio
from ...m2penc.audio.rhythm import music_choreography
from ...m2penc.device import resolve_device, resolve_dtype
from ...m2penc.errors import InputError
from ...m2penc.jukebox.config import DEFAULT_LAYER
from ...m2penc.motion import SMPLMotion
from ...m2penc.motion.edge.checkpoint import EDGEModelBundle, load_edge
from ...m2penc.motion.edge.diffusion import DEFAULT_GUIDANCE
from ...m2penc.motion.edge.generate import edge_motion_from_windows
from ...m2penc.motion.choreography.planner import MAX_JOINT_SPEED, VARIETIES, check_joint_speed
from ...m2penc.render.appearance import COLOUR_SCHEMES, TRAINING_SCHEMES
from ...m2penc.render.camera import PinholeCamera
from ...m2penc.timeline import frame_count, rational_fps
from ...weights_manifest.verify import sha256_of
from .aist import AIST_REST_PELVIS_M, CM_TO_M, AISTDataset, AISTSequence, CropBox
from .aist_layout import SPLITS, VIDEO_VIEW
from .shards import KEY_MAX_LENGTH, KEY_PATTERN, file_kind

log = logging.getLogger(__name__)

SOURCES: tuple[str, ...] = ("aist", "edge", "beats")
#: Characters of a music file's stem kept in its keys (the rest is identified by the path hash).
STEM_CHARS = 48
#: Hex digits of sha256(relative path) in a music file's keys.
PATH_HASH_CHARS = 8
#: EDGE weights file suffixes :func:`load_edge` reads.
EDGE_SUFFIXES: tuple[str, ...] = (".safetensors", ".pt", ".pth", ".ckpt")
#: Beat choreographer amplitude range (:func:`~m2penc.motion.choreography.choreograph`).
INTENSITY_RANGE = (0.0, 2.0)
#: How a synthetic clip's colour scheme is picked from the training (not held-out) schemes: ``cycle``
#: (the item's position in the sorted listing), ``random`` (from the clip's seed); a scheme's name uses it for all.
APPEARANCE_MODES: tuple[str, ...] = ("cycle", "random")
#: The Jukebox layer EDGE's released checkpoint was trained on (EDGE's ``jukebox_features.py``): the edge
#: source always extracts its slices' features there, whatever layer the student's features use.
EDGE_JUKEBOX_LAYER: int = DEFAULT_LAYER
#: Arguments of :func:`extract_music_features` that the EDGE slicer sets itself (not allowed in ``edge_extract``).
_SLICER_SETS = ("audio", "kind", "fps", "start", "duration", "control")
# the longest music key (``edge-<stem>-<hash>-s<slice>``, slices < 10**5) is a valid sample key
assert len("edge--") + STEM_CHARS + PATH_HASH_CHARS + len("-s99999") <= KEY_MAX_LENGTH
PathLike = Union[str, os.PathLike]
Video = Callable[[], Iterator[np.ndarray]]


@dataclass(frozen=True, eq=False)
class Clip:
    """One training clip: a motion, the music it dances to, and how to see it.

    Attributes:
        key: unique, run-stable sample key, :data:`.shards.KEY_PATTERN` (``aist-<sequence>``,
            ``beats-<stem>-<8 hex>``, ``edge-<stem>-<8 hex>-s<slice>``).
        source: one of :data:`SOURCES`.
        split: ``"train"``, ``"val"`` or ``"test"``.
        sequence: the AIST++ sequence name, or the music file's path relative to the folder (POSIX).
        motion: the clip's :class:`SMPLMotion` at the build fps, ``up_axis="y"``, pelvis at ``trans``
            (metres): what the renderer's body model takes.
        camera: the ``size x size`` camera for ``motion`` as given (AIST: C09 of the dancer crop), or
            ``None``: the builder frames the motion itself.
        music: AUDIO dict ``{"waveform": (1, C, S), "sample_rate"}`` of the whole track.
        music_offset: seconds into the track of the clip's frame 0.
        start_bpm: tempo hint for the beat tracker (AIST: from the music id), or ``None``.
        seed: the seed the motion was made with (0 for AIST).
        video: AIST with video: returns an iterator of uint8 ``(size, size, 3)`` RGB frames, frame ``k``
            showing motion frame ``k``; else ``None``.
        meta: extra JSON-able facts (genre, dancer, music file, slice index, ...).
        appearance: synthetic clips: the colour scheme (:data:`~m2penc.render.appearance.COLOUR_SCHEMES`)
            the builder renders the clip's video frames in, from the maps' body and camera; else ``None``.
    """

    key: str
    source: str
    split: str
    sequence: str
    motion: SMPLMotion
    camera: Optional[PinholeCamera]
    music: dict[str, Any]
    music_offset: float
    start_bpm: Optional[float]
    seed: int
    video: Optional[Video]
    meta: dict[str, Any]
    appearance: Optional[str] = None

    def __post_init__(self) -> None:
        if self.appearance is not None and (self.appearance not in COLOUR_SCHEMES or self.video is not None):
            raise InputError(f"clip {self.key}: appearance must name a colour scheme ({', '.join(COLOUR_SCHEMES)}) "
                             f"and the clip must have no video of its own, got {self.appearance!r}")
        if KEY_PATTERN.fullmatch(self.key) is None:
            raise InputError(f"clip key {self.key!r} must be 1-{KEY_MAX_LENGTH} characters of A-Z a-z 0-9 _ - "
                             f"({KEY_PATTERN.pattern}): the shards name samples by it")
        if self.source not in SOURCES or self.motion.up_axis != "y":
            raise InputError(f"clip {self.key}: the source must be one of {SOURCES} and the motion y-up, got "
                             f"{self.source!r} and up_axis {self.motion.up_axis!r}")


class MotionSource(Protocol):
    """What the builder reads clips from (:class:`AISTSource`, :class:`BeatsSource`, :class:`EDGESource`)."""

    name: str

    def items(self) -> list[str]:
        """Work items, sorted, from the folder listing alone."""

    def clips(self, item: str) -> Iterator[Clip]:
        """The clips of one work item."""

    def describe(self) -> dict[str, Any]:
        """JSON facts identifying what this source produces."""


def clip_seed(base_seed: int, *parts: str) -> int:
    """A 63-bit seed from sha256 of ``base_seed`` and ``parts`` (stable across runs and ``PYTHONHASHSEED``)."""
    digest = hashlib.sha256(json.dumps([int(base_seed), *map(str, parts)]).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


# -- settings checks ------------------------------------------------------------------------------

def _check_common(split: str, fps: float, seed: int) -> float:
    """Check what every source takes; returns ``fps`` as a float."""
    if split not in SPLITS:
        raise InputError(f"split must be one of {SPLITS}, got {split!r}")
    rational_fps(fps)                                           # positive and finite, or InputError
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**63:
        raise InputError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return float(fps)


def _folder(data: PathLike, what: str) -> Path:
    """``data`` as an existing folder (resolved), else an :class:`InputError` naming it."""
    path = Path(data).expanduser()
    if not path.is_dir():
        state = "is a file" if path.is_file() else "does not exist"
        raise InputError(f"the {what} folder {path} {state}; pass the folder holding the {what}")
    return path.resolve()


def _music_frames(music: Mapping[str, Any], fps: float, offset: float = 0.0,
                  seconds: Optional[float] = None) -> int:
    """Whole frames at ``fps`` of the music from ``offset`` s (for ``seconds`` at most, ``None``: to the end)."""
    sample_rate = int(music["sample_rate"])
    first = int(round(offset * sample_rate))
    count = int(music["waveform"].shape[-1]) - first
    if seconds is not None:
        count = min(count, int(round(seconds * sample_rate)))
    return frame_count(max(count, 0), sample_rate, fps)


def _fit_to_music(motion: SMPLMotion, frames: int, what: str) -> SMPLMotion:
    """The motion's first ``min(N, frames)`` frames (a clip never runs past its music)."""
    if frames < 1:
        raise InputError(f"{what}: the music is shorter than one frame at {motion.fps:g} fps; use a longer track")
    return motion if motion.num_frames <= frames else motion.slice(0, frames)


# -- AIST++ ---------------------------------------------------------------------------------------

class AISTSource:
    """AIST++ sequences of one split as clips (module docstring); ``items()`` are sequence names.

    Args:
        root: the AIST++ folder (:mod:`.aist_layout`), checked completely here.
        split: ``"train"``, ``"val"`` or ``"test"``.
        fps: build frame rate; size: side of the square crop camera (and video frames), pixels.
        video: also serve the cropped C09 video frames (requires ``videos/``).
    """

    name = "aist"

    def __init__(self, root: PathLike, split: str = "train", fps: float = 15.0, size: int = 512,
                 video: bool = False):
        self.fps = _check_common(split, fps, 0)
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise InputError(f"size must be a positive integer number of pixels, got {size!r}")
        self.size, self.video = int(size), bool(video)
        self.dataset = AISTDataset(_folder(root, "AIST++"), split, need_video=self.video)

    def items(self) -> list[str]:
        """The split's sequence names (ignore list removed), sorted."""
        return sorted(s.name for s in self.dataset.sequences)

    def camera(self, item: str) -> PinholeCamera:
        """The ``size x size`` C09 camera of the dancer crop, for the unscaled motion (module docstring)."""
        seq = self.dataset.sequence(item)
        return self._camera(seq, self.dataset.scaling(seq), self.dataset.dancer_crop(seq))

    def _camera(self, seq: AISTSequence, scaling: float, box: CropBox) -> PinholeCamera:
        c09 = self.dataset.camera(seq)
        rest = torch.tensor(AIST_REST_PELVIS_M, dtype=torch.float64)
        translation = c09.rotation.double() @ rest + c09.translation.double() / (scaling * CM_TO_M)
        return replace(c09, translation=translation.float()).crop(box.left, box.top, box.side, self.size)

    def clips(self, item: str) -> Iterator[Clip]:
        """The sequence's one clip."""
        seq = self.dataset.sequence(item)
        music = self.dataset.music(seq)
        motion = self.dataset.motion(seq).resample(self.fps)
        motion = _fit_to_music(motion, _music_frames(music, self.fps), f"{seq.name} ({seq.paths.music})")
        scaling, box = self.dataset.scaling(seq), self.dataset.dancer_crop(seq)
        video: Optional[Video] = None
        if self.video:
            frames, dataset, size, fps = motion.num_frames, self.dataset, self.size, self.fps

            def cropped_frames() -> Iterator[np.ndarray]:
                return itertools.islice(dataset.video_frames(seq, size, fps), frames)
            video = cropped_frames
        meta = {"genre": seq.genre, "situation": seq.situation, "dancer": seq.dancer, "music_id": seq.music_id,
                "choreography": seq.choreography, "music_file": seq.paths.music.name,
                "camera_setting": seq.camera_setting, "view": VIDEO_VIEW, "smpl_scaling": scaling,
                "crop": [box.left, box.top, box.side]}
        yield Clip(f"aist-{seq.name}", self.name, self.dataset.split, seq.name, motion,
                   self._camera(seq, scaling, box), music, 0.0, seq.start_bpm, 0, video, meta)

    def describe(self) -> dict[str, Any]:
        return {"source": self.name, "folder": str(self.dataset.root), "split": self.dataset.split,
                "fps": self.fps, "size": self.size, "video": self.video, "view": VIDEO_VIEW,
                "sequences": len(self.dataset), "items_sha256": _items_digest(self.items())}


# -- music folders --------------------------------------------------------------------------------

def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _name_problem(relative: str) -> Optional[str]:
    """Why a relative path cannot be a work item (not UTF-8, control characters), or ``None``."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not valid UTF-8"
    if any(ord(c) < 32 or ord(c) == 127 for c in relative):
        return "its name holds control characters (a newline, tab ...)"
    return None


def _link_problem(path: Path, folder: Path) -> Optional[str]:
    """Why the file link ``path`` cannot be used (broken, a loop, leads outside ``folder``), or ``None``."""
    try:
        target = path.resolve(strict=True)
    except (OSError, RuntimeError):              # missing target, or a loop of links
        return f"a broken link (to {ascii(os.readlink(path))})"
    if not _inside(target, folder):
        return f"a link to {ascii(str(target))}, outside the folder"
    return None


def _regular_file_problem(path: Path) -> Optional[str]:
    """``None`` if ``path`` (its target, for a link already checked) is a regular file, else why not.

    ``os.stat`` never opens the file, so a FIFO is recognised without blocking on it.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if stat.S_ISREG(mode):
        return None
    return f"{file_kind(mode)}, not a regular file (reading it could block forever or read a device)"


def list_music_files(folder: Path) -> list[str]:
    """Music files under ``folder`` (resolved), as sorted relative POSIX paths (module docstring).

    Raises:
        InputError: one message listing every refused file or link, or saying the folder holds no music.
    """
    problems: list[str] = []
    found: list[str] = []

    def unreadable(error: OSError) -> None:
        problems.append(f"{ascii(error.filename)}: cannot be listed ({error.strerror})")

    for here, dirs, files in os.walk(folder, onerror=unreadable):
        base = Path(here)
        keep = []
        for name in sorted(dirs):
            path = base / name
            if name.startswith("."):
                continue
            if path.is_symlink():                               # not followed: its files are found where they are
                if not _inside(path.resolve(), folder):
                    problems.append(f"{ascii(str(path))}: a link to {ascii(str(path.resolve()))}, outside the folder")
                continue
            keep.append(name)
        dirs[:] = keep
        for name in sorted(files):
            path = base / name
            if name.startswith(".") or path.suffix.lower() not in SUPPORTED_EXTENSIONS:
                continue
            relative = path.relative_to(folder).as_posix()
            problem = _name_problem(relative)
            if problem is None and path.is_symlink():
                problem = _link_problem(path, folder)
            if problem is None:
                problem = _regular_file_problem(path)
            if problem is None and not os.access(path, os.R_OK):
                problem = "not readable (permissions)"
            if problem is None:
                found.append(relative)
            else:
                problems.append(f"{ascii(relative)}: {problem}")
    if problems:
        raise InputError(f"the music folder {folder} has {len(problems)} file(s) that cannot be used:\n  - "
                         + "\n  - ".join(problems) + "\nrename them (printable UTF-8 names), copy linked files into "
                         "the folder, fix their permissions, or move them (and pipes, devices) out of the folder")
    if not found:
        raise InputError(f"the music folder {folder} holds no music files (looked recursively for "
                         f"{' '.join(SUPPORTED_EXTENSIONS)}; hidden files are skipped); put the tracks there")
    return sorted(found)


def _items_digest(items: list[str]) -> str:
    return hashlib.sha256("\n".join(items).encode("utf-8")).hexdigest()


def music_key(prefix: str, relative: str) -> str:
    """``<prefix>-<safe stem>-<8 hex of sha256(relative path)>``: a key part unique per file, stable across runs."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(relative).stem).strip("-")[:STEM_CHARS].strip("-") or "track"
    return f"{prefix}-{stem}-{hashlib.sha256(relative.encode('utf-8')).hexdigest()[:PATH_HASH_CHARS]}"


class _MusicFolderSource:
    """What the music-folder sources share: the listing, the keys, the music of an item."""

    name = ""

    def __init__(self, folder: PathLike, split: str, fps: float, seed: int):
        self.fps = _check_common(split, fps, seed)
        self.split, self.seed = split, int(seed)
        self.folder = _folder(folder, "music")
        self._items = list_music_files(self.folder)
        keys: dict[str, str] = {}
        for item in self._items:
            other = keys.setdefault(music_key(self.name, item), item)
            if other != item:
                raise InputError(f"{self.folder}: {ascii(other)} and {ascii(item)} get the same sample key "
                                 f"{music_key(self.name, item)!r}; rename one of them")

    def items(self) -> list[str]:
        """The music files, relative POSIX paths, sorted."""
        return list(self._items)

    def _music(self, item: str) -> dict[str, Any]:
        if item not in self._items:
            raise InputError(f"{item!r} is not a music file of {self.folder} (items() lists them)")
        return load_audio(self.folder / item)

    def _describe(self) -> dict[str, Any]:
        return {"source": self.name, "folder": str(self.folder), "split": self.split, "fps": self.fps,
                "seed": self.seed, "files": len(self._items), "items_sha256": _items_digest(self._items)}


def check_appearance(appearance: Optional[str]) -> Optional[str]:
    """``None``, a mode of :data:`APPEARANCE_MODES` or a scheme name, else an :class:`InputError`."""
    if appearance is not None and appearance not in APPEARANCE_MODES and appearance not in COLOUR_SCHEMES:
        raise InputError(f"appearance must be one of {', '.join(APPEARANCE_MODES)} (pick a training colour scheme "
                         f"per clip) or a scheme name ({', '.join(COLOUR_SCHEMES)}), got {appearance!r}")
    return appearance


def pick_scheme(appearance: str, seed: int, position: int) -> str:
    """The scheme of a clip: ``cycle`` -> training scheme ``position mod n``, ``random`` -> one drawn from
    ``seed`` (the clip's :func:`clip_seed`), a scheme name -> that scheme. Never a held-out one for the modes."""
    if appearance == "cycle":
        return TRAINING_SCHEMES[position % len(TRAINING_SCHEMES)]
    if appearance == "random":
        draw = clip_seed(seed, "appearance")
        return TRAINING_SCHEMES[draw % len(TRAINING_SCHEMES)]
    return check_appearance(appearance) or ""


def _schemes_digest() -> str:
    """sha256 of every scheme's colours (a build's id changes with them)."""
    text = json.dumps([s.as_dict() for s in COLOUR_SCHEMES.values()], sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


class BeatsSource(_MusicFolderSource):
    """One procedural beat-choreographer dance per music file (seed :func:`clip_seed` of the file's path).

    Args:
        folder: the music folder; split: the label the clips carry; fps: build frame rate;
        seed: base seed; intensity: move amplitude, 0 (still) .. 2 (1 = normal).
        max_joint_speed: the choreographer's joint speed limit, m/s (:func:`check_joint_speed`).
        variety: how the choreographer picks moves (``seeded``: varied; ``by_level``: a function of the
            music alone; ``looped``: of any window of it, :data:`~m2penc.motion.choreography.planner.VARIETIES`).
        appearance: ``None`` (motion only), ``cycle``/``random`` or a scheme name: each clip's
            :attr:`Clip.appearance` (:func:`pick_scheme`), so the builder renders its video frames.
    """

    name = "beats"

    def __init__(self, folder: PathLike, split: str = "train", fps: float = 15.0, seed: int = 0,
                 intensity: float = 1.0, appearance: Optional[str] = None, variety: str = "seeded",
                 max_joint_speed: float = MAX_JOINT_SPEED):
        if not (isinstance(intensity, (int, float)) and INTENSITY_RANGE[0] <= intensity <= INTENSITY_RANGE[1]):
            raise InputError(f"intensity must be in {list(INTENSITY_RANGE)} (1 = normal, 0 = standing still), "
                             f"got {intensity!r}")
        self.appearance = check_appearance(appearance)
        if variety not in VARIETIES:
            raise InputError(f"variety must be one of {VARIETIES}, got {variety!r}")
        self.variety = variety
        self.max_joint_speed = check_joint_speed(max_joint_speed)
        super().__init__(folder, split, fps, seed)
        self.intensity = float(intensity)

    def clips(self, item: str) -> Iterator[Clip]:
        """The file's one clip: the whole track danced from frame 0."""
        music = self._music(item)
        seed = clip_seed(self.seed, self.name, item)
        motion = music_choreography(music, fps=self.fps, seed=seed, intensity=self.intensity, variety=self.variety,
                                    max_joint_speed=self.max_joint_speed)
        motion = _fit_to_music(motion, _music_frames(music, self.fps), str(self.folder / item))
        meta = {"music_file": item, "track_seconds": music["waveform"].shape[-1] / music["sample_rate"]}
        scheme = None
        if self.appearance is not None:
            scheme = pick_scheme(self.appearance, seed, self._items.index(item))
            meta["appearance"] = scheme
        yield Clip(music_key(self.name, item), self.name, self.split, item, motion, None, music, 0.0, None, seed,
                   None, meta, scheme)

    def describe(self) -> dict[str, Any]:
        facts = {**self._describe(), "intensity": self.intensity}
        if self.variety != "seeded":                   # absent at the default: older builds keep their ids
            facts["variety"] = self.variety
        if self.max_joint_speed != MAX_JOINT_SPEED:    # absent at the default: older builds keep their ids
            facts["max_joint_speed"] = self.max_joint_speed
        if self.appearance is not None:                # absent when off: older builds keep their ids
            facts.update(appearance=self.appearance, schemes_sha256=_schemes_digest())
        return facts


def _json_value(value: Any) -> Any:
    """A JSON-able stand-in for an ``edge_extract`` value (paths as strings, objects by type name)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (torch.device, torch.dtype)):
        return str(value)
    return f"<{type(value).__name__}>"


class EDGESource(_MusicFolderSource):
    """EDGE dances of full, non-overlapping one-window slices of every music file (module docstring).

    Args:
        folder: the music folder; checkpoint: EDGE weights (``checkpoint.pt`` or our ``.safetensors``),
            loaded on first use; split, fps, seed: as :class:`BeatsSource`.
        device, dtype: where and in which precision EDGE runs.
        extract: extra arguments of :func:`extract_music_features` for the slices' features. A Jukebox
            EDGE needs ``vqvae_path`` and ``prior_path`` (the Jukebox weights folder; the CLI's
            ``--jukebox DIR``) or ``extractor``; e.g. the builder's ``{"vqvae_path": dir,
            "prior_path": dir, "layer": 66, "device": ..., "dtype": ...}``. ``layer`` may only be
            :data:`EDGE_JUKEBOX_LAYER` (66): the slices are always extracted at EDGE's layer.
    """

    name = "edge"

    def __init__(self, folder: PathLike, checkpoint: Optional[PathLike], split: str = "train", fps: float = 15.0,
                 seed: int = 0, device: Union[str, torch.device, None] = "cpu", dtype: str = "fp32",
                 extract: Optional[Mapping[str, Any]] = None):
        super().__init__(folder, split, fps, seed)
        if checkpoint is None:
            raise InputError("the edge source needs an EDGE checkpoint: pass --edge-checkpoint FILE (EDGE's "
                             "checkpoint.pt or an m2pdance .safetensors, e.g. models/edge/... from `m2pdance weights`; "
                             "from Python: edge_checkpoint=FILE)")
        self.checkpoint = Path(checkpoint).expanduser()
        if not self.checkpoint.is_file():
            raise InputError(f"EDGE checkpoint {self.checkpoint} does not exist or is not a file; pass the path of "
                             f"EDGE's checkpoint.pt or an m2pdance .safetensors")
        if not self.checkpoint.name.endswith(EDGE_SUFFIXES):
            raise InputError(f"EDGE checkpoint {self.checkpoint}: unknown format; use EDGE's checkpoint.pt or an "
                             f"m2pdance .safetensors ({' '.join(EDGE_SUFFIXES)})")
        try:
            self.device = resolve_device(device)
        except (RuntimeError, TypeError) as e:
            raise InputError(f"device must be 'cpu', 'cuda', 'cuda:<n>' or 'auto', got {device!r} ({e})") from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise InputError(f"device {device!r} asks for CUDA but none is available; use device='cpu'")
        self.dtype = resolve_dtype(dtype, self.device)
        allowed = set(inspect.signature(extract_music_features).parameters) - set(_SLICER_SETS)
        self.extract = dict(extract or {})
        unknown = sorted(set(self.extract) - allowed)
        if unknown:
            raise InputError(f"edge_extract has unknown or reserved keys {unknown}; allowed: {sorted(allowed)}")
        layer = self.extract.get("layer", EDGE_JUKEBOX_LAYER)
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)) or layer != EDGE_JUKEBOX_LAYER:
            raise InputError(f"edge_extract['layer'] is {layer!r}, but EDGE was trained on Jukebox layer "
                             f"{EDGE_JUKEBOX_LAYER} features, so its slices are always extracted there (the student's "
                             f"--jukebox-layer applies to the stored features only); leave 'layer' out or set "
                             f"{EDGE_JUKEBOX_LAYER}")
        self._bundle: Optional[EDGEModelBundle] = None
        self._sha256: Optional[str] = None

    @property
    def bundle(self) -> EDGEModelBundle:
        """EDGE, loaded on first use (once per source)."""
        if self._bundle is None:
            bundle = load_edge(self.checkpoint, self.device, self.dtype)
            weights = self.extract.get("extractor") is not None or (
                self.extract.get("vqvae_path") is not None and self.extract.get("prior_path") is not None)
            if bundle.config.feature_kind == "jukebox" and not weights:
                raise InputError(f"EDGE checkpoint {self.checkpoint} reads Jukebox features (layer "
                                 f"{EDGE_JUKEBOX_LAYER}): pass --jukebox DIR (the Jukebox weights folder, holding the "
                                 f"5B vqvae and prior_level_2 files), or use a baseline EDGE checkpoint")
            self._bundle = bundle
        return self._bundle

    def _extract_settings(self) -> dict[str, Any]:
        """``extract`` with EDGE's Jukebox layer (:data:`EDGE_JUKEBOX_LAYER`) for a Jukebox EDGE."""
        if self.bundle.config.feature_kind != "jukebox":
            return dict(self.extract)
        return {**self.extract, "layer": EDGE_JUKEBOX_LAYER}

    @property
    def slice_seconds(self) -> float:
        """One EDGE window: ``seq_len / fps`` seconds (5 s for EDGE's release)."""
        return self.bundle.config.seq_len / self.bundle.config.fps

    def slice_count(self, music: Mapping[str, Any]) -> int:
        """Full slices in ``music`` (an AUDIO dict): ``floor(frames at EDGE's fps / seq_len)``."""
        return _music_frames(music, self.bundle.config.fps) // self.bundle.config.seq_len

    def clips(self, item: str) -> Iterator[Clip]:
        """One clip per full slice of the track (none, with a warning, for a track shorter than one slice)."""
        music = self._music(item)
        count = self.slice_count(music)
        if count == 0:
            log.warning("%s is %.2f s long, shorter than one EDGE slice (%g s): no edge clip", self.folder / item,
                        music["waveform"].shape[-1] / music["sample_rate"], self.slice_seconds)
        for index in range(count):
            yield self._slice(item, music, index)

    def slice_clip(self, item: str, index: int) -> Clip:
        """Slice ``index`` of ``item`` alone: the same clip :meth:`clips` yields for it."""
        music = self._music(item)
        count = self.slice_count(music)
        if not 0 <= index < count:
            raise InputError(f"{self.folder / item} has {count} full {self.slice_seconds:g}-s slice(s); "
                             f"slice {index} does not exist")
        return self._slice(item, music, index)

    def _slice(self, item: str, music: dict[str, Any], index: int) -> Clip:
        config = self.bundle.config
        offset = index * self.slice_seconds
        part = trim_audio(music, offset, self.slice_seconds)
        windows = edge_music_windows(part, config.feature_kind, fps=config.fps, window_frames=config.seq_len,
                                     **self._extract_settings())
        seed = clip_seed(self.seed, self.name, item, str(index))
        motion = edge_motion_from_windows(self.bundle, windows.features, windows.num_frames, seed=seed)
        motion = motion.to_up_axis("y").resample(self.fps)
        motion = _fit_to_music(motion, _music_frames(music, self.fps, offset, self.slice_seconds),
                               f"{self.folder / item} slice {index}")
        meta = {"music_file": item, "slice": index, "slice_seconds": self.slice_seconds,
                "edge_checkpoint": self.checkpoint.name, "feature_kind": config.feature_kind,
                "guidance": DEFAULT_GUIDANCE}
        return Clip(f"{music_key(self.name, item)}-s{index:03d}", self.name, self.split, item, motion, None, music,
                    offset, None, seed, None, meta)

    def describe(self) -> dict[str, Any]:
        if self._sha256 is None:
            self._sha256 = sha256_of(self.checkpoint)
        config = self.bundle.config
        return {**self._describe(), "edge_checkpoint": str(self.checkpoint), "edge_sha256": self._sha256,
                "feature_kind": config.feature_kind, "slice_seconds": self.slice_seconds,
                "guidance": DEFAULT_GUIDANCE, "dtype": str(self.dtype).removeprefix("torch."),
                "edge_extract": {k: _json_value(v) for k, v in sorted(self.extract.items())}}


def make_source(source: str, data: PathLike, *, split: str = "train", fps: float = 15.0, size: int = 512,
                seed: int = 0, video: bool = False, edge_checkpoint: Optional[PathLike] = None,
                device: Union[str, torch.device, None] = "cpu", dtype: str = "fp32",
                edge_extract: Optional[Mapping[str, Any]] = None, intensity: float = 1.0,
                appearance: Optional[str] = None, variety: str = "seeded",
                max_joint_speed: float = MAX_JOINT_SPEED) -> MotionSource:
    """The source named ``source`` over ``data``, every setting checked before any model is loaded.

    Args:
        source: ``"aist"`` (``data`` = the AIST++ folder), ``"edge"`` or ``"beats"`` (``data`` = a music folder).
        split: the AIST++ split, or the label of the music clips.
        fps: build frame rate; size: AIST crop camera and video side (pixels); seed: base seed.
        video: serve the cropped video frames (AIST only: the synthetic sources have none).
        edge_checkpoint, device, dtype, edge_extract: the EDGE teacher (:class:`EDGESource`).
        intensity: beat choreographer amplitude (:class:`BeatsSource`).
        appearance: beats only: each clip's colour scheme for its rendered video (:class:`BeatsSource`).
        variety: beats only: how the choreographer picks moves (:class:`BeatsSource`).
        max_joint_speed: beats only: the choreographer's joint speed limit (:class:`BeatsSource`).
    Raises:
        InputError: unknown source, missing folder, no usable music, a missing EDGE checkpoint, bad settings.
    """
    if source not in SOURCES:
        raise InputError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    if video and source != "aist":
        raise InputError(f"video=True needs real video frames, which only the aist source has; the {source} source "
                         f"makes motion only (leave video off for it)")
    if appearance is not None and source != "beats":
        raise InputError(f"appearance (rendered synthetic video) is for the beats source, not {source!r}")
    if source == "aist":
        return AISTSource(data, split, fps, size, video)
    if source == "beats":
        return BeatsSource(data, split, fps, seed, intensity, appearance, variety, max_joint_speed)
    return EDGESource(data, edge_checkpoint, split, fps, seed, device, dtype, edge_extract)
