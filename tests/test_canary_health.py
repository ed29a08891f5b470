"""Canary health: no data is not success, only 5xx count against a deployment, a health query that
cannot answer fails closed. Pure judging by direct call; the workflow on the in-memory fakes
through the local driver (real, short timers)."""

from __future__ import annotations

import pytest

from functions.services import activities
from functions.domain.config import CanaryConfig, ConfigError, deployment_name, load_managed_models
from functions.domain.gates import judge_health
from functions.ports import PlatformError
from tests.test_workflow import GOOD, MODEL, Harness, _score_contract  # noqa: F401 (autouse fixture)

V1, V2 = deployment_name(MODEL, "1"), deployment_name(MODEL, "2")


# --- the pure verdict -----------------------------------------------------------------------------

@pytest.mark.parametrize("requests", [0, 1, 19])
def test_fewer_requests_than_the_minimum_is_insufficient_not_healthy(requests):
    verdict, reason = judge_health(requests, 0, 10.0, CanaryConfig(min_requests=20))
    assert verdict == "insufficient"
    assert f"{requests} request(s)" in reason and "20 needed" in reason


def test_a_window_without_requests_is_never_healthy_whatever_the_minimum():
    # even a config object that slipped past validation with 0 cannot make silence a pass
    assert judge_health(0, 0, None, CanaryConfig(min_requests=0))[0] == "insufficient"


def test_enough_requests_are_judged_on_5xx_rate_and_p90():
    cfg = CanaryConfig(min_requests=20, max_error_rate=0.05, max_p90_ms=500.0)
    assert judge_health(20, 1, 100.0, cfg)[0] == "healthy"
    assert judge_health(20, 2, 100.0, cfg) == ("unhealthy", "error rate 10.0% (2/20) > 5.0%")
    assert judge_health(20, 0, 900.0, cfg) == ("unhealthy", "p90 900 ms > 500 ms")


def test_defaults_need_traffic_and_bound_the_wait():
    cfg = load_managed_models(None).get(MODEL).canary
    assert cfg.min_requests >= 1 and cfg.max_bake_seconds >= cfg.bake_seconds


@pytest.mark.parametrize("canary, message", [
    ({"min_requests": 0}, "min_requests must be at least 1"),
    ({"bake_seconds": 60.0, "max_bake_seconds": 30.0}, "max_bake_seconds (30) must be at least bake_seconds (60)"),
])
def test_a_canary_config_that_could_pass_blind_is_refused(canary, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_managed_models(None, {"canary": canary})


# --- the workflow ---------------------------------------------------------------------------------

def _health_steps(h: Harness, out: dict) -> list[dict]:
    return [r["details"] for r in h.rollouts.trail(MODEL, out["id"]) if r["step"] == "health"]


def test_a_canary_nobody_calls_is_rolled_back_after_the_longest_bake_not_promoted():
    h = Harness({"1": GOOD, "2": GOOD}, {"canary": {"bake_seconds": 0.05, "max_bake_seconds": 0.15}})
    h.roll("1")
    h.health.figures[V2] = (0, 0, 0.0)  # a quiet endpoint, a missing diagnostic setting, ingestion lag
    out = h.roll("2")
    assert out["state"] == "rolled_back", out
    assert "health check failed at 10%" in out["reason"] and "not enough traffic" in out["reason"]
    assert "0 request(s)" in out["reason"]
    endpoint = h.config.production_endpoint
    assert h.production.live(endpoint) == {V1: 100}  # the champion keeps serving
    assert (endpoint, V2) in h.production.deleted
    assert h.rollouts.production(MODEL)["version"] == "1"
    health = _health_steps(h, out)
    # 0.05 s, extended twice by 0.05 s up to 0.15 s: three looks, the last one final
    assert [d.get("extended", False) for d in health] == [True, True, False]
    assert all(d["verdict"] == "insufficient" for d in health)
    assert health[-1]["figures"]["baked_seconds"] == pytest.approx(0.15)
    # each extended look covers the whole step so far: the window start never moves
    starts = {start for (deployment, start, end) in h.health.calls if deployment == V2}
    assert len(starts) == 1


def test_traffic_that_arrives_during_an_extension_lets_the_canary_through():
    h = Harness({"1": GOOD, "2": GOOD}, {"canary": {"bake_seconds": 0.05, "max_bake_seconds": 1.0}})
    h.roll("1")
    looks = {"n": 0}

    def warming_up(deployment, start, end):  # the first look at each step sees too little
        looks["n"] += 1
        return (5, 0, 12.0) if looks["n"] % 2 == 1 else (60, 0, 12.0)

    h.health.figures[V2] = warming_up
    out = h.roll("2")
    assert out["state"] == "succeeded", out
    health = _health_steps(h, out)
    assert [d["verdict"] for d in health] == ["insufficient", "healthy"] * 3


def test_with_a_bake_of_zero_there_is_no_extension_and_silence_fails_at_once():
    h = Harness({"1": GOOD, "2": GOOD})  # bake_seconds 0: max_bake defaults higher but nothing to wait for
    h.roll("1")
    h.health.figures[V2] = (3, 0, 10.0)
    out = h.roll("2")
    assert out["state"] == "rolled_back" and "3 request(s)" in out["reason"]
    assert len(_health_steps(h, out)) == 1


def test_client_errors_are_reported_but_never_roll_a_healthy_canary_back():
    h = Harness({"1": GOOD, "2": GOOD}, {"canary": {"max_error_rate": 0.01}})
    h.roll("1")
    h.health.figures[V2] = (200, 0, 15.0, 180)  # a client sending garbage: 180 answers of 4xx
    out = h.roll("2")
    assert out["state"] == "succeeded", out
    figures = _health_steps(h, out)[0]["figures"]
    assert figures["client_errors"] == 180 and figures["errors"] == 0


def test_a_health_query_that_keeps_failing_fails_closed(monkeypatch):
    monkeypatch.setattr(activities.time, "sleep", lambda seconds: None)
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    h.health.fail = lambda: PlatformError("Log Analytics answered 503", transient=True)
    out = h.roll("2")
    assert out["state"] == "rolled_back", out
    assert "health query failed after 3 attempt(s)" in out["reason"] and "503" in out["reason"]
    assert h.production.live(h.config.production_endpoint) == {V1: 100}
    assert len(h.health.calls) == activities.HEALTH_QUERY_ATTEMPTS


def test_a_permanent_health_query_error_is_not_retried_and_fails_closed(monkeypatch):
    monkeypatch.setattr(activities.time, "sleep", lambda seconds: None)
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    h.health.fail = lambda: PlatformError("HTTP 403 not authorized")
    out = h.roll("2")
    assert out["state"] == "rolled_back" and "after 1 attempt(s)" in out["reason"]
    assert len(h.health.calls) == 1


def test_a_transient_health_query_failure_is_retried(monkeypatch):
    slept: list[float] = []
    monkeypatch.setattr(activities.time, "sleep", slept.append)
    h = Harness({"1": GOOD, "2": GOOD})
    h.roll("1")
    failures = iter([PlatformError("timeout", transient=True)])
    h.health.fail = lambda: next(failures)
    original = h.health.stats

    def flaky(*args, **kwargs):
        try:
            return original(*args, **kwargs)
        except StopIteration:  # the one failure is spent: answer from now on
            h.health.fail = None
            return original(*args, **kwargs)

    h.health.stats = flaky
    out = h.roll("2")
    assert out["state"] == "succeeded", out
    assert slept == [1.0]
