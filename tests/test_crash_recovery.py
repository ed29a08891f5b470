"""kill -9 of `modelops register` at each rollout phase: the next `modelops` process ends every
rollout consistently — previous traffic map restored, canary removed, `abandoned` with why — the
traffic maps stay valid, and nothing the killed process started is left listening. Then the
other ways a process stops mid-rollout: SIGTERM and Ctrl-C (it ends its own rollout) and a full
disk (it cannot record anything; the next process ends the rollout once there is space).

Real components only: CLI subprocesses, real inference-server processes, the directory store on a
real (tmpfs) filesystem that can be made full, live traffic from this process through whatever
front door the home's owner currently runs. One home for the whole module, as a chain: each
`register` stops at the next phase, and the next `register` is the process that must end the
rollout the previous one left; a last `timers run export` ends the last one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
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
from tests.waiting import wait_for
from tests.conftest import SERVING_PYTHON, require_serving_env

pytestmark = pytest.mark.integration
MODEL = "credit-card-default"
CONFIG = {MODEL: {
    "poll_seconds": 0.2,
    "canary": {"bake_seconds": 2.0, "min_requests": 1, "max_bake_seconds": 20.0, "max_p90_ms": 10000.0,
               "max_error_rate": 0.5},
    "gates": {"latency_requests": 5, "latency_p95_ms": 10000.0, "evaluation_rows": 300, "min_roc_auc": 0.6,
              "champion_tolerance": 0.05},
}}
# (how it stops, (audit step, percent) it stops after): kill -9 at staging, gates, promotion and each
# canary step; then SIGTERM, Ctrl-C and a full disk in the canary
LINKS = [("kill", ("staging_deployment_created", None)), ("kill", ("gates", None)), ("kill", ("promoted", None)),
         ("kill", ("traffic", 10)), ("kill", ("traffic", 50)), ("kill", ("traffic", 100)),
         ("term", ("traffic", 10)), ("int", ("traffic", 50)), ("disk", ("traffic", 10))]
TMPFS_SIZE = "3g"


class Home:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {**os.environ, "MODELOPS_HOME": str(root), "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON),
                    "MODELOPS_MODELS": json.dumps(CONFIG), "PYTHONUNBUFFERED": "1"}
        self.rollouts = RolloutStore(DirectoryStore(root / "store"))

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "functions.cli.main", *args], cwd=REPO_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def start(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "functions.cli.main", *args], cwd=REPO_ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def states(self, workspace: str) -> dict:
        return read_states(self.root / workspace)

    def target(self):
        state = self.states("production").get(CONFIG_PROD)
        if not state or not state.get("running"):
            return "http://127.0.0.1:9/score", "none"  # nobody serves right now: the request fails fast
        return state["scoring_uri"], state["key"]


CONFIG_PROD = "credit-card-default-prod"


def rid(version: int) -> str:
    return rollout_id(LOCAL_TOPIC.format(name="staging"), MODEL, str(version))


def reached(home: Home, version: int, phase: tuple[str, int | None]) -> bool:
    step, percent = phase
    return any(r["step"] == step and (percent is None or r["details"].get("percent") == percent)
               for r in home.rollouts.trail(MODEL, rid(version)))


def server_pids(home: Home) -> dict[int, int]:
    """pid → port of every inference server the home's state records."""
    out = {}
    for workspace in ("staging", "production"):
        for state in home.states(workspace).values():
            for info in state.get("deployments", {}).values():
                if info.get("pid"):
                    out[info["pid"]] = info.get("port")
    return out


def listening(port: int) -> bool:
    return any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
               for c in psutil.net_connections(kind="tcp"))


