"""DragonDiffusion / DiffEditor: equivalences, regional SDE, time travel, memory bank, guidance, geometry."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import inverted_tiny_model

from dragkit.core.attention import (
    MemoryBankAttention, ReferenceAttentionConfig, attention_edit, decoder_self_attention_layers,
)
from dragkit.core.errors import DragKitInputError
from dragkit.core.features import unet_feature_maps
from dragkit.core.guidance import drag_geometry, energies, guidance, move_geometry, object_affine
from dragkit.core.methods.diffeditor import (
    RegionalSDEConfig, ddim_step, diffeditor_config, dragondiffusion_config, initial_latent, regional_sde_sample,
)
from dragkit.core.sampling import reference_sample

SIZE = (128, 128)


@pytest.fixture(scope="module")
def setup():
    model, inversion = inverted_tiny_model(num_steps=30, strength=1.0)
    mask = torch.zeros(*SIZE)
    mask[30:100, 20:110] = 1
    return model, inversion, mask


def _config(**changes):
    config = diffeditor_config()
    config.guidance.feature_layers = (1, 2)  # the tiny UNet has two up blocks
    return dataclasses.replace(config, **changes)


def _geometry(config, mask):
    return drag_geometry(torch.tensor([[40.0, 64.0]]), torch.tensor([[72.0, 64.0]]), mask, (16, 16), SIZE, config.guidance)


def test_without_guidance_sde_or_time_travel_it_is_deterministic_ddim(setup):
    model, inversion, mask = setup
    config = _config(sde_eta=0.0, time_travel_steps=(), memory_bank=False,
                     guidance=dataclasses.replace(_config().guidance, energy_scale=0))
    out = regional_sde_sample(model, inversion, _geometry(config, mask), config)
    expected, _ = reference_sample(model, inversion, reference=ReferenceAttentionConfig(enabled=False))
    torch.testing.assert_close(out, expected, atol=1e-4, rtol=1e-4)


def test_regional_sde_step_is_deterministic_outside_the_region():
    generator = torch.Generator().manual_seed(0)
    latent, noise, variance_noise = (torch.randn(1, 4, 8, 8, generator=generator) for _ in range(3))
    region = torch.zeros(1, 1, 8, 8)
    region[..., 2:5, 2:5] = 1
    alpha_t, alpha_prev = torch.tensor(0.5), torch.tensor(0.6)
    stochastic = ddim_step(latent, noise, noise, alpha_t, alpha_prev, 0.4 * region, variance_noise)
    deterministic = ddim_step(latent, noise, noise, alpha_t, alpha_prev, 0.0, None)
    outside = region.expand_as(latent) < 0.5
    assert torch.equal(stochastic[outside], deterministic[outside])
    assert (stochastic[~outside] - deterministic[~outside]).abs().min() > 0


def test_sde_with_an_empty_region_changes_nothing(setup):
    model, inversion, mask = setup
    base = _config(time_travel_steps=(), memory_bank=False, guidance=dataclasses.replace(_config().guidance, energy_scale=0))
    geometry = _geometry(base, mask)
    deterministic = regional_sde_sample(model, inversion, geometry, dataclasses.replace(base, sde_eta=0.0))
    nowhere = dataclasses.replace(geometry, edit_region=torch.zeros_like(geometry.edit_region))
    torch.testing.assert_close(regional_sde_sample(model, inversion, nowhere, base), deterministic)
    assert not torch.allclose(regional_sde_sample(model, inversion, geometry, base), deterministic)


def test_time_travel_unet_call_count(setup):
    model, inversion, mask = setup
    config = _config(memory_bank=False, sde_eta=0.0)
    calls = []
    handle = model.unet.register_forward_pre_hook(lambda *a: calls.append(1))
    try:
        regional_sde_sample(model, inversion, _geometry(config, mask), config)
    finally:
        handle.remove()
    steps = len(inversion.timesteps)  # 30
    guided = [i for i in range(steps) if i < 30 and (i < 10 or i % 2 == 0)]
    repeats = {i: 3 for i in (22, 24, 26, 28)}
    # Per take of a step: 1 batched prediction, +2 feature passes if guided; between takes 1 inversion.
    expected = sum(repeats.get(i, 1) * (1 + 2 * (i in guided)) + repeats.get(i, 1) - 1 for i in range(steps))
    assert len(calls) == expected


def test_memory_bank_changes_only_the_edited_branch(setup):
    model, inversion, _ = setup
    source, edited = inversion.source, inversion.source.flip(-1)
    embeds = model.prompt_embeds(None, 2)
    plain = model.predict_noise(torch.cat([source, edited]), 500, embeds)
    for mode in MemoryBankAttention.MODES:
        bank = MemoryBankAttention(mode, start_step=0)
        with attention_edit(model.unet, bank, decoder_self_attention_layers(model.unet)):
            shared = model.predict_noise(torch.cat([source, edited]), 500, embeds)
            same = model.predict_noise(torch.cat([source, source]), 500, embeds)
        torch.testing.assert_close(shared[0], plain[0])
        assert (shared[1] - plain[1]).abs().max() > 1e-4
        torch.testing.assert_close(same[1], same[0], atol=1e-5, rtol=1e-5)
    with pytest.raises(DragKitInputError, match="mode"):
        MemoryBankAttention("mix")


def test_one_guidance_step_pulls_target_features_toward_the_source(setup):
    model, inversion, mask = setup
    config = _config()
    geometry = _geometry(config, mask)
    source, t = inversion.source, inversion.t
    embeds = model.prompt_embeds(None)
    grid = (32, 32)

    def edit_energy(latent):
        ref, _ = unet_feature_maps(model, source, t, embeds, (1, 2), grid, mode="nearest")
        cur, _ = unet_feature_maps(model, latent, t, embeds, (1, 2), grid, mode="nearest")
        return float(energies(cur, ref, geometry, config.guidance)[0])

    term, info = guidance(model, source, source, t, embeds, geometry, config.guidance)
    assert info["edit"] == pytest.approx(edit_energy(source), rel=1e-4)
    # Guidance is added to epsilon, so x0 moves along -term: the edit energy falls.
    assert edit_energy(source - term * 0.05 / term.abs().max()) < edit_energy(source)
    assert (term * (1 - geometry.edit_region)).abs().max() < term.abs().max()


def test_move_and_resize_geometry():
    mask = torch.zeros(64, 64)
    mask[16:32, 8:24] = 1  # a 16x16 object, centre (15.5, 23.5)
    config = _config().guidance
    moved = move_geometry(mask, (16.0, 0.0), 1.0, (8, 8), config)  # feature grid 16x16: 4 px per cell
    assert moved.mode == "move"
    destination = moved.edit_region[0, 0] > 0.5  # latent 8x8: object cells rows 2-3, cols 1-2
    assert destination.nonzero().tolist() == [[2, 3], [2, 4], [3, 3], [3, 4]]
    assert not moved.content_region[4:8, 2:10].any() and moved.content_region[0, 0]
    resized = move_geometry(mask, (0.0, 0.0), 2.0, (8, 8), config)
    assert resized.mode == "resize"
    assert int((resized.edit_region > 0.5).sum()) == 16
    affine = object_affine(mask > 0.5, (3.0, 4.0), 2.0)
    centre = affine[0] @ torch.tensor([15.5, 23.5, 1.0])
    torch.testing.assert_close(centre, torch.tensor([18.5, 27.5]))
    with pytest.raises(DragKitInputError, match="empty"):
        move_geometry(torch.zeros(64, 64), (1.0, 0.0), 1.0, (8, 8), config)


def test_initial_latent_copies_the_handle_patch(setup):
    model, inversion, mask = setup
    config = _config()
    geometry = _geometry(config, mask)  # handle cell (8, 5) -> target cell (8, 9) at latent resolution
    start = initial_latent(inversion.source, geometry, config.guidance.upsample)
    torch.testing.assert_close(start[..., 7:10, 8:11], inversion.source[..., 7:10, 4:7])
    assert torch.equal(start[..., :5, :], inversion.source[..., :5, :])


def test_presets():
    assert dragondiffusion_config().sde_eta == 0 and dragondiffusion_config().time_travel_steps == ()
    assert diffeditor_config().sde_eta == 0.4 and diffeditor_config("move").guidance.step_scale == 8e-2
    with pytest.raises(DragKitInputError, match="sde_eta"):
        RegionalSDEConfig(sde_eta=2.0)


def test_regional_sde_node(setup):
    from dragkit.core.points import DragPoints
    from dragkit.nodes.guidance_nodes import DragKitRegionalSDESampler

    model, inversion, mask = setup
    node = DragKitRegionalSDESampler()
    points = DragPoints.from_pairs(SIZE, [((40, 64), (72, 64))])
    common = dict(dx=0.0, dy=0.0, scale=1.0, sde_eta=0.4, time_travel=False, memory_bank=True, energy_scale=-1.0,
                  w_edit=-1.0, w_content=-1.0, w_inpaint=-1.0, feature_layers="1,2", seed=0)
    out, keep = node.sample(model, inversion, "DiffEditor", "drag", points=points, **common)
    assert keep.shape == (1, 128, 128) and not keep.any()  # keep off: nothing pasted back
    assert out["samples"].shape == inversion.source.shape and torch.isfinite(out["samples"]).all()
    moved, _ = node.sample(model, inversion, "DragonDiffusion", "move", mask=mask[None], **dict(common, dx=16.0))
    assert not torch.allclose(moved["samples"], out["samples"])
    with pytest.raises(DragKitInputError, match="no drag pairs"):
        node.sample(model, inversion, "DiffEditor", "drag", **common)
    with pytest.raises(DragKitInputError, match="needs a `mask`"):
        node.sample(model, inversion, "DiffEditor", "move", **common)
    with pytest.raises(DragKitInputError, match="comma-separated"):
        node.sample(model, inversion, "DiffEditor", "drag", points=points, **dict(common, feature_layers="a"))


def test_guidance_layers_follow_the_model_unless_given(setup):
    from dragkit.core.methods.diffeditor import for_model
    from dragkit.nodes.guidance_nodes import parse_layers

    model = setup[0]
    model.hints = model.hints.replace(guidance_layers=None)
    assert for_model(diffeditor_config(), model).guidance.feature_layers == (2, 3)  # no hint: the method's default
    model.hints = model.hints.replace(guidance_layers=(1, 2))
    assert for_model(diffeditor_config(), model).guidance.feature_layers == (1, 2)
    assert parse_layers("3, 1") == (3, 1)
    for bad in ("", "a", "1,-2"):
        with pytest.raises(DragKitInputError, match="feature_layers"):
            parse_layers(bad)


def test_energy_scale_and_step_windows_follow_the_model(setup):
    from dragkit.core.methods.diffeditor import for_model, for_mode

    model = setup[0]
    saved = model.hints
    try:
        model.hints = saved.replace(energy_scale_factor=0.5, guidance_steps=20, sde_steps=(5, 9),
                                    time_travel_steps=(12, 14))
        drag = for_model(diffeditor_config("drag"), model)
        move = for_model(diffeditor_config("move"), model)
        assert drag.guidance.energy_scale == 1000.0 and move.guidance.energy_scale == 250.0  # per mode, then the factor
        assert (drag.guidance_steps, drag.dense_steps, drag.sde_steps, drag.time_travel_steps) == (20, 10, (5, 9), (12, 14))
        dragon = for_model(dragondiffusion_config(), model)
        # DragonDiffusion keeps guiding every step and gets no SDE or time travel from a window hint.
        assert (dragon.guidance_steps, dragon.dense_steps, dragon.sde_eta, dragon.time_travel_steps) == (20, 20, 0.0, ())
        model.hints = saved.replace(energy_scale_factor=None, guidance_steps=None, sde_steps=None, time_travel_steps=None)
        assert for_model(for_mode(RegionalSDEConfig(), "move"), model).guidance.energy_scale == 500.0  # no hint: the paper's
    finally:
        model.hints = saved


@pytest.mark.parametrize("method", ["DiffEditor", "DragonDiffusion"])
@pytest.mark.parametrize("mode", ["drag", "move", "resize"])
def test_node_defaults_are_the_library_settings(setup, method, mode):
    """With its widgets at their defaults the node samples with exactly the benchmark's settings, in every mode
    (the guidance widgets once held the drag scales, so a move ran at 2000 instead of 500)."""
    from dragkit.core.methods.diffeditor import for_model, for_mode
    from dragkit.core.methods.registry import get_method
    from dragkit.nodes.guidance_nodes import METHODS, DragKitRegionalSDESampler, sampler_config

    model = setup[0]
    required = DragKitRegionalSDESampler.INPUT_TYPES()["required"]
    names = ("sde_eta", "time_travel", "memory_bank", "energy_scale", "w_edit", "w_content", "w_inpaint", "feature_layers")
    widgets = {name: required[name][1]["default"] for name in names}
    library = for_model(for_mode(get_method(METHODS[method].name).preset(), mode), model)
    assert sampler_config(model, method, mode, seed=library.seed, **widgets) == library
    changed = sampler_config(model, method, mode, seed=0, **dict(widgets, energy_scale=123.0, w_inpaint=0.0))
    assert changed.guidance.energy_scale == 123.0 and changed.guidance.w_inpaint == 0.0  # a set widget wins


def test_move_sde_region_covers_the_object_and_its_destination():
    mask = torch.zeros(64, 64)
    mask[16:32, 8:24] = 1
    moved = move_geometry(mask, (16.0, 0.0), 1.0, (8, 8), _config().guidance)
    cells = (moved.sde_region[0, 0] > 0.5).nonzero().tolist()
    # object at latent rows 2-3, cols 1-2; destination cols 3-4 (the reference's edit region for the SDE)
    assert cells == [[2, 1], [2, 2], [2, 3], [2, 4], [3, 1], [3, 2], [3, 3], [3, 4]]
    assert (moved.edit_region[0, 0] > 0.5).sum() == 4  # the edit gradient still acts on the destination only


def test_drag_boxes_stay_whole_at_the_border():
    """A point in the outermost feature cell once crashed the energies (a box cut by the border)."""
    config = _config().guidance
    geometry = drag_geometry(torch.tensor([[0.0, 0.0]]), torch.tensor([[127.0, 127.0]]), torch.ones(*SIZE), (16, 16),
                             SIZE, config)
    rows = 32  # the guidance grid is 2x the latent
    assert geometry.handles.tolist() == [[1.0, 1.0]] and geometry.targets.tolist() == [[rows - 2.0, rows - 2.0]]
    features = [torch.randn(1, 8, rows, rows)]
    edit, content = energies(features, [torch.randn(1, 8, rows, rows)], geometry, config)
    assert torch.isfinite(edit) and torch.isfinite(content)


def test_patch_copy_uses_the_latent_cell_holding_the_feature_cell():
    latent = torch.arange(64.0).reshape(1, 1, 8, 8)
    geometry = drag_geometry(torch.tensor([[0.0, 0.0]]), torch.tensor([[0.0, 0.0]]), torch.ones(64, 64), (8, 8),
                             (64, 64), _config().guidance)
    # feature cell 7 lies in latent cell floor(7/2) = 3 (rounding 3.5 would give 4); target 9 -> latent cell 4
    geometry.handles, geometry.targets = torch.tensor([[7.0, 7.0]]), torch.tensor([[9.0, 9.0]])
    out = initial_latent(latent, geometry, 2)
    assert out[0, 0, 4, 4] == latent[0, 0, 3, 3]
