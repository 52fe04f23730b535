"""Live tests against a real ComfyUI server (optional; skipped unless COMFYUI_PATH is set).

Set ``COMFYUI_PATH`` to a ComfyUI checkout (the folder holding ``main.py``) and, if ComfyUI's
dependencies live in another environment, ``COMFYUI_PYTHON`` to that interpreter::

    COMFYUI_PATH=~/ComfyUI COMFYUI_PYTHON=~/ComfyUI/venv/bin/python \
        python -m pytest tests/test_comfyui_live.py -v

The module-scoped fixture ``comfy_server`` makes a temporary base directory whose
``custom_nodes/dragkit`` is a symlink to this repository, starts ``main.py --cpu`` on a free
loopback port (log in the temp dir) with the frontend of ``comfyui-frontend-package`` installed
beside ComfyUI (or ``COMFYUI_FRONTEND_ROOT``, a frontend's static folder) given as
``--front-end-root``, waits until ``/object_info`` answers and stops the server afterwards. The
base directory has an empty stand-in for the SD1.5 checkpoint the SD1.5 workflows name, so they
pass validation (they are never run to the end). ``run_prompt`` submits an API-format prompt and
polls ``/history``. ``test_frontend_suite`` runs tests/web/comfyui.test.mjs in a real browser
against that server, once per node renderer (needs node, playwright-core and Debian's chromium:
``bash tests/web/run.sh`` installs them). Only the standard library and pytest are used here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
PACK_DIR_NAME = "dragkit"  # folder name under custom_nodes; also the /extensions/<name>/ prefix
MIN_NODES = ["DragKitModelLoader", "DragKitModelFromComfy", "DragKitDDIMInverter", "DragKitSampler"]
START_TIMEOUT = float(os.environ.get("COMFYUI_START_TIMEOUT", "180"))

COMFYUI_PATH = os.environ.get("COMFYUI_PATH", "")
COMFYUI_PYTHON = os.environ.get("COMFYUI_PYTHON") or sys.executable
SD15_CHECKPOINT = "v1-5-pruned-emaonly.safetensors"  # what the SD1.5 workflows name
RENDERERS = ("classic", "vue")  # the canvas renderer and the Vue one ("Nodes 2.0")
FRONTEND_SUITE_TIMEOUT = 3600


def _skip_reason() -> str | None:
    if not COMFYUI_PATH:
        return "COMFYUI_PATH is not set (point it at a ComfyUI checkout to run live tests)"
    if not (Path(COMFYUI_PATH) / "main.py").is_file():
        return f"COMFYUI_PATH={COMFYUI_PATH!r} has no main.py (not a ComfyUI checkout)"
    if not Path(COMFYUI_PYTHON).exists():
        return f"COMFYUI_PYTHON={COMFYUI_PYTHON!r} does not exist"
    return None


_REASON = _skip_reason()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=_REASON or "")


# ---------------------------------------------------------------------------------------------
# Helpers


def _pack_module():
    """The pack as imported from *this* repository (None if it cannot be imported here).

    Uses an already imported ``dragkit`` when it comes from this repo; otherwise (``dragkit``
    missing, or installed from another checkout) loads the repo root under a private name.
    """
    try:
        import dragkit  # noqa: PLC0415

        if Path(dragkit.__file__).resolve().parent == REPO_ROOT:
            return dragkit
    except Exception:  # pragma: no cover - depends on the environment
        pass
    name = "_dragkit_live_probe"
    if name in sys.modules:
        return sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location(
            name, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    except Exception:  # pragma: no cover - depends on the environment
        sys.modules.pop(name, None)
        return None


def expected_node_names() -> list[str]:
    module = _pack_module()
    mappings = getattr(module, "NODE_CLASS_MAPPINGS", None) if module is not None else None
    if mappings:
        return sorted(mappings)
    return list(MIN_NODES)


def expected_web_files() -> list[str]:
    """Paths ``/extensions/dragkit/...`` that ComfyUI should list for the pack's .js files."""
    module = _pack_module()
    web_dir = getattr(module, "WEB_DIRECTORY", None) if module is not None else None
    web = (REPO_ROOT / (web_dir or "web")).resolve()
    if not web.is_dir():
        return []
    return sorted(
        f"/extensions/{PACK_DIR_NAME}/{p.relative_to(web).as_posix()}" for p in web.rglob("*.js")
    )


