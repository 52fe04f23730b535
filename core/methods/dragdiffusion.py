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
UNet runs in the model's dtype with a float32 latent and no GradScaler (the reference uses fp16
autocast and a GradScaler on CUDA only).
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from ..errors import DragKitInputError, check_stage_finite
from ..features import DRAGDIFFUSION_FEATURE_LAYERS, unet_features
from ..inversion import Inversion
from ..masks import as_mask, is_empty, resize_mask
from ..model import DragModel
from ..motion import background_loss, motion_supervision_loss, sample_patches
from ..points import DragPoints
from ..schedule import implied_noise, predicted_x0
from ..tracking import track_points

ProgressCallback = Callable[[int, int, dict], None]


@dataclasses.dataclass
class DragConfig:
    """Latent-optimisation settings. Defaults: DragDiffusion's (``drag_ui.py``, ``drag_utils.py``).

    Attributes:
        feature_layers: UNet decoder features to supervise on (0 = mid block, k = up_blocks[k-1]).
        supervision_scale: supervision grid size over image size (0.5: half resolution).
        learning_rate: Adam learning rate on the latent (0.01).
        max_steps: most optimisation steps (80).
        patch_radius: motion-supervision patch radius r1, grid pixels (1).
        track_radius: tracking window radius r2, grid pixels (3).
        max_step: longest step toward the target per iteration, grid pixels (1 = unit step).
        stop_distance: a handle closer than this to its target has arrived (2.0).
        lam: weight of the keep-the-background term (0.1); 0 turns it off.
        ipms: supervise against the original features at the original handle (GoodDrag's IPMS).
        patch_weight: per-point factor of the patch loss; ``None`` = (2 r1 + 1)^2, or (2 r1)^2 with IPMS
            (each reference code's own factor).
    """

    feature_layers: tuple[int, ...] = DRAGDIFFUSION_FEATURE_LAYERS
    supervision_scale: float = 0.5
    learning_rate: float = 0.01
    max_steps: int = 80
    patch_radius: int = 1
    track_radius: int = 3
    max_step: float = 1.0
    stop_distance: float = 2.0
    lam: float = 0.1
    ipms: bool = False
    patch_weight: float | None = None

    def __post_init__(self):
        self.feature_layers = tuple(int(i) for i in self.feature_layers)
        checks = {
            "learning_rate": self.learning_rate > 0,
            "max_steps": self.max_steps >= 0,
            "patch_radius": self.patch_radius >= 0,
            "track_radius": self.track_radius >= 0,
            "max_step": self.max_step > 0,
            "stop_distance": self.stop_distance >= 0,
            "lam": self.lam >= 0,
            "supervision_scale": 0 < self.supervision_scale <= 1,
            "feature_layers": len(self.feature_layers) > 0,
        }
        for name, ok in checks.items():
            if not ok:
                raise DragKitInputError(f"`{name}` has an invalid value {getattr(self, name)!r}; see its tooltip.")

    @property
    def weight(self) -> float:
        if self.patch_weight is not None:
            return self.patch_weight
        side = 2 * self.patch_radius if self.ipms else 2 * self.patch_radius + 1
        return float(side * side)


DRAGDIFFUSION = DragConfig()
# GoodDrag's IPMS values (bench_gooddrag.py): r1 4, r2 12, beta 4.
DRAGDIFFUSION_IPMS = DragConfig(patch_radius=4, track_radius=12, max_step=4.0, ipms=True)
# Settings a model folder may recommend in its dragkit.json (the toy model does: its 16x16 latent
# is a quarter of SD1.5's, so it supervises at full image size instead of half).
MODEL_SETTINGS = ("feature_layers", "lam", "supervision_scale")


def for_model(config: DragConfig, model: DragModel) -> DragConfig:
    """``config`` with the model's recommended ``feature_layers``, ``lam`` and ``supervision_scale``."""
    recommended = {key: getattr(model.hints, key) for key in MODEL_SETTINGS if getattr(model.hints, key) is not None}
    return dataclasses.replace(config, **recommended)


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


def supervision_grid(image_size: tuple[int, int], scale: float) -> tuple[int, int]:
    """``(rows, cols)`` of the supervision grid for an image of ``(w, h)``."""
    width, height = image_size
    return max(1, round(height * scale)), max(1, round(width * scale))


@dataclasses.dataclass
class DragProblem:
    """What a drag at one timestep compares against, computed once from the original latent.

    Attributes:
        t: the timestep the latent lives at.
        grid: ``(rows, cols)`` of the supervision grid.
        targets: ``(N, 2)`` targets on the grid.
        handles0: ``(N, 2)`` original handles on the grid.
        vectors: ``(N, C)`` original feature at each original handle (for tracking).
        patches: ``(N, C, k, k)`` original patches at the original handles (IPMS), else ``None``.
        prediction: original one-step DDIM prediction of x_{t-1} (background term), else ``None``.
        editable: ``(1, 1, h, w)`` editable mask at latent resolution, or ``None``.
        points: the pairs, checked against the image size.
    """

    t: int
    grid: tuple[int, int]
    targets: torch.Tensor
    handles0: torch.Tensor
    vectors: torch.Tensor
    patches: torch.Tensor | None
    prediction: torch.Tensor | None
    editable: torch.Tensor | None
    points: DragPoints


