"""Peak memory of long-video generation does not grow with the video's length.

Renders a 2-segment and a 12-segment video (5 s segments at 15 fps = 75 frames each, noise
conditioning, tiny random-init Champ, music muxed into an mp4) and prints each run's peak RSS and
their ratio (goal: <= 1.15). Each run is a fresh subprocess, so its peak RSS (``ru_maxrss``)
measures that run alone. Guidance is produced lazily per segment, as a music encoder would.

    python benchmarks/long_video_memory.py [--short 2] [--long 12] [--size 128] [--steps 3]
"""
from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: Segments of 5 s at 15 fps, the paper's inference setting.
SEGMENT_FRAMES = 75
FPS = 15
SAMPLE_RATE = 44100
GOAL_RATIO = 1.15


class LazyGuidance:
    """A GuidanceSource computing ``(1, C, F, h, w)`` from frame indices on demand (never the whole video)."""

    def __init__(self, channels: int, num_frames: int, fps: float = FPS):
        self.channels, self.num_frames, self.fps = channels, num_frames, fps

    def frames(self, indices, latent_hw, device, dtype):
        import torch

        phase = torch.linspace(0, math.pi, self.channels).view(1, self.channels, 1, 1, 1)
        ramp = torch.linspace(-1, 1, latent_hw[1]).view(1, 1, 1, 1, latent_hw[1])
        wave = torch.sin(indices.float().view(1, 1, -1, 1, 1) / 5.0 + phase + ramp)  # (1, C, F, 1, w)
        return wave.expand(1, self.channels, indices.numel(), *latent_hw).to(device=device, dtype=dtype).contiguous()


def run_child(segments: int, size: int, steps: int, threads: int) -> dict:
    """Render ``segments`` segments into an mp4 in this process; return timings and peak RSS."""
    import torch

    from m2pdance.m2penc.champ import build_champ, encode_reference
    from m2pdance.m2penc.champ.long_video import render_champ_video
    from m2pdance.m2penc.sampling import LongVideoOptions
    from m2pdance.m2penc.video import VideoWriter

    torch.set_num_threads(threads)
    models = build_champ("tiny", seed=0, device="cpu", dtype=torch.float32)
    ref_state = encode_reference(models, torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0)))
    num_frames = segments * SEGMENT_FRAMES
    guidance = LazyGuidance(models.denoising_unet.conv_in.out_channels, num_frames)
    music = {"waveform": 0.1 * torch.randn(1, 2, int(num_frames / FPS * SAMPLE_RATE)), "sample_rate": SAMPLE_RATE}
    options = LongVideoOptions(segment_frames=SEGMENT_FRAMES, num_steps=steps)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        with VideoWriter(Path(folder) / "dance.mp4", FPS, "mp4", audio=music) as writer:
            written = render_champ_video(models, ref_state, guidance, writer.write, seed=0, options=options)
        size_bytes = writer.path.stat().st_size
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"segments": segments, "frames": written, "seconds": time.perf_counter() - start,
            "peak_rss_mib": peak_kib / 1024, "file_bytes": size_bytes}


def run_in_subprocess(segments: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, __file__, "--child", str(segments), "--size", str(args.size),
           "--steps", str(args.steps), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--short", type=int, default=2, help="segments of the short video")
    parser.add_argument("--long", type=int, default=12, help="segments of the long video")
    parser.add_argument("--size", type=int, default=128, help="frame size in pixels (multiple of 8)")
    parser.add_argument("--steps", type=int, default=3, help="denoising steps per segment")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(run_child(args.child, args.size, args.steps, args.threads)))
        return
    results = [run_in_subprocess(n, args) for n in (args.short, args.long)]
    for r in results:
        print(f"{r['segments']:>3} segments, {r['frames']:>5} frames: peak RSS {r['peak_rss_mib']:8.1f} MiB, "
              f"{r['seconds']:6.1f} s, file {r['file_bytes'] / 1e6:.2f} MB")
    ratio = results[1]["peak_rss_mib"] / results[0]["peak_rss_mib"]
    verdict = "OK" if ratio <= GOAL_RATIO else "ABOVE GOAL"
    print(f"peak RSS ratio {args.long} / {args.short} segments: {ratio:.3f} (goal <= {GOAL_RATIO}) {verdict}")


if __name__ == "__main__":
    main()
