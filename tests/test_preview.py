"""Live previews: every loop's x0 estimate, the latent -> picture functions, and the progress bar's previews."""

from __future__ import annotations

import dataclasses
import logging
import types

import pytest
import torch
from conftest import inverted_tiny_model, make_tiny_model
from diffusers import DDIMScheduler
from PIL import Image

from dragkit.core.errors import DragKitModelError
from dragkit.core.guidance import drag_geometry
from dragkit.core.methods import dragdiffusion
from dragkit.core.methods.diffeditor import diffeditor_config, regional_sde_sample
from dragkit.core.methods.dragdiffusion import DRAGDIFFUSION, drag_latent
from dragkit.core.methods.gooddrag import GOODDRAG_DRAG, AlDDConfig, edit
from dragkit.core.metrics import psnr
from dragkit.core.model import TOY_MODEL_PATH, load_toy_model
from dragkit.core.points import DragPoints
from dragkit.core.preview import (
    MAX_PREVIEW_SIDE, SD15_LATENT_RGB_FACTORS, latent_to_rgb, preview_image, preview_method, previewer,
)
from dragkit.core.sampling import reference_sample
from dragkit.evaluation.scenes import make_scene
from dragkit.core.schedule import SD15_DDIM_CONFIG, implied_noise, predicted_x0
from dragkit.core.sd15 import SD15_LATENT_SCALE
from dragkit.nodes import comfy

# The tiny UNet has no VAE: 8 image pixels per latent pixel, so its 16x16 latent is a 128x128 image.
POINTS = DragPoints.from_pairs((128, 128), [((40, 64), (72, 64))])
LATENT_SHAPE = (1, 4, 16, 16)


@pytest.fixture(scope="module")
def setup():
    return inverted_tiny_model(num_steps=10, strength=0.7)


def _recorder():
    """A progress callback that keeps every info dict."""
    infos = []
    return infos, lambda step, total, info: infos.append(info)


def _record_noise(monkeypatch, model):
    """Record ``(latent, timestep, noise)`` of every ``model.predict_noise`` call."""
    calls = []
    predict = model.predict_noise

    def recording(latent, timestep, embeds):
        noise = predict(latent, timestep, embeds)
        calls.append((latent.detach().clone(), int(timestep), noise.detach().clone()))
        return noise

    monkeypatch.setattr(model, "predict_noise", recording)
    return calls


def _alphas(inversion):
    scheduler = DDIMScheduler.from_config(SD15_DDIM_CONFIG)
    scheduler.set_timesteps(inversion.num_steps)
    return scheduler.alphas_cumprod, scheduler.final_alpha_cumprod


def _check_estimates(estimates):
    for estimate in estimates:
        assert estimate.shape == LATENT_SHAPE and estimate.dtype == torch.float32
        assert not estimate.requires_grad and torch.isfinite(estimate).all()


