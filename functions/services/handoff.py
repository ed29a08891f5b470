"""ModelRegistered hand-off: parse → gather facts → decide → record → claim → start.

The Event Grid trigger (Azure) and the local platform both call `accept_events`, then
`start_accepted` (one start path: an instance that exists already is not started twice). Claiming the rollout record is a create-only
write, so of N concurrent deliveries of one event exactly one proceeds; the rest are `duplicate`.
A claim whose start fails is released, so Event Grid's retry can try again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any

from functions.domain.config import ManagedModels
from functions.domain.decisions import Decision, Facts, decide
from functions.domain.events import InvalidEvent, ModelRegistered, iter_model_events
from functions.ports import Orchestrations
from functions.services.records import RolloutStore
from functions.shared.orchestration import ORCHESTRATOR
from functions.shared.logs import log_event

logger = logging.getLogger("modelops.handoff")


@dataclass(frozen=True)
class Accepted:
    decision: Decision
    event: ModelRegistered | None
    orchestration_input: dict[str, Any] | None = None  # set for rollout decisions


def facts_for(event: ModelRegistered, managed: ManagedModels, rollouts: RolloutStore,
              allowed_topics: tuple[str, ...], freezes: Any = None) -> Facts:
    production = rollouts.production(event.model_name) if managed.get(event.model_name) else None
    existing = rollouts.get(event.model_name, event.instance_id) if managed.get(event.model_name) else None
    running = tuple(r["version"] for r in rollouts.running(event.model_name)
                    if r["id"] != event.instance_id) if managed.get(event.model_name) else ()
    frozen = superseded = None
    if freezes is not None and managed.get(event.model_name):
        frozen = freezes.frozen(event.model_name)
        superseded = freezes.superseded_by(event.model_name, event.instance_id)
    return Facts(managed=managed, allowed_topics=allowed_topics,
                 production_version=production["version"] if production else None,
                 existing_rollout_state=existing["state"] if existing else None, running_versions=running,
                 frozen=frozen, superseded_by=superseded)


def accept_events(payload: Any, managed: ManagedModels, rollouts: RolloutStore,
                  allowed_topics: tuple[str, ...] = (), *, dry_run: bool = False,
                  freezes: Any = None) -> list[Accepted]:
    """Decide on every event of a delivery. Raises only for transient failures (storage down),
    so Event Grid retries; anything wrong with the payload itself becomes an `invalid` decision.
    `freezes` (services/freezes.py Freezes): a frozen model's events are `held` — kept with the
    event for the release at unfreeze, not claimed as rollouts."""
    try:
        parsed = list(iter_model_events(payload))
    except InvalidEvent as exc:
        parsed = [(payload, exc)]
    out: list[Accepted] = []
    for raw, event in parsed:
        if isinstance(event, InvalidEvent):
            decision = decide(event, Facts(managed=managed))
            out.append(Accepted(decision, None))
        else:
            decision = decide(event, facts_for(event, managed, rollouts, allowed_topics, freezes))
            if decision.action == "held" and not dry_run and not freezes.hold(raw, decision):
                decision = replace(decision, reason=f"{decision.reason} (already held: a redelivery)")
            if decision.action in ("rollout", "skip") and not dry_run:
                now = datetime.now(timezone.utc).isoformat()
                state = "running" if decision.action == "rollout" else "skipped"
                if not rollouts.claim(decision.to_dict(), event.to_dict(), now, state=state):
                    decision = replace(decision, action="duplicate",
                                       reason=f"rollout {decision.run_key} was claimed by a concurrent delivery")
            orchestration_input = None
            if decision.action == "rollout":
                config = managed.get(event.model_name)
                orchestration_input = {"event": event.to_dict(), "config": config.to_dict()}
            out.append(Accepted(decision, event, orchestration_input))
        if not dry_run and decision.action not in ("rollout", "skip"):
            # rollout/skip decisions are recorded (with their reason) by the claimed rollout record
            rollouts.record_decision(decision.to_dict())
        log_event(logger, "model_registered_decision", **decision.to_dict(), dry_run=dry_run)
    return out


async def start_accepted(accepted: list[Accepted], orchestrations: Orchestrations, rollouts: RolloutStore) -> None:
    """Start the orchestration of each rollout decision — the one start path of both platforms.
    An instance that already exists is a redelivery: nothing starts. A failed start releases the
    claim and raises, so Event Grid's retry can start it."""
    for item in accepted:
        if item.decision.action == "rollout":
            await _start(item.decision, item.orchestration_input or {}, orchestrations, rollouts)


