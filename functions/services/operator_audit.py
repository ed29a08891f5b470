"""The audit of operator actions: every approve, reject, abort, pause, resume, promote, retry,
undo, freeze and unfreeze a person (or a key) asked for — accepted, refused (403) or invalid (409) —
one create-only record each, in the store:

    operator/<YYYY-MM-DD>/<HHMMSSffffff>-<uuid8>-<action>.json

A day folder sorts by time, so the newest actions are the last keys of the newest day; the random
part keeps two actions in the same microsecond apart. The rollout's own trail (records.audit) says
what the workflow did with an accepted control; this record says who asked, how they were
identified and what the answer was, including the answers that never reached a workflow.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timezone
from typing import Any

from functions.ports import Store
from functions.services.records import _dump, _load

PREFIX = "operator/"
OUTCOMES = ("accepted", "refused", "invalid", "not_found", "failed")


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:40]


def _caller_dict(caller: Any) -> dict[str, Any]:
    """A domain.authorisation.Caller (or anything with its fields) as the record keeps it."""
    if caller is None:
        return {"identity": "", "via": "", "roles": []}
    if isinstance(caller, dict):
        return {"identity": str(caller.get("identity", "")), "via": str(caller.get("via", "")),
                "roles": list(caller.get("roles", []))}
    return {"identity": str(getattr(caller, "identity", "")), "via": str(getattr(caller, "via", "")),
            "roles": list(getattr(caller, "roles", ()))}


def record_action(store: Store, *, action: str, caller: Any, model: str | None, rollout_id: str | None,
                  outcome: str, status: int, reason: str = "", comment: str = "",
                  at: datetime | str | None = None) -> str:
    """Write one operator action's record (create-only) and return its key. `outcome`: accepted |
    refused (403) | invalid (409) | not_found (404) | failed (5xx); `reason` what the caller was told."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r} (one of {', '.join(OUTCOMES)})")
    when = at if isinstance(at, datetime) else datetime.fromisoformat(at) if at else datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    when = when.astimezone(timezone.utc)
    key = f"{PREFIX}{when:%Y-%m-%d}/{when:%H%M%S%f}-{uuid.uuid4().hex[:8]}-{_safe(action)}.json"
    who = _caller_dict(caller)
    record = {"action": action, "by": who["identity"], "via": who["via"], "roles": who["roles"],
              "model": model or None, "rollout_id": rollout_id or None, "outcome": outcome, "status": int(status),
              "reason": str(reason)[:2000], "comment": str(comment or "")[:2000], "at": when.isoformat()}
    store.put(key, _dump(record), if_absent=True)
    return key


def actions_for(store: Store, model: str | None, rollout_id: str | None) -> list[dict[str, Any]]:
    """Every operator action on one rollout (or, with rollout_id None, on one model; model None: all),
    oldest first. A scan of the operator/ prefix: fine for a detail view, not for a hot path."""
    out = []
    for key in store.list(PREFIX):
        found = store.get(key)
        if not found:
            continue
        record = _load(found[0], key)
        if rollout_id is not None and record.get("rollout_id") != rollout_id:
            continue
        if model is not None and record.get("model") != model:
            continue
        out.append({**record, "key": key})
    return sorted(out, key=lambda r: (r.get("at") or "", r["key"]))
