"""Benchmarks behind ``dragkit bench``: speed and memory of each stage (``speed``), and how well
each method really moves a shape in the toy scenes (``toy``, see :mod:`.toybench`).

Speed runs on random weights (timing does not depend on them): the SD1.5 UNet architecture at
512x512 on a GPU, or the tiny test architecture anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
from diffusers import UNet2DConditionModel
from diffusers.loaders import single_file_utils

from ..core.inversion import ddim_invert
from ..core.lora import LoraTrainingConfig, train_lora
from ..core.drag import DragConfig, for_model
from ..core.methods.dragdiffusion import DRAGDIFFUSION, drag_latent
from ..core.methods.registry import METHODS
from ..core.files import atomic_write
from ..core.hints import ModelHints
from ..core.model import DragModel, default_dtype
from ..core.points import DragPoints
from ..core.schedule import DRAGDIFFUSION_STRENGTH
from ..core.sd15 import SD15_LDM_CONFIG

TINY_ARCH = dict(
    sample_size=8, in_channels=4, out_channels=4, block_out_channels=(32, 64), layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16, attention_head_dim=2,
    norm_num_groups=32,
)


def random_model(arch: str, device: torch.device) -> tuple[DragModel, int]:
    """A model with random weights and its image size: ``sd15`` (512 px) or ``tiny`` (128 px)."""
    torch.manual_seed(0)
    if arch == "sd15":
        unet = UNet2DConditionModel(**single_file_utils.create_unet_diffusers_config_from_ldm(SD15_LDM_CONFIG, {}))
        embeds, size, hints = torch.randn(1, 77, 768), 512, ModelHints()
    else:
        unet = UNet2DConditionModel(**TINY_ARCH)
        embeds, size, hints = torch.randn(1, 4, 16), 128, ModelHints(feature_layers=(1,), guidance_layers=(1, 2))
    model = DragModel(unet=unet.eval().requires_grad_(False), default_embeds=embeds, hints=hints)
    model.to(device, default_dtype(device))
    model.default_embeds = embeds.to(device)
    return model, size


def _timed(function: Callable, device: torch.device) -> tuple[float, object]:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = function()
    if device.type == "cuda":
        torch.cuda.synchronize()
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
        return dataclasses.replace(config, drag=full_schedule(config.drag), patience=1_000_000)
    return config


def speed(arch: str = "tiny", device: str | None = None, drag_steps: int = 10) -> dict:
    """Seconds per step of each stage and the peak memory, on random weights."""
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model, size = random_model(arch, device)
    latent = torch.randn(1, 4, size // 8, size // 8, generator=torch.Generator().manual_seed(0)).to(device)
    points = DragPoints.from_pairs((size, size), [((size * 0.3, size * 0.5), (size * 0.6, size * 0.5))])
    mask = torch.zeros(size, size)
    mask[size // 4: 3 * size // 4, size // 8: 7 * size // 8] = 1
    report = {"arch": arch, "device": str(device), "dtype": str(model.dtype), "image_size": size}

    lora_steps = 5
    seconds, _ = _timed(lambda: train_lora(model, latent, config=LoraTrainingConfig(steps=lora_steps)), device)
    report["lora_s_per_step"] = seconds / lora_steps
    report["lora_80_steps_s"] = report["lora_s_per_step"] * 80

    seconds, inversion = _timed(lambda: ddim_invert(model, latent, num_steps=50, strength=DRAGDIFFUSION_STRENGTH), device)
    report["inversion_s_per_step"] = seconds / len(inversion.timesteps)

    config = dataclasses.replace(full_schedule(for_model(DRAGDIFFUSION, model)), max_steps=drag_steps)
    seconds, result = _timed(lambda: drag_latent(model, inversion, points, mask, config), device)
    report["drag_s_per_step"] = seconds / max(result.steps, 1)
    report["drag_80_steps_s"] = report["drag_s_per_step"] * 80

    # Whole edits, each through its registered method as the nodes run it; the drag methods never
    # stop early (stop_distance 0, patience beyond the schedule) so they time their full schedule.
    for name, key in (("dragdiffusion", "dragdiffusion_edit_s"), ("gooddrag", "gooddrag_edit_s"),
                      ("diffeditor", "diffeditor_edit_s")):
        method = METHODS[name]
        config = full_schedule(method.for_model(method.preset(), model))
        start = ddim_invert(model, latent, num_steps=50, strength=method.strength)
        seconds, _ = _timed(lambda: method.edit(model, start, points, mask, config), device)
        report[key] = seconds
    report["peak_memory_mb"] = _peak_memory_mb(device)
    return report


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
