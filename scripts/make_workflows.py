"""Write the shipped workflows (ComfyUI UI format 0.4) from compact graph descriptions.

Widget values are taken from the nodes' own INPUT_TYPES defaults (then overridden per graph), so a
changed default or a new widget is picked up by re-running this script:

    python scripts/make_workflows.py            # writes workflows/*.json
"""

from __future__ import annotations

import json
from pathlib import Path

from dragkit import NODE_CLASS_MAPPINGS

ROOT = Path(__file__).resolve().parent.parent

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")

# The ComfyUI core nodes the workflows use: socket inputs, widgets with default values, outputs.
CORE_NODES = {
    "CheckpointLoaderSimple": {"inputs": [], "widgets": ["v1-5-pruned-emaonly.safetensors"],
                               "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]},
    "LoadImage": {"inputs": [], "widgets": ["example.png", "image"], "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")]},
    "VAEEncode": {"inputs": [("pixels", "IMAGE"), ("vae", "VAE")], "widgets": [], "outputs": [("LATENT", "LATENT")]},
    "VAEDecode": {"inputs": [("samples", "LATENT"), ("vae", "VAE")], "widgets": [], "outputs": [("IMAGE", "IMAGE")]},
    "CLIPTextEncode": {"inputs": [("clip", "CLIP")], "widgets": [""], "outputs": [("CONDITIONING", "CONDITIONING")]},
    "SaveImage": {"inputs": [("images", "IMAGE")], "widgets": ["dragkit"], "outputs": []},
    "PreviewImage": {"inputs": [("images", "IMAGE")], "widgets": [], "outputs": []},
    "MaskPreview": {"inputs": [("mask", "MASK")], "widgets": [], "outputs": []},
}


def node_signature(class_type: str) -> dict:
    """Socket inputs, widget defaults and outputs of a node, core or DragKit."""
    if class_type in CORE_NODES:
        return CORE_NODES[class_type]
    cls = NODE_CLASS_MAPPINGS[class_type]
    inputs, widgets = [], []
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, options) in spec.get(section, {}).items():
            if isinstance(kind, list):
                widgets.append(options.get("default", kind[0] if kind else ""))
            elif kind in WIDGET_TYPES:
                widgets.append(options.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind]))
            else:
                inputs.append((name, kind))
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    return {"inputs": inputs, "widgets": widgets, "outputs": list(zip(names, cls.RETURN_TYPES)),
            "widget_names": [n for s in ("required", "optional") for n, (k, _) in spec.get(s, {}).items()
                             if isinstance(k, list) or k in WIDGET_TYPES]}


def build(graph: list[dict], links: list[tuple]) -> dict:
    """``graph``: nodes ``{"id", "type", "pos", "widgets": {name or index: value}, "title"?}``;
    ``links``: ``(from_id, from_output_name, to_id, to_input_name)``."""
    nodes = {}
    for order, item in enumerate(graph):
        signature = node_signature(item["type"])
        values = list(signature["widgets"])
        names = signature.get("widget_names", [])
        for key, value in item.get("widgets", {}).items():
            values[names.index(key) if isinstance(key, str) else key] = value
        nodes[item["id"]] = {
            "id": item["id"], "type": item["type"], "pos": list(item["pos"]), "size": [320, 60 + 26 * (len(values) + 2)],
            "flags": {}, "order": order, "mode": 0,
            "inputs": [{"name": n, "type": t, "link": None} for n, t in signature["inputs"]],
            "outputs": [{"name": n, "type": t, "links": [], "slot_index": i} for i, (n, t) in enumerate(signature["outputs"])],
            "properties": {"Node name for S&R": item["type"]},
            "widgets_values": values,
        }
        if "title" in item:
            nodes[item["id"]]["title"] = item["title"]
    serialised = []
    for link_id, (src, out_name, dst, in_name) in enumerate(links, start=1):
        outputs = nodes[src]["outputs"]
        slot = next(i for i, o in enumerate(outputs) if o["name"] == out_name)
        inputs = nodes[dst]["inputs"]
        target = next(i for i, x in enumerate(inputs) if x["name"] == in_name)
        kind = outputs[slot]["type"]
        outputs[slot]["links"].append(link_id)
        inputs[target]["link"] = link_id
        serialised.append([link_id, src, slot, dst, target, kind])
    # Optional sockets nobody connects are left out, as ComfyUI itself saves them.
    for node in nodes.values():
        spec = {} if node["type"] in CORE_NODES else NODE_CLASS_MAPPINGS[node["type"]].INPUT_TYPES()
        optional = set(spec.get("optional", {}))
        node["inputs"] = [x for x in node["inputs"] if x["link"] is not None or x["name"] not in optional]
    return {
        "last_node_id": max(nodes), "last_link_id": len(links), "nodes": list(nodes.values()), "links": serialised,
        "groups": [], "config": {}, "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
    }


