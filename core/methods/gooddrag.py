"""GoodDrag's Alternating Drag and Denoising (AlDD) with IPMS (Zhang et al., ICLR 2025).

Reference: ``zewei-Zhang/GoodDrag`` ``pipeline.py`` (``good_drag``, ``gooddrag_step``), defaults from
``bench_gooddrag.py``. Written anew on the same primitives as DragDiffusion
(:mod:`..drag`): the motion supervision, tracking and background term are those functions,
run here at several timesteps instead of one.

Instead of all drag steps at t, AlDD drags a little at each of the first T denoising steps:

1. Invert with strength 0.75 (t = 741 of 50 steps).
2. For denoising step i < T at timestep t_i: references (features at the original handles, the
   original one-step prediction) come from the unedited branch at the same t_i (time-matched);
   one tracking round, then B rounds of J Adam steps (IPMS loss + lambda * background term), each
   round followed by tracking with the features of its last forward pass (GoodDrag's one-step lag);
   then one DDIM step of both branches, without attention sharing.
3. Dragging stops for good when all handles arrive (< 2 grid px) or after ``patience`` rounds in
   which no handle moved (``early_stop``; off runs every round of the schedule, see below).
4. The remaining steps denoise ``[source, edited]`` with reference attention, switched on at the
   first step that does not drag (T, or the step after an early stop), as GoodDrag registers
   MasaCtrl only then (``pipeline.py``, the loop of ``good_drag``).

Faithfulness: the official loop (its own functions, run on the embedded toy model with the same
inverted latent, points and settings) and this one agree on the demo and four more held-out scenes:
the same loss at every Adam step (to 1e-5), the same tracked handles every round, the same stop, and
the final latent to 4e-4. Deliberate differences, each measured there:

- Reference-attention layers: MasaCtrl's ``start_layer=10`` assumes SD1.5's 16 self-attention
  layers; on a smaller UNet (the toy's 7) it would share nothing, so DragKit shares the last 6
  (:class:`..attention.ReferenceAttentionConfig`). Taken literally on the toy model, the demo's
  shape dissolves (IoU 0.003).
- Points to the grid: at ``supervision_scale`` 0.5 a point goes to the cell that holds it
  (:func:`..points.grid_cells`); GoodDrag rounds click / 2, one cell off for a quarter of the
  clicks (measured: fraction 0.557 vs 0.584 and 0.428 vs 0.431 on the two scenes where it moved a handle).
- Soft masks weight the background term by ``1 - m``; GoodDrag counts any ``m > 0`` as editable
  (identical on binary masks).
- Borders: tracking windows are clipped and patches padded at the image edge, where the official
  code fails (a handle within r2 of the top or left edge).
- ``early_stop`` is off by default (the paper stops early): every round of the schedule runs. On the
  toy model the tracker reports arrival, or no movement, long before the shape has moved; on the 48
  held-out scenes running every round raised the success rate from 0.19 [0.08, 0.29] to 0.54
  [0.40, 0.69] (paired +0.35 [0.19, 0.52]) at about 4 times the drag time (README, toy benchmark).
  ``AlDDConfig(early_stop=True)`` is the paper's loop, and what the faithfulness runs compared.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable

import torch

from ..attention import ReferenceAttention, ReferenceAttentionConfig, attention_edit, self_attention_layers
from ..errors import DragKitInputError, check_stage_finite
from ..features import unet_features
from ..inversion import Inversion
from ..keep import KeepConfig, blend, latent_keep_weights
from ..masks import is_empty
from ..model import DragModel
from ..points import DragPoints
from ..tracking import track_points
from ..drag import (DragConfig, LatentOptimizer, drag_estimate, drag_forward, drag_loss, prepare_drag,
                    remaining_distance)
from ..drag import for_model as drag_for_model
from .result import EditResult

ProgressCallback = Callable[[int, int, dict], None]

# GoodDrag's drag settings (bench_gooddrag.py): lr 0.02, r1 4, r2 12, beta 4, lambda 0.1, IPMS.
GOODDRAG_DRAG = DragConfig(learning_rate=0.02, patch_radius=4, track_radius=12, max_step=4.0, lam=0.1, ipms=True)


@dataclasses.dataclass
class AlDDConfig:
    """AlDD schedule. Defaults: GoodDrag's benchmark script, except ``early_stop``.

    Attributes:
        drag: the per-step drag settings (IPMS, lr 0.02, r1 4, r2 12, beta 4, lambda 0.1).
        drag_steps: T, the first denoising steps that get drag rounds (7).
        rounds: B, tracking rounds per drag step (10).
        steps_per_round: J, Adam steps before each tracking round (3).
        patience: stop dragging after this many rounds in which no handle moved (5).
        early_stop: stop dragging for good when every handle has arrived or after ``patience`` still
            rounds (GoodDrag's loop: True). False (the default, beyond the paper: it won on the toy
            benchmark's intervals) runs every round of the schedule.
        reference: reference attention for the steps after the drag phase.
    """

    drag: DragConfig = dataclasses.field(default_factory=lambda: dataclasses.replace(GOODDRAG_DRAG))
    drag_steps: int = 7
    rounds: int = 10
    steps_per_round: int = 3
    patience: int = 5
    early_stop: bool = False
    reference: ReferenceAttentionConfig = dataclasses.field(default_factory=ReferenceAttentionConfig)

    def __post_init__(self):
        for name in ("drag_steps", "rounds", "steps_per_round", "patience"):
            if getattr(self, name) < 0 or (name == "patience" and self.patience < 1):
                raise DragKitInputError(f"`{name}` must be {'1' if name == 'patience' else '0'} or more, got {getattr(self, name)}.")


def for_model(config: AlDDConfig, model: DragModel) -> AlDDConfig:
    """``config`` with the model's recommended drag settings (:func:`..drag.for_model`)."""
    return dataclasses.replace(config, drag=drag_for_model(config.drag, model))


@dataclasses.dataclass(kw_only=True)
class AlDDResult(EditResult):
    """Outcome of an AlDD edit: the clean edited latent and the pairs with the handles where
    tracking left them (image pixels), and

    Attributes:
        source: ``(1, C, h, w)`` clean reconstruction of the source branch.
        rounds: tracking rounds run (at most ``drag_steps * rounds``).
        distances: mean remaining distance (grid pixels) after each round.
        stopped: why dragging ended: "arrived", "no movement" or "schedule".
    """

    source: torch.Tensor
    rounds: int
    distances: list[float]
    stopped: str


def progress_steps(config: AlDDConfig, inversion: Inversion) -> int:
    """How many callbacks :func:`edit` makes at most: every round of every drag step, then every
    denoising step."""
    timesteps = len(inversion.denoise_timesteps)
    return min(config.drag_steps, timesteps) * config.rounds + timesteps


def edit(
    model: DragModel,
    inversion: Inversion,
    points: DragPoints,
    mask: torch.Tensor | None = None,
    config: AlDDConfig | None = None,
    prompt_embeds: torch.Tensor | None = None,
    callback: ProgressCallback | None = None,
    keep: KeepConfig | None = None,
) -> AlDDResult:
    """A whole GoodDrag edit: drag while denoising from ``inversion.t`` to 0 (the module docstring
    gives the schedule). The one place the method is assembled; the AlDD Sampler node and the
    benchmarks call it.

    Args:
        model: the bundle (pair it with a LoRA trained with the GoodDrag preset).
        inversion: DDIM inversion (GoodDrag: strength 0.75); batch 1.
        points: pairs in image pixels on the image of the latent.
        mask: ``(H, W)`` editable region (1 = may change); empty or ``None`` drops the background term.
        config: :class:`AlDDConfig` (GoodDrag's defaults).
        prompt_embeds: ``(1, L, D)``; ``None`` uses the inversion's (GoodDrag: the empty prompt).
        callback: ``callback(step, total, info)`` after each round and each denoising step;
            ``info["estimate"]``, ``(1, C, h, w)`` float32, is the edited branch's predicted x0 (in a
            round: :func:`.dragdiffusion.drag_estimate` from its last forward pass); a round's
            ``info["distance"]`` is a 0-d tensor on the model's device (read it only to show it).
        keep: keep the source outside the grown ``mask`` (:mod:`..keep`); ``None`` = the paper's sampling.
    """
    config = config or AlDDConfig()
    drag = config.drag
    if inversion.start.shape[0] != 1:
        raise DragKitInputError(f"drag one image at a time; the latent has batch {inversion.start.shape[0]}.")
    embeds = model.prompt_embeds(inversion.prompt_embeds if prompt_embeds is None else prompt_embeds, 1)
    pair_embeds = embeds.expand(2, -1, -1)
    scheduler = model.scheduler(inversion.num_steps)
    timesteps = inversion.denoise_timesteps
    drag_steps = min(config.drag_steps, len(timesteps))
    total = progress_steps(config, inversion)
    progress = 0  # rounds reported so far

    source = inversion.source.to(model.device, torch.float32)
    edited = inversion.start.to(model.device, torch.float32)
    handles = None
    final_points = points
    distances: list[torch.Tensor] = []  # 0-d, on the device: read once at the end
    rounds_run, unchanged, stopped = 0, 0, "schedule"
    scaler = None  # one loss scale for every drag step
    dragging = drag_steps > 0 and config.rounds > 0
    keep = latent_keep_weights(model, inversion, mask, keep)

    reference = config.reference
    edit = ReferenceAttention(start_step=drag_steps + reference.start_step)
    layers = reference.layer_indices(len(self_attention_layers(model.unet)))
    sharing = attention_edit(model.unet, edit, layers) if reference.enabled else contextlib.nullcontext()
    checkpointing = model.gradient_checkpointing(drag.gradient_checkpointing or model.low_vram)
    with sharing, checkpointing:
        for i, t in enumerate(timesteps):
            edit.step = i
            if dragging and i < drag_steps:
                # Time-matched references from the unedited branch at this step.
                problem = prepare_drag(model, source, t, embeds, scheduler, points, mask, drag)
                final_points = problem.points
                if handles is None:
                    handles = problem.handles0.clone()
                opt = LatentOptimizer(model, edited, drag, scaler)
                scaler, z = opt.scaler, opt.latent
                alpha = scheduler.alphas_cumprod[t].to(model.device)
                estimate = None
                with torch.no_grad(), opt.autocast():  # features only: the pass stops after the deepest layer
                    features, _ = unet_features(model, z, problem.t, embeds, drag.feature_layers, size=problem.grid)
                handles = track_points(features, problem.vectors, handles, drag.track_radius)
                for _ in range(config.rounds):
                    if config.early_stop and bool((remaining_distance(handles, problem) < drag.stop_distance).all()):
                        dragging, stopped = False, "arrived"
                        break
                    for _ in range(config.steps_per_round):
                        with opt.autocast():
                            features, noise = drag_forward(model, z, embeds, problem, drag)
                            loss = drag_loss(features, noise, z, handles, problem, scheduler, drag)
                        if callback is not None:  # before the Adam step changes z in place
                            estimate = drag_estimate(z, noise, source, inversion.latents[0].to(source), alpha)
                        opt.step(loss)
                    # Track with the features of the last forward pass (before its Adam step), as GoodDrag.
                    moved = track_points(features.detach(), problem.vectors, handles, drag.track_radius)
                    if config.early_stop:  # the only reason to look at the handles on the host
                        unchanged = unchanged + 1 if torch.equal(moved, handles) else 0
                    handles = moved
                    rounds_run += 1
                    distances.append(remaining_distance(handles, problem).mean())
                    progress += 1
                    if callback is not None:
                        info = {"round": rounds_run, "distance": distances[-1]}
                        if estimate is not None:  # None only with zero steps per round
                            info["estimate"] = estimate
                        callback(progress, total, info)
                    if config.early_stop and unchanged >= config.patience:
                        dragging, stopped = False, "no movement"
                        break
                edited = z.detach()
                if not dragging:  # GoodDrag registers MasaCtrl at the first step that does not drag
                    edit.start_step = min(edit.start_step, i + 1 + reference.start_step)
            # One DDIM step of both branches (batched).
            with torch.no_grad():
                pair = torch.cat([source, edited])
                noise = model.predict_noise(pair, t, pair_embeds)
                output = scheduler.step(noise, t, pair)
                source, edited = output.prev_sample.float().chunk(2)
                if keep is not None:
                    edited = blend(edited, inversion.source_after(t), keep)
            if callback is not None:
                callback(drag_steps * config.rounds + i + 1, total,
                         {"timestep": t, "estimate": output.pred_original_sample[1:].float()})
    if handles is not None:
        final_points = final_points.from_grid(handles, problem.grid)
    check_stage_finite(edited, "AlDD sampling", "lower learning_rate (GoodDrag: 0.02) or lam")
    return AlDDResult(edited, final_points, None if is_empty(mask) else mask, source=source, rounds=rounds_run,
                      distances=torch.stack(distances).tolist() if distances else [], stopped=stopped)
