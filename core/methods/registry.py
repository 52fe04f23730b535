"""The registry of drag methods: what the nodes' choice lists, ``dragkit bench --methods`` and the
README's tables read.

Every entry runs the same way: invert the image latent at the method's ``strength``, resolve its
preset with the model's recommendations (``for_model``), then call its module's ``edit``::

    method = METHODS["gooddrag"]
    inversion = ddim_invert(model, latent, strength=method.strength)
    result = method.edit(model, inversion, points, mask, method.for_model(method.preset(), model))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

from ..errors import check_choice
from ..schedule import DRAGDIFFUSION_STRENGTH, GOODDRAG_STRENGTH
from . import diffeditor, dragdiffusion, gooddrag
from .result import EditResult

# The papers' own inversion depth for the training-free methods: from pure noise (Sampler.edit).
GUIDANCE_STRENGTH = 1.0


@dataclasses.dataclass(frozen=True)
class Method:
    """One published method (or a variant) as DragKit runs it.

    Attributes:
        name: the benchmark's name, e.g. ``"dragdiffusion-ipms"``.
        title: the name a ComfyUI user picks, e.g. ``"GoodDrag IPMS"``.
        module: the ``core.methods`` module that assembles it.
        preset: a fresh copy of its default configuration (the paper's code's settings).
        strength: the inversion strength the paper uses.
        summary: one line for lists and docs.
    """

    name: str
    title: str
    module: Any
    preset: Callable[[], Any]
    strength: float
    summary: str

    def for_model(self, config: Any, model) -> Any:
        """``config`` with the model's recommendations (the module's ``for_model``)."""
        return self.module.for_model(config, model)

    def edit(self, model, inversion, points, mask=None, config=None, prompt_embeds=None, callback=None,
             **options) -> EditResult:
        """The module's ``edit``; ``config`` ``None`` = the preset with the model's recommendations.
        ``options``: the keywords every method's ``edit`` takes beyond these (``keep``)."""
        config = self.for_model(self.preset(), model) if config is None else config
        return self.module.edit(model, inversion, points, mask, config, prompt_embeds, callback, **options)


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("dragdiffusion", "DragDiffusion", dragdiffusion, lambda: dataclasses.replace(dragdiffusion.DRAGDIFFUSION),
               DRAGDIFFUSION_STRENGTH, "latent optimisation at one timestep: motion supervision + point tracking"),
        Method("dragdiffusion-ipms", "GoodDrag IPMS", dragdiffusion, lambda: dataclasses.replace(dragdiffusion.DRAGDIFFUSION_IPMS),
               DRAGDIFFUSION_STRENGTH, "DragDiffusion supervised against the original handle features (IPMS)"),
        Method("gooddrag", "GoodDrag", gooddrag, gooddrag.AlDDConfig, GOODDRAG_STRENGTH,
               "alternating drag and denoising steps (AlDD) with IPMS"),
        Method("diffeditor", "DiffEditor", diffeditor, diffeditor.diffeditor_config, GUIDANCE_STRENGTH,
               "DragonDiffusion with regional SDE and time travel"),
        Method("dragondiffusion", "DragonDiffusion", diffeditor, diffeditor.dragondiffusion_config, GUIDANCE_STRENGTH,
               "training-free energy guidance from feature correspondence, memory bank"),
    )
}


def methods_of(module) -> dict[str, Method]:
    """The registered methods ``module`` assembles, by title: a node's choice list."""
    return {method.title: method for method in METHODS.values() if method.module is module}


def get_method(name: str) -> Method:
    """The method called ``name``; a clear error naming the choices otherwise."""
    check_choice(name, "method", tuple(METHODS))
    return METHODS[name]
