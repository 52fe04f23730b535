"""DragonDiffusion and DiffEditor sampling: energy guidance, memory bank, regional SDE, time travel.

Reference: ``MC-E/DragonDiffusion`` ``src/models/Sampler.py:edit`` (alg ``D`` = DragonDiffusion,
``D+`` = DiffEditor). Step indices i count the denoising steps from the inverted latent (the
reference starts from the fully inverted z_T: strength 1.0).

At each step i with timestep t:

1. Noise prediction of the batch ``[source, edited z_t]`` at t; from ``memory_bank_start`` on the
   edited branch's decoder self-attention also reads the source's keys/values (the memory bank).
   The source is the latent the inversion's UNet call at t received (one step less noisy than the
   inverted z_t): the reference records its memory bank during that inversion call
   (``inversion.py:ddim_loop``, ``iter_cur = 49 - i``). The guidance compares with the inverted z_t.
2. Guidance (i < ``guidance_steps``; DiffEditor: every step below ``dense_steps``, then every
   other step): energy gradients from :mod:`..guidance` are added to the edited noise prediction.
3. DDIM step. The predicted x0 uses the guided noise, the direction term the unguided one (as the
   reference). Regional SDE (DiffEditor, ``sde_steps``): stochastic DDIM with eta ``sde_eta``
   inside the edit region and ``sde_eta_outside`` (0: deterministic) outside, one noise draw.
4. Time travel (DiffEditor, steps ``time_travel_steps``): the step is taken ``time_travel_repeats``
   times, going back to t with one plain DDIM inversion step in between (the reference also
   inverts after the last repeat and discards it; that UNet call is skipped here).

Image prompt (DiffEditor, optional): IP-Adapter attention (:mod:`..image_prompt`) on the edited
branch's noise prediction at steps 10-19, scale 0.1; the source branch, the guidance estimator and
the time-travel inversion run without it.

Not implemented from the reference: classifier-free guidance (both methods use CFG 4 on SD1.5:
connect a negative prompt in a future version).

Deliberately not reproduced (each measured on the toy model, see the faithfulness report):

- the reference's step-0 guidance compares with the handle-copied z_T, because ``process_drag``
  writes the copy into a view of the stored inversion latent; DragKit compares with the inverted z_T.
- the reference copies the handle patch in place, so overlapping handle/target boxes (and later
  pairs) copy already-copied cells (on CUDA the result of that overlapping copy is not defined);
  DragKit copies every cell from the inverted latent.
- move/resize: the reference rounds offsets to whole cells (``int``/floor, differently for the
  latent and the features) and resizes about the image centre; DragKit uses the exact offset
  (bilinear for fractional cells) and resizes about the object's centroid.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

import torch
import torch.nn.functional as F

from ..attention import MemoryBankAttention, attention_edit, decoder_self_attention_layers
from ..errors import DragKitInputError, check_choice, check_range, check_stage_finite
from ..guidance import (
    DRAG_GUIDANCE, GUIDANCE_MODES, MOVE_GUIDANCE, EditGeometry, GuidanceConfig, drag_geometry, guidance, move_geometry,
    object_affine, warp,
)
from ..image_prompt import ImagePrompt, image_prompt
from ..inversion import Inversion
from ..keep import KeepConfig, blend, latent_keep_weights
from ..masks import as_mask, is_empty, rasterize_strokes
from ..model import DragModel
from ..points import DragPoints
from ..schedule import predicted_x0
from .result import EditResult

ProgressCallback = Callable[[int, int, dict], None]


@dataclasses.dataclass
class RegionalSDEConfig:
    """DiffEditor's sampler settings (``Sampler.edit`` defaults, 50 steps from t=981).

    Attributes:
        guidance: energy weights and scales (drag or move defaults).
        guidance_steps: guidance at steps i < this (30).
        dense_steps: every step below this gets guidance, then only even steps (DiffEditor 10;
            DragonDiffusion: equal to ``guidance_steps``, i.e. every step).
        sde_eta: eta inside the edit region on the SDE steps (0.4; 0 = deterministic).
        sde_eta_outside: eta outside it (0).
        sde_steps: ``(first, last)`` steps with regional SDE, inclusive (11, 19).
        time_travel_steps: steps that are repeated with time travel ((22, 24, 26, 28); () = off).
        time_travel_repeats: how many times such a step is taken (3).
        memory_bank: edited self-attention also reads the source's keys/values.
        memory_bank_start: first step with the memory bank (5).
        seed: seed of the SDE noise.
    """

    guidance: GuidanceConfig = dataclasses.field(default_factory=lambda: dataclasses.replace(DRAG_GUIDANCE))
    guidance_steps: int = 30
    dense_steps: int = 10
    sde_eta: float = 0.4
    sde_eta_outside: float = 0.0
    sde_steps: tuple[int, int] = (11, 19)
    time_travel_steps: tuple[int, ...] = (22, 24, 26, 28)
    time_travel_repeats: int = 3
    memory_bank: bool = True
    memory_bank_start: int = 5
    seed: int = 0

    def __post_init__(self):
        check_range(self.sde_eta, "sde_eta", 0.0, 1.0)
        check_range(self.sde_eta_outside, "sde_eta_outside", 0.0, 1.0)
        if self.time_travel_repeats < 1 or self.guidance_steps < 0 or self.memory_bank_start < 0:
            raise DragKitInputError("`time_travel_repeats` must be >= 1; step indices must be >= 0.")


def for_mode(config: RegionalSDEConfig, mode: str) -> RegionalSDEConfig:
    """``config`` with the reference's guidance defaults of ``mode`` (drag, or move and resize)."""
    check_choice(mode, "mode", GUIDANCE_MODES)
    return dataclasses.replace(config, guidance=dataclasses.replace(DRAG_GUIDANCE if mode == "drag" else MOVE_GUIDANCE))


