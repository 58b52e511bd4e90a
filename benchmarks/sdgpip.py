"""Benchmark the SDGPip builder per worker process: frames/s, where the time goes, bytes per frame.

Per device (CPU; CUDA too when present), on ``--tracks`` generated click tracks of ``--seconds`` s:

1. builder: one worker (:func:`build_worker`, ``--source beats``, ``store=maps``): frames, wall seconds
   (set-up included), frames/s. A CPU worker computes with one thread (the builder runs one worker
   per core under torchrun). Then its stages, timed one by one on the first clip with the worker's
   threads; they add up to about the builder's time per frame. "stored guidance" (Champ's four
   guidance encoders at SD-1.5 size, 16 frames) is the extra work only ``store=guidance`` pays.
2. storage: bytes per frame of ``maps`` mode from the shards built (tar; per field from the sidecar's
   member sizes; "tar headers" = member headers, padding, sample JSON), of ``guidance`` mode from a
   guidance-mode shard of a 1-s track, and what the paper's 560k frames take in each mode.
3. training targets: :class:`GuidanceTargets` frames/s on 2 x 16 frames (fp32; also bf16 on CUDA).

Encoders have random weights (speed and sizes do not depend on them). Timings are single passes and
other processes slow them down (the load average is printed). ``--quick``: 128 px, 2-s tracks, tiny
encoders, 4-frame batches (~15 s).

    python benchmarks/sdgpip.py [--size 512] [--seconds 10] [--tracks 2] [--device all|cpu|cuda] [--quick]
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np
import soundfile
import torch
from threadpoolctl import threadpool_limits

from m2pdance.m2penc.body import make_body
from m2pdance.m2penc.champ.config import GUIDANCE_TYPES, GuidanceEncoderConfig
from m2pdance.m2penc.champ.guidance_encoder import GuidanceEncoder
from m2pdance.m2penc.checkpoint import save_model
from m2pdance.training.guidance_targets import MAP_ORDER, GuidanceTargets
from m2pdance.training.sdgpip.builder import BuildConfig, build_worker
from m2pdance.training.sdgpip.shards import SampleData, ShardIndex, finished_shards, shard_path, write_shard
from m2pdance.training.sdgpip.sources import make_source
from m2pdance.training.sdgpip.targets import (CHAMP_TYPE_OF_MAP, MAP_FIELDS, clip_camera, clip_feature_rows,
                                              render_targets, stored_guidance, track_features)

T = TypeVar("T")
SR = 22050
PAPER_FRAMES = 560_000
PAPER_GUIDANCE = (320, 64, 64)          # C x G x G at 512 px, float16
Encoders = dict[str, GuidanceEncoder]


def _write_music(folder: Path, tracks: int, seconds: float) -> Path:
    """``tracks`` mono click tracks (a decaying 880 Hz burst per beat over a 110 Hz hum), 96-126 bpm."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    burst = np.exp(-np.arange(900) / 200.0) * np.sin(2 * np.pi * 880 * np.arange(900) / SR)
    for i in range(tracks):
        wave = 0.02 * np.sin(2 * np.pi * 110 * t)
        for beat in np.arange(0.0, seconds, 60.0 / (96 + 30 * i / max(tracks - 1, 1))):
            start = int(beat * SR)
            wave[start:start + burst.size] += 0.5 * burst[:max(0, min(burst.size, t.size - start))]
        soundfile.write(folder / f"track{i:02d}.wav", wave.astype(np.float32), SR)
    return folder


def _encoders(preset: str, device: torch.device) -> Encoders:
    """Champ's four guidance encoders at ``preset`` size, seeded (as ``build_champ`` makes them)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return {t: GuidanceEncoder(GuidanceEncoderConfig.preset(preset)).eval().to(device) for t in GUIDANCE_TYPES}


def _save_encoders(encoders: Encoders, folder: Path) -> Path:
    """``guidance_encoder_<type>.safetensors`` as ``save_champ_models`` writes them (``--guidance-encoders``)."""
    for name, encoder in encoders.items():
        save_model(folder / f"guidance_encoder_{name}.safetensors", encoder.state_dict(), "champ.guidance_encoder",
                   encoder.m2p_config.to_json())
    return folder


@contextmanager
def _as_worker(device: torch.device) -> Iterator[int]:
    """The threads a builder worker computes with: one torch and one BLAS thread on CPU (one worker per core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1 if device.type == "cpu" else threads)
    try:
        with threadpool_limits(limits=1, user_api="blas"):
            yield torch.get_num_threads()
    finally:
        torch.set_num_threads(threads)


def _timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start


def _build(music: Path, out: Path, args: argparse.Namespace, device: torch.device, **extra: Any) -> tuple[int, float]:
    config = BuildConfig(source="beats", data=str(music), out=str(out), size=args.size, device=str(device), **extra)
    (summary, _), wall = _timed(lambda: build_worker(config, show_progress=False), device)
    return summary.frames, wall


