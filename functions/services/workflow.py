"""The rollout workflow: one definition, run by Durable Functions in Azure and by the local driver.

A Durable orchestrator is a generator that yields tasks and is replayed from its history, so this
code is deterministic: no I/O, no clocks but `context.current_utc_datetime`, no randomness. Every
side effect is an activity (`functions/services/activities.py`), named by the function itself
(`run.call(act.set_traffic, ...)`) and run through one dispatcher activity, `rollout_activity`,
whose input is {"op": <the function's name>, "args": {...}}.

    contract: read from the version's registered files (+ configuration); none usable (or none the
              model's serving can be gated on) → rejected
    staging: endpoint → deployment at 0% → poll → gates → (fail: delete, rejected)
             → staging traffic to the new deployment, older staging deployments removed
    promote: copy into the registry with lineage tags (idempotent)
    approval (optional): external event "approval" or timeout
    production: endpoint → its logs reach the traffic log (diagnostic setting) → deployment from the
             registry model at 0% → poll → smoke by header
             → first version: 100% | otherwise canary steps with bake + health; failure → rollback

Operator controls arrive as one external event, CONTROL_EVENT {"action", "by", "via", "comment",
"at", "full"?}: each canary bake races its timer against it (abort → rollback; pause → the bake
clock stops until resume; promote → the step's health check now, `full` → then 100%), the
approval wait races it too (abort → rejected), and the phase boundaries between staging, the
gates, promotion and production race it against a zero-length timer (abort → rejected). A
control that means nothing where it arrives is audited `control_ignored`. `undo_orchestrator`
(below) is `undo MODEL [--to VERSION]`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable, Generator

from functions.domain import traffic as tmap
from functions.services import activities as act
from functions.shared.orchestration import ACTIVITY, APPROVAL_EVENT, CONTROL_EVENT
from functions.domain.config import build_model_config, deployment_name


class _Run:
    """Small helpers bound to one orchestration context."""

    def __init__(self, context: Any, rollout: dict[str, Any]) -> None:
        self.ctx = context
        self.rollout = rollout
        self.seq = 0
        self._control: Any = None  # the one pending wait for CONTROL_EVENT (see `control`)
        self.full = False  # promote --full was asked: after the current step's health check, 100%

    def control(self):
        """The pending wait for an operator control. One wait at a time, kept across races until an
        event completes it: a fresh wait per race would leave the losers' waits open, and the
        Durable library hands an event to one waiter of that name (its open_tasks list)."""
        if self._control is None:
            self._control = self.ctx.wait_for_external_event(CONTROL_EVENT)
        return self._control

    def take_control(self) -> dict[str, Any]:
        """The completed control's data (and a fresh wait next time)."""
        data = self._control.result if self._control is not None else None
        self._control = None
        return data if isinstance(data, dict) else {"action": str(data or "")}

    def check_control(self):
        """A phase boundary outside any wait: a control raised already is taken now (Durable has it
        in the history, buffered until a wait for it exists; the local driver's event box the same),
        else a zero-length timer wins and the workflow goes on. Returns the control or None."""
        control = self.control()
        timer = self.sleep(0)
        winner = yield self.ctx.task_any([control, timer])
        if winner == control:
            if not getattr(timer, "is_completed", False):
                timer.cancel()
            return self.take_control()
        return None

    def control_audit(self, step: str, control: dict[str, Any], **details: Any):
        """An operator control the workflow acted on, in the trail with who, how, why and when."""
        who = {k: control.get(k) for k in ("by", "via", "comment", "at") if control.get(k) is not None}
        return self.audit(step, control={"action": control.get("action"), **who}, **details)

    def call(self, activity: Callable[..., Any], **args: Any):
        """Schedule one activity through the single Durable dispatcher activity. Called with the
        activity function itself: go-to-definition lands on it, and a misspelt name fails the
        moment that step runs (every step runs in the workflow tests), never in Azure."""
        return self.ctx.call_activity(ACTIVITY, act.payload(activity, rollout=self.rollout, **args))

    def audit(self, step: str, **details: Any):
        self.seq += 1
        self.ctx.set_custom_status({"step": step, "seq": self.seq})
        return self.call(act.audit, seq=self.seq, step=step, at=self.now(), details=details)

    def now(self) -> str:
        return self.ctx.current_utc_datetime.isoformat()

    def sleep(self, seconds: float):
        return self.ctx.create_timer(self.ctx.current_utc_datetime + timedelta(seconds=seconds))


