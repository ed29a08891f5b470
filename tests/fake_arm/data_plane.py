"""What AzureML runs behind the fake's online endpoints: the data plane, for end-to-end tests of the
Azure path (the management plane stays FakeAzureML's; the real SDK still talks only to it).

    FakeAzureML (management plane)          ManagedOnlineDataPlane (this module)
    PUT endpoint            ── operation ─► a front door: key auth, `azureml-model-deployment`
                                            header or weighted routing; its scoring URI and key
                                            become the fake's `scoringUri` and listKeys answer
    PUT deployment          ── operation ─► the model's files read from storage (Azurite), then a
                                            real azureml-inference-server-http process with the
                                            deployment's code (score.py) and environment
                                            variables; the operation settles when it answers
                                            (Succeeded) or fails to start (Failed)
    PUT endpoint (traffic)  ── operation ─► the front door's weights
    DELETE deployment/endpoint ───────────► drained and stopped, then settled
    registry import         ── operation ─► the version's blobs copied into the registry's storage
    every request           ──────────────► an AmlOnlineEndpointTrafficLog row (fake Log Analytics)
    every container stdout line ──────────► an AmlOnlineEndpointConsoleLog row

The front door and the server processes are the embedded platform's own
(functions/adapters/local/endpoints.py: the same managed-online-endpoint behaviour, already tested
against AzureML's rules). What this module adds is AzureML's plumbing between them, as Microsoft
documents it:
- a deployment's model is mounted at AZUREML_MODEL_DIR = …/azureml-models/<name>/<version>, with
  a registered folder under its own name below it ("Deploy and score a machine learning model by
  using an online endpoint", the AZUREML_MODEL_DIR section);
- the endpoint's request log goes to AmlOnlineEndpointTrafficLog and the inference server's console
  output to AmlOnlineEndpointConsoleLog once the workspace's diagnostic setting sends them
  ("Monitor online endpoints", Logs section; the columns are the Azure Monitor Logs table
  reference's, tests/fake_log_analytics/tables.py); rows here arrive within `pump_seconds`, where
  Azure's ingestion takes minutes (the adapters' `ingestion_lag` is set to 0 for these tests);
- code: the deployment must name a registered code asset this data plane knows (`code_assets`:
  asset name → folder holding its scoring script), like an image build that fails for a missing
  one; a no-code deployment is refused (AzureML's MLflow image is not here).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from functions.adapters.local.endpoints import LocalEndpoints
from functions.adapters.local.traffic_log import traffic_log_path
from functions.ports import DeploymentSpec, ModelRef, PlatformError
from tests.fake_arm.operations import _Operation
from tests.fake_arm.resources import RESOURCE_GROUP, SUBSCRIPTION, WORKSPACE
from tests.fake_arm.service import FakeAzureML
from tests.fake_log_analytics import CONSOLE_TABLE, TRAFFIC_TABLE, FakeLogAnalytics

_DATASTORE_PATH = re.compile(r"azureml://.*/datastores/(?P<store>[^/]+)/paths/(?P<path>.*)")
_CODE_ID = re.compile(r".*/codes/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$")


class ManagedOnlineDataPlane:
    """Serves the fake's endpoints for real; see the module docstring. Use as a context manager."""

    def __init__(self, fake: FakeAzureML, logs: FakeLogAnalytics, blobs: Any, *, home: Path, serving_python: Path,
                 code_assets: dict[str, Path], pump_seconds: float = 0.2) -> None:
        self.fake, self.logs, self.blobs = fake, logs, blobs
        self.home = Path(home)
        self.code_assets = {name: Path(folder) for name, folder in code_assets.items()}
        self.endpoints = LocalEndpoints(self.home / "platform", serving_python)
        self.pump_seconds = pump_seconds
        self.errors: list[str] = []  # what the data plane could not do (tests assert it stays empty)
        self._threads: list[threading.Thread] = []
        self._endpoint_locks: dict[str, threading.Lock] = {}
        self._offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> "ManagedOnlineDataPlane":
        self.fake.settle_after = None  # resources settle when the data plane says so
        self.fake.on_operation = self._on_operation
        pump = threading.Thread(target=self._pump_logs, name="data-plane-logs", daemon=True)
        pump.start()
        self._threads.append(pump)
        return self

    def __exit__(self, *exc: object) -> None:
        self.fake.on_operation = None
        self._stop.set()
        for thread in list(self._threads):
            thread.join(timeout=60)
        self.endpoints.close()
        self._pump_once()

    def _on_operation(self, op: _Operation) -> None:  # under the fake's lock: hand it on only
        thread = threading.Thread(target=self._run, args=(op,), name=f"data-plane-{op.kind}-{op.action}", daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _run(self, op: _Operation) -> None:
        try:
            if op.kind == "endpoint":
                self._endpoint(op)
            elif op.kind == "deployment":
                self._deployment(op)
            elif op.kind == "import":
                self._import(op)
        except Exception as exc:  # noqa: BLE001 - recorded, and the operation fails as the service's would
            self.errors.append(f"{op.kind} {op.action} {op.key}: {type(exc).__name__}: {exc}")
            self.fake.fail_operation(op.kind, op.key, f"data plane: {exc}")

    def _endpoint_lock(self, name: str) -> threading.Lock:
        with self._lock:
            return self._endpoint_locks.setdefault(name, threading.Lock())

    # -- endpoints --------------------------------------------------------------------------------

    def _endpoint(self, op: _Operation) -> None:
        name = op.key[0]
        with self._endpoint_lock(name):
            if op.action == "delete":
                self.endpoints.begin_delete_endpoint(name)
                _wait(lambda: self.endpoints.get_endpoint(name) is None, f"endpoint {name} deleted")
                self.fake.finish(op)
                return
            self.endpoints.begin_create_endpoint(name)  # idempotent: an update keeps its front door
            state = self.endpoints.get_endpoint(name)
            key = self.endpoints.get_key(name)
            with self.fake._lock:
                self.fake.set_scoring_uri(name, state.scoring_uri)
                self.fake.keys[name] = {"primaryKey": key, "secondaryKey": key}
            self._apply_traffic(name)
            self.fake.finish(op)

    def _apply_traffic(self, endpoint: str) -> None:
        """The latest traffic map the fake holds, on the front door (an older update never wins)."""
        with self.fake._lock:
            stored = self.fake.endpoints.get(endpoint)
            traffic = {k: int(v) for k, v in (stored["properties"]["traffic"] if stored else {}).items()}
        live = self.endpoints.get_endpoint(endpoint)
        if traffic and live is not None and traffic != {k: v for k, v in live.traffic.items() if k in traffic}:
            missing = {k: 0 for k in live.traffic if k not in traffic}  # created here, not yet in the map
            self.endpoints.set_traffic(endpoint, {**traffic, **missing})

    # -- deployments ------------------------------------------------------------------------------

    def _deployment(self, op: _Operation) -> None:
        endpoint, name = op.key
        if op.action == "delete":
            with self._endpoint_lock(endpoint):  # the fake took its traffic away first: so does the front door
                self._apply_traffic(endpoint)
                self.endpoints.begin_delete_deployment(endpoint, name)
            _wait(lambda: self.endpoints.get_deployment(endpoint, name) is None, f"deployment {endpoint}/{name} gone")
            self.fake.finish(op)
            return
        with self.fake._lock:
            props = json.loads(json.dumps(self.fake.deployments[op.key]["properties"]))
            sku = dict(self.fake.deployments[op.key].get("sku") or {})
        _wait(lambda: self.endpoints.get_endpoint(endpoint) is not None, f"endpoint {endpoint} up")
        code = props.get("codeConfiguration") or {}
        found = _CODE_ID.fullmatch(code.get("codeId") or "")
        if not found:
            raise PlatformError(f"deployment {endpoint}/{name} has no code configuration: no-code (MLflow image) "
                                "deployments are not served by this data plane")
        folder = self.code_assets.get(found.group("name"))
        if folder is None or not (folder / code.get("scoringScript", "score.py")).is_file():
            raise PlatformError(f"code asset {found.group('name')}:{found.group('version')} is not known to the "
                                f"data plane (image build failed)")
        model_name, model_version, model_dir = self._mount(props.get("model") or "", self.home / "mounts" / endpoint / name)
        spec = DeploymentSpec(endpoint, name, ModelRef(model_name, model_version, str(model_dir)),
                              instance_count=int(sku.get("capacity") or 1),
                              environment_variables=dict(props.get("environmentVariables") or {}))
        self.endpoints.begin_create_deployment(spec)
        state = self.endpoints.wait_deployment(endpoint, name, timeout=180)
        if state is None or not state.ready:
            raise PlatformError(f"deployment {endpoint}/{name} did not start: {state.error if state else 'gone'}")
        self.fake.finish(op)

    def _mount(self, model_id: str, under: Path) -> tuple[str, str, Path]:
        """The model's files, read from its storage into <under>/azureml-models/<name>/<version>/ (each
        deployment has its own container, hence its own mount)."""
        ws = re.fullmatch(r".*/workspaces/[^/]+/models/([^/]+)/versions/([^/]+)", model_id, re.I)
        reg = re.fullmatch(r"azureml://registries/[^/]+/models/([^/]+)/versions/([^/]+)", model_id)
        if ws:
            name, version = ws.group(1), ws.group(2)
            with self.fake._lock:
                uri = self.fake.workspace_models[(name, version)]["properties"]["modelUri"]
                where = _DATASTORE_PATH.fullmatch(uri)
                container = self.fake.datastores[(WORKSPACE, where.group("store"))]["properties"]["containerName"]
            prefix = where.group("path")
        elif reg:
            name, version = reg.group(1), reg.group(2)
            container, prefix = self.fake.registry_container, f"{name}/{version}/"
        else:
            raise PlatformError(f"model {model_id!r} is neither a workspace nor a registry model id")
        root = under / "azureml-models" / name / version
        mount = root / Path(prefix.rstrip("/")).name
        client = self.blobs.get_container_client(container)
        count = 0
        for blob in client.list_blobs(name_starts_with=prefix):
            target = mount / blob.name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.download_blob(blob.name).readall())
            count += 1
        if not count:
            raise PlatformError(f"model {name}:{version}: no files under {container}/{prefix}")
        return name, version, root

    # -- registry imports -------------------------------------------------------------------------

    def _import(self, op: _Operation) -> None:
        """The service copies the workspace version's files into the registry's storage."""
        name, version, source_key = op.key
        with self.fake._lock:
            uri = self.fake.workspace_models[source_key]["properties"]["modelUri"]
            where = _DATASTORE_PATH.fullmatch(uri)
            container = self.fake.datastores[(WORKSPACE, where.group("store"))]["properties"]["containerName"]
        prefix = where.group("path")
        source = self.blobs.get_container_client(container)
        target = self.blobs.get_container_client(self.fake.registry_container)
        for blob in source.list_blobs(name_starts_with=prefix):
            data = source.download_blob(blob.name).readall()
            target.upload_blob(f"{name}/{version}/{blob.name[len(prefix):]}", data, overwrite=True)
        self.fake.finish(op)

    # -- logs -------------------------------------------------------------------------------------

    def _pump_logs(self) -> None:
        while not self._stop.wait(self.pump_seconds):
            self._pump_once()

    def _pump_once(self) -> None:
        try:
            for endpoint_dir in sorted((self.home / "platform" / "endpoints").glob("*")):
                endpoint = endpoint_dir.name
                traffic = [self._traffic_row(json.loads(line)) for line in self._new_lines(
                    traffic_log_path(self.home / "platform", endpoint))]
                if traffic:
                    self.logs.add_rows(TRAFFIC_TABLE, traffic)
                for log in sorted(endpoint_dir.glob("deployments/*/console.log")):
                    deployment = log.parent.name
                    now = datetime.now(timezone.utc)
                    rows = [{"TimeGenerated": now, "DeploymentName": deployment, "Message": line,
                             "ContainerName": "inference-server", "InstanceId": f"{deployment}-0",
                             "OperationName": "AmlOnlineEndpointConsoleLog", "Type": CONSOLE_TABLE,
                             "_ResourceId": _endpoint_arm(endpoint)}
                            for line in self._new_lines(log)]
                    if rows:
                        self.logs.add_rows(CONSOLE_TABLE, rows)
        except Exception as exc:  # noqa: BLE001 - a pump failure is recorded, and the test sees it
            self.errors.append(f"log pump: {type(exc).__name__}: {exc}")

    def _new_lines(self, path: Path) -> list[str]:
        if not path.is_file():
            return []
        with open(path, "rb") as f:
            f.seek(self._offsets.get(path, 0))
            data = f.read()
        end = data.rfind(b"\n") + 1  # whole lines only: the rest is still being written
        self._offsets[path] = self._offsets.get(path, 0) + end
        return [line for line in data[:end].decode("utf-8", "replace").splitlines() if line.strip()]

    @staticmethod
    def _traffic_row(entry: dict[str, Any]) -> dict[str, Any]:
        status = int(entry["status"])
        return {
            "TimeGenerated": datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc),
            "EndpointName": entry["endpoint"], "DeploymentName": entry.get("deployment") or "",
            "Method": "POST", "Path": "/score", "Protocol": "HTTP/1.1", "AuthType": "Key",
            "ResponseCode": status, "ModelStatusCode": status if entry.get("deployment") else 0,
            "TotalDurationMs": int(round(float(entry["duration_ms"]))),
            "XRequestId": entry.get("request_id") or str(uuid.uuid4()),
            "OperationName": "AmlOnlineEndpointTrafficLog", "Type": TRAFFIC_TABLE,
            "_ResourceId": _endpoint_arm(entry["endpoint"]),
        }


def _endpoint_arm(endpoint: str) -> str:
    return (f"/SUBSCRIPTIONS/{SUBSCRIPTION.upper()}/RESOURCEGROUPS/{RESOURCE_GROUP.upper()}/PROVIDERS/"
            f"MICROSOFT.MACHINELEARNINGSERVICES/WORKSPACES/{WORKSPACE.upper()}/ONLINEENDPOINTS/{endpoint.upper()}")


def _wait(condition: Any, what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise PlatformError(f"data plane: timed out waiting for {what}")
        time.sleep(0.05)