def _stage(name: str, seconds: float, frames: int, note: str = "") -> None:
    print(f"  {name:<16}: {seconds:7.2f} s  {frames / seconds:8.1f} frames/s  {1e3 * seconds / frames:8.1f} ms/frame"
          f"  {note}")


def bench_builder(music: Path, work: Path, args: argparse.Namespace, device: torch.device,
                  encoders: Encoders) -> tuple[Path, dict[str, np.ndarray]]:
    """Section 1; returns the maps-mode build folder and the rendered fields of the first clip."""
    out = work / f"maps-{device.type}"
    frames, wall = _build(music, out, args, device)
    source = make_source("beats", music, size=args.size)
    body = make_body("open", device=device)
    settings = BuildConfig(source="beats", data=str(music), out=str(out), size=args.size).targets(device)
    targets = GuidanceTargets(encoders)
    with _as_worker(device) as threads:            # the stages one by one on the first clip
        clip, t_clip = _timed(lambda: next(iter(source.clips(source.items()[0]))), device)
        n, camera = clip.motion.num_frames, clip_camera(clip, body, args.size)
        fields, t_render = _timed(lambda: render_targets(clip, body, camera, settings, 0, n), device)
        track, t_feat = _timed(lambda: track_features(clip, settings), device)
        rows = np.ascontiguousarray(clip_feature_rows(track, clip, settings.fps))
        sample = SampleData(key=f"{clip.key}-000", meta={"num_frames": n}, fields={**fields, "features": rows})
        _, t_write = _timed(lambda: write_shard(shard_path(work / f"stage-{device.type}", 0), [sample], shard=0,
                                                build_id="bench"), device)
        k = min(args.batch, n)
        part = {name: fields[name][:k] for name in MAP_FIELDS}
        stored_guidance(targets, {name: a[:1] for name, a in part.items()})           # warm-up
        guidance, t_guid = _timed(lambda: stored_guidance(targets, part), device)
    print(f"builder (beats, store=maps, 1 worker, {threads} torch thread(s)): {frames} frames in {wall:.1f} s "
          f"= {frames / wall:.1f} frames/s")
    print(f"  per stage on {clip.key} ({n} frames, {args.size} px, as a worker computes):")
    _stage("choreography", t_clip, n, "(load audio + beat choreographer)")
    _stage("rendering", t_render, n, "(4 maps + keypoints + heatmaps, uint8)")
    _stage("music features", t_feat, n, f"(light {track.shape[1]}-d, whole track)")
    _stage("PNG + tar", t_write, n, "(write_shard of the rendered sample)")
    per_frame = (t_clip + t_render + t_feat + t_write) / n
    _stage("sum of stages", per_frame * n, n, f"(store=maps; x {frames} frames = {per_frame * frames:.1f} s of the "
                                              f"builder's {wall:.1f} s, the rest: set-up, e.g. importing librosa)")
    _stage("stored guidance", t_guid, k, f"(store=guidance only: {args.preset} encoders -> "
                                         f"{'x'.join(map(str, guidance.shape[1:]))} fp16)")
    return out, fields


def _field_bytes(indexes: list[ShardIndex]) -> tuple[int, int, dict[str, int]]:
    """(frames, tar bytes, field -> bytes of its members) over the shards' sidecar indexes."""
    frames = sum(s.num_frames for index in indexes for s in index.samples)
    per_field: dict[str, int] = {}
    for index in indexes:
        for sample in index.samples:
            for name, members in sample.members.items():
                per_field[name] = per_field.get(name, 0) + sum(size for _, size in members)
    return frames, sum(index.tar_bytes for index in indexes), per_field


def bench_storage(maps_out: Path, work: Path, args: argparse.Namespace, device: torch.device,
                  encoders: Encoders) -> None:
    """Section 2."""
    frames, tar, per_field = _field_bytes(list(finished_shards(maps_out).values()))
    print(f"storage, store=maps ({frames} frames, {args.size} px): {tar / frames / 1e3:.1f} kB/frame in the tars")
    for name, size in sorted(per_field.items(), key=lambda kv: -kv[1]):
        print(f"  {name:<16}: {size / frames / 1e3:8.2f} kB/frame")
    sidecars = sum(p.stat().st_size for p in (maps_out / "shards").glob("*.json"))
    print(f"  {'tar headers':<16}: {(tar - sum(per_field.values())) / frames / 1e3:8.2f} kB/frame "
          f"(+ sidecar index {sidecars / frames:.0f} B/frame)")
    one = _write_music(work / "music-1s", 1, 1.0)
    out = work / "guidance"
    g_frames, wall = _build(one, out, args, device, store="guidance",
                            guidance_encoders=str(_save_encoders(encoders, work / "encoders")))
    g_index = list(finished_shards(out).values())
    _, g_tar, g_field = _field_bytes(g_index)
    shape = g_index[0].samples[0].arrays["guidance"].shape[1:]
    member = g_field["guidance"] / g_frames
    print(f"storage, store=guidance ({g_frames} frames of a 1-s track, {args.preset} encoders, built at "
          f"{g_frames / wall:.2f} frames/s on {device.type}): guidance {'x'.join(map(str, shape))} fp16 = "
          f"{member:,.0f} B/frame; tar {g_tar / g_frames / 1e3:.1f} kB/frame (maps included)")
    paper = int(np.prod(PAPER_GUIDANCE)) * 2
    paper_member = paper + member - 2 * np.prod(shape) + 512                 # + the npy header and a tar header
    maps_frame = tar / frames
    print(f"  paper size: guidance {'x'.join(map(str, PAPER_GUIDANCE))}x2 = {paper:,} B/frame "
          f"(with npy and tar headers {paper_member:,.0f} B)")
    print(f"  {PAPER_FRAMES:,} frames: maps {maps_frame * PAPER_FRAMES / 1e9:.1f} GB "
          f"(at {args.size} px{'' if args.size == 512 else '; the paper uses 512'}), "
          f"guidance {(maps_frame + paper_member) * PAPER_FRAMES / 1e12:.2f} TB (maps + guidance)")