def aborted_reason(control: dict[str, Any]) -> str:
    return f"aborted by {control.get('by') or 'an operator'}: {control.get('comment') or ''}".strip()


def _abort_check(run: _Run, *, delete: list[tuple[str, str, str]] | None = None):
    """At a phase boundary: an abort ends the rollout rejected (deleting `delete`: (workspace,
    endpoint, deployment)); any other control here is recorded as ignored (it means nothing here)."""
    control = yield from run.check_control()
    if control is None:
        return None
    if control.get("action") != "abort":
        yield run.control_audit("control_ignored", control, reason="only abort applies before the canary")
        return None
    for workspace, endpoint, deployment in delete or []:
        yield run.call(act.delete_deployment, workspace=workspace, endpoint=endpoint, deployment=deployment)
    reason = aborted_reason(control)
    yield run.control_audit("rejected", control, reason=reason)
    return {"state": "rejected", "reason": reason}


def rollout_orchestrator(context: Any) -> Generator[Any, Any, dict[str, Any]]:
    payload = context.get_input() or {}
    event = payload["event"]
    cfg = build_model_config(payload["config"]["name"], {k: v for k, v in payload["config"].items() if k != "name"})
    model, version = event["model_name"], event["model_version"]
    rollout = {"id": context.instance_id, "model": model, "version": version, "event_id": event["event_id"],
               "topic": event["topic"]}
    run = _Run(context, rollout)
    new = deployment_name(model, version)

    yield run.call(act.begin, event=event, config=cfg.to_dict(), at=run.now())
    retry = payload.get("retry")  # an explicit retry: who asked, and which run it follows
    yield run.audit("started", event_id=event["event_id"], deployment=new, **({"retry": retry} if retry else {}))
    try:
        read = yield run.call(act.read_contract, overrides=cfg.contract, serving=cfg.serving)
        if read["ok"]:
            contract = read["contract"]
            yield run.audit("contract", key=read["key"], source=contract["source"], task=contract["task"],
                            metric=contract["metric"], features=len(contract["features"]))
            outcome = yield from _stage_gate_promote_release(run, cfg, new, contract)
        else:
            reason = f"no usable contract: {read['reason']}"
            yield run.audit("rejected", reason=reason)
            outcome = {"state": "rejected", "reason": reason}
    except Exception as exc:  # an activity failed for good: record it, never leave "running"
        reason = f"{type(exc).__name__}: {str(exc)[:500]}"
        yield run.audit("failed", reason=reason)
        outcome = {"state": "failed", "reason": reason}
    if outcome["state"] in ("succeeded", "rejected", "rolled_back"):
        yield from _clean_staging(run, cfg, new)
    yield run.call(act.finish, outcome=outcome, at=run.now())
    return {**rollout, **outcome}


def _clean_staging(run: _Run, cfg: Any, new: str):
    """Cost: the staging deployment once its version is in production or rejected. A failure is
    audited, never the rollout's outcome (production is already decided)."""
    how = cfg.staging_cleanup
    if how == "keep" or (how == "scale_to_min" and cfg.instance_count <= act.STAGING_MIN_INSTANCES):
        return  # nothing to save: no activity, no history entry
    try:
        done = yield run.call(act.clean_staging, endpoint=cfg.staging_endpoint, deployment=new, how=how)
        yield run.audit("staging_cleanup", **done)
    except Exception as exc:  # noqa: BLE001 - audited; the staging deployment stays as it was
        yield run.audit("staging_cleanup_failed", how=how, deployment=new, reason=f"{type(exc).__name__}: {exc}"[:500])