def frontend_root() -> str | None:
    """The frontend to serve: ``COMFYUI_FRONTEND_ROOT``, else the ``comfyui-frontend-package`` installed
    for ComfyUI's python (the one users get from PyPI), else ``None`` (ComfyUI's own choice)."""
    if os.environ.get("COMFYUI_FRONTEND_ROOT"):
        return os.environ["COMFYUI_FRONTEND_ROOT"]
    probe = subprocess.run([COMFYUI_PYTHON, "-c", "import comfyui_frontend_package as f, os; "
                            "print(os.path.join(os.path.dirname(f.__file__), 'static'))"],
                           capture_output=True, text=True, timeout=60)
    return probe.stdout.strip() or None if probe.returncode == 0 else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_json(url: str, data: object | None = None, timeout: float = 30.0):
    """GET (or POST JSON when ``data`` is given) and decode the JSON answer."""
    body = None if data is None else json.dumps(data).encode("utf-8")
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def _log_tail(log_path: Path, n: int = 80) -> str:
    try:
        lines = log_path.read_text(errors="replace").splitlines()
    except OSError:
        return "<no log>"
    return "\n".join(lines[-n:])


def pack_import_errors(log_text: str) -> list[str]:
    """Where ComfyUI reports the pack failed to import, each with the traceback it logged."""
    lines = log_text.splitlines()
    found = []
    for i, line in enumerate(lines):
        if line.startswith("Cannot import") and PACK_DIR_NAME in line:
            start = i
            for j in range(i - 1, max(i - 300, -1), -1):
                if lines[j].startswith("Traceback"):
                    start = j
                    break
            found.append("\n".join(lines[start : i + 1]))
        elif "IMPORT FAILED" in line and PACK_DIR_NAME in line:
            found.append(line)
    return found


def stand_in_models() -> dict[str, list[str]]:
    """``{models subfolder: [file names]}`` the shipped workflows name (scripts/make_workflows.py)."""
    spec = importlib.util.spec_from_file_location("dragkit_make_workflows", REPO_ROOT / "scripts" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.STAND_IN_MODELS


def run_prompt(base_url: str, api_prompt: dict, timeout: float = 120.0) -> dict:
    """POST an API-format prompt to /prompt and poll /history/{id}; return its history entry.

    Raises AssertionError when the server rejects the prompt (validation errors are in the
    message) and TimeoutError when it does not finish in ``timeout`` seconds.
    """
    payload = {"prompt": api_prompt, "client_id": uuid.uuid4().hex}
    try:
        answer = http_json(f"{base_url}/prompt", payload)
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", errors="replace")
        raise AssertionError(f"/prompt rejected the prompt (HTTP {err.code}): {detail}") from None
    prompt_id = answer["prompt_id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        history = http_json(f"{base_url}/history/{prompt_id}")
        entry = history.get(prompt_id)
        if entry is not None:
            status = entry.get("status") or {}
            if status.get("completed") or status.get("status_str") in ("success", "error"):
                return entry
        time.sleep(0.5)
    raise TimeoutError(f"prompt {prompt_id} did not finish within {timeout} s")


# ---------------------------------------------------------------------------------------------
# Fixture


@pytest.fixture(scope="module")
def comfy_server(tmp_path_factory):
    """Start ComfyUI with the pack installed; yield ``(base_url, base_dir)``; stop it after."""
    base = tmp_path_factory.mktemp("comfy_base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / PACK_DIR_NAME).symlink_to(REPO_ROOT, target_is_directory=True)
    # Empty stand-ins for every model file a shipped workflow names: a prompt validates by name and
    # fails if the file is ever loaded.
    for folder, names in stand_in_models().items():
        (base / "models" / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            (base / "models" / folder / name).touch()
    assert SD15_CHECKPOINT in stand_in_models()["checkpoints"]
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}"
    log_path = base / "comfyui.log"
    cmd = [
        COMFYUI_PYTHON, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port),
        "--disable-auto-launch", "--base-directory", str(base),
        "--database-url", "sqlite:///:memory:",
    ]  # fmt: skip
    frontend = frontend_root()
    if frontend:
        cmd += ["--front-end-root", frontend]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_WAIT_POLICY="PASSIVE")
    env.pop("PYTHONPATH", None)  # the server must import the pack the way ComfyUI does
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        cmd, cwd=COMFYUI_PATH, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"ComfyUI exited early (rc={proc.returncode}); log {log_path}:\n{_log_tail(log_path)}")
            try:
                http_json(f"{base_url}/object_info", timeout=10)
                break
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"ComfyUI did not answer within {START_TIMEOUT} s; log {log_path}:\n{_log_tail(log_path)}")
            time.sleep(1.0)
        yield base_url, base
    finally:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def object_info(comfy_server):
    base_url, _ = comfy_server
    return http_json(f"{base_url}/object_info", timeout=60)