def _map_batch(fields: dict[str, np.ndarray], batch: int, length: int, device: torch.device) -> torch.Tensor:
    """(batch, length, 4, S, S, 3) uint8 in :data:`MAP_ORDER` from rendered frames (repeated if too few)."""
    of_type = {champ: name for name, champ in CHAMP_TYPE_OF_MAP.items()}
    maps = []
    for champ in MAP_ORDER:
        a = torch.from_numpy(fields[of_type[champ]])
        maps.append(a[..., None].expand(*a.shape, 3) if a.ndim == 3 else a)
    frames = torch.stack(maps, dim=1)
    idx = torch.arange(batch * length) % frames.shape[0]
    return frames[idx].reshape(batch, length, *frames.shape[1:]).contiguous().to(device)


def bench_targets(fields: dict[str, np.ndarray], args: argparse.Namespace, device: torch.device,
                  encoders: Encoders) -> None:
    """Section 3."""
    batch, length = 2, args.batch
    maps = _map_batch(fields, batch, length, device)
    dtypes = [torch.float32] + ([torch.bfloat16] if device.type == "cuda" else [])
    for dtype in dtypes:
        targets = GuidanceTargets({t: e.to(dtype) for t, e in encoders.items()})
        targets(maps[:1, :1])                                                        # warm-up
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        repeats = 3 if device.type == "cuda" else 1
        seconds = min(_timed(lambda: targets(maps), device)[1] for _ in range(repeats))
        peak = (f"{torch.cuda.max_memory_allocated(device) / 2**20:.0f} MiB CUDA peak" if device.type == "cuda"
                else f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB process peak RSS")
        print(f"GuidanceTargets {str(dtype).removeprefix('torch.')} ({args.preset} encoders, {batch}x{length} frames "
              f"at {args.size} px, {torch.get_num_threads()} threads): {batch * length / seconds:.2f} frames/s "
              f"({seconds:.2f} s per batch, {peak})")
    for encoder in encoders.values():
        encoder.float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, help="map side in px (default 512; 128 with --quick)")
    parser.add_argument("--seconds", type=float, help="length of each generated track (default 10; 2 with --quick)")
    parser.add_argument("--tracks", type=int, default=2)
    parser.add_argument("--device", default="all", choices=("all", "cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="tiny sizes and encoders: a smoke run")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", message="n_fft=.* is too large")     # librosa on the 1-s track
    args.size = args.size or (128 if args.quick else 512)
    args.seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.preset, args.batch = ("tiny", 4) if args.quick else ("sd15", 16)
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available")
    names = {"all": ["cpu"] + (["cuda"] if torch.cuda.is_available() else []), "cpu": ["cpu"], "cuda": ["cuda"]}
    devices = [torch.device(d) for d in names[args.device]]
    print(f"SDGPip builder benchmark: {args.tracks} x {args.seconds:g} s tracks at 15 fps, {args.size} px, "
          f"{args.preset} guidance encoders; {torch.get_num_threads()} CPU threads, load average "
          f"{os.getloadavg()[0]:.1f} (other processes slow this down)")
    with tempfile.TemporaryDirectory(prefix="sdgpip-bench-") as tmp:
        work = Path(tmp)
        music = _write_music(work / "music", args.tracks, args.seconds)
        built: list[Path] = []
        for device in devices:
            print(f"--- {device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
            encoders = _encoders(args.preset, device)
            maps_out, fields = bench_builder(music, work, args, device, encoders)
            bench_targets(fields, args, device, encoders)
            built.append(maps_out)
        print("--- storage")
        bench_storage(built[-1], work, args, devices[-1], _encoders(args.preset, devices[-1]))


if __name__ == "__main__":
    main()