def _stage_gate_promote_release(run: _Run, cfg: Any, new: str, contract: dict):
    staging, production = cfg.staging_endpoint, cfg.production_endpoint
    scoring = {"contract": contract, "skops_trusted_types": list(cfg.skops_trusted_types), "serving": cfg.serving}

    # 1. Staging deployment at 0%.
    yield from _ensure_endpoint(run, "staging", staging, cfg)
    created = yield run.call(act.create_deployment, workspace="staging", endpoint=staging, deployment=new,
                             source="workspace", instance_type=cfg.instance_type, instance_count=cfg.instance_count,
                             **scoring)
    yield run.audit("staging_deployment_created", endpoint=staging, deployment=new, model_uri=created["model_uri"])
    state = yield from _wait_deployment(run, "staging", staging, new, cfg)
    if state != "Succeeded":
        yield run.call(act.delete_deployment, workspace="staging", endpoint=staging, deployment=new)
        reason = f"staging deployment {new} did not provision: {state}"
        yield run.audit("rejected", reason=reason)
        return {"state": "rejected", "reason": reason}

    aborted = yield from _abort_check(run, delete=[("staging", staging, new)])
    if aborted:
        return aborted

    # 2. Gates against the new deployment alone (explicit deployment header).
    report = yield run.call(act.run_gates, workspace="staging", endpoint=staging, deployment=new,
                            gates=cfg.to_dict()["gates"], production_endpoint=production, at=run.now(),
                            evaluation_data=cfg.evaluation_data, contract=contract,
                            allow_contract_change=cfg.allow_contract_change, serving=cfg.serving)
    yield run.audit("gates", passed=report["passed"], report=report["report_key"], results=report["summary"])
    if not report["passed"]:
        yield run.call(act.delete_deployment, workspace="staging", endpoint=staging, deployment=new)
        reason = f"gate failed: {report['reason']}"
        yield run.audit("rejected", reason=reason, report=report["report_key"])
        return {"state": "rejected", "reason": reason, "gate_report": report["report_key"]}
    aborted = yield from _abort_check(run, delete=[("staging", staging, new)])
    if aborted:
        return {**aborted, "gate_report": report["report_key"]}
    moved = yield run.call(act.take_over_staging, endpoint=staging, deployment=new)
    yield run.audit("staging_traffic", endpoint=staging, traffic=moved["traffic"], removed=moved["removed"])

    # 3. Promote into the shared registry (idempotent).
    promoted = yield run.call(act.promote, gate_report=report["report_key"], gate_summary=report["summary"])
    yield run.audit("promoted", registry_uri=promoted["uri"], already=promoted["already"])

    # 4. Optional approval by a person.
    if cfg.approval_required:
        yield run.audit("awaiting_approval", timeout_seconds=cfg.approval_timeout_seconds)
        approval = run.ctx.wait_for_external_event(APPROVAL_EVENT)
        timeout = run.sleep(cfg.approval_timeout_seconds)
        control = run.control()
        winner = yield run.ctx.task_any([approval, control, timeout])
        while winner == control:  # only abort means something while awaiting approval
            order = run.take_control()
            if order.get("action") == "abort":
                if not getattr(timeout, "is_completed", False):
                    timeout.cancel()
                reason = aborted_reason(order)
                yield run.control_audit("rejected", order, reason=reason)
                return {"state": "rejected", "reason": reason, "gate_report": report["report_key"]}
            yield run.control_audit("control_ignored", order, reason="awaiting approval: approve, reject or abort")
            control = run.control()
            winner = yield run.ctx.task_any([approval, control, timeout])
        if winner == approval:
            if not getattr(timeout, "is_completed", False):
                timeout.cancel()
            answer = approval.result or {}
            answer = answer if isinstance(answer, dict) else {"approved": bool(answer)}
            if not answer.get("approved"):
                reason = f"promotion rejected by {answer.get('by', 'an approver')}: {answer.get('comment', '')}".strip()
                yield run.audit("rejected", reason=reason, approval=answer)
                return {"state": "rejected", "reason": reason, "gate_report": report["report_key"]}
            yield run.audit("approved", approval=answer)
        else:
            reason = f"no approval within {cfg.approval_timeout_seconds:.0f} s"
            yield run.audit("rejected", reason=reason)
            return {"state": "rejected", "reason": reason, "gate_report": report["report_key"]}
    else:  # no approval wait to race an abort with: a phase boundary instead
        aborted = yield from _abort_check(run)
        if aborted:
            return {**aborted, "gate_report": report["report_key"]}

    superseded = yield run.call(act.superseded)
    if superseded["by"]:
        reason = f"superseded by version {superseded['by']} before production"
        yield run.audit("skipped", reason=reason)
        return {"state": "skipped", "reason": reason, "gate_report": report["report_key"]}

    # 5. Production.
    outcome = yield from _release(run, cfg, new, promoted["uri"], scoring)
    outcome["gate_report"] = report["report_key"]
    return outcome


