"""The operator-action audit (functions/services/operator_audit.py): one create-only record per
action asked for, whatever the answer, found again per rollout and per model."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from functions.domain.authorisation import Caller
from functions.ports import Conflict
from functions.services.operator_audit import actions_for, record_action
from tests.fakes import MemoryStore


def test_every_answer_is_one_record_keyed_by_day_and_time_and_found_per_rollout():
    store = MemoryStore()
    at = datetime(2026, 12, 1, 20, 41, 5, 123456, tzinfo=timezone.utc)
    ops = Caller("ops@contoso.com", "entra", ("ModelOps.Operator",))
    first = record_action(store, action="abort", caller=ops, model="m", rollout_id="r1", outcome="accepted",
                          status=202, reason="", comment="bad canary", at=at)
    record_action(store, action="resume", caller=Caller.function_key(), model="m", rollout_id="r1",
                           outcome="invalid", status=409, reason="rollout r1 is running: nothing to resume",
                           at=at.replace(microsecond=123457))
    same_time = record_action(store, action="abort", caller=ops, model="m", rollout_id="r1", outcome="invalid",
                              status=409, at=at)
    record_action(store, action="pause", caller=ops, model="other", rollout_id="r2", outcome="refused", status=403,
                  reason="no role", at=at.isoformat())
    assert first.startswith("operator/2026-12-01/204105123456-") and first.endswith("-abort.json")
    assert first != same_time  # the same microsecond: two records
    record = json.loads(store.get(first)[0])
    assert (record["by"], record["via"], record["outcome"], record["status"], record["comment"]) == \
        ("ops@contoso.com", "entra", "accepted", 202, "bad canary")
    mine = actions_for(store, "m", "r1")
    assert sorted((a["action"], a["outcome"]) for a in mine[:2]) == [("abort", "accepted"), ("abort", "invalid")]
    assert (mine[2]["action"], mine[2]["outcome"], mine[2]["via"]) == ("resume", "invalid", "function key")
    assert [a["action"] for a in actions_for(store, "other", None)] == ["pause"]
    assert len(actions_for(store, None, None)) == 4


def test_a_record_is_never_overwritten(monkeypatch):
    import uuid

    store = MemoryStore()
    at = datetime(2026, 12, 1, tzinfo=timezone.utc)
    fixed = uuid.UUID(int=7)
    monkeypatch.setattr(uuid, "uuid4", lambda: fixed)  # two actions that would share one key
    record_action(store, action="abort", caller=None, model="m", rollout_id="r", outcome="accepted", status=202, at=at)
    with pytest.raises(Conflict):  # create-only
        record_action(store, action="abort", caller=None, model="m", rollout_id="r", outcome="invalid", status=409,
                      at=at)
    assert [a["outcome"] for a in actions_for(store, "m", "r")] == ["accepted"]


def test_an_unknown_outcome_is_refused():
    with pytest.raises(ValueError, match="unknown outcome"):
        record_action(MemoryStore(), action="abort", caller=None, model="m", rollout_id="r", outcome="ok", status=200)
