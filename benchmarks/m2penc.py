"""Benchmark: M2PEnc forward time and peak memory for one paper-sized clip.

75 frames = 5 s at the paper's 15 fps, the ``paper`` preset (Jukebox 4800-d input), random
weights, no grad. Peak memory is the process's peak resident set size (``ru_maxrss``), which
includes the Python/torch baseline; the increase over the pre-forward peak is printed too.

    python benchmarks/m2penc.py [--frames 75] [--preset paper] [--device cpu] [--dtype fp32]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

from m2pdance.m2penc.device import resolve_device, resolve_dtype
from m2pdance.m2penc.encoder.config import M2PEncConfig
from m2pdance.m2penc.encoder.model import M2PEnc


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=75)
    parser.add_argument("--preset", default="paper", choices=sorted(M2PEncConfig.PRESETS))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="fp32")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()

    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    config = M2PEncConfig.preset(args.preset)
    torch.manual_seed(0)
    model = M2PEnc(config).to(device=device, dtype=dtype).eval()
    features = torch.randn(1, args.frames, config.in_dim, device=device, dtype=dtype)
    params = sum(p.numel() for p in model.parameters())
    print(f"M2PEnc preset={args.preset} params={params / 1e6:.2f}M frames={args.frames} "
          f"device={device} dtype={dtype} threads={torch.get_num_threads()}")
    before = _peak_rss_mb()
    for i in range(args.repeats):
        start = time.perf_counter()
        with torch.no_grad():
            out = model(features)
        if device.type == "cuda":
            torch.cuda.synchronize()
        print(f"forward {i + 1}: {time.perf_counter() - start:.2f} s  guidance {tuple(out.guidance.shape)} "
              f"heatmaps {tuple(out.heatmaps.shape)}")
    peak = _peak_rss_mb()
    print(f"peak RSS {peak:.0f} MiB (+{peak - before:.0f} MiB during forward)")
    if device.type == "cuda":
        print(f"peak CUDA memory {torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