def _release(run: _Run, cfg: Any, new: str, registry_uri: str, scoring: dict):
    production = cfg.production_endpoint
    yield from _ensure_endpoint(run, "production", production, cfg)
    before = yield run.call(act.get_endpoint, workspace="production", endpoint=production)
    previous = {k: int(v) for k, v in before["traffic"].items() if k != new}
    created = yield run.call(act.create_deployment, workspace="production", endpoint=production, deployment=new,
                             source="registry", model_uri=registry_uri, instance_type=cfg.instance_type,
                             instance_count=cfg.instance_count, **scoring)
    yield run.audit("production_deployment_created", endpoint=production, deployment=new,
                    model_uri=created["model_uri"], traffic=before["traffic"], logs=created.get("logs", ""))
    state = yield from _wait_deployment(run, "production", production, new, cfg)
    smoke = {"passed": False, "reason": f"deployment did not provision: {state}"}
    if state == "Succeeded":
        smoke = yield run.call(act.smoke, workspace="production", endpoint=production, deployment=new,
                               contract=scoring["contract"], serving=scoring["serving"])
    if not smoke["passed"]:
        yield run.call(act.delete_deployment, workspace="production", endpoint=production, deployment=new)
        reason = f"production smoke failed: {smoke['reason']}"
        yield run.audit("rejected", reason=reason, traffic=previous)
        return {"state": "rejected", "reason": reason}
    yield run.audit("production_smoke", passed=True, figures=smoke.get("figures", {}))
    aborted = yield from _abort_check(run, delete=[("production", production, new)])
    if aborted:
        return {**aborted, "traffic": previous}

    if not tmap.serving(previous):  # first version (no champion): straight to 100% after the gates
        full = tmap.canary_map(previous, new, 100)
        yield run.call(act.set_traffic, workspace="production", endpoint=production, traffic=full)
        yield run.audit("traffic", traffic=full, percent=100, first_version=True)
        removed = yield run.call(act.retire, endpoint=production, keep=new)
        yield run.call(act.set_production, deployment=new, traffic=full, contract=scoring["contract"])
        yield run.audit("succeeded", traffic=full, removed=removed["removed"])
        return {"state": "succeeded", "reason": "first version: 100% after gates", "traffic": full}

    current = previous
    baked_steps: list[int] = []
    try:
        for step in cfg.canary.steps:
            current = tmap.canary_map(previous, new, step)
            yield run.call(act.set_traffic, workspace="production", endpoint=production, traffic=current)
            yield run.audit("traffic", traffic=current, percent=step)
            health = yield from _bake(run, cfg, production, new, step)
            if health.get("aborted"):
                outcome = yield from _rollback(run, production, previous, new, health["reason"], health["figures"],
                                               control=health["aborted"])
                return outcome
            if not health["healthy"]:
                outcome = yield from _rollback(run, production, previous, new, f"health check failed at {step}%: "
                                               f"{health['reason']}", health["figures"])
                return outcome
            baked_steps.append(step)
            if run.full and step < 100:  # promote --full: this step was healthy; skip the rest
                full = tmap.canary_map(previous, new, 100)
                yield run.call(act.set_traffic, workspace="production", endpoint=production, traffic=full)
                yield run.audit("traffic", traffic=full, percent=100, promoted_full=True)
                break
    except Exception as exc:
        outcome = yield from _rollback(run, production, previous, new,
                                       f"error during canary: {type(exc).__name__}: {str(exc)[:300]}", {})
        return outcome

    removed = yield run.call(act.retire, endpoint=production, keep=new)
    yield run.call(act.set_production, deployment=new, traffic={new: 100}, contract=scoring["contract"])
    yield run.audit("succeeded", traffic={new: 100}, removed=removed["removed"])
    if list(baked_steps) != list(cfg.canary.steps):
        reason = f"canary {baked_steps} healthy, then promoted to 100% (promote --full)"
    else:
        reason = f"canary {list(cfg.canary.steps)} healthy"
    return {"state": "succeeded", "reason": reason, "traffic": {new: 100}}


