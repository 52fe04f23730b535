"""Feature-correspondence regions: from one clicked point, the part of the image that belongs to it.

The DIFT idea (Tang et al., 2023; DragDiffusion's evaluation uses it at t=261 with up-block 1 of
SD2.1): noise the image latent to a small timestep, read a UNet decoder feature map, and compare
every location with the feature at the clicked point by cosine similarity. Locations of the same
object part are similar. The region of a handle is the connected component of
``similarity >= threshold`` that contains the handle, dilated a little; handles are united.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from kornia.contrib import connected_components
from kornia.morphology import dilation

from .errors import DragKitInputError, check_range
from .features import unet_features
from .model import DragModel
from .motion import sample_patches
from .points import DragPoints

DIFT_TIMESTEP = 261


@dataclasses.dataclass
class RegionConfig:
    """Settings of :func:`feature_region`.

    Attributes:
        timestep: DDPM timestep the latent is noised to (DIFT: 261).
        feature_layers: decoder features (DIFT's up-block 1 is DragKit index 2).
        threshold: cosine similarity a location needs to belong to the region, in (-1, 1].
        dilation: pixels to grow the region by (0 = none).
        ensemble: noise draws averaged (DIFT: 8; 1 is much faster and usually enough here).
        seed: seed of the noise.
    """

    timestep: int = DIFT_TIMESTEP
    feature_layers: tuple[int, ...] = (2,)
    threshold: float = 0.6
    dilation: int = 2
    ensemble: int = 1
    seed: int = 0

    def __post_init__(self):
        check_range(self.threshold, "threshold", -1.0, 1.0, low_open=True)
        check_range(float(self.timestep), "timestep", 0, 999)
        if self.dilation < 0 or self.ensemble < 1:
            raise DragKitInputError("`dilation` must be 0 or more and `ensemble` 1 or more.")


def similarity_maps(features: torch.Tensor, centers: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between the feature at each centre and every location.

    Args:
        features: ``(1, C, h, w)``.
        centers: ``(N, 2)`` ``(row, col)`` on the feature grid (sub-pixel, bilinear).

    Returns:
        ``(N, h, w)`` in [-1, 1].
    """
    vectors = sample_patches(features, centers, 0)[:, :, 0, 0]
    return torch.einsum("nc,chw->nhw", F.normalize(vectors, dim=1), F.normalize(features[0], dim=0))


def component_at(binary: torch.Tensor, row: int, col: int) -> torch.Tensor:
    """The 8-connected component of ``binary`` ``(H, W)`` bool containing ``(row, col)``."""
    if not binary[row, col]:
        return torch.zeros_like(binary)
    labels = connected_components(binary[None, None].float(), num_iterations=sum(binary.shape))[0, 0]
    return labels == labels[row, col]


def for_model(config: RegionConfig, model: DragModel) -> RegionConfig:
    """``config`` with the model's recommended region features (``region_layers`` in its dragkit.json)."""
    layers = model.hints.region_layers
    return config if layers is None else dataclasses.replace(config, feature_layers=layers)


def feature_region(
    model: DragModel,
    latent: torch.Tensor,
    points: DragPoints,
    prompt_embeds: torch.Tensor | None = None,
    config: RegionConfig | None = None,
) -> torch.Tensor:
    """``(H, W)`` float mask (image pixels) of the regions that belong to the handles.

    Args:
        model: the bundle.
        latent: ``(1, C, h, w)`` clean image latent (scaled).
        points: the handles (targets are ignored), on the image of the latent.
        prompt_embeds: ``(1, L, D)``; ``None`` for the model's default.
        config: :class:`RegionConfig`.
    """
    config = config or RegionConfig()
    model.check_latent(latent)
    if latent.shape[0] != 1:
        raise DragKitInputError(f"regions are found on one image at a time; the latent has batch {latent.shape[0]}.")
    points = points.fit(model.image_size(latent))
    embeds = model.prompt_embeds(prompt_embeds, config.ensemble)

    # 1. noise the latent to t (a fixed seed: the same click gives the same region)
    generator = torch.Generator(model.device).manual_seed(config.seed)  # drawn where it is used
    noise = torch.randn((config.ensemble, *latent.shape[1:]), generator=generator, device=model.device)
    scheduler = DDPMScheduler.from_config(model.scheduler_config)
    clean = latent.to(model.device, torch.float32).expand(config.ensemble, -1, -1, -1)
    noisy = scheduler.add_noise(clean, noise, torch.tensor([config.timestep]))
    # 2. decoder features, averaged over the ensemble
    with torch.no_grad():
        features, _ = unet_features(model, noisy, config.timestep, embeds, config.feature_layers)
    return region_from_features(features.mean(dim=0, keepdim=True), points, config.threshold, config.dilation)


def handle_similarity(features: torch.Tensor, points: DragPoints) -> torch.Tensor:
    """Cosine similarity of the feature under each handle to every image pixel.

    The handle's feature is read at its sub-cell grid position (:func:`..points.image_to_grid`), and
    the grid-resolution maps are resized bilinearly to the image, so a map peaks around its click.

    Args:
        features: ``(1, C, rows, cols)`` feature map over the points' image.

    Returns:
        ``(N, H, W)`` float32 on the CPU, at the points' image size.
    """
    width, height = points.image_size
    rows, cols = features.shape[-2:]
    handles, _ = points.to_grid((rows, cols), cells=False)
    centers = handles.clamp(min=torch.zeros(2), max=torch.tensor([rows - 1.0, cols - 1.0]))
    similarity = similarity_maps(features.float(), centers.to(features.device))
    return F.interpolate(similarity[None], size=(height, width), mode="bilinear", align_corners=False)[0].cpu()


def region_from_features(features: torch.Tensor, points: DragPoints, threshold: float, grow: int = 0) -> torch.Tensor:
    """Steps 3-4 of :func:`feature_region` on a given ``(1, C, h, w)`` feature map.

    Returns:
        ``(H, W)`` float mask at the points' image size.
    """
    width, height = points.image_size
    # 3. similarity to each handle, at image resolution
    similarity = handle_similarity(features, points)
    # 4. threshold, keep the handle's component, dilate, unite
    region = torch.zeros(height, width, dtype=torch.bool)
    for (x, y), similar in zip(points.handles, similarity):
        row, col = min(int(y), height - 1), min(int(x), width - 1)
        binary = similar >= threshold
        binary[row, col] = True  # the clicked pixel belongs to its own region, whatever the resampling
        region |= component_at(binary, row, col)
    if grow > 0:
        kernel = torch.ones(2 * grow + 1, 2 * grow + 1)
        region = dilation(region[None, None].float(), kernel)[0, 0] > 0.5
    return region.float()
