"""Per-action authorisation of operator requests (App.caller / App.authorise) with locally
generated Entra tokens: a local RSA key, its JWKS served by a fake fetcher (as tests/test_entra.py),
tokens shaped like Entra ID v2 access tokens for a user (oid, preferred_username, roles: the app
roles assigned to the user, https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference).
Every refusal is audited in the store (operator/...)."""

from __future__ import annotations

import json
import time

import jwt
import pytest

from functions.bootstrap import build_app
from functions.adapters.azure.entra import EntraValidator
from functions.domain.authorisation import APPROVER_ROLE, OPERATOR_ROLE
from functions.ports import AuthError
from functions.settings import Settings, SettingsError
from tests.test_entra import KEYS, TENANT, V2_ISS, FakeJWKS

AUDIENCE = "api://modelops-operators"


def token(*, roles=(), oid="oid-ann", upn="ann@contoso.com", aud=AUDIENCE, kid="k1", key=None, exp=3600) -> str:
    now = int(time.time())
    claims = {"iss": V2_ISS, "aud": aud, "iat": now, "nbf": now, "exp": now + exp, "tid": TENANT, "oid": oid,
              "preferred_username": upn, "name": upn.split("@")[0].title(), "roles": list(roles), "ver": "2.0"}
    return jwt.encode(claims, key or KEYS[kid], algorithm="RS256", headers={"kid": kid})


def bearer(t: str) -> dict:
    return {"Authorization": f"Bearer {t}"}


@pytest.fixture
def app_(tmp_path):
    application = build_app(Settings(home=tmp_path / "home", operator_audience=AUDIENCE, operator_tenant_id=TENANT,
                                     key_actions="abort,pause,freeze"))
    application.__dict__["_operator_validator"] = EntraValidator(TENANT, AUDIENCE, jwks_fetcher=FakeJWKS("k1"))
    return application


def audited(application) -> list[dict]:
    store = application.store
    return [json.loads(store.get(k)[0]) for k in store.list("operator/")]


ROLLOUT = {"id": "rollout-m-2-abc", "model": "m", "version": "2", "started_by": "oid-bob", "registered_by": "carl"}


def test_app_roles_on_the_token_decide_and_the_identity_is_the_users(app_):
    who = app_.authorise("approve", bearer(token(roles=[APPROVER_ROLE])), model="m", rollout=ROLLOUT)
    assert (who.identity, who.via, who.roles) == ("ann@contoso.com", "entra", (APPROVER_ROLE,))
    assert "oid-ann" in who.ids
    with pytest.raises(AuthError) as refused:
        app_.authorise("abort", bearer(token(roles=[APPROVER_ROLE])), model="m", rollout=ROLLOUT)
    assert refused.value.status == 403 and "ModelOps.Operator app role is required" in refused.value.message
    assert app_.authorise("abort", bearer(token(roles=[OPERATOR_ROLE])), model="m", rollout=ROLLOUT).verified
    [record] = audited(app_)
    assert (record["action"], record["outcome"], record["status"]) == ("abort", "refused", 403)
    assert record["by"] == "ann@contoso.com" and record["rollout_id"] == "rollout-m-2-abc"


def test_nobody_approves_what_they_started_or_registered(app_):
    started = {**ROLLOUT, "started_by": "OID-ANN"}
    with pytest.raises(AuthError, match="started this rollout"):
        app_.authorise("approve", bearer(token(roles=[APPROVER_ROLE])), model="m", rollout=started)
    registered = {**ROLLOUT, "registered_by": "ann@contoso.com"}
    with pytest.raises(AuthError, match="registered this model version"):
        app_.authorise("reject", bearer(token(roles=[APPROVER_ROLE])), model="m", rollout=registered)
    assert [r["reason"] for r in audited(app_)][0].startswith("ann@contoso.com")


