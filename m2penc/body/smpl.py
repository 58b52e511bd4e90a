"""SMPL through ``smplx``, from the user's own licensed model file, read without running its code.

SMPL is licensed (https://smpl.is.tue.mpg.de); m2pdance never bundles or downloads it. The user
puts ``SMPL_NEUTRAL.pkl`` (or an ``.npz`` with the same keys) in ``models/smpl/``.

Loading never lets ``smplx`` unpickle the file: the shared restricted unpickler
(:mod:`..safe_pickle`) reads it with an allow-list (numpy arrays, plus scipy sparse matrices and
chumpy arrays as the inert records of :mod:`.smpl_file`), every required key is
checked against SMPL's layout (:data:`SMPL_LAYOUT`) before anything is built, and the smplx
``SMPL`` layer is then built from the checked arrays (its ``data_struct`` argument).

Translation: smplx adds ``transl`` to a body whose rest pelvis is *not* at the origin (it is at
``J_regressor[0] @ v_shaped``, about 0.2 m below SMPL's origin, and moves with ``betas``).
:class:`SMPLBody` instead follows the pack's convention: ``trans`` is where joint 0 lands, so it
shifts smplx's output by ``trans - joints[:, 0]`` and ``joints[:, 0] == trans`` exactly.
"""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
import torch

from ..errors import InputError, WeightsError, WeightsMismatchError, WeightsNotFoundError
from ..safe_pickle import PickleRules, load_pickle
from .model import NUM_BETAS, BodyModel, BodyOutput
from .skeleton import NUM_JOINTS, PARENTS
from .smpl_file import SMPL_RECORDS, RecordError, record_to_array

NUM_VERTICES, NUM_FACES, NUM_POSE_BASIS = 6890, 13776, 207
#: Required keys and shapes (``None``: at least :data:`NUM_BETAS` shape components).
SMPL_LAYOUT: dict[str, tuple[Optional[int], ...]] = {
    "v_template": (NUM_VERTICES, 3), "f": (NUM_FACES, 3), "weights": (NUM_VERTICES, NUM_JOINTS),
    "J_regressor": (NUM_JOINTS, NUM_VERTICES), "kintree_table": (2, NUM_JOINTS),
    "shapedirs": (NUM_VERTICES, 3, None), "posedirs": (NUM_VERTICES, 3, NUM_POSE_BASIS),
}
#: SMPL vertex ids of the face keypoints (as in smplx's ``vertex_ids["smplh"]``, SPIN and VIBE).
SMPL_LANDMARKS = {"nose": 332, "right_eye": 6260, "left_eye": 2800, "right_ear": 4071, "left_ear": 583}
_GET_SMPL = ("SMPL is licensed and m2pdance never bundles or downloads it: register at "
             "https://smpl.is.tue.mpg.de, download 'SMPL for Python', and put its neutral model "
             "(basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl, renamed) at models/smpl/SMPL_NEUTRAL.pkl "
             "in your ComfyUI folder. Or use the open body (kind 'open'), which needs no files.")
#: How SMPL pickles are read: the shared restricted unpickler plus SMPL's inert records.
SMPL_PICKLE = PickleRules(kind="SMPL model file", holds="numpy arrays, scipy sparse matrices and chumpy arrays",
                          fix=f"Delete it and get the original file. {_GET_SMPL}", error=WeightsError,
                          records=SMPL_RECORDS)


def _resolve(path: Union[str, Path], gender: str) -> Path:
    path = Path(path).expanduser()
    if path.is_dir():
        for suffix in (".pkl", ".npz"):
            candidate = path / f"SMPL_{gender.upper()}{suffix}"
            if candidate.is_file():
                return candidate
        raise WeightsNotFoundError(f"no SMPL_{gender.upper()}.pkl or .npz in {path}. {_GET_SMPL}")
    if not path.is_file():
        raise WeightsNotFoundError(f"SMPL model file not found: {path}. {_GET_SMPL}")
    return path


def _read_npz(path: Path) -> dict[str, Any]:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except MemoryError:
        raise
    except Exception as e:  # truncated or corrupt: BadZipFile, ValueError (pickled objects), OSError, ...
        raise WeightsError(f"could not read SMPL model file {path} ({type(e).__name__}: {e}); it is truncated, "
                           f"corrupt, or not a SMPL model. {_GET_SMPL}") from e


def read_smpl_file(path: Path) -> dict[str, Any]:
    """The raw key -> value mapping of a SMPL ``.pkl`` (restricted unpickling) or ``.npz``."""
    data = _read_npz(path) if path.suffix == ".npz" else load_pickle(path, SMPL_PICKLE)
    if not isinstance(data, dict):
        raise WeightsMismatchError(f"{path} holds a {type(data).__name__}, not SMPL's dict of arrays. {_GET_SMPL}")
    return data


def _as_array(value: Any, key: str, path: Path) -> np.ndarray:
    try:
        value = record_to_array(value)
    except RecordError as e:
        raise WeightsMismatchError(f"{path}: key {key!r} is {e}. {_GET_SMPL}") from e
    if not isinstance(value, np.ndarray) or value.dtype.kind not in "fiu":
        kind = f"array of {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__
        raise WeightsMismatchError(f"{path}: key {key!r} should be a numeric array, got {kind}. {_GET_SMPL}")
    return value


def _describe(shape: tuple[Optional[int], ...]) -> str:
    return "(" + ", ".join(f">={NUM_BETAS}" if n is None else str(n) for n in shape) + ")"