def diffeditor_config(mode: str = "drag") -> RegionalSDEConfig:
    """DiffEditor (alg D+) with the guidance defaults of ``mode``."""
    return for_mode(RegionalSDEConfig(), mode)


def dragondiffusion_config(mode: str = "drag") -> RegionalSDEConfig:
    """DragonDiffusion (alg D): guidance at every step below 30, no SDE, no time travel."""
    return dataclasses.replace(diffeditor_config(mode), dense_steps=30, sde_eta=0.0, time_travel_steps=())


def ddim_step(
    latent: torch.Tensor,
    noise_x0: torch.Tensor,
    noise_direction: torch.Tensor,
    alpha_t: torch.Tensor,
    alpha_prev: torch.Tensor,
    eta: torch.Tensor | float,
    variance_noise: torch.Tensor | None,
) -> torch.Tensor:
    """One DDIM step (Song et al., eq. 12) with separate noise predictions for x0 and the direction.

    ``eta`` may be a tensor broadcast over the latent (regional SDE: eta per pixel).
    """
    x0 = predicted_x0(latent, noise_x0, alpha_t)
    # Zero when going up in noise (an inversion step): then eta must be 0.
    variance = ((1 - alpha_prev) / (1 - alpha_t) * (1 - alpha_t / alpha_prev)).clamp_min(0)
    std = eta * variance**0.5
    previous = alpha_prev**0.5 * x0 + (1 - alpha_prev - std**2) ** 0.5 * noise_direction
    if variance_noise is not None:
        previous = previous + std * variance_noise
    return previous


