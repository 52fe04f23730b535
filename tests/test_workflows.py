"""Every shipped workflow against the pack's node definitions: types exist, links type-check,
widget values fit their inputs, required sockets are connected."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import dragkit
from dragkit.core.points import DragPoints

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / "workflows").glob("*.json"))
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")

# ComfyUI core nodes used by the workflows: {input name: type}, output types, widget count.
CORE = {
    "CheckpointLoaderSimple": ({}, ["MODEL", "CLIP", "VAE"], 1),
    "LoadImage": ({}, ["IMAGE", "MASK"], 2),
    "VAEEncode": ({"pixels": "IMAGE", "vae": "VAE"}, ["LATENT"], 0),
    "VAEDecode": ({"samples": "LATENT", "vae": "VAE"}, ["IMAGE"], 0),
    "CLIPTextEncode": ({"clip": "CLIP"}, ["CONDITIONING"], 1),
    "SaveImage": ({"images": "IMAGE"}, [], 1),
    "PreviewImage": ({"images": "IMAGE"}, [], 0),
    "MaskPreview": ({"mask": "MASK"}, [], 0),
}


def _spec(node_type):
    spec = dragkit.NODE_CLASS_MAPPINGS[node_type].INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}, set(spec.get("required", {}))


def test_there_are_workflows():
    names = {p.name for p in WORKFLOWS}
    assert {"dragdiffusion.json", "gooddrag.json", "dragondiffusion.json", "diffeditor.json", "auto_region.json"} <= names


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_matches_the_node_definitions(path):
    workflow = json.loads(path.read_text())
    assert workflow["version"] == 0.4
    nodes = {node["id"]: node for node in workflow["nodes"]}
    assert workflow["last_node_id"] == max(nodes)

    for node in nodes.values():
        kind = node["type"]
        assert kind in dragkit.NODE_CLASS_MAPPINGS or kind in CORE, f"unknown node type {kind}"
        if kind in CORE:
            inputs, outputs, widgets = CORE[kind]
            assert [o["type"] for o in node["outputs"]] == outputs
            assert len(node["widgets_values"]) == widgets
            for socket in node["inputs"]:
                assert inputs[socket["name"]] == socket["type"]
            continue
        cls = dragkit.NODE_CLASS_MAPPINGS[kind]
        assert [o["type"] for o in node["outputs"]] == list(cls.RETURN_TYPES), kind
        spec, required = _spec(kind)
        widget_names = [n for n, (t, _) in spec.items() if isinstance(t, list) or t in WIDGET_TYPES]
        assert len(node["widgets_values"]) == len(widget_names), f"{kind}: widget count"
        for name, value in zip(widget_names, node["widgets_values"]):
            kind_of, options = spec[name]
            if isinstance(kind_of, list):
                # File lists are empty outside ComfyUI; fixed choices must match.
                assert not kind_of or value in kind_of or name.endswith("_name"), f"{kind}.{name}={value!r}"
            elif kind_of == "INT":
                assert isinstance(value, int) and options.get("min", value) <= value <= options.get("max", value)
            elif kind_of == "FLOAT":
                assert isinstance(value, (int, float)) and options.get("min", value) <= value <= options.get("max", value)
            elif kind_of == "BOOLEAN":
                assert isinstance(value, bool)
            else:
                assert isinstance(value, str)
            if kind == "DragKitPoints":
                DragPoints.from_json(value)
        sockets = {s["name"]: s for s in node["inputs"]}
        for name, (kind_of, _) in spec.items():
            if name in widget_names:
                continue
            if name in required:
                assert sockets.get(name, {}).get("link") is not None, f"{kind}.{name} is not connected"
            if name in sockets:
                assert sockets[name]["type"] == kind_of

    for link_id, src, slot, dst, target_slot, kind in workflow["links"]:
        out = nodes[src]["outputs"][slot]
        into = nodes[dst]["inputs"][target_slot]
        assert out["type"] == kind == into["type"], f"link {link_id}: {out['type']} -> {into['type']}"
        assert link_id in out["links"] and into["link"] == link_id
