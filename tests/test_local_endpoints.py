"""The local managed online endpoints: real front doors in front of real inference servers.

One LocalEndpoints per module: endpoint `credit` with deployments `blue` and `green` (both serve
the same artifact folder) and endpoint `other` with a deployment whose model folder is broken.
Tests set the traffic they need; the load test deletes `blue`, and the last test closes everything.

No wall-clock figure is asserted here: how fast a deployment starts, is deleted and drains, and
how many requests/s the front door serves while traffic shifts are printed by
`make bench-endpoints` (bench/endpoints.py). These tests assert states, counts and the order of
events; their deadlines are hang guards only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
import pytest
import requests

from functions.adapters.local.endpoints import LocalEndpoints, read_states
from functions.adapters.local.front_door import DEPLOYMENT_HEADER
from functions.adapters.local.traffic_log import LocalTrafficLog, traffic_log_path
from functions.ports import DeploymentSpec, Endpoints, ModelRef, PlatformError, TrafficLog
from functions.settings import REPO_ROOT
from tests.conftest import require_serving_env

pytestmark = pytest.mark.integration

EP, OTHER = "credit", "other"
BLUE, GREEN, BROKEN = "blue", "green", "broken"
MODEL, VERSION = "credit-card-default", "7"  # the artifact folder is .../credit-card-default/3
HANG_GUARD = 120.0  # seconds: fails a test whose awaited event never comes; never a figure under test


@dataclass
class Platform:
    eps: LocalEndpoints
    home: Path
    first_states: dict
    artifact_dir: Path
    broken_dir: Path


def spec(endpoint: str, name: str, folder: Path, version: str = VERSION) -> DeploymentSpec:
    return DeploymentSpec(endpoint, name, ModelRef(MODEL, version, str(folder)))


@pytest.fixture(scope="module")
def platform(artifact_dir, settings, tmp_path_factory):
    require_serving_env()
    home = tmp_path_factory.mktemp("workspace")
    broken = tmp_path_factory.mktemp("broken-model")  # no model card: score.py's init() fails
    eps = LocalEndpoints(home, settings.serving_python)
    try:
        eps.begin_create_endpoint(EP)
        eps.begin_create_endpoint(OTHER)
        eps.begin_create_deployment(spec(EP, BLUE, artifact_dir))
        eps.begin_create_deployment(spec(EP, GREEN, artifact_dir))
        eps.begin_create_deployment(spec(OTHER, BROKEN, broken))
        first = {name: eps.get_deployment(EP, name) for name in (BLUE, GREEN)}
        yield Platform(eps, home, first, artifact_dir, broken)
    finally:
        eps.close()


@pytest.fixture()
def ready(platform) -> LocalEndpoints:
    for name in (BLUE, GREEN):
        state = platform.eps.wait_deployment(EP, name, timeout=HANG_GUARD)
        assert state is not None and state.ready, state
    return platform.eps


@pytest.fixture(scope="module")
def sample(sample_request) -> bytes:
    return json.dumps(sample_request).encode()


def post(eps: LocalEndpoints, body: bytes, *, session=None, key: str | None = "default", **headers: str):
    sent = {"Content-Type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}}
    if key == "default":
        key = eps.get_key(EP)
    if key is not None:
        sent["Authorization"] = f"Bearer {key}"
    return (session or requests).post(eps.get_endpoint(EP).scoring_uri, data=body, headers=sent,
                                      timeout=HANG_GUARD)


def log_lines(home: Path, endpoint: str = EP) -> list[dict]:
    return [json.loads(line) for line in traffic_log_path(home, endpoint).read_text().splitlines()]


def now() -> datetime:
    return datetime.now(timezone.utc)


def wait_until(predicate, what: str) -> None:
    """Poll until `predicate()`; the deadline is a hang guard (the event never came), not a figure."""
    deadline = time.monotonic() + HANG_GUARD
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {HANG_GUARD:.0f} s waiting for {what}")
        time.sleep(0.01)


# -- creation -------------------------------------------------------------------------------------


def test_create_returns_at_once_then_polls_to_succeeded(platform, ready, sample):
    assert isinstance(ready, Endpoints)
    # begin_create_deployment returned before its server was up: the servers start in the background
    assert {s.provisioning_state for s in platform.first_states.values()} == {"Creating"}

    endpoint = ready.get_endpoint(EP)
    assert endpoint.ready and endpoint.scoring_uri.startswith("http://127.0.0.1:")
    assert endpoint.deployments == {BLUE: "Succeeded", GREEN: "Succeeded"}
    assert set(endpoint.traffic) == {BLUE, GREEN}  # new deployments are listed at 0
    assert ready.get_deployment(EP, BLUE).model_uri == str(platform.artifact_dir)
    assert ready.get_deployment(EP, "nope") is None and ready.get_deployment("nope", BLUE) is None

    # Re-creating with the same model is a no-op (same process); another model is refused.
    pid = ready.server_pids()[f"{EP}/{BLUE}"]
    ready.begin_create_deployment(spec(EP, BLUE, platform.artifact_dir))
    assert ready.get_deployment(EP, BLUE).ready and ready.server_pids()[f"{EP}/{BLUE}"] == pid
    with pytest.raises(PlatformError, match="not updated in place"):
        ready.begin_create_deployment(spec(EP, BLUE, platform.broken_dir))
    with pytest.raises(PlatformError, match="not a folder"):
        ready.begin_create_deployment(spec(EP, "ghost", platform.home / "missing"))
    with pytest.raises(PlatformError, match="not found"):
        ready.begin_create_deployment(spec("nope", "ghost", platform.artifact_dir))

    # The console log gets score.py's lines, named after the deployed model (not the folder).
    request_id = uuid.uuid4().hex
    assert post(ready, sample, azureml_model_deployment=GREEN, x_request_id=request_id).status_code == 200
    console = ready.console_log(EP, GREEN)
    assert console == platform.home / "endpoints" / EP / "deployments" / GREEN / "console.log"
    records = [json.loads(line) for line in console.read_text().splitlines()
               if line.startswith("{") and request_id in line]
    assert [r["type"] for r in records] == ["InputData", "OutputData"]
    assert {r["service_name"] for r in records} == {f"online/{MODEL}/{VERSION}"}
    assert "Control socket listening" not in console.read_text()  # no shared ~/.gunicorn/gunicorn.ctl


def test_a_broken_model_fails_with_the_error_and_leaves_no_process(platform):
    eps = platform.eps
    state = eps.wait_deployment(OTHER, BROKEN, timeout=HANG_GUARD)
    assert state.failed and "model_card.json" in state.error
    pid = eps.server_pids()[f"{OTHER}/{BROKEN}"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(PlatformError, match="only Succeeded deployments"):
        eps.set_traffic(OTHER, {BROKEN: 100})
    eps.set_traffic(OTHER, {BROKEN: 0})  # a failed deployment is still live: it is named at 0


# -- routing --------------------------------------------------------------------------------------


def test_no_deployment_with_traffic_answers_503(ready, platform, sample):
    ready.set_traffic(EP, {BLUE: 0, GREEN: 0})
    answer = ready.score(EP, sample)
    assert answer.status == 503 and answer.body == {"error": "no deployment receives traffic"}
    assert log_lines(platform.home)[-1]["deployment"] is None


def test_header_routing_bypasses_the_weights(ready, platform, sample):
    ready.set_traffic(EP, {BLUE: 100, GREEN: 0})
    response = post(ready, sample, azureml_model_deployment=GREEN, x_request_id="req-pinned-1")
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1
    assert response.headers[DEPLOYMENT_HEADER] == GREEN
    assert response.headers["x-request-id"] == "req-pinned-1"
    assert response.headers["Content-Type"].startswith("application/json")
    assert '"request_id":"req-pinned-1"' in ready.console_log(EP, GREEN).read_text()  # forwarded upstream

    unpinned = post(ready, sample)
    assert unpinned.headers[DEPLOYMENT_HEADER] == BLUE and unpinned.headers["x-request-id"]  # generated

    missing = ready.score(EP, sample, deployment="nope")
    assert missing.status == 404 and "nope" in missing.body["error"]

    lines = log_lines(platform.home)
    pinned = next(line for line in lines if line["request_id"] == "req-pinned-1")
    assert pinned["deployment"] == GREEN and pinned["routed_by"] == "header" and pinned["status"] == 200
    assert set(pinned) >= {"time", "endpoint", "deployment", "status", "duration_ms", "routed_by", "request_id"}
    assert lines[-2]["routed_by"] == "traffic" and lines[-2]["deployment"] == BLUE
    assert lines[-1]["status"] == 404 and lines[-1]["deployment"] is None


def test_the_endpoint_key_is_required(ready, sample):
    ready.set_traffic(EP, {BLUE: 100, GREEN: 0})
    assert post(ready, sample, key=None).status_code == 401
    assert post(ready, sample, key="wrong").status_code == 401
    assert post(ready, sample, key=ready.get_key(OTHER)).status_code == 401  # keys are per endpoint
    basic = requests.post(ready.get_endpoint(EP).scoring_uri, data=sample, timeout=10,
                          headers={"Authorization": f"Basic {ready.get_key(EP)}"})
    assert basic.status_code == 401 and "key" in basic.json()["error"]
    assert post(ready, sample).status_code == 200
    assert ready.get_key(EP) != ready.get_key(OTHER)


def test_weighted_routing_follows_the_weights(ready, platform):
    """400 requests at 80/20. The body is an invalid request that score.py rejects in a few ms
    (routing does not look at bodies; a full prediction would make this test 4x slower)."""
    ready.set_traffic(EP, {BLUE: 80, GREEN: 20})
    served: list[str] = []
    cheap = b'{"data": []}'

    def client(n: int) -> None:
        with requests.Session() as session:
            for _ in range(n):
                response = post(ready, cheap, session=session)
                assert response.status_code == 400 and "empty" in response.json()["error"]
                served.append(response.headers[DEPLOYMENT_HEADER])

    start = now()
    threads = [threading.Thread(target=client, args=(100,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    end = now()
    share = served.count(GREEN) / len(served)
    assert len(served) == 400 and abs(share - 0.20) < 0.07, share  # ±3.5 standard deviations
    log = LocalTrafficLog(platform.home)
    assert log.stats(EP, GREEN, start, end).requests == served.count(GREEN)
    assert log.stats(EP, BLUE, start, end).requests == served.count(BLUE)


def test_traffic_maps_are_validated(ready):
    ready.set_traffic(EP, {BLUE: 70, GREEN: 30})
    bad = [
        ({BLUE: 100}, "drops live deployment"),
        ({BLUE: 50, GREEN: 40, "nope": 10}, "does not have"),
        ({BLUE: 60, GREEN: 60}, "sum to 100"),
        ({BLUE: 90, GREEN: 0}, "sum to 100"),
        ({BLUE: 110, GREEN: -10}, "integer from 0 to 100"),
        ({BLUE: 50.0, GREEN: 50}, "integer from 0 to 100"),
        ({BLUE: True, GREEN: 99}, "integer from 0 to 100"),
        ([(BLUE, 100)], "mapping"),
    ]
    for traffic, message in bad:
        with pytest.raises(PlatformError, match=message):
            ready.set_traffic(EP, traffic)
    with pytest.raises(PlatformError, match="not found"):
        ready.set_traffic("nope", {})
    assert ready.get_endpoint(EP).traffic == {BLUE: 70, GREEN: 30}  # unchanged
    ready.set_traffic(EP, {BLUE: 0, GREEN: 0})  # all zero is allowed


def test_delete_is_refused_with_traffic_and_idempotent(ready):
    ready.set_traffic(EP, {BLUE: 100, GREEN: 0})
    with pytest.raises(PlatformError, match="set it to 0"):
        ready.begin_delete_deployment(EP, BLUE)
    assert ready.get_deployment(EP, BLUE).ready
    ready.begin_delete_deployment(EP, "nope")  # nothing to delete is fine
    ready.begin_delete_deployment("nope", BLUE)


# -- faults and stats -----------------------------------------------------------------------------


def test_injected_faults_are_answered_and_counted(ready, platform, sample):
    ready.set_traffic(EP, {BLUE: 50, GREEN: 50})
    ready.inject_fault(EP, GREEN, 0.5, status=503)
    log = LocalTrafficLog(platform.home)
    start = now()
    statuses = [ready.score(EP, sample, deployment=GREEN).status for _ in range(60)]
    blue = [ready.score(EP, sample, deployment=BLUE).status for _ in range(10)]
    end = now()
    failed = statuses.count(503)
    assert set(statuses) <= {200, 503} and 12 <= failed <= 48, statuses
    assert blue == [200] * 10  # a fault is per deployment
    stats = log.stats(EP, GREEN, start, end)
    assert (stats.requests, stats.errors) == (60, failed)
    assert stats.error_rate == pytest.approx(failed / 60)
    assert log.stats(EP, BLUE, start, end).errors == 0
    injected = [r for r in log.records(EP, start, end) if r.get("error") == "fault_injected"]
    assert len(injected) == failed and {r["deployment"] for r in injected} == {GREEN}

    # Latency faults delay the forwarded request: the p90 sees it.
    ready.inject_fault(EP, GREEN, 0.0, delay_ms=150)
    slow_start = now()
    assert [ready.score(EP, sample, deployment=GREEN).status for _ in range(5)] == [200] * 5
    assert log.stats(EP, GREEN, slow_start, now()).p90_ms >= 150

    ready.clear_faults(EP)
    assert [ready.score(EP, sample, deployment=GREEN).status for _ in range(10)] == [200] * 10


def test_stats_match_what_the_clients_saw(ready, platform, sample):
    ready.set_traffic(EP, {BLUE: 100, GREEN: 0})
    log = LocalTrafficLog(platform.home)
    assert isinstance(log, TrafficLog)
    start = now()
    answers = [ready.score(EP, sample) for _ in range(20)]
    answers.append(ready.score(EP, b'{"data": []}'))  # a 400: counted as a request, not an error
    end = now()
    assert [a.status for a in answers] == [200] * 20 + [400]
    stats = log.stats(EP, BLUE, start, end)
    assert (stats.deployment, stats.requests, stats.errors) == (BLUE, 21, 0)
    durations = sorted(r["duration_ms"] for r in log.records(EP, start, end) if r["deployment"] == BLUE)
    assert stats.p90_ms == durations[18]  # nearest rank: the 19th of 21
    assert stats.p90_ms <= max(a.elapsed_ms for a in answers)  # the front door's time is within the client's
    assert log.stats(EP, GREEN, start, end).requests == 0
    before = log.stats(EP, BLUE, start - timedelta(hours=1), start - timedelta(minutes=59))
    assert (before.requests, before.errors, before.p90_ms) == (0, 0, None)


def test_state_json_is_readable_from_another_process(ready, platform):
    ready.set_traffic(EP, {BLUE: 90, GREEN: 10})
    code = ("import json, sys; from functions.adapters.local.endpoints import read_states; "
            "print(json.dumps({k: [v['traffic'], v['owner_alive'], sorted(v['deployments'])] "
            "for k, v in read_states(sys.argv[1]).items()}))")
    out = subprocess.run([sys.executable, "-c", code, str(platform.home)], capture_output=True, text=True,
                         cwd=REPO_ROOT, check=True, timeout=60).stdout
    assert json.loads(out) == {EP: [{BLUE: 90, GREEN: 10}, True, [BLUE, GREEN]], OTHER: [{BROKEN: 0}, True, [BROKEN]]}
    state = read_states(platform.home)[EP]
    assert state["key"] == ready.get_key(EP) and state["scoring_uri"] == ready.get_endpoint(EP).scoring_uri
    assert state["deployments"][BLUE]["spec"]["model"]["version"] == VERSION


# -- the key one ----------------------------------------------------------------------------------


def test_traffic_shift_and_delete_under_load_drop_nothing(ready, platform, sample):
    """v1 100 → 90/10 → 50/50 → v2 100, then delete v1, under 4 busy clients: every answer is a 200.
    Proves atomic routing swaps and draining: requests in flight on v1 — one of them pinned to it —
    when v1 loses its traffic and is deleted still get their answers from v1.

    "In flight" is made certain, not raced: v1's server is paused (SIGSTOP to its process group)
    so whatever reaches it waits there until the test resumes it, after the swap and the delete
    have returned. The rate served here is a figure of `make bench-endpoints`, not asserted."""
    eps = ready
    eps.set_traffic(EP, {BLUE: 100, GREEN: 0})
    blue_pid = eps.server_pids()[f"{EP}/{BLUE}"]
    results: list[tuple[float, float, int, str | None]] = []  # (sent, answered, status, deployment)
    stop = threading.Event()

    def client() -> None:
        deadline = time.monotonic() + 3 * HANG_GUARD  # a leak guard: `stop` ends the clients (finally below)
        with requests.Session() as session:
            while not stop.is_set() and time.monotonic() < deadline:
                sent = time.monotonic()
                try:
                    response = post(eps, sample, session=session)
                    results.append((sent, time.monotonic(), response.status_code,
                                    response.headers.get(DEPLOYMENT_HEADER)))
                except requests.RequestException as exc:
                    results.append((sent, time.monotonic(), 0, repr(exc)))

    clients = [threading.Thread(target=client) for _ in range(4)]
    for t in clients:
        t.start()
    paused = False
    probe: dict = {}
    try:
        per_phase = []
        for traffic in ({BLUE: 100, GREEN: 0}, {BLUE: 90, GREEN: 10}, {BLUE: 50, GREEN: 50}):
            eps.set_traffic(EP, traffic)
            answered = len(results)
            # 30 answers per phase however slow the machine is: what is asserted is what they were
            wait_until(lambda: len(results) - answered >= 30, f"30 answers at {traffic}")
            per_phase.append(len(results) - answered)

        # v1 paused: each client ends up waiting on a request routed to it (50% of picks), so
        # exactly 4 requests are in flight on v1; then one pinned to it makes 5.
        os.killpg(blue_pid, signal.SIGSTOP)
        paused = True
        wait_until(lambda: eps.inflight(EP, BLUE) == 4, "every client to wait on paused v1")

        def pinned() -> None:
            response = post(eps, sample, azureml_model_deployment=BLUE, x_request_id="probe-in-flight")
            probe.update(status=response.status_code, deployment=response.headers.get(DEPLOYMENT_HEADER),
                         answered=time.monotonic())

        prober = threading.Thread(target=pinned)
        prober.start()
        wait_until(lambda: eps.inflight(EP, BLUE) == 5, "the pinned probe to be in flight on v1")

        eps.set_traffic(EP, {BLUE: 0, GREEN: 100})
        swapped = time.monotonic()
        eps.begin_delete_deployment(EP, BLUE)
        delete_returned = time.monotonic()
        # it returned with v1 still paused and its requests unanswered: draining is in the background
        assert probe == {}
        assert eps.get_deployment(EP, BLUE).provisioning_state == "Deleting"
        assert eps.get_endpoint(EP).traffic == {GREEN: 100}
        eps.begin_delete_deployment(EP, BLUE)  # idempotent while deleting

        os.killpg(blue_pid, signal.SIGCONT)
        paused = False
        wait_until(lambda: eps.get_deployment(EP, BLUE) is None, "v1 to be drained and deleted")
        prober.join(HANG_GUARD)
        eps.begin_delete_deployment(EP, BLUE)  # idempotent once gone
        after_gone = len(results)
        wait_until(lambda: len(results) - after_gone >= 20, "20 answers after v1 is gone")
    finally:
        if paused:
            os.killpg(blue_pid, signal.SIGCONT)
        stop.set()
        for t in clients:
            t.join(HANG_GUARD)
    assert all(n >= 30 for n in per_phase), per_phase
    failures = [r for r in results if r[2] != 200]
    assert not failures, failures[:10]
    served = {d for _, _, _, d in results}
    assert served == {BLUE, GREEN}
    assert all(d == GREEN for sent, _, _, d in results if sent > swapped)  # the new map applies at once
    # the 4 requests v1 held across the swap and the delete were answered by v1, after the delete returned
    held = [r for r in results if r[3] == BLUE and r[1] > delete_returned]
    assert len(held) == 4, held
    assert (probe.get("status"), probe.get("deployment")) == (200, BLUE), probe
    assert probe["answered"] > delete_returned  # in flight across the swap and the delete
    # v1's own console log: it answered the probe, and only then was it told to stop.
    console = ready.console_log(EP, BLUE).read_text().splitlines()
    started_at = max(i for i, line in enumerate(console) if "Starting gunicorn" in line)
    answered_at = max(i for i, line in enumerate(console) if '"request_id":"probe-in-flight"' in line)
    stopped_at = min(i for i, line in enumerate(console[started_at:], started_at)
                     if "Worker exiting" in line or "signal: term" in line)
    assert answered_at < stopped_at
    assert not psutil.pid_exists(blue_pid) or psutil.Process(blue_pid).status() == psutil.STATUS_ZOMBIE
    assert BLUE not in eps.get_endpoint(EP).deployments
    assert read_states(platform.home)[EP]["traffic"] == {GREEN: 100}


def test_deleting_an_endpoint_stops_it_and_forgets_it(platform):
    eps = platform.eps
    uri = eps.get_endpoint(OTHER).scoring_uri
    eps.begin_delete_endpoint(OTHER)
    eps.begin_delete_endpoint(OTHER)  # idempotent
    wait_until(lambda: eps.get_endpoint(OTHER) is None, f"endpoint {OTHER} to be deleted")
    eps.begin_delete_endpoint(OTHER)
    assert OTHER not in read_states(platform.home)
    assert traffic_log_path(platform.home, OTHER).exists()  # the record stays
    with pytest.raises(requests.ConnectionError):
        requests.post(uri, data=b"{}", timeout=5)
    with pytest.raises(PlatformError, match="not found"):
        eps.score(OTHER, b"{}")


# -- last: close ----------------------------------------------------------------------------------


def test_close_stops_every_process_and_front_door(platform):
    eps = platform.eps
    processes = []
    for pid in eps.server_pids().values():
        try:
            parent = psutil.Process(pid)
            processes += [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            pass  # the broken deployment's server is long gone
    assert len(processes) >= 2  # green's gunicorn master and its worker
    uri = eps.get_endpoint(EP).scoring_uri

    eps.close()
    eps.close()  # idempotent

    _, alive = psutil.wait_procs(processes, timeout=10)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    with pytest.raises(requests.ConnectionError):
        requests.post(uri, data=b"{}", timeout=5)
    assert read_states(platform.home)[EP]["running"] is False
    with pytest.raises(PlatformError, match="closed"):
        eps.begin_create_endpoint("again")


def test_revive_brings_back_a_deployment_still_creating_and_not_a_failed_one(platform, settings, tmp_path):
    """A host resuming a rollout waits for the deployment its dead owner was provisioning: revive
    creates it again (here a broken model, which fails fast: what counts is that it is attempted)."""
    import dataclasses

    from functions.adapters.local.endpoints import STATE_FILE, endpoint_dir, write_state

    home = tmp_path / "revived"
    folder = endpoint_dir(home, OTHER)
    folder.mkdir(parents=True)
    deployments = {name: {"provisioning_state": state, "spec": dataclasses.asdict(spec(OTHER, name, platform.broken_dir))}
                   for name, state in (("creating", "Creating"), ("failed", "Failed"))}
    write_state(folder / STATE_FILE, {"name": OTHER, "provisioning_state": "Succeeded", "tags": {},
                                      "traffic": {"creating": 0, "failed": 0}, "deployments": deployments})
    eps = LocalEndpoints(home, settings.serving_python)
    try:
        assert eps.revive(timeout=HANG_GUARD) == [OTHER]
        assert eps.get_deployment(OTHER, "creating") is not None
        assert eps.get_deployment(OTHER, "failed") is None
    finally:
        eps.close()