def test_who_registered_comes_from_the_registry_when_the_rollout_does_not_say(app_, tmp_path):
    artifact = tmp_path / "artifact"  # the registry keeps files; none is read here
    artifact.mkdir()
    (artifact / "model_card.json").write_text("{}")
    ref, _ = app_.local.workspace.register(artifact, "m", emit=False, registered_by="ann@contoso.com")
    assert app_.local.workspace.get("m", ref.version).registered_by == "ann@contoso.com"
    rollout = {"id": "r-1", "model": "m", "version": ref.version}
    with pytest.raises(AuthError, match="registered this model version"):
        app_.authorise("approve", bearer(token(roles=[APPROVER_ROLE])), model="m", rollout=rollout)
    assert app_.authorise("approve", bearer(token(roles=[APPROVER_ROLE], oid="oid-dan", upn="dan@contoso.com")),
                          model="m", rollout=rollout).identity == "dan@contoso.com"


def test_a_function_key_alone_may_do_what_the_setting_lists(app_):
    assert app_.authorise("pause", {}, model="m").via == "function key"
    with pytest.raises(AuthError) as refused:
        app_.authorise("approve", {"x-functions-key": "k"}, model="m", rollout=ROLLOUT)
    assert refused.value.status == 403 and "MODELOPS_KEY_ACTIONS allows abort, freeze, pause" in refused.value.message
    assert audited(app_)[0]["by"] == "function key"


@pytest.mark.parametrize("bad, words", [
    (lambda: token(roles=[OPERATOR_ROLE], aud="api://other"), "audience"),
    (lambda: token(roles=[OPERATOR_ROLE], exp=-600), "expired"),
    (lambda: token(roles=[OPERATOR_ROLE], kid="k2"), "signing key"),  # a key the tenant does not publish
])
def test_an_invalid_token_is_401_and_audited(app_, bad, words):
    with pytest.raises(AuthError) as refused:
        app_.authorise("abort", bearer(bad()), model="m")
    assert refused.value.status == 401 and words in refused.value.message
    [record] = audited(app_)
    assert record["status"] == 401 and record["by"] == "unauthenticated"


def test_entra_off_every_request_is_the_function_key_and_settings_fail_closed(tmp_path):
    off = build_app(Settings(home=tmp_path / "h1"))
    assert off.caller(bearer(token(roles=[APPROVER_ROLE]))).via == "function key"
    no_tenant = build_app(Settings(home=tmp_path / "h2", operator_audience=AUDIENCE))
    with pytest.raises(SettingsError, match="MODELOPS_OPERATOR_TENANT_ID"):
        no_tenant.caller(bearer("x.y.z"))
    with pytest.raises(SettingsError, match="unknown action"):
        build_app(Settings(home=tmp_path / "h3", key_actions="abort,deploy")).authorisation
    assert Settings.from_env({"MODELOPS_KEY_ACTIONS": "abort", "MODELOPS_OPERATOR_AUDIENCE": AUDIENCE}).key_actions == "abort"


def test_the_check_answers_without_auditing_for_callers_that_audit_every_answer(app_):
    who, reason = app_.authorisation_check("approve", bearer(token(roles=[APPROVER_ROLE])), model="m",
                                           rollout={**ROLLOUT, "started_by": "ann@contoso.com"})
    assert who.identity == "ann@contoso.com" and "started this rollout" in reason
    assert app_.authorisation_check("abort", {}, model="m")[1] is None  # the key may abort
    assert audited(app_) == []


def test_who_asked_for_a_retry_is_its_started_by_and_may_not_approve_it(app_):
    from datetime import datetime, timezone

    from functions.domain.config import load_managed_models
    from functions.services.handoff import accept_retry

    rollouts, managed = app_.rollouts, load_managed_models(None)
    first = {"run_key": "rollout-credit-card-default-2-abc", "model": "credit-card-default", "version": "2",
             "reason": "test"}
    rollouts.claim(first, {"event_id": "e-1", "topic": "t"}, datetime.now(timezone.utc).isoformat())
    rollouts.finish({"model": "credit-card-default", "id": first["run_key"], "version": "2"},
                    {"state": "rejected", "reason": "gate failed"}, datetime.now(timezone.utc).isoformat())
    answer = accept_retry("credit-card-default", "2", managed, rollouts, by="ann@contoso.com")
    assert answer.status == 202
    record = rollouts.get("credit-card-default", answer.decision.run_key)
    assert record["started_by"] == "ann@contoso.com" and record["state"] == "running"
    _, reason = app_.authorisation_check("approve", bearer(token(roles=[APPROVER_ROLE])), model="credit-card-default",
                                         rollout={**record, "registered_by": "carl"})
    assert "started this rollout" in reason
