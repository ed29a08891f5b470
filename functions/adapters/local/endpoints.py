"""Managed online endpoints on the embedded local platform (ports.Endpoints for one workspace).

Each endpoint is a front door (front_door.py: key auth, header or weighted routing, traffic log)
and each deployment a real azureml-inference-server-http process serving the model folder with
ml/score.py — or, for a no-code MLflow deployment (DeploymentSpec.no_code), with
ml/mlflow_no_code/score.py, which answers as AzureML's own no-code scoring script does (the model
folder named by AZUREML_MODEL_DIR + MLFLOW_MODEL_FOLDER, as AzureML sets them). Staging and
production are two instances with different homes:

    <home>/endpoints/<endpoint>/state.json                         traffic map, deployments, key, port
    <home>/endpoints/<endpoint>/traffic.jsonl                      one line per request (traffic_log.py)
    <home>/endpoints/<endpoint>/deployments/<name>/console.log     score.py's InputData/OutputData lines

The processes live in the owning Python process; state.json lets another process (`modelops
status`) read traffic maps without touching them (`read_states`). `close()` (also at exit, and as a
context manager) stops every front door and server.

Behaviour follows AzureML where it matters to the control plane: `begin_*` return at once and
callers poll; a new deployment gets no traffic until `set_traffic`; a traffic map must name every
live deployment and sum to 100 (or all 0); a deployment with traffic cannot be deleted; deletion is
idempotent and drains in-flight requests before the process stops. Locally a deployment is one
process with one worker whatever `instance_type`/`instance_count` say, and a deployment cannot be
updated in place (re-creating it with another model is refused: create a new deployment instead).
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import json
import os
import re
import secrets
import signal
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from functions.adapters.local.front_door import Fault, FrontDoor
from functions.adapters.local.inference_server import InferenceServer
from functions.adapters.local.ownership import runs
from functions.adapters.local.traffic_log import TrafficLogWriter, traffic_log_path, utc_now_iso
from functions.ports import DeploymentSpec, DeploymentState, EndpointState, ModelRef, PlatformError, ScoreResult
from functions.settings import NO_CODE_SCORE_SCRIPT, SCORE_SCRIPT

_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,31}$")  # AzureML's alphabet; safe as a folder name
STATE_FILE = "state.json"


def endpoint_dir(home: Path, endpoint: str) -> Path:
    return Path(home) / "endpoints" / endpoint


def console_log_path(home: Path, endpoint: str, deployment: str) -> Path:
    return endpoint_dir(home, endpoint) / "deployments" / deployment / "console.log"


def read_states(home: Path) -> dict[str, dict[str, Any]]:
    """Every endpoint's state.json under a home, for a process that does not own them.
    Adds `owner_alive`: whether the process that runs the endpoint still exists."""
    states: dict[str, dict[str, Any]] = {}
    for path in sorted((Path(home) / "endpoints").glob(f"*/{STATE_FILE}")):
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        state["owner_alive"] = bool(state.get("running")) and _pid_alive(state.get("owner_pid"))
        states[state.get("name", path.parent.name)] = state
    return states


@dataclass
class _Deployment:
    spec: DeploymentSpec
    model_dir: Path
    state: str = "Creating"
    error: str = ""
    server: InferenceServer | None = None
    thread: threading.Thread | None = None
    created: str = field(default_factory=utc_now_iso)


@dataclass
class _Endpoint:
    name: str
    key: str
    tags: dict[str, str]
    door: FrontDoor
    log: TrafficLogWriter
    state: str = "Succeeded"
    traffic: dict[str, int] = field(default_factory=dict)
    deployments: dict[str, _Deployment] = field(default_factory=dict)
    created: str = field(default_factory=utc_now_iso)


class LocalEndpoints:
    """ports.Endpoints on this machine. Thread-safe."""

    def __init__(
        self,
        home: Path,
        serving_python: Path,
        *,
        entry_script: Path = SCORE_SCRIPT,
        no_code_entry_script: Path = NO_CODE_SCORE_SCRIPT,
        startup_timeout: float = 120.0,
        drain_timeout: float = 60.0,
        upstream_timeout: float = 90.0,
    ) -> None:
        self.home = Path(home)
        # absolute, not resolved: resolving a venv's python symlink would leave the venv
        self.serving_python = Path(serving_python).expanduser().absolute()
        self.entry_script = Path(entry_script).absolute()
        self.no_code_entry_script = Path(no_code_entry_script).absolute()
        self.startup_timeout = startup_timeout
        self.drain_timeout = drain_timeout
        self.upstream_timeout = upstream_timeout
        self._lock = threading.RLock()  # order: self._lock, then a front door's lock; never the reverse
        self._endpoints: dict[str, _Endpoint] = {}
        self._workers: list[threading.Thread] = []
        self._local = threading.local()
        self._closed = False
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    # -- endpoints ------------------------------------------------------------------------------

    def get_endpoint(self, name: str) -> EndpointState | None:
        with self._lock:
            ep = self._endpoints.get(name)
            if ep is None:
                return None
            self._refresh(ep)
            return EndpointState(
                name=ep.name,
                provisioning_state=ep.state,
                scoring_uri=ep.door.scoring_uri,
                traffic=dict(ep.traffic),
                deployments={n: d.state for n, d in ep.deployments.items()},
            )

    def begin_create_endpoint(self, name: str, tags: dict[str, str] | None = None) -> None:
        """Creates the key and the front door (ready on return: starting it takes milliseconds).
        Idempotent: an existing endpoint is left as it is."""
        _check_name("endpoint", name)
        with self._lock:
            self._check_open()
            existing = self._endpoints.get(name)
            if existing is not None:
                if existing.state == "Deleting":
                    raise PlatformError(f"endpoint {name} is being deleted; retry later", transient=True)
                return
            log = TrafficLogWriter(traffic_log_path(self.home, name))
            key = secrets.token_urlsafe(32)
            try:
                door = FrontDoor(name, key, log, upstream_timeout=self.upstream_timeout).start()
            except OSError as exc:
                log.close()
                raise PlatformError(f"cannot start the front door of endpoint {name}: {exc}", transient=True) from exc
            ep = _Endpoint(name=name, key=key, tags=dict(tags or {}), door=door, log=log)
            self._endpoints[name] = ep
            self._persist(ep)

    def ensure_logging(self, name: str) -> str:
        """Nothing to set up here: an endpoint's front door writes its traffic log from the start
        and each deployment's server its console log (what the local TrafficLog and inference-log
        source read). Azure needs a diagnostic setting per endpoint for the same."""
        with self._lock:
            if name not in self._endpoints:
                raise PlatformError(f"endpoint {name} does not exist")
        return f"local: the front door writes {traffic_log_path(self.home, name)}"

    def begin_delete_endpoint(self, name: str) -> None:
        """Idempotent. Stops the front door, then every deployment (traffic or not, as AzureML
        does); the traffic log and console logs stay for the record."""
        with self._lock:
            ep = self._endpoints.get(name)
            if ep is None or ep.state == "Deleting":
                return
            ep.state = "Deleting"
            self._persist(ep)
            self._spawn(self._delete_endpoint, ep, name=f"delete-endpoint-{name}")

    def get_key(self, endpoint: str) -> str:
        return self._require(endpoint).key

    # -- deployments ----------------------------------------------------------------------------

    def get_deployment(self, endpoint: str, name: str) -> DeploymentState | None:
        with self._lock:
            ep = self._endpoints.get(endpoint)
            dep = ep.deployments.get(name) if ep else None
            if dep is None:
                return None
            self._refresh(ep)
            return DeploymentState(endpoint, name, dep.state, model_uri=dep.spec.model.uri, error=dep.error)

    def begin_create_deployment(self, spec: DeploymentSpec) -> None:
        """Starts the inference server in the background (Creating → Succeeded | Failed). The new
        deployment is listed in the traffic map at 0. Same name and model: no-op (a Failed one is
        retried); another model under an existing name: PlatformError.

        A no-code spec (serving: mlflow_no_code) is refused for a model that is not an MLflow model,
        as AzureML refuses it; an MLflow one is served by ml/mlflow_no_code/score.py, which takes and
        answers what AzureML's no-code scoring script does (without modelops' validation or
        inference logging: the console log has no InputData/OutputData lines to export)."""
        _check_name("deployment", spec.name)
        if spec.no_code_problem():
            raise PlatformError(spec.no_code_problem())
        model_dir = _model_dir(spec)
        with self._lock:
            self._check_open()
            ep = self._require(spec.endpoint)
            if ep.state == "Deleting":
                raise PlatformError(f"endpoint {ep.name} is being deleted", transient=True)
            existing = ep.deployments.get(spec.name)
            if existing is not None:
                if existing.state == "Deleting":
                    raise PlatformError(f"deployment {spec.name} is being deleted; retry later", transient=True)
                if existing.spec.model.uri != spec.model.uri:
                    raise PlatformError(
                        f"deployment {spec.name} on {ep.name} already serves {existing.spec.model.uri}; local "
                        f"deployments are not updated in place: create a new deployment for {spec.model.uri}"
                    )
                if existing.state != "Failed":
                    return
            dep = _Deployment(spec=spec, model_dir=model_dir)
            ep.deployments[spec.name] = dep
            ep.traffic.setdefault(spec.name, 0)
            ep.door.declare(spec.name)
            self._persist(ep)
            dep.thread = self._spawn(self._provision, ep, dep, name=f"create-{ep.name}-{spec.name}")

    def wait_deployment(self, endpoint: str, name: str, timeout: float = 180.0,
                        poll: float = 0.1) -> DeploymentState | None:
        """Poll until the deployment is Succeeded, Failed or gone (not part of the port: a
        convenience for the CLI and tests). PlatformError(transient) on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.get_deployment(endpoint, name)
            if state is None or state.ready or state.failed:
                return state
            if time.monotonic() >= deadline:
                raise PlatformError(f"deployment {endpoint}/{name} still {state.provisioning_state} after "
                                    f"{timeout:.0f}s", transient=True)
            time.sleep(poll)

    def set_traffic(self, endpoint: str, traffic: dict[str, int]) -> None:
        """Validates, then swaps the routing table atomically (requests already routed keep their
        deployment; the next request sees the new map)."""
        if not isinstance(traffic, dict):
            raise PlatformError(
                f"traffic must be a mapping of deployment name to percent, got {type(traffic).__name__}")
        for name, weight in traffic.items():
            if isinstance(weight, bool) or not isinstance(weight, int) or not 0 <= weight <= 100:
                raise PlatformError(f"traffic for {name!r} must be an integer from 0 to 100, got {weight!r}")
        with self._lock:
            ep = self._require(endpoint)
            self._refresh(ep)
            live = {n for n, d in ep.deployments.items() if d.state != "Deleting"}
            unknown = sorted(set(traffic) - live)
            if unknown:
                raise PlatformError(f"traffic names deployment(s) {', '.join(unknown)} that endpoint {endpoint} "
                                    f"does not have (live: {', '.join(sorted(live)) or 'none'})")
            missing = sorted(live - set(traffic))
            if missing:
                raise PlatformError(f"traffic drops live deployment(s) {', '.join(missing)} of endpoint {endpoint}: "
                                    "name every deployment (0 for no traffic)")
            total = sum(traffic.values())
            if total not in (0, 100):
                raise PlatformError(f"traffic must sum to 100 (or be all 0), got {total}: {traffic}")
            not_ready = sorted(n for n, w in traffic.items() if w > 0 and ep.deployments[n].state != "Succeeded")
            if not_ready:
                states = ", ".join(f"{n} is {ep.deployments[n].state}" for n in not_ready)
                raise PlatformError(f"only Succeeded deployments can receive traffic: {states}",
                                    transient=all(ep.deployments[n].state == "Creating" for n in not_ready))
            ep.traffic = dict(traffic)
            ep.door.set_weights(ep.traffic)
            self._persist(ep)

    def scale_deployment(self, endpoint: str, name: str, instance_count: int) -> int:
        """Locally a deployment is not updated in place: its process keeps the workers it started
        with, which this returns (the control plane audits what it got)."""
        with self._lock:
            ep = self._endpoints.get(endpoint)
            dep = ep.deployments.get(name) if ep else None
            if dep is None:
                raise PlatformError(f"deployment {endpoint}/{name} not found")
            return max(1, dep.spec.instance_count)

    def begin_delete_deployment(self, endpoint: str, name: str) -> None:
        """Idempotent. Refused while the deployment has traffic. Takes it out of routing at once,
        then (in the background) waits for its in-flight requests and stops its process:
        Deleting → gone."""
        with self._lock:
            ep = self._endpoints.get(endpoint)
            dep = ep.deployments.get(name) if ep else None
            if dep is None or dep.state == "Deleting":
                return
            weight = ep.traffic.get(name, 0)
            if weight > 0:
                raise PlatformError(f"deployment {name} still receives {weight}% of endpoint {endpoint}'s traffic: "
                                    "set it to 0 before deleting it")
            dep.state = "Deleting"
            ep.traffic.pop(name, None)
            backend = ep.door.remove(name)
            self._persist(ep)
            self._spawn(self._delete_deployment, ep, dep, backend, name=f"delete-{endpoint}-{name}")

    # -- scoring and chaos ----------------------------------------------------------------------

    def score(self, endpoint: str, body: Any, deployment: str | None = None, timeout: float = 30.0) -> ScoreResult:
        """A client call through the front door with the endpoint key."""
        import requests

        from functions.shared.scoring_client import post_json

        ep = self._require(endpoint)
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        try:
            answer = post_json(ep.door.scoring_uri, body, deployment=deployment, key=ep.key, timeout=timeout,
                               session=session)
        except requests.RequestException as exc:
            raise PlatformError(f"scoring endpoint {endpoint} failed: {exc}", transient=True) from exc
        return ScoreResult(answer.status, answer.json, answer.elapsed_ms)

    def inject_fault(self, endpoint: str, deployment: str, error_rate: float, status: int = 500,
                     delay_ms: float = 0.0) -> None:
        """Like a service-mesh fault: that share of the requests routed to `deployment` are answered
        `status` by the front door (and logged as that deployment); the others are delayed by
        `delay_ms` before being forwarded."""
        if not 0.0 <= error_rate <= 1.0:
            raise PlatformError(f"error_rate must be within [0, 1], got {error_rate}")
        if not 100 <= status <= 599:
            raise PlatformError(f"status must be an HTTP status, got {status}")
        if delay_ms < 0:
            raise PlatformError(f"delay_ms must be >= 0, got {delay_ms}")
        self._require(endpoint).door.inject_fault(deployment, Fault(error_rate, status, delay_ms))

    def clear_faults(self, endpoint: str, deployment: str | None = None) -> None:
        self._require(endpoint).door.clear_faults(deployment)

    # -- introspection (CLI, monitoring export, tests) ------------------------------------------

    def console_log(self, endpoint: str, deployment: str) -> Path:
        return console_log_path(self.home, endpoint, deployment)

    def server_pids(self) -> dict[str, int]:
        """`endpoint/deployment` → pid of its inference server (gunicorn master), when running."""
        with self._lock:
            return {f"{ep.name}/{n}": d.server.pid for ep in self._endpoints.values()
                    for n, d in ep.deployments.items() if d.server is not None and d.server.pid is not None}

    def inflight(self, endpoint: str, deployment: str) -> int:
        return self._require(endpoint).door.inflight(deployment)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stops every front door and inference server. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            endpoints = list(self._endpoints.values())
        atexit.unregister(self._atexit)
        for ep in endpoints:
            ep.door.close()
        stoppers = [threading.Thread(target=self._stop_deployment, args=(dep,), daemon=True)
                    for ep in endpoints for dep in list(ep.deployments.values())]
        for thread in stoppers:
            thread.start()
        for thread in stoppers + list(self._workers):
            thread.join(self.startup_timeout)
        failed: list[str] = []
        with self._lock:
            for ep in endpoints:
                ep.log.close()
                try:
                    self._persist(ep, running=False)
                except OSError as exc:  # a full disk: the record keeps the last map; its owner is gone
                    failed.append(f"{ep.name}: {exc}")
        if failed:
            raise PlatformError(f"could not record stopped endpoints ({'; '.join(failed)})")

    def __enter__(self) -> "LocalEndpoints":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- workers --------------------------------------------------------------------------------

    def _provision(self, ep: _Endpoint, dep: _Deployment) -> None:
        spec = dep.spec
        env = {
            **spec.environment_variables,
            "MODELOPS_MODEL_NAME": spec.model.name,  # score.py's service_name: online/<model>/<version>
            "MODELOPS_MODEL_VERSION": spec.model.version,
        }
        entry_script = self.entry_script
        if spec.no_code:  # AzureML's layout: the model folder is MLFLOW_MODEL_FOLDER in AZUREML_MODEL_DIR
            entry_script = self.no_code_entry_script
            env.update(AZUREML_MODEL_DIR=str(dep.model_dir.parent), MLFLOW_MODEL_FOLDER=dep.model_dir.name)
        server = InferenceServer(dep.model_dir, self.serving_python, console_log_path(self.home, ep.name, spec.name),
                                 entry_script=entry_script, env=env,
                                 # instance_count becomes worker processes: capacity scales the same way
                                 workers=max(1, spec.instance_count))
        with self._lock:
            if dep.state != "Creating" or self._closed:
                return
            dep.server = server
        try:
            server.start(timeout=self.startup_timeout)
        except Exception as exc:  # ServingError, OSError: the deployment failed, the platform did not
            _kill_group(server)  # gunicorn workers of a master that died
            with self._lock:
                if dep.state == "Creating":
                    dep.state, dep.error = "Failed", str(exc)
                    self._persist(ep)
            return
        with self._lock:
            if dep.state == "Creating" and not self._closed:
                dep.state = "Succeeded"
                ep.door.add_backend(spec.name, server.port)
                self._persist(ep)
                return
        server.stop()  # deleted or closed while it was starting

    def _delete_deployment(self, ep: _Endpoint, dep: _Deployment, backend: Any) -> None:
        if backend is not None:
            ep.door.drain(backend, self.drain_timeout)  # on timeout, stop anyway: AzureML does too
        self._stop_deployment(dep)
        with self._lock:
            if ep.deployments.get(dep.spec.name) is dep:
                del ep.deployments[dep.spec.name]
            if not self._closed:
                self._persist(ep)

    def _delete_endpoint(self, ep: _Endpoint) -> None:
        ep.door.close()
        for dep in list(ep.deployments.values()):
            self._stop_deployment(dep)
        with self._lock:
            ep.log.close()
            if self._endpoints.get(ep.name) is ep:
                del self._endpoints[ep.name]
            (endpoint_dir(self.home, ep.name) / STATE_FILE).unlink(missing_ok=True)

    def _stop_deployment(self, dep: _Deployment) -> None:
        """Stop a deployment's process, including one still starting (its thread is woken by
        killing the process, then joined so that it cannot leave a process behind)."""
        with self._lock:
            if dep.state == "Creating":
                dep.state = "Deleting"
        thread = dep.thread
        while thread is not None and thread.is_alive() and thread is not threading.current_thread():
            _kill_group(dep.server)
            thread.join(0.2)
        if dep.server is not None:
            dep.server.stop()

    def _spawn(self, target: Any, *args: Any, name: str) -> threading.Thread:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._workers = [t for t in self._workers if t.is_alive()] + [thread]
        thread.start()
        return thread

    # -- helpers --------------------------------------------------------------------------------

    def _require(self, endpoint: str) -> _Endpoint:
        with self._lock:
            ep = self._endpoints.get(endpoint)
        if ep is None:
            raise PlatformError(f"endpoint {endpoint} not found")
        return ep

    def _check_open(self) -> None:
        if self._closed:
            raise PlatformError("the local endpoints are closed")

    def _refresh(self, ep: _Endpoint) -> None:
        """A server that died after becoming healthy makes its deployment Failed (its requests
        already get 502 from the front door)."""
        changed = False
        for dep in ep.deployments.values():
            if dep.state == "Succeeded" and dep.server is not None and not dep.server.is_running():
                dep.state = "Failed"
                dep.error = f"inference server exited unexpectedly; see {dep.server.console_log}"
                changed = True
        if changed and not self._closed:
            self._persist(ep)

    def _persist(self, ep: _Endpoint, running: bool = True) -> None:
        folder = endpoint_dir(self.home, ep.name)
        folder.mkdir(parents=True, exist_ok=True)
        state = {
            "name": ep.name,
            "provisioning_state": ep.state,
            "scoring_uri": ep.door.scoring_uri,
            "port": ep.door.port,
            "key": ep.key,
            "tags": ep.tags,
            "traffic": ep.traffic,
            "deployments": {
                name: {
                    "provisioning_state": dep.state,
                    "model_uri": dep.spec.model.uri,
                    "error": dep.error,
                    "port": dep.server.port if dep.server else None,
                    "pid": dep.server.pid if dep.server else None,
                    "console_log": str(console_log_path(self.home, ep.name, name)),
                    "created": dep.created,
                    "spec": dataclasses.asdict(dep.spec),
                }
                for name, dep in ep.deployments.items()
            },
            "traffic_log": str(traffic_log_path(self.home, ep.name)),
            "owner_pid": os.getpid(),
            "running": running,
            "created": ep.created,
            "updated": utc_now_iso(),
        }
        write_state(folder / STATE_FILE, state)

    # -- after the owner stopped ----------------------------------------------------------------

    def revive(self, timeout: float = 180.0) -> list[str]:
        """Bring back the endpoints a previous owner of the home recorded: same deployments (those
        Succeeded or still Creating), same traffic map, new processes and ports (the owner ends interrupted rollouts first, so the
        recorded maps are the restored ones). Only the home's owner calls this."""
        revived = []
        for name, state in read_states(self.home).items():
            if self.get_endpoint(name) is not None:
                continue
            # one still Creating was being provisioned when its owner stopped (a resumed rollout
            # waits for it); recovery removed it first unless its rollout is being resumed
            deployments = {d: info for d, info in state.get("deployments", {}).items()
                           if info.get("provisioning_state") in ("Succeeded", "Creating") and info.get("spec")}
            if not deployments:
                continue
            self.begin_create_endpoint(name, tags=state.get("tags") or {})
            for info in deployments.values():
                spec = dict(info["spec"])
                spec["model"] = ModelRef(**spec["model"])
                self.begin_create_deployment(DeploymentSpec(**spec))
            for dep_name in deployments:
                self.wait_deployment(name, dep_name, timeout=timeout)
            traffic = {d: int(w) for d, w in state.get("traffic", {}).items() if d in deployments}
            if traffic and sum(traffic.values()) in (0, 100):
                self.set_traffic(name, traffic)
            revived.append(name)
        return revived

    def recorded(self, name: str) -> EndpointState | None:
        """The endpoint as its state.json records it (for a process that does not serve it)."""
        try:
            state = json.loads((endpoint_dir(self.home, name) / STATE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            return None
        deployments = {d: str(info.get("provisioning_state", "")) for d, info in state.get("deployments", {}).items()}
        return EndpointState(name=name, provisioning_state=str(state.get("provisioning_state", "")),
                             scoring_uri=str(state.get("scoring_uri") or ""),
                             traffic={d: int(w) for d, w in state.get("traffic", {}).items()}, deployments=deployments)

    def amend_stopped(self, name: str, traffic: dict[str, int], drop: tuple[str, ...] = ()) -> dict[str, Any]:
        """Rewrite the recorded state of an endpoint nobody serves (its owner stopped or died):
        remove `drop`ped deployments and set the traffic map the next owner revives. The map must
        name every remaining deployment and sum to 100 (or 0), as `set_traffic` demands."""
        path = endpoint_dir(self.home, name) / STATE_FILE
        with self._lock:
            if name in self._endpoints and not self._closed:
                raise PlatformError(f"endpoint {name} is being served by this process: use set_traffic")
            state = json.loads(path.read_text())
            if state.get("running") and _pid_alive(state.get("owner_pid")) and state.get("owner_pid") != os.getpid():
                raise PlatformError(f"endpoint {name} is served by live process {state.get('owner_pid')}")
            deployments = {d: info for d, info in state.get("deployments", {}).items() if d not in drop}
            if set(traffic) != set(deployments):
                raise PlatformError(f"traffic {traffic} must name exactly the deployments {sorted(deployments)} "
                                    f"of endpoint {name}")
            if any(isinstance(w, bool) or not isinstance(w, int) or not 0 <= w <= 100 for w in traffic.values()) \
                    or sum(traffic.values()) not in (0, 100):
                raise PlatformError(f"traffic {traffic} must be integers summing to 100 (or all 0)")
            state.update(deployments=deployments, traffic=dict(traffic), updated=utc_now_iso())
            write_state(path, state)
            return state

    def reap_orphans(self, grace: float = 5.0) -> list[int]:
        """Stop inference servers a dead owner left running (they run in their own session and
        outlive it, unless their watchdog already stopped them). Only processes that are one of
        our servers (their command line says so) are signalled: a recycled pid is left alone."""
        reaped = []
        for state in read_states(self.home).values():
            if state.get("owner_pid") == os.getpid():
                continue  # ours (the caller owns the home: every other recorded server is an orphan)
            for info in state.get("deployments", {}).values():
                pid = info.get("pid")
                if isinstance(pid, int) and _is_our_server(pid):
                    _stop_group(pid, grace)
                    reaped.append(pid)
        return reaped


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Atomically (readers never see half a file) and 0600: state.json holds the endpoint key."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(state, indent=2, sort_keys=True))
    os.chmod(tmp, 0o600)  # an existing temp file (a crashed writer's) keeps its mode through O_CREAT
    os.replace(tmp, path)


def _is_our_server(pid: int) -> bool:
    return runs(pid, b"loopback_azmlinfsrv")


def _stop_group(pid: int, grace: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if not _is_our_server(pid):
                return
            time.sleep(0.05)


def _check_name(kind: str, name: str) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise PlatformError(f"{kind} name {name!r} is invalid: a letter, then up to 31 letters, digits or '-'")


def _model_dir(spec: DeploymentSpec) -> Path:
    uri = spec.model.uri
    path = Path(uri.removeprefix("file://")).expanduser()
    if not path.is_dir():
        raise PlatformError(f"model {spec.model.name}:{spec.model.version} has uri {uri!r}, which is not a folder "
                            "on this machine (the local platform serves model folders)")
    return path.resolve()


def _kill_group(server: InferenceServer | None) -> None:
    """SIGTERM the server's process group (it runs in its own session), if it has one."""
    pid = server.pid if server is not None else None
    if pid is None:
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _close_at_exit(ref: "weakref.ref[LocalEndpoints]") -> None:
    instance = ref()
    if instance is not None:
        instance.close()