def validate_smpl_arrays(data: dict[str, Any], path: Path) -> dict[str, np.ndarray]:
    """Check every key of :data:`SMPL_LAYOUT` (presence, type, shape, kinematic tree, face range).

    Returns:
        The required arrays only: floats as float64, ``f`` and ``kintree_table`` as int64.
    Raises:
        WeightsMismatchError: naming the file, the key, the expected and the actual value.
    """
    missing = [key for key in SMPL_LAYOUT if key not in data]
    if missing:
        raise WeightsMismatchError(f"{path} is missing SMPL keys {missing} (has {sorted(map(str, data))[:20]}): it is "
                                   f"not a SMPL model file. {_GET_SMPL}")
    arrays = {}
    for key, expected in SMPL_LAYOUT.items():
        array = _as_array(data[key], key, path)
        fits = len(array.shape) == len(expected) and all(
            (got >= NUM_BETAS) if want is None else got == want for got, want in zip(array.shape, expected))
        if not fits:
            raise WeightsMismatchError(
                f"{path}: key {key!r} has shape {tuple(array.shape)} but SMPL's layout needs {_describe(expected)}. "
                "This is not a SMPL (6890-vertex, 24-joint) model; SMPL-H, SMPL-X and MANO files do not fit. "
                + _GET_SMPL)
        integer = key in ("f", "kintree_table")
        arrays[key] = array.astype(np.int64 if integer else np.float64)
    parents = [-1] + arrays["kintree_table"][0, 1:].tolist()
    if parents != list(PARENTS):
        raise WeightsMismatchError(f"{path}: kintree_table parents {parents} differ from SMPL's {list(PARENTS)}; "
                                   f"the file is not a SMPL body model. {_GET_SMPL}")
    row_sums = arrays["weights"].sum(axis=1)
    if np.abs(row_sums - 1.0).max() > 1e-3:
        raise WeightsMismatchError(f"{path}: key 'weights' rows must sum to 1 (skinning weights), but they range "
                                   f"{row_sums.min():.4g}..{row_sums.max():.4g}. {_GET_SMPL}")
    faces = arrays["f"]
    if faces.min() < 0 or faces.max() >= NUM_VERTICES:
        raise WeightsMismatchError(f"{path}: key 'f' indexes vertices {faces.min()}..{faces.max()}, outside "
                                   f"0..{NUM_VERTICES - 1}. {_GET_SMPL}")
    return arrays


class SMPLBody(BodyModel):
    """The smplx SMPL layer behind the :class:`.model.BodyModel` interface.

    ``betas`` ``(B, 10)`` are SMPL's shape coefficients (None = mean shape).
    """

    def __init__(self, arrays: dict[str, np.ndarray], source: str, dtype: torch.dtype = torch.float32):
        try:
            import smplx
            from smplx.utils import Struct
        except ImportError as e:
            raise WeightsError("the SMPL body needs the smplx package: pip install 'smplx>=0.1.28' "
                               "(or use the open body, kind 'open')") from e
        weights = torch.from_numpy(arrays["weights"])
        weights = (weights / weights.sum(1, keepdim=True)).to(dtype)
        super().__init__(torch.from_numpy(arrays["f"]), weights, SMPL_LANDMARKS)
        self.source = source
        with contextlib.redirect_stdout(io.StringIO()):  # smplx prints a note about 10-beta files
            self.layer = smplx.SMPL(model_path=source, data_struct=Struct(**arrays), num_betas=NUM_BETAS,
                                    create_betas=False, create_global_orient=False, create_body_pose=False,
                                    create_transl=False, dtype=dtype)

    def forward(self, poses: torch.Tensor, trans: torch.Tensor,
                betas: Optional[torch.Tensor] = None) -> BodyOutput:
        """``poses (B, 24, 3)``, ``trans (B, 3)`` (pelvis), ``betas (B, 10)`` -> :class:`BodyOutput`."""
        batch = self.check_inputs(poses, trans, betas)
        like = self.layer.v_template
        poses, trans = poses.to(like), trans.to(like)
        betas = torch.zeros(batch, NUM_BETAS).to(like) if betas is None else betas.to(like)
        out = self.layer(betas=betas, global_orient=poses[:, 0], body_pose=poses[:, 1:].reshape(batch, -1))
        joints = out.joints[:, :NUM_JOINTS]
        shift = (trans - joints[:, 0])[:, None]
        return BodyOutput(vertices=out.vertices + shift, joints=joints + shift)


def load_smpl(path: Union[str, Path], gender: str = "neutral", device: Optional[torch.device] = None,
              dtype: Optional[torch.dtype] = None) -> SMPLBody:
    """Load the user's SMPL model safely.

    Args:
        path: ``SMPL_NEUTRAL.pkl``/``.npz``, or a folder holding ``SMPL_<GENDER>.pkl``/``.npz``.
        gender: which file to pick in a folder: ``"neutral"``, ``"male"`` or ``"female"``.
        device, dtype: where the body lives (default CPU, float32).
    Raises:
        WeightsNotFoundError: no such file (the message says how to get SMPL).
        WeightsMismatchError: not in SMPL's layout (names the key, expected and actual shape).
        WeightsError: unreadable, or a pickle that asks to run code (refused, nothing run).
    """
    if gender not in ("neutral", "male", "female"):
        raise InputError(f"SMPL gender must be 'neutral', 'male' or 'female', got {gender!r}")
    file = _resolve(path, gender)
    arrays = validate_smpl_arrays(read_smpl_file(file), file)
    body = SMPLBody(arrays, str(file), dtype or torch.float32)
    return body.to(device) if device is not None else body
