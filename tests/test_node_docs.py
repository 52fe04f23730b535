"""The help pages in web/docs/ (what ComfyUI's node library shows) are the nodes' own text, current."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import dragkit

ROOT = Path(__file__).resolve().parent.parent


def _generator():
    spec = importlib.util.spec_from_file_location("dragkit_make_node_docs", ROOT / "scripts" / "make_node_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GENERATOR = _generator()
PAGES = GENERATOR.pages()


def test_one_page_per_node_and_no_others():
    assert set(PAGES) == {f"{node_id}.md" for node_id in dragkit.NODE_CLASS_MAPPINGS}
    assert {p.name for p in GENERATOR.DOCS_DIR.glob("*.md")} == set(PAGES), "run python scripts/make_node_docs.py"


@pytest.mark.parametrize("name", sorted(PAGES))
def test_committed_page_is_current(name):
    committed = (GENERATOR.DOCS_DIR / name).read_text()
    assert committed == PAGES[name], f"web/docs/{name} is stale: run python scripts/make_node_docs.py"


@pytest.mark.parametrize("node_id", sorted(dragkit.NODE_CLASS_MAPPINGS))
def test_page_carries_the_nodes_own_text(node_id):
    cls = dragkit.NODE_CLASS_MAPPINGS[node_id]
    assert len(cls.OUTPUT_TOOLTIPS) == len(cls.RETURN_TYPES), f"{node_id}: one OUTPUT_TOOLTIPS entry per output"
    text = PAGES[f"{node_id}.md"]
    assert text.startswith(f"# {dragkit.NODE_DISPLAY_NAME_MAPPINGS[node_id]}\n")
    assert cls.DESCRIPTION in text
    spec = cls.INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (_, options) in spec.get(section, {}).items():
            row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
            assert options["tooltip"].replace("|", "\\|") in row
            assert (section == "required") == ("| required |" in row)
    for name, tip in zip(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES), cls.OUTPUT_TOOLTIPS):
        assert f"| `{name}` |" in text and tip in text


def test_seed_rows_say_the_frontend_control_starts_fixed():
    row = next(line for line in PAGES["DragKitLoraTrainer.md"].splitlines() if line.startswith("| `seed` |"))
    assert "| `0` | 0 – 2147483647 |" in row and "starting at `fixed`" in row


def test_folder_combos_do_not_depend_on_the_machine(monkeypatch):
    """Pages list a placeholder, never the files of whoever generated them."""
    monkeypatch.setattr(dragkit.nodes.comfy, "model_choices", lambda kind: [f"someone's_{kind}.safetensors"])
    assert GENERATOR.pages() == PAGES
    assert "`<files in models/checkpoints>`" in PAGES["DragKitModelLoader.md"]
