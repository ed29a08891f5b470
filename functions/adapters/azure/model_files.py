"""ports.ModelFiles on AzureML: a model version's files, downloaded once with azure-ai-ml
(`models.download`, from the staging workspace or the shared registry, by the ModelRef's uri) into a
temporary folder that lives as long as this adapter, then read by name as on the local platform."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from functions.adapters.azure.errors import azure_errors
from functions.shared.model_folder import find_in_folder
from functions.ports import ModelRef


class DownloadedModelFiles:
    def __init__(self, workspace_client: Callable[[], Any], registry_client: Callable[[], Any]) -> None:
        self._clients = {"workspace": workspace_client, "registry": registry_client}
        self._folders: dict[str, Path] = {}
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="modelops-model-files-")

    def read(self, model: ModelRef, name: str) -> bytes | None:
        path = find_in_folder(self._folder(model), name)
        return None if path is None else path.read_bytes()

    def _folder(self, model: ModelRef) -> Path:
        with self._lock:
            if model.uri in self._folders:
                return self._folders[model.uri]
            where = "registry" if model.uri.startswith("azureml://registries/") else "workspace"
            target = Path(self._tmp.name) / str(len(self._folders))
            with azure_errors(f"download {where} model {model.name}:{model.version}"):
                self._clients[where]().models.download(name=model.name, version=model.version,
                                                       download_path=str(target))
            # download_path/<name>/<the registered folder>: the files' folder is the one holding them
            roots = [p for p in target.rglob("*") if p.is_dir() and any(c.is_file() for c in p.iterdir())]
            folder = min(roots, key=lambda p: len(p.parts)) if roots else target
            self._folders[model.uri] = folder
            return folder
