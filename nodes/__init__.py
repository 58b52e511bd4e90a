"""ComfyUI V3 nodes: thin adapters over ``m2penc``. Imported only by ComfyUI (or the test harness).

Registration happens in one place, :class:`M2PDanceExtension`; node ids carry the
``M2PDance`` prefix so they never collide with built-ins or other packs.
"""
from comfy_api.latest import ComfyExtension, io

from . import _comfy
from ._example_inputs import ensure_example_inputs
from .animator_nodes import PoseVideoForAnimator
from .champ_nodes import ChampReferenceUNet, LoadChamp, PoseDrivenGuidance
from .dance_sampler import SegmentedDanceSampler
from .eval_nodes import BeatAlignment
from .jukebox_encode import JukeboxEncode, LoadJukebox
from .load_music import LoadMusic
from .m2penc_guidance import LoadM2PEnc, M2PEncGuidanceNode
from .motion_nodes import LoadMotion, RenderPoseMaps, SaveMotion
from .motion_sources import BeatChoreographer, LoadEDGE, MusicToMotionEDGE
from .video_combine import VideoCombine

NODES: list[type[io.ComfyNode]] = [
    LoadMusic, LoadJukebox, JukeboxEncode, LoadM2PEnc, M2PEncGuidanceNode,
    LoadChamp, ChampReferenceUNet, PoseDrivenGuidance, SegmentedDanceSampler, VideoCombine,
    LoadMotion, RenderPoseMaps, SaveMotion, LoadEDGE, MusicToMotionEDGE, BeatChoreographer,
    BeatAlignment, PoseVideoForAnimator,
]


class M2PDanceExtension(ComfyExtension):
    """Lists the pack's nodes, registers its model folders and writes the missing example inputs
    (the music and photo the example workflows load; never overwritten) when ComfyUI loads it.

    ComfyUI 0.3.64 calls ``get_node_list`` once at load and does not call ``on_load``, so the
    folder registration happens here.
    """

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        _comfy.ensure_model_folders()
        ensure_example_inputs()
        return list(NODES)
