"""Nodes without ComfyUI: schema hygiene, ComfyUI tensor conventions, no mutation, inference mode."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_LDM_CONFIG, make_tiny_model
from ldm_keys import diffusers_to_ldm

import dragkit
from dragkit.core import model as core_model
from dragkit.core.errors import DragKitInputError, DragKitModelError
from dragkit.core.inversion import Inversion
from dragkit.nodes import model_nodes
from dragkit.nodes.inversion_nodes import DragKitDDIMInverter, DragKitSampler
from dragkit.nodes.model_nodes import DragKitModelFromComfy, DragKitModelLoader

FOUNDATION_NODES = {"DragKitModelLoader", "DragKitModelFromComfy", "DragKitDDIMInverter", "DragKitSampler"}


def test_registry_lists_the_foundation_nodes():
    assert FOUNDATION_NODES <= set(dragkit.NODE_CLASS_MAPPINGS)
    assert set(dragkit.NODE_DISPLAY_NAME_MAPPINGS) == set(dragkit.NODE_CLASS_MAPPINGS)
    assert dragkit.WEB_DIRECTORY == "./web"


@pytest.mark.parametrize("node_id", sorted(dragkit.NODE_CLASS_MAPPINGS))
def test_every_node_is_documented(node_id):
    cls = dragkit.NODE_CLASS_MAPPINGS[node_id]
    assert node_id.startswith("DragKit") and cls.CATEGORY.startswith("DragKit")
    assert len(cls.DESCRIPTION) > 40
    assert callable(getattr(cls, cls.FUNCTION))
    inputs = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, spec in inputs.get(section, {}).items():
            assert len(spec) == 2 and spec[1].get("tooltip"), f"{node_id}.{name} has no tooltip"
    assert len(cls.RETURN_TYPES) == len(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES))


def _latent_dict(model, latent):
    return {"samples": latent / model.latent_scale, "batch_index": [0]}


def test_inverter_and_sampler_use_unscaled_latents(tiny_model, latent):
    comfy_latent = _latent_dict(tiny_model, latent)
    before = comfy_latent["samples"].clone()
    (inversion,) = DragKitDDIMInverter().invert(tiny_model, comfy_latent, steps=10, strength=0.3)
    assert isinstance(inversion, Inversion) and inversion.t == 201
    torch.testing.assert_close(inversion.latents[0], latent)  # scaled inside
    out, _ = DragKitSampler().sample(tiny_model, inversion, True, 0, -1)
    assert out is not comfy_latent and torch.equal(comfy_latent["samples"], before)
    assert out["samples"].shape == latent.shape
    # Unscaled again on the way out: reconstruction is close to the input LATENT.
    error = (out["samples"] - comfy_latent["samples"]).abs().mean() / comfy_latent["samples"].abs().mean()
    assert error < 0.2


def test_conditioning_input(tiny_model, latent):
    conditioning = [[torch.randn(1, 4, 16), {"pooled_output": None}]]
    (inversion,) = DragKitDDIMInverter().invert(tiny_model, _latent_dict(tiny_model, latent), 10, 0.2, conditioning)
    torch.testing.assert_close(inversion.prompt_embeds, conditioning[0][0])
    with pytest.raises(DragKitInputError, match="width 768"):
        DragKitDDIMInverter().invert(tiny_model, _latent_dict(tiny_model, latent), 10, 0.2, [[torch.zeros(1, 77, 768), {}]])


def test_nodes_work_under_comfyui_inference_mode(tiny_model, latent):
    # ComfyUI runs every node inside torch.inference_mode(); inputs are inference tensors.
    with torch.inference_mode():
        comfy_latent = _latent_dict(tiny_model, latent.clone())
        (inversion,) = DragKitDDIMInverter().invert(tiny_model, comfy_latent, steps=10, strength=0.3)
    assert not inversion.source.is_inference()
    z = inversion.source.clone().requires_grad_(True)
    tiny_model.predict_noise(z, 201, tiny_model.prompt_embeds(None)).sum().backward()
    assert z.grad is not None


def test_wrong_latent_channels_is_a_clear_error(tiny_model):
    with pytest.raises(DragKitInputError, match="3 channels"):
        DragKitDDIMInverter().invert(tiny_model, {"samples": torch.zeros(1, 3, 8, 8)}, 10, 0.5)
    with pytest.raises(DragKitInputError, match="LATENT"):
        DragKitDDIMInverter().invert(tiny_model, torch.zeros(1, 4, 8, 8), 10, 0.5)


def test_strength_out_of_range(tiny_model, latent):
    with pytest.raises(DragKitInputError, match="strength"):
        DragKitDDIMInverter().invert(tiny_model, _latent_dict(tiny_model, latent), 10, 1.5)


def test_loader_missing_path(tmp_path):
    with pytest.raises(DragKitModelError, match="not found"):
        DragKitModelLoader().load("dragkit-toy (embedded)", path=str(tmp_path / "missing.safetensors"))


class _FakePatcher:
    """The parts of a ComfyUI ModelPatcher the bridge reads."""

    def __init__(self, ldm_state):
        class Base:
            pass

        self.model = Base()
        self.model.latent_format = type("SD15", (), {"scale_factor": 0.18215})()
        self.model.model_config = type("SD15", (), {})()
        self.model.diffusion_model = type("UNet", (), {"state_dict": lambda _self: dict(ldm_state)})()
        self.patches_uuid = "u1"
        self.patches = {}


def test_model_from_comfy_converts_once_and_matches(monkeypatch, latent):
    reference = make_tiny_model()
    ldm = diffusers_to_ldm(reference.unet.state_dict(), 1, [True, True])
    state = {k.removeprefix("model.diffusion_model."): v for k, v in ldm.items()}
    calls = []
    original = core_model.from_ldm_state_dict

    def convert(*args, **kwargs):
        calls.append(1)
        return original(*args, ldm_config=TINY_LDM_CONFIG, **kwargs)

    monkeypatch.setattr(model_nodes.core_model, "from_ldm_state_dict", convert)
    patcher = _FakePatcher(state)
    (first,) = DragKitModelFromComfy().convert(patcher)
    (second,) = DragKitModelFromComfy().convert(patcher)
    assert first is second and calls == [1]
    (low,) = DragKitModelFromComfy().convert(patcher, low_vram=True)
    assert low.low_vram and low.unet is first.unet and not first.low_vram and calls == [1]
    assert first.latent_scale == pytest.approx(0.18215) and first.name == "comfy-SD15"
    embeds = reference.prompt_embeds(None)
    torch.testing.assert_close(first.predict_noise(latent, 300, embeds), reference.predict_noise(latent, 300, embeds))


def test_progress_callback_shows_numbers_on_the_node(monkeypatch):
    from dragkit.nodes import comfy

    shown = []
    monkeypatch.setattr(comfy, "progress_text", shown.append)
    with comfy.progress(3, "LoRA") as callback:
        callback(1, 3, {"loss": 0.123456, "note": "text is not shown"})
        callback(2, 3, {})
    assert shown == ["LoRA 1/3  loss 0.1235"]
    assert comfy._progress_text_sender() is None  # no ComfyUI here: showing text is a no-op


def test_progress_reads_device_values_at_most_twice_a_second(monkeypatch):
    # Loops pass their loss as a 0-d tensor (on a GPU, reading it waits for the GPU).
    from dragkit.nodes import comfy

    shown, now = [], [0.0]
    monkeypatch.setattr(comfy, "progress_text", shown.append)
    with comfy.progress(5, "drag", clock=lambda: now[0]) as callback:
        for step, seconds in zip(range(1, 6), (0.0, 0.1, 0.6, 0.7, 0.8)):
            now[0] = seconds
            callback(step, 5, {"loss": torch.tensor(step / 10), "round": step})
    assert shown == ["drag 1/5  loss 0.1  round 1", "drag 3/5  loss 0.3  round 3", "drag 5/5  loss 0.5  round 5"]


class _FakeModelManagement:
    """The parts of ``comfy.model_management`` DragKit's nodes call."""

    def __init__(self):
        self.unloaded = 0

    def unload_all_models(self):
        self.unloaded += 1

    def soft_empty_cache(self):
        pass

    def throw_exception_if_processing_interrupted(self):
        pass

    def get_torch_device(self):
        return torch.device("cpu")

    def intermediate_device(self):
        return torch.device("cpu")


@pytest.mark.parametrize("low_vram", [False, True])
def test_low_vram_unloads_comfyuis_models_before_a_stage(monkeypatch, tiny_model, latent, low_vram):
    from dragkit.nodes import comfy

    fake = _FakeModelManagement()
    monkeypatch.setattr(comfy, "model_management", fake)
    bundle = tiny_model.with_low_vram(low_vram)
    (inversion,) = DragKitDDIMInverter().invert(bundle, _latent_dict(tiny_model, latent), steps=10, strength=0.3)
    DragKitSampler().sample(bundle, inversion, True, 0, -1)
    assert fake.unloaded == (2 if low_vram else 0)
    assert tiny_model.low_vram is False  # the input bundle is unchanged


def test_loader_low_vram_switch():
    (plain,) = DragKitModelLoader().load(model_nodes.TOY_CHOICE)
    (low,) = DragKitModelLoader().load(model_nodes.TOY_CHOICE, low_vram=True)
    assert not plain.low_vram and low.low_vram