# ----------------------------------------------------------------------------------- x0 formula
def test_predicted_x0_matches_diffusers_and_inverts_implied_noise():
    generator = torch.Generator().manual_seed(0)
    latent, noise = (torch.randn(LATENT_SHAPE, generator=generator) for _ in range(2))
    scheduler = DDIMScheduler.from_config(SD15_DDIM_CONFIG)
    scheduler.set_timesteps(50)
    alpha = scheduler.alphas_cumprod[681]
    expected = scheduler.step(noise, 681, latent).pred_original_sample
    assert torch.equal(predicted_x0(latent, noise, alpha), expected)
    torch.testing.assert_close(implied_noise(latent, expected, alpha), noise, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(predicted_x0(latent, noise, float(alpha)), expected)


# ------------------------------------------------------------------------------- the four loops
def test_reference_sample_reports_the_edited_branch_x0(setup, monkeypatch):
    model, inversion = setup
    shift = torch.randn(LATENT_SHAPE, generator=torch.Generator().manual_seed(3))
    inversion = inversion.with_edit(inversion.source + 0.3 * shift)  # the branches differ
    plain, plain_source = reference_sample(model, inversion)
    calls = _record_noise(monkeypatch, model)
    infos, callback = _recorder()
    edited, source = reference_sample(model, inversion, callback=callback)
    # Reporting changes nothing, bit for bit.
    assert torch.equal(edited, plain) and torch.equal(source, plain_source)
    estimates = [info["estimate"] for info in infos]
    assert len(estimates) == len(inversion.timesteps)
    _check_estimates(estimates)
    alphas, final_alpha = _alphas(inversion)
    for estimate, (latent, t, noise) in zip(estimates, calls):
        # Batch [source, edited]: the estimate is the edited half's predicted x0.
        torch.testing.assert_close(estimate, predicted_x0(latent[1:], noise[1:], alphas[t]), atol=1e-5, rtol=1e-5)
    # The last step lands on alphas_cumprod[0] (set_alpha_to_one=False), not exactly on x0:
    # result = sqrt(a0) x0 + sqrt(1 - a0) eps, so the last estimate is the result up to a small noise term.
    _, _, last_noise = calls[-1]
    torch.testing.assert_close(edited, final_alpha**0.5 * estimates[-1] + (1 - final_alpha) ** 0.5 * last_noise[1:],
                               atol=1e-5, rtol=1e-5)
    assert (edited - estimates[-1]).abs().max() < 0.2
    assert (edited - estimates[-1]).abs().mean() < 0.2 * (edited - estimates[0]).abs().mean()


def test_drag_latent_reports_x0_from_z_and_its_noise(setup, monkeypatch):
    model, inversion = setup
    config = dataclasses.replace(DRAGDIFFUSION, feature_layers=(1,), max_steps=4, stop_distance=0.0)
    mask = torch.ones(128, 128)
    plain = drag_latent(model, inversion, POINTS, mask, config)
    seen = []
    features = dragdiffusion.unet_features

    def recording(model_, latent, *args, **kwargs):
        out = features(model_, latent, *args, **kwargs)
        seen.append((latent.detach().clone(), None if out[1] is None else out[1].detach().clone()))
        return out

    monkeypatch.setattr(dragdiffusion, "unet_features", recording)
    infos, callback = _recorder()
    result = drag_latent(model, inversion, POINTS, mask, config, callback=callback)
    assert torch.equal(result.latent, plain.latent) and result.distances == plain.distances
    estimates = [info["estimate"] for info in infos]
    assert len(estimates) == result.steps == 4
    _check_estimates(estimates)
    alpha = _alphas(inversion)[0][inversion.t]
    # seen[0] is prepare_drag's pass on the original latent; then one pass per step, before its Adam step.
    for estimate, (latent, noise) in zip(estimates, seen[1:]):
        assert noise is not None
        torch.testing.assert_close(estimate, predicted_x0(latent, noise, alpha), atol=1e-5, rtol=1e-5)
    assert not torch.equal(estimates[0], estimates[-1])  # the picture follows the latent


def test_drag_latent_without_noise_uses_the_source_noise(setup):
    model, inversion = setup
    config = dataclasses.replace(DRAGDIFFUSION, feature_layers=(1,), max_steps=3, stop_distance=0.0)
    infos, callback = _recorder()
    result = drag_latent(model, inversion, POINTS, None, config, callback=callback)  # no mask: no epsilon
    assert torch.equal(result.latent, drag_latent(model, inversion, POINTS, None, config).latent)
    estimates = [info["estimate"] for info in infos]
    _check_estimates(estimates)
    # The first step starts from the unmoved inverted latent: its estimate is the clean source latent.
    torch.testing.assert_close(estimates[0], inversion.latents[0], atol=1e-4, rtol=1e-4)
    assert (estimates[-1] - inversion.latents[0]).abs().max() > 1e-3


def test_aldd_reports_estimates_in_rounds_and_denoising_steps(setup, monkeypatch):
    model, inversion = setup
    drag = dataclasses.replace(GOODDRAG_DRAG, feature_layers=(1,))
    config = AlDDConfig(drag=drag, drag_steps=2, rounds=2, steps_per_round=2)
    mask = torch.ones(128, 128)
    plain = edit(model, inversion, POINTS, mask, config)
    calls = _record_noise(monkeypatch, model)
    infos, callback = _recorder()
    result = edit(model, inversion, POINTS, mask, config, callback=callback)
    assert torch.equal(result.latent, plain.latent) and torch.equal(result.source, plain.source)
    assert all("estimate" in info for info in infos)
    _check_estimates([info["estimate"] for info in infos])
    rounds = [info["estimate"] for info in infos if "round" in info]
    steps = [info["estimate"] for info in infos if "timestep" in info]
    assert len(rounds) == result.rounds == 4 and len(steps) == len(inversion.timesteps)
    alphas = _alphas(inversion)[0]
    for estimate, (latent, t, noise) in zip(steps, calls):  # predict_noise runs only in denoising steps
        torch.testing.assert_close(estimate, predicted_x0(latent[1:], noise[1:], alphas[t]), atol=1e-5, rtol=1e-5)
    assert (result.latent - steps[-1]).abs().max() < 0.2


@pytest.fixture(scope="module")
def sde_setup():
    model, inversion = inverted_tiny_model(num_steps=10, strength=1.0)
    config = diffeditor_config()
    config.guidance.feature_layers = (1, 2)  # the tiny UNet has two up blocks
    config = dataclasses.replace(config, sde_steps=(2, 4), time_travel_steps=(2,), memory_bank_start=1)
    mask = torch.zeros(128, 128)
    mask[30:100, 20:110] = 1
    geometry = drag_geometry(torch.tensor([[40.0, 64.0]]), torch.tensor([[72.0, 64.0]]), mask, (16, 16), (128, 128),
                             config.guidance)
    return model, inversion, geometry, config


def test_regional_sde_reports_x0_every_step(sde_setup):
    model, inversion, geometry, config = sde_setup
    plain = regional_sde_sample(model, inversion, geometry, config)
    infos, callback = _recorder()
    out = regional_sde_sample(model, inversion, geometry, config, callback=callback)
    assert torch.equal(out, plain)
    estimates = [info["estimate"] for info in infos]
    assert len(estimates) == len(inversion.timesteps)
    _check_estimates(estimates)
    assert (out - estimates[-1]).abs().max() < 0.2
    assert (out - estimates[-1]).abs().mean() < 0.2 * (out - estimates[0]).abs().mean()


def test_regional_sde_estimate_uses_the_guided_noise(sde_setup, monkeypatch):
    model, inversion, geometry, config = sde_setup
    config = dataclasses.replace(config, guidance_steps=5, time_travel_steps=())  # guided steps 0-4
    calls = _record_noise(monkeypatch, model)  # one [source, edited] call per step without time travel
    infos, callback = _recorder()
    regional_sde_sample(model, inversion, geometry, config, callback=callback)
    alphas = _alphas(inversion)[0]
    assert len(calls) == len(infos) == 10
    for i, (info, (latent, t, noise)) in enumerate(zip(infos, calls)):
        unguided = predicted_x0(latent[1:], noise[1:], alphas[t])
        if i < 5:  # the energy term moves the estimate
            assert (info["estimate"] - unguided).abs().max() > 1e-4
        else:
            torch.testing.assert_close(info["estimate"], unguided, atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------------------- latent -> picture
def test_sd15_projection_gives_comfyui_colours():
    latent = torch.zeros(1, 4, 2, 3)
    latent[0, 0] = 1.0  # channel 0 alone: (1 + its factors) / 2
    latent[0, 3, 1] = -1.0  # second row: channel 0 minus channel 3
    rgb = latent_to_rgb(latent)
    assert rgb.shape == (3, 2, 3)
    first = (1 + torch.tensor(SD15_LATENT_RGB_FACTORS[0])) / 2
    second = (1 + torch.tensor(SD15_LATENT_RGB_FACTORS[0]) - torch.tensor(SD15_LATENT_RGB_FACTORS[3])) / 2
    torch.testing.assert_close(rgb[:, 0, 0], first)  # (0.676, 0.615, 0.661)
    torch.testing.assert_close(rgb[:, 1, 2], second.clamp(0, 1))  # blue clamps at 1
    assert rgb[2, 1, 2] == 1.0 and 0 < rgb[0, 1, 2] < 1
    # Another latent scale is converted to SD1.5's first: same colours for the same VAE latent.
    torch.testing.assert_close(latent_to_rgb(latent * 0.5 / SD15_LATENT_SCALE, 0.5), rgb)
    assert latent_to_rgb(torch.full((4, 1, 1), 100.0)).max() == 1.0  # clamped to [0, 1]


def test_preview_method_follows_the_model():
    model = make_tiny_model()  # 4 channels, no recommendation, no VAE
    assert preview_method(model) == "projection"
    picture = preview_image(model, torch.zeros(2, 4, 16, 16))  # first image only
    assert picture.shape == (3, 16, 16) and picture.device.type == "cpu"
    torch.testing.assert_close(picture, torch.full((3, 16, 16), 0.5))  # zero latent = mid grey
    # A diverging estimate still makes a picture.
    assert torch.isfinite(preview_image(model, torch.full((1, 4, 16, 16), float("nan")))).all()
    model.hints = model.hints.replace(preview="vae")  # no VAE to decode with: the projection
    assert preview_method(model) == "projection"
    model.hints = model.hints.replace(preview="none")
    assert preview_method(model) == "none" and previewer(model) is None and preview_image(model, torch.zeros(LATENT_SHAPE)) is None
    with pytest.raises(DragKitModelError, match="preview"):
        model.hints.replace(preview="taesd")


@pytest.mark.skipif(not (TOY_MODEL_PATH / "vae").is_dir(), reason="the embedded toy model is not present")
def test_toy_model_previews_with_its_vae():
    model = load_toy_model()
    assert preview_method(model) == "vae"
    image = make_scene(1_000_003).image  # (3, 64, 64)
    picture = previewer(model)(model.encode(image[None]))
    assert picture.shape == image.shape and 0 <= picture.min() and picture.max() <= 1
    assert psnr(picture, image) > 25.0  # the VAE's held-out reconstruction is ~31 dB
    assert psnr(latent_to_rgb(model.encode(image[None]), model.latent_scale), image[:, ::4, ::4]) < 20.0


# ------------------------------------------------------------------------- the bar's previews
class FakeBar:
    """ComfyUI's ``comfy.utils.ProgressBar`` as far as DragKit uses it."""

    def __init__(self, total):
        self.total, self.updates = total, []
        BARS.append(self)

    def update_absolute(self, value, total=None, preview=None):
        self.updates.append((value, total, preview))


BARS: list[FakeBar] = []


@pytest.fixture
def bar(monkeypatch):
    BARS.clear()
    monkeypatch.setattr(comfy, "comfy_utils", types.SimpleNamespace(ProgressBar=FakeBar))
    return BARS


def test_progress_sends_throttled_jpeg_previews(bar):
    made, now = [], [0.0]

    def preview(latent):
        made.append(latent)
        return torch.ones(3, 4, 6) * torch.tensor([1.0, 0.5, 0.0])[:, None, None]  # orange, (3, H, W)

    estimate = torch.zeros(LATENT_SHAPE)
    with comfy.progress(6, "drag", preview, clock=lambda: now[0]) as callback:
        for step, (time, info) in enumerate([(0.0, {"estimate": estimate}), (0.2, {"estimate": estimate}),
                                             (0.6, {}), (0.7, {"estimate": estimate}),
                                             (0.9, {"estimate": estimate}), (1.3, {"estimate": estimate})], 1):
            now[0] = time
            callback(step, 6, info)
    (only,) = bar
    assert [value for value, _, _ in only.updates] == [1, 2, 3, 4, 5, 6]
    sent = [step for step, (_, _, preview_) in enumerate(only.updates, 1) if preview_ is not None]
    assert sent == [1, 4, 6]  # the first; then once PREVIEW_INTERVAL_S has passed; none without an estimate
    assert len(made) == 3 and made[0] is estimate
    kind, image, size = only.updates[0][2]
    assert kind == "JPEG" and isinstance(image, Image.Image) and size == MAX_PREVIEW_SIDE
    assert image.size == (6, 4) and image.getpixel((0, 0)) == (255, 128, 0)


def test_a_slow_preview_waits_longer(bar):
    now = [0.0]

    def slow(latent):  # takes 0.1 s of the fake clock: the next preview waits 0.1 / PREVIEW_BUDGET
        now[0] += 0.1
        return torch.zeros(3, 2, 2)

    with comfy.progress(4, "x", slow, clock=lambda: now[0]) as callback:
        for step, time in enumerate([0.0, 1.0, 0.1 / comfy.PREVIEW_BUDGET - 0.01, 0.1 / comfy.PREVIEW_BUDGET], 1):
            now[0] = time
            callback(step, 4, {"estimate": torch.zeros(LATENT_SHAPE)})
    assert [update[2] is not None for update in bar[0].updates] == [True, False, False, True]


def test_progress_passes_pil_previews_and_survives_a_failing_one(bar, caplog):
    picture, now = Image.new("RGB", (8, 8), (1, 2, 3)), [0.0]
    with comfy.progress(2, "x", lambda latent: picture, clock=lambda: now[0]) as callback:
        callback(1, 2, {"estimate": torch.zeros(LATENT_SHAPE)})
        now[0] = 5.0
        callback(2, 2, {"estimate": torch.zeros(LATENT_SHAPE)})
    assert [update[2] for update in bar[0].updates] == [("JPEG", picture, MAX_PREVIEW_SIDE)] * 2

    calls = []

    def broken(latent):
        calls.append(1)
        raise RuntimeError("decoder exploded")

    with caplog.at_level(logging.WARNING), comfy.progress(3, "x", broken, clock=lambda: now[0]) as cb:
        for step in (1, 2, 3):
            now[0] += 5.0
            cb(step, 3, {"estimate": torch.zeros(LATENT_SHAPE), "distance": 1.0})
    assert calls == [1] and "live preview failed" in caplog.text  # tried once, then previews are off
    assert [update[:2] for update in bar[1].updates] == [(1, 3), (2, 3), (3, 3)]
    assert all(update[2] is None for update in bar[1].updates)


def test_outside_comfyui_no_preview_work_at_all(monkeypatch):
    assert comfy.comfy_utils is None  # plain Python
    calls = []
    shown = []
    monkeypatch.setattr(comfy, "progress_text", shown.append)
    with comfy.progress(2, "drag", lambda latent: calls.append(latent), clock=lambda: calls.append("clock")) as cb:
        cb(1, 2, {"estimate": torch.zeros(LATENT_SHAPE), "distance": 3.0})
        cb(2, 2, {"estimate": torch.zeros(LATENT_SHAPE)})
    assert calls == []
    assert shown == ["drag 1/2  distance 3"]  # the numbers still go to the node's text


# ------------------------------------------------------------------------------------- nodes
def test_the_four_nodes_send_previews(setup, bar, monkeypatch):
    from dragkit.nodes.drag_nodes import DragKitAlDDSampler, DragKitDragOptimizer
    from dragkit.nodes.guidance_nodes import DragKitRegionalSDESampler
    from dragkit.nodes.inversion_nodes import DragKitSampler

    # A preview at every step with an estimate, however long the last one took.
    monkeypatch.setattr(comfy, "PREVIEW_INTERVAL_S", 0.0)
    monkeypatch.setattr(comfy, "PREVIEW_BUDGET", float("inf"))
    model, inversion = setup
    DragKitSampler().sample(model, inversion, True, 0, -1)
    DragKitDragOptimizer().drag(model, inversion, POINTS, "DragDiffusion", max_steps=2, learning_rate=0.01, lam=0.1,
                                patch_radius=-1, track_radius=-1, feature_layer=1, rescale_points=False)
    DragKitAlDDSampler().sample(model, inversion, POINTS, drag_steps=1, rounds=1, steps_per_round=1,
                                learning_rate=0.02, lam=0.1, patience=5, feature_layer=1, reference_attention=True,
                                rescale_points=False)
    DragKitRegionalSDESampler().sample(
        model, inversion, "DragonDiffusion", "drag", points=POINTS, dx=0.0, dy=0.0, scale=1.0, sde_eta=0.0,
        time_travel=False, memory_bank=True, energy_scale=2000.0, w_edit=4.0, w_content=6.0, w_inpaint=0.2,
        feature_layers="1,2", seed=0)
    assert len(bar) == 4
    for node_bar in bar:
        previews = [preview for _, _, preview in node_bar.updates]
        assert previews and all(preview is not None for preview in previews)
        for kind, image, size in previews:
            # The tiny model has no VAE: SD1.5's projection at latent resolution.
            assert kind == "JPEG" and image.size == (16, 16) and size == MAX_PREVIEW_SIDE