def initial_latent(latent: torch.Tensor, geometry: EditGeometry, upsample: int) -> torch.Tensor:
    """DragonDiffusion's start: the inverted latent with the content copied to where it should go.

    Drag: the 3x3 latent patch at each handle is copied to its target (``process_drag``). Move and
    resize: the object's latent, warped, is pasted at its destination.
    """
    out = latent.clone()
    rows, cols = latent.shape[-2:]
    if geometry.mode == "drag":
        # the latent cell holding the feature cell (process_drag: y // up_scale), never a rounded one
        for (hr, hc), (tr, tc) in zip(torch.div(geometry.handles, upsample, rounding_mode="floor").long().tolist(),
                                      torch.div(geometry.targets, upsample, rounding_mode="floor").long().tolist()):
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if 0 <= hr + dr < rows and 0 <= hc + dc < cols and 0 <= tr + dr < rows and 0 <= tc + dc < cols:
                        out[..., tr + dr, tc + dc] = latent[..., hr + dr, hc + dc]
        return out
    scale = torch.diag(torch.tensor([1.0 / upsample, 1.0 / upsample, 1.0]))
    lift = torch.diag(torch.tensor([float(upsample), float(upsample), 1.0]))
    affine = torch.cat([geometry.affine[0], torch.tensor([[0.0, 0.0, 1.0]])])
    latent_affine = (scale @ affine @ lift)[:2][None]
    moved = warp(latent, latent_affine)
    destination = warp(torch.ones_like(latent[:, :1]) * F.interpolate(
        geometry.object_mask[None, None].float(), size=(rows, cols), mode="nearest").to(latent),
        latent_affine, "nearest") > 0.5
    return torch.where(destination, moved, out)


def regional_sde_sample(
    model: DragModel,
    inversion: Inversion,
    geometry: EditGeometry,
    config: RegionalSDEConfig | None = None,
    prompt_embeds: torch.Tensor | None = None,
    callback: ProgressCallback | None = None,
    image: ImagePrompt | None = None,
    keep: torch.Tensor | None = None,
) -> torch.Tensor:
    """Denoise ``inversion.start`` with guidance; returns the ``(1, C, h, w)`` clean edited latent.

    ``keep``: ``(1, 1, h, w)`` weights (:func:`..keep.keep_weights`); after every step the latent is
    blended with the source trajectory where they are below 1 (``None`` = the paper's sampling).

    ``image``: an optional image prompt (IP-Adapter) for the edited branch. ``callback(step, total,
    info)`` runs after each step; ``info["estimate"]``, ``(1, C, h, w)`` float32, is the predicted x0
    of the step's last pass (guided noise).
    """
    config = config or RegionalSDEConfig()
    if inversion.start.shape[0] != 1:
        raise DragKitInputError(f"edit one image at a time; the latent has batch {inversion.start.shape[0]}.")
    embeds = model.prompt_embeds(inversion.prompt_embeds if prompt_embeds is None else prompt_embeds, 1)
    pair_embeds = embeds.expand(2, -1, -1)
    scheduler = model.scheduler(inversion.num_steps)
    alphas = scheduler.alphas_cumprod.to(model.device)
    stride = scheduler.config.num_train_timesteps // inversion.num_steps
    timesteps = inversion.denoise_timesteps
    geometry = geometry.to(model.device)  # once: the guidance reads it at every step
    region = geometry.edit_region if geometry.sde_region is None else geometry.sde_region
    generator = torch.Generator(model.device).manual_seed(config.seed)  # drawn where it is used

    bank = MemoryBankAttention("concat" if geometry.mode == "drag" else "replace", config.memory_bank_start)
    sharing = (attention_edit(model.unet, bank, decoder_self_attention_layers(model.unet))
               if config.memory_bank else contextlib.nullcontext())
    latent = inversion.start.to(model.device, torch.float32)
    prompting = image_prompt(model.unet, image) if image is not None else contextlib.nullcontext()
    with sharing, prompting as switch:
        for i, t in enumerate(timesteps):
            bank.step = i
            alpha_t = alphas[t]
            alpha_prev = alphas[t - stride] if t - stride >= 0 else scheduler.final_alpha_cumprod.to(model.device)
            source = inversion.source_at(t).to(model.device, torch.float32)
            bank_source = inversion.source_after(t).to(model.device, torch.float32)
            guided = (config.guidance.energy_scale > 0 and i < config.guidance_steps
                      and (i < config.dense_steps or i % 2 == 0))
            sde = config.sde_steps[0] <= i <= config.sde_steps[1] and (config.sde_eta > 0 or config.sde_eta_outside > 0)
            repeats = config.time_travel_repeats if guided and i in config.time_travel_steps else 1
            for repeat in range(repeats):
                # 1. noise prediction of [source, edited] (memory bank from memory_bank_start)
                if image is not None and image.active_at(i):  # the edited branch only
                    switch.scales = torch.tensor([0.0, image.scale], device=model.device)
                with torch.no_grad():
                    noise = model.predict_noise(torch.cat([bank_source, latent]), t, pair_embeds)[1:]
                if switch is not None:
                    switch.scales = None
                # 2. energy guidance
                info = {"timestep": t}
                guided_noise = noise
                if guided:
                    bank.enabled = False  # the estimator sees no memory bank, as DragonDiffusion's
                    term, info_energy = guidance(model, latent, source, t, embeds, geometry, config.guidance)
                    bank.enabled = True
                    guided_noise = noise + term
                    info.update(info_energy)
                # 3. DDIM step, stochastic inside the edit region on the SDE steps
                eta, variance_noise = 0.0, None
                if sde:
                    eta = config.sde_eta * region + config.sde_eta_outside * (1 - region)
                    variance_noise = torch.randn(latent.shape, generator=generator, device=latent.device)
                previous = ddim_step(latent, guided_noise, noise, alpha_t, alpha_prev, eta, variance_noise)
                # 4. time travel: back to t with one plain inversion step, then take the step again
                if repeat < repeats - 1:
                    bank.enabled = False
                    with torch.no_grad():
                        back = model.predict_noise(previous, t - stride, embeds)
                    bank.enabled = True
                    latent = ddim_step(previous, back, back, alpha_prev, alpha_t, 0.0, None)
            if callback is not None:  # the x0 the (last) step took, for live previews
                info["estimate"] = predicted_x0(latent, guided_noise, alpha_t).detach().float()
            latent = previous.detach()
            if keep is not None:
                latent = blend(latent, inversion.source_after(t), keep)
            if callback is not None:
                callback(i + 1, len(timesteps), info)
    check_stage_finite(latent, "the regional SDE sampling", "lower energy_scale (2000) or the guidance weights")
    return latent