def _bake(run: _Run, cfg: Any, endpoint: str, new: str, step: int):
    """Bake one canary step and judge it. No data is not success (Flagger halts on an empty
    metric): a window with fewer than `min_requests` of the canary's requests is extended by
    another bake window, up to `max_bake_seconds` at this step, and is then a failure."""
    canary = cfg.canary
    window_start = run.now()
    baked, wait, paused = 0.0, canary.bake_seconds, 0.0
    while True:
        slept = yield from _bake_wait(run, wait, step)
        if slept.get("aborted"):
            figures = {"baked_seconds": baked + slept["baked"], "paused_seconds": paused + slept["paused"]}
            return {"healthy": False, "aborted": slept["aborted"], "reason": aborted_reason(slept["aborted"]),
                    "figures": figures}
        baked += slept["baked"]
        paused += slept["paused"]
        # the next extension, if any; a bake cut short by promote is not extended past one window
        wait = min(canary.bake_seconds, canary.max_bake_seconds - baked)
        window_end = run.now()
        if canary.health_delay_seconds > 0:
            yield run.sleep(canary.health_delay_seconds)
        health = yield run.call(act.check_health, endpoint=endpoint, deployment=new, start=window_start,
                                end=window_end, canary=cfg.to_dict()["canary"])
        figures = {**health["figures"], "baked_seconds": baked, **({"paused_seconds": paused} if paused else {})}
        verdict = health.get("verdict", "healthy" if health["healthy"] else "unhealthy")
        if verdict == "insufficient" and wait > 0:
            yield run.audit("health", percent=step, healthy=False, verdict=verdict, figures=figures,
                            reason=health["reason"], extended=True)
            continue
        if verdict == "insufficient":
            reason = (f"not enough traffic to judge the canary: {health['reason']} after {baked:.0f} s "
                      f"(max_bake_seconds {canary.max_bake_seconds:.0f})")
            health = {**health, "healthy": False, "reason": reason}
        yield run.audit("health", percent=step, healthy=health["healthy"], verdict=verdict, figures=figures,
                        reason=health["reason"])
        return {**health, "figures": figures}


def _seconds(start: Any, end: Any) -> float:
    return max(0.0, (end - start).total_seconds())


