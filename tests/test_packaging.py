"""The wheel carries every package of the pack: a folder with an __init__.py missing from pyproject.toml
installs fine in editable mode and breaks `import dragkit` everywhere else."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_SHIPPED = {"tests", "scripts", "node_modules"}  # development folders, never imported by the pack


def test_every_package_folder_is_in_the_wheel():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"] == {"dragkit": "."}
    folders = {
        ".".join(("dragkit", *init.parent.relative_to(ROOT).parts))
        for init in ROOT.rglob("__init__.py")
        if not NOT_SHIPPED & set(init.relative_to(ROOT).parts) and not any(p.startswith(".") for p in init.parts)
    }
    assert folders == set(setuptools["packages"])
