"""Parsing Event Grid deliveries of `Microsoft.MachineLearningServices.ModelRegistered`, defensively.

Accepts the Event Grid schema and the CloudEvents 1.0 form; `data` keys in PascalCase (docs) or
camelCase (live workspaces); the version as int or string; falls back to the subject
`models/{name}:{version}` (split on the last ':'). Unknown fields are ignored. Anything unusable
raises `InvalidEvent` with a reason — the trigger logs and drops it (never a crash loop).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from functions.shared.eventgrid import MODEL_REGISTERED
from functions.shared.names import is_model_name, is_version, version_key

SUBSCRIPTION_VALIDATION = "Microsoft.EventGrid.SubscriptionValidationEvent"


class InvalidEvent(ValueError):
    """The delivery cannot be acted on; `reason` says why (logged, then dropped)."""

    def __init__(self, reason: str, event_id: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.event_id = event_id


@dataclass(frozen=True)
class ModelRegistered:
    event_id: str
    topic: str  # the workspace resource id (the system topic's source)
    subject: str
    event_time: str
    model_name: str
    model_version: str
    tags: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    schema: str = "EventGridSchema"  # or "CloudEvents"

    @property
    def workspace(self) -> str:
        """Short workspace name from the topic (…/workspaces/<name>), or the topic itself."""
        match = re.search(r"/workspaces/([^/]+)", self.topic, re.I)
        return match.group(1) if match else self.topic

    @property
    def instance_id(self) -> str:
        """Deterministic orchestration id: a redelivered event maps to the same rollout."""
        return rollout_id(self.topic, self.model_name, self.model_version)

    def to_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id, "topic": self.topic, "subject": self.subject,
            "event_time": self.event_time, "model_name": self.model_name,
            "model_version": self.model_version, "tags": self.tags, "properties": self.properties,
            "schema": self.schema,
        }


def rollout_id(topic: str, model: str, version: str) -> str:
    digest = hashlib.sha256(f"{topic.lower()}|{model}|{version}".encode()).hexdigest()[:16]
    safe_model = re.sub(r"[^A-Za-z0-9-]", "-", model)[:60]
    return f"rollout-{safe_model}-{version}-{digest}"


def split_payload(payload: bytes | str | Any) -> list[Any]:
    """A delivery body is an array of events (Event Grid) or one event (CloudEvents binary/structured)."""
    if isinstance(payload, (bytes, str)):
        try:
            payload = json.loads(payload)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"body is not JSON: {exc}") from None
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        return [payload]
    raise InvalidEvent(f"body must be an event object or an array of events, got {type(payload).__name__}")


def event_type(raw: Any) -> str:
    if not isinstance(raw, dict):
        return ""
    value = _get(raw, "eventType") or _get(raw, "type")
    return value if isinstance(value, str) else ""


def parse_model_registered(raw: Any) -> ModelRegistered:
    if not isinstance(raw, dict):
        raise InvalidEvent(f"event must be an object, got {type(raw).__name__}")
    event_id = _text(_get(raw, "id"))
    is_cloud_event = "specversion" in {k.lower() for k in raw}
    kind = event_type(raw)
    if kind != MODEL_REGISTERED:
        raise InvalidEvent(f"event type {kind or '(missing)'!r} is not {MODEL_REGISTERED}", event_id)
    topic = _text(_get(raw, "source") if is_cloud_event else _get(raw, "topic"))
    if not topic:
        raise InvalidEvent("event has no topic/source (which workspace?)", event_id)
    subject = _text(_get(raw, "subject"))
    data = _get(raw, "data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidEvent(f"event data must be an object, got {type(data).__name__}", event_id)

    subject_name, subject_version = _from_subject(subject)
    name = _text(_get(data, "ModelName")) or subject_name
    version_raw = _get(data, "ModelVersion")
    version = _version_text(version_raw) if version_raw is not None else subject_version
    if not name:
        raise InvalidEvent("no model name in data.ModelName or subject models/{name}:{version}", event_id)
    if not version:
        raise InvalidEvent(f"no model version for {name!r} in data.ModelVersion or subject", event_id)
    if not is_model_name(name):
        raise InvalidEvent(f"model name {name[:80]!r} is not a valid AzureML asset name", event_id)
    if not is_version(version):
        raise InvalidEvent(f"model version {version[:60]!r} is not a valid AzureML version", event_id)
    if subject_name and subject_name != name:
        raise InvalidEvent(f"subject names model {subject_name!r} but data names {name!r}", event_id)

    tags = _get(data, "ModelTags")
    props = _get(data, "ModelProperties")
    return ModelRegistered(
        event_id=event_id or f"no-id:{name}:{version}",
        topic=topic,
        subject=subject,
        event_time=_text(_get(raw, "time") if is_cloud_event else _get(raw, "eventTime")),
        model_name=name,
        model_version=version,
        tags=tags if isinstance(tags, dict) else {},
        properties=props if isinstance(props, dict) else {},
        schema="CloudEvents" if is_cloud_event else "EventGridSchema",
    )


def is_newer(candidate: str, than: str | None) -> bool:
    return than is None or version_key(candidate) > version_key(than)


def _get(obj: dict, key: str) -> Any:
    """Case-insensitive key lookup (ModelName / modelName / modelname)."""
    if key in obj:
        return obj[key]
    lower = key.lower()
    for k, v in obj.items():
        if isinstance(k, str) and k.lower() == lower:
            return v
    return None


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _version_text(value: Any) -> str:
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value) if value >= 0 else ""
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return str(int(value))
    return _text(value)


def _from_subject(subject: str) -> tuple[str, str]:
    if not subject.startswith("models/") or ":" not in subject:
        return "", ""
    name, _, version = subject[len("models/"):].rpartition(":")
    return name.strip(), version.strip()


def iter_model_events(payload: Any) -> Iterable[tuple[Any, ModelRegistered | InvalidEvent]]:
    """Each raw event with its parse result (an InvalidEvent instead of raising)."""
    for raw in split_payload(payload):
        try:
            yield raw, parse_model_registered(raw)
        except InvalidEvent as exc:
            yield raw, exc