def _bake_wait(run: _Run, seconds: float, step: int):
    """Wait `seconds` of bake, racing the bake timer against an operator control:

        pause   the bake clock stops (the time baked so far is kept); wait for resume, promote or abort
        resume  (paused) bake the remaining time
        promote end the bake now: the step's health check follows (full: then 100%)
        abort   stop here: the caller rolls back

    Returns {"baked": s, "paused": s, "aborted": control | None}. Times are orchestration time."""
    baked, paused, remaining = 0.0, 0.0, seconds
    while remaining > 0:
        started = run.ctx.current_utc_datetime
        timer = run.sleep(remaining)
        control = run.control()
        winner = yield run.ctx.task_any([control, timer])
        if winner != control:
            baked += remaining
            break
        if not getattr(timer, "is_completed", False):
            timer.cancel()
        order = run.take_control()
        ran = min(remaining, _seconds(started, run.ctx.current_utc_datetime))
        baked, remaining = baked + ran, remaining - ran
        action = order.get("action")
        if action == "abort":
            return {"baked": baked, "paused": paused, "aborted": order}
        if action == "promote":
            run.full = run.full or bool(order.get("full"))
            yield run.control_audit("promoted_full" if run.full else "promoted", order, percent=step,
                                    baked_seconds=baked)
            break
        if action != "pause":
            yield run.control_audit("control_ignored", order, reason=f"{action!r} while baking (not paused)")
            continue
        yield run.control_audit("paused", order, percent=step, baked_seconds=baked, remaining_seconds=remaining)
        since = run.ctx.current_utc_datetime
        while True:  # paused: no timer; only an operator moves it on
            control = run.control()
            yield control
            order = run.take_control()
            action = order.get("action")
            if action in ("resume", "promote", "abort"):
                break
            yield run.control_audit("control_ignored", order, reason=f"{action!r} while paused")
        paused += _seconds(since, run.ctx.current_utc_datetime)
        if action == "abort":
            return {"baked": baked, "paused": paused, "aborted": order}
        if action == "promote":
            run.full = run.full or bool(order.get("full"))
            yield run.control_audit("promoted_full" if run.full else "promoted", order, percent=step,
                                    baked_seconds=baked, paused_seconds=paused)
            break
        yield run.control_audit("resumed", order, percent=step, baked_seconds=baked, remaining_seconds=remaining,
                                paused_seconds=paused)
    return {"baked": baked, "paused": paused, "aborted": None}


def _rollback(run: _Run, endpoint: str, previous: dict[str, int], new: str, reason: str, figures: dict,
              control: dict | None = None):
    restored = tmap.restore(previous, new)
    yield run.call(act.set_traffic, workspace="production", endpoint=endpoint, traffic=restored)
    yield run.call(act.delete_deployment, workspace="production", endpoint=endpoint, deployment=new)
    if control is not None:  # aborted by an operator: who, how and why are in the trail
        yield run.control_audit("rolled_back", control, reason=reason, traffic=tmap.without(restored, new),
                                figures=figures)
    else:
        yield run.audit("rolled_back", reason=reason, traffic=tmap.without(restored, new), figures=figures)
    return {"state": "rolled_back", "reason": reason, "figures": figures, "traffic": tmap.without(restored, new)}


def _ensure_endpoint(run: _Run, workspace: str, endpoint: str, cfg: Any):
    state = yield run.call(act.ensure_endpoint, workspace=workspace, endpoint=endpoint)
    waited = 0.0
    while state["provisioning_state"] != "Succeeded":
        if state["provisioning_state"] in ("Failed", "Canceled") or waited >= cfg.provisioning_timeout_seconds:
            raise RuntimeError(f"{workspace} endpoint {endpoint} is {state['provisioning_state']}")
        yield run.sleep(cfg.poll_seconds)
        waited += cfg.poll_seconds
        state = yield run.call(act.get_endpoint, workspace=workspace, endpoint=endpoint)


def _wait_deployment(run: _Run, workspace: str, endpoint: str, deployment: str, cfg: Any):
    """Poll (durable timers between polls) until Succeeded/Failed or the provisioning timeout."""
    waited = 0.0
    while True:
        state = yield run.call(act.get_deployment, workspace=workspace, endpoint=endpoint, deployment=deployment)
        provisioning = state["provisioning_state"]
        if provisioning == "Succeeded" or provisioning in ("Failed", "Canceled", "Missing"):
            return provisioning if provisioning == "Succeeded" else f"{provisioning}: {state.get('error', '')}"
        if waited >= cfg.provisioning_timeout_seconds:
            return f"timed out after {waited:.0f} s ({provisioning})"
        yield run.sleep(cfg.poll_seconds)
        waited += cfg.poll_seconds


