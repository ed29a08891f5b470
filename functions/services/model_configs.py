"""Per-model configuration files: one `<model>.json`, `.yaml` or `.yml` per managed model, each
holding what a MODELOPS_MODELS entry holds; the file's name is the model's name. Two places:

- a folder (MODELOPS_MODELS_DIR; in the repository it ships with the Function App's code): read
  once at start, and an invalid file stops the app from starting (a deploy-time mistake);
- the store, under config/models/ (the state container in Azure, <home>/store locally; written by
  `modelops models put`, which validates first): re-read every MODELOPS_CONFIG_REFRESH_SECONDS, so
  a platform team onboards a model without redeploying. One team's invalid file never stops the
  others: that model keeps its last valid configuration in this process, or — with none — is not
  managed, and every decision about it says which file is wrong and why.

A model configured in two places (the app setting, the folder, the store) is an error. Read here
(I/O); validated by functions.domain.config, whose errors then name the file and the field.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any, Callable

from functions.domain.config import ConfigError, ManagedModels, load_managed_models
from functions.ports import PlatformError, Store
from functions.shared.logs import log_event

logger = logging.getLogger(__name__)
SUFFIXES = (".json", ".yaml", ".yml")
MAX_FILE_BYTES = 1024 * 1024
STORE_PREFIX = "config/models/"


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
    return parse_model_file(data, path.suffix, str(path))


def parse_model_file(data: bytes, suffix: str, path: str) -> Any:
    """A configuration file's settings (a dict); ConfigError naming `path` when it is not one."""
    if len(data) > MAX_FILE_BYTES:
        raise ConfigError(f"{path}: larger than 1 MiB (a model's configuration is a few lines)")
    try:
        if suffix == ".json":
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


def store_key(model: str, suffix: str) -> str:
    return f"{STORE_PREFIX}{model}{suffix}"


def read_store_files(store: Store) -> tuple[dict[str, tuple[str, Any]], dict[str, str]]:
    """({model: (where, values)}, {model: problem}) for the store's configuration files: a file
    that cannot be read or parsed is a problem of its model, never an exception."""
    files: dict[str, tuple[str, Any]] = {}
    problems: dict[str, str] = {}
    for key in store.list(STORE_PREFIX):
        name = key[len(STORE_PREFIX):]
        suffix = next((s for s in SUFFIXES if name.endswith(s)), "")
        model = name[:-len(suffix)] if suffix else name
        where = f"store {key}"
        if not suffix or "/" in name or not model:
            continue  # not a configuration file (notes, folders): not ours to judge
        if model in files or model in problems:
            problems[model] = f"{where}: model {model!r} has another file in {STORE_PREFIX} (keep one file per model)"
            files.pop(model, None)
            continue
        found = store.get(key)
        if found is None:
            continue  # deleted while listed
        try:
            files[model] = (where, parse_model_file(found[0], suffix, where))
        except ConfigError as exc:
            problems[model] = str(exc)
    return files, problems


class ModelConfigs:
    """The managed models as they stand now: the app setting and the folder (read once, invalid =
    the app does not start) and the store's files (re-read every `refresh_seconds`; see the module
    docstring). Thread-safe; a store that cannot be read keeps the previous answer."""

    def __init__(self, models_json: str | None, folder: Path | None, overrides: dict[str, Any] | None = None, *,
                 platform: str | None = None, refresh_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.overrides = dict(overrides or {})
        self.platform = platform  # what the files are checked against too (None: configuration only)
        folder_files = read_model_files(folder)
        self.base = load_managed_models(models_json, self.overrides, folder_files, platform)
        self.implicit_default = not (models_json or "").strip() and not folder_files
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._last_good: dict[str, Any] = {}  # model -> its last valid ModelConfig from the store
        self._current: ManagedModels | None = None
        self._read_at = float("-inf")
        self.problems: dict[str, str] = {}  # every store file's problem at the last read, by model

    def current(self, store: Store | None, *, strict: bool = False) -> ManagedModels:
        """`strict`: a store that cannot be read raises (the CLI) instead of keeping the last answer."""
        if store is None:
            return self.base
        with self._lock:
            if self._current is not None and self._clock() - self._read_at < self.refresh_seconds:
                return self._current
            try:
                files, problems = read_store_files(store)
            except (PlatformError, OSError) as exc:
                if strict:
                    raise
                log_event(logger, "model_configs_unreadable", logging.WARNING, error=str(exc)[:300])
                return self._current or self.base
            self._current, self._read_at = self._combine(files, problems), self._clock()
            return self._current

    def _combine(self, files: dict[str, tuple[str, Any]], problems: dict[str, str]) -> ManagedModels:
        base = {} if self.implicit_default and (files or problems) else dict(self.base.models)
        models, invalid = dict(base), {}
        for model, (where, values) in files.items():
            if model in base:
                problems[model] = (f"{where}: model {model!r} is configured in MODELOPS_MODELS or MODELOPS_MODELS_DIR "
                                   "too (keep one)")
                continue
            try:
                models[model] = load_managed_models(None, self.overrides, {model: (where, values)},
                                                     self.platform).get(model)
                self._last_good[model] = models[model]
            except ConfigError as exc:
                problems[model] = str(exc)
        self.problems = dict(problems)
        for model, problem in problems.items():
            log_event(logger, "model_config_invalid", logging.WARNING, model=model, error=problem[:500])
            if model in base:
                continue  # the setting's or folder's configuration stands
            if model in self._last_good:
                models[model] = self._last_good[model]
            invalid[model] = problem
        return ManagedModels(models, {m: p for m, p in invalid.items() if m not in models})
