"""Benchmark guidance-map rendering: frames/s for depth + normal + semantic + skeleton, and peak memory.

Renders a dancing body (the open body; the bone body of ``render.primitives`` if the open body is
not importable) with :func:`iter_pose_maps` at ``--size`` px square, consuming one batch at a time
as the video pipeline does, and prints frames/s for the whole pipeline (body skinning,
rasterisation, four maps, mask, keypoints, skeleton drawing, float IMAGE conversion) and its parts.
Timings are the best of ``--repeats`` passes after a warm-up (the first pass also pays for fresh
memory pages).

    python benchmarks/render.py [--size PX] [--frames N] [--batch B] [--device cpu|cuda] [--threads T]
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import time

import torch

from m2pdance.m2penc.device import resolve_device
from m2pdance.m2penc.render.keypoints import body_keypoints
from m2pdance.m2penc.render.palettes import part_colors
from m2pdance.m2penc.render.pose_maps import iter_pose_maps, motion_camera, render_mesh_maps, skeleton_maps


def _body(device: torch.device):
    try:
        from m2pdance.m2penc.body.open_body import OpenBody
        body, name = OpenBody(), "open body"
    except ImportError:
        from m2pdance.m2penc.render.primitives import BoneBodyModel
        body, name = BoneBodyModel(), "bone body (open body not importable)"
    return body.to(device), name


def _motion(frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A swaying, arm-waving, stepping motion (deterministic)."""
    t = torch.arange(frames, dtype=torch.float32)[:, None] / 30.0
    poses = torch.zeros(frames, 24, 3)
    poses[:, 0, 1] = 0.5 * torch.sin(2 * math.pi * 0.3 * t[:, 0])                 # turn
    poses[:, 16, 2] = 0.8 + 0.6 * torch.sin(2 * math.pi * 1.0 * t[:, 0])          # left shoulder
    poses[:, 17, 2] = -0.8 - 0.6 * torch.sin(2 * math.pi * 0.8 * t[:, 0])         # right shoulder
    poses[:, 18, 1] = 0.8 * torch.sin(2 * math.pi * 1.2 * t[:, 0]).abs()         # left elbow
    poses[:, 1, 0] = -0.5 * torch.sin(2 * math.pi * 0.5 * t[:, 0]).clamp(min=0)  # left hip
    poses[:, 4, 0] = 0.8 * torch.sin(2 * math.pi * 0.5 * t[:, 0]).clamp(min=0)   # left knee
    trans = torch.cat([0.3 * torch.sin(2 * math.pi * 0.2 * t), 0.9 + 0.03 * torch.sin(2 * math.pi * 2 * t),
                       torch.zeros_like(t)], dim=1)
    return poses, trans


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn, device: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return min(times)


def _stream(body, poses, trans, camera, batch: int, as_uint8: bool) -> None:
    for _ in iter_pose_maps(body, poses, trans, camera, batch, as_uint8=as_uint8):
        pass


def _peak_memory(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 1e6:.0f} MB allocated (CUDA peak)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3:.0f} MB process peak RSS"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=96)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2, help="CPU intra-op threads")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    body, name = _body(device)
    poses, trans = _motion(args.frames)
    camera = motion_camera(body, poses, trans, args.size, args.size)
    print(f"{name}: {body.part_labels.numel()} vertices, {body.faces.shape[0]} faces; {args.frames} frames at "
          f"{args.size}x{args.size}, batch {args.batch}, {device}, {torch.get_num_threads()} threads "
          f"(load average {os.getloadavg()[0]:.1f}: other processes slow this down)")

    n, r = args.frames, args.repeats
    for as_uint8, what in ((False, "float IMAGE"), (True, "uint8")):
        total = _timed(lambda: _stream(body, poses, trans, camera, args.batch, as_uint8), device, r)
        print(f"full pipeline    : {n / total:6.1f} frames/s  (depth+normal+semantic+skeleton+mask+keypoints, {what})")

    colors = part_colors(body.part_labels)
    with torch.no_grad():
        out = body(poses[:args.batch].to(device), trans[:args.batch].to(device))
        batch = out.vertices.shape[0]
        mesh = _timed(lambda: render_mesh_maps(out.vertices, body.faces, colors, camera), device, r)
        keypoints = body_keypoints(out.joints, out.vertices, body.landmarks, camera)
        skeleton = _timed(lambda: skeleton_maps(keypoints, args.size, args.size), device, r)
        skin = _timed(lambda: body(poses[:args.batch].to(device), trans[:args.batch].to(device)), device, r)
    print(f"  mesh maps      : {batch / mesh:6.1f} frames/s  (rasterise + depth/normal/semantic/mask, uint8)")
    print(f"  skeleton       : {batch / skeleton:6.1f} frames/s  (PIL drawing)")
    print(f"  body skinning  : {batch / skin:6.1f} frames/s")
    print(f"peak memory      : {_peak_memory(device)}")


if __name__ == "__main__":
    main()
