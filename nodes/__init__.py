"""ComfyUI V3 nodes: thin adapters over ``m2penc``. Imported only by ComfyUI (or the test harness).

Registration happens in one place, :class:`M2PDanceExtension`; node ids carry the
``M2PDance`` prefix so they never collide with built-ins or other packs.
"""
from comfy_api.latest import ComfyExtension, io

from . import _comfy
from .load_music import LoadMusic


class M2PDanceExtension(ComfyExtension):
    """Lists the pack's nodes and registers its model folders when ComfyUI loads it.

    ComfyUI 0.3.64 calls ``get_node_list`` once at load and does not call ``on_load``, so the
    folder registration happens here.
    """

    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        _comfy.ensure_model_folders()
        return [LoadMusic]
