"""Activation memory per sample of each training stage's paper preset, and the per-GPU total on 8 x 80 GB GPUs.

Goal: every stage's paper batch fits eight 80 GB GPUs with bf16 + checkpointing. The models are
built full size with random weights (``build_champ("sd15")``, ``M2PEncConfig.preset("paper",
guidance_channels=320)``) and run on the CPU: no figure here is a CUDA measurement.

What is measured: the bytes one forward of the stage's loss keeps for the backward - every tensor
autograd saves (``torch.autograd.graph.saved_tensors_hooks``, each storage once), the inputs that
checkpointed blocks keep, and the batch itself - counting only what is still alive when the loss
is returned (a discarded branch, e.g. the ReferenceNet's head, is freed by then). Parameters and
buffers are excluded. Each figure is fitted, as ``fixed + B * (a + c * F)``, from small forwards:

* ``B = 1`` and ``B = 2`` separate the per-sample part from the per-forward ``fixed`` part;
* stages 1 and 3 also run two lengths ``F`` (stage 1: window frames, stage 3: clip frames; the
  saved bytes are linear in them) and extrapolate to the paper's 75 and 24;
* stages 2 and 3 run at a small image size (default 128 x 128) and scale the pixel-dependent part
  by the pixel count to 640 x 640 (every U-Net level shrinks by the same factor; M2PEnc, its
  64 x 64 guidance target and L_guid do not depend on the image size and are not scaled). Checks:
  stage 2 measured at 256 x 256 gives the same figures within 0.5 %; stage 3 fitted from F = 2, 6
  instead of 2, 4 gives the same figures.

Reading a stage's table (GiB = 2^30 B):

* ``act/sample``: activations per training sample (stage 3: per 24-frame clip) at the paper's size.
* ``fixed``: per-forward bytes independent of the batch. In bf16 this is mostly autocast's cache of
  bf16 copies of the trained weights (2 B per trained weight, held until the forward ends), plus
  the bf16 copies of frozen weights that uncheckpointed ops save.
* ``recompute``: with checkpointing, the backward re-runs one checkpointed segment at a time and
  holds its activations for the per-GPU batch: the largest segment's (sized in the plain run).
* ``per GPU``: model states + fixed + act/sample x per-GPU batch (paper batch / 8) + recompute.
  Model states follow the engine: every parameter stays fp32 on every GPU (mixed precision is
  autocast over fp32 master weights); trained: 4 B param + 4 B grad + 8 B AdamW moments + 4 B DDP
  gradient bucket (Accelerate's DDP without ``gradient_as_bucket_view``) = 20 B; frozen: 4 B. No
  EMA (off in the paper presets; it would add 4 B per trained parameter).
* ``fits 80 GB``: per GPU <= 80e9 B (74.5 GiB). Not counted: the CUDA context, kernel workspaces,
  transient buffers (attention/GEMM scratch, the backward's activation gradients) and allocator
  fragmentation - a row needs a few GiB of margin below the line.

bf16 rows run the forward under ``torch.autocast("cpu", dtype=torch.bfloat16)`` (CUDA's autocast
op lists differ in a few ops). Rows ``as in training`` turn checkpointing on with the training
code's own switches (stage 1: ``M2PEnc.gradient_checkpointing``; stages 2-3:
``champ_stages.enable_checkpointing``: diffusers' switch on both U-Nets, the motion modules' own
switch, M2PEnc's); the ``checkpoint`` calls are counted, not replaced. Condition dropout is off (every sample keeps its reference: the worst case).
Stage 2's M2PEnc runs without gradients, so its window length changes no saved tensor; an
8-frame window saves CPU time.

    python benchmarks/training_memory.py [--stage 1|2|3|all] [--quick] [--size 128] [--frames 2,4] [--top N]

``--quick``: tiny models at 32 x 32, a check that the script runs (its figures mean nothing). The
full ``--stage all`` takes ~3 minutes on 2 idle CPU cores and ~15 GB of RAM (the sd15 models: 10 GB).
"""
from __future__ import annotations

import argparse
import dataclasses
import functools
import gc
import time
import weakref
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

GIB = 2 ** 30
GPU_BYTES = 80e9
NUM_GPUS = 8
PAPER_SIZE = 640
#: stage -> (paper global batch, paper frames: stage 1 window / stage 3 clip, or None)
PAPER = {1: (24, 75), 2: (32, None), 3: (8, 24)}
#: A label on everything saved whose size does not depend on the image size (not pixel-scaled).
GRID = "grid"
SEGMENT = "segment:"
#: A label on autocast's bf16 copies of trained weights (accounted as autocast's weight cache instead).
WEIGHT_COPY = "weight copy"


