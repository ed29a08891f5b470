"""Rollouts survive the host: kill -9 of the resuming owner (the host) at each phase of ONE
rollout, a new host each time — which must continue the rollout from its last completed step
(mid-canary it continues the canary) — and one SIGTERM among them: a host leaves its rollout
suspended for the next host, which resumes it. Then a host's SIGTERM followed by an owner that is
not a host: that one ends the rollout as recovery does, saying why it was not resumed.

Real components: owner processes (tests/resume_owner.py stands in for `modelops up` until it is on
main: `start_owner` is the one place to switch), real inference servers, the directory store, live
traffic through whatever front door the current owner runs. One home for the module, short bakes.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from functions.adapters.local.endpoints import read_states
from functions.adapters.local.loadgen import LoadGenerator
from functions.adapters.local.store import DirectoryStore
from functions.adapters.local.workspace import LOCAL_TOPIC
from functions.domain.config import deployment_name
from functions.domain.events import rollout_id
from functions.services.records import RolloutStore
from functions.settings import REPO_ROOT
from ml.datagen import generate
from tests.conftest import SERVING_PYTHON, require_serving_env
from tests.test_crash_recovery import _is_server, assert_valid_maps, servers_of, wait_for

pytestmark = pytest.mark.integration
MODEL = "credit-card-default"
PROD = "credit-card-default-prod"
CONFIG = {MODEL: {
    "poll_seconds": 0.2, "approval_required": True, "approval_timeout_seconds": 600,
    "canary": {"steps": [50, 100], "bake_seconds": 1.0, "min_requests": 1, "max_bake_seconds": 30.0,
               "max_p90_ms": 10000.0, "max_error_rate": 0.5},
    "gates": {"latency_requests": 5, "latency_p95_ms": 10000.0, "evaluation_rows": 300, "min_roc_auc": 0.6,
              "champion_tolerance": 0.05},
}}
# how v2's host is stopped, and after which phase (audit step, canary percent); a new host each time.
# "hold": after the last step's health, `retire` has retired the champion but its result is unrecorded
STOPS = [("kill", ("staging_deployment_created", None)), ("kill", ("gates", None)),
         ("kill", ("awaiting_approval", None)), ("kill", ("traffic", 50)), ("term", ("traffic", 100)),
         ("kill", "hold")]


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "MODELOPS_HOME": str(root), "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON),
                    "MODELOPS_MODELS": json.dumps(CONFIG), "PYTHONUNBUFFERED": "1"}
        self.rollouts = RolloutStore(DirectoryStore(root / "store"))

    def states(self, workspace: str) -> dict:
        return read_states(self.root / workspace)

    def target(self):
        state = read_states(self.root / "production").get(PROD)
        if not state or not state.get("running"):
            return "http://127.0.0.1:9/score", "none"  # nobody serves right now: the request fails fast
        return state["scoring_uri"], state["key"]

    def record(self, version: int) -> dict:
        return self.rollouts.get(MODEL, rid(version)) or {}

    def trail(self, version: int) -> list[dict]:
        return self.rollouts.trail(MODEL, rid(version))


class Owner:
    """A running owner of the home: its process, and the lines it printed (read in a thread)."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(line) for line in process.stdout], daemon=True).start()

    def ready(self, timeout: float = 240) -> dict:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"owner {self.process.pid} printed nothing in {timeout} s (exit {self.process.poll()})")
        return json.loads(line)

    def send(self, command: dict) -> None:
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()


