"""Benchmarks behind ``dragkit bench``: speed and memory of each stage (``speed``), a long session
(``session``), the region warp (``warp``); how well each method really moves a shape in the toy
scenes is :mod:`.toybench`.

Speed runs on random weights (timing does not depend on them): the SD1.5 UNet and VAE architectures
at 512x512, or the tiny test architecture at 128x128. The stages are those of a user's edits: LoRA
training, inversion, the drag, sampling, decoding, each whole edit, and a re-drag that reuses the
LoRA and the inversion (what moving a point re-runs in ComfyUI). ``variants`` run the same stages
before and after each optimisation in one process (:data:`VARIANTS`).
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import os
import resource
import statistics
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable, Iterator

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils

from ..core.compiled import compile_unet_blocks
from ..core.drag import DragConfig
from ..core.errors import DragKitInputError, check_choice
from ..core.files import atomic_write
from ..core.hints import ModelHints
from ..core.inversion import ddim_invert
from ..core.lora import DRAGDIFFUSION_LORA, GOODDRAG_LORA, LoraTrainingConfig, train_lora
from ..core.methods.dragdiffusion import DRAGDIFFUSION, drag_latent
from ..core.methods.gooddrag import AlDDConfig
from ..core.methods.registry import METHODS
from ..core.model import DragModel, default_dtype
from ..core.points import DragPoints
from ..core.sampling import reference_sample
from ..core.sd15 import SD15_LDM_CONFIG

TINY_ARCH = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=2,
    norm_num_groups=32,
)
# SD1.5's VAE (diffusers' AutoencoderKL defaults plus SD's four blocks), and a small one with the same
# 8x scale for the tiny architecture.
SD15_VAE_ARCH = dict(block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
                     down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
TINY_VAE_ARCH = dict(block_out_channels=(32, 32, 32, 32), layers_per_block=1, latent_channels=4,
                     down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)


def random_model(arch: str, device: torch.device) -> tuple[DragModel, int]:
    """A model with random weights, a VAE, and its image size: ``sd15`` (512 px) or ``tiny`` (128 px)."""
    torch.manual_seed(0)
    if arch == "sd15":
        unet = UNet2DConditionModel(**single_file_utils.create_unet_diffusers_config_from_ldm(SD15_LDM_CONFIG, {}))
        vae = AutoencoderKL(**SD15_VAE_ARCH)
        embeds, size, hints = torch.randn(1, 77, 768), 512, ModelHints()
    else:
        unet = UNet2DConditionModel(**TINY_ARCH)
        vae = AutoencoderKL(**TINY_VAE_ARCH)
        embeds, size, hints = torch.randn(1, 4, 16), 128, ModelHints(feature_layers=(1,), guidance_layers=(1, 2))
    model = DragModel(unet=unet.eval().requires_grad_(False), vae=vae.eval().requires_grad_(False),
                      default_embeds=embeds, hints=hints)
    model.to(device, default_dtype(device))
    model.default_embeds = embeds.to(device)
    return model, size


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(function: Callable, device: torch.device) -> tuple[float, object]:
    _synchronize(device)
    start = time.perf_counter()
    result = function()
    _synchronize(device)
    return time.perf_counter() - start, result


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS (kB on Linux)


def full_schedule(config):
    """``config`` with early stopping turned off, so that a timing covers the whole schedule."""
    if isinstance(config, DragConfig):
        return dataclasses.replace(config, stop_distance=0.0)
    if hasattr(config, "patience"):
        return dataclasses.replace(config, drag=full_schedule(config.drag), patience=1_000_000, early_stop=False)
    return config


@dataclasses.dataclass(frozen=True)
class SpeedSettings:
    """What each stage of ``dragkit bench speed`` runs: the papers' defaults (DragDiffusion: 80 LoRA
    steps, 50 DDIM steps inverted to 0.7, 80 drag steps; GoodDrag: 70 LoRA steps, AlDD; DiffEditor:
    no LoRA). Tests shrink them."""

    lora_steps: int = DRAGDIFFUSION_LORA.steps
    gooddrag_lora_steps: int = GOODDRAG_LORA.steps
    drag_steps: int = DRAGDIFFUSION.max_steps
    inversion_steps: int = 50
    aldd: dict = dataclasses.field(default_factory=dict)  # AlDDConfig changes, e.g. fewer rounds
    guidance: dict = dataclasses.field(default_factory=dict)  # RegionalSDEConfig changes


QUICK_SETTINGS = SpeedSettings(lora_steps=2, gooddrag_lora_steps=2, drag_steps=2, inversion_steps=10,
                               aldd=dict(drag_steps=1, rounds=1, steps_per_round=1))
"""Every stage at its smallest: the warm-up (each shape once, and compilation) and the tests."""


@dataclasses.dataclass(frozen=True)
class Variant:
    """One way to run the same stages: ``dragkit bench speed --variants``.

    Attributes:
        mixed_precision: autocast and loss scaling in the drag (:mod:`..core.precision`).
        stop_check_every: the drag's stop check interval (``None``: the device's default).
        read_every_step: read the loss and distance on the host after every step, as DragKit did
            before issue 18 (and as a progress text that shows every step would).
        low_vram: run on a low-VRAM bundle (checkpointing, LoRA one copy at a time).
        compile_mode: compile the UNet blocks (:mod:`..core.compiled`) with this ``torch.compile``
            mode (``"default"`` = ``None``); ``None`` runs eager code.
    """

    mixed_precision: bool = True
    stop_check_every: int | None = None
    read_every_step: bool = False
    low_vram: bool = False
    compile_mode: str | None = None


VARIANTS = {
    "before": Variant(mixed_precision=False, stop_check_every=1, read_every_step=True),
    "default": Variant(),
    "low_vram": Variant(low_vram=True),
    "compiled": Variant(compile_mode="default"),
    "cuda_graphs": Variant(compile_mode="reduce-overhead"),
}
"""``before``: the drag as it ran before issue 18 (no autocast or loss scaling, a stop check and two
host reads per step); ``default``: as it runs now. A compiled variant compiles the shared UNet for
the rest of the run, so ``speed`` runs compiled variants last."""


def _reading_callback(step: int, total: int, info: dict) -> None:
    for key in ("loss", "distance"):
        if isinstance(info.get(key), torch.Tensor):
            float(info[key])


class _Stages:
    """Times stages (seconds, with the GPU's queue drained at both ends) and their peak memory."""

    def __init__(self, device: torch.device):
        self.device, self.rows = device, {}

    def __call__(self, name: str, function: Callable, steps: int | None = None):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        seconds, result = _timed(function, self.device)
        row = {"seconds": seconds}
        if self.device.type == "cuda":
            row["peak_vram_mb"] = _peak_memory_mb(self.device)
        self.rows[name] = row
        if steps:
            self.per_step(name, steps)
        return result

    def per_step(self, name: str, steps: int) -> None:
        self.rows[name].update(steps=steps, seconds_per_step=self.rows[name]["seconds"] / max(steps, 1))


def _run_stages(model: DragModel, size: int, variant: Variant, settings: SpeedSettings, stages: _Stages,
                seeds: Iterator[int]) -> None:
    """Every stage once (LoRA seeds from ``seeds``: a LoRA already trained would be reused, not timed)."""
    device = model.device
    bundle = model.with_low_vram(variant.low_vram)
    callback = _reading_callback if variant.read_every_step else None
    latent = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(0)).to(device)
    points = DragPoints.from_pairs((size, size), [((size * 0.3, size * 0.5), (size * 0.6, size * 0.5))])
    moved = DragPoints.from_pairs((size, size), [((size * 0.3, size * 0.5), (size * 0.55, size * 0.6))])
    mask = torch.zeros(size, size)
    mask[size // 4: 3 * size // 4, size // 8: 7 * size // 8] = 1

    def drag_options(config):
        if isinstance(config, DragConfig):
            return dataclasses.replace(config, mixed_precision=variant.mixed_precision,
                                       stop_check_every=variant.stop_check_every)
        if isinstance(config, AlDDConfig):
            return dataclasses.replace(config, drag=drag_options(config.drag), **settings.aldd)
        return dataclasses.replace(config, **settings.guidance)

    def lora(steps):
        return train_lora(bundle, latent, None, LoraTrainingConfig(steps=steps, seed=next(seeds)), callback=callback)

    def invert(on, strength):
        return ddim_invert(on, latent, num_steps=settings.inversion_steps, strength=strength)

    def method_config(name, on):
        method = METHODS[name]
        config = full_schedule(method.for_model(method.preset(), on))
        if name == "dragdiffusion":
            config = dataclasses.replace(config, max_steps=settings.drag_steps)
        return method, drag_options(config)

    dragdiffusion, drag_config = method_config("dragdiffusion", bundle)
    trained = stages("lora", lambda: lora(settings.lora_steps), settings.lora_steps)
    inversion = stages("inversion", lambda: invert(trained, dragdiffusion.strength))
    stages.per_step("inversion", len(inversion.timesteps))
    dragged = stages("drag", lambda: drag_latent(trained, inversion, points, mask, drag_config, callback=callback))
    stages.per_step("drag", dragged.steps)
    sampled, _ = stages("sampling", lambda: reference_sample(trained, inversion.with_edit(dragged.latent)))
    stages("decode", lambda: trained.decode(sampled))

    def dragdiffusion_edit():
        on = lora(settings.lora_steps)
        start = invert(on, dragdiffusion.strength)
        return on.decode(dragdiffusion.edit(on, start, points, mask, drag_config, callback=callback).latent)

    stages("dragdiffusion_edit", dragdiffusion_edit)
    stages("redrag", lambda: trained.decode(dragdiffusion.edit(trained, inversion, moved, mask, drag_config,
                                                                 callback=callback).latent))

    def gooddrag_edit():
        on = lora(settings.gooddrag_lora_steps)
        method, config = method_config("gooddrag", on)
        return on.decode(method.edit(on, invert(on, method.strength), points, mask, config, callback=callback).latent)

    def diffeditor_edit():  # training-free: no LoRA
        method, config = method_config("diffeditor", bundle)
        return bundle.decode(method.edit(bundle, invert(bundle, method.strength), points, mask, config).latent)

    stages("gooddrag_edit", gooddrag_edit)
    stages("diffeditor_edit", diffeditor_edit)


def environment(device: torch.device) -> dict:
    """What a timing depends on: date, versions, the device."""
    import diffusers
    import peft

    info = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "diffusers": diffusers.__version__,
            "peft": peft.__version__, "device": str(device), "cpu_threads": torch.get_num_threads()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def speed(arch: str = "tiny", device: str | None = None, variants: Iterable[str] = ("default",),
          settings: SpeedSettings = SpeedSettings(), on_variant: Callable[[dict], None] | None = None) -> dict:
    """Seconds and peak memory of every stage, for each variant, on random weights.

    ``on_variant(report)`` runs after each variant with the report so far (the CLI writes its JSON
    then, so a run stopped by a time limit keeps the variants it finished).

    Each variant first runs every stage at :data:`QUICK_SETTINGS` (the warm-up: memory pools,
    kernel choices, and for compiled variants the compilation, reported as ``warm_up``), then at
    ``settings``. Peak memory is ``torch.cuda.max_memory_allocated`` per stage on a GPU, and the
    process's peak resident memory (one figure for the run) on the CPU.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    names = list(variants)
    for name in names:
        check_choice(name, "variant", tuple(VARIANTS))
    names.sort(key=lambda name: VARIANTS[name].compile_mode is not None)  # compiling changes the shared UNet
    model, size = random_model(arch, device)
    report = {"arch": arch, "image_size": size, "dtype": str(model.dtype), "environment": environment(device),
              "settings": dataclasses.asdict(settings), "variants": {}}
    seeds = itertools.count(1)
    compiled_mode = None
    for name in names:
        variant = VARIANTS[name]
        if variant.compile_mode is not None:
            if compiled_mode not in (None, variant.compile_mode):
                raise DragKitInputError(f"`variants`: one compile mode per run, got {compiled_mode!r} and "
                                        f"{variant.compile_mode!r}; run them separately.")
            compiled_mode = variant.compile_mode
            compile_unet_blocks(model.unet, mode=None if variant.compile_mode == "default" else variant.compile_mode)
        warm_up = _Stages(device)
        seconds = time.perf_counter()
        _run_stages(model, size, variant, QUICK_SETTINGS, warm_up, seeds)
        stages = _Stages(device)
        stages.rows["warm_up"] = {"seconds": time.perf_counter() - seconds}
        _run_stages(model, size, variant, settings, stages, seeds)
        report["variants"][name] = {"options": dataclasses.asdict(variant), "stages": stages.rows}
        if on_variant is not None:
            on_variant(report)
    if device.type != "cuda":
        report["peak_rss_mb"] = _peak_memory_mb(device)
    return report


# Loop lengths the sync audit compares: the waits per extra step are what a loop adds per step.
SYNC_AUDIT_LENGTHS = (4, 8)


def sync_audit(arch: str = "sd15", device: str | None = None) -> dict:
    """Host waits per step of each loop on a GPU, counted by CUDA's sync debug mode (it warns at every
    operation that makes the host wait for the GPU, in DragKit, diffusers or torch alike).

    Each loop runs at the two lengths of :data:`SYNC_AUDIT_LENGTHS`; the difference in waits over the
    difference in steps is the waits per step (0 is the goal; the drag's stop check every
    :data:`..core.drag.GPU_STOP_CHECK_EVERY` steps gives 0.25). On the CPU,
    ``tests/test_host_sync.py`` counts DragKit's own reads instead.
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type != "cuda":
        raise DragKitInputError("`dragkit bench syncs` needs a CUDA device: it counts waits with CUDA's sync "
                                "debug mode. On the CPU, tests/test_host_sync.py counts DragKit's own reads.")
    loops = audit_loops(*random_model(arch, device))
    report = {"arch": arch, "environment": environment(device), "lengths": SYNC_AUDIT_LENGTHS, "loops": {}}
    for name, run in loops.items():
        run(SYNC_AUDIT_LENGTHS[0])  # warm-up
        counts = []
        for length in SYNC_AUDIT_LENGTHS:
            torch.cuda.synchronize(device)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                torch.cuda.set_sync_debug_mode("warn")
                try:
                    run(length)
                finally:
                    torch.cuda.set_sync_debug_mode("default")
            counts.append(sum("synchronizing" in str(w.message) for w in caught))
        extra = SYNC_AUDIT_LENGTHS[1] - SYNC_AUDIT_LENGTHS[0]
        report["loops"][name] = {"waits": counts, "waits_per_step": (counts[1] - counts[0]) / extra}
    return report


