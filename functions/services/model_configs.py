"""Per-model configuration files: one `<model>.json`, `.yaml` or `.yml` per managed model in a folder
(MODELOPS_MODELS_DIR; in the repository it ships with the Function App's code), each holding what a
MODELOPS_MODELS entry holds. The file's name is the model's name. Read here (I/O); validated by
functions.domain.config, whose errors then name the file and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from functions.domain.config import ConfigError, ManagedModels, load_managed_models

SUFFIXES = (".json", ".yaml", ".yml")
MAX_FILE_BYTES = 1024 * 1024


def read_model_files(folder: Path | None) -> dict[str, tuple[str, Any]]:
    """{model: (file, values)} for every configuration file in `folder` (none when it is None)."""
    if folder is None:
        return {}
    if not folder.is_dir():
        raise ConfigError(f"MODELOPS_MODELS_DIR {folder}: no such folder")
    out: dict[str, tuple[str, Any]] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix not in SUFFIXES or path.name.startswith("."):
            continue
        name = path.stem
        if name in out:
            raise ConfigError(f"{path}: model {name!r} also has {out[name][0]} (keep one file per model)")
        out[name] = (str(path), read_model_file(path))
    return out


def read_model_file(path: Path) -> Any:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than 1 MiB (a model's configuration is a few lines)")
    try:
        if path.suffix == ".json":
            values = json.loads(data)
        else:
            import yaml

            values = yaml.safe_load(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid JSON ({exc})") from None
    except Exception as exc:  # noqa: BLE001 - yaml.YAMLError and its kin: one line naming the file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path}: must hold an object of settings (e.g. {{\"gates\": {{...}}}}), "
                          f"not {type(values).__name__}")
    return values


def managed_models(models_json: str | None, folder: Path | None, overrides: dict[str, Any] | None = None,
                   platform: str | None = None) -> ManagedModels:
    """Every managed model: MODELOPS_MODELS and the folder's files, validated together (and against
    what `platform` can do, when it is given)."""
    return load_managed_models(models_json, overrides, read_model_files(folder), platform)
