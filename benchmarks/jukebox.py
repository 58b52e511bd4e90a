"""Jukebox feature extraction cost per second of music.

Measured: wall time and peak RSS growth of the tiny random-weight model (the real 10 GB
checkpoint is not available in CI). Estimated: analytic FLOPs of the real 5B model for prior
layers 1..L plus the top VQ-VAE encoder, including the window-overlap overhead of a 5-minute song.

    python benchmarks/jukebox.py --seconds 30 --threads 1
"""
from __future__ import annotations

import argparse
import resource
import time

import numpy as np
import torch

from m2pdance.m2penc.jukebox import DEFAULT_LAYER, JUKEMIRLIB_DEFAULT_LAYER, JukeboxConfig
from m2pdance.m2penc.jukebox.extractor import DEFAULT_OVERLAP_SECONDS
from m2pdance.m2penc.jukebox.flops import flops_per_second
from m2pdance.m2penc.jukebox.random_weights import tiny_extractor
from m2pdance.m2penc.jukebox.windows import plan_windows
from m2pdance.m2penc.timeline import frame_count


def _music(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(44100 * seconds)) / 44100
    return (np.sin(2 * np.pi * 220 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * t)) + 0.2 * rng.standard_normal(len(t))).astype(np.float32)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_tiny(seconds: float, fps: float) -> None:
    config = JukeboxConfig.preset("tiny")
    extractor = tiny_extractor(layer=config.prior_depth)
    extractor.extract(_music(2.0), fps=fps)  # warm-up: imports, allocator
    audio = _music(seconds)
    rss_before = _peak_rss_mib()
    start = time.perf_counter()
    features = extractor.extract(audio, fps=fps)
    elapsed = time.perf_counter() - start
    growth = _peak_rss_mib() - rss_before
    print(f"tiny config ({config.prior_depth} layers, width {config.prior_width}, n_ctx {config.n_ctx}), "
          f"{seconds:.0f} s of music -> {features.shape} at {fps} fps")
    print(f"  time: {elapsed:.2f} s total, {elapsed / seconds * 1000:.1f} ms per second of music")
    print(f"  peak RSS growth: {growth:.1f} MiB ({growth / seconds:.2f} MiB per second of music)")


def overlap_factor(config: JukeboxConfig, fps: float, seconds: float = 300.0) -> float:
    """Tokens run through the prior / tokens of music, for a song of ``seconds``."""
    n_samples = int(seconds * 44100)
    n_tokens = n_samples // config.hop_length
    windows = plan_windows(n_tokens, frame_count(n_samples, 44100, fps), config.token_rate, fps, config.n_ctx,
                           round(DEFAULT_OVERLAP_SECONDS * fps))
    return sum(w.token_count for w in windows) / n_tokens


def estimate_5b(fps: float) -> None:
    config = JukeboxConfig.preset("5b")
    factor = overlap_factor(config, fps)
    print(f"real 5B model, analytic FLOPs per second of music (window overlap factor {factor:.3f}):")
    for layer in sorted({JUKEMIRLIB_DEFAULT_LAYER, DEFAULT_LAYER, config.prior_depth}):
        f = flops_per_second(config, layer, factor)
        print(f"  layer {layer:2d}: prior {f['prior'] / 1e12:6.2f} TFLOP + VQ-VAE {f['vqvae'] / 1e9:5.2f} GFLOP "
              f"= {f['total'] / 1e12:6.2f} TFLOP per second of music")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--fps", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    measure_tiny(args.seconds, args.fps)
    estimate_5b(args.fps)


if __name__ == "__main__":
    main()
