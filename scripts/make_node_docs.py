"""Write the nodes' help pages, where ComfyUI's node library reads them, from the nodes themselves.

For a custom node the frontend fetches ``/extensions/<pack>/docs/<NodeId>/<locale>.md``, then
``/extensions/<pack>/docs/<NodeId>.md``; ComfyUI serves the pack's WEB_DIRECTORY (``web/``) at
``/extensions/<pack>/``. Each page is built from the node's DESCRIPTION, its inputs' tooltips, defaults
and ranges, and its OUTPUT_TOOLTIPS, so there is no second text to keep in step: change a tooltip, run

    python scripts/make_node_docs.py            # writes web/docs/<NodeId>.md, removes stale pages

and ``tests/test_node_docs.py`` checks the committed pages equal what this writes. Combos that list
files from ComfyUI's model folders show ``<files in models/KIND>`` in their place.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from dragkit import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
from dragkit.nodes import comfy

ROOT = Path(__file__).resolve().parent.parent
DOCS_DIR = ROOT / "web" / "docs"
CONTROL_WIDGET = "control after generate"


def cell(text) -> str:
    """A markdown table cell: no line breaks, no column separators."""
    return str(text).replace("\n", " ").replace("|", "\\|")


def number(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def input_row(name: str, kind, options: dict, required: bool) -> str:
    if isinstance(kind, list):
        kind_text = "choice: " + ", ".join(f"`{choice}`" for choice in kind) if kind else "choice"
        default = options.get("default", kind[0] if kind else "")
    else:
        kind_text = kind
        default = options.get("default", "")
    if isinstance(default, bool):
        default = str(default).lower()
    bounds = ""
    if "min" in options or "max" in options:
        bounds = f"{number(options.get('min', ''))} – {number(options.get('max', ''))}"
    tip = options.get("tooltip", "")
    control = options.get("control_after_generate")
    if isinstance(control, str):
        tip += f" The frontend adds a '{CONTROL_WIDGET}' setting after it, starting at `{control}`."
    shown = f"`{default}`" if default != "" and default is not None else ""
    return "| " + " | ".join(cell(part) for part in (
        f"`{name}`", kind_text, "required" if required else "optional", shown, bounds, tip)) + " |"


def page(node_id: str) -> str:
    """The markdown help page of one node."""
    cls = NODE_CLASS_MAPPINGS[node_id]
    spec = cls.INPUT_TYPES()
    lines = [f"# {NODE_DISPLAY_NAME_MAPPINGS[node_id]}", "", cls.DESCRIPTION, "",
             f"Category: {cls.CATEGORY} · node ID `{node_id}` · from the DragKit pack.", "", "## Inputs", ""]
    lines += ["| input | type | | default | range | what it is |", "|---|---|---|---|---|---|"]
    for section in ("required", "optional"):
        for name, (kind, options) in spec.get(section, {}).items():
            lines.append(input_row(name, kind, options, section == "required"))
    lines += ["", "## Outputs", "", "| output | type | what it is |", "|---|---|---|"]
    names = getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)
    for name, kind, tip in zip(names, cls.RETURN_TYPES, cls.OUTPUT_TOOLTIPS):
        lines.append("| " + " | ".join(cell(part) for part in (f"`{name}`", kind, tip)) + " |")
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def folder_placeholders():
    """Combos of files from ComfyUI's model folders list ``<files in models/KIND>`` instead of the files
    of whoever runs this, so the pages are the same everywhere."""
    original = comfy.model_choices
    comfy.model_choices = lambda kind: [f"<files in models/{kind}>"]
    try:
        yield
    finally:
        comfy.model_choices = original


def pages() -> dict[str, str]:
    """``{file name: text}`` for every registered node."""
    with folder_placeholders():
        return {f"{node_id}.md": page(node_id) for node_id in sorted(NODE_CLASS_MAPPINGS)}


def main() -> int:
    DOCS_DIR.mkdir(parents=True, exist_ok=True)
    wanted = pages()
    for stale in sorted(set(p.name for p in DOCS_DIR.glob("*.md")) - set(wanted)):
        (DOCS_DIR / stale).unlink()
        print("removed", DOCS_DIR / stale)
    for name, text in wanted.items():
        (DOCS_DIR / name).write_text(text)
    print(f"wrote {len(wanted)} pages to {DOCS_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