def release_hand_off(managed: ManagedModels, rollouts: RolloutStore, allowed_topics: tuple[str, ...],
                     orchestrations: Orchestrations, freezes: Any) -> Any:
    """How a freeze release hands a held event on: the normal path (decide, claim, start), so of
    concurrent releases one claim wins and one orchestration starts."""
    async def hand_off(raw: Any) -> list[dict[str, str]]:
        accepted = accept_events([raw], managed, rollouts, allowed_topics, freezes=freezes)
        await start_accepted(accepted, orchestrations, rollouts)
        return [a.decision.to_dict() for a in accepted]

    return hand_off


async def start_retry(answer: "RetryAnswer", orchestrations: Orchestrations, rollouts: RolloutStore) -> None:
    """Start the run a 202 retry answer claimed (same path as an accepted event)."""
    if answer.status == 202:
        await _start(answer.decision, answer.orchestration_input or {}, orchestrations, rollouts)


async def _start(decision: Decision, input_: dict[str, Any], orchestrations: Orchestrations,
                 rollouts: RolloutStore) -> None:
    instance_id = decision.run_key
    try:
        if await orchestrations.exists(instance_id):
            log_event(logger, "rollout_already_started", instance_id=instance_id)
            return
        await orchestrations.start(ORCHESTRATOR, instance_id, input_)
    except Exception:
        rollouts.release(decision.model, instance_id)
        raise
    log_event(logger, "rollout_started", instance_id=instance_id, model=decision.model, version=decision.version)


@dataclass(frozen=True)
class RetryAnswer:
    status: int  # 202 started, 404 unknown, 409 not allowed now
    decision: Decision
    orchestration_input: dict[str, Any] | None = None


def accept_retry(model: str, version: str, managed: ManagedModels, rollouts: RolloutStore, *, by: str,
                 comment: str = "", in_workspace: bool = True) -> RetryAnswer:
    """Decide on `retry MODEL VERSION` and claim its run (create-only: of two concurrent retries one
    starts, the other is told it is running). The caller starts the orchestration on 202."""
    from functions.domain.decisions import RetryFacts, decide_retry

    attempts = tuple(r for r in rollouts.list(model) if r.get("version") == version) if managed.get(model) else ()
    production = rollouts.production(model) if managed.get(model) else None
    running = tuple(r["version"] for r in rollouts.running(model) if r.get("version") != version) \
        if managed.get(model) else ()
    decision, status = decide_retry(model, version, managed, RetryFacts(
        attempts=attempts, production_version=production["version"] if production else None,
        running_versions=running, in_workspace=in_workspace))
    log_event(logger, "retry_decision", **decision.to_dict(), by=by)
    if decision.action != "rollout":
        rollouts.record_decision(decision.to_dict(), {"kind": "retry", "by": by[:200], "status": status})
        return RetryAnswer(status, decision)
    previous = attempts[-1]
    event = dict(previous.get("event") or {})
    event.update(model_name=model, model_version=version, event_id=f"retry:{decision.run_key}",
                 topic=event.get("topic") or previous.get("topic", ""))
    event.setdefault("subject", f"models/{model}:{version}")
    now = datetime.now(timezone.utc).isoformat()
    if not rollouts.claim(decision.to_dict(), event, now):
        decision = replace(decision, action="duplicate", reason=f"retry {decision.run_key} was claimed concurrently")
        return RetryAnswer(409, decision)
    # who asked: nobody approves the run they started (App.authorisation_check reads started_by)
    rollouts.annotate(model, decision.run_key, started_by=by[:200])
    retry = {"of": previous["id"], "previous_state": previous.get("state"), "by": by[:200], "comment": comment[:2000]}
    return RetryAnswer(202, decision, {"event": event, "config": managed.get(model).to_dict(), "retry": retry})
