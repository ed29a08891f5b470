"""Ending a rollout whose runner stopped: a pure decision from its records and the endpoints' state.

On the embedded platform a rollout runs inside one `modelops` process. When that process dies
(kill -9, a full disk) or is stopped mid-rollout (Ctrl-C, SIGTERM, `register --no-wait`), the next
owner of the home ends it consistently, as a rollout controller aborts a canary it cannot judge
(Argo Rollouts' abort, Flagger's rollback): keep the champion serving and say why.

    plan_ending(rollout, trail, staging, production, reason) -> Ending

- Production: the traffic map recorded before the new deployment was created (the audit step
  `production_deployment_created`) is restored and the new deployment removed. If that map's
  serving deployments no longer exist (the final step had already retired them) and the new one
  serves everything, the rollout had in fact finished: it is completed as `succeeded`.
- Staging: an unvalidated new deployment (gates not passed or not yet taken over) is removed; one
  that already took staging over stays (it passed the gates).
- The rollout is `abandoned` with the phase it stopped in and what was restored.

No I/O: the caller reads the records and endpoint states, and applies the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from functions.domain import traffic as tmap
from functions.domain.config import deployment_name
from functions.ports import EndpointState


@dataclass(frozen=True)
class EndpointPlan:
    """The state an endpoint is left in: `traffic` names every remaining deployment."""

    endpoint: str
    traffic: dict[str, int]
    drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Ending:
    rollout_id: str
    model: str
    version: str
    state: str  # abandoned | succeeded
    reason: str
    phase: str
    staging: EndpointPlan | None = None
    production: EndpointPlan | None = None
    production_pointer: dict[str, Any] | None = None  # set when the rollout is completed as succeeded
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def plans(self) -> list[tuple[str, EndpointPlan]]:
        return [(ws, plan) for ws, plan in (("staging", self.staging), ("production", self.production)) if plan]


def phase_of(trail: list[dict[str, Any]]) -> str:
    """Where a rollout was, from its last audit step."""
    if not trail:
        return "before it started"
    last = trail[-1]
    step = last["step"]
    percent = last.get("details", {}).get("percent")
    phases = {
        "started": "staging", "staging_deployment_created": "staging", "gates": "the gates",
        "staging_traffic": "promotion", "promoted": "promotion", "awaiting_approval": "approval",
        "approved": "the production deployment", "production_deployment_created": "the production deployment",
        "production_smoke": "the production smoke test",
    }
    if step in ("traffic", "health") and percent is not None:
        return f"the canary at {percent}%"
    return phases.get(step, step)


def plan_ending(rollout: dict[str, Any], trail: list[dict[str, Any]], staging: EndpointState | None,
                production: EndpointState | None, why: str) -> Ending:
    """`why` says what happened to the runner, e.g. "process 4242 (modelops register) died"."""
    model, version = rollout["model"], rollout["version"]
    new = deployment_name(model, version)
    if rollout.get("kind") == "undo":
        return _undo_ending(rollout, trail, production, new, why)
    steps = {r["step"] for r in trail}
    phase = phase_of(trail)
    staging_plan = _staging_plan(staging, new, "staging_traffic" in steps)
    before = next((r["details"].get("traffic") for r in trail if r["step"] == "production_deployment_created"), None)
    base = dict(rollout_id=rollout["id"], model=model, version=version, phase=phase, staging=staging_plan)

    if production is None or new not in _names(production):
        return Ending(**base, state="abandoned",
                      reason=f"{why} during {phase}; production untouched",
                      details={"traffic": dict(production.traffic) if production else {}})

    live = _names(production)
    previous = {k: int(v) for k, v in (before if before is not None else production.traffic).items() if k != new}
    serving_before = tmap.serving(previous)
    if serving_before and not set(serving_before) <= live and production.traffic.get(new, 0) == 100:
        # the last step had retired the champion: the canary already serves everything, healthy
        plan = EndpointPlan(production.name, {new: 100}, tuple(sorted(live - {new})) + _deleting(production))
        return Ending(**base, state="succeeded", production=plan,
                      reason=f"{why} after the last canary step; completed (the previous deployments were "
                             "already retired)",
                      production_pointer={"deployment": new, "traffic": {new: 100}},
                      details={"traffic": {new: 100}})
    remaining = live - {new}
    restored = {name: int(previous.get(name, 0)) for name in remaining}
    if sum(restored.values()) not in (0, 100):
        # the recorded map is gone in part (a deployment deleted by hand): give the champion all of it
        champion = max(restored, key=lambda n: (restored[n], n))
        restored = {name: (100 if name == champion else 0) for name in remaining}
    plan = EndpointPlan(production.name, restored, (new,) + _deleting(production))
    return Ending(**base, state="abandoned", production=plan,
                  reason=f"{why} during {phase}; previous traffic map {restored or '{}'} restored, {new} removed",
                  details={"traffic": restored, "removed": [new]})


def _undo_ending(rollout: dict[str, Any], trail: list[dict[str, Any]], production: EndpointState | None,
                 target: str, why: str) -> Ending:
    """An undo moves production's traffic in one write (100% to the version it goes back to), so
    the endpoint is never half-way: it serves the target (the undo is completed: pointer set, the
    others kept at 0% for the next owner to retire) or what it served before (the undo ends
    abandoned; a deployment the undo itself re-created, still at 0%, is removed). Never the
    rollout rule, which would remove the target — production's only deployment, after a retire."""
    base = dict(rollout_id=rollout["id"], model=rollout["model"], version=rollout["version"],
                phase=f"undo: {phase_of(trail)}")
    if production is not None and int(production.traffic.get(target, 0)) == 100:
        traffic = {name: (100 if name == target else 0) for name in _names(production)}
        return Ending(**base, state="succeeded", production=EndpointPlan(production.name, traffic),
                      reason=f"{why} after the undo moved production to {target}; completed",
                      production_pointer={"deployment": target, "traffic": {target: 100}},
                      details={"traffic": {target: 100}})
    created = any(r["step"] == "undo_deployment_created" for r in trail)
    if production is None or not created or target not in _names(production):
        return Ending(**base, state="abandoned", reason=f"{why} during the undo; production untouched",
                      details={"traffic": dict(production.traffic) if production else {}})
    remaining = {name: int(production.traffic.get(name, 0)) for name in _names(production) - {target}}
    return Ending(**base, state="abandoned", production=EndpointPlan(production.name, remaining, (target,)),
                  reason=f"{why} during the undo; production untouched, {target} (re-created by it) removed",
                  details={"traffic": remaining, "removed": [target]})


def _staging_plan(staging: EndpointState | None, new: str, took_over: bool) -> EndpointPlan | None:
    if staging is None:
        return None
    live = _names(staging)
    if new not in live:
        return None
    if took_over or staging.traffic.get(new, 0) == 100:
        # it passed the gates and serves staging: finish the take-over (older deployments go)
        older = tuple(sorted(live - {new})) + _deleting(staging)
        return EndpointPlan(staging.name, {new: 100}, older) if older else None
    remaining = live - {new}
    traffic = {name: int(staging.traffic.get(name, 0)) for name in remaining}
    if sum(traffic.values()) not in (0, 100):
        champion = max(traffic, key=lambda n: (traffic[n], n))
        traffic = {name: (100 if name == champion else 0) for name in remaining}
    return EndpointPlan(staging.name, traffic, (new,) + _deleting(staging))


def _names(state: EndpointState) -> set[str]:
    """Deployments that still exist (one being deleted when its owner stopped is gone)."""
    return {name for name in set(state.deployments) | set(state.traffic)
            if state.deployments.get(name) != "Deleting"}


def _deleting(state: EndpointState) -> tuple[str, ...]:
    return tuple(sorted(n for n, s in state.deployments.items() if s == "Deleting"))
