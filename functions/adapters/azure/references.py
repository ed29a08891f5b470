"""ports.ReferenceSource on the shared AzureML registry: a production model's reference sample."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable


class RegistryReferences:
    """Downloads `reference.parquet` of a registered model version. The registry client is built
    once, on first use (building it sends a discovery request), and kept."""

    def __init__(self, registry_client: Callable[[], Any], registry_name: str) -> None:
        self._factory = registry_client
        self._client: Any = None
        self.registry_name = registry_name

    def reference_file(self, model: str, version: str, tmp: Any) -> Path:
        if self._client is None:
            self._client = self._factory()
        target = Path(tmp) / "model"
        self._client.models.download(name=model, version=version, download_path=str(target))
        found = sorted(target.rglob("reference.parquet"))
        if not found:
            raise FileNotFoundError(f"{model}:{version} in registry {self.registry_name} has no reference.parquet")
        return found[0]
