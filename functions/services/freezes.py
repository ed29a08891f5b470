"""Freezes in the store, held events and their release (decisions: functions/domain/freezes.py).

    freezes/active/global.json                  the global freeze (every model)
    freezes/active/models/<model>.json          one model's freeze
    freezes/held/<model>/<rollout id>.json      a ModelRegistered event decided `held` (create-only)
    freezes/released/<model>/<rollout id>.json  what became of a held event: released | superseded

Release is idempotent under at-least-once: two unfreezes, the timer and a route may all release at
once. Each marks the same outcomes (create-only, a lost race is the same answer) and hands the
newest held event to the normal hand-off, whose create-only rollout claim lets exactly one start;
the held records are deleted only after the start, so a crash in between is released again by the
next timer.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable

from functions.domain.decisions import Decision
from functions.domain.freezes import GLOBAL, Freeze, frozen_reason, newest_first
from functions.ports import Conflict, Store
from functions.shared.logs import log_event

logger = logging.getLogger("modelops.freezes")
PREFIX = "freezes/"


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9._-]", "_", text)[:120]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Freezes:
    def __init__(self, store: Store, clock: Callable[[], datetime] = _now) -> None:
        self.store = store
        self.clock = clock

    # -- the switches -------------------------------------------------------------------------

    @staticmethod
    def key(model: str) -> str:
        return f"{PREFIX}active/global.json" if model == GLOBAL else f"{PREFIX}active/models/{_safe(model)}.json"

    def _read(self, key: str) -> tuple[Freeze, str] | None:
        found = self.store.get(key)
        return (Freeze.from_dict(json.loads(found[0])), found[1]) if found else None

    def active(self, *, include_expired: bool = False) -> list[Freeze]:
        out = []
        for key in self.store.list(f"{PREFIX}active/"):
            read = self._read(key)
            if read and (include_expired or not read[0].expired(self.clock())):
                out.append(read[0])
        return out

    def frozen(self, model: str) -> str | None:
        """Why `model` is frozen now, or None (an expired freeze is off)."""
        return frozen_reason(model, self.active(), self.clock())

    def freeze(self, model: str, *, by: str, comment: str = "", until: str | None = None) -> tuple[Freeze, bool]:
        """Freeze `model` (GLOBAL: every model); a second freeze replaces the first's expiry and comment.
        Returns the freeze and whether it is new."""
        record = Freeze(model, self.clock().isoformat(), by[:200], comment[:2000], until)
        existed = self.store.get(self.key(model)) is not None
        self.store.put(self.key(model), json.dumps(record.to_dict()).encode())
        log_event(logger, "freeze", model=model or "(all)", until=until, by=by)
        return record, not existed

    def unfreeze(self, model: str) -> Freeze | None:
        """Delete the freeze; None when there was none (or a concurrent unfreeze deleted it)."""
        read = self._read(self.key(model))
        if read is None:
            return None
        self.store.delete(self.key(model))
        log_event(logger, "unfreeze", model=model or "(all)")
        return read[0]

    # -- held events --------------------------------------------------------------------------

    def hold(self, raw: Any, decision: Decision) -> bool:
        """Keep a held event (create-only: a redelivery is held once). False when already held."""
        record = {"model": decision.model, "version": decision.version, "run_key": decision.run_key,
                  "event_id": decision.event_id, "reason": decision.reason, "at": self.clock().isoformat(),
                  "raw": raw}
        try:
            self.store.put(f"{PREFIX}held/{_safe(decision.model)}/{_safe(decision.run_key)}.json",
                           json.dumps(record, default=str).encode(), if_absent=True)
        except Conflict:
            return False
        return True

    def held(self, model: str | None = None) -> list[dict[str, Any]]:
        prefix = f"{PREFIX}held/" if model is None else f"{PREFIX}held/{_safe(model)}/"
        out = []
        for key in self.store.list(prefix):
            found = self.store.get(key)
            if found:
                out.append({**json.loads(found[0]), "key": key})
        return out

    def superseded_by(self, model: str, run_key: str) -> str | None:
        """The newer version released instead of this held one, if it was superseded."""
        found = self.store.get(f"{PREFIX}released/{_safe(model)}/{_safe(run_key)}.json")
        if found is None:
            return None
        outcome = json.loads(found[0])
        return outcome.get("superseded_by") if outcome.get("outcome") == "superseded" else None

    def _mark(self, held: dict[str, Any], outcome: str, **details: Any) -> None:
        record = {"model": held["model"], "version": held["version"], "run_key": held["run_key"],
                  "outcome": outcome, "at": self.clock().isoformat(), **details}
        try:
            self.store.put(f"{PREFIX}released/{_safe(held['model'])}/{_safe(held['run_key'])}.json",
                           json.dumps(record).encode(), if_absent=True)
        except Conflict:
            pass  # a concurrent release marked it the same way

    # -- release ------------------------------------------------------------------------------

    async def release(self, model: str, hand_off: Callable[[Any], Any]) -> list[dict[str, Any]]:
        """Release what `model`'s freeze held (GLOBAL: every model that is no longer frozen): the
        newest held version goes to `hand_off(raw) -> awaitable` (accept + start, the normal path);
        the older ones are superseded. Returns one summary per held event."""
        models = sorted({h["model"] for h in self.held()}) if model == GLOBAL else [model]
        out: list[dict[str, Any]] = []
        for name in models:
            if self.frozen(name):
                continue  # still frozen (the global freeze, or its own)
            held = newest_first(self.held(name))
            if not held:
                continue
            newest, older = held[0], held[1:]
            for h in older:
                self._mark(h, "superseded", superseded_by=newest["version"])
                out.append({"model": name, "version": h["version"], "outcome": "superseded",
                            "superseded_by": newest["version"]})
            self._mark(newest, "released")
            decisions = await hand_off(newest["raw"])
            for h in held:  # only after the start: a crash before is released again by the timer
                self.store.delete(h["key"])
            out.append({"model": name, "version": newest["version"], "outcome": "released",
                        "decision": decisions})
            log_event(logger, "freeze_released", model=name, version=newest["version"],
                      superseded=[h["version"] for h in older])
        return out

    async def release_due(self, hand_off: Callable[[Any], Any]) -> list[dict[str, Any]]:
        """The timer: expired freezes are removed, then whatever is held for a model that is no
        longer frozen is released (also what an unfreeze that stopped half-way left)."""
        for freeze in self.active(include_expired=True):
            if freeze.expired(self.clock()):
                read = self._read(self.key(freeze.model))
                if read is not None and read[0].expired(self.clock()):
                    try:  # only the expired freeze itself: a fresh re-freeze in between stays
                        self.store.delete(self.key(freeze.model))
                    except Conflict:
                        pass
                    log_event(logger, "freeze_expired", model=freeze.model or "(all)", until=freeze.until)
        return await self.release(GLOBAL, hand_off)
