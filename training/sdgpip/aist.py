"""AIST++ as the SDGPip source: per sequence, the motion, the music, the C09 camera and cropped video.

Why this module: the paper (sec. 3.1) builds its training pairs from AIST++ -- SMPL motion and
music for stage 1, plus the camera-C09 video cropped to a 640 x 640 square around the dancer
for stages 2-3. Everything is read from the user's folder in the official layout
(:mod:`.aist_layout`), which is checked completely when the dataset is built.

Units and frames. An AIST++ fit puts SMPL's joints (metres, rest pelvis ~0.22 m below SMPL's
origin) into the calibration world in centimetres as ``X_cm = smpl_scaling * J + smpl_trans``.
:func:`~m2penc.motion.load_motion` returns the motion EDGE trains on: pelvis at
``smpl_trans / smpl_scaling``, 60 fps, y up. The cameras are OpenCV calibrations in centimetres,
built here with ``translation_scale=0.01`` (metres), so world joints in metres are
``smpl_scaling / 100 * FK(poses, trans + rest_pelvis)`` (:meth:`AISTDataset.joints_world`).

The crop rule (:meth:`AISTDataset.dancer_crop`): project the 24 FK joints of every motion frame
through the camera; take each frame's joint box and the union of those boxes over the clip;
pad it on every side by :data:`CROP_PAD` times the median per-frame box extent (joints lie
inside the skin: head top, hands and feet reach beyond them); make it square around its centre
(side = the longer edge); shift it inside the image if it fits, else keep it centred (the part
outside the image is black). One box per sequence, so the camera does not move in the crop.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import av
import numpy as np
import torch
from PIL import Image

from ...m2penc.audio.io import load_audio
from ...m2penc.body.skeleton import forward_kinematics
from ...m2penc.errors import InputError
from ...m2penc.motion import SMPLMotion, motion_from_pickle_data
from ...m2penc.motion.pickle_layouts import MOTION_PICKLE
from ...m2penc.render.camera import PinholeCamera, camera_from_opencv
from ...m2penc.safe_pickle import load_pickle
from .aist_layout import SPLITS, VIDEO_VIEW, format_problems, parse_sequence_name, scan_layout, start_bpm, video_name

#: AIST++ camera translations are centimetres; the cameras are built in metres.
CM_TO_M = 0.01
#: SMPL's rest pelvis (joint 0) in SMPL's body frame, metres (approximate, male model): where
#: ``smpl_trans / smpl_scaling`` is measured from. Only used to place joints for cropping.
AIST_REST_PELVIS_M = (0.0, -0.22, 0.03)
#: Crop padding per side, as a fraction of the median per-frame joint-box extent.
CROP_PAD = 0.15
#: Default output size of the cropped frames (the paper's 640 x 640).
CROP_SIZE = 640
#: Sequences whose decoded motion pickle :class:`AISTDataset` keeps (one clip reads its sequence's
#: motion, scaling, crop and video from the same pickle; 2 lets a caller alternate two sequences).
MOTION_CACHE_SIZE = 2
SequenceRef = Union["AISTSequence", str, int]


@dataclass(frozen=True)
class AISTPaths:
    """Files of one sequence: motion pickle, music, camera setting JSON, C09 video (``None`` if not needed)."""

    motion: Path
    music: Path
    camera: Path
    video: Optional[Path]


@dataclass(frozen=True)
class AISTSequence:
    """One AIST++ sequence of a split; ``name`` like ``gBR_sBM_cAll_d04_mBR0_ch01``."""

    name: str
    genre: str
    situation: str
    dancer: str
    music_id: str
    choreography: str
    camera_setting: str   # "setting<k>" from cameras/mapping.txt
    paths: AISTPaths

    @property
    def start_bpm(self) -> float:
        """EDGE's beat-tracking start tempo for this music (:func:`.aist_layout.start_bpm`)."""
        return start_bpm(self.music_id)