def start_owner(home: Home) -> Owner:
    """The host. When `modelops up` lands: start it here instead (and `register`/`approve` over HTTP)."""
    log = open(home.root / "owners.log", "a")
    process = subprocess.Popen([sys.executable, "-m", "tests.resume_owner"], cwd=REPO_ROOT, env=home.env, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
    log.close()
    return Owner(process)


def register(owner: Owner, artifact_dir: Path) -> None:
    owner.send({"register": str(artifact_dir), "name": MODEL})


def approve(owner: Owner, version: int) -> None:
    owner.send({"approve": rid(version)})


def rid(version: int) -> str:
    return rollout_id(LOCAL_TOPIC.format(name="staging"), MODEL, str(version))


def reached(home: Home, version: int, step: str, percent: int | None = None) -> bool:
    return any(r["step"] == step and (percent is None or r["details"].get("percent") == percent)
               for r in home.trail(version))


def server_pids(home: Home) -> list[int]:
    return [info["pid"] for ws in ("staging", "production") for state in read_states(home.root / ws).values()
            for info in state.get("deployments", {}).values() if info.get("pid")]


def assert_trail_whole(home: Home, version: int) -> None:
    """One record per sequence number, none missing, none twice (a replayed step is never re-audited)."""
    seqs = [r["seq"] for r in home.trail(version)]
    assert seqs == list(range(1, len(seqs) + 1)), seqs


def kill(owner: Owner, home: Home, version: int) -> None:
    pids = server_pids(home)
    owner.process.send_signal(signal.SIGKILL)
    owner.process.wait(30)
    assert home.record(version)["state"] == "running"  # nobody ended it
    # the killed host's servers notice their owner is gone (a watchdog) or the next owner reaps them
    wait_for(lambda: not any(psutil.pid_exists(p) and _is_server(p) for p in pids), 60, "the killed host's servers")


@pytest.fixture(scope="module")
def home(tmp_path_factory, artifact_dir) -> Home:
    require_serving_env()
    root = tmp_path_factory.mktemp("resume-home")
    h = Home(root)
    h.rollouts.store.put(f"datasets/{MODEL}/evaluation.csv", generate(600, seed=1234).to_csv(index=False).encode())
    try:
        yield h
    finally:
        for process in servers_of(h):
            process.kill()


def test_a_host_killed_at_each_phase_resumes_the_rollout_and_a_stopped_host_leaves_it_to_the_next(home, artifact_dir):
    champion, v2, v3 = (deployment_name(MODEL, v) for v in ("1", "2", "3"))
    owner = start_owner(home)
    assert owner.ready() == {"ready": True, "resumed": [], "recovered": []}
    register(owner, artifact_dir)  # v1: the first version (approved, then 100%)
    wait_for(lambda: reached(home, 1, "awaiting_approval"), 180, "v1 awaiting approval", owner.process)
    approve(owner, 1)
    wait_for(lambda: home.record(1).get("state") == "succeeded", 180, "v1 in production", owner.process)

    rows = generate(200, seed=5, labelled=False).to_dict(orient="records")
    with LoadGenerator(home.target, rows, rate=20, threads=4, max_seconds=900):
        register(owner, artifact_dir)  # v2: stopped after each phase, a new host each time
        for how, phase in STOPS:
            if phase == "hold":
                owner.send({"hold_after": "retire"})
                wait_for(lambda: set(read_states(home.root / "production")[PROD]["traffic"]) == {v2}, 180,
                         "the champion retired", owner.process)
            else:
                wait_for(lambda: reached(home, 2, *phase), 180, f"v2 at {phase}", owner.process)
            if how == "kill":
                kill(owner, home, 2)
            else:  # SIGTERM: the host ends nothing, stops what it started, and notes the rollout suspended
                owner.process.send_signal(signal.SIGTERM)
                assert owner.process.wait(120) == 143
                assert home.record(2)["state"] == "running" and len(home.record(2)["suspended"]) == 1
                assert servers_of(home) == []
            owner = start_owner(home)
            ready = owner.ready()
            assert ready["resumed"] == [rid(2)] and ready["recovered"] == [], ready
            assert home.record(2)["state"] == "running"
            if phase == ("awaiting_approval", None):
                approve(owner, 2)  # the approval the killed host never got
        wait_for(lambda: home.record(2).get("state") == "succeeded", 180, "v2 to succeed", owner.process)

        record = home.record(2)
        assert len(record["resumed"]) == len(STOPS)  # each host noted it continued the rollout
        assert_trail_whole(home, 2)
        trail = home.trail(2)
        steps = [(r["step"], r["details"].get("percent")) for r in trail]
        # mid-canary it continued the canary: each step once and judged healthy, in order, nothing
        # abandoned (a bake window that spans the outage may be extended first: an `extended` health)
        judged = [(r["step"], r["details"].get("percent"), r["details"].get("healthy")) for r in trail
                  if r["step"] == "traffic" or (r["step"] == "health" and not r["details"].get("extended"))]
        assert judged == [("traffic", 50, None), ("health", 50, True), ("traffic", 100, None), ("health", 100, True)]
        assert steps[-1] == ("succeeded", None) and ("abandoned", None) not in steps
        production = read_states(home.root / "production")[PROD]
        assert production["traffic"] == {v2: 100} and set(production["deployments"]) == {v2}
        assert_valid_maps(home)

        # a host's SIGTERM, then a next owner that is not a host: it ends the rollout as today, saying why
        register(owner, artifact_dir)  # v3
        wait_for(lambda: reached(home, 3, "awaiting_approval"), 180, "v3 awaiting approval", owner.process)
        owner.process.send_signal(signal.SIGTERM)
        assert owner.process.wait(120) == 143
        assert home.record(3)["state"] == "running" and len(home.record(3)["suspended"]) == 1
        ended = subprocess.run([sys.executable, "-m", "functions.cli.main", "timers", "run", "export", "--json"],
                               cwd=REPO_ROOT, env=home.env, capture_output=True, text=True, timeout=300)
        assert ended.returncode == 0, ended.stderr
    record = home.record(3)
    assert record["state"] == "abandoned" and "not resumed (a host suspended it" in record["reason"], record
    assert home.trail(3)[-1]["step"] == "abandoned"
    assert_trail_whole(home, 3)
    production = read_states(home.root / "production")[PROD]
    assert production["traffic"] == {v2: 100} and v3 not in production["deployments"]
    assert champion not in production["deployments"]
    assert_valid_maps(home)
    assert servers_of(home) == [] and home.rollouts.running_ids() == []
    assert DirectoryStore(home.root / "store").list("orchestrations/") == []  # no history outlives its rollout
