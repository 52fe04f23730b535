"""Every shipped workflow against the pack's node definitions and the frontend's widget rules: types
exist, links type-check, each widget value sits where the frontend will read it and fits its input,
required sockets are connected; the embedded-model workflows run end to end and move the shape."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from workflow_runner import load_generator, run_prompt, to_api_prompt

import dragkit
from dragkit.core.editor_state import EditorState
from dragkit.core.metrics import centroid, colour_mask
from dragkit.evaluation.toybench import COLOUR_TOLERANCE, make_case

WORKFLOWS = sorted((Path(__file__).resolve().parent.parent / "workflows").glob("*.json"))
TOY_WORKFLOWS = [p for p in WORKFLOWS if p.name.startswith("toy_")]
WIDGET_TYPES = ("INT", "FLOAT", "STRING", "BOOLEAN")
GENERATOR = load_generator()
# "Moved toward the target": a non-move scores about 0.01 on this measure (the toy benchmark's baseline).
MIN_FRACTION = 0.25

# ComfyUI core nodes used by the workflows: {input name: type}, output types.
CORE = {
    "CheckpointLoaderSimple": ({}, ["MODEL", "CLIP", "VAE"]),
    "LoadImage": ({}, ["IMAGE", "MASK"]),
    "VAEEncode": ({"pixels": "IMAGE", "vae": "VAE"}, ["LATENT"]),
    "VAEDecode": ({"samples": "LATENT", "vae": "VAE"}, ["IMAGE"]),
    "CLIPTextEncode": ({"clip": "CLIP"}, ["CONDITIONING"]),
    "SaveImage": ({"images": "IMAGE"}, []),
    "PreviewImage": ({"images": "IMAGE"}, []),
    "MaskPreview": ({"mask": "MASK"}, []),
    "ImageCompositeMasked": ({"destination": "IMAGE", "source": "IMAGE", "mask": "MASK"}, ["IMAGE"]),
    "VAEEncodeForInpaint": ({"pixels": "IMAGE", "vae": "VAE", "mask": "MASK"}, ["LATENT"]),
    "KSampler": ({"model": "MODEL", "positive": "CONDITIONING", "negative": "CONDITIONING", "latent_image": "LATENT"},
                 ["LATENT"]),
    "UNETLoader": ({}, ["MODEL"]),
    "DualCLIPLoader": ({}, ["CLIP"]),
    "VAELoader": ({}, ["VAE"]),
    "FluxGuidance": ({"conditioning": "CONDITIONING"}, ["CONDITIONING"]),
    "ConditioningZeroOut": ({"conditioning": "CONDITIONING"}, ["CONDITIONING"]),
    "InpaintModelConditioning": ({"positive": "CONDITIONING", "negative": "CONDITIONING", "vae": "VAE", "pixels": "IMAGE",
                                  "mask": "MASK"}, ["CONDITIONING", "CONDITIONING", "LATENT"]),
    "DifferentialDiffusion": ({"model": "MODEL"}, ["MODEL"]),
}


def _spec(node_type):
    spec = dragkit.NODE_CLASS_MAPPINGS[node_type].INPUT_TYPES()
    return {**spec.get("required", {}), **spec.get("optional", {})}, set(spec.get("required", {}))


def widget_problems(node: dict) -> list[str]:
    """Where a DragKit node's ``widgets_values`` would not land on the widget meant for them in the
    frontend: a wrong count, a control widget holding something else than a mode, a value of the
    wrong type or out of range."""
    spec, _ = _spec(node["type"])
    slots = GENERATOR.frontend_widgets(dragkit.NODE_CLASS_MAPPINGS[node["type"]].INPUT_TYPES())
    values = node["widgets_values"]
    problems = []
    if len(values) != len(slots):
        problems.append(f"{len(values)} widget values for the frontend's {len(slots)} widgets")
    for (name, _, serialised), value in zip(slots, values):
        where = f"{node['type']}.{name}={value!r}"
        if not serialised:
            if value not in GENERATOR.CONTROL_MODES:
                problems.append(f"{where}: a control widget holds a value that is not a mode")
            continue
        kind, options = spec[name]
        if isinstance(kind, list):
            # File lists are empty outside ComfyUI; fixed choices must match.
            ok = not kind or value in kind or name.endswith("_name")
        elif kind == "INT":
            ok = type(value) is int and options.get("min", value) <= value <= options.get("max", value)
        elif kind == "FLOAT":
            ok = type(value) in (int, float) and options.get("min", value) <= value <= options.get("max", value)
        elif kind == "BOOLEAN":
            ok = isinstance(value, bool)
        else:
            ok = isinstance(value, str)
        if not ok:
            problems.append(f"{where}: does not fit a {kind if isinstance(kind, str) else 'combo'} input")
    return problems


# ------------------------------------------------------------------------ the frontend's widget rules
@pytest.mark.parametrize(
    "kind, name, options, control",
    [
        ("INT", "seed", {}, "randomize"),  # KSampler's seed
        ("INT", "noise_seed", {}, "randomize"),
        ("INT", "seed", {"control_after_generate": "fixed"}, "fixed"),  # DragKit's seeds
        ("INT", "seed", {"control_after_generate": False}, None),
        ("INT", "steps", {}, None),
        ("INT", "steps", {"control_after_generate": True}, "randomize"),
        ("INT", "steps", {"control_after_generate": "my control"}, "randomize"),  # a string that renames it
        ("FLOAT", "seed", {}, None),
        ("FLOAT", "scale", {"control_after_generate": True}, "fixed"),
        (["a", "b"], "choice", {"control_after_generate": True}, "randomize"),
        (["a", "b"], "seed", {}, None),
        ("STRING", "seed", {}, None),
        ("BOOLEAN", "seed", {"control_after_generate": True}, None),
    ],
)
def test_the_frontend_adds_a_control_widget_where_its_rules_say(kind, name, options, control):
    assert GENERATOR.control_after(kind, name, options) == control
    widgets = GENERATOR.frontend_widgets({"required": {name: (kind, options), "after": ("STRING", {})}})
    expected = [name] + ([GENERATOR.CONTROL_WIDGET] if control else []) + ["after"]
    assert [w[0] for w in widgets] == expected
    assert [w[2] for w in widgets] == [True] + ([False] if control else []) + [True]


def test_sockets_are_not_widgets():
    widgets = GENERATOR.frontend_widgets({"required": {"model": ("DRAG_MODEL", {}), "n": ("INT", {"forceInput": True}),
                                                       "s": ("STRING", {"default": "x"})}})
    assert widgets == [("s", "x", True)]


@pytest.mark.parametrize("node_id", sorted(dragkit.NODE_CLASS_MAPPINGS))
def test_dragkit_seeds_start_fixed_so_queue_never_retrains(node_id):
    """A node added from the menu must not draw a new seed on every Queue (it would retrain the LoRA)."""
    spec = dragkit.NODE_CLASS_MAPPINGS[node_id].INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, options) in spec.get(section, {}).items():
            control = GENERATOR.control_after(kind, name, options)
            assert control in (None, "fixed"), f"{node_id}.{name} starts its control at {control!r}"
            if name in GENERATOR.SEED_NAMES:
                assert control == "fixed"


def test_a_missing_control_value_is_caught():
    """The bug the frontend showed: without the seed control's value, every later value shifts by one."""
    workflow = json.loads((Path(__file__).resolve().parent.parent / "workflows" / "dragdiffusion.json").read_text())
    trainer = next(n for n in workflow["nodes"] if n["type"] == "DragKitLoraTrainer")
    assert widget_problems(trainer) == []
    broken = copy.deepcopy(trainer)
    seed_at = [w[0] for w in GENERATOR.frontend_widgets(dragkit.NODE_CLASS_MAPPINGS["DragKitLoraTrainer"].INPUT_TYPES())
               ].index("seed")
    del broken["widgets_values"][seed_at + 1]
    problems = widget_problems(broken)
    assert any("widget values for the frontend's" in p for p in problems)
    assert any("control widget" in p for p in problems)  # save_name's "" lands on the control


