"""The example music and photo in ComfyUI's ``input/`` folder, written when ComfyUI loads the pack.

Every example workflow names ``m2pdance_example_music.wav`` and ``m2pdance_example_dancer.png``;
a ComfyUI user has no other way to get them. At load, each one that is missing is written with
:func:`m2penc.examples.write_example_inputs` (synthesised, well under a second). Rules:

* a file of that name that exists (even a broken symlink or a user's own file) is never replaced:
  the new file is made under a hidden temporary name in ``input/`` and *hard-linked* to its name,
  which fails if the name was taken meanwhile; no reader ever sees a half-written file;
* nothing is written when ``input/`` does not exist (no ComfyUI input folder to fill);
* loading the pack never fails because of this: any error is logged as a warning.

Called from :meth:`nodes.M2PDanceExtension.get_node_list`, i.e. only on ComfyUI's entry path:
importing ``m2penc`` (or ``nodes``) writes nothing.
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Optional

from ..m2penc.checkpoint import fsync_folder
from ..m2penc.examples import EXAMPLE_MUSIC, EXAMPLE_REFERENCE, write_example_inputs

log = logging.getLogger(__name__)

#: The file names the example workflows load from ComfyUI's input folder.
EXAMPLE_INPUTS: tuple[str, ...] = (EXAMPLE_MUSIC, EXAMPLE_REFERENCE)


def missing_example_inputs(input_dir: str) -> list[str]:
    """The example input names with no directory entry in ``input_dir`` (a broken symlink counts as present)."""
    return [name for name in EXAMPLE_INPUTS if not os.path.lexists(os.path.join(input_dir, name))]


def _link_new(src: str, dst: str) -> bool:
    """Give ``src`` the name ``dst`` unless ``dst`` exists; True if it did."""
    try:
        os.link(src, dst)
        return True
    except FileExistsError:
        return False
    except OSError:  # no hard links here (some network or FAT file systems): rename, checked first
        if os.path.lexists(dst):
            return False
        os.rename(src, dst)
        return True


def write_missing_example_inputs(input_dir: str) -> list[str]:
    """Write each example input missing from ``input_dir``; returns the names written.

    Raises ``OSError`` (e.g. a read-only folder); :func:`ensure_example_inputs` is the never-raising
    form used at pack load.
    """
    missing = missing_example_inputs(input_dir)
    if not missing:
        return []
    staging = tempfile.mkdtemp(prefix=".m2pdance_examples.", suffix=".partial", dir=input_dir)
    try:
        write_example_inputs(staging)
        written = [name for name in missing
                   if _link_new(os.path.join(staging, name), os.path.join(input_dir, name))]
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    fsync_folder(Path(input_dir))
    return written


def ensure_example_inputs(input_dir: Optional[str] = None) -> list[str]:
    """At pack load: write the missing example inputs into ComfyUI's input folder; never raises."""
    try:
        if input_dir is None:
            import folder_paths

            input_dir = folder_paths.get_input_directory()
        if not os.path.isdir(input_dir):
            log.debug("M2PDance: no input folder at %s; example inputs not written", input_dir)
            return []
        written = write_missing_example_inputs(input_dir)
    except OSError as e:
        log.warning("M2PDance: could not write the example inputs (%s) into ComfyUI's input folder: %s; "
                    "the example workflows need them (see the README, 'ComfyUI')", ", ".join(EXAMPLE_INPUTS), e)
        return []
    except Exception:  # a bug must not stop ComfyUI from loading the pack's nodes
        log.warning("M2PDance: writing the example inputs failed", exc_info=True)
        return []
    if written:
        log.info("M2PDance: wrote the example input(s) %s into %s", ", ".join(written), input_dir)
    return written