@dataclass(frozen=True)
class CropBox:
    """A square crop in image pixels: columns ``[left, left + side)``, rows ``[top, top + side)``."""

    left: int
    top: int
    side: int

    def scaled(self, factor: float) -> "CropBox":
        """The same box in an image ``factor`` times the size (e.g. a 720p copy of a 1080p video)."""
        return CropBox(round(self.left * factor), round(self.top * factor), max(1, round(self.side * factor)))


class AISTDataset:
    """The sequences of one AIST++ split, checked up front (one :class:`InputError` listing every problem).

    Args:
        root: the folder in the official AIST++ layout (see :mod:`.aist_layout`).
        split: ``"train"``, ``"val"`` or ``"test"`` (``splits/crossmodal_<split>.txt``).
        need_video: also require ``videos/<seq with c09>.mp4`` (stages 2-3).
    """

    def __init__(self, root: Union[str, os.PathLike], split: str = "train", need_video: bool = False):
        self.root = Path(root).expanduser()
        if split not in SPLITS:
            raise InputError(f"split must be one of {SPLITS}, got {split!r}")
        if not self.root.is_dir():
            raise InputError(f"the AIST++ folder {self.root} does not exist or is not a folder; pass the folder "
                             f"holding motions/, splits/, cameras/ and music/")
        layout = scan_layout(self.root, split, need_video)
        if layout.problems:
            raise InputError(format_problems(self.root, layout.problems))
        self.split, self.need_video, self.ignored = split, need_video, layout.ignored
        self._settings = layout.settings
        self.sequences: list[AISTSequence] = [self._record(n, layout.music_files, layout.camera_mapping[n])
                                              for n in layout.names]
        self._by_name = {s.name: s for s in self.sequences}
        self._init_motion_cache()

    def _init_motion_cache(self) -> None:
        """An empty LRU cache, sequence name -> (motion, scaling), at most :data:`MOTION_CACHE_SIZE` entries."""
        self._motions: OrderedDict[str, tuple[SMPLMotion, float]] = OrderedDict()
        self._motions_lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the motion cache (and its lock): a worker process starts with an empty one."""
        state = dict(self.__dict__)
        del state["_motions"], state["_motions_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_motion_cache()

    def _record(self, name: str, music: dict[str, Path], setting: str) -> AISTSequence:
        parts = parse_sequence_name(name)
        video = self.root / "videos" / f"{video_name(name)}.mp4" if self.need_video else None
        paths = AISTPaths(self.root / "motions" / f"{name}.pkl", music[parts.music_id],
                          self.root / "cameras" / f"{setting}.json", video)
        return AISTSequence(name, parts.genre, parts.situation, parts.dancer, parts.music_id, parts.choreography,
                            setting, paths)

    def __len__(self) -> int:
        return len(self.sequences)

    def __getitem__(self, index: int) -> AISTSequence:
        return self.sequences[index]

    def __repr__(self) -> str:
        return f"AISTDataset({str(self.root)!r}, split={self.split!r}, sequences={len(self)})"

    def sequence(self, seq: SequenceRef) -> AISTSequence:
        """A sequence by record, index or name (names outside this split are an error naming it)."""
        if isinstance(seq, AISTSequence):
            return seq
        if isinstance(seq, int):
            return self.sequences[seq]
        if seq not in self._by_name:
            raise InputError(f"{seq!r} is not in the {self.split} split of {self.root} (ignored or not listed in "
                             f"splits/crossmodal_{self.split}.txt)")
        return self._by_name[seq]

    # -- motion and music ---------------------------------------------------------------------
    def _motion_and_scaling(self, seq: AISTSequence) -> tuple[SMPLMotion, float]:
        """The sequence's motion and ``smpl_scaling``, its pickle read once for the last few sequences asked.

        The motion is read-only (:class:`SMPLMotion`), so handing the cached one out again is safe.
        """
        with self._motions_lock:
            hit = self._motions.get(seq.name)
            if hit is not None:
                self._motions.move_to_end(seq.name)
                return hit
        loaded = self._load_motion(seq)
        with self._motions_lock:
            self._motions[seq.name] = loaded
            self._motions.move_to_end(seq.name)
            while len(self._motions) > MOTION_CACHE_SIZE:
                self._motions.popitem(last=False)
        return loaded

    def _load_motion(self, seq: AISTSequence) -> tuple[SMPLMotion, float]:
        """Read and check ``motions/<seq>.pkl``: the motion (:func:`motion_from_pickle_data`) and ``smpl_scaling``."""
        data = load_pickle(seq.paths.motion, MOTION_PICKLE)
        if not isinstance(data, dict) or "smpl_scaling" not in data:
            raise InputError(f"{seq.paths.motion}: not an AIST++ motion (no smpl_scaling); put the AIST++ "
                             f"motions/<seq>.pkl there, not an EDGE output or another file")
        motion = motion_from_pickle_data(data, seq.paths.motion.name)   # checks smpl_scaling too
        return motion, float(np.asarray(data["smpl_scaling"], dtype=np.float64).reshape(()))

    def motion(self, seq: SequenceRef) -> SMPLMotion:
        """The sequence's SMPL motion: 60 fps, y up, pelvis at ``smpl_trans / smpl_scaling`` metres."""
        return self._motion_and_scaling(self.sequence(seq))[0]

    def scaling(self, seq: SequenceRef) -> float:
        """``smpl_scaling``: calibration-world centimetres per SMPL body metre (about 100)."""
        return self._motion_and_scaling(self.sequence(seq))[1]

    def music(self, seq: SequenceRef, sample_rate: Optional[int] = None, mono: bool = False) -> dict[str, Any]:
        """The sequence's music as ComfyUI's AUDIO dict ``{"waveform": (1, C, S), "sample_rate": int}``."""
        return load_audio(self.sequence(seq).paths.music, sample_rate=sample_rate, mono=mono)

    # -- camera and cropping ------------------------------------------------------------------
    def camera(self, seq: SequenceRef, view: str = VIDEO_VIEW) -> PinholeCamera:
        """Camera ``view`` (``"c01"``..``"c09"``) of the sequence's setting, in metres; distortion ignored."""
        seq = self.sequence(seq)
        cameras = self._settings[seq.camera_setting]
        if view not in cameras:
            raise InputError(f"{seq.paths.camera} has no camera {view!r}; it holds {sorted(cameras)}")
        c = cameras[view]
        return camera_from_opencv(c["matrix"], c["rotation"], c["translation"], int(c["size"][0]), int(c["size"][1]),
                                  translation_scale=CM_TO_M)

    def joints_world(self, seq: SequenceRef) -> torch.Tensor:
        """``(N, 24, 3)`` float32 SMPL joints in the calibration world, metres (neutral skeleton, see module doc)."""
        motion, scaling = self._motion_and_scaling(self.sequence(seq))
        poses, trans = motion.to_torch()
        joints, _ = forward_kinematics(poses, trans + torch.tensor(AIST_REST_PELVIS_M))
        return joints * (scaling * CM_TO_M)

    def projected_joints(self, seq: SequenceRef, view: str = VIDEO_VIEW) -> torch.Tensor:
        """``(N, 24, 3)`` ``[u_px, v_px, depth_m]`` of the joints in camera ``view``'s image."""
        return self.camera(seq, view).to_screen(self.joints_world(seq))

    def dancer_crop(self, seq: SequenceRef, view: str = VIDEO_VIEW) -> CropBox:
        """The one square crop covering the dancer over the whole clip, in ``view``'s image (module doc)."""
        seq = self.sequence(seq)
        camera, screen = self.camera(seq, view), self.projected_joints(seq, view).double()
        visible = screen[..., 2] > 0
        frames = visible.any(dim=1)
        if not bool(frames.any()):
            raise InputError(f"{seq.name}: the dancer is never in front of camera {view} of {seq.paths.camera}; "
                             f"the camera setting in cameras/mapping.txt is probably wrong")
        inf = torch.tensor(float("inf"), dtype=torch.float64)
        u, v = screen[..., 0], screen[..., 1]
        lo_u, hi_u = torch.where(visible, u, inf).amin(1)[frames], torch.where(visible, u, -inf).amax(1)[frames]
        lo_v, hi_v = torch.where(visible, v, inf).amin(1)[frames], torch.where(visible, v, -inf).amax(1)[frames]
        extent = float(torch.maximum(hi_u - lo_u, hi_v - lo_v).median())
        pad = CROP_PAD * max(extent, 1.0)
        left, right, top, bottom = float(lo_u.min()) - pad, float(hi_u.max()) + pad, float(lo_v.min()) - pad, \
            float(hi_v.max()) + pad
        side = int(np.ceil(max(right - left, bottom - top)))
        x0 = _inside(round((left + right - side) / 2), side, camera.width)
        y0 = _inside(round((top + bottom - side) / 2), side, camera.height)
        return CropBox(x0, y0, side)

    # -- video --------------------------------------------------------------------------------
    def video_frames(self, seq: SequenceRef, size: int = CROP_SIZE, fps: Optional[float] = None,
                     view: str = VIDEO_VIEW) -> Iterator[np.ndarray]:
        """The ``view`` video's frames cropped by :meth:`dancer_crop` and resized: uint8 ``(size, size, 3)`` each.

        ``fps=None`` keeps every frame (AIST videos are 60 fps, frame-aligned with the motion);
        otherwise output frame ``k`` is source frame ``round(k * source_fps / fps)`` (60 -> 30: every
        second frame). A video whose size differs from the calibration's (a re-encoded mirror)
        gets the crop scaled by the width ratio.
        """
        seq = self.sequence(seq)
        if int(size) < 1 or (fps is not None and not fps > 0):
            raise InputError(f"video_frames needs size >= 1 and fps > 0 (or None), got size={size}, fps={fps}")
        path = self.root / "videos" / f"{video_name(seq.name, view)}.mp4"
        if not path.is_file():
            raise InputError(f"missing video {path}; put the AIST Dance DB video there or pass need_video=True to "
                             f"check all videos up front")
        return _cropped_frames(path, self.camera(seq, view), self.dancer_crop(seq, view), int(size), fps)


