"""Convert UI-format workflows (what ComfyUI saves and lists as templates) to API format.

ComfyUI core has no converter: the frontend's ``graphToPrompt`` does it. This module follows
the same rules for the parts our workflows use:

* nodes with ``mode`` 2 (muted) or 4 (bypassed) are left out, with links into them, and so are
  the frontend-only note nodes (``Note``, ``MarkdownNote``);
* a node's ``widgets_values`` list is matched, in order, to its widget inputs (INT, FLOAT,
  STRING, BOOLEAN, COMBO without ``forceInput``) as its schema declares them; an INT/FLOAT with
  ``control_after_generate`` holds one extra value (the control mode) after its own, and an
  upload combo is followed by its upload widget's value; a dict is matched by name;
* an input with a link becomes ``[str(origin_id), origin_slot]`` (also for a widget converted
  to an input).
"""
from __future__ import annotations

from typing import Any

_WIDGET_IO = ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO")
_SKIPPED_MODES = (2, 4)
#: Node types that exist only in the frontend (never sent to the server).
FRONTEND_ONLY_TYPES = ("Note", "MarkdownNote")
#: Extra widgets_values slots the frontend stores after an upload combo's own value
#: (read off ComfyUI frontend 1.27.10's own API->UI conversion: LoadImage's "upload" button stores
#: "image"; an audio_upload combo stores nothing extra).
UPLOAD_WIDGET_SLOTS = {"image_upload": 1, "audio_upload": 0}


class WorkflowFormatError(Exception):
    pass


def widget_names(node_cls: type) -> list[tuple[str, int]]:
    """(input name, number of widgets_values slots it uses) for each widget input, in order."""
    schema = node_cls.GET_SCHEMA()
    result = []
    for inp in schema.inputs or []:
        io_type = inp.get_io_type()
        if (io_type not in _WIDGET_IO and not isinstance(io_type, list)) or getattr(inp, "force_input", False):
            continue
        slots = 1
        if getattr(inp, "control_after_generate", None):
            slots += 1
        if getattr(inp, "upload", None) is not None:
            slots += UPLOAD_WIDGET_SLOTS.get(inp.upload.value, 0)
        result.append((inp.id, slots))
    return result


def ui_to_api(workflow: dict, node_classes: dict[str, type]) -> dict[str, dict]:
    """Return the API-format prompt for a UI-format workflow."""
    if "nodes" not in workflow or "links" not in workflow:
        raise WorkflowFormatError("not a UI-format workflow (no 'nodes'/'links'); is it API format already?")
    active = {n["id"]: n for n in workflow["nodes"]
              if n.get("mode", 0) not in _SKIPPED_MODES and n.get("type") not in FRONTEND_ONLY_TYPES}
    links = {}
    for link in workflow["links"]:
        link_id, origin, origin_slot, target, target_slot = link[:5]
        links[link_id] = (origin, origin_slot)
    prompt: dict[str, dict] = {}
    for node_id, node in active.items():
        node_type = node["type"]
        if node_type not in node_classes:
            raise WorkflowFormatError(f"node {node_id}: unknown node type {node_type!r}")
        inputs: dict[str, Any] = {}
        values = node.get("widgets_values", [])
        if isinstance(values, dict):
            inputs.update({k: v for k, v in values.items()})
        else:
            index = 0
            for name, slots in widget_names(node_classes[node_type]):
                if index < len(values):
                    inputs[name] = values[index]
                index += slots
        for inp in node.get("inputs", []):
            link_id = inp.get("link")
            if link_id is None:
                continue
            origin, origin_slot = links[link_id]
            if origin in active:
                inputs[inp["name"]] = [str(origin), origin_slot]
            else:
                inputs.pop(inp["name"], None)
        entry = {"inputs": inputs, "class_type": node_type}
        title = node.get("title")
        if title:
            entry["_meta"] = {"title": title}
        prompt[str(node_id)] = entry
    return prompt
