"""Benchmark the video metrics: seconds per video for FVD features (I3D) and LPIPS, plus PSNR/SSIM.

One "video" is ``--frames`` frames at ``--size`` px square (default 75 frames = 5 s at 15 fps, at the
paper's 640 x 640), uint8, as :mod:`m2pdance.m2penc.eval.video_sets` scores them:

* FVD features: the full-width Kinetics-400 I3D (the real ``i3d_pretrained_400.pt`` layout, 12.7 M
  numbers, random values) on the video's consecutive 16-frame clips, each stretched to 224 x 224
  (:func:`~m2pdance.m2penc.eval.video_sets.clip_features`), float32;
* LPIPS (AlexNet, the paper's; ``--lpips vgg`` for VGG16) between the video and a noisy copy, per
  frame at native size, float32;
* PSNR and SSIM of the same pair (float64, always on the CPU tensors they are given).

Each figure is the best of ``--repeats`` runs after a warm-up, on the CPU and, when present, on CUDA
(``--device`` picks one). Decoding the files is not included (PyAV decodes 640 x 640 H.264 at
hundreds of frames/s).

    python benchmarks/eval.py [--frames 75] [--size 640] [--lpips alex|vgg] [--device all|cpu|cuda]
                              [--threads 2] [--repeats 2]
"""
from __future__ import annotations

import argparse
import os
import time
from typing import Callable

import numpy as np
import torch

from m2pdance.m2penc.eval.i3d import CLIP_FRAMES, I3DConfig, InceptionI3d
from m2pdance.m2penc.eval.image_metrics import psnr, ssim
from m2pdance.m2penc.eval.lpips import LPIPS, lpips
from m2pdance.m2penc.eval.video_sets import clip_features


def _video(frames: int, size: int, seed: int) -> np.ndarray:
    """A smooth random uint8 video ``(frames, size, size, 3)`` (structure at several scales)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand((frames, 3, 8, 8), generator=g)
    video = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False)
    video = video + 0.05 * torch.rand(video.shape, generator=g)
    return (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _best(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
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


def _random_i3d(device: torch.device) -> InceptionI3d:
    """The real-size I3D with random values in the checkpoint's layout (batch-norm variances ~ 1)."""
    model = InceptionI3d(I3DConfig())
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
    return model.to(device).eval().requires_grad_(False)


def _random_lpips(net: str, device: torch.device) -> LPIPS:
    model = LPIPS(net)
    with torch.no_grad():
        for head in model.heads:
            head.model[1].weight.uniform_(0.0, 0.1)
    return model.to(device).eval().requires_grad_(False)


def _line(device: torch.device, what: str, seconds: float, detail: str) -> None:
    print(f"[{device}] {what:<54}: {seconds:7.2f} s/video  ({detail})")


def run(device: torch.device, real: np.ndarray, fake: np.ndarray, net: str, repeats: int) -> None:
    frames, size = real.shape[0], real.shape[1]
    clips = frames // CLIP_FRAMES
    i3d = _random_i3d(device)
    fvd = _best(lambda: clip_features(i3d, real), device, repeats) if clips else float("nan")
    model = _random_lpips(net, device)
    lp = _best(lambda: lpips(fake, real, model), device, repeats)
    _line(device, f"FVD features (I3D, {clips} clips of {CLIP_FRAMES} frames -> 224x224)", fvd,
          f"{fvd / clips:.2f} s/clip" if clips else f"needs >= {CLIP_FRAMES} frames")
    _line(device, f"LPIPS-{net} ({frames} frames at {size}x{size})", lp, f"{1000 * lp / frames:.0f} ms/frame")
    if device.type == "cuda":
        print(f"[{device}] CUDA peak allocation: {torch.cuda.max_memory_allocated() / 1e6:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=75, help="frames per video (75 = 5 s at 15 fps)")
    parser.add_argument("--size", type=int, default=640, help="frame side in pixels (paper: 640)")
    parser.add_argument("--lpips", choices=["alex", "vgg"], default="alex")
    parser.add_argument("--device", choices=["all", "cpu", "cuda"], default="all",
                        help="all: the CPU, then CUDA when present")
    parser.add_argument("--threads", type=int, default=2, help="CPU intra-op threads")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    if args.frames < 1 or args.size < 32:
        parser.error("--frames must be >= 1 and --size >= 32 (LPIPS' smallest input)")
    torch.set_num_threads(args.threads)
    real, fake = _video(args.frames, args.size, 0), _video(args.frames, args.size, 1)
    print(f"one video = {args.frames} frames at {args.size}x{args.size}; {torch.get_num_threads()} CPU threads "
          f"(load average {os.getloadavg()[0]:.1f}: other processes slow this down)")
    cpu = torch.device("cpu")
    pair = _best(lambda: (psnr(fake, real), ssim(fake, real)), cpu, args.repeats)
    _line(cpu, f"PSNR + SSIM ({args.frames} frames, float64)", pair, f"{1000 * pair / args.frames:.0f} ms/frame")
    devices = {"all": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"], "cuda": ["cuda"]}
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device here")
    for name in devices[args.device]:
        run(torch.device(name), real, fake, args.lpips, args.repeats)
    if args.device == "all" and not torch.cuda.is_available():
        print("(no CUDA device: CPU only)")


if __name__ == "__main__":
    main()
