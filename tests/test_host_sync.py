"""The hot loops read nothing back to the host per step, except the decisions they need (issue 18).

Counted by :mod:`host_reads` on the CPU: each read there would be a wait for the GPU. The tests
compare a loop's reads at two lengths, so a fixed cost per stage (the input checks, the final
finite check, reading the distances once at the end) cancels and only per-step reads remain.
The hook sees DragKit's own reads only, not copies to the device or waits inside torch, diffusers
or kornia; two tests below cover the copies DragKit controls (timesteps, noise), and on a GPU
``dragkit bench syncs`` counts every wait.
"""

from __future__ import annotations

import dataclasses
import sys

import pytest
import torch
from conftest import inverted_tiny_model, make_tiny_model, smooth_latent
from host_reads import counting_host_reads, is_dragkit_file

from dragkit.core.drag import DragConfig
from dragkit.core.inversion import ddim_invert
from dragkit.core.lora import LoraTrainingConfig, train_lora
from dragkit.core.methods import diffeditor, gooddrag
from dragkit.core.methods.dragdiffusion import drag_latent
from dragkit.core.points import DragPoints
from dragkit.core.sampling import reference_sample

POINTS = DragPoints.from_pairs((128, 128), [((40, 64), (72, 64)), ((40, 40), (56, 44))])
MASK = torch.zeros(128, 128)
MASK[24:104, 24:104] = 1


@pytest.fixture(scope="module")
def setup():
    return inverted_tiny_model(num_steps=20, strength=0.7)


def _reads(run) -> int:
    with counting_host_reads() as reads:
        run()
    return sum(reads.values())


@pytest.mark.parametrize("every", [1, 4])
def test_the_drag_reads_only_its_stop_check(setup, every):
    model, inversion = setup

    def drag(steps):  # stop_distance 0: never arrives, so every step runs
        config = DragConfig(feature_layers=(1,), max_steps=steps, stop_distance=0.0, stop_check_every=every)
        return lambda: drag_latent(model, inversion, POINTS, MASK, config, callback=lambda *a: None)

    assert _reads(drag(16)) - _reads(drag(8)) == 8 // every


@pytest.mark.parametrize("distance", [12.0, 15.5])
def test_checking_every_few_steps_gives_the_same_drag(setup, distance):
    # The handles arrive part-way (16 grid pixels to go; "arrived" below `distance`), at a step the
    # sparser checks do not look at: the result is still the state at that step.
    model, inversion = setup
    results = [drag_latent(model, inversion, POINTS, MASK, DragConfig(feature_layers=(1,), max_steps=30,
                                                                       stop_distance=distance, stop_check_every=every))
               for every in (1, 3, 4, 7)]
    first = results[0]
    assert 0 < first.steps < 30 and len(first.distances) == first.steps + 1
    for other in results[1:]:
        assert torch.equal(other.latent, first.latent)
        assert other.steps == first.steps and other.distances == first.distances
        assert other.points.handles == first.points.handles


def test_the_drag_stop_check_defaults_to_every_step_on_the_cpu_and_every_few_on_a_gpu():
    config = DragConfig()
    assert config.stop_check_interval(torch.device("cpu")) == 1
    assert config.stop_check_interval(torch.device("cuda")) > 1
    assert DragConfig(stop_check_every=2).stop_check_interval(torch.device("cuda")) == 2
    with pytest.raises(ValueError, match="stop_check_every"):
        DragConfig(stop_check_every=0)


def test_gooddrag_reads_nothing_per_round(setup):
    model, inversion = setup

    def run(rounds, early_stop=False):
        drag = dataclasses.replace(gooddrag.GOODDRAG_DRAG, feature_layers=(1,))
        config = gooddrag.AlDDConfig(drag=drag, drag_steps=2, rounds=rounds, steps_per_round=1, early_stop=early_stop)
        return lambda: gooddrag.edit(model, inversion, POINTS, MASK, config, callback=lambda *a: None)

    assert _reads(run(3)) == _reads(run(1))
    # The paper's early stop is a decision per round: two reads (arrived? moved?), never per Adam step.
    assert _reads(run(3, early_stop=True)) - _reads(run(1, early_stop=True)) <= 2 * 2 * 2