def _server_log(comfy_server) -> str:
    _, base = comfy_server
    return (base / "comfyui.log").read_text(errors="replace")


# ---------------------------------------------------------------------------------------------
# Tests


def test_pack_imports_without_failure(comfy_server):
    log_text = _server_log(comfy_server)
    errors = pack_import_errors(log_text)
    assert not errors, "DragKit failed to import inside ComfyUI:\n" + "\n---\n".join(errors)
    # ComfyUI lists every custom node folder it tried in its import-times summary.
    assert f"custom_nodes/{PACK_DIR_NAME}" in log_text, "pack folder never appeared in the log"


def test_all_nodes_registered(object_info, comfy_server):
    missing = [name for name in expected_node_names() if name not in object_info]
    detail = "\n".join(pack_import_errors(_server_log(comfy_server)))
    assert not missing, f"nodes missing from /object_info: {missing}\n{detail}"


@pytest.mark.parametrize("node_name", MIN_NODES if _REASON else expected_node_names())
def test_node_has_description_and_tooltips(object_info, node_name):
    if node_name not in object_info:
        pytest.fail(f"{node_name} not in /object_info")
    info = object_info[node_name]
    assert str(info.get("description") or "").strip(), f"{node_name}: empty description"
    required = (info.get("input") or {}).get("required") or {}
    no_tip = []
    for input_name, spec in required.items():
        opts = spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 else {}
        if not (isinstance(opts, dict) and str(opts.get("tooltip") or "").strip()):
            no_tip.append(input_name)
    assert not no_tip, f"{node_name}: required inputs without tooltip: {no_tip}"


def test_web_extensions_listed(comfy_server):
    expected = expected_web_files()
    if not expected:
        pytest.skip("the pack has no .js files in its web directory")
    base_url, _ = comfy_server
    listed = set(http_json(f"{base_url}/extensions"))
    missing = [p for p in expected if p not in listed]
    assert not missing, f"/extensions does not list: {missing}"


def test_core_prompt_executes(comfy_server):
    """A two-node graph with core nodes only: proves /prompt -> execution -> /history works."""
    base_url, _ = comfy_server
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 8, "batch_size": 1, "color": 0xFF0000}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    entry = run_prompt(base_url, prompt, timeout=120)
    status = entry.get("status") or {}
    assert status.get("status_str") == "success", f"prompt failed: {json.dumps(status)[:2000]}"
    images = (entry.get("outputs") or {}).get("2", {}).get("images") or []
    assert images and images[0]["filename"].endswith(".png"), entry.get("outputs")


