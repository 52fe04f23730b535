"""Train DragKit's embedded toy model on synthetic scenes (``evaluation/scenes.py``).

Two stages, each resumable from checkpoints in ``--work-dir`` (re-run the same command after an
interruption): an ``AutoencoderKL`` (64x64 RGB -> 16x16x4), then a ``UNet2DConditionModel`` with
cross-attention on its latents, epsilon prediction with Stable Diffusion's DDPM schedule and a fixed
prompt embedding. The finished model is written atomically to ``--out`` as a diffusers folder that
``dragkit.core.model.load_diffusers_folder`` (and so the Model Loader node) reads.

    python scripts/train_toy_model.py --threads 2 --vae-steps 1500 --unet-steps 3000

Seeded and deterministic for a given thread count. Training scenes use seeds below 1,000,000;
the benchmark and demo use seeds from 1,000,000 on.
"""

from __future__ import annotations

import argparse
import copy
import csv
import json
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
from safetensors.torch import save_file

from dragkit.core.metrics import psnr
from dragkit.core.overlay import to_pil
from dragkit.core.hints import ModelHints
from dragkit.evaluation.scenes import scene_batch
from dragkit.core.schedule import SD15_DDIM_CONFIG

IMAGE_SIZE = 64
HELD_OUT = range(1_000_000, 1_000_064)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
    up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 64), layers_per_block=1,
    latent_channels=4, norm_num_groups=16, sample_size=IMAGE_SIZE,
)
UNET_CONFIG = dict(
    sample_size=16, in_channels=4, out_channels=4, block_out_channels=(64, 128, 128), layers_per_block=1,
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32,
)
PROMPT_SHAPE = (1, 8, 64)
# Recommended settings stored with the model (DragKit index convention: 0 = mid block,
# k = up_blocks[k-1]). up_blocks[1] is at latent resolution, like SD1.5's index 3.
# Supervision at full image size: the 16x16 latent is a quarter of SD1.5's 64x64, and half of a
# 64-pixel image leaves a drag of a few grid pixels (toy benchmark: more of the shape moves).
DRAG_SETTINGS = {"feature_layers": [2], "guidance_layers": [1, 2], "region_layers": [2], "lam": 0.1,
                 "supervision_scale": 1.0}


def training_batch(step: int, batch: int) -> torch.Tensor:
    """``(B, 3, 64, 64)`` scenes for a step; seeds cycle through a large training range."""
    start = (step * batch) % 900_000
    return scene_batch(range(start, start + batch), IMAGE_SIZE)


def lr_at(step: int, base: float, warmup: int, total: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    progress = (step - warmup) / max(total - warmup, 1)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))


def resume(checkpoint: Path, seed: int, **stateful) -> tuple[int, torch.Generator]:
    """Load ``stateful`` objects (model, EMA, optimiser) from ``checkpoint`` if it exists; return the
    step to go on from and the noise generator where the checkpoint left it, so a resumed run follows
    the same noise as an uninterrupted one (checkpoints from before the generator state was stored
    fall back to reseeding at the resume step)."""
    if not checkpoint.exists():
        return 0, torch.Generator().manual_seed(seed)
    state = torch.load(checkpoint, weights_only=False)
    for key, target in stateful.items():
        target.load_state_dict(state[key])
    generator = torch.Generator().manual_seed(seed + state["step"])
    if "generator" in state:
        generator.set_state(state["generator"])
    return state["step"], generator


def save_checkpoint(path: Path, state: dict) -> None:
    temporary = path.with_suffix(".tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def train_vae(args, log) -> AutoencoderKL:
    torch.manual_seed(args.seed)
    vae = AutoencoderKL(**VAE_CONFIG)
    optimizer = torch.optim.AdamW(vae.parameters(), lr=args.vae_lr, weight_decay=0.0)
    checkpoint = args.work_dir / "vae.pt"
    step, generator = resume(checkpoint, args.seed, model=vae, optimizer=optimizer)
    start = time.time()
    while step < args.vae_steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.vae_lr, 100, args.vae_steps)
        images = training_batch(step, args.vae_batch)
        # Random 32x32 crops: the autoencoder is convolutional, and crops are 4x cheaper.
        top, left = (int(v) for v in torch.randint(0, IMAGE_SIZE - 32 + 1, (2,), generator=generator))
        crops = images[:, :, top:top + 32, left:left + 32] * 2 - 1
        posterior = vae.encode(crops).latent_dist
        reconstruction = vae.decode(posterior.sample(generator)).sample
        loss = (reconstruction - crops).abs().mean() + F.mse_loss(reconstruction, crops) + 1e-6 * posterior.kl().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 50 == 0 or step == args.vae_steps:
            log("vae", step, float(loss), time.time() - start)
        if step % 250 == 0 or step == args.vae_steps:
            save_checkpoint(checkpoint, {"model": vae.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                                         "generator": generator.get_state()})
    return vae.eval().requires_grad_(False)


