"""Images through a DRAG_MODEL's own VAE, in ComfyUI's conventions, and the bundled example pictures."""

from __future__ import annotations

import pytest
import torch

from dragkit.core.errors import DragKitInputError, DragKitModelError
from dragkit.core.model import load_toy_model
from dragkit.evaluation.scenes import make_scene
from dragkit.nodes.image_nodes import DragKitExampleImage, DragKitVAEDecode, DragKitVAEEncode, example_names


@pytest.fixture(scope="module")
def toy():
    return load_toy_model()


def test_encode_gives_comfyui_unscaled_latents_and_decode_inverts_it(toy):
    scene = make_scene(1_000_001).image  # a held-out picture, (3, 64, 64)
    image = scene.permute(1, 2, 0)[None]  # ComfyUI IMAGE (1, H, W, 3)
    before = image.clone()
    (latent,) = DragKitVAEEncode().encode(toy, image)
    assert torch.equal(image, before)  # the input is untouched
    assert set(latent) == {"samples"} and latent["samples"].shape == (1, 4, 16, 16)
    # Unscaled, as ComfyUI's VAE Encode: the model's own encoder output divided by its latent scale.
    torch.testing.assert_close(latent["samples"] * toy.latent_scale, toy.encode(scene[None]))
    (decoded,) = DragKitVAEDecode().decode(toy, latent)
    assert decoded.shape == (1, 64, 64, 3) and 0 <= float(decoded.min()) and float(decoded.max()) <= 1
    error = ((decoded - image) ** 2).mean()
    assert 10 * torch.log10(1 / error) > 25  # the toy VAE's held-out reconstruction is about 31 dB


def test_alpha_channel_and_batches(toy):
    images = torch.rand(2, 32, 32, 4)
    (latent,) = DragKitVAEEncode().encode(toy, images)
    assert latent["samples"].shape == (2, 4, 8, 8)
    torch.testing.assert_close(latent["samples"], DragKitVAEEncode().encode(toy, images[..., :3])[0]["samples"])


def test_errors_name_the_input_and_the_fix(toy, tiny_model):
    with pytest.raises(DragKitInputError, match="multiples of 4"):
        DragKitVAEEncode().encode(toy, torch.rand(1, 30, 32, 3))
    with pytest.raises(DragKitInputError, match="`image` must be an IMAGE"):
        DragKitVAEEncode().encode(toy, torch.rand(30, 32, 3))
    with pytest.raises(DragKitModelError, match="VAE Encode / VAE Decode"):
        DragKitVAEEncode().encode(tiny_model, torch.rand(1, 32, 32, 3))
    with pytest.raises(DragKitModelError, match="no VAE of its own"):
        DragKitVAEDecode().decode(tiny_model, {"samples": torch.zeros(1, 4, 8, 8)})
    with pytest.raises(DragKitInputError, match="LATENT"):
        DragKitVAEDecode().decode(toy, torch.zeros(1, 4, 8, 8))


def test_example_pictures():
    names = example_names()
    assert names, "no example pictures in web/examples"
    assert DragKitExampleImage.INPUT_TYPES()["required"]["example"][0] == names
    (image,) = DragKitExampleImage().load(names[0])
    assert image.shape == (1, 64, 64, 3) and image.dtype == torch.float32
    assert 0 <= float(image.min()) and float(image.max()) <= 1 and float(image.std()) > 0.05
    with pytest.raises(DragKitInputError, match="not a bundled example"):
        DragKitExampleImage().load("../../README.md")
