"""DragDiffusion's latent optimisation (Shi et al., CVPR 2024), with GoodDrag's IPMS as an option.

Reference: ``Yujun-Shi/DragDiffusion`` ``utils/drag_utils.py:drag_diffusion_update``; IPMS from
``zewei-Zhang/GoodDrag`` ``pipeline.py``. Written anew on DragKit's primitives. Notation:
z_t is the inverted latent, F0 the features of the original z_t, F1 those of the current z_t,
p the current handles, p0 the original ones, g the targets (all on the half-resolution grid).

Each step:
1. F1 and (when the mask term is on) epsilon from one UNet pass on the current z_t.
2. From the second step on, track: p <- nearest neighbour of F0[p0] in a window of F1 around p.
3. Stop when every |p - g| < 2.
4. Loss = motion supervision (pull F1 around p + d toward the patch at p) + lambda * sum of
   |x_{t-1}(z_t) - x_{t-1}(original z_t)| outside the editable mask.
5. One Adam step on z_t.

Deliberate differences from the reference code: patches are sampled with ``grid_sample`` and
border padding (the reference clips windows at the border, GoodDrag does not guard at all); the
UNet keeps the model's weights (fp16 on a GPU) where the reference casts it to float32 and runs it
under fp16 autocast with a GradScaler; DragKit uses the same autocast and scaler
(:mod:`..precision`); a point goes to the grid cell that holds it
(:func:`..points.grid_cells`, shared with guidance and regions) where the reference rounds
``y * rows / h``, which picks the next cell for points in the second half of a cell.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from ..attention import ReferenceAttentionConfig
from ..drag import (DragConfig, FirstArrival, LatentOptimizer, drag_estimate, drag_forward, drag_loss, prepare_drag,
                    remaining_distance)
from ..drag import for_model  # noqa: F401 (this method's way to apply a model's hints; the registry reads it)
from ..errors import DragKitInputError, check_stage_finite
from ..features import unet_features
from ..inversion import Inversion
from ..keep import KeepConfig, latent_keep_weights
from ..masks import is_empty
from ..model import DragModel
from ..points import DragPoints
from ..sampling import reference_sample
from ..tracking import track_points
from .result import EditResult

ProgressCallback = Callable[[int, int, dict], None]

DRAGDIFFUSION = DragConfig()
# GoodDrag's IPMS values (bench_gooddrag.py): r1 4, r2 12, beta 4.
DRAGDIFFUSION_IPMS = DragConfig(patch_radius=4, track_radius=12, max_step=4.0, ipms=True)


@dataclasses.dataclass
class DragResult:
    """Outcome of a drag.

    Attributes:
        latent: ``(1, C, h, w)`` optimised z_t.
        points: the input points with the handles where tracking left them (image pixels).
        steps: optimisation steps taken.
        distances: mean remaining handle-target distance (grid pixels) before each step, and at the end.
    """

    latent: torch.Tensor
    points: DragPoints
    steps: int
    distances: list[float]


def drag_latent(
    model: DragModel,
    inversion: Inversion,
    points: DragPoints,
    mask: torch.Tensor | None = None,
    config: DragConfig = DRAGDIFFUSION,
    prompt_embeds: torch.Tensor | None = None,
    callback: ProgressCallback | None = None,
) -> DragResult:
    """Optimise the inverted latent so the content at each handle moves to its target.

    Args:
        model: the bundle (with its LoRA adapter, if any).
        inversion: the DDIM inversion; its start latent (batch 1) is optimised at ``inversion.t``.
        points: pairs in image pixels, on an image of the latent's size times the VAE scale.
        mask: ``(H, W)`` editable region in image pixels (1 = may change); empty or ``None`` drops
            the background term, as DragDiffusion does.
        config: :data:`DRAGDIFFUSION` or :data:`DRAGDIFFUSION_IPMS` or your own.
        prompt_embeds: ``(1, L, D)``; ``None`` uses the inversion's.
        callback: ``callback(step, total, info)`` after each step; may raise to cancel. ``info``:
            ``"distance"`` (mean distance to go, grid pixels) and ``"loss"``, 0-d tensors on the
            model's device (reading one waits for the GPU: read them only to show them), and
            ``"estimate"``, :func:`drag_estimate` of the latent the step started from. Steps run
            after every handle arrived, before the loop looked (``stop_check_every``), are reported too.
    """
    start = inversion.start
    if start.shape[0] != 1:
        raise DragKitInputError(f"drag one image at a time; the latent has batch {start.shape[0]}.")
    embeds = model.prompt_embeds(inversion.prompt_embeds if prompt_embeds is None else prompt_embeds, 1)
    scheduler = model.scheduler(inversion.num_steps)
    z0 = start.to(model.device, torch.float32)
    problem = prepare_drag(model, z0, inversion.t, embeds, scheduler, points, mask, config)
    if callback is not None:  # for live previews' estimates
        alpha = scheduler.alphas_cumprod[inversion.t].to(model.device)
        source, source_x0 = (x.to(model.device, torch.float32) for x in (inversion.source, inversion.latents[0]))

    opt = LatentOptimizer(model, z0, config)
    z = opt.latent
    handles = problem.handles0.clone()
    arrival = FirstArrival(z, handles)
    check_every = config.stop_check_interval(model.device)
    distances: list[torch.Tensor] = []  # 0-d, on the device: read once at the end
    steps = 0
    with model.gradient_checkpointing(config.gradient_checkpointing or model.low_vram):
        for step in range(config.max_steps):
            # 1. features (and epsilon) of the current latent
            with opt.autocast():
                features, noise = drag_forward(model, z, embeds, problem, config)
            # 2. track where the handle content went (the first step has not moved anything yet)
            if step > 0:
                handles = track_points(features, problem.vectors, handles, config.track_radius)
            remaining = remaining_distance(handles, problem)
            distances.append(remaining.mean())
            # 3. every handle has arrived: recorded now, read every few steps
            arrival.record((remaining < config.stop_distance).all(), step, z, handles)
            if step % check_every == 0 and bool(arrival.arrived):
                break
            # 4. motion supervision + keep the background;  5. one Adam step on the latent
            with opt.autocast():
                loss = drag_loss(features, noise, z, handles, problem, scheduler, config)
            if callback is not None:  # before the Adam step changes z in place
                estimate = drag_estimate(z, noise, source, source_x0, alpha)
            opt.step(loss)
            steps = step + 1
            if callback is not None:
                callback(steps, config.max_steps, {"distance": distances[-1], "loss": loss.detach(), "estimate": estimate})
    if bool(arrival.arrived):  # the state at the first arrival, and the distances up to it
        steps = int(arrival.step)
        z, handles, distances = arrival.latent, arrival.handles, distances[: steps + 1]
    else:
        with torch.no_grad(), opt.autocast():
            features, _ = unet_features(model, z, problem.t, embeds, config.feature_layers, size=problem.grid)
        handles = track_points(features, problem.vectors, handles, config.track_radius)
        distances.append(remaining_distance(handles, problem).mean())
    check_stage_finite(z, "the drag optimisation", "lower learning_rate (DragDiffusion: 0.01) or lam")
    return DragResult(z.detach(), problem.points.from_grid(handles, problem.grid), steps,
                      torch.stack(distances).tolist())


@dataclasses.dataclass(kw_only=True)
class DragDiffusionResult(EditResult):
    """A DragDiffusion edit: the clean latent and final points, with the drag stage's own outcome."""

    drag: DragResult | None = None


