"""What to do with a ModelRegistered event: a pure decision, recorded with its reason.

    decide(event, facts) -> Decision(action ∈ rollout | ignore | skip | duplicate | invalid | held, reason, run_key)

`held`: the model (or every model) is frozen — the event is kept and the newest held version is
released on unfreeze (functions/domain/freezes.py).

The facts (managed models, allowed workspace topics, production version, rollouts already known)
are gathered by the caller; this module does no I/O, so every branch is tested by direct call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from functions.domain.config import ManagedModels
from functions.domain.events import InvalidEvent, ModelRegistered, is_newer
from functions.shared.names import version_key

Action = Literal["rollout", "ignore", "skip", "duplicate", "invalid", "held"]


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    model: str = ""
    version: str = ""
    run_key: str = ""  # the rollout/orchestration id; the dedupe key
    event_id: str = ""

    def to_dict(self) -> dict[str, str]:
        return {
            "action": self.action, "reason": self.reason, "model": self.model, "version": self.version,
            "run_key": self.run_key, "event_id": self.event_id,
        }


@dataclass(frozen=True)
class Facts:
    managed: ManagedModels
    allowed_topics: tuple[str, ...] = ()  # empty: any workspace (local development)
    production_version: str | None = None
    existing_rollout_state: str | None = None  # state of a rollout with this run key, if any
    running_versions: tuple[str, ...] = field(default_factory=tuple)  # other in-flight rollouts of the model
    frozen: str | None = None  # why the model is frozen now (a freeze's description), else None
    superseded_by: str | None = None  # a newer held version released instead of this one at an unfreeze


def decide(event: ModelRegistered | InvalidEvent, facts: Facts) -> Decision:
    if isinstance(event, InvalidEvent):
        return Decision("invalid", event.reason, event_id=event.event_id)
    base = dict(model=event.model_name, version=event.model_version, run_key=event.instance_id,
                event_id=event.event_id)
    if facts.allowed_topics and event.topic.lower() not in {t.lower() for t in facts.allowed_topics}:
        return Decision("ignore", f"event from workspace {event.topic!r}, not the configured staging workspace",
                        **base)
    if facts.managed.get(event.model_name) is None:
        problem = facts.managed.invalid.get(event.model_name)
        if problem:
            return Decision("ignore", f"model {event.model_name!r} has an invalid configuration: {problem} (fix it, "
                                      "then retry the version)", **base)
        managed = ", ".join(facts.managed.names) or "none"
        return Decision("ignore", f"model {event.model_name!r} is not managed (managed: {managed})", **base)
    if facts.existing_rollout_state is not None:
        return Decision("duplicate", f"rollout {event.instance_id} already exists ({facts.existing_rollout_state})",
                        **base)
    if facts.superseded_by is not None:
        return Decision("skip", f"held while frozen and superseded by version {facts.superseded_by}, released "
                                "at the unfreeze", **base)
    if not is_newer(event.model_version, facts.production_version):
        return Decision(
            "skip",
            f"version {event.model_version} is not newer than production version {facts.production_version}",
            **base,
        )
    newer_running = [v for v in facts.running_versions if version_key(v) > version_key(event.model_version)]
    if newer_running:
        return Decision("skip", f"a newer version ({max(newer_running, key=version_key)}) is already rolling out",
                        **base)
    if facts.frozen is not None:
        return Decision("held", f"{facts.frozen}: held, the newest held version is released on unfreeze", **base)
    return Decision("rollout", f"new version {event.model_version} of {event.model_name} "
                               f"(production: {facts.production_version or 'none'})", **base)


@dataclass(frozen=True)
class RetryFacts:
    attempts: tuple[dict, ...]  # earlier rollout records of this version, oldest first
    production_version: str | None = None
    running_versions: tuple[str, ...] = ()  # in-flight rollouts of the model
    in_workspace: bool = True  # the version is still registered in the staging workspace


RETRYABLE_STATES = ("rejected", "rolled_back", "failed", "abandoned", "skipped")


def decide_retry(model: str, version: str, managed: ManagedModels, facts: RetryFacts) -> tuple[Decision, int]:
    """An explicit, audited new run of a version whose rollout ended without success. Returns the
    decision and the HTTP status that answers it (202 start, 404 unknown, 409 not allowed now).
    Redelivered events never get here: at-least-once delivery stays a `duplicate`."""
    base = dict(model=model, version=version)
    if managed.get(model) is None:
        return Decision("ignore", f"model {model!r} is not managed (managed: {', '.join(managed.names) or 'none'})",
                        **base), 404
    if not facts.attempts:
        return Decision("ignore", f"no rollout of {model}:{version} to retry", **base), 404
    latest = facts.attempts[-1]
    state = latest.get("state")
    if state == "running":
        return Decision("duplicate", f"rollout {latest['id']} of {model}:{version} is running", **base), 409
    if state not in RETRYABLE_STATES:
        return Decision("skip", f"rollout {latest['id']} of {model}:{version} {state}: nothing to retry", **base), 409
    if not facts.in_workspace:
        return Decision("skip", f"{model}:{version} is no longer registered in the staging workspace", **base), 409
    if not is_newer(version, facts.production_version):
        return Decision("skip", f"version {version} is not newer than production version "
                                f"{facts.production_version}", **base), 409
    newer = [v for v in facts.running_versions if version_key(v) > version_key(version)]
    if newer:
        return Decision("skip", f"a newer version ({max(newer, key=version_key)}) is rolling out", **base), 409
    n = len(facts.attempts)
    run_key = f"{facts.attempts[0]['id']}-retry{n}"
    return Decision("rollout", f"retry {n} of {model}:{version} (previous rollout {state}: "
                               f"{str(latest.get('reason') or '')[:200]})", run_key=run_key,
                    event_id=str(latest.get("event_id") or ""), **base), 202
