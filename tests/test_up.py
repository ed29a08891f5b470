"""`modelops up` as a real process: the README's curl examples, the Event Grid webhook, admin
invoke, timers on a schedule, keys beyond loopback, the CLI beside it, and a stop that leaves
nothing behind (no port, no child process, no up.json).

One host per home for the whole module (a free port: --port 0, the URL read from up.json); its
production endpoint is one real inference server the host brings back when it opens the home.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import stat
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests

from functions.adapters.local.endpoints import LocalEndpoints, read_states
from functions.ports import DeploymentSpec, ModelRef
from functions.settings import REPO_ROOT
from tests.waiting import wait_for
from tests.conftest import SERVING_PYTHON, require_serving_env

pytestmark = pytest.mark.integration
MODEL = "credit-card-default"
PROD = "credit-card-default-prod"
HANG_GUARD = 120.0  # seconds: only for something that never happens


class Host:
    def __init__(self, home: Path, *args: str) -> None:
        self.home = home
        self.env = {**os.environ, "MODELOPS_HOME": str(home), "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON),
                    "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
        self.env.pop("MODELOPS_APP_URL", None)
        self.log = home.parent / f"{home.name}-up.log"
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "functions.cli.main", "up", "--port", "0", *args],
                                            cwd=REPO_ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        self.up = wait_for(self._listening, HANG_GUARD, "up.json", self.process, self.output)
        self.url = self.up["url"]
        self.port = int(self.url.rsplit(":", 1)[1])

    def _listening(self):
        try:
            up = json.loads((self.home / "up.json").read_text())
        except (OSError, ValueError):
            return None
        return up if up.get("pid") == self.process.pid else None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "functions.cli.main", *args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=HANG_GUARD)

    def stop(self, signum: int) -> int:
        self.process.send_signal(signum)
        return self.process.wait(HANG_GUARD)


def listening(port: int) -> bool:
    return any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
               for c in psutil.net_connections(kind="tcp"))


@pytest.fixture(scope="module")
def host(tmp_path_factory, artifact_dir):
    """A host on a home whose production endpoint was recorded by an earlier owner (one real
    inference server), every export timer run on a per-second schedule."""
    require_serving_env()
    home = tmp_path_factory.mktemp("up") / "home"
    endpoints = LocalEndpoints(home / "production", SERVING_PYTHON)
    try:
        endpoints.begin_create_endpoint(PROD)
        endpoints.begin_create_deployment(DeploymentSpec(PROD, "blue", ModelRef(MODEL, "1", str(artifact_dir))))
        endpoints.wait_deployment(PROD, "blue")
        endpoints.set_traffic(PROD, {"blue": 100})
    finally:
        endpoints.close()
    running = Host(home, "--schedule", "export_inference_logs=* * * * * *")
    yield running
    if running.process.poll() is None:
        running.stop(signal.SIGKILL)


# --- the README's curl block --------------------------------------------------------------------

def readme_curls() -> list[list[str]]:
    """Each curl command of the README's "Running with Azure Functions Core Tools" block, as argv."""
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("\n## Running with Azure Functions Core Tools\n", 1)[1].split("\n## ", 1)[0]
    block = next(b for b in re.findall(r"```sh\n(.*?)```", section, re.S) if "curl " in b)
    commands = [shlex.split(line, comments=True) for line in block.replace("\\\n", " ").splitlines()]
    return [argv for argv in commands if argv and argv[0] == "curl"]