def servers_of(home: Home) -> list[psutil.Process]:
    """Live inference servers serving a model folder of this home (whoever started them)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if "loopback_azmlinfsrv.py" not in " ".join(process.info["cmdline"] or []):
                continue
            if str(home.root) in process.environ().get("AZUREML_MODEL_DIR", ""):
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def assert_valid_maps(home: Home) -> None:
    for workspace in ("staging", "production"):
        for name, state in home.states(workspace).items():
            traffic = state["traffic"]
            assert set(traffic) == set(state["deployments"]), (workspace, name, state)
            assert sum(traffic.values()) in (0, 100), (workspace, name, traffic)


@pytest.fixture(scope="module")
def home(tmp_path_factory, artifact_dir) -> Home:
    require_serving_env()
    root = tmp_path_factory.mktemp("crash-home")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE}", "tmpfs", str(root)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:  # a failure, not a skip: the full-disk claim needs a filesystem that fills
        pytest.fail(f"cannot mount a tmpfs for the full-disk case (run the suite as root): {mounted.stderr.strip()}")
    try:
        h = Home(root)
        h.rollouts.store.put(f"datasets/{MODEL}/evaluation.csv",
                             generate(600, seed=1234).to_csv(index=False).encode())
        first = h.cli("register", "--model-dir", str(artifact_dir), "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["rollouts"][0]["state"] == "succeeded"
        yield h
    finally:
        for process in servers_of(Home(root)):
            process.kill()
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


def fill_disk(root: Path) -> None:
    """Shrink the tmpfs to what it holds now (+ a few pages): every further write gets ENOSPC."""
    stats = os.statvfs(root)
    used = (stats.f_blocks - stats.f_bfree) * stats.f_frsize
    remount(root, f"{used + 64 * 1024}")


def remount(root: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(root)], check=True, capture_output=True)


def test_a_rollout_stopped_at_any_phase_in_any_way_is_ended_consistently(home, artifact_dir):
    champion = deployment_name(MODEL, "1")
    rows = generate(200, seed=5, labelled=False).to_dict(orient="records")
    with LoadGenerator(home.target, rows, rate=20, threads=4, max_seconds=1200):
        previous: int | None = None
        for n, (how, phase) in enumerate(LINKS):
            version = n + 2
            process = home.start("register", "--model-dir", str(artifact_dir), "--json")
            if previous is not None:
                # this process took the home over: the rollout the previous one left is ended first
                ended = wait_for(lambda: (r := home.rollouts.get(MODEL, rid(previous))) and r["state"] != "running"
                                 and r, 120, f"v{previous}'s rollout to be ended", process)
                assert_ended(home, previous, ended, "died")
                previous = None
            wait_for(lambda: reached(home, version, phase), 180, f"v{version} to reach {phase}", process)
            if (how, phase) == ("kill", ("traffic", 10)):
                # a second process on the same home while the owner is alive: refused, the rollout untouched
                other = home.cli("timers", "run", "export", "--json", timeout=120)
                assert other.returncode == 1, other
                assert f"in use by process {process.pid}" in other.stderr and other.stderr.count("\n") == 1
                assert home.rollouts.get(MODEL, rid(version))["state"] == "running"
            pids = server_pids(home)
            front_doors = [s["port"] for ws in ("staging", "production") for s in home.states(ws).values()]
            if how == "kill":
                process.send_signal(signal.SIGKILL)
                process.wait(30)
                previous = version  # nobody ended it: the next process must
                assert home.rollouts.get(MODEL, rid(version))["state"] == "running"
            elif how in ("term", "int"):
                process.send_signal(signal.SIGTERM if how == "term" else signal.SIGINT)
                code = process.wait(120)
                output = process.stdout.read()
                assert code == (143 if how == "term" else 130), output[-2000:]
                # it ended its own rollout before it exited
                signal_name = "SIGTERM" if how == "term" else "SIGINT"
                record = home.rollouts.get(MODEL, rid(version))
                assert record["state"] == "abandoned", output[-3000:]
                assert_ended(home, version, record, signal_name)
            else:  # a full disk mid-canary: the process can record nothing, and must not hang or lie
                fill_disk(home.root)
                try:
                    code = process.wait(180)
                finally:
                    remount(home.root, TMPFS_SIZE)  # space again, for the next owner
                assert code != 0, process.stdout.read()[-2000:]
                previous = version if home.rollouts.get(MODEL, rid(version))["state"] == "running" else None
            process.stdout.close()
            # nothing the stopped process started stays up (a killed one's servers notice their owner is gone)
            # 60 s is a hang guard (a watchdog polls every 0.5 s, then gives gunicorn 5 s), not a figure
            wait_for(lambda: not any(psutil.pid_exists(p) and _is_server(p) for p in pids), 60,
                     f"v{version}'s servers to stop after {how}")
            for port in [p for p in pids.values() if p] + front_doors:
                assert not listening(port), f"port {port} still listening after {how} at {phase}"

        last = home.cli("timers", "run", "export", "--json", timeout=300)
        assert last.returncode == 0, last.stderr
        full_disk = 1 + len(LINKS)
        assert_ended(home, full_disk, home.rollouts.get(MODEL, rid(full_disk)), "")

    # the champion serves alone, every recorded map valid, and no server of this home is left
    production = home.states("production")[CONFIG_PROD]
    assert production["traffic"] == {champion: 100} and set(production["deployments"]) == {champion}
    assert_valid_maps(home)
    assert servers_of(home) == []
    assert home.rollouts.running_ids() == []
    states = {r["version"]: r["state"] for r in home.rollouts.list(MODEL)}
    assert states == {"1": "succeeded", **{str(v): "abandoned" for v in range(2, 2 + len(LINKS))}}


def assert_ended(home: Home, version: int, record: dict, why: str) -> None:
    assert record["state"] == "abandoned", record
    assert why in record["reason"], record["reason"]
    trail = home.rollouts.trail(MODEL, rid(version))
    assert trail[-1]["step"] == "abandoned" and trail[-1]["actor"].startswith("modelops")
    canary = deployment_name(MODEL, str(version))
    if "production_deployment_created" in {r["step"] for r in trail}:
        # what was restored (the next owner's own rollout may already have moved production on)
        assert trail[-1]["details"]["traffic"] == {deployment_name(MODEL, "1"): 100}
        assert trail[-1]["details"]["removed"] == [canary]
    production = home.states("production")[CONFIG_PROD]
    assert canary not in production["deployments"]  # the abandoned canary never serves again
    assert_valid_maps(home)


def _is_server(pid: int) -> bool:
    try:
        return "loopback_azmlinfsrv.py" in " ".join(psutil.Process(pid).cmdline())
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return False
