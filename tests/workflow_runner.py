"""Run a shipped UI-format workflow in plain Python, as ComfyUI would after the frontend converts it.

:func:`to_api_prompt` turns a workflow's nodes and links into the API prompt the frontend sends
(widget values by name, in the frontend's widget order, its own control widgets left out; links as
``[source id, output slot]``). :func:`run_prompt` executes it in dependency order with DragKit's own
node classes; the core output nodes (Save Image, Preview Image) are stand-ins that keep their images,
and Image Composite Masked is a stand-in for same-size images at (0, 0), as ComfyUI computes it
(``source * mask + destination * (1 - mask)``). Only graphs of DragKit nodes plus those core nodes
can run here; the others need ComfyUI.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import dragkit

ROOT = Path(__file__).resolve().parent.parent
OUTPUT_NODES = ("SaveImage", "PreviewImage")


def load_generator():
    """``scripts/make_workflows.py`` as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("dragkit_make_workflows", ROOT / "scripts" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def widget_names(generator, class_type: str) -> list[tuple[str, bool]]:
    """``(name, in the API prompt)`` of each widget, in ``widgets_values`` order."""
    if class_type in generator.CORE_NODES:
        return [(name, name not in ("upload", generator.CONTROL_WIDGET))
                for name, _ in generator.CORE_NODES[class_type]["widgets"]]
    spec = dragkit.NODE_CLASS_MAPPINGS[class_type].INPUT_TYPES()
    return [(name, serialised) for name, _, serialised in generator.frontend_widgets(spec)]


def to_api_prompt(workflow: dict, generator=None) -> dict:
    """The API prompt ``{id: {"class_type", "inputs"}}`` of a UI-format (0.4) workflow."""
    generator = generator or load_generator()
    links = {link[0]: link for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        names = widget_names(generator, node["type"])
        values = node.get("widgets_values", [])
        if len(values) != len(names):
            raise ValueError(f"node {node['id']} ({node['type']}): {len(values)} widget values for {len(names)} widgets")
        inputs = {name: value for (name, serialised), value in zip(names, values) if serialised}
        for socket in node.get("inputs", []):
            if socket.get("link") is not None:
                _, source, slot, _, _, _ = links[socket["link"]]
                inputs[socket["name"]] = [str(source), slot]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


def run_prompt(prompt: dict) -> dict:
    """Execute every node once; returns ``{node id: outputs}`` (a stand-in output node's is its images)."""
    results: dict[str, tuple] = {}

    def run(node_id: str):
        if node_id in results:
            return results[node_id]
        node = prompt[node_id]
        kwargs = {}
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                value = run(value[0])[value[1]]
            kwargs[name] = value
        if node["class_type"] in OUTPUT_NODES:
            results[node_id] = (kwargs["images"],)
            return results[node_id]
        if node["class_type"] == "ImageCompositeMasked":
            results[node_id] = (composite_masked(**kwargs),)
            return results[node_id]
        cls = dragkit.NODE_CLASS_MAPPINGS[node["class_type"]]
        output = getattr(cls(), cls.FUNCTION)(**kwargs)
        results[node_id] = output["result"] if isinstance(output, dict) else output
        return results[node_id]

    for node_id in prompt:
        run(node_id)
    return results


def composite_masked(destination, source, x, y, resize_source, mask=None):
    """ComfyUI's Image Composite Masked for same-size ``(B, H, W, C)`` images at (0, 0)."""
    if (x, y) != (0, 0) or resize_source or destination.shape != source.shape:
        raise NotImplementedError("the stand-in composites same-size images at (0, 0) only")
    if mask is None:
        return source.clone()
    weight = mask.reshape(-1, *mask.shape[-2:])[..., None].to(destination)
    return source * weight + destination * (1 - weight)