def check_answer(url: str, status: int, body: str, home: Path) -> str:
    """What each README example must answer on a fresh home; returns which kind it was."""
    if url.endswith("/api/health"):
        assert status == 200 and json.loads(body)["status"] == "ok" and json.loads(body)["platform"] == "local"
        return "health"
    if url.endswith("/api/health?deep=1"):
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "ok" and answer["failing"] == []
        assert {"name": "store", "ok": True, "detail": "readable"} in answer["checks"]
        return "deep health"
    if "/runtime/webhooks/eventgrid?functionName=model_registered" in url:
        assert status == 202 and body == ""
        # the trigger decided on the payload's event (an unmanaged model: recorded, ignored)
        decisions = list((home / "store" / "decisions").rglob("*831e1650-001e-001b-66ab-eeb76e069631*"))
        assert decisions and json.loads(decisions[0].read_text())["action"] == "ignore"
        return "event grid"
    if "/admin/functions/" in url:
        assert status == 202 and body == ""
        return "timer " + url.rsplit("/", 1)[1]
    if url.endswith("/api/alerts"):
        # reached the webhook handler, which asked the platform: no labelled data on a fresh home
        assert status == 502 and "no labelled data for credit-card-default" in json.loads(body)["error"]
        return "alert"
    if url.endswith("/api/rollouts"):
        assert status == 200 and json.loads(body) == {"rollouts": [], "production": {}}
        return "rollouts"
    raise AssertionError(f"a README curl example this test does not check: {url}")


def test_every_readme_curl_example_answers_against_the_host(host):
    checked = []
    for argv in readme_curls():
        argv = [arg.replace("localhost:7071", f"localhost:{host.port}") for arg in argv]
        url = next(arg for arg in argv if f"localhost:{host.port}" in arg)
        done = subprocess.run([*argv, "-sS", "-w", "\n%{http_code}"], cwd=REPO_ROOT, capture_output=True, text=True,
                              timeout=HANG_GUARD)
        assert done.returncode == 0, done.stderr
        body, _, status = done.stdout.rpartition("\n")
        checked.append(check_answer(url, int(status), body, host.home))
    assert checked == ["health", "deep health", "event grid", "timer export_inference_logs", "timer drift_check",
                       "alert", "rollouts"]
    # the admin-invoked timers ran in the background (202 came first), each under its own name
    wait_for(lambda: '"function_succeeded","function":"drift_check","reason":"admin invoke"' in host.output(),
             HANG_GUARD, "the drift check's run", host.process, host.output)
    wait_for(lambda: '"function":"export_inference_logs","reason":"admin invoke"' in host.output(),
             HANG_GUARD, "the export's run", host.process, host.output)


# --- the webhook, routes and admin ------------------------------------------------------------

def test_event_grid_handshake_and_an_unknown_function(host):
    validation = (REPO_ROOT / "tests" / "payloads" / "eventgrid-subscription-validation.egschema.json").read_bytes()
    code = json.loads(validation)[0]["data"]["validationCode"]
    webhook = f"{host.url}/runtime/webhooks/eventgrid"
    answer = requests.post(webhook, params={"functionName": "model_registered"}, data=validation,
                           headers={"aeg-event-type": "SubscriptionValidation"}, timeout=30)
    assert answer.status_code == 200 and answer.json() == {"validationResponse": code}
    unknown = requests.post(webhook, params={"functionName": "nope"}, data=b"[]",
                            headers={"aeg-event-type": "Notification"}, timeout=30)
    assert unknown.status_code == 404
    assert "'nope'" in unknown.json()["error"] and "model_registered, run_status_changed" in unknown.json()["error"]
    no_header = requests.post(webhook, params={"functionName": "model_registered"}, data=b"[]", timeout=30)
    assert no_header.status_code == 400 and "aeg-event-type" in no_header.json()["error"]


