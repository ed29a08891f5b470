"""The two environments are built as documented, and scikit-learn is pinned in exactly one place."""

from __future__ import annotations

import re
import subprocess
import sys

from functions.settings import REPO_ROOT
from tests.conftest import SERVING_PYTHON, require_serving_env

PINS = REPO_ROOT / "ml" / "environments" / "runtime-pins.txt"


def pinned(package: str) -> str:
    match = re.search(rf"^{re.escape(package)}==(\S+)$", PINS.read_text(), re.M)
    assert match, f"{package} is not pinned in {PINS}"
    return match.group(1)


def version_in(python: str, module: str) -> str:
    code = f"import {module}; print({module}.__version__)"
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_scikit_learn_is_pinned_in_one_place_only():
    files = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True).stdout.split()
    pinning = []
    for name in files:
        path = REPO_ROOT / name
        if path.suffix in (".txt", ".yml", ".yaml", ".toml", ".cfg", ".in") or path.name.endswith("Dockerfile"):
            if re.search(r"scikit-learn\s*(==|~=|>=|<=|<|>)", path.read_text()):
                pinning.append(name)
    assert pinning == ["ml/environments/runtime-pins.txt"]


def test_every_environment_uses_the_runtime_pins():
    env_dir = REPO_ROOT / "ml" / "environments"
    # the control plane's .venv (CLI, embedded platform, training) has them; the Function App
    # (requirements.txt) loads no model runtime and installs none
    assert "-r ml/environments/runtime-pins.txt" in (REPO_ROOT / "requirements-cli.txt").read_text()
    assert "runtime-pins" not in (REPO_ROOT / "requirements.txt").read_text()
    for name in ("serving-requirements.txt", "training-requirements.txt"):
        assert "-r runtime-pins.txt" in (env_dir / name).read_text(), name
    for dockerfile in ("serving.Dockerfile", "training.Dockerfile"):
        assert "runtime-pins.txt" in (env_dir / dockerfile).read_text(), dockerfile


def test_control_plane_and_serving_environments_have_the_pinned_scikit_learn():
    require_serving_env()
    assert version_in(sys.executable, "sklearn") == pinned("scikit-learn")
    assert version_in(str(SERVING_PYTHON), "sklearn") == pinned("scikit-learn")


def test_environments_are_separate():
    require_serving_env()
    code = "import importlib.util as u, sys; print(u.find_spec(sys.argv[1]) is not None)"
    ask = lambda py, mod: subprocess.run([py, "-c", code, mod], capture_output=True, text=True).stdout.strip()  # noqa
    assert ask(str(SERVING_PYTHON), "azureml_inference_server_http") == "True"
    assert ask(str(SERVING_PYTHON), "azure.functions") == "False"
    assert ask(sys.executable, "azureml_inference_server_http") == "False"


def test_modelops_console_script_is_installed():
    from pathlib import Path

    script = Path(sys.executable).with_name("modelops")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for command in ("train", "generate", "serve", "score", "demo"):
        assert command in out.stdout
