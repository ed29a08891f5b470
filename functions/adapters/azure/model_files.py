"""ports.ModelFiles on AzureML: a model version's files, downloaded with azure-ai-ml
(`models.download`, from the staging workspace or the shared registry, by the ModelRef's uri) into a
temporary folder, then read by name as on the local platform.

What `models.download` sends (azure-ai-ml 1.35; asserted in tests/test_azure_model_files.py against
tests/fake_arm + Azurite):

- workspace model: GET …/workspaces/W/models/N/versions/V (its `modelUri`,
  azureml://…/datastores/<D>/paths/<prefix>) → GET …/datastores/<D> → POST …/datastores/<D>/listSecrets
  → azure-storage-blob with the account key on https://<accountName>.blob.core.windows.net/<container>:
  HEAD <prefix> (a single blob?), list with delimiter (a folder?), list with metadata, one GET per blob.
- registry model: GET …/registries/R/models/N/versions/V (`modelUri`, the registry storage's blob
  URL) → POST …/registries/R/datarefs/N/versions/V {"assetId", "blobUri"} → a container SAS URL →
  the same HEAD / list / GET on it. (The Function App's identity needs no storage role: the registry
  hands out the SAS.)

The storage calls run on azure-storage-blob's own pipeline (not the MLClient's: no injected
transport, no client options). Files land in <download_path>/<name>/<last segment of the prefix>/;
the version's folder is found from there. The SDK downloads every file of the version (there is no
per-file download), so each download gets a fresh folder and only the newest few are kept.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

from functions.adapters.azure.errors import azure_errors
from functions.ports import ModelRef, PlatformError
from functions.shared.model_folder import find_in_folder

KEEP_FOLDERS = 4  # downloaded versions kept (a rollout reads one version's files a few times in a row)


class DownloadedModelFiles:
    def __init__(self, workspace_client: Callable[[], Any], registry_client: Callable[[], Any], *,
                 keep: int = KEEP_FOLDERS) -> None:
        self._clients = {"workspace": workspace_client, "registry": registry_client}
        self._folders: OrderedDict[str, tuple[Path, Path]] = OrderedDict()  # uri → (download dir, folder)
        self._keep = max(1, keep)
        self._lock = threading.Lock()
        self._tmp = tempfile.TemporaryDirectory(prefix="modelops-model-files-")

    def read(self, model: ModelRef, name: str) -> bytes | None:
        path = find_in_folder(self._folder(model), name)
        return None if path is None else path.read_bytes()

    def _folder(self, model: ModelRef) -> Path:
        with self._lock:
            if model.uri in self._folders:
                self._folders.move_to_end(model.uri)
                return self._folders[model.uri][1]
            where = "registry" if model.uri.startswith("azureml://registries/") else "workspace"
            target = Path(tempfile.mkdtemp(dir=self._tmp.name))  # never a folder a failed attempt wrote to
            try:
                with azure_errors(f"download {where} model {model.name}:{model.version}"):
                    self._clients[where]().models.download(name=model.name, version=model.version,
                                                           download_path=str(target))
                folder = _version_folder(target / model.name)
                if folder is None:
                    raise PlatformError(f"download {where} model {model.name}:{model.version}: the version has "
                                        "no files (its path points at an empty or missing storage prefix)")
            except BaseException:
                shutil.rmtree(target, ignore_errors=True)
                raise
            self._folders[model.uri] = (target, folder)
            while len(self._folders) > self._keep:
                _, (old, _) = self._folders.popitem(last=False)
                shutil.rmtree(old, ignore_errors=True)
            return folder


def _version_folder(root: Path) -> Path | None:
    """The registered folder under <download_path>/<name>: the SDK adds one level named after the
    prefix's last segment for a folder model (none for a single-file one); a folder that holds only
    one folder is descended into (an MLflow model registered as <run outputs>/model/)."""
    if not root.is_dir():
        return None
    folder = root
    while True:
        entries = list(folder.iterdir())
        if len(entries) == 1 and entries[0].is_dir():
            folder = entries[0]
            continue
        return folder if any(p.is_file() for p in folder.rglob("*")) else None
