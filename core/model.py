"""The model bundle every DragKit method runs on, and the ways to build one.

A :class:`DragModel` holds a diffusers ``UNet2DConditionModel``, the DDIM schedule, the latent
scale factor and a device/dtype policy: half-precision weights on a GPU, float32 on the CPU, and
latents always float32 (they are what drag methods optimise). Optionally it carries a VAE (for use
outside ComfyUI), a default prompt embedding (the embedded toy model has no text encoder) and the
settings recommended for the model (:class:`~.hints.ModelHints`).

Bundles are cheap views: :meth:`DragModel.with_adapter` returns a new bundle over the same UNet
that activates a named peft LoRA adapter while it runs, so the input bundle keeps behaving exactly
as before (ComfyUI caches node outputs and may hand the same object to other nodes).

Three sources, all offline:

- a diffusers folder (``unet/``, optional ``vae/``, ``scheduler/``, ``conditioning.safetensors``,
  ``dragkit.json``): :func:`load_diffusers_folder`;
- a single-file SD1.5 checkpoint in LDM format: :func:`load_single_file`;
- an LDM-format UNet state dict, e.g. from a ComfyUI MODEL: :func:`from_ldm_state_dict`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import logging
from pathlib import Path
from typing import Iterator

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from diffusers.loaders import single_file_utils
from safetensors.torch import load_file

from .adapters import AdapterWeights, activate, ensure_loaded
from .errors import DragKitInputError, DragKitModelError, check_finite, check_shape
from .hints import ModelHints
from .limits import check_image_side, check_latent_side
from .schedule import SD15_DDIM_CONFIG, make_ddim
from .sd15 import LDM_UNET_PREFIX, LDM_VAE_PREFIX, SD15_LATENT_SCALE, SD15_LDM_CONFIG, SD15_VAE_SCALE

logger = logging.getLogger(__name__)

TOY_MODEL_PATH = Path(__file__).resolve().parent.parent / "assets" / "toy_model"
SETTINGS_FILE = "dragkit.json"
CONDITIONING_FILE = "conditioning.safetensors"
# Largest |value| of a scaled latent DragKit accepts. VAE latents of real images stay within about
# +-5 after scaling (SD1.5: 0.18215); much larger values make the DDIM inversion overflow to NaN.
MAX_LATENT_ABS = 100.0


def default_dtype(device: torch.device | str) -> torch.dtype:
    """Weights in float16 on a GPU (memory, speed), float32 on the CPU (fp16 matmuls are slow there)."""
    return torch.float16 if torch.device(device).type == "cuda" else torch.float32


@dataclasses.dataclass(eq=False)
class DragModel:
    """A UNet with everything needed to invert, drag and sample with it.

    Attributes:
        unet: diffusers UNet predicting epsilon; it is never modified by DragKit except for
            added (named, inactive by default) LoRA adapters and temporary attention processors.
        latent_scale: factor from ComfyUI's unscaled LATENT to the UNet's latent space
            (0.18215 for SD1.5).
        scheduler_config: DDIM scheduler config (:data:`~.schedule.SD15_DDIM_CONFIG` for SD1.5).
        vae: optional ``AutoencoderKL``; ComfyUI graphs use their own VAE nodes instead.
        default_embeds: optional ``(1, L, D)`` prompt embedding used when no conditioning is given.
        hints: what the model recommends to the methods (feature layers, lam, ...): :class:`~.hints.ModelHints`.
        adapter: name of the peft adapter this bundle activates while it runs; ``None`` = base.
        name: a label for logs and errors.
        adapter_weights: a CPU copy of the adapter, to put it back if the bounded adapter cache
            evicted it (:mod:`.adapters`); ``None`` for the base bundle.
        low_vram: trade speed for GPU memory in every stage run on this bundle: gradient
            checkpointing in the drag and the LoRA training, the LoRA batch one copy at a time
            (gradients accumulated), and the VAE on the CPU except while it encodes or decodes.
            Results stay equal within float rounding.
    """

    unet: UNet2DConditionModel
    latent_scale: float = SD15_LATENT_SCALE
    scheduler_config: dict = dataclasses.field(default_factory=lambda: dict(SD15_DDIM_CONFIG))
    vae: AutoencoderKL | None = None
    default_embeds: torch.Tensor | None = None
    hints: ModelHints = dataclasses.field(default_factory=ModelHints)
    adapter: str | None = None
    name: str = "model"
    adapter_weights: AdapterWeights | None = None
    low_vram: bool = False

    # ----------------------------------------------------------------------------- properties
    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """The UNet's compute dtype (latents stay float32)."""
        return next(self.unet.parameters()).dtype

    @property
    def latent_channels(self) -> int:
        return int(self.unet.config.in_channels)

    @property
    def cross_attention_dim(self) -> int:
        return int(self.unet.config.cross_attention_dim)

    @property
    def vae_scale(self) -> int:
        """Image pixels per latent pixel (8 for SD1.5)."""
        if self.vae is not None:
            return 2 ** (len(self.vae.config.block_out_channels) - 1)
        return self.hints.vae_scale or SD15_VAE_SCALE

    def image_size(self, latent: torch.Tensor) -> tuple[int, int]:
        """``(width, height)`` in pixels of the image a ``(..., h, w)`` latent stands for."""
        return latent.shape[-1] * self.vae_scale, latent.shape[-2] * self.vae_scale

    # ------------------------------------------------------------------------------- variants
    def with_adapter(self, adapter: str | None, weights: AdapterWeights | None = None) -> "DragModel":
        """A new bundle over the same UNet that runs with peft adapter ``adapter`` active."""
        return dataclasses.replace(self, adapter=adapter, adapter_weights=weights)

    def to(self, device: torch.device | str, dtype: torch.dtype | None = None) -> "DragModel":
        """Move the weights (in place: bundles share one UNet) following the dtype policy."""
        dtype = dtype or default_dtype(device)
        if dtype != self.dtype:
            self.unet.to(dtype=dtype)
        self.unet.to(device)
        if self.vae is not None:
            # The SD VAE overflows in fp16 on some images; keep it float32.
            if self.vae.dtype != torch.float32:
                self.vae.to(dtype=torch.float32)
            self.vae.to(device)
        return self

    def with_low_vram(self, low_vram: bool = True) -> "DragModel":
        """A new bundle over the same UNet with :attr:`low_vram` set. Low-VRAM: the VAE (shared with
        the other bundles over it) waits on the CPU and goes to the GPU only to encode or decode."""
        if low_vram and self.vae is not None:
            self.vae.to("cpu")
        return dataclasses.replace(self, low_vram=low_vram)

    def scheduler(self, num_steps: int):
        return make_ddim(self.scheduler_config, num_steps)

    # --------------------------------------------------------------------------------- checks
    def check_latent(self, latent: torch.Tensor, name: str = "latent") -> None:
        """A latent must be (B, C, h, w) with the UNet's channel count and finite values."""
        check_shape(latent, "B C H W", name)
        if 0 in latent.shape:
            raise DragKitInputError(f"`{name}` is empty (shape {tuple(latent.shape)}); connect the encoded image.")
        check_latent_side(latent.shape[-1], latent.shape[-2], name)
        if latent.shape[1] != self.latent_channels:
            raise DragKitInputError(
                f"`{name}` has {latent.shape[1]} channels but the model `{self.name}` expects "
                f"{self.latent_channels}; encode the image with this model's VAE (SD1.5 latents have 4)."
            )
        check_finite(latent, name)
        peak = float(latent.abs().max())
        if peak > MAX_LATENT_ABS:
            raise DragKitInputError(
                f"`{name}` has values up to {peak:.3g}, far beyond a VAE latent's (|x| below about "
                f"{MAX_LATENT_ABS:g}); encode the image with this model's VAE (VAE Encode)."
            )

    def prompt_embeds(self, embeds: torch.Tensor | None, batch: int = 1) -> torch.Tensor:
        """Validate a ``(1 or B, L, D)`` prompt embedding, or fall back on the model's default.

        Returns:
            ``(batch, L, D)`` on the model's device and dtype.
        """
        if embeds is None:
            if self.default_embeds is None:
                raise DragKitInputError(
                    f"The model `{self.name}` needs a prompt: connect a CONDITIONING "
                    "(CLIP Text Encode; an empty prompt is fine)."
                )
            embeds = self.default_embeds
        check_shape(embeds, "B L D", "conditioning")
        if embeds.shape[-1] != self.cross_attention_dim:
            raise DragKitInputError(
                f"`conditioning` has width {embeds.shape[-1]} but the model `{self.name}` expects "
                f"{self.cross_attention_dim}; encode the prompt with this model's CLIP (SD1.5: 768)."
            )
        if embeds.shape[0] not in (1, batch):
            raise DragKitInputError(
                f"`conditioning` has batch {embeds.shape[0]} but the latent has batch {batch}; use one prompt."
            )
        return embeds.to(self.device, self.dtype).expand(batch, -1, -1)

    # -------------------------------------------------------------------------------- running
    @contextlib.contextmanager
    def active(self, trainable: bool = False) -> Iterator[UNet2DConditionModel]:
        """The UNet running with this bundle's adapter (or none).

        Switching happens only when the UNet last ran another adapter (:func:`.adapters.activate`),
        so a stage of many calls costs one switch at most. An adapter the bounded cache evicted is
        put back from the bundle's own copy. ``trainable``: the adapter's weights require grad.
        """
        if self.adapter is not None:
            ensure_loaded(self.unet, self.adapter, self.adapter_weights)
        if getattr(self.unet, "peft_config", None) or self.adapter is not None:
            activate(self.unet, self.adapter, trainable)
        yield self.unet

    @contextlib.contextmanager
    def gradient_checkpointing(self, enabled: bool = True) -> Iterator[None]:
        """Inside, the UNet recomputes each block's activations in the backward pass instead of
        storing them (diffusers' checkpointing: less memory, one more forward per backward, the same
        gradients). Leaves the UNet's own setting as it was."""
        unet = self.unet
        switch = enabled and not unet.is_gradient_checkpointing
        if switch:
            unet.enable_gradient_checkpointing()
        try:
            yield
        finally:
            if switch:
                unet.disable_gradient_checkpointing()

    def timestep(self, timestep: int) -> torch.Tensor | int:
        """DDPM ``timestep`` as a 0-d tensor on the model's device, for the UNet.

        Given a Python number, diffusers' UNet makes a one-element tensor on the latent's device at
        every call: a copy from the host that waits for the GPU. This is a view into one table of
        every timestep, made on the device once. A timestep outside the table is returned as it was.
        """
        if isinstance(timestep, torch.Tensor):
            return timestep
        table = _timestep_table(self.device, int(self.scheduler_config.get("num_train_timesteps", 1000)))
        return table[int(timestep)] if 0 <= timestep < len(table) else timestep

    def predict_noise(self, latent: torch.Tensor, timestep: int, embeds: torch.Tensor) -> torch.Tensor:
        """Epsilon prediction ``(B, C, h, w)`` in float32 for a float32 latent at DDPM ``timestep``."""
        with self.active() as unet:
            eps = unet(latent.to(self.dtype), self.timestep(timestep), encoder_hidden_states=embeds).sample
        return eps.float()

    # ------------------------------------------------------------------------------------ VAE
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` image in [0, 1] -> ``(B, C, H/s, W/s)`` scaled latent (posterior mean)."""
        vae = self._require_vae()
        check_shape(image, "B 3 H W", "image")
        height, width = image.shape[-2:]
        check_image_side(width, height)
        if height % self.vae_scale or width % self.vae_scale:
            raise DragKitInputError(
                f"`image` is {width}x{height}; both sides must be multiples of {self.vae_scale} for this "
                f"model's VAE: resize or crop it (e.g. to {width // self.vae_scale * self.vae_scale}x"
                f"{height // self.vae_scale * self.vae_scale})."
            )
        check_finite(image, "image")
        with torch.no_grad(), self._vae_on_device(vae):
            pixels = image.to(self.device, torch.float32) * 2 - 1
            mean = vae.encode(pixels).latent_dist.mean
        return mean.float() * self.latent_scale

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Scaled latent ``(B, C, h, w)`` -> image ``(B, 3, h*s, w*s)`` in [0, 1]."""
        vae = self._require_vae()
        self.check_latent(latent)
        with torch.no_grad(), self._vae_on_device(vae):
            pixels = vae.decode(latent.to(self.device, torch.float32) / self.latent_scale).sample
        return ((pixels.float() + 1) / 2).clamp(0, 1)

    @contextlib.contextmanager
    def _vae_on_device(self, vae: AutoencoderKL) -> Iterator[None]:
        """The VAE on the model's device inside; with :attr:`low_vram`, back on the CPU after (the
        stages between encoding and decoding never use it)."""
        vae.to(self.device)
        try:
            yield
        finally:
            if self.low_vram:
                vae.to("cpu")

    def _require_vae(self) -> AutoencoderKL:
        if self.vae is None:
            raise DragKitInputError(
                f"The model `{self.name}` has no VAE; in ComfyUI use VAE Encode / VAE Decode nodes."
            )
        return self.vae


@functools.lru_cache(maxsize=8)
def _timestep_table(device: torch.device, count: int) -> torch.Tensor:
    """``arange(count)`` on ``device``, made once (outside inference mode: ComfyUI runs nodes inside it)."""
    with torch.inference_mode(False):
        return torch.arange(count, device=device)


# ------------------------------------------------------------------------------------ loading
def _missing(path: Path, what: str) -> DragKitModelError:
    return DragKitModelError(
        f"{what} not found at '{path}'. Put SD1.5 checkpoints (.safetensors) in ComfyUI's "
        "models/checkpoints folder or diffusers folders in models/diffusers, or give the full path."
    )


def load_model(path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> DragModel:
    """Load a diffusers folder or a single-file SD1.5 checkpoint from ``path``."""
    path = Path(path)
    if path.is_dir():
        return load_diffusers_folder(path, device, dtype)
    if path.is_file():
        return load_single_file(path, device, dtype)
    raise _missing(path, "Model")


def load_toy_model(device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> DragModel:
    """The small model shipped in ``assets/toy_model`` (see its MODEL_CARD.md)."""
    if not (TOY_MODEL_PATH / "unet").is_dir():
        raise DragKitModelError(
            f"The embedded toy model is missing at '{TOY_MODEL_PATH}'; reinstall DragKit or retrain it "
            "with scripts/train_toy_model.py."
        )
    return load_diffusers_folder(TOY_MODEL_PATH, device, dtype, name="dragkit-toy")


def load_diffusers_folder(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype | None = None, name: str | None = None
) -> DragModel:
    """Load ``unet/`` (required) and, when present, ``vae/``, ``scheduler/``, the default prompt
    embedding and the recommended drag settings from a diffusers folder."""
    path = Path(path)
    if not (path / "unet").is_dir():
        raise _missing(path / "unet", "A diffusers UNet folder")
    # Load straight in the working dtype (the toy model's files are float16, run as float32 on CPU).
    unet = UNet2DConditionModel.from_pretrained(path, subfolder="unet", local_files_only=True,
                                                torch_dtype=dtype or default_dtype(device))
    vae = None
    if (path / "vae").is_dir():
        vae = AutoencoderKL.from_pretrained(path, subfolder="vae", local_files_only=True, torch_dtype=torch.float32)
    scheduler_config = dict(SD15_DDIM_CONFIG)
    scheduler_file = path / "scheduler" / "scheduler_config.json"
    if scheduler_file.is_file():
        # Keep the folder's betas and prediction type; the DDIM options stay DragKit's.
        stored = json.loads(scheduler_file.read_text())
        for key in ("num_train_timesteps", "beta_start", "beta_end", "beta_schedule", "prediction_type"):
            if key in stored:
                scheduler_config[key] = stored[key]
    default_embeds = None
    if (path / CONDITIONING_FILE).is_file():
        default_embeds = load_file(str(path / CONDITIONING_FILE))["prompt_embeds"]
    hints = ModelHints.from_dict(_read_settings(path / SETTINGS_FILE), str(path / SETTINGS_FILE))
    latent_scale = float(vae.config.scaling_factor) if vae is not None else SD15_LATENT_SCALE
    latent_scale = hints.latent_scale or latent_scale
    if vae is not None and hints.vae_scale is None:
        hints = hints.replace(vae_scale=2 ** (len(vae.config.block_out_channels) - 1))
    model = DragModel(
        unet=unet,
        latent_scale=latent_scale,
        scheduler_config=scheduler_config,
        vae=vae,
        default_embeds=default_embeds,
        hints=hints,
        name=name or path.name,
    )
    return _prepare(model, device, dtype)


def _read_settings(file: Path) -> dict:
    """A model folder's ``dragkit.json`` (``{}`` when there is none); a broken one is an error naming it."""
    if not file.is_file():
        return {}
    try:
        settings = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DragKitModelError(f"'{file}' is not valid JSON ({error}); fix it or delete it (it only holds the "
                                "model's recommended drag settings).") from None
    if not isinstance(settings, dict):
        raise DragKitModelError(f"'{file}' must hold a JSON object of settings, got {type(settings).__name__}; "
                                "fix it or delete it.")
    return settings


def _read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a .safetensors (or, with weights only, .ckpt) file; a broken file is an error naming it."""
    if path.suffix not in (".safetensors", ".ckpt", ".pt", ".pth", ".bin"):
        raise DragKitModelError(f"'{path.name}' is not a checkpoint DragKit reads; use .safetensors (or .ckpt).")
    try:
        if path.suffix == ".safetensors":
            return load_file(str(path))
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)  # never unpickles code
    except Exception as error:  # safetensors, pickle and zip errors have no common base
        raise DragKitModelError(f"'{path.name}' cannot be read as a checkpoint ({type(error).__name__}: "
                                f"{str(error).splitlines()[0] if str(error) else 'no detail'}); it may be truncated "
                                "or not a model file: download or convert it again.") from None
    if not isinstance(checkpoint, dict):
        raise DragKitModelError(f"'{path.name}' holds no state dict; convert it to .safetensors.")
    return checkpoint.get("state_dict", checkpoint)


def load_single_file(
    path: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    ldm_config: dict = SD15_LDM_CONFIG,
) -> DragModel:
    """Load a single-file checkpoint (LDM key layout), UNet and VAE, with no network access.

    ``ldm_config`` describes the architecture; SD1.5's by default.
    """
    path = Path(path)
    if not path.is_file():
        raise _missing(path, "Checkpoint")
    checkpoint = _read_checkpoint(path)
    unet = unet_from_ldm_state_dict(checkpoint, ldm_config, source=path.name)
    vae = None
    if any(key.startswith(LDM_VAE_PREFIX) for key in checkpoint):
        vae_config = single_file_utils.create_vae_diffusers_config_from_ldm(
            ldm_config, checkpoint, scaling_factor=SD15_LATENT_SCALE
        )
        vae = AutoencoderKL(**vae_config)
        vae.load_state_dict(single_file_utils.convert_ldm_vae_checkpoint(checkpoint, vae_config))
    model = DragModel(unet=unet, vae=vae, name=path.stem)
    return _prepare(model, device, dtype)


def unet_from_ldm_state_dict(
    checkpoint: dict[str, torch.Tensor], ldm_config: dict = SD15_LDM_CONFIG, source: str = "state dict"
) -> UNet2DConditionModel:
    """Build a diffusers UNet from LDM-format weights (keys ``model.diffusion_model.*``).

    ``ldm_config`` describes the architecture (:data:`~.sd15.SD15_LDM_CONFIG`); the checkpoint is
    checked against it so that an SDXL or SD2 file fails with a clear message.
    """
    if not any(key.startswith(LDM_UNET_PREFIX) for key in checkpoint):
        raise DragKitModelError(
            f"'{source}' has no UNet weights (no '{LDM_UNET_PREFIX}*' keys); is it a LoRA or a VAE file?"
        )
    if any(key.startswith("conditioner.") for key in checkpoint):
        raise DragKitModelError(f"'{source}' is an SDXL checkpoint; DragKit supports SD1.5-family models.")
    unet_params = ldm_config["model"]["params"]["unet_config"]["params"]
    in_proj = checkpoint.get(LDM_UNET_PREFIX + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight")
    if in_proj is not None and in_proj.shape[1] != unet_params["context_dim"]:
        raise DragKitModelError(
            f"'{source}' has text width {in_proj.shape[1]}, not {unet_params['context_dim']}: it is not an "
            "SD1.5-family model (SD2.x uses 1024). DragKit supports SD1.5-family models."
        )
    config = single_file_utils.create_unet_diffusers_config_from_ldm(ldm_config, checkpoint)
    unet = UNet2DConditionModel(**config)
    converted = single_file_utils.convert_ldm_unet_checkpoint(checkpoint, config)
    missing, unexpected = unet.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise DragKitModelError(
            f"'{source}' does not match the SD1.5 UNet: {len(missing)} weights missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]})."
        )
    return unet


def from_ldm_state_dict(
    unet_state_dict: dict[str, torch.Tensor],
    latent_scale: float = SD15_LATENT_SCALE,
    ldm_config: dict = SD15_LDM_CONFIG,
    device: str | torch.device = "cpu",
    dtype: torch.dtype | None = None,
    name: str = "model",
) -> DragModel:
    """A bundle from UNet weights with or without the ``model.diffusion_model.`` prefix."""
    checkpoint = {
        (key if key.startswith(LDM_UNET_PREFIX) else LDM_UNET_PREFIX + key): value
        for key, value in unet_state_dict.items()
    }
    unet = unet_from_ldm_state_dict(checkpoint, ldm_config, source=name)
    return _prepare(DragModel(unet=unet, latent_scale=latent_scale, name=name), device, dtype)


def _prepare(model: DragModel, device, dtype) -> DragModel:
    model.unet.requires_grad_(False).eval()
    if model.vae is not None:
        model.vae.requires_grad_(False).eval()
    model.to(device, dtype)
    if model.default_embeds is not None:
        model.default_embeds = model.default_embeds.to(model.device, torch.float32)
    logger.info("loaded %s on %s (%s)", model.name, model.device, model.dtype)
    return model
