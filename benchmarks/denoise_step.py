"""Benchmark one Champ denoising step (a CFG batch through the 3-D U-Net): time, memory, FLOPs.

Prints the wall time per step, peak memory, the FLOPs of one step counted with
``torch.utils.flop_counter`` (plus CPU flash-attention, which PyTorch does not count), the
achieved FLOP/s, and - for comparison on the same device/dtype - the FLOP/s of a large matmul.

    python benchmarks/denoise_step.py --config tiny|small|sd15 [--frames F] [--size PX]
           [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--repeats N]

The reference bank is taken from a 1-frame write pass of the denoiser itself (same shapes as a
ReferenceNet bank), so only the denoising U-Net is held in memory.
"""
from __future__ import annotations

import argparse
import resource
import time

import torch
from torch.utils.flop_counter import FlopCounterMode, register_flop_formula

from m2pdance.m2penc.champ import DenoisingUNet3D, DenoisingUNetConfig
from m2pdance.m2penc.champ.loading import place
from m2pdance.m2penc.champ.reference_attention import ReferenceRead, ReferenceWrite
from m2pdance.m2penc.device import resolve_device, resolve_dtype

#: config -> (frames, pixel size) defaults; sd15 is Champ's real 24 x 512 window on GPU.
DEFAULTS = {"tiny": (8, 64), "small": (16, 256), "sd15": (24, 512)}


@register_flop_formula(torch.ops.aten._scaled_dot_product_flash_attention_for_cpu)
def _cpu_sdpa_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """QK^T and AV: 2 * 2 * B * H * Lq * Lk * D (query/key/value are (B, H, L, D))."""
    b, h, lq, d = query_shape
    return 4 * b * h * lq * key_shape[2] * d


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_memory_gb(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.max_memory_allocated() / 1e9:.2f} GB allocated (CUDA peak)"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6:.2f} GB process peak RSS"


def _matmul_flops_per_s(device: torch.device, dtype: torch.dtype, n: int = 2048, repeats: int = 5) -> float:
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    _sync(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def _inputs(unet: DenoisingUNet3D, frames: int, size: int) -> dict:
    cfg, device, dtype = unet.m2p_config, unet.device, unet.dtype
    h = size // 8
    latents = torch.randn(2, cfg.in_channels, frames, h, h, device=device, dtype=dtype)
    embeds = torch.randn(2, 1, cfg.cross_attention_dim, device=device, dtype=dtype)
    embeds[0] = 0
    writer = ReferenceWrite(dtype=torch.float16)
    with torch.no_grad():
        unet(latents[:1, :, :1], 0, embeds[1:], reference=writer)
    guidance = torch.randn(2, cfg.block_out_channels[0], frames, h, h, device=device, dtype=dtype)
    return {"sample": latents, "timestep": 999, "encoder_hidden_states": embeds, "guidance_fea": guidance,
            "reference": ReferenceRead(writer.bank, (False, True))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=sorted(DEFAULTS), default="tiny")
    parser.add_argument("--frames", type=int)
    parser.add_argument("--size", type=int, help="frame size in pixels (square)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device)
    frames, size = args.frames or DEFAULTS[args.config][0], args.size or DEFAULTS[args.config][1]
    torch.manual_seed(0)

    start = time.perf_counter()
    unet = place(DenoisingUNet3D(DenoisingUNetConfig.preset(args.config)), device, dtype)
    params = sum(p.numel() for p in unet.parameters())
    print(f"config {args.config}: {params / 1e6:.1f} M parameters, built in {time.perf_counter() - start:.1f} s; "
          f"{device} {dtype}; CFG batch 2 x {frames} frames at {size}x{size} px")
    inputs = _inputs(unet, frames, size)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            unet(**inputs)
        flops = counter.get_total_flops()
        times = []
        for _ in range(args.repeats):
            _sync(device)
            start = time.perf_counter()
            unet(**inputs)
            _sync(device)
            times.append(time.perf_counter() - start)
    step = min(times)
    matmul = _matmul_flops_per_s(device, dtype)
    print(f"step time        : {step * 1e3:.1f} ms (best of {args.repeats}; all: "
          f"{', '.join(f'{t * 1e3:.0f}' for t in times)} ms)")
    print(f"peak memory      : {_peak_memory_gb(device)}")
    print(f"FLOPs per step   : {flops / 1e9:.2f} GFLOP")
    print(f"achieved         : {flops / step / 1e9:.2f} GFLOP/s")
    print(f"large matmul     : {matmul / 1e9:.2f} GFLOP/s (2048^3, same device/dtype) -> "
          f"step reaches {100 * flops / step / matmul:.0f}% of it")


if __name__ == "__main__":
    main()
