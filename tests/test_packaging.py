"""The wheel carries every package of the pack: a folder with an __init__.py missing from pyproject.toml
installs fine in editable mode and breaks `import dragkit` everywhere else."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from dragkit import NODE_CLASS_MAPPINGS

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


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The pack built as a wheel, as `pip install .` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    # From a copy: setuptools leaves a build/ folder beside the sources.
    source = tmp_path_factory.mktemp("source") / "dragkit"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", "node_modules", "build", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", ".toy_train", "out", "dist"))
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
                            "-q", "-w", str(out)], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{build.stderr[-2000:]}")
    (path,) = out.glob("*.whl")
    return path


def test_the_wheel_carries_code_web_files_workflows_model_and_license(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {f"dragkit/{path.relative_to(ROOT).as_posix()}" for folder in ("core", "nodes", "evaluation")
               for path in (ROOT / folder).rglob("*.py")}
    shipped |= {f"dragkit/{path.relative_to(ROOT).as_posix()}" for folder in ("web", "workflows", "assets")
                for path in (ROOT / folder).rglob("*") if path.is_file()}
    assert shipped - names == set()
    assert {"dragkit/__init__.py", "dragkit/__main__.py"} <= names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    assert not any(name.startswith(("dragkit/tests/", "dragkit/scripts/", "dragkit/node_modules/")) for name in names)


def test_the_installed_wheel_imports_and_finds_its_model(wheel, tmp_path):
    """`pip install .` (not editable) in a fresh environment: the pack imports from the install, not from
    this checkout, registers its nodes and loads the embedded toy model (the demo's first step)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    zipfile.ZipFile(wheel).extractall(site)  # what pip does with a pure-Python wheel, minus the scripts
    probe = (
        "import dragkit, dragkit.nodes\n"
        "from dragkit.core.model import load_toy_model\n"
        "from dragkit.core.methods.registry import METHODS\n"
        "from dragkit.evaluation.cli import main\n"
        "print(dragkit.__file__)\n"
        "print(len(dragkit.NODE_CLASS_MAPPINGS), sorted(METHODS), load_toy_model().name)\n"
    )
    result = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    where, summary = result.stdout.strip().splitlines()[-2:]
    assert Path(where).is_relative_to(Path(site)), f"imported {where}, not the installed wheel"
    assert summary.startswith(f"{len(NODE_CLASS_MAPPINGS)} ") and "'gooddrag'" in summary
