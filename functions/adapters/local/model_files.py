"""ports.ModelFiles on folders: on the embedded platform a ModelRef's uri is the version's folder
(the workspace's or the registry copy's)."""

from __future__ import annotations

from pathlib import Path

from functions.ports import ModelRef, PlatformError
from functions.shared.model_folder import find_in_folder


class FolderModelFiles:
    def read(self, model: ModelRef, name: str) -> bytes | None:
        root = Path(model.uri)
        if not root.is_dir():
            raise PlatformError(f"model {model.name}:{model.version}: folder {root} is missing")
        path = find_in_folder(root, name)
        return None if path is None else path.read_bytes()
