"""Stand-ins for the ComfyUI built-in nodes our example workflows use: LoadImage, PreviewAudio.

Same node ids, inputs and outputs as ComfyUI 0.3.64 (where they are classic V1 nodes); written
here as V3 classes so the executor treats every node alike. Only used when the real ComfyUI is
absent; the real-server tests run the same workflows against the real nodes.
"""
from __future__ import annotations

import os
import uuid

import numpy as np
import torch
from comfy_api.latest import io, ui


class LoadImage(io.ComfyNode):
    """ComfyUI's LoadImage: RGB IMAGE [1, H, W, 3] and MASK = 1 - alpha (zeros without alpha)."""

    @classmethod
    def define_schema(cls):
        import folder_paths

        root = folder_paths.get_input_directory()
        files = sorted(f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f))) if os.path.isdir(root) else []
        return io.Schema(node_id="LoadImage", category="image", inputs=[
            io.Combo.Input("image", options=folder_paths.filter_files_content_types(files, ["image"]),
                           upload=io.UploadType.image)],
            outputs=[io.Image.Output(), io.Mask.Output()])

    @classmethod
    def execute(cls, image):
        import folder_paths
        from PIL import Image, ImageOps

        img = ImageOps.exif_transpose(Image.open(folder_paths.get_annotated_filepath(image)))
        rgb = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0)[None]
        if "A" in img.getbands():
            mask = 1.0 - torch.from_numpy(np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0)[None]
        else:
            mask = torch.zeros((1, 64, 64), dtype=torch.float32)
        return io.NodeOutput(rgb, mask)


class PreviewAudio(io.ComfyNode):
    """ComfyUI's PreviewAudio: writes the AUDIO to the temp folder and shows it."""

    @classmethod
    def define_schema(cls):
        return io.Schema(node_id="PreviewAudio", category="audio", is_output_node=True,
                         inputs=[io.Audio.Input("audio")], outputs=[])

    @classmethod
    def execute(cls, audio):
        import folder_paths
        import soundfile

        out_dir = folder_paths.get_temp_directory()
        os.makedirs(out_dir, exist_ok=True)
        results = []
        for index, waveform in enumerate(audio["waveform"]):
            name = f"ComfyUI_temp_{uuid.uuid4().hex[:5]}_{index:05}_.flac"
            soundfile.write(os.path.join(out_dir, name), waveform.T.numpy(), audio["sample_rate"])
            results.append(ui.SavedResult(name, "", io.FolderType.temp))
        return io.NodeOutput(ui={"audio": results})


BUILTIN_NODES: dict[str, type] = {"LoadImage": LoadImage, "PreviewAudio": PreviewAudio}
