"""The drag loop's primitives, shared by DragDiffusion and GoodDrag: the per-step settings, the
references of one timestep, the forward pass, the loss and the remaining distance.

A *drag problem* is a timestep t, a supervision grid and the references computed once from the
unedited latent at t: the features at the original handles (for tracking), the original patches
(IPMS) and the original one-step prediction (background term). Each optimisation step runs
:func:`drag_forward` on the current latent, tracks, and minimises :func:`drag_loss`;
:mod:`.methods.dragdiffusion` does so at one timestep, :mod:`.methods.gooddrag` at several.
Coordinates are ``(row, col)`` on the supervision grid (see :mod:`.points`).
"""

from __future__ import annotations

import dataclasses

import torch

from . import precision
from .errors import DragKitInputError
from .features import DRAGDIFFUSION_FEATURE_LAYERS, unet_features
from .masks import as_mask, is_empty, resize_mask
from .model import DragModel
from .motion import background_loss, motion_supervision_loss, sample_patches
from .points import DragPoints
from .schedule import implied_noise, predicted_x0


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
        mixed_precision: run the UNet under autocast with loss scaling (:mod:`.precision`); only
            changes anything for half-precision weights or on a GPU.
        gradient_checkpointing: recompute the UNet's activations in the backward pass (less memory,
            about one more forward pass per step, the same gradients).
        stop_check_every: read whether every handle has arrived every this many steps (each read
            waits for the GPU); the result is the same as reading every step, at the cost of up to
            this many minus one wasted steps once. ``None``: every step on the CPU,
            :data:`GPU_STOP_CHECK_EVERY` on a GPU.
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
    mixed_precision: bool = True
    gradient_checkpointing: bool = False
    stop_check_every: int | None = None

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
            "stop_check_every": self.stop_check_every is None or self.stop_check_every >= 1,
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

    def stop_check_interval(self, device: torch.device) -> int:
        """:attr:`stop_check_every`, resolved for ``device``."""
        if self.stop_check_every is not None:
            return self.stop_check_every
        return GPU_STOP_CHECK_EVERY if device.type == "cuda" else 1


# A GPU runs ahead of Python while nothing reads its results; a stop check every step makes Python wait
# for each step to finish before queueing the next. GoodDrag checks every 3 Adam steps (one round).
GPU_STOP_CHECK_EVERY = 4


# Settings a model folder may recommend in its dragkit.json (the toy model does: its 16x16 latent
# is a quarter of SD1.5's, so it supervises at full image size instead of half).
MODEL_SETTINGS = ("feature_layers", "lam", "supervision_scale")


def for_model(config: DragConfig, model: DragModel) -> DragConfig:
    """``config`` with the model's recommended ``feature_layers``, ``lam`` and ``supervision_scale``."""
    recommended = {key: getattr(model.hints, key) for key in MODEL_SETTINGS if getattr(model.hints, key) is not None}
    return dataclasses.replace(config, **recommended)


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


class LatentOptimizer:
    """Adam on a float32 latent under the precision policy (:mod:`.precision`).

    Usage: ``with opt.autocast(): loss = ...(opt.latent)``, then ``opt.step(loss)``.

    Args:
        model: where the latent lives and which dtype the UNet computes in.
        latent: ``(1, C, h, w)`` start value (copied).
        config: ``learning_rate`` and ``mixed_precision``.
        scaler: a loss scaler to share across optimisers (GoodDrag starts a new Adam at every drag
            step but keeps one scale); ``None`` makes one.
    """

    def __init__(self, model: DragModel, latent: torch.Tensor, config: DragConfig,
                 scaler: torch.amp.GradScaler | None = None):
        device = model.device
        self.latent = latent.detach().to(device, torch.float32).clone().requires_grad_(True)
        self.dtype = precision.compute_dtype(model.dtype, device, config.mixed_precision)
        self.device = device
        self.optimizer = torch.optim.Adam([self.latent], lr=config.learning_rate, **precision.optimizer_options(device))
        self.scaler = scaler or precision.grad_scaler(device, self.dtype)

    def autocast(self):
        return precision.autocast(self.device, self.dtype)

    def step(self, loss: torch.Tensor) -> None:
        """One Adam step on the latent down the gradient of ``loss`` (skipped if the scaled gradient overflowed)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()


class FirstArrival:
    """A drag's state at the first step every handle had arrived, kept on the device.

    Whether the handles have arrived is a value on the GPU; reading it makes Python wait for the GPU.
    The loop records every step here (no wait) and reads :attr:`arrived` only every few steps
    (:meth:`DragConfig.stop_check_interval`), then returns the recorded state: the same result as
    stopping at once.
    """

    def __init__(self, latent: torch.Tensor, handles: torch.Tensor):
        self.arrived = torch.zeros((), dtype=torch.bool, device=latent.device)
        self.latent = latent.detach().clone()
        self.handles = handles.clone()
        self.step = torch.zeros((), dtype=torch.long, device=latent.device)

    def record(self, arrived: torch.Tensor, step: int, latent: torch.Tensor, handles: torch.Tensor) -> None:
        """``arrived``: 0-d bool for this step, taken before the step changes ``latent``."""
        first = arrived & ~self.arrived
        self.latent = torch.where(first, latent.detach(), self.latent)
        self.handles = torch.where(first, handles, self.handles)
        self.step = torch.where(first, step, self.step)
        self.arrived = self.arrived | arrived