def test_lora_training_reads_nothing_per_step():
    model, latent = make_tiny_model(), smooth_latent()

    def train(steps, seed):  # a new seed each time: a repeated one would reuse the trained adapter
        return lambda: train_lora(model, latent, config=LoraTrainingConfig(steps=steps, seed=seed, batch_size=2),
                                  callback=lambda *a: None)

    train(1, 0)()  # the first LoRA on a UNet hashes its weights once (the adapter's name)
    assert _reads(train(4, 1)) == _reads(train(2, 2))


def test_guided_sampling_reads_nothing_per_step():
    readings = []
    for num_steps in (10, 20):
        model, inversion = inverted_tiny_model(num_steps=num_steps, strength=1.0)
        config = diffeditor.dragondiffusion_config()
        config = dataclasses.replace(config, guidance=dataclasses.replace(config.guidance, feature_layers=(1, 2)))
        readings.append(_reads(lambda: diffeditor.edit(model, inversion, POINTS, MASK, config, callback=lambda *a: None)))
    assert readings[0] == readings[1]


def test_inversion_and_reference_sampling_read_nothing_per_step():
    model, latent = make_tiny_model(), smooth_latent()
    inverted = {steps: ddim_invert(model, latent, num_steps=steps, strength=1.0) for steps in (10, 20)}
    assert _reads(lambda: ddim_invert(model, latent, num_steps=20, strength=1.0)) == \
        _reads(lambda: ddim_invert(model, latent, num_steps=10, strength=1.0))
    assert _reads(lambda: reference_sample(model, inverted[20])) == _reads(lambda: reference_sample(model, inverted[10]))


def test_noise_and_timesteps_are_drawn_on_the_models_device(setup, monkeypatch):
    model, inversion = setup
    draws = []
    for name in ("randn", "randint"):
        original = getattr(torch, name)

        def draw(*args, _original=original, _name=name, **kwargs):
            generator = kwargs.get("generator")
            if is_dragkit_file(sys._getframe(1).f_code.co_filename):  # DragKit's draws, not the fixtures'
                draws.append((_name, kwargs.get("device"), None if generator is None else generator.device))
            return _original(*args, **kwargs)

        monkeypatch.setattr(torch, name, draw)
    train_lora(make_tiny_model(), smooth_latent(), config=LoraTrainingConfig(steps=1, seed=5))
    config = dataclasses.replace(diffeditor.dragondiffusion_config(), sde_eta=1.0)
    config = dataclasses.replace(config, guidance=dataclasses.replace(config.guidance, feature_layers=(1, 2)))
    diffeditor.edit(model, inversion, POINTS, MASK, config)
    seeded = [draw for draw in draws if draw[2] is not None]
    assert {name for name, _, _ in seeded} == {"randn", "randint"}
    assert all(device == model.device and generator == model.device for _, device, generator in seeded)


def test_the_unet_gets_its_timestep_as_a_tensor_on_its_device(setup):
    # A Python number would be copied to the device by diffusers at every call (a wait for the GPU).
    model, inversion = setup
    seen = []
    handle = model.unet.register_forward_pre_hook(lambda module, args: seen.append(args[1]))
    try:
        reference_sample(model, inversion)
        drag_latent(model, inversion, POINTS, MASK, DragConfig(feature_layers=(1,), max_steps=2))
    finally:
        handle.remove()
    assert seen and all(isinstance(t, torch.Tensor) and t.ndim == 0 and t.device == model.device for t in seen)
    assert [int(t) for t in seen[: len(inversion.denoise_timesteps)]] == list(inversion.denoise_timesteps)


def test_the_guidance_geometry_moves_to_the_device_whole():
    from dragkit.core.guidance import DRAG_GUIDANCE, MOVE_GUIDANCE, drag_geometry, move_geometry

    editable = torch.zeros(128, 128)
    editable[32:96, 32:96] = 1
    drag = drag_geometry(torch.tensor([[40.0, 64.0]]), torch.tensor([[72.0, 64.0]]), editable, (16, 16), (128, 128),
                         DRAG_GUIDANCE)
    move = move_geometry(editable, (20.0, 0.0), 1.0, (16, 16), MOVE_GUIDANCE)
    for geometry in (drag, move):
        moved = geometry.to("meta")
        tensors = [value for value in vars(moved).values() if isinstance(value, torch.Tensor)]
        assert len(tensors) >= 6 and all(t.device.type == "meta" for t in tensors)
        assert moved.mode == geometry.mode and moved.pulls_background == geometry.pulls_background