def audit_loops(model: DragModel, size: int) -> dict[str, Callable[[int], object]]:
    """The loops :func:`sync_audit` counts, each a function of its length (steps, rounds)."""
    device = model.device
    latent = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(0)).to(device)
    points = DragPoints.from_pairs((size, size), [((size * 0.3, size * 0.5), (size * 0.6, size * 0.5))])
    mask = torch.zeros(size, size)
    mask[size // 4: 3 * size // 4, size // 8: 7 * size // 8] = 1
    seeds = itertools.count(1)
    deep = ddim_invert(model, latent, num_steps=50, strength=0.7)
    drag = full_schedule(METHODS["dragdiffusion"].for_model(METHODS["dragdiffusion"].preset(), model))
    aldd = full_schedule(METHODS["gooddrag"].for_model(METHODS["gooddrag"].preset(), model))
    guided = METHODS["diffeditor"].for_model(METHODS["diffeditor"].preset(), model)
    loops = {
        "lora": lambda n: train_lora(model, latent, None, LoraTrainingConfig(steps=n, seed=next(seeds))),
        "inversion": lambda n: ddim_invert(model, latent, num_steps=n, strength=1.0),
        "drag": lambda n: drag_latent(model, deep, points, mask, dataclasses.replace(drag, max_steps=n)),
        "inversion_and_sampling": lambda n: reference_sample(model, ddim_invert(model, latent, num_steps=n, strength=1.0)),
        "gooddrag_rounds": lambda n: METHODS["gooddrag"].edit(model, deep, points, mask, dataclasses.replace(
            aldd, drag_steps=1, rounds=n, steps_per_round=1)),
        "inversion_and_diffeditor": lambda n: METHODS["diffeditor"].edit(
            model, ddim_invert(model, latent, num_steps=n, strength=1.0), points, mask, guided),
    }
    return loops


def speed_table(report: dict) -> str:
    """A markdown table of :func:`speed`'s report: a row per stage, a column per variant."""
    variants = report["variants"]
    stages = list(next(iter(variants.values()))["stages"])
    gpu = "cuda" in report["environment"]["device"]
    header = "| stage | " + " | ".join(variants) + " |"
    lines = [header, "|---|" + "---|" * len(variants)]
    for stage in stages:
        cells = []
        for values in variants.values():
            row = values["stages"].get(stage, {})
            cell = f"{row['seconds']:.2f} s" if "seconds" in row else "-"
            if "seconds_per_step" in row:
                cell += f" ({row['seconds_per_step'] * 1000:.0f} ms/step)"
            if gpu and "peak_vram_mb" in row:
                cell += f", {row['peak_vram_mb'] / 1024:.1f} GB"
            cells.append(cell)
        lines.append(f"| {stage} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _current_rss_mb() -> float:
    """The process's resident memory now (Linux /proc), in MiB; NaN elsewhere."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return float("nan")


def session(images: int = 20, lora_steps: int = 10, calls: int = 20, device: str | None = None) -> list[dict]:
    """A long ComfyUI session in one process: ``images`` LoRAs trained in a row on the embedded toy model.

    After each image, the median milliseconds of one base UNet call and one call with that image's
    LoRA (``calls`` each, after one warm-up), a 10-step inversion with the base model, the adapters
    held, their weights and the process memory.
    """
    from ..core import adapters
    from ..core.model import load_toy_model
    from ..core.scenes import make_scene

    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = load_toy_model(device)
    embeds = model.prompt_embeds(None, 1)
    rows = []
    for image in range(1, images + 1):
        latent = model.encode(make_scene(2_000_000 + image).image[None].to(device))
        edited = train_lora(model, latent, None, LoraTrainingConfig(steps=lora_steps, seed=image))
        row = {"image": image}
        for label, bundle in (("base", model), ("lora", edited)):
            times = []
            with torch.no_grad():
                for _ in range(calls + 1):
                    seconds, _ = _timed(lambda: bundle.predict_noise(latent, 500, embeds), device)
                    times.append(seconds)
            row[f"{label}_call_ms"] = 1000 * sorted(times[1:])[len(times[1:]) // 2]
        seconds, _ = _timed(lambda: ddim_invert(model, latent, num_steps=10, strength=1.0), device)
        row["base_inversion_10_steps_ms"] = 1000 * seconds  # the filed symptom: 298 ms fresh, 766 ms after 20
        loaded = adapters.loaded_adapters(model.unet)
        row["adapters_loaded"] = len(loaded)
        row["adapter_weights_mib"] = sum(p.numel() * p.element_size() for n, p in model.unet.named_parameters()
                                         if "lora_" in n) / 2**20
        row["rss_mib"] = _current_rss_mb()
        rows.append(row)
    return rows


def print_table(rows: dict[str, dict], columns: list[str]) -> None:
    def cell(value) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    width = max(len(name) for name in rows) + 2
    widths = [max(len(column), *(len(cell(values.get(column))) for values in rows.values())) + 2 for column in columns]
    print("method".ljust(width) + "".join(c.rjust(w) for c, w in zip(columns, widths)))
    for name, values in rows.items():
        print(name.ljust(width) + "".join(cell(values.get(c)).rjust(w) for c, w in zip(columns, widths)))


def write_json(path: str | None, data: dict) -> None:
    """Write ``data`` to ``path`` (if given) in one step: an interrupted run leaves any old file whole."""
    if path:
        atomic_write(Path(path), (json.dumps(data, indent=2) + "\n").encode(), "--json")


# Region warp timings: square images, a region of about a tenth of the picture, the drag a tenth of
# the side; one pair (a shift) and three (a spline).
WARP_SIDES = (512, 1024)
WARP_REPEATS = 30


def warp_speed(sides: tuple[int, ...] = WARP_SIDES, repeats: int = WARP_REPEATS) -> list[dict]:
    """Milliseconds per :func:`..core.region_warp.warp_region` call (median and quartiles over
    ``repeats`` after one warm-up), on the CPU in float32."""
    from ..core.region_warp import warp_region

    rows = []
    generator = torch.Generator().manual_seed(0)
    for side in sides:
        image = torch.rand(3, side, side, generator=generator)
        region = torch.zeros(side, side)
        low, high = int(side * 0.35), int(side * 0.65)
        region[low:high, low:high] = 1
        step = side / 10
        centre = side / 2
        pair_sets = {
            "1 pair": [((centre, centre), (centre + step, centre + step / 2))],
            "3 pairs": [((centre, centre), (centre + step, centre + step / 2)),
                        ((low + 4.0, low + 4.0), (low + 4 + step, low + 4 + step / 3)),
                        ((high - 4.0, low + 4.0), (high - 4 + step * 0.8, low + 4 + step))],
        }
        for name, pairs in pair_sets.items():
            points = DragPoints.from_pairs((side, side), pairs)
            warp_region(image, region, points)
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                warp_region(image, region, points)
                times.append((time.perf_counter() - start) * 1000)
            q1, median, q3 = statistics.quantiles(times, n=4)
            rows.append({"image": f"{side}x{side}", "pairs": name, "median_ms": median, "q1_ms": q1, "q3_ms": q3,
                         "repeats": repeats})
    return rows
