"""Optional compiled UNet blocks (issue 18, item 5). The tests compile with Dynamo's ``eager`` backend:
it traces every block as ``torch.compile`` does and runs the traced graph, so a block that cannot
be captured, a hook or an early stop that compiling breaks, or a changed result shows, without the
minutes a real backend takes on two CPU cores."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import inverted_tiny_model

from dragkit.core.compiled import COMPILED_BLOCKS, compile_unet_blocks
from dragkit.core.drag import DragConfig
from dragkit.core.methods import diffeditor, gooddrag
from dragkit.core.methods.dragdiffusion import drag_latent
from dragkit.core.points import DragPoints

POINTS = DragPoints.from_pairs((128, 128), [((40, 64), (72, 64))])
MASK = torch.zeros(128, 128)
MASK[24:104, 24:104] = 1


@pytest.fixture
def fresh():
    yield inverted_tiny_model(num_steps=20, strength=0.7)  # its own UNet: compiling changes it in place
    torch._dynamo.reset()


def test_compiled_blocks_give_the_same_drag_and_edits(fresh):
    model, inversion = fresh
    config = DragConfig(feature_layers=(1,), max_steps=5, gradient_checkpointing=True)
    aldd = gooddrag.AlDDConfig(drag=dataclasses.replace(gooddrag.GOODDRAG_DRAG, feature_layers=(1,)),
                               drag_steps=1, rounds=2, steps_per_round=1)
    guided = dataclasses.replace(diffeditor.diffeditor_config(), guidance_steps=3)
    guided = dataclasses.replace(guided, guidance=dataclasses.replace(guided.guidance, feature_layers=(1, 2)))

    def run():
        return (drag_latent(model, inversion, POINTS, MASK, config), gooddrag.edit(model, inversion, POINTS, MASK, aldd),
                diffeditor.edit(model, inversion, POINTS, MASK, guided))

    eager = run()
    count = compile_unet_blocks(model.unet, backend="eager")
    assert count == sum(isinstance(m, COMPILED_BLOCKS) for m in model.unet.modules()) > 0
    compiled = run()
    for before, after in zip(eager, compiled):
        assert torch.equal(after.latent, before.latent)
        assert after.points.handles == before.points.handles
