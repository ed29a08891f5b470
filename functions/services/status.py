"""The status view shared by `modelops status --json` and GET /api/rollouts."""

from __future__ import annotations

from typing import Any

from functions.services.records import RolloutStore

FIELDS = ("id", "model", "version", "state", "started", "finished", "reason", "event_id", "gate_report", "traffic",
          "figures")


def rollouts_view(rollouts: RolloutStore, model: str | None = None, with_audit: bool = False) -> dict[str, Any]:
    out = []
    for record in rollouts.list(model):
        item = {key: record.get(key) for key in FIELDS if key in record or key in ("started", "finished", "reason")}
        if with_audit:
            item["audit"] = rollouts.trail(record["model"], record["id"])
        out.append(item)
    production = {}
    for name in sorted({r["model"] for r in out}):
        current = rollouts.production(name)
        if current:
            production[name] = {"version": current["version"], "deployment": current["deployment"]}
    return {"rollouts": out, "production": production}
