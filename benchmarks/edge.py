"""Benchmark: EDGE motion sampling - seconds per 5-s window and peak memory.

The full-size ``jukebox`` preset (49.5 M parameters, 4800-d music) with random weights samples
B windows of 150 frames (5 s at 30 fps) with EDGE's sampler: 50 DDIM steps, each a guided pair
of forwards (100 network passes). ``--windows B > 1`` uses long mode (B half-overlapping windows
in one batch, as EDGE's test.py). Peak memory is CUDA's peak allocation, or on CPU the process's
peak resident set size (``ru_maxrss``, includes the Python/torch baseline; the increase over the
built model is printed too). On a shared 2-core machine ``--threads 1`` is often faster.

    python benchmarks/edge.py [--preset jukebox|baseline|tiny] [--windows 1] [--steps 50]
                              [--device auto|cpu|cuda] [--dtype auto|fp32|fp16|bf16] [--threads N]
"""
from __future__ import annotations

import argparse
import resource
import sys
import time

import torch

from m2pdance.m2penc.device import resolve_device, resolve_dtype
from m2pdance.m2penc.motion.edge import DanceDecoder, EDGEConfig, long_ddim_sample
from m2pdance.m2penc.progress import RunControl


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="jukebox", choices=sorted(EDGEConfig.PRESETS))
    parser.add_argument("--windows", type=int, default=1, help="B windows sampled together (long mode if > 1)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads); default: torch's")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    config = EDGEConfig.preset(args.preset)
    torch.manual_seed(0)

    start = time.perf_counter()
    model = DanceDecoder(config).to(device=device, dtype=dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    print(f"EDGE {args.preset}: {params / 1e6:.1f} M parameters, built in {time.perf_counter() - start:.1f} s; "
          f"{device} {dtype}, {torch.get_num_threads()} CPU threads; "
          f"{args.windows} window(s) x {config.seq_len} frames "
          f"({config.seq_len / config.fps:g} s at {config.fps:g} fps), {args.steps} guided DDIM steps")
    cond = torch.randn(args.windows, config.seq_len, config.cond_feature_dim, device=device, dtype=dtype)

    step_times: list[float] = []
    last = [time.perf_counter()]

    def progress(stage: str, done: int, total: int) -> None:
        _sync(device)
        now = time.perf_counter()
        step_times.append(now - last[0])
        last[0] = now

    rss_before = _peak_rss_mb()
    with torch.no_grad():  # warm-up: first-call allocations and kernel selection are not timed
        model.guided(torch.zeros(args.windows, config.seq_len, config.nfeats, device=device, dtype=dtype), cond,
                     torch.full((args.windows,), 999, device=device), 2.0)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    start = last[0] = time.perf_counter()
    long_ddim_sample(model, cond, steps=args.steps, generator=torch.Generator().manual_seed(0),
                     control=RunControl(progress=progress))
    _sync(device)
    total = time.perf_counter() - start

    print(f"total            : {total:.2f} s for {args.windows} window(s)")
    print(f"per window       : {total / args.windows:.2f} s per {config.seq_len / config.fps:g}-s window")
    print(f"per DDIM step    : {1e3 * min(step_times):.1f} ms best, {1e3 * total / args.steps:.1f} ms mean "
          f"(2 forwards of batch {args.windows})")
    if device.type == "cuda":
        print(f"peak memory      : {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB allocated (CUDA peak)")
    else:
        peak = _peak_rss_mb()
        print(f"peak memory      : {peak:.0f} MiB process peak RSS (+{peak - rss_before:.0f} MiB over the built model; "
              f"weights {params * model.input_projection.weight.element_size() / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
