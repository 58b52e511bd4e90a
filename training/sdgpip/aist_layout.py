"""The official AIST++ folder layout: sequence names, split/ignore lists, camera files, and one check.

Why a separate module: the AIST++ download link is dead and users bring mirrors of varying
completeness. Finding out after an hour of preprocessing that one music file is missing is the
worst failure mode, so the whole folder is checked up front and *every* problem is reported in
one :class:`InputError` (:func:`scan_layout` collects, :class:`.aist.AISTDataset` raises).

The layout (google/aistplusplus_api, plus the AIST Dance DB music and videos)::

    <root>/
      motions/<seq>.pkl                      SMPL fits, 60 fps (smpl_poses, smpl_trans, smpl_scaling)
      splits/crossmodal_{train,val,test}.txt one sequence name per line
      ignore_list.txt                        badly fitted sequences, excluded
                                             (EDGE keeps it as splits/ignore_list.txt: also accepted)
      cameras/mapping.txt                    "<seq> setting<k>" per line
      cameras/setting<k>.json                list of 9 cameras c01..c09 (OpenCV, centimetres)
      music/<music id>.wav|.mp3              AIST Dance DB music, e.g. music/mBR0.wav
                                             (first existing of music/, wav/, wavs/ is used)
      videos/<seq with cAll -> c09>.mp4      AIST Dance DB videos (only for stages 2-3)

A sequence name is ``g<GG>_s<SS>_c<CC>_d<DD>_m<GG><k>_ch<NN>``, e.g.
``gBR_sBM_cAll_d04_mBR0_ch01``: genre, situation (sBM basic / sFM advanced / sGR group), camera
(``cAll`` for the multi-view annotations, ``c01``..``c09`` for one video), dancer, music id,
choreography.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ...m2penc.errors import InputError

#: The ten AIST Dance DB genres (dance ``g..`` and music ``m..`` share them).
GENRES: tuple[str, ...] = ("BR", "PO", "LO", "MH", "LH", "HO", "WA", "KR", "JS", "JB")
SITUATIONS: tuple[str, ...] = ("BM", "FM", "GR")
SPLITS: tuple[str, ...] = ("train", "val", "test")
#: Music subfolders accepted, in the order they are looked for; extensions likewise.
MUSIC_DIRS: tuple[str, ...] = ("music", "wav", "wavs")
MUSIC_EXTENSIONS: tuple[str, ...] = (".wav", ".mp3")
#: The view the paper's video frames come from (sec. 3.1: camera C09).
VIDEO_VIEW = "c09"
#: Problems listed one by one in the error; a longer list ends with a count of the rest.
MAX_LISTED = 100
_GENRE = "|".join(GENRES)
_NAME = re.compile(rf"g(?P<genre>{_GENRE})_s(?P<situation>{'|'.join(SITUATIONS)})_c(?P<camera>All|0[1-9])"
                   rf"_d(?P<dancer>\d\d)_m(?P<music>(?:{_GENRE})\d)_ch(?P<choreo>\d\d)")
_MAPPING_LINE = re.compile(r"(?P<seq>\S+)\s+(?P<setting>setting\d+)")

LAYOUT_HELP = (
    "The official AIST++ layout (google/aistplusplus_api) is expected under the root folder: "
    "motions/<seq>.pkl, splits/crossmodal_{train,val,test}.txt, ignore_list.txt, cameras/mapping.txt, "
    "cameras/setting<k>.json, music/<music id>.wav or .mp3 (music/, wav/ or wavs/), and for video "
    "stages videos/<seq with cAll replaced by c09>.mp4. Download the AIST++ annotations from a mirror "
    "and the music/videos from the AIST Dance DB, then point the loader at the folder holding them"
)


@dataclass(frozen=True)
class AISTName:
    """The parts of an AIST++ sequence name, e.g. ``gBR_sBM_cAll_d04_mBR0_ch01``."""

    name: str
    genre: str          # "BR"
    situation: str      # "BM" (basic), "FM" (advanced), "GR" (group)
    camera: str         # "cAll" or "c01".."c09"
    dancer: str         # "d04"
    music_id: str       # "mBR0"
    choreography: str   # "ch01"


def parse_sequence_name(name: str) -> AISTName:
    """Split an AIST++ sequence (or video) name into its parts; a malformed name is an :class:`InputError`."""
    match = _NAME.fullmatch(str(name).strip())
    if match is None:
        raise InputError(f"{name!r} is not an AIST++ sequence name; expected g<genre>_s<situation>_c<camera>_"
                         f"d<dancer>_m<genre><k>_ch<choreo> like 'gBR_sBM_cAll_d04_mBR0_ch01' (genres "
                         f"{', '.join(GENRES)}; situations sBM/sFM/sGR; camera cAll or c01..c09). Fix the "
                         f"line in the split/ignore file or the file name")
    g = match.groupdict()
    return AISTName(str(name).strip(), g["genre"], g["situation"], "c" + g["camera"], "d" + g["dancer"],
                    "m" + g["music"], "ch" + g["choreo"])


def start_bpm(music_id: str) -> float:
    """EDGE's beat-tracking start tempo from an AIST++ music id: ``mHO<k>`` -> 110 + 5k, other genres 80 + 10k."""
    match = re.fullmatch(rf"m({_GENRE})(\d)", str(music_id))
    if match is None:
        raise InputError(f"{music_id!r} is not an AIST++ music id; expected m<genre><k> like 'mBR0' "
                         f"(genres {', '.join(GENRES)})")
    genre, k = match.group(1), int(match.group(2))
    return 110.0 + 5.0 * k if genre == "HO" else 80.0 + 10.0 * k