def _trained_weight_copy(t: torch.Tensor) -> bool:
    """True for autocast's low-precision copy of a trained parameter (a cast of an ``nn.Parameter``), or a
    view of one (``F.linear`` saves the transposed copy)."""
    fn = (t._base if t._base is not None else t).grad_fn
    if fn is None or type(fn).__name__ != "ToCopyBackward0":
        return False
    return any(isinstance(getattr(nxt, "variable", None), nn.Parameter) for nxt, _ in fn.next_functions)


class SavedBytes:
    """Counts storages saved for backward (and other live inputs), once each, with the labels active then."""

    def __init__(self, exclude: set[int]):
        self.exclude = exclude
        self.labels: list[str] = []
        self.records: dict[int, dict[str, Any]] = {}
        #: segment name -> its modules, for every checkpointed call seen
        self.checkpointed: dict[str, list[nn.Module]] = {}

    def add(self, t: torch.Tensor, held: Optional[torch.Tensor] = None) -> None:
        """Count ``t``'s storage; ``held`` (default ``t``): the object whose lifetime says whether it is kept."""
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return
        storage = t.untyped_storage()
        ptr = storage.data_ptr()
        if ptr == 0 or ptr in self.exclude:
            return
        record = self.records.get(ptr)
        if record is None or not any(ref() is not None for ref in record["refs"]):
            # new storage (a dead record's address may be reused by a new allocation)
            labels = tuple(self.labels) + ((WEIGHT_COPY,) if _trained_weight_copy(t) else ())
            record = self.records[ptr] = {"bytes": storage.nbytes(), "labels": labels, "refs": [],
                                          "what": (tuple(t.shape), t.dtype, type(t.grad_fn).__name__)}
        record["refs"].append(weakref.ref(t if held is None else held))

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        # keep a detached alias: the same storage, without the reference cycle (node -> saved tensor -> node)
        # that returning ``t`` itself makes for a saved output, which would leak the whole graph
        held = t.detach()
        self.add(t, held)
        return held

    def hooks(self):
        return torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    @contextmanager
    def label(self, name: str) -> Iterator[None]:
        self.labels.append(name)
        try:
            yield
        finally:
            self.labels.pop()

    def alive(self) -> list[dict[str, Any]]:
        """Records with a saved reference still alive (call while the loss is held)."""
        gc.collect()
        return [r for r in self.records.values() if any(ref() is not None for ref in r["refs"])]