# ------------------------------------------------------------------------------- the whole edit


def for_model(config: RegionalSDEConfig, model: DragModel) -> RegionalSDEConfig:
    """``config`` with the model's recommendations (its dragkit.json): ``guidance_layers``, the energy
    scale times ``energy_scale_factor``, and the step windows ``guidance_steps``, ``sde_steps`` and
    ``time_travel_steps``. Apply it after :func:`for_mode`, which sets the mode's energy scale.

    A window is only taken where the method has one: DragonDiffusion keeps no SDE and no time travel.
    """
    hints = model.hints
    guidance = config.guidance
    if hints.guidance_layers is not None:
        guidance = dataclasses.replace(guidance, feature_layers=tuple(hints.guidance_layers))
    if hints.energy_scale_factor is not None:
        guidance = dataclasses.replace(guidance, energy_scale=guidance.energy_scale * hints.energy_scale_factor)
    changes = {"guidance": guidance}
    if hints.guidance_steps is not None:
        changes["guidance_steps"] = hints.guidance_steps
        if config.dense_steps >= config.guidance_steps:  # DragonDiffusion: every guided step stays dense
            changes["dense_steps"] = hints.guidance_steps
    if hints.sde_steps is not None and (config.sde_eta > 0 or config.sde_eta_outside > 0):
        changes["sde_steps"] = tuple(hints.sde_steps)
    if hints.time_travel_steps is not None and config.time_travel_steps:
        changes["time_travel_steps"] = tuple(hints.time_travel_steps)
    return dataclasses.replace(config, **changes)