def video_name(sequence: str, view: str = VIDEO_VIEW) -> str:
    """The AIST Dance DB video of one view: ``cAll`` replaced by ``view`` (``gBR_sBM_c09_d04_mBR0_ch01``)."""
    return sequence.replace("_cAll_", f"_{view}_")


def read_name_list(path: Path, problems: list[str]) -> list[str]:
    """Sequence names of a split/ignore file, one per line (blank lines skipped); bad names go to ``problems``."""
    names = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                names.append(parse_sequence_name(line).name)
            except InputError:
                problems.append(f"{path}: line {number} {line.strip()!r} is not an AIST++ sequence name")
    return names


def read_camera_mapping(path: Path, problems: list[str]) -> dict[str, str]:
    """``cameras/mapping.txt`` -> ``{sequence: "setting<k>"}``; malformed lines go to ``problems``."""
    mapping = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        match = _MAPPING_LINE.fullmatch(line.strip())
        if match is None:
            problems.append(f"{path}: line {number} {line.strip()!r} is not '<sequence> setting<k>'")
        else:
            mapping[match["seq"]] = match["setting"]
    return mapping


def find_music_dir(root: Path) -> Optional[Path]:
    """The first of ``music/``, ``wav/``, ``wavs/`` that exists under ``root``, or ``None``."""
    return next((root / d for d in MUSIC_DIRS if (root / d).is_dir()), None)


def find_music_file(music_dir: Path, music_id: str) -> Optional[Path]:
    """``<music_dir>/<music_id>.wav``, else ``.mp3``, else ``None``."""
    return next((music_dir / f"{music_id}{ext}" for ext in MUSIC_EXTENSIONS
                 if (music_dir / f"{music_id}{ext}").is_file()), None)


def find_ignore_list(root: Path) -> Optional[Path]:
    """``ignore_list.txt`` at the root (official) or in ``splits/`` (EDGE's copy), or ``None``."""
    return next((p for p in (root / "ignore_list.txt", root / "splits" / "ignore_list.txt") if p.is_file()), None)


def split_file(root: Path, split: str) -> Path:
    """``<root>/splits/crossmodal_<split>.txt``."""
    return root / "splits" / f"crossmodal_{split}.txt"


def format_problems(root: Path, problems: list[str]) -> str:
    """The one message listing every problem of an AIST++ folder, then how the layout must look."""
    shown = problems[:MAX_LISTED]
    more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
    return (f"the AIST++ folder {root} is not usable, {len(problems)} problem(s):\n  - "
            + "\n  - ".join(shown) + more + f"\n{LAYOUT_HELP}")