def prepare_drag(
    model: DragModel,
    original: torch.Tensor,
    t: int,
    embeds: torch.Tensor,
    scheduler,
    points: DragPoints,
    mask: torch.Tensor | None,
    config: DragConfig,
) -> DragProblem:
    """Check the points and mask against the latent and compute the references at timestep ``t``."""
    image_size = model.image_size(original)
    points = points.fit(image_size)
    grid = supervision_grid(image_size, config.supervision_scale)
    editable = None
    if mask is not None and not is_empty(mask):
        editable = resize_mask(as_mask(mask, image_size), original.shape[-2:]).to(model.device)
    use_background = config.lam > 0 and editable is not None
    with torch.no_grad():
        features, noise = unet_features(
            model, original, t, embeds, config.feature_layers, size=grid, return_noise=use_background
        )
        prediction = scheduler.step(noise, t, original).prev_sample if use_background else None
    handles0, targets = (p.to(model.device) for p in points.to_grid(grid))
    handles0 = handles0.clamp(max=torch.tensor([grid[0] - 1, grid[1] - 1], device=model.device))
    return DragProblem(
        t=t,
        grid=grid,
        targets=targets,
        handles0=handles0,
        vectors=sample_patches(features, handles0, 0)[:, :, 0, 0],
        patches=sample_patches(features, handles0, config.patch_radius) if config.ipms else None,
        prediction=prediction,
        editable=editable,
        points=points,
    )


def drag_forward(model: DragModel, z: torch.Tensor, embeds: torch.Tensor, problem: DragProblem, config: DragConfig):
    """Features of ``z`` on the supervision grid, and epsilon when the background term needs it."""
    return unet_features(
        model, z, problem.t, embeds, config.feature_layers, size=problem.grid,
        return_noise=problem.prediction is not None,
    )


def drag_loss(
    features: torch.Tensor,
    noise: torch.Tensor | None,
    z: torch.Tensor,
    handles: torch.Tensor,
    problem: DragProblem,
    scheduler,
    config: DragConfig,
) -> torch.Tensor:
    """Motion supervision plus ``lam`` times the background term (when there is a mask)."""
    loss = motion_supervision_loss(
        features, handles, problem.targets, config.patch_radius, config.max_step,
        problem.patches, config.stop_distance, config.weight,
    )
    if problem.prediction is not None:
        prediction = scheduler.step(noise, problem.t, z).prev_sample
        loss = loss + config.lam * background_loss(prediction, problem.prediction, problem.editable)
    return loss


def remaining_distance(handles: torch.Tensor, problem: DragProblem) -> torch.Tensor:
    """``(N,)`` distance of each handle to its target, grid pixels."""
    return (problem.targets - handles).norm(dim=-1)


def drag_estimate(
    z: torch.Tensor,
    noise: torch.Tensor | None,
    source: torch.Tensor,
    source_x0: torch.Tensor,
    alpha: torch.Tensor,
) -> torch.Tensor:
    """The clean image a drag's current latent stands for, for live previews (no UNet call).

    With the background term the forward pass returns epsilon and this is the DDIM predicted x0 of
    ``z``. Without it the pass stops after the deepest feature layer and there is no epsilon; then
    the source's epsilon stands in, the one linking ``source`` to its clean latent ``source_x0``:
    ``x0 = source_x0 + (z - source) / sqrt(a_t)``, exact for an unmoved latent.

    Args:
        z: ``(1, C, h, w)`` the latent being optimised.
        noise: ``(1, C, h, w)`` epsilon predicted for ``z``, or ``None``.
        source: ``(1, C, h, w)`` the unedited latent at the same timestep.
        source_x0: ``(1, C, h, w)`` the clean latent ``source`` came from.
        alpha: ``alphas_cumprod[t]`` (0-d).

    Returns:
        ``(1, C, h, w)`` float32, detached.
    """
    with torch.no_grad():
        if noise is None:
            noise = implied_noise(source, source_x0, alpha)
        return predicted_x0(z, noise, alpha).float()


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
        callback: ``callback(step, total, {"distance": ...})`` after each step; may raise to cancel.
            ``info["estimate"]`` is :func:`drag_estimate` of the latent the step started from.
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

    z = z0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=config.learning_rate)
    handles = problem.handles0.clone()
    distances: list[float] = []
    steps = 0
    for step in range(config.max_steps):
        # 1. features (and epsilon) of the current latent
        features, noise = drag_forward(model, z, embeds, problem, config)
        # 2. track where the handle content went (the first step has not moved anything yet)
        if step > 0:
            handles = track_points(features, problem.vectors, handles, config.track_radius)
        remaining = remaining_distance(handles, problem)
        distances.append(float(remaining.mean()))
        # 3. every handle has arrived
        if bool((remaining < config.stop_distance).all()):
            break
        # 4. motion supervision + keep the background;  5. one Adam step on the latent
        loss = drag_loss(features, noise, z, handles, problem, scheduler, config)
        if callback is not None:  # before the Adam step changes z in place
            estimate = drag_estimate(z, noise, source, source_x0, alpha)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        steps = step + 1
        if callback is not None:
            callback(steps, config.max_steps,
                     {"distance": distances[-1], "loss": float(loss.detach()), "estimate": estimate})
    else:
        with torch.no_grad():
            features, _ = unet_features(model, z, problem.t, embeds, config.feature_layers, size=problem.grid)
            handles = track_points(features, problem.vectors, handles, config.track_radius)
        distances.append(float(remaining_distance(handles, problem).mean()))
    check_stage_finite(z, "the drag optimisation", "lower learning_rate (DragDiffusion: 0.01) or lam")
    return DragResult(z.detach(), problem.points.from_grid(handles, problem.grid), steps, distances)
