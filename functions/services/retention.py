"""The retention timer: delete stored records past their kind's age that nothing live references
(decision: functions/domain/retention.py). Idempotent — what is gone is not listed again, and a
record that vanishes mid-run is simply not there to delete.

    exports/<model>/<version>/<day>/<hour>/part-<start>Z.<fmt>   aged by the slice start
    drift/<model>/<version>/<stamp>/(result.json|report.html)    aged by the stamp (history.json,
                                                                  pending/ are state, never aged)
    gate-reports/<model>/<version>/<rollout id>.json             aged by its rollout's end
    audit/<model>/<rollout id>/…                                 aged by its rollout's end
    operator/<day>/…, decisions/<day>/…                          aged by the day

Protected: every record of a running rollout or of the rollout that put the production version
there (its gate report, audit trail, operator records), the newest drift result/report of each
model's production version and the exported parts it names, and every export inside the drift window.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

from functions.domain.retention import Stored, expired
from functions.ports import Store
from functions.services.export import EXPORT_PREFIX, parse_part_key
from functions.services.records import RolloutStore
from functions.shared.logs import log_event

logger = logging.getLogger("modelops.retention")
_STAMP = re.compile(r"^\d{8}T\d{6}Z$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _stamp(text: str) -> datetime | None:
    return datetime.strptime(text, "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc) if _STAMP.match(text) else None


def _day_end(text: str) -> datetime | None:
    """The end of a dated folder's day: everything in it is at least that old."""
    if not _DAY.match(text):
        return None
    return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc) + timedelta(days=1)


def _iso(text: Any) -> datetime | None:
    try:
        at = datetime.fromisoformat(str(text))
    except (TypeError, ValueError):
        return None
    return at if at.tzinfo else at.replace(tzinfo=timezone.utc)


class _Live:
    """What a running rollout or the current production version references."""

    def __init__(self, store: Store, rollouts: RolloutStore) -> None:
        self.rollouts = rollouts
        self.store = store
        self.rollout_ids = {rid for _, rid in rollouts.running_ids()}
        self.production: dict[str, str] = {}  # model -> production version
        for key in store.list("production/"):
            found = store.get(key)
            if found:
                record = json.loads(found[0])
                self.production[str(record.get("model"))] = str(record.get("version"))
                if record.get("rollout_id"):
                    self.rollout_ids.add(str(record["rollout_id"]))
        self._ended: dict[tuple[str, str], datetime | None] = {}

    def rollout_end(self, model: str, rollout_id: str) -> datetime | None:
        """When the rollout ended (else started); None when its record is gone or unreadable."""
        if (model, rollout_id) not in self._ended:
            record = self.rollouts.store.get(self.rollouts.key(model, rollout_id))
            at = None
            if record is not None:
                data = json.loads(record[0])
                at = _iso(data.get("finished") or data.get("started"))
            self._ended[(model, rollout_id)] = at
        return self._ended[(model, rollout_id)]


def _drift_items(store: Store, live: _Live, protected: set[str]) -> list[Stored]:
    items: list[Stored] = []
    newest: dict[tuple[str, str], str] = {}
    for key in store.list("drift/"):
        parts = key.split("/")
        if len(parts) != 5 or _stamp(parts[3]) is None:
            continue  # history.json, pending/: state, not reports
        model, version, stamp = parts[1], parts[2], parts[3]
        items.append(Stored(key, "reports", _stamp(stamp)))
        if live.production.get(model) == version and stamp > newest.get((model, version), ""):
            newest[(model, version)] = stamp
    for (model, version), stamp in newest.items():
        prefix = f"drift/{model}/{version}/{stamp}/"
        for item in items:
            if item.key.startswith(prefix):
                protected.add(item.key)
        found = store.get(prefix + "result.json")
        if found is not None:
            try:
                named = (json.loads(found[0]).get("window") or {}).get("parts") or []
            except ValueError:
                named = []
            protected.update(str(p) for p in named)
    return items


def apply_retention(store: Store, days: dict[str, float], *, now: datetime | None = None,
                    drift_window: timedelta = timedelta(hours=24), dry_run: bool = False) -> dict[str, Any]:
    """Delete what is past retention and unreferenced; {"deleted": {kind: n}, "kept": n, "keys": [...]}."""
    now = now or datetime.now(timezone.utc)
    rollouts = RolloutStore(store)
    live = _Live(store, rollouts)
    protected: set[str] = set()
    items: list[Stored] = []

    if days.get("exports", 0) > 0:
        for key in store.list(EXPORT_PREFIX):
            parsed = parse_part_key(key)
            if parsed is None:
                continue
            items.append(Stored(key, "exports", parsed[0]))
            if parsed[0] >= now - drift_window:
                protected.add(key)  # the next drift check reads it
    if days.get("reports", 0) > 0 or days.get("exports", 0) > 0:
        drift = _drift_items(store, live, protected)  # also protects the exports a kept result names
        if days.get("reports", 0) > 0:
            items.extend(drift)
    if days.get("gate_reports", 0) > 0:
        for key in store.list("gate-reports/"):
            parts = key.split("/")
            if len(parts) != 4:
                continue
            model, rollout_id = parts[1], parts[3].removesuffix(".json")
            if rollout_id in live.rollout_ids:
                protected.add(key)
            at = live.rollout_end(model, rollout_id)
            if at is None:
                found = store.get(key)
                at = _iso(json.loads(found[0]).get("at")) if found else None
            if at is not None:
                items.append(Stored(key, "gate_reports", at))
    if days.get("audit", 0) > 0:
        for key in store.list("audit/"):
            parts = key.split("/")
            if len(parts) != 4:
                continue
            model, rollout_id = parts[1], parts[2]
            if rollout_id in live.rollout_ids:
                protected.add(key)
            at = live.rollout_end(model, rollout_id)
            if at is None:
                found = store.get(key)
                at = _iso(json.loads(found[0]).get("at")) if found else None
            if at is not None:
                items.append(Stored(key, "audit", at))
        cutoff = now - timedelta(days=days["audit"])
        for prefix in ("operator/", "decisions/"):
            for key in store.list(prefix):
                day = _day_end(key.split("/")[1]) if key.count("/") >= 2 else None
                if day is None:
                    continue
                if day < cutoff and prefix == "operator/":  # only old ones are read: who they are about
                    found = store.get(key)
                    if found and str(json.loads(found[0]).get("rollout_id") or "") in live.rollout_ids:
                        protected.add(key)
                items.append(Stored(key, "audit", day))

    doomed = expired(items, days, now, protected)
    kinds = {item.key: item.kind for item in items}
    counts: dict[str, int] = {}
    for key in doomed:
        if not dry_run:
            store.delete(key)
        counts[kinds[key]] = counts.get(kinds[key], 0) + 1
    kept = sum(1 for i in items if i.key in protected and i.at < now - timedelta(days=days.get(i.kind, 0) or 0)
               and days.get(i.kind, 0) > 0)
    log_event(logger, "retention", deleted=counts, kept_referenced=kept, dry_run=dry_run)
    return {"deleted": counts, "kept_referenced": kept, "keys": doomed, "dry_run": dry_run}
