"""The operator audit: one create-only record per operator action (accepted, refused, invalid).

STAND-IN on branch authz with the signature of the common design (helper "controls" owns this
module; the lead keeps theirs at merge). Keys: operator/<YYYY-MM-DD>/<HHMMSSffffff>-<uuid8>-<action>.json
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone
from typing import Any

from functions.ports import Store


def record_action(store: Store, *, action: str, caller: Any, model: str | None, rollout_id: str | None,
                  outcome: str, status: int, reason: str = "", comment: str = "",
                  at: datetime | None = None) -> str:
    """Write the record (never overwritten) and return its key."""
    at = at or datetime.now(timezone.utc)
    key = f"operator/{at:%Y-%m-%d}/{at:%H%M%S%f}-{uuid.uuid4().hex[:8]}-{action}.json"
    who = caller.to_dict() if hasattr(caller, "to_dict") else {"identity": str(caller)}
    record = {"action": action, "by": who, "model": model, "rollout_id": rollout_id, "outcome": outcome,
              "status": status, "reason": reason[:2000], "comment": (comment or "")[:2000], "at": at.isoformat()}
    store.put(key, json.dumps(record, sort_keys=True).encode(), if_absent=True)
    return key


def actions_for(store: Store, model: str, rollout_id: str | None = None) -> list[dict[str, Any]]:
    out = []
    for key in store.list("operator/"):
        found = store.get(key)
        if found is None:
            continue
        record = json.loads(found[0])
        if record.get("model") == model and (rollout_id is None or record.get("rollout_id") == rollout_id):
            out.append(record)
    return out
