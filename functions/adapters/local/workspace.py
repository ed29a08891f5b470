"""The local platform's AzureML workspace and registry: model versions as folders.

    <home>/workspace/models/<name>/<version>/   artifact copy + .modelops-model.json (tags, time)
    <home>/registry/models/<name>/<version>/    promoted copies with lineage tags

`register` allocates the next version atomically (mkdir), then emits a real ModelRegistered
payload in Event Grid schema (camelCase data, as live workspaces send) to the configured handler.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from functions.core.events import MODEL_REGISTERED, version_key
from functions.ports import ModelRef, PlatformError

META = ".modelops-model.json"
LOCAL_TOPIC = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/local/providers/"
               "Microsoft.MachineLearningServices/workspaces/{name}")


def _versions(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted((p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")), key=version_key)


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
        return self.root / name / version

    def versions(self, name: str) -> list[str]:
        return _versions(self.root / name)

    def get(self, name: str, version: str) -> ModelRef | None:
        folder = self.model_dir(name, version)
        meta = _read_meta(folder)
        if not meta:
            return None
        return ModelRef(name, version, str(folder), meta.get("tags", {}), source=self.topic)

    def register(self, artifact_dir: str | Path, name: str, tags: dict[str, str] | None = None,
                 emit: bool = True) -> tuple[ModelRef, list[dict[str, Any]]]:
        """Copy an artifact in as the next version; emit ModelRegistered (like AzureML does)."""
        artifact_dir = Path(artifact_dir)
        if not (artifact_dir / "model_card.json").is_file():
            raise PlatformError(f"{artifact_dir} is not a model artifact (no model_card.json)")
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        while True:  # mkdir is atomic: two registrations never get the same version
            existing = [v for v in _versions(folder) if v.isdigit()]
            version = str(max((int(v) for v in existing), default=0) + 1)
            target = folder / version
            try:
                target.mkdir()
                break
            except FileExistsError:
                continue
        shutil.copytree(artifact_dir, target, dirs_exist_ok=True)
        now = datetime.now(timezone.utc)
        (target / META).write_text(json.dumps({"name": name, "version": version, "tags": tags or {},
                                               "registered": now.isoformat()}))
        ref = ModelRef(name, version, str(target), tags or {}, source=self.topic)
        payload = [model_registered_payload(self.topic, name, version, tags or {}, now)]
        if emit and self.on_registered is not None:
            self.on_registered(payload)
        return ref, payload


def model_registered_payload(topic: str, name: str, version: str, tags: dict[str, str],
                             when: datetime | None = None) -> dict[str, Any]:
    when = when or datetime.now(timezone.utc)
    return {
        "topic": topic,
        "subject": f"models/{name}:{version}",
        "eventType": MODEL_REGISTERED,
        "eventTime": when.isoformat().replace("+00:00", "Z"),
        "id": str(uuid.uuid4()),
        "data": {"modelName": name, "modelVersion": version, "modelTags": tags, "modelProperties": {}},
        "dataVersion": "2",
        "metadataVersion": "1",
    }


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
        folder = self.root / name / version
        meta = _read_meta(folder)
        if not meta:
            return None
        return ModelRef(name, version, str(folder), meta.get("tags", {}), source=f"registry:{self.name}")

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
