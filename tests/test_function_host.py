"""What `modelops up` does with one request (functions/cli/function_host.py), without a socket: the
functions come from a small azure.functions app declared here, the way function_app.py declares the
real one, so discovery is exercised too. The real host as a process: tests/test_up.py."""

from __future__ import annotations

import json
import threading
import time

import azure.durable_functions as df
import azure.functions as func
import pytest

from functions.cli.function_host import FunctionHost, discover, timer_schedules
from functions.cli.through_host import wait_for_rollouts
from functions.cli.output import CliError

calls: list[tuple[str, object]] = []
release = threading.Event()


def _app() -> df.DFApp:
    app = df.DFApp(http_auth_level=func.AuthLevel.FUNCTION)

    @app.function_name("open_door")
    @app.route(route="door", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
    def open_door(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse(json.dumps({"open": True}), mimetype="application/json")

    @app.function_name("item")
    @app.route(route="things/{name}/{part?}", methods=["GET"])
    def item(req: func.HttpRequest) -> func.HttpResponse:
        calls.append(("item", dict(req.route_params)))
        return func.HttpResponse(json.dumps(dict(req.route_params)), status_code=200)

    @app.function_name("special")
    @app.route(route="things/special", methods=["GET"])
    def special(req: func.HttpRequest) -> func.HttpResponse:
        return func.HttpResponse("special")

    @app.function_name("act")
    @app.route(route="things/{name}", methods=["POST"])
    @app.durable_client_input(client_name="client")
    async def act(req: func.HttpRequest, client) -> func.HttpResponse:
        calls.append(("act", client))
        return func.HttpResponse(req.get_body(), status_code=202)

    @app.function_name("broken")
    @app.route(route="broken", methods=["GET"])
    def broken(req: func.HttpRequest) -> func.HttpResponse:
        raise RuntimeError("boom")

    @app.function_name("on_event")
    @app.event_grid_trigger(arg_name="event")
    def on_event(event: func.EventGridEvent) -> None:
        calls.append(("on_event", (event.id, event.event_type, event.get_json())))
        if event.get_json() == {"fail": True}:
            raise RuntimeError("transient")

    @app.function_name("tick")
    @app.timer_trigger(arg_name="timer", schedule="0 5 * * * *")
    def tick(timer: func.TimerRequest) -> None:
        calls.append(("tick", timer.past_due))
        release.wait(30)

    return app


FUNCTIONS = discover(_app())


@pytest.fixture
def host():
    calls.clear()
    release.set()
    return FunctionHost(FUNCTIONS, route_prefix="api")


def ask(host: FunctionHost, method: str, target: str, body: bytes = b"", **headers: str):
    answer = host.handle(method, target, headers, body, "http://127.0.0.1:1")
    try:
        return answer.status, json.loads(answer.body) if answer.body else None, answer
    except ValueError:
        return answer.status, answer.body.decode(), answer


def test_discovery_reads_each_trigger_from_the_app():
    kinds = {fn.name: fn.trigger_type for fn in FUNCTIONS}
    assert kinds == {"open_door": "httpTrigger", "item": "httpTrigger", "special": "httpTrigger", "act": "httpTrigger",
                     "broken": "httpTrigger", "on_event": "eventGridTrigger", "tick": "timerTrigger"}
    assert next(fn for fn in FUNCTIONS if fn.name == "act").other_inputs == ("client",)


def test_route_params_optional_segments_and_literal_precedence(host):
    assert ask(host, "GET", "/api/things/a/b")[:2] == (200, {"name": "a", "part": "b"})
    assert ask(host, "GET", "/api/things/a")[:2] == (200, {"name": "a"})
    assert ask(host, "GET", "/api/things/special")[:2] == (200, "special")  # the literal route wins


def test_the_same_path_with_another_method_goes_to_its_own_function(host):
    status, body, _ = ask(host, "POST", "/api/things/a", b'{"x": 1}')
    assert (status, body) == (202, {"x": 1})
    assert calls == [("act", None)]  # awaited, with the durable client None (the local driver ignores it)


def test_unknown_paths_wrong_methods_and_failures(host):
    assert ask(host, "GET", "/api/nowhere")[0] == 404
    status, body, answer = ask(host, "DELETE", "/api/door")
    assert status == 405 and answer.headers["Allow"] == "GET" and "DELETE" in body["error"]
    status, body, _ = ask(host, "GET", "/api/broken")
    assert status == 500 and "RuntimeError: boom" in body["error"]


def test_a_key_guards_every_route_but_anonymous_ones(host):
    keyed = FunctionHost(FUNCTIONS, key="k3y", key_hint="/home/up-key")
    assert ask(keyed, "GET", "/api/door")[0] == 200
    status, body, _ = ask(keyed, "GET", "/api/things/a")
    assert status == 401 and "/home/up-key" in body["error"] and "k3y" not in body["error"]
    assert ask(keyed, "GET", "/api/things/a", **{"x-functions-key": "k3y"})[0] == 200
    assert ask(keyed, "GET", "/api/things/a?code=k3y")[0] == 200
    assert ask(keyed, "POST", "/admin/functions/tick", b'{"input": ""}')[0] == 401
    assert ask(keyed, "POST", "/runtime/webhooks/eventgrid?functionName=on_event", b"[]",
               **{"aeg-event-type": "Notification"})[0] == 401


def test_event_grid_notifications_reach_the_trigger_and_a_failure_is_500(host):
    events = [{"id": "e1", "topic": "t", "subject": "s", "eventType": "Kind", "eventTime": "2026-12-01T10:00:00.1234567Z",
               "data": {"n": 1}, "dataVersion": "1"}]
    target = "/runtime/webhooks/eventgrid?functionName=on_event"
    status, body, _ = ask(host, "POST", target, json.dumps(events).encode(), **{"aeg-event-type": "Notification"})
    assert (status, body) == (202, None)
    assert calls == [("on_event", ("e1", "Kind", {"n": 1}))]
    failing = [{**events[0], "data": {"fail": True}}]
    status, body, _ = ask(host, "POST", target, json.dumps(failing).encode(), **{"aeg-event-type": "Notification"})
    assert status == 500 and "transient" in body
    assert ask(host, "POST", target, b"not json", **{"aeg-event-type": "Notification"})[0] == 400
    assert ask(host, "POST", target, b"[{}]", **{"aeg-event-type": "SubscriptionValidation"})[0] == 400
    status, body, _ = ask(host, "POST", target, b"[]", **{"aeg-event-type": "Unsubscribe"})
    assert status == 202


def test_admin_invoke_runs_a_timer_in_the_background_and_never_twice_at_once(host):
    release.clear()
    assert ask(host, "POST", "/admin/functions/TICK", b'{"input": ""}')[0] == 202  # names: case-insensitive
    assert ask(host, "POST", "/admin/functions/tick", b'{"input": ""}')[0] == 202
    second = host.background[-1]
    deadline = time.monotonic() + 30
    while not calls and time.monotonic() < deadline:  # the first run has started (and holds on in release.wait)
        time.sleep(0.01)
    second.join(0.2)
    assert calls == [("tick", False)] and second.is_alive()  # the second waits for the first: one at a time
    release.set()
    host.join(30)
    assert calls == [("tick", False), ("tick", False)]
    assert ask(host, "POST", "/admin/functions/tick", b"")[0] == 400
    assert ask(host, "GET", "/admin/functions/tick")[0] == 405
    assert ask(host, "POST", "/admin/functions/item", b'{"input": ""}')[0] == 400  # an HTTP function


def test_admin_invoke_hands_an_event_grid_function_its_input_event(host):
    event = {"id": "e9", "eventType": "Kind", "subject": "s", "data": {"n": 9}, "dataVersion": "1"}
    answer = ask(host, "POST", "/admin/functions/on_event", json.dumps({"input": json.dumps(event)}).encode())
    assert answer[0] == 202
    host.join(30)
    assert calls == [("on_event", ("e9", "Kind", {"n": 9}))]
    assert ask(host, "POST", "/admin/functions/on_event", b'{"input": "not an event"}')[0] == 400


def test_schedules_come_from_the_decorators_unless_overridden():
    assert timer_schedules(FUNCTIONS, {})["tick"].expression == "0 5 * * * *"
    assert timer_schedules(FUNCTIONS, {"Tick": "*/2 * * * * *"})["tick"].expression == "*/2 * * * * *"
    with pytest.raises(ValueError, match=r"no timer 'tock' \(timers: tick\)"):
        timer_schedules(FUNCTIONS, {"tock": "* * * * * *"})
    with pytest.raises(ValueError, match="minute field '61'"):
        timer_schedules(FUNCTIONS, {"tick": "0 61 * * * *"})


class FakeClient:
    """AppClient's call(): answers GET /api/rollouts/{model}/{id} from a list of states."""
    where = "the fake host"

    def __init__(self, states: list[str]) -> None:
        self.states = states

    def call(self, method: str, path: str, **_: object):
        state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return 200, {"id": path.rsplit("/", 1)[1], "model": "m", "version": "1", "state": state, "reason": "why"}


def test_waiting_for_a_rollout_on_the_host_polls_until_it_ends(monkeypatch):
    monkeypatch.setattr("functions.cli.through_host.POLL_SECONDS", 0.0)
    client = FakeClient(["running", "running", "succeeded"])
    assert wait_for_rollouts(client, [("m", "rollout-m-1")], timeout=30) == [
        {"id": "rollout-m-1", "model": "m", "version": "1", "state": "succeeded", "reason": "why"}]
    with pytest.raises(CliError, match="still running on the fake host after 0 s: rollout-m-1"):
        wait_for_rollouts(FakeClient(["running"]), [("m", "rollout-m-1")], timeout=0)


# --- `modelops up`'s own decisions (functions/cli/up_command.py) ---------------------------------

def test_loopback_addresses_need_no_key_and_others_do():
    from functions.cli.up_command import is_loopback, url_for

    assert all(is_loopback(a) for a in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(a) for a in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    assert url_for("0.0.0.0", 7071) == "http://127.0.0.1:7071" and url_for("::1", 80) == "http://[::1]:80"


def test_the_host_key_is_made_once_private_and_kept(tmp_path):
    import os
    import stat

    from functions.cli.up_command import host_key

    key = host_key(tmp_path)
    assert len(key) >= 32 and stat.S_IMODE((tmp_path / "up-key").stat().st_mode) == 0o600
    os.chmod(tmp_path / "up-key", 0o644)
    assert host_key(tmp_path) == key and stat.S_IMODE((tmp_path / "up-key").stat().st_mode) == 0o600


@pytest.mark.parametrize("schedule, words", [
    (["export_inference_logs"], "--schedule 'export_inference_logs': give NAME=NCRONTAB"),
    (["nightly=0 0 0 * * *"], "no timer 'nightly' (timers: "),
    (["drift_check=0 0 24 * * *"], "the hour field '24' is outside 0-23"),
])
def test_up_refuses_a_bad_schedule_before_it_takes_the_home(tmp_path, monkeypatch, schedule, words):
    from functions.cli.up_command import up

    monkeypatch.setenv("MODELOPS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MODELOPS_PLATFORM", raising=False)
    with pytest.raises(CliError) as refused:
        up(port=0, bind="127.0.0.1", schedule=schedule, no_timers=False)
    assert words in str(refused.value) and refused.value.code == 2
    assert not (tmp_path / "home" / "owner.json").exists()


def test_events_and_register_talk_only_to_a_host_of_their_own_home(tmp_path, monkeypatch):
    """They decide from and write to this home: a Function App named by MODELOPS_APP_URL is not it."""
    from functions.cli.through_host import local_host, running_host
    from functions.settings import Settings

    monkeypatch.setenv("MODELOPS_APP_URL", "https://app.example.net")
    settings = Settings.from_env({"MODELOPS_HOME": str(tmp_path)})
    assert running_host(settings).base_url == "https://app.example.net"
    assert local_host(settings) is None