def test_routes_unknown_paths_and_methods(host):
    missing = requests.get(f"{host.url}/api/nothing/here", timeout=30)
    assert missing.status_code == 404 and "/api/nothing/here" in missing.json()["error"]
    wrong = requests.delete(f"{host.url}/api/rollouts", timeout=30)
    assert wrong.status_code == 405 and wrong.headers["Allow"] == "GET"
    # one route, three functions (GET freezes, POST freeze, DELETE unfreeze): each method finds its own
    assert requests.get(f"{host.url}/api/freezes", timeout=30).status_code == 200
    put = requests.put(f"{host.url}/api/freezes", timeout=30)
    assert put.status_code == 405 and put.headers["Allow"] == "DELETE, GET, POST"
    detail = requests.get(f"{host.url}/api/rollouts/{MODEL}/rollout-x", timeout=30)  # a route with {params}
    assert detail.status_code == 404 and "rollout-x" in detail.json()["error"]
    assert requests.post(f"{host.url}/admin/functions/no_such_timer", json={"input": ""}, timeout=30).status_code == 404
    no_body = requests.post(f"{host.url}/admin/functions/drift_check", timeout=30)
    assert no_body.status_code == 400
    http_function = requests.post(f"{host.url}/admin/functions/health", json={"input": ""}, timeout=30)
    assert http_function.status_code == 400 and "httpTrigger" in http_function.json()["error"]


def test_a_timer_fires_on_its_schedule_override(host):
    """--schedule export_inference_logs='* * * * * *': the export runs by itself and says what it did."""
    fired = '"reason":"timer fired (* * * * * *)"'
    wait_for(lambda: host.output().count(fired) >= 2, HANG_GUARD, "two scheduled export runs", host.process,
             host.output)
    exports = [json.loads(line.split("modelops.timers ", 1)[1]) for line in host.output().splitlines()
               if "modelops.timers" in line and '"event":"export"' in line]
    assert exports and {e["model"] for e in exports} == {MODEL}
    assert "no contract is stored" in exports[-1]["error"]  # a fresh home: it ran, and refused to guess columns


# --- the platform and the CLI beside it --------------------------------------------------------

def test_the_endpoints_serve_while_the_host_runs(host, sample_request, tmp_path):
    state = read_states(host.home / "production")[PROD]
    request = tmp_path / "request.json"
    request.write_text(json.dumps(sample_request))
    scored = host.cli("score", str(request), "--url", state["scoring_uri"], "--key", state["key"])
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["status"] == 200


def test_cli_commands_go_through_the_host(host, tmp_path, artifact_dir):
    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps([{"id": "e-1"}]))
    sent = host.cli("events", "send", str(invalid))
    assert sent.returncode == 2 and sent.stdout.startswith("invalid"), sent.stdout + sent.stderr
    payload = REPO_ROOT / "tests" / "payloads" / "eventgrid-aml-modelregistered.egschema.json"
    ignored = host.cli("events", "send", str(payload))
    assert ignored.returncode == 0 and ignored.stdout.startswith("ignore    sklearn_regression_model:20")
    posts = [json.loads(line.split("modelops.host ", 1)[1]) for line in host.output().splitlines()
             if '"event":"http"' in line and "/runtime/webhooks/eventgrid" in line]
    assert [p["status"] for p in posts][-1] == 202  # the CLI's delivery
    alert = host.cli("alerts", "send", str(REPO_ROOT / "tests" / "payloads" / "azmon-common-log-alerts-v2.testaction.json"))
    assert alert.returncode == 1 and alert.stdout.startswith("502 error: platform refused the retraining")
    # register beside the host: the version lands in the workspace, its event goes to the host
    registered = host.cli("register", "--model-dir", str(artifact_dir), "--name", "not-managed")
    assert registered.returncode == 0, registered.stderr
    assert "registered not-managed:1 (" in registered.stdout and "its event went to the modelops up host" in registered.stdout
    assert (host.home / "workspace" / "models" / "not-managed" / "1" / "model_card.json").is_file()
    decided = [json.loads(p.read_text()) for p in (host.home / "store" / "decisions").rglob("*.json")]
    assert any(d["model"] == "not-managed" and d["action"] == "ignore" for d in decided)  # decided by the host
    ran = '"function_succeeded","function":"drift_check","reason":"admin invoke"'
    before = host.output().count(ran)
    timer = host.cli("timers", "run", "drift")
    assert timer.returncode == 0 and f"drift_check started on the modelops up host at {host.url}" in timer.stdout
    wait_for(lambda: host.output().count(ran) > before, HANG_GUARD, "the CLI's drift check on the host",
             host.process, host.output)
    # commands that only read the store (and write beside it) run beside the host without its home
    report = host.cli("drift-report", MODEL)
    assert report.returncode == 1 and f"no stored drift result for {MODEL}" in report.stderr, report.stderr
    status = host.cli("status", "--json")
    assert status.returncode == 0 and "production" in json.loads(status.stdout), status.stderr


