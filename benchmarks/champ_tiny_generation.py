"""End-to-end time of a tiny pose-driven Champ generation: 8 frames, 64x64, through VAE decode.

Goal: < 30 s on a CPU. Runs Champ's default sampler settings (20 DDIM steps, CFG 3.5) on the
``tiny`` preset with random weights and random guidance maps, and prints the time per stage.

    python benchmarks/champ_tiny_generation.py [--steps 20] [--frames 8] [--size 64] [--device cpu]
"""
from __future__ import annotations

import argparse
import time
from typing import Callable, TypeVar

import torch

from m2pdance.m2penc.champ import build_champ, decode_latents, encode_pose_guidance, encode_reference, sample_video
from m2pdance.m2penc.progress import RunControl

T = TypeVar("T")


def _timed(label: str, fn: Callable[[], T], times: dict[str, float]) -> T:
    start = time.perf_counter()
    out = fn()
    times[label] = time.perf_counter() - start
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    args = parser.parse_args()
    g = torch.Generator().manual_seed(0)
    image = torch.rand((1, 3, args.size, args.size), generator=g)
    maps = {t: torch.randint(0, 256, (args.frames, 3, args.size, args.size), generator=g, dtype=torch.uint8)
            for t in ("depth", "normal", "semantic_map", "dwpose")}
    control = RunControl(progress=lambda stage, done, total: None)

    times: dict[str, float] = {}
    total = time.perf_counter()
    models = _timed("build", lambda: build_champ("tiny", seed=0, device=args.device, dtype=args.dtype), times)
    reference = _timed("encode_reference", lambda: encode_reference(models, image), times)
    guidance = _timed("encode_pose_guidance", lambda: encode_pose_guidance(models, maps), times)
    latents = _timed("sample_video", lambda: sample_video(models, reference, guidance, num_steps=args.steps,
                                                           guidance_scale=3.5, generator=g, control=control), times)
    frames = _timed("decode_latents", lambda: decode_latents(models.vae, latents, chunk_size=4), times)
    total = time.perf_counter() - total

    print(f"tiny Champ generation: {args.frames} frames {args.size}x{args.size}, {args.steps} steps, CFG 3.5, "
          f"{args.device} {args.dtype} -> frames {tuple(frames.shape)}")
    for label, seconds in times.items():
        print(f"  {label:<22}{seconds:8.2f} s")
    print(f"  {'total':<22}{total:8.2f} s  (goal < 30 s: {'met' if total < 30 else 'MISSED'})")


if __name__ == "__main__":
    main()
