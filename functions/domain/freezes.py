"""Freezes: a switch per model and a global one that holds new rollouts (pure decisions, no I/O).

While a freeze is on, a ModelRegistered event for the model is decided `held` (recorded, not
dropped, not rolled out) and retraining launches are skipped; running rollouts go on. A freeze may
carry an expiry (`until`); an expired freeze counts as off. On unfreeze only the NEWEST held version
is released (through the normal hand-off); the older ones are superseded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

from functions.shared.names import version_key

GLOBAL = ""  # the model name of the global freeze
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class Freeze:
    model: str  # GLOBAL for every model
    at: str
    by: str
    comment: str = ""
    until: str | None = None  # ISO 8601 with an offset; None: until unfrozen

    def expired(self, now: datetime) -> bool:
        return self.until is not None and datetime.fromisoformat(self.until) <= now

    def describe(self) -> str:
        scope = "all models are frozen" if self.model == GLOBAL else f"model {self.model} is frozen"
        until = f" until {self.until}" if self.until else ""
        why = f": {self.comment}" if self.comment else ""
        return f"{scope}{until} (by {self.by} at {self.at}){why}"

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model or None, "at": self.at, "by": self.by, "comment": self.comment,
                "until": self.until}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "Freeze":
        return cls(model=raw.get("model") or GLOBAL, at=str(raw["at"]), by=str(raw.get("by") or ""),
                   comment=str(raw.get("comment") or ""), until=raw.get("until") or None)


def frozen_reason(model: str, freezes: Iterable[Freeze], now: datetime) -> str | None:
    """Why `model` is frozen now (its own freeze, else the global one), or None."""
    for f in sorted(freezes, key=lambda f: f.model != model):
        if f.model in (model, GLOBAL) and not f.expired(now):
            return f.describe()
    return None


def parse_until(until: str | None, for_: str | None, now: datetime) -> str | None:
    """The expiry from `until` (ISO 8601; no offset means UTC) or `for_` (30m, 2h, 1d, 1w), as
    ISO 8601 UTC; None for neither. ValueError with the reason for a bad value or one in the past."""
    if until and for_:
        raise ValueError("give an expiry (until) or a duration (for), not both")
    if for_:
        m = _DURATION.match(str(for_))
        if not m:
            raise ValueError(f"duration {for_!r} is not a number with s, m, h, d or w (e.g. 2h)")
        at = now + timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2).lower()])
    elif until:
        try:
            at = datetime.fromisoformat(str(until).replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"until {until!r} is not an ISO 8601 time (e.g. 2026-12-24T18:00:00Z)") from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
    else:
        return None
    if at <= now:
        raise ValueError(f"the expiry {at.isoformat()} is not in the future")
    return at.astimezone(timezone.utc).isoformat()


def newest_first(held: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Held versions, newest first: the first is released, the rest are superseded."""
    return sorted(held, key=lambda h: version_key(str(h["version"])), reverse=True)
