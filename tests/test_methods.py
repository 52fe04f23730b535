"""The method registry, and each method run as a ComfyUI graph equal to the same method in the benchmark."""

from __future__ import annotations

import pytest
import torch

from dragkit.core.inversion import ddim_invert
from dragkit.core.methods import diffeditor, dragdiffusion, gooddrag
from dragkit.core.methods.registry import METHODS, get_method, methods_of
from dragkit.core.model import load_toy_model
from dragkit.core.errors import DragKitInputError
from dragkit.evaluation import toybench
from dragkit.nodes.drag_nodes import SUPERVISION_METHODS, DragKitAlDDSampler, DragKitDragOptimizer
from dragkit.nodes.guidance_nodes import METHODS as GUIDANCE_METHODS
from dragkit.nodes.guidance_nodes import DragKitRegionalSDESampler
from dragkit.nodes.inversion_nodes import DragKitSampler

CASE_SEED = 1_000_005  # the README's example scene: every method moves the shape on it


def defaults(node_class) -> dict:
    """Each required widget's value on a freshly added node (a list's first entry)."""
    required = node_class.INPUT_TYPES()["required"]
    return {name: spec[0][0] if isinstance(spec[0], list) else spec[1]["default"]
            for name, spec in required.items() if isinstance(spec[0], list) or "default" in spec[1]}


def decoded(model, latent: dict) -> torch.Tensor:
    """A node's LATENT (ComfyUI's unscaled convention) as the ``(3, H, W)`` picture."""
    return model.decode(latent["samples"].to(model.device) * model.latent_scale)[0]


@pytest.fixture(scope="module")
def toy():
    model = load_toy_model()
    case = toybench.make_case(CASE_SEED)
    return model, case, model.encode(case.scene.image[None])


def test_registry_feeds_the_nodes_and_the_benchmark():
    assert list(toybench.METHODS) == ["baseline", "oracle", *METHODS, "warp-inpaint"]
    assert SUPERVISION_METHODS == methods_of(dragdiffusion) and list(SUPERVISION_METHODS) == ["DragDiffusion", "GoodDrag IPMS"]
    assert GUIDANCE_METHODS == methods_of(diffeditor) and list(GUIDANCE_METHODS)[0] == "DiffEditor"
    assert methods_of(gooddrag) == {"GoodDrag": METHODS["gooddrag"]}
    required = DragKitDragOptimizer.INPUT_TYPES()["required"]
    assert required["supervision"][0] == list(SUPERVISION_METHODS)
    assert DragKitRegionalSDESampler.INPUT_TYPES()["required"]["method"][0] == list(GUIDANCE_METHODS)
    with pytest.raises(DragKitInputError, match="`method` must be one of 'dragdiffusion'"):
        get_method("dragon")


def test_presets_are_fresh_copies():
    for method in METHODS.values():
        first = method.preset()
        assert first == method.preset() and first is not method.preset()


def test_dragdiffusion_graph_equals_the_benchmark(toy):
    """Drag Optimizer then Sampler, default widgets, give the benchmark's `dragdiffusion` picture."""
    model, case, latent = toy
    expected = toybench.METHODS["dragdiffusion"](model, case)
    inversion = ddim_invert(model, latent, strength=METHODS["dragdiffusion"].strength)
    edited, _ = DragKitDragOptimizer().drag(drag_model=model, inversion=inversion, points=case.points,
                                            mask=case.editable[None], **defaults(DragKitDragOptimizer))
    out, _ = DragKitSampler().sample(drag_model=model, inversion=edited, **defaults(DragKitSampler))
    torch.testing.assert_close(decoded(model, out), expected, rtol=0, atol=1e-5)  # only the LATENT's unscaling rounds
    assert float((decoded(model, out) - model.decode(latent)[0]).abs().max()) > 0.1  # it is an edit


def test_gooddrag_node_equals_the_benchmark(toy):
    model, case, latent = toy
    expected = toybench.METHODS["gooddrag"](model, case)
    inversion = ddim_invert(model, latent, strength=METHODS["gooddrag"].strength)
    out, final, _ = DragKitAlDDSampler().sample(drag_model=model, inversion=inversion, points=case.points,
                                             mask=case.editable[None], **defaults(DragKitAlDDSampler))
    torch.testing.assert_close(decoded(model, out), expected, rtol=0, atol=1e-5)
    assert final.handles != case.points.handles and final.targets == case.points.targets


def test_diffeditor_node_equals_the_benchmark(toy):
    model, case, latent = toy
    expected = toybench.METHODS["diffeditor"](model, case)
    inversion = ddim_invert(model, latent, strength=METHODS["diffeditor"].strength)
    widgets = defaults(DragKitRegionalSDESampler)
    assert widgets["method"] == "DiffEditor" and widgets["mode"] == "drag" and widgets["feature_layers"] == "-1"
    out, _ = DragKitRegionalSDESampler().sample(drag_model=model, inversion=inversion, points=case.points,
                                                mask=case.editable[None], **widgets)
    torch.testing.assert_close(decoded(model, out), expected, rtol=0, atol=1e-5)