PROMPT = "a photo"

DRAGDIFFUSION = (
    [
        {"id": 1, "type": "CheckpointLoaderSimple", "pos": (0, 0)},
        {"id": 2, "type": "LoadImage", "pos": (0, 200)},
        {"id": 3, "type": "CLIPTextEncode", "pos": (360, 0), "widgets": {0: PROMPT}},
        {"id": 4, "type": "VAEEncode", "pos": (360, 220)},
        {"id": 5, "type": "DragKitModelFromComfy", "pos": (360, 340)},
        {"id": 6, "type": "DragKitPointPicker", "pos": (0, 560)},
        {"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0)},
        {"id": 8, "type": "DragKitDragOptimizer", "pos": (1080, 0)},
        {"id": 9, "type": "DragKitSampler", "pos": (1440, 0)},
        {"id": 10, "type": "VAEDecode", "pos": (1800, 0)},
        {"id": 11, "type": "SaveImage", "pos": (2100, 0), "widgets": {0: "dragkit/dragdiffusion"}},
    ],
    [
        (1, "MODEL", 5, "model"), (1, "CLIP", 3, "clip"), (1, "VAE", 4, "vae"), (1, "VAE", 10, "vae"),
        (2, "IMAGE", 4, "pixels"), (2, "IMAGE", 6, "image"), (2, "MASK", 6, "mask"), (6, "mask", 8, "mask"),
        (5, "drag_model", 7, "drag_model"), (4, "LATENT", 7, "latent"), (3, "CONDITIONING", 7, "conditioning"),
        (5, "drag_model", 8, "drag_model"), (7, "inversion", 8, "inversion"), (6, "points", 8, "points"),
        (3, "CONDITIONING", 8, "conditioning"),
        (5, "drag_model", 9, "drag_model"), (8, "inversion", 9, "inversion"), (3, "CONDITIONING", 9, "conditioning"),
        (9, "latent", 10, "samples"), (10, "IMAGE", 11, "images"),
    ],
)

GOODDRAG = (
    [
        {"id": 1, "type": "CheckpointLoaderSimple", "pos": (0, 0)},
        {"id": 2, "type": "LoadImage", "pos": (0, 200)},
        {"id": 3, "type": "CLIPTextEncode", "pos": (360, 0), "title": "Empty prompt (GoodDrag)", "widgets": {0: ""}},
        {"id": 4, "type": "VAEEncode", "pos": (360, 220)},
        {"id": 5, "type": "DragKitModelFromComfy", "pos": (360, 340)},
        {"id": 6, "type": "DragKitPointPicker", "pos": (0, 560)},
        {"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0), "widgets": {"strength": 0.75}},
        {"id": 8, "type": "DragKitAlDDSampler", "pos": (1080, 0)},
        {"id": 9, "type": "VAEDecode", "pos": (1440, 0)},
        {"id": 10, "type": "SaveImage", "pos": (1740, 0), "widgets": {0: "dragkit/gooddrag"}},
    ],
    [
        (1, "MODEL", 5, "model"), (1, "CLIP", 3, "clip"), (1, "VAE", 4, "vae"), (1, "VAE", 9, "vae"),
        (2, "IMAGE", 4, "pixels"), (2, "IMAGE", 6, "image"), (2, "MASK", 6, "mask"), (6, "mask", 8, "mask"),
        (5, "drag_model", 7, "drag_model"), (4, "LATENT", 7, "latent"), (3, "CONDITIONING", 7, "conditioning"),
        (5, "drag_model", 8, "drag_model"), (7, "inversion", 8, "inversion"), (6, "points", 8, "points"),
        (3, "CONDITIONING", 8, "conditioning"),
        (8, "latent", 9, "samples"), (9, "IMAGE", 10, "images"),
    ],
)

def guided(method: str, prefix: str):
    """DragonDiffusion / DiffEditor: no LoRA, inversion to pure noise, guidance during sampling."""
    return (
        [
            {"id": 1, "type": "CheckpointLoaderSimple", "pos": (0, 0)},
            {"id": 2, "type": "LoadImage", "pos": (0, 200)},
            {"id": 3, "type": "CLIPTextEncode", "pos": (360, 0), "widgets": {0: PROMPT}},
            {"id": 4, "type": "VAEEncode", "pos": (360, 220)},
            {"id": 5, "type": "DragKitModelFromComfy", "pos": (360, 340)},
            {"id": 6, "type": "DragKitPointPicker", "pos": (0, 560)},
            {"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0), "widgets": {"strength": 1.0}},
            {"id": 8, "type": "DragKitRegionalSDESampler", "pos": (1080, 0), "widgets": {"method": method}},
            {"id": 9, "type": "VAEDecode", "pos": (1440, 0)},
            {"id": 10, "type": "SaveImage", "pos": (1740, 0), "widgets": {0: prefix}},
        ],
        [
            (1, "MODEL", 5, "model"), (1, "CLIP", 3, "clip"), (1, "VAE", 4, "vae"), (1, "VAE", 9, "vae"),
            (2, "IMAGE", 4, "pixels"), (2, "IMAGE", 6, "image"), (2, "MASK", 6, "mask"),
            (5, "drag_model", 7, "drag_model"), (4, "LATENT", 7, "latent"), (3, "CONDITIONING", 7, "conditioning"),
            (5, "drag_model", 8, "drag_model"), (7, "inversion", 8, "inversion"), (6, "points", 8, "points"),
            (6, "mask", 8, "mask"), (3, "CONDITIONING", 8, "conditioning"),
            (8, "latent", 9, "samples"), (9, "IMAGE", 10, "images"),
        ],
    )


AUTO_REGION = (
    [
        {"id": 1, "type": "CheckpointLoaderSimple", "pos": (0, 0)},
        {"id": 2, "type": "LoadImage", "pos": (0, 200)},
        {"id": 3, "type": "CLIPTextEncode", "pos": (360, 0), "widgets": {0: PROMPT}},
        {"id": 4, "type": "VAEEncode", "pos": (360, 220)},
        {"id": 5, "type": "DragKitModelFromComfy", "pos": (360, 340)},
        {"id": 6, "type": "DragKitPointPicker", "pos": (0, 560)},
        {"id": 7, "type": "DragKitFeatureRegion", "pos": (720, 300)},
        {"id": 8, "type": "DragKitDDIMInverter", "pos": (720, 0)},
        {"id": 9, "type": "DragKitDragOptimizer", "pos": (1080, 0)},
        {"id": 10, "type": "DragKitSampler", "pos": (1440, 0)},
        {"id": 11, "type": "VAEDecode", "pos": (1800, 0)},
        {"id": 12, "type": "SaveImage", "pos": (2100, 0), "widgets": {0: "dragkit/auto_region"}},
        {"id": 13, "type": "MaskPreview", "pos": (1080, 420)},
    ],
    [
        (1, "MODEL", 5, "model"), (1, "CLIP", 3, "clip"), (1, "VAE", 4, "vae"), (1, "VAE", 11, "vae"),
        (2, "IMAGE", 4, "pixels"), (2, "IMAGE", 6, "image"),
        (5, "drag_model", 7, "drag_model"), (4, "LATENT", 7, "latent"), (6, "points", 7, "points"),
        (3, "CONDITIONING", 7, "conditioning"), (7, "mask", 13, "mask"),
        (5, "drag_model", 8, "drag_model"), (4, "LATENT", 8, "latent"), (3, "CONDITIONING", 8, "conditioning"),
        (5, "drag_model", 9, "drag_model"), (8, "inversion", 9, "inversion"), (6, "points", 9, "points"),
        (7, "mask", 9, "mask"), (3, "CONDITIONING", 9, "conditioning"),
        (5, "drag_model", 10, "drag_model"), (9, "inversion", 10, "inversion"), (3, "CONDITIONING", 10, "conditioning"),
        (10, "latent", 11, "samples"), (11, "IMAGE", 12, "images"),
    ],
)

WORKFLOWS = {
    "dragdiffusion.json": DRAGDIFFUSION,
    "gooddrag.json": GOODDRAG,
    "dragondiffusion.json": guided("DragonDiffusion", "dragkit/dragondiffusion"),
    "diffeditor.json": guided("DiffEditor", "dragkit/diffeditor"),
    "auto_region.json": AUTO_REGION,
}


def main() -> int:
    out = ROOT / "workflows"
    out.mkdir(exist_ok=True)
    for name, (graph, links) in WORKFLOWS.items():
        (out / name).write_text(json.dumps(build(graph, links), indent=2) + "\n")
        print("wrote", out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