def undo_orchestrator(context: Any) -> Generator[Any, Any, dict[str, Any]]:
    """`undo MODEL [--to VERSION]` (functions/services/operator.py starts it): production back to a
    previous version. Its deployment is re-created from the registry when it is gone from the
    production endpoint; it is smoke-tested before any traffic moves (a failed smoke leaves
    production as it was); then 100% to it, the others retired, the production pointer set. Its
    record is rollouts/<model>/<undo id>.json (kind "undo") with its own audit trail."""
    payload = context.get_input() or {}
    undo = payload["undo"]
    cfg = build_model_config(payload["config"]["name"], {k: v for k, v in payload["config"].items() if k != "name"})
    model, version = undo["model"], undo["version"]
    rollout = {"id": context.instance_id, "model": model, "version": version, "event_id": f"undo:{context.instance_id}",
               "topic": ""}
    run = _Run(context, rollout)
    endpoint, target = cfg.production_endpoint, deployment_name(model, version)
    yield run.call(act.begin, event={"kind": "undo", **{k: undo.get(k) for k in ("by", "via", "comment", "at")}},
                   config=cfg.to_dict(), at=run.now())
    previous = (undo.get("from") or {}).get("version")
    yield run.audit("undo_started", to=version, why=undo.get("why", ""), previous=previous,
                    control={"action": "undo", **{k: undo.get(k) for k in ("by", "via", "comment", "at")}})
    try:
        outcome = yield from _undo(run, cfg, endpoint, target)
    except Exception as exc:  # an activity failed for good: production is what the trail says last
        reason = f"{type(exc).__name__}: {str(exc)[:500]}"
        yield run.audit("failed", reason=reason)
        outcome = {"state": "failed", "reason": reason}
    yield run.call(act.finish, outcome=outcome, at=run.now())
    return {**rollout, "kind": "undo", **outcome}


def _undo(run: _Run, cfg: Any, endpoint: str, target: str):
    before = yield run.call(act.get_endpoint, workspace="production", endpoint=endpoint)
    stored = yield run.call(act.version_contract)
    contract = stored["contract"]
    created = False
    if target not in before["deployments"] and target not in before["traffic"]:
        made = yield run.call(act.create_deployment, workspace="production", endpoint=endpoint, deployment=target,
                              source="registry", instance_type=cfg.instance_type, instance_count=cfg.instance_count,
                              contract=contract, skops_trusted_types=list(cfg.skops_trusted_types),
                              serving=cfg.serving)
        created = True
        yield run.audit("undo_deployment_created", endpoint=endpoint, deployment=target, model_uri=made["model_uri"],
                        source="registry")
        state = yield from _wait_deployment(run, "production", endpoint, target, cfg)
        if state != "Succeeded":
            yield run.call(act.delete_deployment, workspace="production", endpoint=endpoint, deployment=target)
            reason = f"undo: deployment {target} did not provision: {state}; production unchanged"
            yield run.audit("rejected", reason=reason, traffic=before["traffic"])
            return {"state": "rejected", "reason": reason, "traffic": before["traffic"]}
    smoke = yield run.call(act.smoke, workspace="production", endpoint=endpoint, deployment=target,
                           contract=contract, serving=cfg.serving)
    if not smoke["passed"]:
        if created:
            yield run.call(act.delete_deployment, workspace="production", endpoint=endpoint, deployment=target)
        reason = f"undo: smoke test of {target} failed: {smoke['reason']}; production unchanged"
        yield run.audit("rejected", reason=reason, traffic=before["traffic"])
        return {"state": "rejected", "reason": reason, "traffic": before["traffic"]}
    yield run.audit("undo_smoke", passed=True, figures=smoke.get("figures", {}))
    full = tmap.canary_map({k: int(v) for k, v in before["traffic"].items() if k != target}, target, 100)
    yield run.call(act.set_traffic, workspace="production", endpoint=endpoint, traffic=full)
    yield run.audit("traffic", traffic=full, percent=100, undo=True)
    removed = yield run.call(act.retire, endpoint=endpoint, keep=target)
    yield run.call(act.set_production, deployment=target, traffic={target: 100}, contract=contract)
    yield run.audit("succeeded", traffic={target: 100}, removed=removed["removed"])
    return {"state": "succeeded", "reason": f"production back to {run.rollout['model']}:{run.rollout['version']}",
            "traffic": {target: 100}}
