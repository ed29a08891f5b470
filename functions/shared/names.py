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
  check in `_endpoint_helpers.py`);
- registered component references (a model's `retraining_pipeline`): `azureml:<name>:<version>` or
  `azureml:<name>@latest` in the workspace, `azureml://registries/<registry>/components/<name>/
  versions/<version>` or `…/<name>/labels/latest` in a registry. Names and versions follow the
  asset rules above. `latest` is the only label: azure-ai-ml resolves no other label for a
  component (`ComponentOperations._managed_label_resolver`), and a reference without a version
  would silently mean the component's default version.

Stdlib only: the Function App imports this at cold start.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


COMPONENT_FORMS = ("azureml:<name>:<version>, azureml:<name>@latest, "
                   "azureml://registries/<registry>/components/<name>/versions/<version> or "
                   "azureml://registries/<registry>/components/<name>/labels/latest")
_ASSET = r"(?![-_.])[A-Za-z0-9_.-]{1,255}(?<!\.)"
_WORKSPACE_REF = re.compile(rf"azureml:(?P<name>{_ASSET})(?::(?P<version>[^:@/]*)|@(?P<label>[^:@/]*))?")
_REGISTRY_REF = re.compile(rf"azureml://registries/(?P<registry>{_ASSET})/components/(?P<name>{_ASSET})"
                           r"/(?:versions/(?P<version>[^/]*)|labels/(?P<label>[^/]*))")


@dataclass(frozen=True)
class ComponentRef:
    """A registered AzureML component: in the workspace (`registry` None) or in a registry; pinned
    to a `version` or following `label` ("latest": the most recently created version)."""

    name: str
    version: str | None = None
    label: str | None = None
    registry: str | None = None

    @property
    def place(self) -> str:
        return f"registry {self.registry}" if self.registry else "the workspace"

    def __str__(self) -> str:
        if self.registry:
            tail = f"versions/{self.version}" if self.version else f"labels/{self.label}"
            return f"azureml://registries/{self.registry}/components/{self.name}/{tail}"
        return f"azureml:{self.name}:{self.version}" if self.version else f"azureml:{self.name}@{self.label}"


def is_component_ref(text: Any) -> bool:
    """A `retraining_pipeline` value that names a registered component rather than a YAML file."""
    return isinstance(text, str) and text.startswith("azureml:")


def parse_component_ref(text: str) -> ComponentRef:
    """The reference `text` names (see COMPONENT_FORMS); InvalidName saying what is wrong and the
    accepted forms otherwise."""
    match = _REGISTRY_REF.fullmatch(text) if text.startswith("azureml://") else _WORKSPACE_REF.fullmatch(text)
    if match is None:
        raise InvalidName(f"{text[:300]!r} is not a registered component reference: use {COMPONENT_FORMS}")
    name, version, label = match.group("name"), match.group("version"), match.group("label")
    registry = match.groupdict().get("registry")
    if version is None and label is None:
        raise InvalidName(f"{text!r} names no version: pin one ({text}:<version>) or follow the newest "
                          f"({text}@latest)")
    if label is not None and label != "latest":
        raise InvalidName(f"{text!r}: the only component label is 'latest' (azure-ai-ml resolves no other "
                          "label for components); pin a version instead")
    if version is not None and not VERSION.fullmatch(version):
        raise InvalidName(f"{text!r}: version {version!r} is invalid: 1–50 letters, digits, '_', '.' or '-', "
                          "starting with a letter or digit and not ending with '.'")
    return ComponentRef(name, version or None, label, registry)
