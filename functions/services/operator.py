"""Operator actions on rollouts, the same on both platforms: look the rollout up, check the
transition (domain/controls.py: 409 naming the state), authorise the caller (403 with the reason),
then raise the Durable external event — or start the retry's or the undo's orchestration — and
audit every answer, accepted or not (services/operator_audit.py).

    approve | reject      APPROVAL_EVENT {"approved", "by", "comment"}  (the workflow's approval wait)
    abort | pause |
    resume | promote      CONTROL_EVENT  {"action", "by", "via", "comment", "at", "full"?}
    retry                 a new run of the rollout's version (handoff.accept_retry / start_retry)
    undo                  UNDO_ORCHESTRATOR: production back to the previous champion or a named version
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from functions.domain import controls
from functions.domain.config import ManagedModels
from functions.ports import Orchestrations, Store
from functions.services import operator_audit
from functions.services.records import RolloutStore
from functions.shared.orchestration import APPROVAL_EVENT, CONTROL_EVENT, UNDO_ORCHESTRATOR

ACTIONS = controls.CONTROLS + ("retry",)


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


@dataclass
class Operator:
    """What operator actions need, bound to one request (App.operator builds it)."""

    rollouts: RolloutStore
    store: Store
    orchestrations: Orchestrations
    # (action, model, rollout record or None) -> (caller, refusal reason or None): App.authorise
    authorise: Callable[[str, str | None, dict[str, Any] | None], tuple[Any, str | None]]
    managed: ManagedModels | None = None
    in_workspace: Callable[[str, str], bool] = lambda model, version: True
    in_registry: Callable[[str, str], bool] = lambda model, version: True
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))

    def _answer(self, action: str, caller: Any, model: str | None, rollout_id: str | None, status: int,
                body: dict[str, Any], comment: str) -> Answer:
        outcome = {202: "accepted", 200: "accepted", 403: "refused", 404: "not_found", 409: "invalid"}.get(
            status, "failed" if status >= 500 else "invalid")
        operator_audit.record_action(self.store, action=action, caller=caller, model=model, rollout_id=rollout_id,
                                     outcome=outcome, status=status, reason=body.get("error", ""), comment=comment,
                                     at=self.clock())
        return Answer(status, body)

    async def act(self, action: str, rollout_id: str, *, comment: str = "", full: bool = False) -> Answer:
        """One control (approve, reject, abort, pause, resume, promote, retry) on a rollout by id."""
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r} (one of {', '.join(ACTIONS)})")
        record = self.rollouts.find(rollout_id)
        model = record["model"] if record else None
        caller, refused = self.authorise(action, model, record)
        if record is None:
            return self._answer(action, caller, None, rollout_id, 404, {"error": f"no rollout {rollout_id!r}"},
                                comment)
        current = controls.phase(record, self.rollouts.trail(record["model"], rollout_id))
        invalid = controls.refusal(action, rollout_id, current)
        base = {"rollout_id": rollout_id, "action": action, "model": model, "version": record.get("version"),
                "phase": current}
        if invalid:  # 409 before 403: the state is a fact, whoever asks
            return self._answer(action, caller, model, rollout_id, 409, {**base, "error": invalid}, comment)
        if refused:
            return self._answer(action, caller, model, rollout_id, 403, {**base, "error": refused}, comment)
        if action == "retry":
            return await self._retry(record, caller, comment, base)
        identity = getattr(caller, "identity", str(caller))
        if action in ("approve", "reject"):
            event, data = APPROVAL_EVENT, {"approved": action == "approve", "by": identity, "comment": comment}
        else:
            data = {"action": action, "by": identity, "via": getattr(caller, "via", ""), "comment": comment,
                    "at": self.clock().isoformat(), **({"full": bool(full)} if action == "promote" else {})}
            event = CONTROL_EVENT
        if not await self.orchestrations.raise_event(rollout_id, event, data):
            error = f"rollout {rollout_id} is no longer running (its orchestration has ended): nothing to {action}"
            return self._answer(action, caller, model, rollout_id, 409, {**base, "error": error}, comment)
        return self._answer(action, caller, model, rollout_id, 202, {**base, "sent": data}, comment)

    async def _retry(self, record: dict[str, Any], caller: Any, comment: str, base: dict[str, Any]) -> Answer:
        from functions.services.handoff import accept_retry, start_retry

        model, version = record["model"], record["version"]
        by = getattr(caller, "identity", str(caller))
        answer = accept_retry(model, version, self.managed, self.rollouts, by=by, comment=comment,
                              in_workspace=self.in_workspace(model, version))
        if answer.status != 202:
            return self._answer("retry", caller, model, record["id"], answer.status,
                                {**base, "error": answer.decision.reason}, comment)
        await start_retry(answer, self.orchestrations, self.rollouts)
        return self._answer("retry", caller, model, record["id"], 202,
                            {**base, "retry_id": answer.decision.run_key, "reason": answer.decision.reason}, comment)

    async def undo(self, model: str, *, to: str | None = None, comment: str = "") -> Answer:
        """Start production's way back to the previous champion (or version `to`)."""
        caller, refused = self.authorise("undo", model, None)
        cfg = self.managed.get(model) if self.managed is not None else None
        if cfg is None:
            return self._answer("undo", caller, model, None, 404, {"error": f"model {model!r} is not managed"},
                                comment)
        current = self.rollouts.production(model)
        target, why = undo_target(self.rollouts, model, current, to)
        if target is None:
            return self._answer("undo", caller, model, None, 409, {"model": model, "error": why}, comment)
        if not self.in_registry(model, target):
            error = f"{model}:{target} is not in the registry: nothing to undo to"
            return self._answer("undo", caller, model, None, 409, {"model": model, "error": error}, comment)
        running = [r for r in self.rollouts.running(model)]
        if running:
            error = f"{model} has a rollout running ({running[0]['id']}): abort it or wait before an undo"
            return self._answer("undo", caller, model, None, 409, {"model": model, "error": error}, comment)
        if refused:
            return self._answer("undo", caller, model, None, 403, {"model": model, "error": refused}, comment)
        now = self.clock()
        undo_id = f"undo-{model}-{now:%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"
        by = getattr(caller, "identity", str(caller))
        reason = f"undo to {model}:{target} ({why}) asked by {by}"
        self.rollouts.claim({"run_key": undo_id, "model": model, "version": target, "reason": reason},
                            {"event_id": f"undo:{undo_id}"}, now.isoformat(),
                            extra={"kind": "undo", "from_version": current["version"] if current else None})
        input_ = {"undo": {"id": undo_id, "model": model, "version": target, "by": by,
                           "via": getattr(caller, "via", ""), "comment": comment, "why": why,
                           "from": current, "at": now.isoformat()},
                  "config": cfg.to_dict()}
        try:
            await self.orchestrations.start(UNDO_ORCHESTRATOR, undo_id, input_)
        except Exception:
            self.rollouts.release(model, undo_id)
            raise
        return self._answer("undo", caller, model, undo_id, 202,
                            {"rollout_id": undo_id, "action": "undo", "model": model, "version": target,
                             "from_version": current["version"] if current else None, "reason": reason}, comment)


def undo_target(rollouts: RolloutStore, model: str, current: dict[str, Any] | None,
                to: str | None) -> tuple[str | None, str]:
    """(the version production goes back to, why) — or (None, the 409's message)."""
    now = current["version"] if current else None
    if to:
        if to == now:
            return None, f"{model}:{to} is what production serves already: nothing to undo"
        return to, "the version asked for"
    for entry in reversed(rollouts.production_history(model)):
        if entry.get("version") != now:
            return str(entry["version"]), "the previous champion (production history)"
    # a home from before the history: the newest version that succeeded a rollout, other than now's
    done = [r for r in rollouts.list(model) if r.get("state") == "succeeded" and r.get("version") != now]
    done.sort(key=lambda r: (r.get("finished") or "", r["id"]))
    if done:
        return str(done[-1]["version"]), "the previous champion (the newest other succeeded rollout)"
    return None, f"{model} has no previous champion to go back to (production serves {now or 'nothing'})"
