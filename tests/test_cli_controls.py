"""The control verbs as a user runs them (subprocesses): without a host nothing runs a rollout, so
the store answers — 409 naming the state, 404 for an unknown id — in one line, audited, without
taking the home; with MODELOPS_APP_URL the command posts to the Function App's route (a loopback
stand-in records what arrives)."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from functions.adapters.local.store import DirectoryStore
from functions.services.operator_audit import actions_for
from functions.services.records import RolloutStore
from functions.settings import REPO_ROOT
from tests.test_cli_input import CLI, assert_one_line_error, cli_env

MODEL = "credit-card-default"


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120, env=env, cwd=REPO_ROOT,
                          stdin=subprocess.DEVNULL)


def test_without_a_host_the_store_answers_in_one_line_audited_and_the_home_is_not_taken(tmp_path):
    home = tmp_path / "home"
    rollouts = RolloutStore(DirectoryStore(home / "store"))
    rollouts.claim({"run_key": "r-1", "model": MODEL, "version": "1", "reason": "t"}, {}, "2026-12-01T20:00:00+00:00")
    rollouts.finish({"id": "r-1", "model": MODEL, "version": "1"}, {"state": "succeeded"}, "2026-12-01T20:05:00+00:00")
    done = cli(cli_env(home), "rollouts", "abort", "r-1", "--comment", "too late")
    assert_one_line_error(done, 1, "409", "rollout r-1 is succeeded: nothing to abort")
    unknown = cli(cli_env(home), "rollouts", "pause", "nope")
    assert_one_line_error(unknown, 2, "404", "no rollout 'nope'")
    audit = actions_for(DirectoryStore(home / "store"), None, None)
    assert [(a["action"], a["outcome"], a["via"], a["comment"]) for a in audit] == \
        [("abort", "invalid", "local", "too late"), ("pause", "not_found", "local", "")]
    assert not (home / "owner.json").exists() and not (home / ".owner.lock").exists()  # never acquired


class _App(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"null")
        _App.seen.append((self.path, dict(self.headers), body))
        data = json.dumps({"rollout_id": "r-9", "action": "promote"}).encode()
        self.send_response(202)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_with_the_function_app_url_the_command_posts_to_its_route(tmp_path):
    _App.seen.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**cli_env(tmp_path / "home"), "MODELOPS_APP_URL": f"http://127.0.0.1:{server.server_address[1]}",
               "MODELOPS_APP_KEY": "k-123"}
        env.pop("MODELOPS_APP_TOKEN", None)
        env.pop("MODELOPS_APP_SCOPE", None)
        out = cli(env, "rollouts", "promote", "r-9", "--full", "--comment", "hotfix")
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr
    ((path, headers, body),) = _App.seen
    assert path == "/api/rollouts/r-9/actions/promote" and body == {"comment": "hotfix", "full": True}
    assert headers.get("x-functions-key") == "k-123"
    assert not (tmp_path / "home").exists()  # nothing local



def test_status_watch_redraws_every_second_until_ctrl_c_and_exits_0(tmp_path, monkeypatch):
    """In-process (typer's runner): the one-second sleep between redraws is where Ctrl-C lands."""
    import time

    from typer.testing import CliRunner

    from functions.cli.main import app

    home = tmp_path / "home"
    rollouts = RolloutStore(DirectoryStore(home / "store"))
    rollouts.set_production({"id": "r-1", "model": MODEL, "version": "1"}, "ccd-1", {"ccd-1": 100},
                            "2026-12-01T20:00:00+00:00")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            raise KeyboardInterrupt
        rollouts.set_production({"id": "r-2", "model": MODEL, "version": "2"}, "ccd-2", {"ccd-2": 100},
                                "2026-12-01T21:00:00+00:00")  # what the next redraw must show

    monkeypatch.setattr(time, "sleep", sleep)
    for name in ("MODELOPS_APP_URL", "MODELOPS_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODELOPS_HOME", str(home))
    result = CliRunner().invoke(app, ["status", "--watch"])
    assert result.exit_code == 0, result.output
    assert sleeps == [1.0, 1.0, 1.0]
    assert f"{MODEL}: production 2 (ccd-2) since 2026-12-01T21:00:00+00:00" in result.output


def test_the_host_routes_an_action_named_retry_to_the_actions_route_as_aspnet_does():
    """POST /api/rollouts/r-1/actions/retry matches rollouts/{model}/{version}/retry too; ASP.NET
    Core's route precedence (segment by segment: a literal before a parameter) picks the actions
    route in Azure, and `modelops up` (functions/cli/function_host.py) must pick the same."""
    from functions.cli.function_host import Function, http_routes

    def fn(name: str, route: str) -> Function:
        return Function(name, "httpTrigger", {"route": route, "methods": ["POST"], "authLevel": "FUNCTION"}, "req",
                        (), lambda req: None)

    routes = http_routes([fn("rollout_retry", "rollouts/{model}/{version}/retry"),
                          fn("rollout_action", "rollouts/{rollout_id}/actions/{action}")], "api")
    path = "/api/rollouts/r-1/actions/retry"
    first = next(r for r in routes if r.pattern.fullmatch(path))
    assert first.function.name == "rollout_action"
    assert first.pattern.fullmatch(path).groupdict() == {"rollout_id": "r-1", "action": "retry"}
    other = next(r for r in routes if r.pattern.fullmatch("/api/rollouts/m/2/retry"))
    assert other.function.name == "rollout_retry"


def test_retry_model_version_beside_the_function_app_posts_to_its_retry_route(tmp_path):
    _App.seen.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {**cli_env(tmp_path / "home"), "MODELOPS_APP_URL": f"http://127.0.0.1:{server.server_address[1]}"}
        for name in ("MODELOPS_APP_KEY", "MODELOPS_APP_TOKEN", "MODELOPS_APP_SCOPE"):
            env.pop(name, None)
        out = cli(env, "rollouts", "retry", MODEL, "3", "--comment", "data fixed")
    finally:
        server.shutdown()
        server.server_close()
    assert out.returncode == 0, out.stderr
    ((path, _, body),) = _App.seen
    assert path == f"/api/rollouts/{MODEL}/3/retry" and body["comment"] == "data fixed" and body["by"].endswith("(cli)")