def read_camera_setting(path: Path, problems: list[str]) -> dict[str, dict]:
    """``cameras/setting<k>.json`` -> ``{camera name: its dict}``; a malformed file goes to ``problems``.

    Each camera dict holds ``matrix`` (3x3 K), ``distortions``, ``rotation`` (Rodrigues rvec),
    ``translation`` (centimetres), ``size`` ``[width, height]`` and ``name`` (c01..c09).
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cameras = {str(c["name"]): c for c in data}
        for name, c in cameras.items():
            if (len(c["matrix"]) != 3 or any(len(row) != 3 for row in c["matrix"]) or len(c["rotation"]) != 3
                    or len(c["translation"]) != 3 or len(c["size"]) != 2):
                raise ValueError(f"camera {name} needs a 3x3 matrix, 3 rotation, 3 translation and [w, h] size")
    except (OSError, ValueError, TypeError, KeyError) as e:
        problems.append(f"{path}: not an AIST++ camera setting ({type(e).__name__}: {e}); expected a JSON list "
                        f"of cameras with name, matrix, distortions, rotation, translation, size")
        return {}
    return cameras


@dataclass
class AISTLayout:
    """What :func:`scan_layout` found: usable only when ``problems`` is empty."""

    root: Path
    names: list[str]                        # the split's sequences, ignore list removed, file order
    ignored: list[str]                      # split entries dropped by the ignore list
    music_files: dict[str, Path]            # music id -> file
    camera_mapping: dict[str, str]          # sequence -> "setting<k>"
    settings: dict[str, dict[str, dict]]    # "setting<k>" -> camera name -> camera dict
    problems: list[str]


def _required_dir(root: Path, name: str, why: str, problems: list[str]) -> Optional[Path]:
    path = root / name
    if not path.is_dir():
        problems.append(f"missing folder {path}/ ({why})")
        return None
    return path


def scan_layout(root: Path, split: str, need_video: bool) -> AISTLayout:
    """Check everything ``split`` needs under ``root``; every problem found is listed, none raised."""
    problems: list[str] = []
    motions = _required_dir(root, "motions", "the SMPL motion pickles", problems)
    cameras = _required_dir(root, "cameras", "mapping.txt and setting<k>.json", problems)
    videos = _required_dir(root, "videos", "the AIST Dance DB C09 videos", problems) if need_video else None
    music_dir = find_music_dir(root)
    if music_dir is None:
        problems.append(f"missing folder {root / 'music'}/ (the AIST Dance DB music files <music id>.wav or .mp3; "
                        f"wav/ or wavs/ are accepted too)")
    names: list[str] = []
    if not split_file(root, split).is_file():
        problems.append(f"missing split file {split_file(root, split)}")
    else:
        names = list(dict.fromkeys(read_name_list(split_file(root, split), problems)))
    ignore_path = find_ignore_list(root)
    if ignore_path is None:
        problems.append(f"missing {root / 'ignore_list.txt'} (the sequences AIST++ excludes; "
                        f"splits/ignore_list.txt is accepted too)")
    ignore = set(read_name_list(ignore_path, problems)) if ignore_path else set()
    ignored = [n for n in names if n in ignore]
    names = [n for n in names if n not in ignore]
    if split_file(root, split).is_file() and not names:
        problems.append(f"{split_file(root, split)} lists no usable sequence (after removing the ignore list)")
    if motions is not None:
        problems += [f"missing motion {motions / (n + '.pkl')}" for n in names if not (motions / f"{n}.pkl").is_file()]
    music_files: dict[str, Path] = {}
    if music_dir is not None:
        for music_id in dict.fromkeys(parse_sequence_name(n).music_id for n in names):
            found = find_music_file(music_dir, music_id)
            if found is None:
                problems.append(f"missing music {music_dir / music_id}.wav (or .mp3)")
            else:
                music_files[music_id] = found
    mapping: dict[str, str] = {}
    settings: dict[str, dict[str, dict]] = {}
    if cameras is not None:
        if not (cameras / "mapping.txt").is_file():
            problems.append(f"missing camera mapping {cameras / 'mapping.txt'}")
        else:
            mapping = read_camera_mapping(cameras / "mapping.txt", problems)
            problems += [f"{cameras / 'mapping.txt'} has no camera setting for {n}" for n in names if n not in mapping]
        for setting in dict.fromkeys(mapping[n] for n in names if n in mapping):
            path = cameras / f"{setting}.json"
            if not path.is_file():
                problems.append(f"missing camera setting {path}")
                continue
            settings[setting] = read_camera_setting(path, problems)
            if settings[setting] and VIDEO_VIEW not in settings[setting]:
                problems.append(f"{path} has no camera named {VIDEO_VIEW!r} (found {sorted(settings[setting])})")
    if videos is not None:
        problems += [f"missing video {videos / video_name(n)}.mp4" for n in names
                     if not (videos / f"{video_name(n)}.mp4").is_file()]
    return AISTLayout(root, names, ignored, music_files, mapping, settings, problems)
