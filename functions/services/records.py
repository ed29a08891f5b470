"""Rollout records, the audit trail and decisions, kept in the Store (survives restarts).

    rollouts/<model>/<rollout id>.json           current state of one rollout
    running/<model>/<rollout id>.json             index of in-flight rollouts (claim → finish)
    audit/<model>/<rollout id>/<seq>-<step>.json  one create-only record per transition
    production/<model>.json                      what production serves (set by a successful rollout)
    production-history/<model>/<at>-<version>.json  every production pointer ever set, oldest first (undo)
    decisions/<day>/<time>-<event id>.json       every decision on an event, with its reason

Every record carries `schema_version` (SCHEMA_VERSION). Records written before it existed (a home
or container from an older modelops) have the same fields and are read as version 1; a record from
a newer modelops is refused with the versions named, never misread.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from functions.ports import Conflict, PlatformError, Store
from functions.shared.versioned import readable_version, stamped

SCHEMA_VERSION = 2  # 1: records before the field existed (same fields)

STATES = ("running", "succeeded", "rejected", "rolled_back", "skipped", "failed", "abandoned")
# a rollout in one of these ended without reaching production: `retry` may start it again
RETRYABLE = ("rejected", "rolled_back", "failed", "abandoned")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:120]


def _dump(obj: Any) -> bytes:
    return json.dumps(stamped(obj, SCHEMA_VERSION), indent=1, sort_keys=True, default=str).encode()


def _load(data: bytes, key: str) -> dict[str, Any]:
    record = json.loads(data)
    readable_version(record, key, SCHEMA_VERSION)
    return record


class RolloutStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    # rollouts
    def key(self, model: str, rollout_id: str) -> str:
        return f"rollouts/{_safe(model)}/{_safe(rollout_id)}.json"

    def get(self, model: str, rollout_id: str) -> dict[str, Any] | None:
        key = self.key(model, rollout_id)
        found = self.store.get(key)
        return _load(found[0], key) if found else None

    def claim(self, decision: dict[str, Any], event: dict[str, Any], at: str, state: str = "running",
              extra: dict[str, Any] | None = None) -> bool:
        """Create the rollout record if absent. Exactly one of concurrent claimers wins. `extra`:
        more fields (an undo's {"kind": "undo", ...})."""
        record = {
            "id": decision["run_key"], "model": decision["model"], "version": decision["version"],
            "state": state, "reason": decision["reason"], "started": at, "finished": at if state != "running" else None,
            "event_id": event.get("event_id", ""), "topic": event.get("topic", ""), **(extra or {}),
        }
        try:
            self.store.put(self.key(decision["model"], decision["run_key"]), _dump(record), if_absent=True)
        except Conflict:
            return False
        if state == "running":
            self.store.put(self._running_key(decision["model"], decision["run_key"]),
                           _dump({"id": decision["run_key"], "model": decision["model"],
                                  "version": decision["version"]}))
        return True

    def _running_key(self, model: str, rollout_id: str) -> str:
        return f"running/{_safe(model)}/{_safe(rollout_id)}.json"

    def running(self, model: str) -> list[dict[str, Any]]:
        """In-flight rollouts of a model, from the small running index (not a scan of history)."""
        out = []
        for key in self.store.list(f"running/{_safe(model)}/"):
            found = self.store.get(key)
            if found:
                out.append(_load(found[0], key))
        return out

    def running_ids(self, model: str | None = None) -> list[tuple[str, str]]:
        """(model, rollout id) of every entry in the running index (all models by default)."""
        prefix = f"running/{_safe(model)}/" if model else "running/"
        out = []
        for key in self.store.list(prefix):
            found = self.store.get(key)
            entry = _load(found[0], key) if found else {}
            _, model_part, name = key.split("/", 2)
            out.append((entry.get("model") or model_part, entry.get("id") or name.removesuffix(".json")))
        return out

    def drop_running(self, model: str, rollout_id: str) -> None:
        """Remove a stale index entry (its rollout record is terminal or gone)."""
        self.store.delete(self._running_key(model, rollout_id))

    def next_seq(self, model: str, rollout_id: str) -> int:
        trail = self.trail(model, rollout_id)
        return (trail[-1]["seq"] + 1) if trail else 1

    def release(self, model: str, rollout_id: str) -> None:
        """Forget a claim whose orchestration could not be started (the event will be retried)."""
        self.store.delete(self.key(model, rollout_id))
        self.store.delete(self._running_key(model, rollout_id))

    def annotate(self, model: str, rollout_id: str, **fields: Any) -> None:
        """Add facts to a claimed rollout's record (e.g. `started_by`: who asked for a retry)."""
        self._update({"model": model, "id": rollout_id, "version": ""}, lambda r: r.update(fields))

    def start(self, rollout: dict, event: dict, config: dict, at: str) -> None:
        self._update(rollout, lambda r: r.update(state="running", config=config, event=event,
                                                 started=r.get("started") or at))

    def finish(self, rollout: dict, outcome: dict, at: str) -> None:
        def apply(r: dict) -> None:
            r.update(state=outcome["state"], reason=outcome.get("reason", ""), finished=at)
            for key in ("gate_report", "figures", "traffic"):
                if key in outcome:
                    r[key] = outcome[key]

        self._update(rollout, apply)
        self.store.delete(self._running_key(rollout["model"], rollout["id"]))

    def _update(self, rollout: dict, change) -> None:
        key = self.key(rollout["model"], rollout["id"])
        for _ in range(10):  # optimistic concurrency: re-read on a lost race
            found = self.store.get(key)
            record = _load(found[0], key) if found else {
                "id": rollout["id"], "model": rollout["model"], "version": rollout["version"],
                "event_id": rollout.get("event_id", ""), "topic": rollout.get("topic", ""), "started": None,
                "finished": None, "reason": "",
            }
            change(record)
            try:
                if found:
                    self.store.put(key, _dump(record), etag=found[1])
                else:
                    self.store.put(key, _dump(record), if_absent=True)
                return
            except Conflict:
                continue
        raise Conflict(f"could not update {key}: too many concurrent writers", transient=True)

    def note(self, model: str, rollout_id: str, kind: str, entry: dict[str, Any]) -> None:
        """Append `entry` to the record's `kind` list (e.g. `suspended`, `resumed`: what a host did
        with a running rollout; not an audit step, whose sequence belongs to the workflow)."""
        record = self.get(model, rollout_id)
        if record is None:
            return
        self._update(record, lambda r: r.update({kind: [*(r.get(kind) or []), entry]}))

    def list(self, model: str | None = None) -> list[dict[str, Any]]:
        prefix = f"rollouts/{_safe(model)}/" if model else "rollouts/"
        out = []
        for key in self.store.list(prefix):
            found = self.store.get(key)
            if found:
                out.append(_load(found[0], key))
        return sorted(out, key=lambda r: (r.get("started") or "", r["id"]))

    # audit trail
    def audit(self, rollout: dict, seq: int, step: str, at: str, details: dict, actor: str = "modelops") -> None:
        key = f"audit/{_safe(rollout['model'])}/{_safe(rollout['id'])}/{seq:05d}-{_safe(step)}.json"
        record = {"seq": seq, "step": step, "at": at, "rollout_id": rollout["id"], "model": rollout["model"],
                  "version": rollout["version"], "event_id": rollout.get("event_id", ""), "actor": actor,
                  "details": details}
        try:
            self.store.put(key, _dump(record), if_absent=True)
        except Conflict:
            pass  # the same activity ran twice (at-least-once): the record is already there

    def trail(self, model: str, rollout_id: str) -> list[dict[str, Any]]:
        out = []
        for key in self.store.list(f"audit/{_safe(model)}/{_safe(rollout_id)}/"):
            found = self.store.get(key)
            if found:
                out.append(_load(found[0], key))
        return sorted(out, key=lambda r: r["seq"])

    # production pointer
    def production(self, model: str) -> dict[str, Any] | None:
        key = f"production/{_safe(model)}.json"
        found = self.store.get(key)
        return _load(found[0], key) if found else None

    def set_production(self, rollout: dict, deployment: str, traffic: dict, at: str) -> None:
        record = {"model": rollout["model"], "version": rollout["version"], "deployment": deployment,
                  "rollout_id": rollout["id"], "traffic": traffic, "at": at}
        stamp = re.sub(r"[^0-9]", "", at)[:20]
        # the history first: a pointer that is set is always in it (a retried activity rewrites the same key)
        self.store.put(f"production-history/{_safe(rollout['model'])}/{stamp}-{_safe(rollout['version'])}.json",
                       _dump(record))
        self.store.put(f"production/{_safe(rollout['model'])}.json", _dump(record))

    def production_history(self, model: str) -> list[dict[str, Any]]:
        """Every production pointer of `model`, oldest first (homes from before the history: empty)."""
        out = []
        for key in sorted(self.store.list(f"production-history/{_safe(model)}/")):
            found = self.store.get(key)
            if found:
                out.append(_load(found[0], key))
        return out

    def find(self, rollout_id: str) -> dict[str, Any] | None:
        """A rollout record by its id alone (the routes name only the id): the running index first,
        then the record keys of every model."""
        for model, rid in self.running_ids():
            if rid == rollout_id:
                found = self.get(model, rid)
                if found:
                    return found
        suffix = f"/{_safe(rollout_id)}.json"
        for key in self.store.list("rollouts/"):
            if key.endswith(suffix):
                found = self.store.get(key)
                if found:
                    return _load(found[0], key)
        return None

    # decisions
    def record_decision(self, decision: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
        now = datetime.now(timezone.utc)
        key = (f"decisions/{now:%Y-%m-%d}/{now:%H%M%S%f}-{_safe(decision.get('event_id') or 'no-id')}-"
               f"{uuid.uuid4().hex[:8]}.json")
        self.store.put(key, _dump({**decision, **(extra or {}), "at": now.isoformat()}), if_absent=True)
        return key

    def decisions(self, limit: int = 100) -> list[dict[str, Any]]:
        keys = self.store.list("decisions/")[-limit:]
        out = []
        for key in keys:
            found = self.store.get(key)
            if found:
                out.append(_load(found[0], key))
        return out
