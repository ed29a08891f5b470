"""The layering (README "Layout") is a contract, checked by import-linter on every `make test`:
entry points → composition root → services → domain; adapters import only ports and shared
modules; ml/ never imports the control plane. And the workflow names its activities by reference."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

from functions.settings import REPO_ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


def test_the_import_contracts_hold():
    result = lint(REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "Contracts: 6 kept, 0 broken." in result.stdout


def test_the_contracts_fail_when_an_adapter_imports_a_service(tmp_path):
    """The check is real: one forbidden import in a copy of the tree breaks it, naming the import."""
    for part in ("functions", "ml"):
        shutil.copytree(REPO_ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    store = tmp_path / "functions" / "adapters" / "local" / "store.py"
    store.write_text(store.read_text() + "\nfrom functions.services.records import RolloutStore  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "adapters import only ports and shared modules BROKEN" in result.stdout
    assert "functions.adapters.local.store -> functions.services.records" in result.stdout


def test_the_contracts_fail_when_the_control_plane_imports_ml_schema(tmp_path):
    """A model's columns come from its contract: one import of ml.schema in functions/ (here the
    export table) breaks the check, naming the import."""
    for part in ("functions", "ml"):
        shutil.copytree(REPO_ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    table = tmp_path / "functions" / "shared" / "export_table.py"
    table.write_text(table.read_text() + "\nfrom ml.schema import NUMERIC  # noqa\n")
    result = lint(tmp_path)
    assert result.returncode != 0
    assert "never from \nml.schema BROKEN" in result.stdout or "never from ml.schema BROKEN" in result.stdout
    assert "functions.shared.export_table -> ml.schema" in result.stdout


def test_nothing_under_functions_imports_ml_schema():
    """The same rule by reading the source (any import statement, at module level or inside a
    function): `ml.schema` and `from ml import schema`."""
    found = []
    for path in sorted((REPO_ROOT / "functions").rglob("*.py")):
        relative = path.relative_to(REPO_ROOT).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            if any(n == "ml.schema" or n.startswith("ml.schema.") for n in names):
                found.append(f"{relative}:{node.lineno}")
    assert found == [], found


def test_no_workflow_step_names_an_activity_by_a_string():
    """`run.call(act.set_traffic, ...)`: every call site passes an activity function of
    functions.services.activities, so go-to-definition works and a misspelling fails in a test."""
    tree = ast.parse((REPO_ROOT / "functions" / "services" / "workflow.py").read_text())
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
             and node.func.attr == "call"]
    assert len(calls) > 20
    for call in calls:
        first = call.args[0]
        assert isinstance(first, ast.Attribute) and isinstance(first.value, ast.Name) and first.value.id == "act", \
            ast.unparse(call)