@torch.no_grad()
def latent_scale(vae: AutoencoderKL) -> float:
    images = scene_batch(range(900_000, 900_256), IMAGE_SIZE) * 2 - 1
    latents = torch.cat([vae.encode(images[i:i + 64]).latent_dist.mean for i in range(0, 256, 64)])
    return float(1.0 / latents.std())


@torch.no_grad()
def held_out_psnr(vae: AutoencoderKL) -> float:
    images = scene_batch(HELD_OUT, IMAGE_SIZE)
    recon = ((vae.decode(vae.encode(images * 2 - 1).latent_dist.mean).sample + 1) / 2).clamp(0, 1)
    return sum(psnr(a, b) for a, b in zip(recon, images)) / len(images)


def train_unet(args, vae: AutoencoderKL, scale: float, prompt: torch.Tensor, log) -> UNet2DConditionModel:
    torch.manual_seed(args.seed + 1)
    unet = UNet2DConditionModel(**UNET_CONFIG)
    ema = copy.deepcopy(unet).requires_grad_(False)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=args.unet_lr, weight_decay=1e-2)
    scheduler = DDPMScheduler.from_config(SD15_DDIM_CONFIG)  # the same betas the DDIM sampler uses
    checkpoint = args.work_dir / "unet.pt"
    step, generator = resume(checkpoint, args.seed + 2, model=unet, ema=ema, optimizer=optimizer)
    start = time.time()
    while step < args.unet_steps:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, args.unet_lr, 200, args.unet_steps)
        with torch.no_grad():
            latents = vae.encode(training_batch(step + 10_000, args.unet_batch) * 2 - 1).latent_dist.mean * scale
        noise = torch.randn(latents.shape, generator=generator)
        timesteps = torch.randint(0, 1000, (latents.shape[0],), generator=generator)
        noisy = scheduler.add_noise(latents, noise, timesteps)
        prediction = unet(noisy, timesteps, encoder_hidden_states=prompt.expand(latents.shape[0], -1, -1)).sample
        loss = F.mse_loss(prediction, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizer.step()
        decay = min(args.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for e, p in zip(ema.parameters(), unet.parameters()):
                e.lerp_(p, 1 - decay)
        step += 1
        if step % 50 == 0 or step == args.unet_steps:
            log("unet", step, float(loss), time.time() - start)
        if step % 250 == 0 or step == args.unet_steps:
            save_checkpoint(checkpoint, {"model": unet.state_dict(), "ema": ema.state_dict(),
                                         "generator": generator.get_state(),
                                         "optimizer": optimizer.state_dict(), "step": step})
            sample_grid(ema, vae, scale, prompt, args.work_dir / f"samples_{step:06d}.png")
    return ema.eval()


@torch.no_grad()
def sample_grid(unet, vae, scale, prompt, path: Path, count: int = 16) -> None:
    """The model's own DDIM-50 samples from noise, no CFG, as a 4x4 grid."""
    ddim = DDIMScheduler(**SD15_DDIM_CONFIG)
    ddim.set_timesteps(50)
    latents = torch.randn(count, 4, 16, 16, generator=torch.Generator().manual_seed(123))
    for t in ddim.timesteps:
        noise = unet(latents, t, encoder_hidden_states=prompt.expand(count, -1, -1)).sample
        latents = ddim.step(noise, t, latents).prev_sample
    images = ((vae.decode(latents / scale).sample + 1) / 2).clamp(0, 1)
    rows = [torch.cat(list(images[r * 4:(r + 1) * 4]), dim=2) for r in range(count // 4)]
    to_pil(torch.cat(rows, dim=1)).resize((512, 512), 0).save(path)


@torch.no_grad()
def reconstruction_grid(vae, path: Path) -> None:
    images = scene_batch(list(HELD_OUT)[:8], IMAGE_SIZE)
    recon = ((vae.decode(vae.encode(images * 2 - 1).latent_dist.mean).sample + 1) / 2).clamp(0, 1)
    grid = torch.cat([torch.cat(list(images), dim=2), torch.cat(list(recon), dim=2)], dim=1)
    to_pil(grid).resize((grid.shape[-1] * 2, grid.shape[-2] * 2), 0).save(path)


def write_model(args, vae, unet, scale, prompt, stats: dict) -> None:
    """Write the diffusers folder next to ``--out`` and swap it in with one rename."""
    out = args.out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".toy_model_", dir=out.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the model folder is meant to be shared
    vae.register_to_config(scaling_factor=scale)
    # fp16 weights keep the committed files small; DragKit loads them back as float32 on the CPU.
    vae.to(torch.float16).save_pretrained(staging / "vae")
    unet.to(torch.float16).save_pretrained(staging / "unet")
    DDIMScheduler(**SD15_DDIM_CONFIG).save_pretrained(staging / "scheduler")
    save_file({"prompt_embeds": prompt.contiguous()}, str(staging / "conditioning.safetensors"))
    settings = dict(DRAG_SETTINGS, image_size=IMAGE_SIZE, latent_size=16, latent_scale=scale, training=stats)
    ModelHints.from_dict(settings, "dragkit.json")  # what the loader will read back: refuse a bad key now
    (staging / "dragkit.json").write_text(json.dumps(settings, indent=2) + "\n")
    for name in ("samples.png", "reconstructions.png"):
        shutil.copy(args.work_dir / name, staging / name)
    old = out.with_name(out.name + ".old")
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def training_summary(losses_csv: Path) -> dict:
    """Final loss (mean of the last five logged values) and total training seconds of each stage."""
    rows: dict[str, list] = {}
    with losses_csv.open() as f:
        for stage, step, loss, seconds in csv.reader(f):
            rows.setdefault(stage, []).append((int(step), float(loss), float(seconds)))
    summary = {}
    for stage, entries in rows.items():
        # Seconds restart at each resume: add up the runs (a drop in seconds starts a new run).
        total, previous = 0.0, 0.0
        for _, _, seconds in entries:
            if seconds < previous:
                total += previous
            previous = seconds
        entries = sorted({step: (loss, seconds) for step, loss, seconds in entries}.items())
        tail = [loss for _, (loss, _) in entries[-5:]]
        summary[f"{stage}_final_loss"] = round(sum(tail) / len(tail), 4)
        summary[f"{stage}_seconds"] = round(total + previous)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path(".toy_train"))
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "assets" / "toy_model")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--vae-batch", type=int, default=32)
    parser.add_argument("--vae-lr", type=float, default=1e-3)
    parser.add_argument("--unet-steps", type=int, default=3000)
    parser.add_argument("--unet-batch", type=int, default=48)
    parser.add_argument("--unet-lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.999)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    log_file = (args.work_dir / "losses.csv").open("a", newline="")
    writer = csv.writer(log_file)

    def log(stage, step, loss, seconds):
        writer.writerow([stage, step, f"{loss:.5f}", f"{seconds:.1f}"])
        log_file.flush()
        print(f"{stage} step {step} loss {loss:.4f} ({seconds:.0f} s)", flush=True)

    began = time.time()
    vae = train_vae(args, log)
    scale = latent_scale(vae)
    recon_psnr = held_out_psnr(vae)
    reconstruction_grid(vae, args.work_dir / "reconstructions.png")
    print(f"vae held-out PSNR {recon_psnr:.2f} dB, latent scale {scale:.4f}", flush=True)
    prompt = torch.randn(PROMPT_SHAPE, generator=torch.Generator().manual_seed(args.seed + 3))
    unet = train_unet(args, vae, scale, prompt, log)
    sample_grid(unet, vae, scale, prompt, args.work_dir / "samples.png")
    stats = {"vae_steps": args.vae_steps, "unet_steps": args.unet_steps, "vae_heldout_psnr_db": round(recon_psnr, 2),
             "threads": args.threads, **training_summary(args.work_dir / "losses.csv")}
    write_model(args, vae, unet, scale, prompt, stats)
    print(json.dumps(stats), f"({time.time() - began:.0f} s this run)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
