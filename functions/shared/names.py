"""AzureML's naming rules, checked wherever a name enters modelops (CLI, events, settings, adapters).

A model name becomes a folder on the local platform, a store key, a KQL literal and a REST path
segment, so it is checked on entry rather than escaped everywhere. The rules are AzureML's own:

- model (asset) names: `^(?![\\-_.])[a-zA-Z0-9\\-_.]{1,255}(?<!\\.)$` — the path pattern of
  azure-ai-ml's model data-plane client (`_restclient/model_dataplane/operations/_models_operations.py`);
  no '/', no leading '.', so no path traversal;
- versions: AzureML accepts asset versions of letters, digits, '_', '.', '-' (numeric for models
  registered without one), at most 50 characters here;
- online endpoint and deployment names: 3–32 characters, a letter first, letters/digits/hyphens,
  not ending with a hyphen (azure-ai-ml `constants/_endpoint.py` NAME_REGEX_PATTERN and its length
  check in `_endpoint_helpers.py`).

Stdlib only: the Function App imports this at cold start.
"""

from __future__ import annotations

import re
from typing import Any

MODEL_NAME = re.compile(r"(?![-_.])[A-Za-z0-9_.-]{1,255}(?<!\.)")
VERSION = re.compile(r"(?![-_.])[A-Za-z0-9_.-]{1,50}(?<!\.)")
ENDPOINT_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9-]{1,30})[A-Za-z0-9]")


class InvalidName(ValueError):
    """A name AzureML would refuse; the message says which rule it breaks."""


def _checked(value: Any, pattern: re.Pattern[str], what: str, rule: str, shown: int) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidName(f"{what} {value[:shown] if isinstance(value, str) else value!r} is invalid: {rule}")
    return value


def check_model_name(name: Any) -> str:
    return _checked(name, MODEL_NAME, "model name", "1–255 letters, digits, '_', '.' or '-', starting with a "
                    "letter or digit and not ending with '.'", 80)


def check_version(version: Any) -> str:
    return _checked(version, VERSION, "model version", "1–50 letters, digits, '_', '.' or '-', starting with a "
                    "letter or digit and not ending with '.'", 60)


def check_endpoint_name(name: Any, kind: str = "endpoint") -> str:
    if not isinstance(name, str) or not ENDPOINT_NAME.fullmatch(name):
        raise InvalidName(f"{kind} name {name!r} is invalid: 3–32 letters, digits or '-', starting with a letter "
                          "and not ending with '-'")
    return name


def is_model_name(name: Any) -> bool:
    return isinstance(name, str) and MODEL_NAME.fullmatch(name) is not None


def is_version(version: Any) -> bool:
    return isinstance(version, str) and VERSION.fullmatch(version) is not None


def version_key(version: str) -> tuple:
    """Order versions numerically where numeric ("10" > "9"); otherwise as text, after numbers."""
    return (0, int(version), "") if version.isdigit() else (1, 0, version)
