"""The status views: `modelops status --json` and GET /api/rollouts (rollouts_view), and
GET /api/status (status_view: per model what serves production and since when, and each running
rollout's phase, step and the time left in its current bake)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable

from functions.domain import controls
from functions.domain.freezes import frozen_reason
from functions.services.records import RolloutStore

FIELDS = ("id", "model", "version", "state", "started", "finished", "reason", "event_id", "gate_report", "traffic",
          "figures", "kind")


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


def _time(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def bake_left(record: dict[str, Any], trail: list[dict[str, Any]], now: datetime) -> float | None:
    """Seconds left in the current canary bake (None outside a bake; 0 once it is being judged).
    From the trail: the newest traffic shift starts a bake of the configured bake_seconds; a resume
    restarts the clock with what was left; a health extension adds another window."""
    bake = float(((record.get("config") or {}).get("canary") or {}).get("bake_seconds") or 0)
    left, since = None, None
    for step in trail:
        name, details = step.get("step"), step.get("details") or {}
        if name == "traffic" and not details.get("first_version"):
            left, since = bake, _time(step.get("at"))
        elif name == "resumed":
            left, since = float(details.get("remaining_seconds") or 0), _time(step.get("at"))
        elif name == "health" and details.get("extended"):
            left, since = bake, _time(step.get("at"))
        elif name in ("health", "promoted", "promoted_full", "rolled_back", "succeeded"):
            left, since = None, None
    if left is None or since is None:
        return None
    return max(0.0, left - (now - since).total_seconds())


def status_view(rollouts: RolloutStore, models: Iterable[str], model: str | None = None,
                now: datetime | None = None, freezes: Any = None) -> dict[str, Any]:
    """With `freezes` (services.freezes.Freezes) each model also says whether it is frozen and which
    registered versions its freeze holds."""
    now = now or datetime.now(timezone.utc)
    active = freezes.active() if freezes is not None else []
    names = sorted(set(models) | ({model} if model else set()))
    if model:
        names = [model]
    out = []
    for name in names:
        current = rollouts.production(name)
        serving = {"version": current["version"], "deployment": current["deployment"], "since": current["at"],
                   "rollout_id": current.get("rollout_id")} if current else None
        running = []
        for _, rollout_id in rollouts.running_ids(name):
            record = rollouts.get(name, rollout_id)
            if record is None or record.get("state") != "running":
                continue
            trail = rollouts.trail(name, rollout_id)
            phase = controls.phase(record, trail)
            percent = next((s["details"].get("percent") for s in reversed(trail) if s.get("step") == "traffic"), None)
            left = None if phase == "paused" else bake_left(record, trail, now)
            running.append({"id": rollout_id, "version": record.get("version"), "kind": record.get("kind", "rollout"),
                            "phase": phase, "step": trail[-1]["step"] if trail else None, "percent": percent,
                            "bake_left_seconds": None if left is None else round(left, 1),
                            "paused": phase == "paused", "started": record.get("started")})
        item = {"model": name, "production": serving, "running": running}
        if freezes is not None:
            item["frozen"] = frozen_reason(name, active, now)
            item["held"] = sorted((h["version"] for h in freezes.held(name)), key=_version_key)
        out.append(item)
    return {"models": out, "at": now.isoformat()}


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if str(version).isdigit() else (0, str(version))
