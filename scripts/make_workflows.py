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
MODEL, PROMPT_NODE, IMAGE, LATENT, PICKER = 5, 3, 2, 4, 6  # ids of the nodes every graph starts with


def front(prompt: str = PROMPT, title: str | None = None, picker_mask: bool = True) -> tuple[list, list]:
    """Checkpoint, image, prompt, VAE Encode, DRAG_MODEL bridge and Point Picker: nodes 1-6."""
    prompt_node = {"id": PROMPT_NODE, "type": "CLIPTextEncode", "pos": (360, 0), "widgets": {0: prompt}}
    if title:
        prompt_node["title"] = title
    nodes = [
        {"id": 1, "type": "CheckpointLoaderSimple", "pos": (0, 0)},
        {"id": IMAGE, "type": "LoadImage", "pos": (0, 200)},
        prompt_node,
        {"id": LATENT, "type": "VAEEncode", "pos": (360, 220)},
        {"id": MODEL, "type": "DragKitModelFromComfy", "pos": (360, 340)},
        {"id": PICKER, "type": "DragKitPointPicker", "pos": (0, 560)},
    ]
    links = [(1, "MODEL", MODEL, "model"), (1, "CLIP", PROMPT_NODE, "clip"), (1, "VAE", LATENT, "vae"),
             (IMAGE, "IMAGE", LATENT, "pixels"), (IMAGE, "IMAGE", PICKER, "image")]
    if picker_mask:
        links.append((IMAGE, "MASK", PICKER, "mask"))
    return nodes, links


def conditioned(node: int, model: int = MODEL) -> list:
    """Links giving ``node`` the DRAG_MODEL and the prompt."""
    return [(model, "drag_model", node, "drag_model"), (PROMPT_NODE, "CONDITIONING", node, "conditioning")]


def back(decode: int, latent_from: int, prefix: str, x: int) -> tuple[list, list]:
    """VAE Decode and Save Image at ids ``decode`` and ``decode + 1``."""
    nodes = [{"id": decode, "type": "VAEDecode", "pos": (x, 0)},
             {"id": decode + 1, "type": "SaveImage", "pos": (x + 300, 0), "widgets": {0: prefix}}]
    links = [(1, "VAE", decode, "vae"), (latent_from, "latent", decode, "samples"), (decode, "IMAGE", decode + 1, "images")]
    return nodes, links


def graph(*parts: tuple[list, list]) -> tuple[list, list]:
    return [n for nodes, _ in parts for n in nodes], [link for _, links in parts for link in links]


LORA = 12


def lora(preset: str) -> tuple[list, list]:
    """The LoRA Trainer between the DRAG_MODEL bridge and everything downstream."""
    return ([{"id": LORA, "type": "DragKitLoraTrainer", "pos": (360, 480), "widgets": {"preset": preset,
                                                                                       "steps": 0}}],
            [(LATENT, "LATENT", LORA, "latent"), *conditioned(LORA)])


def dragdiffusion() -> tuple[list, list]:
    middle = (
        [{"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0)},
         {"id": 8, "type": "DragKitDragOptimizer", "pos": (1080, 0)},
         {"id": 9, "type": "DragKitSampler", "pos": (1440, 0)}],
        [(LATENT, "LATENT", 7, "latent"), *conditioned(7, LORA),
         (7, "inversion", 8, "inversion"), (PICKER, "points", 8, "points"), (PICKER, "mask", 8, "mask"),
         *conditioned(8, LORA), (8, "inversion", 9, "inversion"), *conditioned(9, LORA)],
    )
    return graph(front(), lora("DragDiffusion"), middle, back(10, 9, "dragkit/dragdiffusion", 1800))


def gooddrag() -> tuple[list, list]:
    middle = (
        [{"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0), "widgets": {"strength": 0.75}},
         {"id": 8, "type": "DragKitAlDDSampler", "pos": (1080, 0)}],
        [(LATENT, "LATENT", 7, "latent"), *conditioned(7, LORA),
         (7, "inversion", 8, "inversion"), (PICKER, "points", 8, "points"), (PICKER, "mask", 8, "mask"),
         *conditioned(8, LORA)],
    )
    return graph(front("", "Empty prompt (GoodDrag)"), lora("GoodDrag"), middle, back(9, 8, "dragkit/gooddrag", 1440))


def guided(method: str, prefix: str) -> tuple[list, list]:
    """DragonDiffusion / DiffEditor: no LoRA, inversion to pure noise, guidance during sampling."""
    middle = (
        [{"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0), "widgets": {"strength": 1.0}},
         {"id": 8, "type": "DragKitRegionalSDESampler", "pos": (1080, 0), "widgets": {"method": method}}],
        [(LATENT, "LATENT", 7, "latent"), *conditioned(7),
         (7, "inversion", 8, "inversion"), (PICKER, "points", 8, "points"), (PICKER, "mask", 8, "mask"), *conditioned(8)],
    )
    return graph(front(), middle, back(9, 8, prefix, 1440))


def auto_region() -> tuple[list, list]:
    """DragDiffusion whose editable mask is the feature-correspondence region of the handles."""
    middle = (
        [{"id": 7, "type": "DragKitFeatureRegion", "pos": (720, 300)},
         {"id": 8, "type": "DragKitDDIMInverter", "pos": (720, 0)},
         {"id": 9, "type": "DragKitDragOptimizer", "pos": (1080, 0)},
         {"id": 10, "type": "DragKitSampler", "pos": (1440, 0)},
         {"id": 13, "type": "MaskPreview", "pos": (1080, 420)}],
        [(LATENT, "LATENT", 7, "latent"), (PICKER, "points", 7, "points"), *conditioned(7), (7, "mask", 13, "mask"),
         (LATENT, "LATENT", 8, "latent"), *conditioned(8),
         (8, "inversion", 9, "inversion"), (PICKER, "points", 9, "points"), (7, "mask", 9, "mask"), *conditioned(9),
         (9, "inversion", 10, "inversion"), *conditioned(10)],
    )
    return graph(front(picker_mask=False), middle, back(11, 10, "dragkit/auto_region", 1800))


WORKFLOWS = {
    "dragdiffusion.json": dragdiffusion,
    "gooddrag.json": gooddrag,
    "dragondiffusion.json": lambda: guided("DragonDiffusion", "dragkit/dragondiffusion"),
    "diffeditor.json": lambda: guided("DiffEditor", "dragkit/diffeditor"),
    "auto_region.json": auto_region,
}


def main() -> int:
    out = ROOT / "workflows"
    out.mkdir(exist_ok=True)
    for name, make in WORKFLOWS.items():
        (out / name).write_text(json.dumps(build(*make()), indent=2) + "\n")
        print("wrote", out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
