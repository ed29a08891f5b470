"""End every rollout whose runner stopped: what the owner of a local home does when it takes the
home over (the previous owner died) and when it stops (Ctrl-C, SIGTERM, `--no-wait`).

For each rollout in the running index: read its record and trail and the recorded state of its
endpoints, let `core.reconcile.plan_ending` decide, apply the plan to the stopped endpoints'
recorded state (so the next revival serves the restored traffic map and never the abandoned
canary), then record the ending: an audit step and the final state. Records are written last: if
writing fails (a full disk), the rollout stays in the running index and the next owner tries
again — it is never left half-ended with its canary serving.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable, Protocol

from functions.domain.config import ManagedModels
from functions.domain.reconcile import Ending, plan_ending
from functions.services.records import RolloutStore
from functions.shared.logs import log_event
from functions.ports import EndpointState

logger = logging.getLogger("modelops.recovery")


class StoppedEndpoints(Protocol):
    """The recorded state of a workspace's endpoints while nothing serves them."""

    def recorded(self, name: str) -> EndpointState | None: ...

    def amend_stopped(self, name: str, traffic: dict[str, int], drop: tuple[str, ...] = ()) -> object: ...


def end_interrupted(rollouts: RolloutStore, managed: ManagedModels, endpoints: dict[str, StoppedEndpoints],
                    why: str, *, actor: str = "modelops (recovery)",
                    clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                    keep: frozenset[str] = frozenset(), not_resumed: dict[str, str] | None = None) -> list[Ending]:
    """End every running rollout but those in `keep` (a host resumes them: services/resumption.py);
    `not_resumed` says, per rollout id, why one was not resumed (it is said in its reason).
    Returns what was done. Raises on a store failure (the rest is retried by the next owner)."""
    endings = []
    for model, rollout_id in rollouts.running_ids():
        if rollout_id in keep:
            continue
        record = rollouts.get(model, rollout_id)
        if record is None or record.get("state") != "running":
            rollouts.drop_running(model, rollout_id)  # finished, but its index entry outlived it
            continue
        config = record.get("config") or {}
        managed_cfg = managed.get(model)
        staging_name = config.get("staging_endpoint") or (managed_cfg.staging_endpoint if managed_cfg else "")
        production_name = config.get("production_endpoint") or (managed_cfg.production_endpoint if managed_cfg else "")
        trail = rollouts.trail(model, rollout_id)
        ending = plan_ending(record, trail,
                             endpoints["staging"].recorded(staging_name) if staging_name else None,
                             endpoints["production"].recorded(production_name) if production_name else None,
                             f"{why} and it was not resumed ({(not_resumed or {})[rollout_id]})"
                             if rollout_id in (not_resumed or {}) else why)
        for workspace, plan in ending.plans:
            endpoints[workspace].amend_stopped(plan.endpoint, plan.traffic, plan.drop)
        now = clock().isoformat()
        rollout = {"id": record["id"], "model": model, "version": record["version"],
                   "event_id": record.get("event_id", ""), "topic": record.get("topic", "")}
        rollouts.audit(rollout, rollouts.next_seq(model, rollout_id), ending.state, now,
                       {"reason": ending.reason, "phase": ending.phase, **ending.details}, actor=actor)
        if ending.production_pointer is not None:
            rollouts.set_production(rollout, ending.production_pointer["deployment"],
                                    ending.production_pointer["traffic"], now)
        rollouts.finish(rollout, {"state": ending.state, "reason": ending.reason, **(
            {"traffic": ending.details["traffic"]} if "traffic" in ending.details else {})}, now)
        log_event(logger, "rollout_ended_by_recovery", logging.WARNING, rollout_id=rollout_id, model=model,
                  version=record["version"], state=ending.state, reason=ending.reason)
        endings.append(ending)
    return endings