def edit(
    model: DragModel,
    inversion: Inversion,
    points: DragPoints,
    mask: torch.Tensor | None = None,
    config: DragConfig = DRAGDIFFUSION,
    prompt_embeds: torch.Tensor | None = None,
    callback: ProgressCallback | None = None,
    reference: ReferenceAttentionConfig | None = None,
    keep: KeepConfig | None = None,
) -> DragDiffusionResult:
    """A whole DragDiffusion edit from an inversion: :func:`drag_latent`, then reference sampling.

    The one place the method is assembled. In ComfyUI the two stages are two nodes (Drag
    Optimizer, then Sampler) so that moving a point re-runs the drag only; chained, they compute
    exactly this.

    Args:
        model, inversion, points, mask, config, prompt_embeds: as :func:`drag_latent`.
        callback: progress of the drag stage.
        reference: the sampler's reference attention (``None``: DragDiffusion's).
        keep: keep the source outside the grown ``mask`` while sampling (:mod:`..keep`); ``None`` =
            the paper's sampling.

    Returns:
        the ``(1, C, h, w)`` clean edited latent and where the handles ended.
    """
    dragged = drag_latent(model, inversion, points, mask, config, prompt_embeds, callback)
    weights = latent_keep_weights(model, inversion, mask, keep)
    latent, _ = reference_sample(model, inversion.with_edit(dragged.latent), prompt_embeds, reference, keep=weights)
    return DragDiffusionResult(latent, dragged.points, None if is_empty(mask) else mask, drag=dragged)