def tensors_in(obj: Any) -> Iterator[torch.Tensor]:
    """Every tensor in nested tuples, lists, dicts and dataclasses (e.g. a ReferenceRead's bank)."""
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from tensors_in(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from tensors_in(item)
    elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            yield from tensors_in(getattr(obj, f.name))


def label_modules(counter: SavedBytes, labelled: dict[str, list[nn.Module]]) -> list[Any]:
    """Push ``label`` while any of its modules runs its forward; returns the hook handles."""
    def pop(module: nn.Module, args: Any, output: Any) -> None:
        counter.labels.pop()

    handles = []
    for name, modules in labelled.items():
        for module in modules:
            handles.append(module.register_forward_pre_hook(lambda m, a, _n=name: counter.labels.append(_n)))
            handles.append(module.register_forward_hook(pop))
    return handles


def counting_checkpoint(counter: SavedBytes, names: dict[int, str], original: Callable[..., Any] = checkpoint):
    """``torch.utils.checkpoint.checkpoint`` that counts the inputs it keeps and registers the recomputed modules.

    A segment is named after the modules it runs: the function's (a module, a bound ``__call__``, or a
    ``partial`` over a module: the motion modules') and any module argument (M2PEnc's
    ``checkpoint(_block, conv, attention, x)``).
    """
    def run(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        bound = getattr(function, "args", ()) if isinstance(function, functools.partial) else ()
        modules = [m for m in (getattr(function, "__self__", function), *bound, *args) if isinstance(m, nn.Module)]
        if modules:
            counter.checkpointed["+".join(names.get(id(m), "?") for m in modules)] = modules
        for t in tensors_in((args, kwargs)):
            counter.add(t)
        return original(function, *args, **kwargs)
    return run


@contextmanager
def patched(module: Any, name: str, value: Any) -> Iterator[None]:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


@contextmanager
def checkpointing(counter: SavedBytes, names: dict[int, str], switch_on: Callable[[], None],
                  switch_off: Callable[[], None]) -> Iterator[None]:
    """Turn checkpointing on with the training code's own switch, every ``checkpoint`` call counted."""
    import m2pdance.m2penc.champ.denoising_unet as denoising_unet
    import m2pdance.m2penc.encoder.model as m2penc_model
    import torch.utils.checkpoint as torch_checkpoint

    run = counting_checkpoint(counter, names)
    switch_on()
    try:    # diffusers calls torch.utils.checkpoint.checkpoint; M2PEnc and the motion modules their imported name
        with patched(torch_checkpoint, "checkpoint", run), patched(m2penc_model, "checkpoint", run), \
                patched(denoising_unet, "checkpoint", run):
            yield
    finally:
        switch_off()


@dataclass
class Fit:
    """``bytes(B, F) = fixed + B * (a + c * F)`` for one subset of the saved bytes (c = 0 without frames)."""

    fixed: float
    a: float
    c: float

    def per_sample(self, frames: Optional[int]) -> float:
        return self.a + self.c * (frames or 0)


def fit(m11: float, m21: float, m12: Optional[float], f1: Optional[int], f2: Optional[int]) -> Fit:
    """From ``M(1, f1)``, ``M(2, f1)`` and ``M(1, f2)`` (no frames: the last is None)."""
    per_f1 = m21 - m11
    c = 0.0 if m12 is None else (m12 - m11) / (f2 - f1)
    return Fit(fixed=m11 - per_f1, a=per_f1 - c * (f1 or 0), c=c)


#: A checkpointing row: ``counter -> context manager`` turning it on; None = not implemented.
Variant = Optional[Callable[[SavedBytes], Any]]


@dataclass
class Stage:
    """What the benchmark needs from one stage."""

    number: int
    title: str
    module: nn.Module
    make_batch: Callable[[int, Optional[int], int], dict[str, torch.Tensor]]
    loss: Callable[[dict[str, torch.Tensor]], torch.Tensor]
    #: row name -> checkpointing variant
    variants: dict[str, Variant]
    frames: Optional[tuple[int, int]]
    size: int
    #: modules and batch keys whose saved bytes do not depend on the image size
    grid_modules: list[nn.Module] = dataclasses.field(default_factory=list)
    grid_keys: tuple[str, ...] = ()
    #: context applied in every run (e.g. labels)
    base: Optional[Callable[[SavedBytes], Any]] = None

    @property
    def trained(self) -> int:
        return sum(p.numel() for p in self.module.parameters() if p.requires_grad)

    @property
    def frozen(self) -> int:
        return sum(p.numel() for p in self.module.parameters()) - self.trained

    @property
    def weight_cache(self) -> int:
        """Bytes of autocast's bf16 copies of the trained weights (matrices, kernels), kept until the forward ends."""
        return 2 * sum(p.numel() for p in self.module.parameters() if p.requires_grad and p.ndim >= 2)


@dataclass
class Run:
    """One forward's live bytes: total, the grid (not pixel-scaled) part, per labelled segment; what it checkpointed."""

    values: dict[str, float]
    checkpointed: dict[str, list[nn.Module]]


def measure(stage: Stage, batch_size: int, frames: Optional[int], bf16: bool, variant: Variant,
            segments: dict[str, list[nn.Module]], top: int) -> Run:
    """Run the stage's loss once and count what is kept for the backward (autocast's weight copies apart)."""
    exclude = {t.untyped_storage().data_ptr() for t in list(stage.module.parameters()) + list(stage.module.buffers())}
    counter = SavedBytes(exclude)
    torch.manual_seed(0)
    batch = stage.make_batch(batch_size, frames, stage.size)
    for key, t in batch.items():
        with counter.label(GRID) if key in stage.grid_keys else nullcontext():
            counter.add(t)
    handles = label_modules(counter, {GRID: stage.grid_modules, **{SEGMENT + k: v for k, v in segments.items()}})
    try:
        with ExitStack() as stack:
            if stage.base is not None:
                stack.enter_context(stage.base(counter))
            if variant is not None:
                stack.enter_context(variant(counter))
            stack.enter_context(counter.hooks())
            stack.enter_context(torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16))
            loss = stage.loss(batch)
        records = counter.alive()
    finally:
        for handle in handles:
            handle.remove()
    del loss
    counted = [r for r in records if WEIGHT_COPY not in r["labels"]]
    values = {"total": float(sum(r["bytes"] for r in counted)),
              "grid": float(sum(r["bytes"] for r in counted if GRID in r["labels"]))}
    for name in segments:
        values[SEGMENT + name] = float(sum(r["bytes"] for r in counted if SEGMENT + name in r["labels"]))
    if top:
        print(f"    largest live storages (B={batch_size}, F={frames}, {'bf16' if bf16 else 'fp32'}, "
              f"{'checkpointed' if variant else 'plain'}):")
        for r in sorted(records, key=lambda r: -r["bytes"])[:top]:
            shape, dtype, fn = r["what"]
            print(f"      {r['bytes'] / 2**20:9.1f} MiB  {str(dtype):15} {str(list(shape)):26} {fn:26} "
                  f"{'/'.join(r['labels'])[:60]}")
    return Run(values, counter.checkpointed)


@dataclass
class Result:
    """Bytes at the paper's size and frames."""

    per_sample: float
    fixed: float
    #: segment -> (per sample, fixed) of the labelled segments
    segments: dict[str, tuple[float, float]]
    #: the segments this run recomputes in the backward
    checkpointed: dict[str, list[nn.Module]]


def evaluate(stage: Stage, bf16: bool, variant: Variant, top: int,
             segments: Optional[dict[str, list[nn.Module]]] = None) -> Result:
    """Fit three (stage 2: two) runs to the paper's size and frames."""
    _, paper_frames = PAPER[stage.number]
    segments = segments or {}
    f1, f2 = stage.frames if stage.frames else (None, None)
    runs = [measure(stage, 1, f1, bf16, variant, segments, top), measure(stage, 2, f1, bf16, variant, segments, 0)]
    if stage.frames:
        runs.append(measure(stage, 1, f2, bf16, variant, segments, 0))
    scale = (PAPER_SIZE / stage.size) ** 2

    def fitted(key: str) -> Fit:
        m = [r.values[key] for r in runs]
        return fit(m[0], m[1], m[2] if len(m) > 2 else None, f1, f2)

    grid, whole = fitted("grid"), fitted("total")
    pixel = Fit(whole.fixed - grid.fixed, whole.a - grid.a, whole.c - grid.c)
    per_sample = grid.per_sample(paper_frames) + scale * pixel.per_sample(paper_frames)
    fixed = max(whole.fixed, 0.0) + (stage.weight_cache if bf16 else 0)    # (a fit can give -0.00)
    on_grid = {id(m) for g in stage.grid_modules for m in g.modules()}
    fits = {}
    for name, modules in segments.items():
        seg = fitted(SEGMENT + name)
        factor = 1.0 if all(id(m) in on_grid for m in modules) else scale
        fits[name] = (factor * seg.per_sample(paper_frames), seg.fixed)
    return Result(per_sample, fixed, fits, runs[0].checkpointed)


def report(stage: Stage, top: int) -> None:
    batch, paper_frames = PAPER[stage.number]
    per_gpu = batch // NUM_GPUS
    trained, frozen = stage.trained, stage.frozen
    states = trained * 20 + frozen * 4
    print(f"\nStage {stage.number}: {stage.title}")
    print(f"  paper batch {batch} on {NUM_GPUS} GPUs = {per_gpu} per GPU"
          + (f", {paper_frames} frames" if paper_frames else "")
          + (f", {PAPER_SIZE}x{PAPER_SIZE}" if stage.number != 1 else ""))
    how = "B = 1, 2" + (f"; F = {stage.frames[0]}, {stage.frames[1]} -> {paper_frames}" if stage.frames else "")
    if stage.number != 1:
        how += (f"; measured at {stage.size}x{stage.size}, pixel-dependent part scaled "
                f"x{(PAPER_SIZE / stage.size) ** 2:g} to {PAPER_SIZE}x{PAPER_SIZE}")
    print(f"  fitted from runs at {how}")
    print(f"  model states per GPU: trained {trained / 1e6:.1f}M x 20 B (16 B param+grad+AdamW, 4 B DDP bucket) "
          f"= {trained * 20 / GIB:.1f} GiB; frozen {frozen / 1e6:.1f}M x 4 B (fp32) = {frozen * 4 / GIB:.1f} GiB; "
          f"total {states / GIB:.1f} GiB")
    print(f"  {'':<6}{'checkpointing':<42}{'act/sample':>11}{'fixed':>8}{'recompute':>11}{'per GPU':>9}"
          f"  fits 80 GB  (GiB)")
    for bf16 in (False, True):
        precision = "bf16" if bf16 else "fp32"
        start = time.perf_counter()
        # checkpointed runs first: they say which segments are recomputed; the plain run then sizes them
        checked = {name: evaluate(stage, bf16, v, top) for name, v in stage.variants.items() if v is not None}
        segments = {k: v for result in checked.values() for k, v in result.checkpointed.items()}
        plain = evaluate(stage, bf16, None, top, segments)
        rows = [("none", plain, 0.0)]
        for name, variant in stage.variants.items():
            if variant is None:
                rows.append((name, None, 0.0))
                continue
            result = checked[name]
            # the backward re-runs one segment at a time, for the whole per-GPU batch
            recompute = max((per_gpu * plain.segments[k][0] + plain.segments[k][1] for k in result.checkpointed),
                            default=0.0)
            rows.append((name, result, recompute))
        for name, result, recompute in rows:
            if result is None:
                print(f"  {precision:<6}{name:<42}{'n/a (not implemented)':>30}")
                continue
            total = states + result.fixed + per_gpu * result.per_sample + recompute
            shown = f"{recompute / GIB:11.2f}" if result is not plain else f"{'-':>11}"
            print(f"  {precision:<6}{name:<42}{result.per_sample / GIB:11.2f}{result.fixed / GIB:8.2f}{shown}"
                  f"{total / GIB:9.1f}  {'yes' if total <= GPU_BYTES else 'no'}")
        print(f"  ({precision} rows measured in {time.perf_counter() - start:.0f} s)", flush=True)


def stage1(m2penc: nn.Module, frames: tuple[int, int]) -> Stage:
    from m2pdance.training.stage1 import stage1_loss_fn

    cfg = m2penc.config
    m2penc.requires_grad_(True).train()
    loss_fn = stage1_loss_fn()

    def make_batch(b: int, f: Optional[int], size: int) -> dict[str, torch.Tensor]:
        g = cfg.grid_size
        return {"features": torch.randn(b, f, cfg.in_dim), "guidance": torch.randn(b, f, cfg.guidance_channels, g, g),
                "heatmaps": torch.rand(b, f, cfg.heatmap_channels, g, g)}

    def on() -> None:
        m2penc.gradient_checkpointing = True        # what stage1.build_model sets from the config

    def off() -> None:
        m2penc.gradient_checkpointing = False

    names = {id(m): n for n, m in m2penc.named_modules()}
    return Stage(1, f"M2PEnc ({cfg.in_dim}-d features -> guidance {cfg.guidance_channels}x{cfg.grid_size}x"
                 f"{cfg.grid_size} + {cfg.heatmap_channels} heatmaps per frame), all trained",
                 m2penc, make_batch, lambda batch: loss_fn(m2penc, batch)["loss"],
                 {"as in training (M2PEnc blocks)": lambda counter: checkpointing(counter, names, on, off)},
                 frames, PAPER_SIZE)


def champ_variants(champ: Any, m2penc: nn.Module, module: nn.Module) -> dict[str, Variant]:
    """Checkpointing as training turns it on (:func:`enable_checkpointing`)."""
    from m2pdance.training.champ_stages import enable_checkpointing

    names = {id(m): n for n, m in module.named_modules()}

    def off() -> None:
        champ.denoising_unet.disable_gradient_checkpointing()
        champ.denoising_unet.enable_motion_checkpointing(False)
        champ.reference_unet.disable_gradient_checkpointing()
        m2penc.gradient_checkpointing = False

    return {"as in training (all blocks)":
            lambda counter: checkpointing(counter, names, lambda: enable_checkpointing(champ, m2penc), off)}


def stage2(champ: Any, m2penc: nn.Module, size: int) -> Stage:
    from m2pdance.training.stage2 import Stage2Module

    module = Stage2Module(champ, m2penc, cond_drop=0.0)
    window = 8

    def make_batch(b: int, f: Optional[int], size: int) -> dict[str, torch.Tensor]:
        return {"reference": torch.rand(b, 3, size, size), "target": torch.rand(b, 3, size, size),
                "features": torch.randn(b, window, m2penc.config.in_dim), "frame": torch.full((b,), window // 2)}

    return Stage(2, "Stage2Module (spatial denoising U-Net + ReferenceNet per frame; M2PEnc, VAE, CLIP, motion frozen)",
                 module, make_batch, lambda batch: module(batch)["loss"],
                 champ_variants(champ, m2penc, module), None, size, grid_keys=("features",))


def stage3(champ: Any, m2penc: nn.Module, size: int, frames: tuple[int, int]) -> Stage:
    import m2pdance.training.stage3 as stage3_module

    module = stage3_module.Stage3Module(champ, m2penc, cond_drop=0.0)
    cfg = m2penc.config

    def make_batch(b: int, f: Optional[int], size: int) -> dict[str, torch.Tensor]:
        g = cfg.grid_size
        return {"reference": torch.rand(b, 3, size, size), "frames": torch.rand(b, f, 3, size, size),
                "features": torch.randn(b, f, cfg.in_dim), "guidance": torch.randn(b, f, cfg.guidance_channels, g, g)}

    @contextmanager
    def grid_loss(counter: SavedBytes) -> Iterator[None]:
        """L_guid is computed on M2PEnc's grid: what it saves does not depend on the image size."""
        original = stage3_module.guidance_loss

        def labelled(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            with counter.label(GRID):
                return original(pred, target)
        with patched(stage3_module, "guidance_loss", labelled):
            yield

    # the ReferenceNet runs without gradients in stage 3: nothing of it to checkpoint
    return Stage(3, "Stage3Module (motion modules + M2PEnc on clips; spatial U-Net, ReferenceNet, VAE, CLIP frozen)",
                 module, make_batch, lambda batch: module(batch)["loss"],
                 champ_variants(champ, m2penc, module), frames, size,
                 grid_modules=[m2penc], grid_keys=("features", "guidance"), base=grid_loss)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stage", default="all", choices=["1", "2", "3", "all"])
    parser.add_argument("--quick", action="store_true", help="tiny models at 32x32: checks that the script runs")
    parser.add_argument("--size", type=int, default=None,
                        help="image size measured for stages 2/3, scaled to 640 (default 128; --quick 32)")
    parser.add_argument("--frames", default=None,
                        help="two stage-3 clip lengths measured, extrapolated to 24 (default 2,4; --quick 2,3)")
    parser.add_argument("--window", default=None,
                        help="two stage-1 window lengths measured, extrapolated to 75 (default 8,16; --quick 4,8)")
    parser.add_argument("--top", type=int, default=0, help="also list the N largest live storages of each run type")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    stages = [1, 2, 3] if args.stage == "all" else [int(args.stage)]
    size = args.size or (32 if args.quick else 128)
    clip = tuple(int(v) for v in (args.frames or ("2,3" if args.quick else "2,4")).split(","))
    window = tuple(int(v) for v in (args.window or ("4,8" if args.quick else "8,16")).split(","))
    if len(clip) != 2 or len(window) != 2 or clip[0] == clip[1] or window[0] == window[1]:
        parser.error("--frames and --window take two different lengths, e.g. 2,4")

    from m2pdance.m2penc.champ import build_champ
    from m2pdance.m2penc.encoder.config import M2PEncConfig
    from m2pdance.m2penc.encoder.model import M2PEnc

    start = time.perf_counter()
    preset = "tiny" if args.quick else "paper"
    champ = None
    if any(s in (2, 3) for s in stages):
        champ = build_champ("tiny" if args.quick else "sd15", seed=0)
    # M2PEnc's guidance width must be the U-Net's first block width (320 for sd15: the paper preset's default)
    width = {} if champ is None else {"guidance_channels": champ.denoising_unet.m2p_config.block_out_channels[0]}
    torch.manual_seed(0)
    m2penc = M2PEnc(M2PEncConfig.preset(preset, **width))
    print(f"training memory per GPU, paper presets on {NUM_GPUS} x 80 GB GPUs "
          f"({'QUICK: tiny models, figures meaningless' if args.quick else 'full-size models, random weights'}; "
          f"built in {time.perf_counter() - start:.0f} s)")
    for number in stages:
        if number == 1:
            stage = stage1(m2penc, window)
        elif number == 2:
            stage = stage2(champ, m2penc, size)
        else:
            stage = stage3(champ, m2penc, size, clip)
        report(stage, args.top)
        del stage
        gc.collect()
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