# ---------------------------------------------------------------------------------- the shipped files
def test_there_are_workflows():
    names = {p.name for p in WORKFLOWS}
    assert {"dragdiffusion.json", "gooddrag.json", "dragondiffusion.json", "diffeditor.json", "auto_region.json",
            "toy_gooddrag.json", "toy_dragdiffusion.json", "toy_diffeditor.json", "toy_warp_inpaint.json",
            "warp_inpaint.json", "warp_inpaint_flux_fill.json"} <= names


def test_the_generator_reproduces_the_shipped_workflows():
    """workflows/*.json are generated; a changed default or widget needs a re-run of the script."""
    image, state = GENERATOR.example_scene()
    for name, make in GENERATOR.WORKFLOWS.items():
        assert json.loads((WORKFLOWS[0].parent / name).read_text()) == GENERATOR.build(*make()), \
            f"{name} is stale: run python scripts/make_workflows.py"
    for name, make in GENERATOR.TOY_WORKFLOWS.items():
        assert json.loads((WORKFLOWS[0].parent / name).read_text()) == GENERATOR.build(*make(state)), \
            f"{name} is stale: run python scripts/make_workflows.py"


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
            inputs, outputs = CORE[kind]
            assert [o["type"] for o in node["outputs"]] == outputs
            assert len(node["widgets_values"]) == len(GENERATOR.CORE_NODES[kind]["widgets"])
            for socket in node["inputs"]:
                assert inputs[socket["name"]] == socket["type"]
            continue
        cls = dragkit.NODE_CLASS_MAPPINGS[kind]
        assert [o["type"] for o in node["outputs"]] == list(cls.RETURN_TYPES), kind
        assert widget_problems(node) == []
        spec, required = _spec(kind)
        widget_names = {w[0] for w in GENERATOR.frontend_widgets(cls.INPUT_TYPES())}
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


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_api_prompt_carries_every_widget_by_name(path):
    """What the frontend sends: each widget value under its input's name, no control widgets."""
    workflow = json.loads(path.read_text())
    prompt = to_api_prompt(workflow, GENERATOR)
    for node in workflow["nodes"]:
        inputs = prompt[str(node["id"])]["inputs"]
        assert GENERATOR.CONTROL_WIDGET not in inputs
        if node["type"] == "DragKitLoraTrainer":
            assert inputs["save_name"] == "" and inputs["overwrite"] is False and inputs["seed"] == 0
        if node["type"] == "DragKitRegionalSDESampler":
            assert inputs["ipadapter"] == "none" and inputs["image_prompt_scale"] == 0.1