def test_a_second_host_and_the_demo_are_refused(host):
    second = host.cli("up", "--port", "0")
    assert second.returncode == 1
    assert second.stderr.strip() == second.stderr.strip().splitlines()[0]  # one line
    assert f"in use by process {host.process.pid} (modelops up" in second.stderr
    demo = host.cli("demo")
    assert demo.returncode == 1 and f"the modelops up host at {host.url}" in demo.stderr


def test_sigterm_stops_everything_it_started(host):
    children = psutil.Process(host.process.pid).children(recursive=True)
    servers = [info["port"] for state in read_states(host.home / "production").values()
               for info in state.get("deployments", {}).values() if info.get("port")]
    assert children and servers  # the inference server it brought back (and its front door's port)
    ports = [host.port, *servers]
    assert host.stop(signal.SIGTERM) == 0
    assert "stopped (SIGTERM)" in host.output()
    assert [p.pid for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert [port for port in ports if listening(port)] == []
    assert not (host.home / "up.json").exists() and not (host.home / "owner.json").exists()


# --- beyond loopback: the key ------------------------------------------------------------------

def test_a_host_bound_beyond_loopback_needs_its_key(tmp_path):
    keyed = Host(tmp_path / "home", "--bind", "0.0.0.0", "--no-timers")
    try:
        assert keyed.up["key_required"] is True and keyed.url.startswith("http://127.0.0.1:")
        key_file = keyed.home / "up-key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert len(key) >= 32
        rollouts = f"{keyed.url}/api/rollouts"
        assert requests.get(f"{keyed.url}/api/health", timeout=30).status_code == 200  # anonymous
        refused = requests.get(rollouts, timeout=30)
        assert refused.status_code == 401 and str(key_file) in refused.json()["error"]
        assert requests.get(rollouts, headers={"x-functions-key": "wrong"}, timeout=30).status_code == 401
        assert requests.get(rollouts, headers={"x-functions-key": key}, timeout=30).status_code == 200
        assert requests.get(rollouts, params={"code": key}, timeout=30).status_code == 200
        webhook = requests.post(f"{keyed.url}/runtime/webhooks/eventgrid", params={"functionName": "model_registered"},
                                data=b"[]", headers={"aeg-event-type": "Notification"}, timeout=30)
        assert webhook.status_code == 401
        timer = keyed.cli("timers", "run", "export")  # the CLI reads the key from the home
        assert timer.returncode == 0, timer.stderr
        wait_for(lambda: '"function":"export_inference_logs","reason":"admin invoke"' in keyed.output(),
                 HANG_GUARD, "the export the CLI started", keyed.process, keyed.output)
        busy = subprocess.run([sys.executable, "-m", "functions.cli.main", "up", "--port", str(keyed.port)],
                              cwd=REPO_ROOT, env={**keyed.env, "MODELOPS_HOME": str(tmp_path / "other-home")},
                              capture_output=True, text=True, timeout=HANG_GUARD)
        assert busy.returncode == 1 and f"cannot listen on 127.0.0.1:{keyed.port}" in busy.stderr
        assert not (tmp_path / "other-home" / "up.json").exists()
        assert keyed.stop(signal.SIGINT) == 0
        assert not listening(keyed.port) and not (keyed.home / "up.json").exists()
        assert key not in keyed.output() and "/api/rollouts" in keyed.output()  # logged, without ?code=
    finally:
        if keyed.process.poll() is None:
            keyed.stop(signal.SIGKILL)
