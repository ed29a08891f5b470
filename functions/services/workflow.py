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
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Callable, Generator

from functions.domain import traffic as tmap
from functions.services import activities as act
from functions.shared.orchestration import ACTIVITY, APPROVAL_EVENT
from functions.domain.config import build_model_config, deployment_name




class _Run:
    """Small helpers bound to one orchestration context."""

    def __init__(self, context: Any, rollout: dict[str, Any]) -> None:
        self.ctx = context
        self.rollout = rollout
        self.seq = 0

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
        winner = yield run.ctx.task_any([approval, timeout])
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

    if not tmap.serving(previous):  # first version (no champion): straight to 100% after the gates
        full = tmap.canary_map(previous, new, 100)
        yield run.call(act.set_traffic, workspace="production", endpoint=production, traffic=full)
        yield run.audit("traffic", traffic=full, percent=100, first_version=True)
        removed = yield run.call(act.retire, endpoint=production, keep=new)
        yield run.call(act.set_production, deployment=new, traffic=full, contract=scoring["contract"])
        yield run.audit("succeeded", traffic=full, removed=removed["removed"])
        return {"state": "succeeded", "reason": "first version: 100% after gates", "traffic": full}

    current = previous
    try:
        for step in cfg.canary.steps:
            current = tmap.canary_map(previous, new, step)
            yield run.call(act.set_traffic, workspace="production", endpoint=production, traffic=current)
            yield run.audit("traffic", traffic=current, percent=step)
            health = yield from _bake(run, cfg, production, new, step)
            if not health["healthy"]:
                outcome = yield from _rollback(run, production, previous, new, f"health check failed at {step}%: "
                                               f"{health['reason']}", health["figures"])
                return outcome
    except Exception as exc:
        outcome = yield from _rollback(run, production, previous, new,
                                       f"error during canary: {type(exc).__name__}: {str(exc)[:300]}", {})
        return outcome

    removed = yield run.call(act.retire, endpoint=production, keep=new)
    yield run.call(act.set_production, deployment=new, traffic={new: 100}, contract=scoring["contract"])
    yield run.audit("succeeded", traffic={new: 100}, removed=removed["removed"])
    return {"state": "succeeded", "reason": f"canary {list(cfg.canary.steps)} healthy", "traffic": {new: 100}}


def _bake(run: _Run, cfg: Any, endpoint: str, new: str, step: int):
    """Bake one canary step and judge it. No data is not success (Flagger halts on an empty
    metric): a window with fewer than `min_requests` of the canary's requests is extended by
    another bake window, up to `max_bake_seconds` at this step, and is then a failure."""
    canary = cfg.canary
    window_start = run.now()
    baked, wait = 0.0, canary.bake_seconds
    while True:
        yield run.sleep(wait)
        baked += wait
        wait = min(canary.bake_seconds, canary.max_bake_seconds - baked)  # the next extension, if any
        window_end = run.now()
        if canary.health_delay_seconds > 0:
            yield run.sleep(canary.health_delay_seconds)
        health = yield run.call(act.check_health, endpoint=endpoint, deployment=new, start=window_start,
                                end=window_end, canary=cfg.to_dict()["canary"])
        figures = {**health["figures"], "baked_seconds": baked}
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


def _rollback(run: _Run, endpoint: str, previous: dict[str, int], new: str, reason: str, figures: dict):
    restored = tmap.restore(previous, new)
    yield run.call(act.set_traffic, workspace="production", endpoint=endpoint, traffic=restored)
    yield run.call(act.delete_deployment, workspace="production", endpoint=endpoint, deployment=new)
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