def drag_region(points: DragPoints) -> torch.Tensor:
    """The edit region a drag gets when none is painted: a band of 1/8 of the image around each path.

    Returns:
        ``(H, W)`` float mask of the points' image.
    """
    radius = max(points.image_size) / 8
    strokes = [{"mode": "paint", "radius": radius, "points": [list(h), list(t)]}
               for h, t in zip(points.handles, points.targets)]
    return rasterize_strokes(strokes, points.image_size)


def moved_object_region(object_mask: torch.Tensor, offset: tuple[float, float], scale: float) -> torch.Tensor:
    """``(H, W)`` float: the object where it is and where a move/resize puts it (what may change)."""
    inside = object_mask > 0.5
    affine = object_affine(inside, offset, scale)
    moved = warp(inside[None, None].float(), affine, "nearest")[0, 0] > 0.5
    return (inside | moved).float()


def edit(
    model: DragModel,
    inversion: Inversion,
    points: DragPoints | None,
    mask: torch.Tensor | None = None,
    config: RegionalSDEConfig | None = None,
    prompt_embeds: torch.Tensor | None = None,
    callback: ProgressCallback | None = None,
    *,
    mode: str = "drag",
    offset: tuple[float, float] = (0.0, 0.0),
    scale: float = 1.0,
    image: ImagePrompt | None = None,
    keep: KeepConfig | None = None,
) -> EditResult:
    """A DragonDiffusion / DiffEditor edit from an inversion: geometry, start latent, guided sampling.

    The one place the method is assembled; the node, the benchmarks and the library call it.

    Args:
        model: the bundle.
        inversion: from :func:`~dragkit.core.inversion.ddim_invert` (strength 1.0 in the papers).
        points: drag pairs in image pixels (drag; ignored otherwise).
        mask: ``(H, W)`` image-size mask: the edit region (drag; empty = :func:`drag_region`) or the
            object to move (move, resize).
        config: :func:`diffeditor_config` / :func:`dragondiffusion_config` of ``mode``, e.g. through
            :func:`for_model`; ``None`` = DiffEditor's.
        prompt_embeds, callback, image: as :func:`regional_sde_sample`.
        mode: ``"drag"`` (``points`` needed), ``"move"`` or ``"resize"`` (``mask`` of the object needed).
        offset: ``(dx, dy)`` of the object in image pixels (move, resize).
        scale: the object's size factor (resize).
        keep: keep the source outside what may change (drag: the edit region; move, resize: the object
            and where it goes) while sampling (:mod:`..keep`); ``None`` = the paper's sampling.

    Returns:
        the ``(1, C, h, w)`` clean edited latent, and the pairs (drag) or ``None``.
    """
    check_choice(mode, "mode", GUIDANCE_MODES)
    config = config or diffeditor_config(mode)
    start = inversion.start
    latent_size = tuple(start.shape[-2:])
    image_size = model.image_size(start)
    if mode == "drag":
        if points is None:
            raise DragKitInputError("drag mode needs `points`: click a handle and its target in the Point Picker.")
        points = points.fit(image_size)
        editable = drag_region(points) if is_empty(mask) else as_mask(mask, image_size)
        geometry = drag_geometry(torch.tensor(points.handles), torch.tensor(points.targets), editable, latent_size,
                                 image_size, config.guidance)
        changing = editable
    else:
        if is_empty(mask):
            raise DragKitInputError(f"{mode} mode needs a `mask` of the object to {mode}; paint it in the Point Picker.")
        points = None
        factor = scale if mode == "resize" else 1.0
        geometry = move_geometry(as_mask(mask, image_size), offset, factor, latent_size, config.guidance)
        changing = moved_object_region(as_mask(mask, image_size), offset, factor)
    edited = inversion.with_edit(initial_latent(start.to(model.device), geometry, config.guidance.upsample))
    weights = latent_keep_weights(model, inversion, changing, keep)
    latent = regional_sde_sample(model, edited, geometry, config, prompt_embeds, callback, image=image, keep=weights)
    return EditResult(latent, points, changing)