# ComfyUI's UNet description of SD1.5 (what comfy.model_detection finds in an SD1.5 checkpoint);
# comfy.utils.unet_to_diffusers maps diffusers module names to ComfyUI's from it.
SD15_COMFY_UNET_CONFIG = {
    "num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], "transformer_depth_middle": 1,
}
COMFY_LORA_PROBE = """
import json, sys
comfy_path, lora_path, config = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
sys.path.insert(0, comfy_path)
sys.argv = ["main.py", "--cpu"]  # no GPU needed; comfy.cli_args reads argv once parsing is enabled
import comfy.options
comfy.options.enable_args_parsing()
import comfy.lora, comfy.utils
from safetensors.torch import load_file
key_map = {}
for diffusers_key, comfy_key in comfy.utils.unet_to_diffusers(config).items():
    if diffusers_key.endswith(".weight"):  # as comfy.lora.model_lora_keys_unet builds its lora_unet_* keys
        key_map["lora_unet_" + diffusers_key[:-len(".weight")].replace(".", "_")] = "diffusion_model." + comfy_key
lora = load_file(lora_path)
patches = comfy.lora.load_lora(lora, key_map, log_missing=False)
used = {k for k in lora if any(k.startswith(prefix + ".") for prefix in key_map if key_map[prefix] in patches)}
print(json.dumps({"patched": sorted(patches), "unused": sorted(set(lora) - used)}))
"""


def test_saved_lora_loads_in_comfyui_lora_loader(tmp_path):
    """A LoRA the Trainer saves for an SD1.5 UNet is read by ComfyUI's own LoRA loader, every key used."""
    import torch
    from diffusers import UNet2DConditionModel

    from dragkit.core.lora import LoraTrainingConfig, train_lora
    from dragkit.core.lora_files import save_lora
    from dragkit.core.model import DragModel

    unet_config = {"cross_attention_dim": 768, "attention_head_dim": 8, "sample_size": 64}  # SD1.5 = diffusers' defaults
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config)
    unet = unet.to_empty(device="cpu")  # the weights' values do not matter, only the module names
    for parameter in unet.parameters():
        torch.nn.init.normal_(parameter, std=0.01)
    model = DragModel(unet=unet, latent_scale=0.18215, default_embeds=torch.zeros(1, 77, 768), name="sd15-layout")
    trained = train_lora(model, torch.randn(1, 4, 8, 8), config=LoraTrainingConfig(steps=1, rank=4, batch_size=1))
    path = save_lora(trained, tmp_path / "sd15_layout.safetensors")

    probe = subprocess.run([COMFYUI_PYTHON, "-c", COMFY_LORA_PROBE, COMFYUI_PATH, str(path),
                            json.dumps(SD15_COMFY_UNET_CONFIG)], capture_output=True, text=True, timeout=300)
    assert probe.returncode == 0, probe.stderr[-3000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    # 16 transformer blocks x (self + cross attention) x (q, k, v, out)
    assert len(result["patched"]) == 16 * 2 * 4, result["patched"][:5]
    assert result["unused"] == []


def _frontend_suite_skip_reason() -> str | None:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (REPO_ROOT / "node_modules" / "playwright-core").is_dir():
        return "playwright-core is not installed (bash tests/web/run.sh runs npm ci)"
    if not Path("/usr/bin/chromium").exists():
        return "Debian's chromium is not installed (bash tests/web/run.sh installs it)"
    return None


@pytest.mark.parametrize("renderer", RENDERERS)
def test_frontend_suite(comfy_server, renderer):
    """tests/web/comfyui.test.mjs against this server in one renderer: the widget, every workflow's values
    and validation, the embedded-model workflows run from the Run button, caching through the UI."""
    reason = _frontend_suite_skip_reason()
    if reason:
        pytest.skip(reason)
    base_url, _ = comfy_server
    env = dict(os.environ, COMFYUI_URL=base_url, DRAGKIT_RENDERERS=renderer, DRAGKIT_PYTHON=sys.executable)
    started = time.monotonic()
    result = subprocess.run(["node", "--test", "--test-reporter=spec", "tests/web/comfyui.test.mjs"], cwd=REPO_ROOT,
                            env=env, capture_output=True, text=True, timeout=FRONTEND_SUITE_TIMEOUT)
    print(result.stdout[-20000:])
    print(f"{renderer}: {time.monotonic() - started:.0f} s")
    assert result.returncode == 0, result.stdout[-12000:] + result.stderr[-4000:]
    assert "skipped 0" in result.stdout, "the browser suite skipped"