def _inside(start: int, side: int, limit: int) -> int:
    """Shift ``[start, start + side)`` into ``[0, limit)`` when it fits; otherwise leave it centred."""
    return min(max(start, 0), limit - side) if side <= limit else start


def _cropped_frames(path: Path, camera: PinholeCamera, box: CropBox, size: int,
                    fps: Optional[float]) -> Iterator[np.ndarray]:
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError) as e:
        raise InputError(f"{path.name}: cannot open the video ({e}); re-download it from the AIST Dance DB") from None
    with container:
        stream = container.streams.video[0]
        source_fps = float(stream.average_rate or stream.guessed_rate or 60)
        scale, next_out = None, 0
        for index, frame in enumerate(container.decode(stream)):
            if scale is None:
                scale = frame.width / camera.width
                if abs(frame.height / camera.height - scale) > 0.01:
                    raise InputError(f"{path.name} is {frame.width}x{frame.height} but its calibration is "
                                     f"{camera.width}x{camera.height} (another aspect ratio); use the original video")
                crop = box if scale == 1 else box.scaled(scale)
            repeats = 1
            if fps is not None:     # output frames k with round(k * source_fps / fps) == index
                repeats = 0
                while round((next_out + repeats) * source_fps / fps) == index:
                    repeats += 1
                next_out += repeats
            if repeats:
                image = frame.to_image().crop((crop.left, crop.top, crop.left + crop.side, crop.top + crop.side))
                out = np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.uint8)
                for _ in range(repeats):
                    yield out
