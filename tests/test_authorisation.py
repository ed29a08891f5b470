"""Who may do what (functions/domain/authorisation.py) and how the CLI finds the application it
talks to (functions/cli/remote.py): pure decisions and file discovery, no servers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from functions.adapters.local.ownership import HomeLease, Owner, process_start_ticks
from functions.cli.remote import KEY_FILE, UP_FILE, remote_app
from functions.domain.authorisation import (
    ACTIONS,
    APPROVER_ROLE,
    OPERATOR_ROLE,
    Caller,
    Policy,
    authorise,
)

ANN = Caller("ann@contoso.com", "entra", (APPROVER_ROLE,), ("oid-ann", "ann@contoso.com"))
OPS = Caller("ops@contoso.com", "entra", (OPERATOR_ROLE,), ("oid-ops",))


def test_roles_decide_with_entra_approvers_approve_and_operators_operate():
    for action in ("approve", "reject"):
        assert authorise(action, ANN, Policy()) is None
        assert "ModelOps.Approver app role is required" in authorise(action, OPS, Policy())
    for action in ("abort", "pause", "resume", "promote", "retry", "undo", "freeze", "unfreeze"):
        assert authorise(action, OPS, Policy()) is None
        assert "ModelOps.Operator app role is required" in authorise(action, ANN, Policy())


def test_nobody_approves_a_rollout_they_started_or_whose_model_they_registered():
    assert "started this rollout" in authorise("approve", ANN, Policy(), started_by=["OID-ANN"])
    assert "registered this model version" in authorise("reject", ANN, Policy(), registered_by=["ann@contoso.com"])
    assert authorise("approve", ANN, Policy(), started_by=["oid-bob"], registered_by=["bob@contoso.com"]) is None
    # the rule is about approving: an operator may abort what they started
    assert authorise("abort", OPS, Policy(), started_by=["oid-ops"]) is None


def test_a_function_key_alone_may_do_what_the_setting_lists():
    key = Caller.function_key()
    assert all(authorise(a, key, Policy.from_setting(None)) is None for a in ACTIONS)  # the default: all
    limited = Policy.from_setting(" abort , PAUSE")
    assert authorise("pause", key, limited) is None
    refusal = authorise("approve", key, limited)
    assert "may not approve" in refusal and "abort, pause" in refusal
    assert "allows nothing" in authorise("abort", key, Policy.from_setting("none"))
    with pytest.raises(ValueError, match="unknown action.*deploy"):
        Policy.from_setting("abort,deploy")
    with pytest.raises(ValueError, match="unknown action"):
        authorise("deploy", key, Policy())


def test_the_local_cli_acts_as_the_user_at_the_keyboard():
    me = Caller.local("dev@laptop (cli)")
    assert not me.verified and ANN.verified
    assert authorise("approve", me, Policy.from_setting("none"), started_by=["dev@laptop (cli)"]) is None


def _write_up(home, pid: int, ticks: int, key_required: bool = False) -> None:
    (home / UP_FILE).write_text(json.dumps({"url": "http://127.0.0.1:7071/", "pid": pid, "start_ticks": ticks,
                                            "started": "2026-12-01T00:00:00+00:00", "key_required": key_required}))


def test_the_cli_talks_to_the_function_app_when_its_url_is_set(tmp_path):
    client = remote_app(tmp_path, {"MODELOPS_APP_URL": "https://app.example.net/ ", "MODELOPS_APP_KEY": "k1",
                                   "MODELOPS_APP_TOKEN": "t1"})
    assert client.base_url == "https://app.example.net"
    assert client.headers == {"x-functions-key": "k1", "Authorization": "Bearer t1"}
    assert remote_app(tmp_path, {}) is None  # no URL, no host: in-process


def test_the_cli_talks_to_a_live_host_that_owns_the_home_and_ignores_a_dead_ones_file(tmp_path):
    lease = HomeLease(tmp_path)
    lease.acquire()
    try:
        me = Owner.current()
        _write_up(tmp_path, me.pid, process_start_ticks(me.pid) or 0, key_required=True)
        (tmp_path / KEY_FILE).write_text("secret-key\n")
        client = remote_app(tmp_path, {})
        assert client is not None and client.base_url == "http://127.0.0.1:7071"
        assert client.headers == {"x-functions-key": "secret-key"}
    finally:
        lease.release()
    assert remote_app(tmp_path, {}) is None  # the file outlived its host: the home is free again

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    _write_up(tmp_path, int(dead.stdout), 1)
    assert remote_app(tmp_path, {}) is None