# -------------------------------------------------------------------------- the embedded-model graphs
def test_the_toy_workflows_carry_the_example_drag():
    image, state = GENERATOR.example_scene()
    case = make_case(GENERATOR.EXAMPLE_SEED)
    parsed = EditorState.from_json(state)
    assert parsed.image_size == (64, 64) and len(parsed.pairs) == 1
    torch.testing.assert_close(torch.tensor(parsed.pairs[0][0]), torch.tensor(case.points.handles[0]), atol=0.01, rtol=0)
    # The painted stroke covers the shape where it is and where it goes.
    mask = parsed.mask((64, 64))
    assert bool((mask[case.scene.mask > 0.5] == 1).all()) and bool((mask[case.moved.mask > 0.5] == 1).all())
    (picture,) = dragkit.NODE_CLASS_MAPPINGS["DragKitExampleImage"]().load(GENERATOR.EXAMPLE)
    torch.testing.assert_close(picture[0].permute(2, 0, 1), image, atol=1 / 255, rtol=0)


@pytest.mark.parametrize("path", TOY_WORKFLOWS, ids=[p.name for p in TOY_WORKFLOWS])
def test_toy_workflow_runs_end_to_end_and_moves_the_shape(path):
    """The graph a newcomer queues, converted as the frontend converts it, moves the example's shape
    toward its target and keeps it whole."""
    workflow = json.loads(path.read_text())
    prompt = to_api_prompt(workflow, GENERATOR)
    assert {n["class_type"] for n in prompt.values()} <= set(dragkit.NODE_CLASS_MAPPINGS) | {
        "SaveImage", "PreviewImage", "ImageCompositeMasked"}
    outputs = run_prompt(prompt)
    save = next(k for k, v in prompt.items() if v["class_type"] == "SaveImage")
    (images,) = outputs[save]
    assert images.shape == (1, 64, 64, 3)
    case = make_case(GENERATOR.EXAMPLE_SEED)
    original = colour_mask(case.scene.image, case.scene.colour, COLOUR_TOLERANCE)
    found = colour_mask(images[0].permute(2, 0, 1), case.scene.colour, COLOUR_TOLERANCE)
    before, after = centroid(original), centroid(found)
    assert after is not None, "the shape is gone"
    dx, dy = case.offset
    fraction = ((after[0] - before[0]) * dx + (after[1] - before[1]) * dy) / (dx * dx + dy * dy)
    assert fraction > MIN_FRACTION, f"the shape moved {fraction:.2f} of the drag"
    assert 0.5 < float(found.sum()) / float(original.sum()) < 1.6, "the shape lost or gained too much area"
    # Keep is on in every shipped workflow: outside the sampler's keep_mask the input comes back exactly.
    composite = next(k for k, v in prompt.items() if v["class_type"] == "ImageCompositeMasked")
    keep_mask = outputs[prompt[composite]["inputs"]["mask"][0]][prompt[composite]["inputs"]["mask"][1]]
    kept = keep_mask[0] == 1
    assert kept.float().mean() > 0.3
    source = outputs[prompt[composite]["inputs"]["source"][0]][0]  # the example picture as loaded
    assert torch.equal(images[0][kept], source[0][kept])
