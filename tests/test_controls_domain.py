"""Which control applies now (functions/domain/controls.py) and the status view's bake clock
(functions/services/status.py): pure decisions over a record and its trail."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from functions.domain.controls import phase, refusal
from functions.services.records import RolloutStore
from functions.services.status import bake_left, status_view
from tests.fakes import MemoryStore

T0 = datetime(2026, 12, 1, 20, 0, tzinfo=timezone.utc)


def trail(*steps: str | tuple[str, dict], start: datetime = T0) -> list[dict]:
    out = []
    for seq, step in enumerate(steps, 1):
        name, details = step if isinstance(step, tuple) else (step, {})
        out.append({"seq": seq, "step": name, "details": details, "at": (start + timedelta(seconds=seq)).isoformat()})
    return out


RUNNING = {"state": "running"}
CANARY_STEPS = ("started", "production_smoke", ("traffic", {"percent": 10}))
CANARY = trail(*CANARY_STEPS)


@pytest.mark.parametrize("record, steps, expected", [
    ({"state": "succeeded"}, CANARY, "succeeded"),
    (RUNNING, trail("started", "contract"), "staging"),
    (RUNNING, trail("started", "promoted", "awaiting_approval"), "awaiting_approval"),
    (RUNNING, trail("started", "production_smoke"), "production"),
    (RUNNING, CANARY, "canary"),
    (RUNNING, trail(*CANARY_STEPS, "paused"), "paused"),
    (RUNNING, trail(*CANARY_STEPS, "paused", "resumed"), "canary"),
    ({"state": "running", "kind": "undo"}, trail("undo_started", "traffic"), "undo"),
])
def test_the_phase_comes_from_the_record_and_the_newest_steps(record, steps, expected):
    assert phase(record, steps) == expected


@pytest.mark.parametrize("action, current, words", [
    ("abort", "succeeded", "rollout r is succeeded: nothing to abort"),
    ("resume", "canary", "not paused"),
    ("pause", "staging", "not in one"),
    ("pause", "paused", "paused already"),
    ("promote", "awaiting_approval", "not in its canary"),
    ("approve", "canary", "not awaiting approval"),
    ("retry", "canary", "running (canary): nothing to retry"),
    ("retry", "succeeded", "succeeded: nothing to retry"),
    ("abort", "undo", "an undo in progress"),
])
def test_a_control_that_does_not_apply_is_refused_naming_the_state(action, current, words):
    assert words in refusal(action, "r", current)


@pytest.mark.parametrize("action, current", [
    ("abort", "staging"), ("abort", "paused"), ("pause", "canary"), ("resume", "paused"), ("promote", "canary"),
    ("promote", "paused"), ("approve", "awaiting_approval"), ("reject", "awaiting_approval"), ("retry", "rolled_back"),
])
def test_a_control_that_applies_is_allowed(action, current):
    assert refusal(action, "r", current) is None


def test_the_bake_clock_counts_down_from_the_shift_and_from_a_resume():
    record = {"config": {"canary": {"bake_seconds": 300}}}
    steps = CANARY  # traffic at T0+3s
    assert bake_left(record, steps, T0 + timedelta(seconds=103)) == 200
    resumed = trail(*CANARY_STEPS, "paused", ("resumed", {"remaining_seconds": 250}))  # resumed at T0+5s
    assert bake_left(record, resumed, T0 + timedelta(seconds=5 + 150)) == 100
    assert bake_left(record, trail(*CANARY_STEPS, "health"), T0) is None


def test_status_view_shows_production_since_and_running_rollouts_with_their_phase():
    rollouts = RolloutStore(MemoryStore())
    rollouts.set_production({"id": "r1", "model": "m", "version": "1"}, "m-1", {"m-1": 100}, T0.isoformat())
    rollouts.claim({"run_key": "r2", "model": "m", "version": "2", "reason": "t"}, {}, T0.isoformat())
    rollouts.start({"id": "r2", "model": "m", "version": "2"}, {}, {"canary": {"bake_seconds": 60}}, T0.isoformat())
    for step in trail(*CANARY_STEPS, "paused"):
        rollouts.audit({"id": "r2", "model": "m", "version": "2"}, step["seq"], step["step"], step["at"],
                       step["details"])
    view = status_view(rollouts, ["m", "idle"], now=T0 + timedelta(seconds=30))
    idle, m = view["models"]  # sorted by name
    assert m["production"] == {"version": "1", "deployment": "m-1", "since": T0.isoformat(), "rollout_id": "r1"}
    (running,) = m["running"]
    assert (running["id"], running["phase"], running["percent"], running["paused"], running["bake_left_seconds"]) == \
        ("r2", "paused", 10, True, None)
    assert idle == {"model": "idle", "production": None, "running": []}
    assert rollouts.production_history("m")[0]["version"] == "1"
