"""Finding a file in a registered model's folder, wherever the platform put it.

A folder model may hold its files one level below its root (AzureML mounts a registered folder as
AZUREML_MODEL_DIR/<folder name>/; `models.download` writes <path>/<name>/<folder>), so the root is
looked in first, then the one subfolder that has the file. Names come from the model's own files
(MLmodel's input example path), so only plain file names are looked up: nothing a model says can
read outside its folder. Stdlib only.
"""

from __future__ import annotations

import re
from pathlib import Path

_FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def find_in_folder(root: Path, name: str) -> Path | None:
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        return None
    if (root / name).is_file():
        return root / name
    found = sorted(p for p in root.glob(f"*/{name}") if p.is_file())
    return found[0] if len(found) == 1 else None
