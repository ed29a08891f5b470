"""The local platform's AzureML workspace and registry: model versions as folders.

    <home>/workspace/models/<name>/<version>/   artifact copy + .modelops-model.json (tags, time)
    <home>/registry/models/<name>/<version>/    promoted copies with lineage tags

`register` copies the artifact into a hidden staging folder first and then takes the next version
number by renaming it into place (atomic: a version folder is complete or absent — a full disk or a
crash mid-copy leaves no half version, and the next registration does not skip a number), then
emits a real ModelRegistered payload in Event Grid schema (camelCase data, as live workspaces send)
to the configured handler. Names follow AzureML's rules (functions/shared/names.py): a name can never
leave the workspace folder.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from functions.shared.eventgrid import model_registered_payload
from functions.shared.names import InvalidName, check_model_name, check_version, version_key
from functions.ports import MLFLOW_MODEL, ModelRef, PlatformError

META = ".modelops-model.json"
LOCAL_TOPIC = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/"
               "Microsoft.MachineLearningServices/workspaces/{name}")


def _versions(folder: Path) -> list[str]:
    """Complete versions only (a folder with its metadata): hidden staging folders do not count."""
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and (p / META).is_file()), key=version_key)


def _read_meta(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / META).read_text())
    except FileNotFoundError:
        return {}


class LocalWorkspace:
    def __init__(self, home: Path, name: str = "staging",
                 on_registered: Callable[[list[dict[str, Any]]], Any] | None = None) -> None:
        self.root = Path(home) / "workspace" / "models"
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.topic = LOCAL_TOPIC.format(name=name)
        self.on_registered = on_registered

    def model_dir(self, name: str, version: str) -> Path:
        return self.root / _checked(name) / _checked_version(version)

    def versions(self, name: str) -> list[str]:
        return _versions(self.root / _checked(name))

    def get(self, name: str, version: str) -> ModelRef | None:
        try:
            folder = self.model_dir(name, version)
        except PlatformError:
            return None  # a name AzureML would refuse names no model
        meta = _read_meta(folder)
        if not meta:
            return None
        return ModelRef(name, version, str(folder), meta.get("tags", {}), source=self.topic,
                        model_type=_model_type(folder), registered_by=str(meta.get("registered_by") or ""))

    def register(self, artifact_dir: str | Path, name: str, tags: dict[str, str] | None = None,
                 emit: bool = True, registered_by: str | None = None) -> tuple[ModelRef, list[dict[str, Any]]]:
        """Copy an artifact in as the next version; emit ModelRegistered (like AzureML does).
        `registered_by` (default: the OS user) is kept like AzureML's creation_context.created_by."""
        artifact_dir = Path(artifact_dir)
        if registered_by is None:
            import getpass

            try:
                registered_by = getpass.getuser()
            except (KeyError, OSError):  # no passwd entry (containers): unknown, never a guess
                registered_by = ""
        folder = self.root / _checked(name)
        if not artifact_dir.exists():
            raise PlatformError(f"{artifact_dir}: no such folder")
        if not artifact_dir.is_dir():
            raise PlatformError(f"{artifact_dir} is a file, not a model artifact folder (modelops train --out DIR)")
        if not (artifact_dir / "model_card.json").is_file() and not (artifact_dir / "MLmodel").is_file():
            raise PlatformError(f"{artifact_dir} is not a model artifact (no model_card.json) nor an MLflow model "
                                "(no MLmodel)")
        folder.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        staging = Path(tempfile.mkdtemp(dir=folder, prefix=".incoming-"))
        try:
            shutil.copytree(artifact_dir, staging, dirs_exist_ok=True)
            while True:
                existing = [v for v in _versions(folder) if v.isdigit()]
                version = str(max((int(v) for v in existing), default=0) + 1)
                (staging / META).write_text(json.dumps({"name": name, "version": version, "tags": tags or {},
                                                        "registered": now.isoformat(),
                                                        "registered_by": registered_by}))
                target = folder / version
                try:
                    os.rename(staging, target)  # fails if the version exists (not empty): take the next
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                        raise
                    if target.is_dir() and not (target / META).is_file():
                        shutil.rmtree(target, ignore_errors=True)  # an old half version: reclaim its number
        except OSError as exc:
            text = _first_error(exc)
            raise PlatformError(f"could not register {name} from {artifact_dir}: {text}",
                                transient=exc.errno == errno.ENOSPC or "No space left" in text) from exc
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        ref = ModelRef(name, version, str(target), tags or {}, source=self.topic, model_type=_model_type(target))
        payload = [model_registered_payload(self.topic, name, version, tags or {}, now)]
        if emit and self.on_registered is not None:
            self.on_registered(payload)
        return ref, payload


def _model_type(folder: Path) -> str:
    """What AzureML would call the folder (an MLflow model is registered as mlflow_model)."""
    return MLFLOW_MODEL if (folder / "MLmodel").is_file() else "custom_model"


def _first_error(exc: OSError) -> str:
    """shutil.copytree gathers per-file failures into one shutil.Error: name the first."""
    if isinstance(exc, shutil.Error) and exc.args and isinstance(exc.args[0], list) and exc.args[0]:
        return str(exc.args[0][0][-1])
    return str(exc.strerror or exc)


def _checked(name: str) -> str:
    try:
        return check_model_name(name)
    except InvalidName as exc:
        raise PlatformError(str(exc)) from None


def _checked_version(version: str) -> str:
    try:
        return check_version(version)
    except InvalidName as exc:
        raise PlatformError(str(exc)) from None


class LocalModelRegistry:
    """ports.ModelRegistry over a LocalWorkspace and a registry folder."""

    def __init__(self, workspace: LocalWorkspace, home: Path, name: str = "shared") -> None:
        self.workspace = workspace
        self.root = Path(home) / "registry" / "models"
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name

    def get_workspace_model(self, name: str, version: str) -> ModelRef | None:
        return self.workspace.get(name, version)

    def get_registry_model(self, name: str, version: str) -> ModelRef | None:
        try:
            folder = self.root / _checked(name) / _checked_version(version)
        except PlatformError:
            return None
        meta = _read_meta(folder)
        if not meta:
            return None
        return ModelRef(name, version, str(folder), meta.get("tags", {}), source=f"registry:{self.name}",
                        model_type=_model_type(folder))

    def promote(self, model: ModelRef, tags: dict[str, str]) -> ModelRef:
        existing = self.get_registry_model(model.name, model.version)
        if existing is not None:
            return existing
        target = self.root / model.name / model.version
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{model.version}."))
        try:
            shutil.copytree(model.uri, staging, dirs_exist_ok=True)
            meta = {"name": model.name, "version": model.version, "tags": {**model.tags, **tags},
                    "promoted": datetime.now(timezone.utc).isoformat(), "source": model.source}
            (staging / META).write_text(json.dumps(meta))
            try:
                staging.rename(target)  # atomic: a concurrent promotion of the same version loses cleanly
            except OSError:
                if self.get_registry_model(model.name, model.version) is None:
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        promoted = self.get_registry_model(model.name, model.version)
        assert promoted is not None
        return promoted
