"""`modelops freeze / freezes / unfreeze`: in-process on the home's store, and through the Function
App's routes when MODELOPS_APP_URL is set (a loopback server standing in for the app records what
the CLI sends; the routes themselves are tested in tests/test_freezes.py). In this process through
Typer's runner (a subprocess per command would cost seconds each); main()'s turning a CliError into
one stderr line is tested in tests/test_cli_input.py."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from typer.testing import CliRunner

from functions.adapters.local.store import DirectoryStore
from functions.cli.main import app
from functions.cli.output import CliError
from tests.conftest import SERVING_PYTHON

MODEL = "credit-card-default"


class Ran:
    def __init__(self, result) -> None:
        self.stdout = result.stdout
        self.error = result.exception if isinstance(result.exception, CliError) else None
        if result.exception is not None and self.error is None and not isinstance(result.exception, SystemExit):
            raise result.exception
        self.returncode = self.error.code if self.error else result.exit_code


def run(home, *args: str, env: dict | None = None) -> Ran:
    base = {"MODELOPS_HOME": str(home), "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON), "MODELOPS_APP_URL": ""}
    return Ran(CliRunner().invoke(app, list(args), env={**base, **(env or {})}))


def assert_one_line_error(ran: Ran, code: int, *fragments: str) -> None:
    assert ran.error is not None and ran.returncode == code, (ran.returncode, ran.stdout)
    assert "\n" not in str(ran.error)
    for fragment in fragments:
        assert fragment in str(ran.error), str(ran.error)


def test_freeze_list_and_unfreeze_in_process_audited(tmp_path):
    home = tmp_path / "home"
    frozen = run(home, "freeze", MODEL, "--for", "2h", "--comment", "incident 4711")
    assert frozen.returncode == 0, frozen.stdout
    assert frozen.stdout.startswith(f"model {MODEL} is frozen until ") and "incident 4711" in frozen.stdout
    listed = json.loads(run(home, "freezes", "--json").stdout)
    assert [f["model"] for f in listed["freezes"]] == [MODEL] and listed["held"] == []
    assert_one_line_error(run(home, "freeze", MODEL, "--for", "soon"), 2, "--until/--for", "duration")
    assert_one_line_error(run(home, "freeze", "nope"), 2, "'nope' is not managed")
    thawed = run(home, "unfreeze", MODEL)
    assert thawed.returncode == 0, thawed.stdout
    assert f"unfrozen {MODEL}" in thawed.stdout
    assert_one_line_error(run(home, "unfreeze", MODEL), 2, f"model {MODEL} is not frozen")
    store = DirectoryStore(home / "store")
    audit = [json.loads(store.get(k)[0]) for k in store.list("operator/")]
    assert [(a["action"], a["outcome"]) for a in audit] == [("freeze", "accepted"), ("unfreeze", "accepted"),
                                                            ("unfreeze", "not_found")]
    assert audit[0]["via"] == "local" and audit[0]["comment"] == "incident 4711"


class _App(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, dict, bytes]] = []

    def _answer(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server's names
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(("POST", self.path, dict(self.headers), body))
        if json.loads(body).get("model") == "refused":
            return self._answer(403, {"error": "a function key alone may not freeze"})
        self._answer(201, {"frozen": "all models are frozen (by function key at now)", "freeze": {}})

    def do_DELETE(self) -> None:  # noqa: N802
        self.seen.append(("DELETE", self.path, dict(self.headers), b""))
        self._answer(200, {"unfrozen": {}, "released": [{"model": MODEL, "version": "3", "outcome": "released"}]})

    def log_message(self, *args) -> None:
        pass


def test_with_the_app_url_the_cli_calls_the_routes_with_the_key(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _App)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        env = {"MODELOPS_APP_URL": f"http://127.0.0.1:{server.server_port}", "MODELOPS_APP_KEY": "k-123"}
        home = tmp_path / "home"
        frozen = run(home, "freeze", "--comment", "change freeze", env=env)
        assert frozen.returncode == 0 and "all models are frozen" in frozen.stdout, frozen.stdout
        thawed = run(home, "unfreeze", MODEL, env=env)
        assert thawed.returncode == 0 and f"{MODEL}:3 released" in thawed.stdout, thawed.stdout
        assert_one_line_error(run(home, "freeze", "refused", env=env), 2, "answered 403", "may not freeze")
    finally:
        server.shutdown()
    (m1, p1, h1, b1), (m2, p2, _, _), _ = _App.seen
    assert (m1, p1) == ("POST", "/api/freezes") and h1["x-functions-key"] == "k-123"
    assert json.loads(b1) == {"model": None, "until": None, "comment": "change freeze"}
    assert (m2, p2) == ("DELETE", f"/api/freezes?model={MODEL}")
    assert not (home / "store").exists()  # nothing ran in-process


def test_the_operations_timers_run_from_the_cli_in_process(tmp_path):
    """`timers run freezes` ends an expired freeze (its end audited by the release); `timers run
    retention` applies the retention settings to the home's store."""
    home = tmp_path / "home"
    store = DirectoryStore(home / "store")
    store.put("operator/2020-01-01/000000000000-deadbeef-freeze.json", json.dumps(
        {"action": "freeze", "model": MODEL, "rollout_id": None, "at": "2020-01-01T00:00:00+00:00"}).encode())
    kept = run(home, "timers", "run", "retention", "--json", env={"MODELOPS_RETENTION_DAYS": '{"audit": 0}'})
    assert kept.returncode == 0 and json.loads(kept.stdout)["deleted"] == {}, kept.stdout  # 0: kept forever
    ran = run(home, "timers", "run", "retention", "--json")
    assert ran.returncode == 0 and json.loads(ran.stdout)["deleted"] == {"audit": 1}, ran.stdout
    assert store.list("operator/2020-01-01/") == []

    from functions.services.freezes import Freezes

    assert run(home, "freeze", MODEL, "--for", "2h").returncode == 0
    released = run(home, "timers", "run", "freezes", "--json")
    assert released.returncode == 0, released.stdout
    assert [f["model"] for f in json.loads(run(home, "freezes", "--json").stdout)["freezes"]] == [MODEL]  # in force
    Freezes(store).freeze(MODEL, by="ops", until="2020-01-01T00:00:00+00:00")  # one that has run out
    assert [f.model for f in Freezes(store).active(include_expired=True)] == [MODEL]
    assert run(home, "timers", "run", "freezes", "--json").returncode == 0
    assert Freezes(store).active(include_expired=True) == []  # the timer ended it
    assert_one_line_error(run(home, "timers", "run", "nope"), 2, "unknown timer 'nope'", "retention", "freezes")


def test_status_says_a_model_is_frozen_and_which_versions_it_holds(tmp_path):
    from functions.domain.decisions import Decision
    from functions.services.freezes import Freezes

    home = tmp_path / "home"
    assert run(home, "freeze", MODEL, "--comment", "incident 4711").returncode == 0
    freezes = Freezes(DirectoryStore(home / "store"))
    for version in ("10", "9"):
        freezes.hold({"id": f"e-{version}"}, Decision(action="held", reason="frozen", model=MODEL, version=version,
                                                       run_key=f"r-{version}", event_id=f"e-{version}"))
    view = json.loads(run(home, "status", "--json").stdout)
    [item] = [m for m in view["models"] if m["model"] == MODEL]
    assert "incident 4711" in item["frozen"] and item["held"] == ["9", "10"]
    shown = run(home, "status").stdout
    assert f"model {MODEL} is frozen" in shown and "held while frozen: version(s) 9, 10" in shown
