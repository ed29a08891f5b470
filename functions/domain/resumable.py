"""Whether an interrupted rollout may be continued by a host that took the home over: a pure
decision from its records and the recorded state of its endpoints (no I/O).

The history replayed without divergence (the driver checked that); what is left is whether the
world still is what the history says. The rollout may continue only if

- its model is still managed (a model taken out of the configuration is not rolled out further);
- the deployments it created are in their endpoints' recorded state, Succeeded or still Creating
  (what the host revives: functions/adapters/local/endpoints.py `revive`) — one gone, Failed or
  being deleted means somebody else changed the endpoint, and the canary's judgement is void;
- production's recorded traffic map is valid (every name a deployment, summing to 100 or all 0)
  and gives traffic to nothing but the new deployment and what served before the rollout.

Otherwise the reason says why, and the owner ends the rollout as recovery does (reconcile.py).
"""

from __future__ import annotations

from typing import Any

from functions.domain.config import deployment_name
from functions.ports import EndpointState

ALIVE = ("Succeeded", "Creating")
# audit steps after which the workflow only records its outcome: its deployments may be gone already
OUTCOMES = ("rejected", "rolled_back", "succeeded", "failed", "skipped")


def why_not_resumable(rollout: dict[str, Any], trail: list[dict[str, Any]], staging: EndpointState | None,
                      production: EndpointState | None, *, managed: bool) -> str | None:
    """None when the rollout may continue; else why not (said in its ending's reason)."""
    model, version = rollout["model"], rollout["version"]
    new = deployment_name(model, version)
    if not managed:
        return f"model {model} is no longer managed"
    steps = {r["step"] for r in trail}
    deciding = not steps & set(OUTCOMES)
    for workspace, state, step in (("staging", staging, "staging_deployment_created"),
                                   ("production", production, "production_deployment_created")):
        if step not in steps or not deciding:
            continue
        if state is None:
            return f"its {workspace} endpoint has no recorded state"
        found = state.deployments.get(new)
        if found not in ALIVE:
            return f"its {workspace} deployment {new} is {found or 'gone'} in the endpoint's recorded state"
    if production is not None and "production_deployment_created" in steps:
        before = next((r["details"].get("traffic") or {} for r in trail
                       if r["step"] == "production_deployment_created"), {})
        allowed = {new} | {name for name, weight in before.items() if int(weight) > 0}
        traffic = production.traffic
        foreign = sorted(name for name, weight in traffic.items() if weight and name not in allowed)
        if foreign or set(traffic) - set(production.deployments) or sum(traffic.values()) not in (0, 100):
            return (f"production's recorded traffic map {traffic} is not one this rollout set "
                    "(changed outside it)")
    return None
