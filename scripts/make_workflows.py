"""Write the shipped workflows (ComfyUI UI format 0.4) from compact graph descriptions.

Widget values are taken from the nodes' own INPUT_TYPES defaults (then overridden per graph), so a
changed default or a new widget is picked up by re-running this script:

    python scripts/make_workflows.py                 # writes workflows/*.json and web/examples/*.png
    python scripts/make_workflows.py --expectations  # prints what the live tests check, as JSON

A workflow's ``widgets_values`` are positional, in the order the frontend creates the widgets, and
the frontend creates more widgets than the Python inputs: :func:`frontend_widgets` models its rules,
so every value lands on the widget it was meant for. Two kinds of graphs are written: the SD1.5
ones for real photos (a checkpoint and Load Image), and ``toy_*.json`` on the embedded toy model
and a bundled example picture, which run with nothing downloaded.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from PIL import Image

from dragkit import NODE_CLASS_MAPPINGS
from dragkit.core.editor_state import EditorState
from dragkit.core.overlay import draw_drag_overlay, to_pil
from dragkit.nodes.image_nodes import EXAMPLES_DIR
from dragkit.nodes.model_nodes import TOY_CHOICE
from dragkit.evaluation.toybench import COLOUR_TOLERANCE, make_case

ROOT = Path(__file__).resolve().parent.parent

WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")

# The frontend's "control after generate" widget (comfyui-frontend-package 1.58, its INT, FLOAT and
# combo widget constructors): INT inputs get one when their spec sets `control_after_generate`, or,
# when the spec says nothing, when they are named `seed` or `noise_seed`; FLOAT and combo inputs only
# when the spec sets it. Its value starts at the spec's mode when that is one of CONTROL_MODES, else
# at "randomize" (FLOAT: "fixed"). It follows its input in `widgets_values` and is left out of the
# API prompt.
CONTROL_MODES = ("fixed", "increment", "decrement", "randomize")
SEED_NAMES = ("seed", "noise_seed")
CONTROL_WIDGET = "control_after_generate"


def control_after(kind, name: str, options: dict) -> str | None:
    """The starting value of the control widget the frontend adds after this input, or ``None``."""
    flag = options.get("control_after_generate")
    if kind == "INT":
        wanted = flag if flag is not None else name in SEED_NAMES
    elif kind == "FLOAT" or isinstance(kind, list):
        wanted = flag
    else:
        return None
    if not wanted:
        return None
    if kind == "FLOAT":
        return "fixed"
    return flag if flag in CONTROL_MODES else "randomize"


def frontend_widgets(spec: dict) -> list[tuple[str, object, bool]]:
    """The widgets the frontend makes for a node's ``INPUT_TYPES()``, in order:
    ``(name, default value, serialised into the API prompt)``."""
    widgets = []
    for section in ("required", "optional"):
        for name, (kind, options) in spec.get(section, {}).items():
            if isinstance(kind, list):
                default = options.get("default", kind[0] if kind else "")
            elif kind in WIDGET_TYPES and not options.get("forceInput"):
                default = options.get("default", {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}[kind])
            else:
                continue
            widgets.append((name, default, True))
            control = control_after(kind, name, options)
            if control is not None:
                widgets.append((CONTROL_WIDGET, control, False))
    return widgets


# The ComfyUI core nodes the workflows use: socket inputs, widgets (name, value) and outputs. Their
# widget lists were read back from a live frontend (tests/web/comfyui.test.mjs checks them).
CORE_NODES = {
    "CheckpointLoaderSimple": {"inputs": [], "widgets": [("ckpt_name", "v1-5-pruned-emaonly.safetensors")],
                               "outputs": [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]},
    "LoadImage": {"inputs": [], "widgets": [("image", "example.png"), ("upload", "image")],
                  "outputs": [("IMAGE", "IMAGE"), ("MASK", "MASK")]},
    "VAEEncode": {"inputs": [("pixels", "IMAGE"), ("vae", "VAE")], "widgets": [], "outputs": [("LATENT", "LATENT")]},
    "VAEDecode": {"inputs": [("samples", "LATENT"), ("vae", "VAE")], "widgets": [], "outputs": [("IMAGE", "IMAGE")]},
    "CLIPTextEncode": {"inputs": [("clip", "CLIP")], "widgets": [("text", "")],
                       "outputs": [("CONDITIONING", "CONDITIONING")]},
    "SaveImage": {"inputs": [("images", "IMAGE")], "widgets": [("filename_prefix", "dragkit")], "outputs": []},
    "PreviewImage": {"inputs": [("images", "IMAGE")], "widgets": [], "outputs": []},
    "MaskPreview": {"inputs": [("mask", "MASK")], "widgets": [], "outputs": []},
    "ImageCompositeMasked": {"inputs": [("destination", "IMAGE"), ("source", "IMAGE"), ("mask", "MASK")],
                             "widgets": [("x", 0), ("y", 0), ("resize_source", False)],
                             "outputs": [("IMAGE", "IMAGE")]},
}
# Every shipped workflow keeps what lies outside the editable mask: the sampler with keep on, then
# ComfyUI's Image Composite Masked pastes the input's pixels back with the sampler's keep_mask.
KEEP = {"keep_outside_mask": True}


def node_signature(class_type: str) -> dict:
    """Socket inputs, widgets ``(name, default)`` in frontend order, and outputs of a node, core or DragKit."""
    if class_type in CORE_NODES:
        return CORE_NODES[class_type]
    cls = NODE_CLASS_MAPPINGS[class_type]
    spec = cls.INPUT_TYPES()
    widgets = [(name, value) for name, value, _ in frontend_widgets(spec)]
    names = {name for name, _ in widgets}
    inputs = [(name, kind) for section in ("required", "optional") for name, (kind, _) in spec.get(section, {}).items()
              if name not in names]
    outputs = list(zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.RETURN_TYPES))
    return {"inputs": inputs, "widgets": widgets, "outputs": outputs}


# Nodes that need more room than their widgets: the picker's editor (its minimum, set by the widget
# too) and an image preview.
NODE_SIZES = {"DragKitPointPicker": (440, 560), "SaveImage": (320, 300)}


def build(graph: list[dict], links: list[tuple]) -> dict:
    """``graph``: nodes ``{"id", "type", "pos", "widgets": {name: value}, "title"?}``;
    ``links``: ``(from_id, from_output_name, to_id, to_input_name)``."""
    nodes = {}
    for order, item in enumerate(graph):
        signature = node_signature(item["type"])
        names = [name for name, _ in signature["widgets"]]
        values = [value for _, value in signature["widgets"]]
        default_size = NODE_SIZES.get(item["type"], (320, 60 + 26 * (len(values) + 2)))
        for key, value in item.get("widgets", {}).items():
            values[names.index(key)] = value
        nodes[item["id"]] = {
            "id": item["id"], "type": item["type"], "pos": list(item["pos"]), "size": list(item.get("size", default_size)),
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
        "groups": [], "config": {}, "extra": {"ds": {"scale": 0.7, "offset": [80, 110]}}, "version": 0.4,
    }


PROMPT = "a photo"
MODEL, PROMPT_NODE, IMAGE, LATENT, PICKER = 5, 3, 2, 4, 6  # ids of the nodes every graph starts with


def front(prompt: str = PROMPT, title: str | None = None, picker_mask: bool = True) -> tuple[list, list]:
    """Checkpoint, image, prompt, VAE Encode, DRAG_MODEL bridge and Point Picker: nodes 1-6."""
    prompt_node = {"id": PROMPT_NODE, "type": "CLIPTextEncode", "pos": (360, 0), "widgets": {"text": prompt}}
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
    """VAE Decode, Image Composite Masked (the input pasted back outside the sampler's keep_mask) and
    Save Image at ids ``decode``, ``decode + 1`` and ``decode + 2``."""
    composite, save = decode + 1, decode + 2
    nodes = [{"id": decode, "type": "VAEDecode", "pos": (x, 0)},
             {"id": composite, "type": "ImageCompositeMasked", "pos": (x, 120), "title": "Keep outside the mask"},
             {"id": save, "type": "SaveImage", "pos": (x + 300, 0), "widgets": {"filename_prefix": prefix}}]
    links = [(1, "VAE", decode, "vae"), (latent_from, "latent", decode, "samples"),
             (decode, "IMAGE", composite, "destination"), (IMAGE, "IMAGE", composite, "source"),
             (latent_from, "keep_mask", composite, "mask"), (composite, "IMAGE", save, "images")]
    return nodes, links


def graph(*parts: tuple[list, list]) -> tuple[list, list]:
    return [n for nodes, _ in parts for n in nodes], [link for _, links in parts for link in links]


LORA = 12


def lora(preset: str) -> tuple[list, list]:
    """The LoRA Trainer between the DRAG_MODEL bridge and everything downstream."""
    return ([{"id": LORA, "type": "DragKitLoraTrainer", "pos": (720, 300), "widgets": {"preset": preset,
                                                                                       "steps": 0}}],
            [(LATENT, "LATENT", LORA, "latent"), *conditioned(LORA)])


def dragdiffusion() -> tuple[list, list]:
    middle = (
        [{"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0)},
         {"id": 8, "type": "DragKitDragOptimizer", "pos": (1080, 0)},
         {"id": 9, "type": "DragKitSampler", "pos": (1440, 0), "widgets": KEEP}],
        [(LATENT, "LATENT", 7, "latent"), *conditioned(7, LORA),
         (7, "inversion", 8, "inversion"), (PICKER, "points", 8, "points"), (PICKER, "mask", 8, "mask"),
         *conditioned(8, LORA), (8, "inversion", 9, "inversion"), (PICKER, "mask", 9, "mask"), *conditioned(9, LORA)],
    )
    return graph(front(), lora("DragDiffusion"), middle, back(20, 9, "dragkit/dragdiffusion", 1800))


def gooddrag() -> tuple[list, list]:
    middle = (
        [{"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0), "widgets": {"strength": 0.75}},
         {"id": 8, "type": "DragKitAlDDSampler", "pos": (1080, 0), "widgets": KEEP}],
        [(LATENT, "LATENT", 7, "latent"), *conditioned(7, LORA),
         (7, "inversion", 8, "inversion"), (PICKER, "points", 8, "points"), (PICKER, "mask", 8, "mask"),
         *conditioned(8, LORA)],
    )
    return graph(front("", "Empty prompt (GoodDrag)"), lora("GoodDrag"), middle, back(20, 8, "dragkit/gooddrag", 1440))


def guided(method: str, prefix: str) -> tuple[list, list]:
    """DragonDiffusion / DiffEditor: no LoRA, inversion to pure noise, guidance during sampling."""
    middle = (
        [{"id": 7, "type": "DragKitDDIMInverter", "pos": (720, 0), "widgets": {"strength": 1.0}},
         {"id": 8, "type": "DragKitRegionalSDESampler", "pos": (1080, 0), "widgets": {"method": method, **KEEP}}],
        [(LATENT, "LATENT", 7, "latent"), *conditioned(7),
         (7, "inversion", 8, "inversion"), (PICKER, "points", 8, "points"), (PICKER, "mask", 8, "mask"), *conditioned(8)],
    )
    return graph(front(), middle, back(20, 8, prefix, 1440))


def auto_region() -> tuple[list, list]:
    """DragDiffusion whose editable mask is the feature-correspondence region of the handles."""
    middle = (
        [{"id": 7, "type": "DragKitFeatureRegion", "pos": (720, 300)},
         {"id": 8, "type": "DragKitDDIMInverter", "pos": (720, 0)},
         {"id": 9, "type": "DragKitDragOptimizer", "pos": (1080, 0)},
         {"id": 10, "type": "DragKitSampler", "pos": (1440, 0), "widgets": KEEP},
         {"id": 13, "type": "MaskPreview", "pos": (1080, 420)}],
        [(LATENT, "LATENT", 7, "latent"), (PICKER, "points", 7, "points"), *conditioned(7), (7, "mask", 13, "mask"),
         (LATENT, "LATENT", 8, "latent"), *conditioned(8),
         (8, "inversion", 9, "inversion"), (PICKER, "points", 9, "points"), (7, "mask", 9, "mask"), *conditioned(9),
         (9, "inversion", 10, "inversion"), (7, "mask", 10, "mask"), *conditioned(10)],
    )
    return graph(front(picker_mask=False), middle, back(20, 10, "dragkit/auto_region", 1800))


# ------------------------------------------------------------------ the embedded model, nothing downloaded
EXAMPLE_SEED = 1_000_005  # a held-out scene (never seen in training) that every toy workflow moves
EXAMPLE = "toy_square.png"
TOY_MODEL, TOY_IMAGE, TOY_LATENT, TOY_PICKER, TOY_LORA = 1, 2, 3, 4, 5
THUMBNAIL_SIDE = 256


def example_scene(seed: int = EXAMPLE_SEED) -> tuple:
    """The example picture ``(3, 64, 64)`` and a picker state: the benchmark's drag of its shape, and a
    brush stroke along the path (the shape and where it goes) as the editable mask."""
    case = make_case(seed)
    shape = case.scene.shape
    (cx, cy), (dx, dy) = shape.centre, case.offset
    stroke = {"mode": "paint", "radius": round(shape.size + 3, 2),
              "points": [[round(cx, 2), round(cy, 2)], [round(cx + dx, 2), round(cy + dy, 2)]]}
    handle, target = case.points.handles[0], case.points.targets[0]
    state = EditorState(case.points.image_size, ((tuple(round(v, 2) for v in handle), tuple(round(v, 2) for v in target)),),
                        (stroke,))
    return case.scene.image, json.dumps(state.to_dict())


def toy_front(state: str) -> tuple[list, list]:
    """Embedded model, example picture, its latent and the Point Picker with the example's drag: nodes 1-4."""
    nodes = [
        {"id": TOY_MODEL, "type": "DragKitModelLoader", "pos": (0, 0), "widgets": {"model_name": TOY_CHOICE}},
        {"id": TOY_IMAGE, "type": "DragKitExampleImage", "pos": (0, 140), "widgets": {"example": EXAMPLE}},
        {"id": TOY_LATENT, "type": "DragKitVAEEncode", "pos": (480, 140)},
        {"id": TOY_PICKER, "type": "DragKitPointPicker", "pos": (0, 280), "widgets": {"editor_state": state}},
    ]
    links = [(TOY_MODEL, "drag_model", TOY_LATENT, "drag_model"), (TOY_IMAGE, "image", TOY_LATENT, "image"),
             (TOY_IMAGE, "image", TOY_PICKER, "image")]
    return nodes, links


def toy_back(decode: int, model: int, latent_from: int, prefix: str, x: int) -> tuple[list, list]:
    """DragKit VAE Decode, Image Composite Masked and Save Image at ids ``decode`` to ``decode + 2``
    (see :func:`back`)."""
    composite, save = decode + 1, decode + 2
    nodes = [{"id": decode, "type": "DragKitVAEDecode", "pos": (x, 0)},
             {"id": composite, "type": "ImageCompositeMasked", "pos": (x, 140), "title": "Keep outside the mask"},
             {"id": save, "type": "SaveImage", "pos": (x + 320, 140), "widgets": {"filename_prefix": prefix}}]
    links = [(model, "drag_model", decode, "drag_model"), (latent_from, "latent", decode, "latent"),
             (decode, "image", composite, "destination"), (TOY_IMAGE, "image", composite, "source"),
             (latent_from, "keep_mask", composite, "mask"), (composite, "IMAGE", save, "images")]
    return nodes, links


def toy_gooddrag(state: str) -> tuple[list, list]:
    middle = (
        [{"id": 6, "type": "DragKitDDIMInverter", "pos": (900, 0), "widgets": {"strength": 0.75}},
         {"id": 7, "type": "DragKitAlDDSampler", "pos": (1300, 0), "widgets": KEEP}],
        [(TOY_MODEL, "drag_model", 6, "drag_model"), (TOY_LATENT, "latent", 6, "latent"),
         (6, "inversion", 7, "inversion"), (TOY_MODEL, "drag_model", 7, "drag_model"),
         (TOY_PICKER, "points", 7, "points"), (TOY_PICKER, "mask", 7, "mask")],
    )
    return graph(toy_front(state), middle, toy_back(8, TOY_MODEL, 7, "dragkit/toy_gooddrag", 1700))


def toy_dragdiffusion(state: str) -> tuple[list, list]:
    middle = (
        [{"id": TOY_LORA, "type": "DragKitLoraTrainer", "pos": (480, 300),
          "widgets": {"preset": "DragDiffusion", "steps": 0}},
         {"id": 6, "type": "DragKitDDIMInverter", "pos": (900, 0)},
         {"id": 7, "type": "DragKitDragOptimizer", "pos": (1300, 0)},
         {"id": 8, "type": "DragKitSampler", "pos": (1700, 0), "widgets": KEEP}],
        [(TOY_MODEL, "drag_model", TOY_LORA, "drag_model"), (TOY_LATENT, "latent", TOY_LORA, "latent"),
         (TOY_LORA, "drag_model", 6, "drag_model"), (TOY_LATENT, "latent", 6, "latent"),
         (TOY_LORA, "drag_model", 7, "drag_model"), (6, "inversion", 7, "inversion"),
         (TOY_PICKER, "points", 7, "points"), (TOY_PICKER, "mask", 7, "mask"),
         (TOY_LORA, "drag_model", 8, "drag_model"), (7, "inversion", 8, "inversion"), (TOY_PICKER, "mask", 8, "mask")],
    )
    return graph(toy_front(state), middle, toy_back(9, TOY_LORA, 8, "dragkit/toy_dragdiffusion", 2100))


def toy_diffeditor(state: str) -> tuple[list, list]:
    middle = (
        [{"id": 6, "type": "DragKitDDIMInverter", "pos": (900, 0), "widgets": {"strength": 1.0}},
         {"id": 7, "type": "DragKitRegionalSDESampler", "pos": (1300, 0), "widgets": {"method": "DiffEditor", **KEEP}}],
        [(TOY_MODEL, "drag_model", 6, "drag_model"), (TOY_LATENT, "latent", 6, "latent"),
         (TOY_MODEL, "drag_model", 7, "drag_model"), (6, "inversion", 7, "inversion"),
         (TOY_PICKER, "points", 7, "points"), (TOY_PICKER, "mask", 7, "mask")],
    )
    return graph(toy_front(state), middle, toy_back(8, TOY_MODEL, 7, "dragkit/toy_diffeditor", 1700))


TOY_WORKFLOWS = {
    "toy_gooddrag.json": toy_gooddrag,
    "toy_dragdiffusion.json": toy_dragdiffusion,
    "toy_diffeditor.json": toy_diffeditor,
}

WORKFLOWS = {
    "dragdiffusion.json": dragdiffusion,
    "gooddrag.json": gooddrag,
    "dragondiffusion.json": lambda: guided("DragonDiffusion", "dragkit/dragondiffusion"),
    "diffeditor.json": lambda: guided("DiffEditor", "dragkit/diffeditor"),
    "auto_region.json": auto_region,
}


def widget_values_by_name(workflow: dict) -> dict[str, dict]:
    """``{node id: {"type", "widgets": {name: value}}}``: what each widget of a workflow is meant to hold."""
    nodes = {}
    for node in workflow["nodes"]:
        names = [name for name, _ in node_signature(node["type"])["widgets"]]
        nodes[str(node["id"])] = {"type": node["type"], "widgets": dict(zip(names, node["widgets_values"]))}
    return nodes


def expectations() -> dict:
    """What the live tests (tests/web/comfyui.test.mjs) check in a real frontend: every widget's meant
    value per shipped workflow, and where the example's shape should go in the toy workflows."""
    case = make_case(EXAMPLE_SEED)
    workflows = {path.name: widget_values_by_name(json.loads(path.read_text()))
                 for path in sorted((ROOT / "workflows").glob("*.json"))}
    return {
        "workflows": workflows,
        "toy_workflows": sorted(TOY_WORKFLOWS),
        "example": {"name": EXAMPLE, "colour": list(case.scene.colour), "tolerance": COLOUR_TOLERANCE,
                    "offset": list(case.offset), "handle": list(case.points.handles[0])},
        "seeded_nodes": sorted(name for name, cls in NODE_CLASS_MAPPINGS.items()
                               if any("seed" in section for section in cls.INPUT_TYPES().values())),
    }


def main(argv: list[str] | None = None) -> int:
    if argv and argv[0] == "--expectations":
        print(json.dumps(expectations()))
        return 0
    out = ROOT / "workflows"
    out.mkdir(exist_ok=True)
    for name, make in WORKFLOWS.items():
        (out / name).write_text(json.dumps(build(*make()), indent=2) + "\n")
        print("wrote", out / name)
    image, state = example_scene()
    # The template browser's thumbnail (<name>.jpg beside the workflow): the example and its drag.
    parsed = EditorState.from_json(state)
    size = parsed.image_size
    thumbnail = to_pil(draw_drag_overlay(image, parsed.points(size), parsed.mask(size)))
    thumbnail = thumbnail.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.NEAREST)
    for name, make in TOY_WORKFLOWS.items():
        (out / name).write_text(json.dumps(build(*make(state)), indent=2) + "\n")
        thumbnail.save(out / name.replace(".json", ".jpg"), quality=90)
        print("wrote", out / name, "and its thumbnail")
    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    to_pil(image).save(EXAMPLES_DIR / EXAMPLE)
    print("wrote", EXAMPLES_DIR / EXAMPLE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
