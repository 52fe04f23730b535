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
from dragkit.evaluation.toybench import COLOUR_TOLERANCE, WARP_FILL_STRENGTH, make_case

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
    "VAEEncodeForInpaint": {"inputs": [("pixels", "IMAGE"), ("vae", "VAE"), ("mask", "MASK")],
                            "widgets": [("grow_mask_by", 6)], "outputs": [("LATENT", "LATENT")]},
    "KSampler": {"inputs": [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                            ("latent_image", "LATENT")],
                 "widgets": [("seed", 0), ("control_after_generate", "randomize"), ("steps", 20), ("cfg", 8.0),
                             ("sampler_name", "euler"), ("scheduler", "normal"), ("denoise", 1.0)],
                 "outputs": [("LATENT", "LATENT")]},
    "UNETLoader": {"inputs": [], "widgets": [("unet_name", ""), ("weight_dtype", "default")],
                   "outputs": [("MODEL", "MODEL")]},
    "DualCLIPLoader": {"inputs": [], "widgets": [("clip_name1", ""), ("clip_name2", ""), ("type", "sdxl"),
                                                 ("device", "default")], "outputs": [("CLIP", "CLIP")]},
    "VAELoader": {"inputs": [], "widgets": [("vae_name", "")], "outputs": [("VAE", "VAE")]},
    "FluxGuidance": {"inputs": [("conditioning", "CONDITIONING")], "widgets": [("guidance", 3.5)],
                     "outputs": [("CONDITIONING", "CONDITIONING")]},
    "ConditioningZeroOut": {"inputs": [("conditioning", "CONDITIONING")], "widgets": [],
                            "outputs": [("CONDITIONING", "CONDITIONING")]},
    "InpaintModelConditioning": {"inputs": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"), ("vae", "VAE"),
                                            ("pixels", "IMAGE"), ("mask", "MASK")],
                                 "widgets": [("noise_mask", True)],
                                 "outputs": [("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                                             ("latent", "LATENT")]},
    "DifferentialDiffusion": {"inputs": [("model", "MODEL")], "widgets": [("strength", 1.0)],
                              "outputs": [("MODEL", "MODEL")]},
}
# The model files the workflows name. The live tests give the server empty stand-ins, so a prompt
# validates by name and fails if it is ever loaded.
STAND_IN_MODELS = {
    "checkpoints": ["v1-5-pruned-emaonly.safetensors", "sd-v1-5-inpainting.ckpt"],
    "diffusion_models": ["flux1-fill-dev.safetensors"],
    "text_encoders": ["clip_l.safetensors", "t5xxl_fp16.safetensors"],
    "vae": ["ae.safetensors"],
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


# ------------------------------------------------------------------ region warp, then an inpainting fill
# Inpaint4Drag's fill: an empty prompt, the whole fill mask regenerated (denoise 1.0). The warped
# picture is pasted back outside the fill mask, so only the fill mask changes.
WARP_PREFIX = "dragkit/warp_inpaint"


def warp_front(image: int, picker: int, warp: int, x: int = 360) -> tuple[list, list]:
    """Point Picker and Region Warp after an image; the warp's instant result in a Preview Image."""
    nodes = [{"id": picker, "type": "DragKitPointPicker", "pos": (0, 300)},
             {"id": warp, "type": "DragKitRegionWarp", "pos": (x, 300)},
             {"id": warp + 1, "type": "PreviewImage", "pos": (x, 560), "title": "The warp (before the fill)"}]
    links = [(image, "IMAGE", picker, "image"), (image, "IMAGE", warp, "image"), (picker, "points", warp, "points"),
             (picker, "mask", warp, "region"), (warp, "image", warp + 1, "images")]
    return nodes, links


def warp_back(decoded: tuple[int, str], warp: int, prefix: str, x: int) -> tuple[list, list]:
    """Image Composite Masked (the fill inside the fill mask, the warp elsewhere) and Save Image."""
    composite, save = 30, 31
    nodes = [{"id": composite, "type": "ImageCompositeMasked", "pos": (x, 0), "title": "Only the fill mask changes"},
             {"id": save, "type": "SaveImage", "pos": (x + 320, 0), "widgets": {"filename_prefix": prefix}}]
    links = [(warp, "image", composite, "destination"), (*decoded, composite, "source"), (warp, "fill", composite, "mask"),
             (composite, "IMAGE", save, "images")]
    return nodes, links


def warp_inpaint_checkpoint() -> tuple[list, list]:
    """Any inpainting checkpoint (SD1.5 or SDXL inpainting): VAE Encode (for Inpainting) and a KSampler."""
    nodes = [
        {"id": 1, "type": "CheckpointLoaderSimple", "pos": (0, 0), "widgets": {"ckpt_name": "sd-v1-5-inpainting.ckpt"},
         "title": "An inpainting checkpoint (SD1.5 or SDXL)"},
        {"id": 2, "type": "LoadImage", "pos": (0, 140)},
        {"id": 10, "type": "CLIPTextEncode", "pos": (720, 0), "title": "Prompt (empty, as Inpaint4Drag)"},
        {"id": 11, "type": "CLIPTextEncode", "pos": (720, 200), "title": "Negative"},
        {"id": 12, "type": "VAEEncodeForInpaint", "pos": (720, 400)},
        {"id": 13, "type": "KSampler", "pos": (1080, 0),
         "widgets": {"control_after_generate": "fixed", "cfg": 5.0}},
        {"id": 14, "type": "VAEDecode", "pos": (1440, 0)},
    ]
    links = [(1, "CLIP", 10, "clip"), (1, "CLIP", 11, "clip"), (5, "image", 12, "pixels"), (1, "VAE", 12, "vae"),
             (5, "fill", 12, "mask"), (1, "MODEL", 13, "model"), (10, "CONDITIONING", 13, "positive"),
             (11, "CONDITIONING", 13, "negative"), (12, "LATENT", 13, "latent_image"),
             (13, "LATENT", 14, "samples"), (1, "VAE", 14, "vae")]
    return graph((nodes, links), warp_front(2, 4, 5), warp_back((14, "IMAGE"), 5, WARP_PREFIX, 1800))


def warp_inpaint_flux_fill() -> tuple[list, list]:
    """FLUX.1 Fill [dev]: InpaintModelConditioning, Differential Diffusion, guidance 30 (its model card)."""
    nodes = [
        {"id": 1, "type": "UNETLoader", "pos": (0, 0), "widgets": {"unet_name": "flux1-fill-dev.safetensors"}},
        {"id": 8, "type": "DualCLIPLoader", "pos": (0, -200), "widgets": {
            "clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors", "type": "flux"}},
        {"id": 9, "type": "VAELoader", "pos": (0, -320), "widgets": {"vae_name": "ae.safetensors"}},
        {"id": 2, "type": "LoadImage", "pos": (0, 140)},
        {"id": 10, "type": "CLIPTextEncode", "pos": (720, 0), "title": "Prompt (empty, as Inpaint4Drag)"},
        {"id": 11, "type": "FluxGuidance", "pos": (720, 200), "widgets": {"guidance": 30.0}},
        {"id": 12, "type": "ConditioningZeroOut", "pos": (720, 300)},
        {"id": 13, "type": "InpaintModelConditioning", "pos": (1080, 300)},
        {"id": 14, "type": "DifferentialDiffusion", "pos": (720, -120)},
        {"id": 15, "type": "KSampler", "pos": (1080, 0), "widgets": {"control_after_generate": "fixed", "cfg": 1.0}},
        {"id": 16, "type": "VAEDecode", "pos": (1440, 0)},
    ]
    links = [(8, "CLIP", 10, "clip"), (10, "CONDITIONING", 11, "conditioning"), (10, "CONDITIONING", 12, "conditioning"),
             (11, "CONDITIONING", 13, "positive"), (12, "CONDITIONING", 13, "negative"), (9, "VAE", 13, "vae"),
             (5, "image", 13, "pixels"), (5, "fill", 13, "mask"), (1, "MODEL", 14, "model"),
             (14, "MODEL", 15, "model"), (13, "positive", 15, "positive"), (13, "negative", 15, "negative"),
             (13, "latent", 15, "latent_image"), (15, "LATENT", 16, "samples"), (9, "VAE", 16, "vae")]
    return graph((nodes, links), warp_front(2, 4, 5), warp_back((16, "IMAGE"), 5, WARP_PREFIX, 1800))


def example_region_state() -> str:
    """The example's drag with the shape painted as the region that moves (a dab over its circumscribed circle)."""
    case = make_case(EXAMPLE_SEED)
    shape = case.scene.shape
    stroke = {"mode": "paint", "radius": round(shape.size + 1, 2), "points": [[round(v, 2) for v in shape.centre]]}
    handle, target = case.points.handles[0], case.points.targets[0]
    state = EditorState(case.points.image_size, ((tuple(round(v, 2) for v in handle), tuple(round(v, 2) for v in target)),),
                        (stroke,))
    return json.dumps(state.to_dict())


def toy_warp_inpaint(_state: str) -> tuple[list, list]:
    """The embedded model fills what the warp uncovers (DragKit Fill Sampler)."""
    nodes = [
        {"id": TOY_MODEL, "type": "DragKitModelLoader", "pos": (0, 0), "widgets": {"model_name": TOY_CHOICE}},
        {"id": TOY_IMAGE, "type": "DragKitExampleImage", "pos": (0, 140), "widgets": {"example": EXAMPLE}},
        {"id": TOY_PICKER, "type": "DragKitPointPicker", "pos": (0, 280), "widgets": {"editor_state": example_region_state()}},
        {"id": 5, "type": "DragKitRegionWarp", "pos": (480, 280)},
        {"id": 6, "type": "PreviewImage", "pos": (480, 560), "title": "The warp (before the fill)"},
        {"id": TOY_LATENT, "type": "DragKitVAEEncode", "pos": (900, 140)},
        {"id": 7, "type": "DragKitDDIMInverter", "pos": (900, 300), "widgets": {"strength": WARP_FILL_STRENGTH}},
        {"id": 8, "type": "DragKitFillSampler", "pos": (1300, 140)},
        {"id": 9, "type": "DragKitVAEDecode", "pos": (1700, 0)},
        {"id": 10, "type": "ImageCompositeMasked", "pos": (1700, 140), "title": "Only the fill mask changes"},
        {"id": 11, "type": "SaveImage", "pos": (2020, 140), "widgets": {"filename_prefix": "dragkit/toy_warp_inpaint"}},
    ]
    links = [(TOY_IMAGE, "image", TOY_PICKER, "image"), (TOY_IMAGE, "image", 5, "image"), (TOY_PICKER, "points", 5, "points"),
             (TOY_PICKER, "mask", 5, "region"), (5, "image", 6, "images"),
             (TOY_MODEL, "drag_model", TOY_LATENT, "drag_model"), (5, "image", TOY_LATENT, "image"),
             (TOY_MODEL, "drag_model", 7, "drag_model"), (TOY_LATENT, "latent", 7, "latent"),
             (TOY_MODEL, "drag_model", 8, "drag_model"), (7, "inversion", 8, "inversion"), (5, "fill", 8, "fill"),
             (TOY_MODEL, "drag_model", 9, "drag_model"), (8, "latent", 9, "latent"),
             (9, "image", 10, "destination"), (5, "image", 10, "source"), (8, "keep_mask", 10, "mask"),
             (10, "IMAGE", 11, "images")]
    return nodes, links


TOY_WORKFLOWS = {
    "toy_gooddrag.json": toy_gooddrag,
    "toy_dragdiffusion.json": toy_dragdiffusion,
    "toy_diffeditor.json": toy_diffeditor,
    "toy_warp_inpaint.json": toy_warp_inpaint,
}

WORKFLOWS = {
    "dragdiffusion.json": dragdiffusion,
    "gooddrag.json": gooddrag,
    "dragondiffusion.json": lambda: guided("DragonDiffusion", "dragkit/dragondiffusion"),
    "diffeditor.json": lambda: guided("DiffEditor", "dragkit/diffeditor"),
    "auto_region.json": auto_region,
    "warp_inpaint.json": warp_inpaint_checkpoint,
    "warp_inpaint_flux_fill.json": warp_inpaint_flux_fill,
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
        "stand_in_models": STAND_IN_MODELS,
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
    # The template browser's thumbnail (<name>.jpg beside the workflow): the example and its picker's state.
    for name, make in TOY_WORKFLOWS.items():
        workflow = build(*make(state))
        (out / name).write_text(json.dumps(workflow, indent=2) + "\n")
        picker = next(n for n in workflow["nodes"] if n["type"] == "DragKitPointPicker")
        parsed = EditorState.from_json(picker["widgets_values"][0])
        size = parsed.image_size
        thumbnail = to_pil(draw_drag_overlay(image, parsed.points(size), parsed.mask(size)))
        thumbnail.resize((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.NEAREST).save(out / name.replace(".json", ".jpg"), quality=90)
        print("wrote", out / name, "and its thumbnail")
    EXAMPLES_DIR.mkdir(parents=True, exist_ok=True)
    to_pil(image).save(EXAMPLES_DIR / EXAMPLE)
    print("wrote", EXAMPLES_DIR / EXAMPLE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
