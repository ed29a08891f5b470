"""Rollouts survive the host: what a resuming owner of a local home (`modelops up`) does with the
rollouts a previous owner left running, and with its own when it stops gracefully.

Taking the home over (before the endpoints are revived), for each rollout in the running index:
replay its orchestration history (the driver: an unreadable history or a divergence is refused),
then `domain.resumable.why_not_resumable` over its records and its endpoints' recorded state. A
rollout that passes both is kept running and, once the endpoints are back, continued from its
last completed step; every other one is ended exactly as recovery ends it (services/recovery.py),
its reason saying why it was not resumed.

Stopping gracefully (SIGINT/SIGTERM), a resuming owner ends nothing: its rollouts stay in the
running index with their histories, each record notes `suspended` (who, when, why), and the next
owner decides — a host resumes them, any other `modelops` process ends them as today.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from functions.domain.config import ManagedModels
from functions.domain.resumable import why_not_resumable
from functions.services.recovery import StoppedEndpoints
from functions.services.records import RolloutStore
from functions.shared.logs import log_event

logger = logging.getLogger("modelops.resumption")


class Replayer(Protocol):
    """The orchestration driver (functions/adapters/local/orchestrator.py LocalOrchestrator)."""

    def replay(self, instance_id: str) -> Any:
        """The replayed orchestration (with `.completed` tasks), or an exception saying why not."""

    def resume(self, replayed: Any) -> None: ...


@dataclass
class Resumable:
    model: str
    rollout_id: str
    replayed: Any


def choose(rollouts: RolloutStore, managed: ManagedModels, endpoints: dict[str, StoppedEndpoints],
           driver: Replayer) -> tuple[list[Resumable], dict[str, str]]:
    """Which running rollouts may be continued, and why each other one may not."""
    resumable, refused = [], {}
    for model, rollout_id in rollouts.running_ids():
        record = rollouts.get(model, rollout_id)
        if record is None or record.get("state") != "running":
            continue  # recovery drops its stale index entry
        try:
            replayed = driver.replay(rollout_id)
        except Exception as exc:  # noqa: BLE001 - any failure to rebuild it is a reason not to continue it
            refused[rollout_id] = str(exc)[:500] or type(exc).__name__
            continue
        cfg = managed.get(model)
        config = record.get("config") or {}
        staging = config.get("staging_endpoint") or (cfg.staging_endpoint if cfg else "")
        production = config.get("production_endpoint") or (cfg.production_endpoint if cfg else "")
        reason = why_not_resumable(record, rollouts.trail(model, rollout_id),
                                   endpoints["staging"].recorded(staging) if staging else None,
                                   endpoints["production"].recorded(production) if production else None,
                                   managed=cfg is not None)
        if reason is not None:
            replayed.generator.close()
            refused[rollout_id] = reason
            continue
        resumable.append(Resumable(model, rollout_id, replayed))
    return resumable, refused


def resume(rollouts: RolloutStore, driver: Replayer, chosen: list[Resumable], by: str, after: str,
           clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> list[str]:
    """Continue each chosen rollout (the endpoints are back); the record notes `resumed`."""
    done = []
    for item in chosen:
        rollouts.note(item.model, item.rollout_id, "resumed",
                      {"at": clock().isoformat(), "by": by, "after": after, "from_task": item.replayed.completed})
        driver.resume(item.replayed)
        log_event(logger, "rollout_resumed", rollout_id=item.rollout_id, model=item.model,
                  from_task=item.replayed.completed, after=after[:300])
        done.append(item.rollout_id)
    return done


def suspend(rollouts: RolloutStore, by: str, why: str, has_history: Callable[[str], bool],
            clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> tuple[list[str], set[str]]:
    """A resuming owner stops: each running rollout with a history is left for the next host
    (noted `suspended`); returns those and the ids without a history (to be ended now)."""
    suspended, orphans = [], set()
    for model, rollout_id in rollouts.running_ids():
        record = rollouts.get(model, rollout_id)
        if record is None or record.get("state") != "running":
            continue
        if not has_history(rollout_id):
            orphans.add(rollout_id)
            continue
        rollouts.note(model, rollout_id, "suspended", {"at": clock().isoformat(), "by": by, "why": why,
                                                       "until": "the next `modelops up` on this home resumes it"})
        log_event(logger, "rollout_suspended", logging.WARNING, rollout_id=rollout_id, model=model, why=why[:300])
        suspended.append(rollout_id)
    return suspended, orphans


def not_resumed_by_this_owner(rollouts: RolloutStore) -> dict[str, str]:
    """For an owner that does not resume (any `modelops` command but `up`): why each rollout a host
    suspended is ended anyway."""
    out = {}
    for model, rollout_id in rollouts.running_ids():
        record = rollouts.get(model, rollout_id) or {}
        if record.get("suspended"):
            out[rollout_id] = ("a host suspended it for the next host to resume; this modelops process does not "
                               "resume rollouts, only `modelops up` does")
    return out
