"""A fake Azure Resource Manager / AzureML service, served to the real azure-ai-ml SDK as a
`requests` transport adapter.

Mount it on a `requests.Session`, wrap the session in azure-core's `RequestsTransport` and pass
that to `MLClient(..., transport=...)`: every REST call the SDK makes through its pipelines lands
in `FakeAzureML.send`, which answers from in-memory state and records the request (method, URL,
api-version, JSON body) for assertions. Nothing leaves the process.

Routes (paths are matched without host; the registry's regional "MFE" host carries the prefix
/mferp/managementfrontend, which is stripped):

  workspace       GET     /subscriptions/S/resourceGroups/G/providers/Microsoft.MachineLearningServices/workspaces/W
  endpoints       GET|PUT|DELETE  …/workspaces/W/onlineEndpoints/E          (PUT 201 + Azure-AsyncOperation,
                  GET     …/workspaces/W/onlineEndpoints                     DELETE 202 + Location)
                  POST    …/onlineEndpoints/E/listKeys
  deployments     GET|PUT|DELETE  …/onlineEndpoints/E/deployments/D
                  GET     …/onlineEndpoints/E/deployments
  ws models       GET     …/workspaces/W/models/N/versions/V, GET …/models/N/versions (list)
  ws data         GET     …/workspaces/W/data/N (container: latestVersion, what `name@latest` reads),
                  GET     …/workspaces/W/data/N/versions/V
  jobs            GET|PUT …/workspaces/W/jobs/J (PUT 201 creates with status NotStarted; a PUT on an
                          existing name is 200 when only description/tags/displayName/properties/
                          isArchived differ, else 400 UserError "A job with this name already exists")
                  GET     …/workspaces/W/jobs (list; honours `tag` (key present), `jobType`,
                          `listViewType`; newest first; pages of `job_page_size` with nextLink)
  discovery       GET     https://<region>.api.azureml.ms/registrymanagement/v1.0/registries/R/discovery
  registry models GET|PUT …/registries/R/models/N/versions/V, GET …/registries/R/models/N/versions
                  GET     …/registries/R/models/N (container)
                  PUT     …/registries/R/tempdatarefs/N/versions/V (409 "already exists" for an existing
                          version, which the SDK reads as "nothing to upload"; no uploads otherwise)
  registry import POST    …/registries/R/import (202 + Location)
  LRO status      GET     /fake-operations/<id> (Azure-AsyncOperation target: {"status": ...})
                  GET     /fake-results/<id>    (Location target: 202 while running, then 204 — or 200
                          with an EMPTY body for an import: azure-ai-ml treats a non-empty final body
                          as "not imported" and goes on into its upload path)
  Unknown routes answer 404 code FakeNoRoute and are listed in `unhandled`.

Long-running operations: a PUT/DELETE answers "Creating"/"Updating"/"Deleting" with an operation
URL and Retry-After 0.02 s, so azure-core's background poller threads do not sleep 5-30 s (the
initial DELETE answer carries none: the generated client parses that header as an int). The
resource settles (`Succeeded`, or gone for a delete) after `settle_after` status reads of it or its
operation — 1 by default; 0 settles on write; None only on an explicit `settle()`.

Jobs are not long-running operations: they stay in the status the PUT gave them until a test moves
them (`set_job_status`). Components referenced by a job are not checked.

Semantics it enforces, like the service: a deployment PUT needs its endpoint; an endpoint PUT's
traffic must name existing deployments, sum to 100 (or be empty) and give traffic only to
Succeeded deployments (400 otherwise); deleting a deployment that has traffic is refused (400).
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from requests.adapters import BaseAdapter

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
RESOURCE_GROUP = "rg-modelops"
WORKSPACE = "mlw-staging"
REGISTRY = "mlr-shared"
REGISTRY_SUBSCRIPTION = "00000000-0000-0000-0000-000000000002"
REGISTRY_RESOURCE_GROUP = "rg-registry"
LOCATION = "eastus"
WORKSPACE_GUID = "11111111-2222-3333-4444-555555555555"
TENANT = "72f988bf-0000-0000-0000-000000000000"

PROVIDER = "/providers/Microsoft.MachineLearningServices"
MFE_PREFIX = "/mferp/managementfrontend"
OPERATIONS_HOST = "https://management.azure.com"


# --------------------------------------------------------------------------------------- credential


def fake_jwt(audience: str = "https://management.azure.com", expires_on: int | None = None) -> str:
    """An unsigned JWT. The SDK decodes some tokens (pipeline job submission reads `aud`), so a
    fake credential must hand out something that parses."""

    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    exp = expires_on or int(time.time()) + 10 * 365 * 24 * 3600
    claims = {"aud": audience, "iss": f"https://sts.windows.net/{TENANT}/", "tid": TENANT, "oid": str(uuid.UUID(int=7)),
              "exp": exp, "iat": int(time.time()), "nbf": int(time.time()) - 60}
    return f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims)}.c2ln"


class FakeCredential:
    """TokenCredential (and SupportsTokenInfo) handing out a far-future fake JWT per scope."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def _token(self, scopes: tuple[str, ...]) -> tuple[str, int]:
        self.scopes.append(scopes)
        audience = scopes[0].removesuffix("/.default") if scopes else "https://management.azure.com"
        expires = int(time.time()) + 10 * 365 * 24 * 3600
        return fake_jwt(audience, expires), expires

    def get_token(self, *scopes: str, **kwargs: Any):
        from azure.core.credentials import AccessToken

        token, expires = self._token(scopes)
        return AccessToken(token, expires)

    def get_token_info(self, *scopes: str, options: Any = None):
        from azure.core.credentials import AccessTokenInfo

        token, expires = self._token(scopes)
        return AccessTokenInfo(token, expires)


# ------------------------------------------------------------------------------------------- records


@dataclass
class Call:
    method: str
    url: str
    host: str
    path: str  # without the MFE prefix
    api_version: str | None
    query: dict[str, list[str]]
    body: Any  # parsed JSON, raw text, or None
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0

    @property
    def is_write(self) -> bool:
        return self.method in ("PUT", "POST", "PATCH", "DELETE") and not self.path.endswith(("/listKeys", "/token"))

    def __repr__(self) -> str:  # short, for assertion messages
        return f"{self.method} {self.path}?api-version={self.api_version} -> {self.status}"


@dataclass
class _Operation:
    id: str
    kind: str  # endpoint | deployment | import
    key: tuple
    action: str  # create | update | delete | import
    remaining: int | None
    status: str = "InProgress"
    error: dict | None = None


@dataclass
class _Failure:
    method: str
    pattern: re.Pattern
    status: int
    times: int
    body: dict
    headers: dict[str, str]


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, {"error": {"code": code, "message": message}})


# ------------------------------------------------------------------------------------------ the fake


class FakeAzureML(BaseAdapter):
    """In-memory ARM + AzureML registry answering the SDK's REST calls (see module docstring)."""

    def __init__(self, *, settle_after: int | None = 1, location: str = LOCATION, retry_after: float = 0.02) -> None:
        super().__init__()
        self.settle_after = settle_after
        self.retry_after = str(retry_after)
        self.location = location
        self.calls: list[Call] = []
        self.unhandled: list[Call] = []
        self._lock = threading.RLock()
        self._ops: dict[str, _Operation] = {}
        self._failures: list[_Failure] = []
        self._seq = itertools.count(1)
        self.workspaces: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}
        self.deployments: dict[tuple[str, str], dict] = {}
        self.keys: dict[str, dict] = {}
        self.workspace_models: dict[tuple[str, str], dict] = {}
        self.registry_models: dict[tuple[str, str], dict] = {}
        self.registries: dict[str, dict] = {}
        self.scoring_uris: dict[str, str] = {}
        self.data: dict[tuple[str, str], dict] = {}
        self.jobs: dict[str, dict] = {}  # insertion order = creation order
        self.job_page_size: int | None = None
        self.add_workspace(WORKSPACE)
        self.add_registry(REGISTRY)

    # ---------------------------------------------------------------- wiring

    def session(self) -> requests.Session:
        s = requests.Session()
        s.mount("https://", self)
        s.mount("http://", self)
        return s

    def transport(self):
        from azure.core.pipeline.transport import RequestsTransport

        return RequestsTransport(session=self.session(), session_owner=False)

    def close(self) -> None:
        pass

    # ---------------------------------------------------------------- seeding / inspection

    def add_workspace(self, name: str, guid: str = WORKSPACE_GUID) -> None:
        self.workspaces[name] = {"name": name, "guid": guid}

    def add_registry(self, name: str) -> None:
        self.registries[name] = {"name": name}

    def add_workspace_model(self, name: str, version: str, *, tags: dict[str, str] | None = None,
                            path: str | None = None) -> dict:
        arm = f"{_ws_prefix(WORKSPACE)}/models/{name}/versions/{version}"
        body = {
            "id": arm, "name": version, "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
            "properties": {
                "description": f"{name} v{version}", "tags": dict(tags or {}), "properties": {},
                "isArchived": False, "isAnonymous": False, "flavors": {}, "modelType": "custom_model",
                "modelUri": path or (f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}"
                                     f"/workspaces/{WORKSPACE}/datastores/workspaceblobstore"
                                     f"/paths/models/{name}/{version}/"),
                "jobName": f"train-{name}-{version}", "provisioningState": "Succeeded", "stage": "Development",
            },
            "systemData": _system_data(),
        }
        with self._lock:
            self.workspace_models[(name, version)] = body
        return body

    def add_registry_model(self, name: str, version: str, *, tags: dict[str, str] | None = None) -> dict:
        body = _registry_model_body(name, version, tags or {}, self.location)
        with self._lock:
            self.registry_models[(name, version)] = body
        return body

    def add_data(self, name: str, version: str, *, data_type: str = "uri_file", path: str | None = None) -> dict:
        body = {
            "id": f"{_ws_prefix(WORKSPACE)}/data/{name}/versions/{version}", "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/data/versions",
            "properties": {"dataType": data_type, "dataUri": path or (
                f"azureml://subscriptions/{SUBSCRIPTION}/resourcegroups/{RESOURCE_GROUP}/workspaces/{WORKSPACE}"
                f"/datastores/workspaceblobstore/paths/data/{name}/{version}/data.csv"),
                "tags": {}, "properties": {}, "isArchived": False, "isAnonymous": False},
            "systemData": _system_data(),
        }
        with self._lock:
            self.data[(name, version)] = body
        return body

    def add_job(self, name: str, *, status: str = "Running", tags: dict[str, str] | None = None,
                job_type: str = "Pipeline", experiment: str = "Default", archived: bool = False) -> dict:
        """A job submitted by someone else (minimal body the SDK can parse)."""
        props: dict[str, Any] = {"jobType": job_type, "displayName": name, "experimentName": experiment,
                                 "tags": dict(tags or {}), "properties": {}, "isArchived": archived,
                                 "inputs": {}, "outputs": {}, "jobs": {}, "settings": {}}
        if job_type != "Pipeline":
            props = {"jobType": job_type, "displayName": name, "experimentName": experiment, "tags": dict(tags or {}),
                     "properties": {}, "isArchived": archived, "command": "echo", "environmentId":
                     f"{_ws_prefix(WORKSPACE)}/environments/env/versions/1", "computeId": None}
        with self._lock:
            return copy.deepcopy(self._store_job(name, props, status))

    def set_job_status(self, name: str, status: str) -> None:
        with self._lock:
            self.jobs[name]["properties"]["status"] = status

    def set_scoring_uri(self, endpoint: str, uri: str) -> None:
        """Point an endpoint's scoringUri somewhere real (a loopback server in tests)."""
        with self._lock:
            self.scoring_uris[endpoint] = uri
            if endpoint in self.endpoints:
                self.endpoints[endpoint]["properties"]["scoringUri"] = uri

    def rotate_keys(self, endpoint: str) -> dict:
        with self._lock:
            self.keys[endpoint] = {"primaryKey": f"pk-{endpoint}-{uuid.uuid4().hex[:8]}",
                                   "secondaryKey": f"sk-{endpoint}-{uuid.uuid4().hex[:8]}"}
            return dict(self.keys[endpoint])

    def fail(self, method: str, path_regex: str, status: int = 503, *, times: int = 1,
             code: str = "ServiceUnavailable", headers: dict[str, str] | None = None) -> None:
        """Answer the next `times` matching requests with `status` (retries count as requests)."""
        with self._lock:
            self._failures.append(_Failure(method.upper(), re.compile(path_regex), status, times,
                                           {"error": {"code": code, "message": f"fake {status}"}}, headers or {}))

    def settle(self) -> None:
        """Finish every pending operation now."""
        with self._lock:
            for op in list(self._ops.values()):
                if op.status == "InProgress":
                    self._finish(op)

    def requests_to(self, method: str | None = None, contains: str = "") -> list[Call]:
        with self._lock:
            return [c for c in self.calls if (method is None or c.method == method) and contains in c.path]

    def writes(self) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.is_write]

    def reset_calls(self) -> None:
        with self._lock:
            self.calls.clear()

    # ---------------------------------------------------------------- transport entry point

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: Any = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        parts = urlsplit(request.url)
        path = parts.path
        if path.startswith(MFE_PREFIX):
            path = path[len(MFE_PREFIX):]
        query = parse_qs(parts.query)
        raw = request.body
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
        call = Call(request.method or "GET", request.url, parts.netloc, path, (query.get("api-version") or [None])[0],
                    query, body, dict(request.headers))
        with self._lock:
            self.calls.append(call)
            try:
                self._inject_failure(call)
                self._route(call)
                raise _error(404, "FakeNoRoute", f"fake has no route for {call.method} {call.path}")
            except _Reply as reply:
                if isinstance(reply.body, dict) and reply.body.get("error", {}).get("code") == "FakeNoRoute":
                    self.unhandled.append(call)
                call.status = reply.status
                return self._response(request, reply)

    def _inject_failure(self, call: Call) -> None:
        for failure in self._failures:
            if failure.times > 0 and failure.method == call.method and failure.pattern.search(call.path):
                failure.times -= 1
                raise _Reply(failure.status, failure.body, failure.headers)

    def _response(self, request: requests.PreparedRequest, reply: _Reply) -> requests.Response:
        response = requests.Response()
        response.status_code = reply.status
        response.request = request
        response.url = request.url
        response.reason = {200: "OK", 201: "Created", 202: "Accepted", 204: "No Content", 400: "Bad Request",
                           404: "Not Found", 409: "Conflict", 429: "Too Many Requests",
                           503: "Service Unavailable"}.get(reply.status, "Status")
        content = b"" if reply.body is None else json.dumps(reply.body).encode()
        headers = {"x-ms-request-id": str(uuid.uuid4()), **reply.headers}
        if content:
            headers["Content-Type"] = "application/json; charset=utf-8"
        headers["Content-Length"] = str(len(content))
        response.headers = requests.structures.CaseInsensitiveDict(headers)
        response._content = content
        response._content_consumed = True
        response.raw = _BytesRaw(content)
        response.encoding = "utf-8"
        return response

    # ---------------------------------------------------------------- routing

    def _route(self, c: Call) -> None:
        p = c.path
        m = re.fullmatch(r"/registrymanagement/v1\.0/registries/([^/]+)/discovery", p)
        if m:
            self._discovery(c, m.group(1))
        m = re.fullmatch(r"/fake-operations/([^/]+)", p)
        if m:
            self._operation_status(c, m.group(1))
        m = re.fullmatch(r"/fake-results/([^/]+)", p)
        if m:
            self._operation_result(c, m.group(1))

        ws = re.fullmatch(rf"/subscriptions/[^/]+/resourceGroups/[^/]+{PROVIDER}/workspaces/([^/]+)(/.*)?", p, re.I)
        if ws:
            if ws.group(1) not in self.workspaces:
                raise _error(404, "ResourceNotFound", f"workspace {ws.group(1)} not found")
            self._workspace_route(c, ws.group(1), ws.group(2) or "")
        reg = re.fullmatch(rf"/subscriptions/[^/]+/resourceGroups/[^/]+{PROVIDER}/registries/([^/]+)(/.*)?", p, re.I)
        if reg:
            if reg.group(1) not in self.registries:
                raise _error(404, "ResourceNotFound", f"registry {reg.group(1)} not found")
            self._registry_route(c, reg.group(1), reg.group(2) or "")

    def _workspace_route(self, c: Call, ws: str, rest: str) -> None:
        if rest == "" and c.method == "GET":
            raise _Reply(200, self._workspace_body(ws))
        m = re.fullmatch(r"/onlineEndpoints", rest)
        if m and c.method == "GET":
            views = [self._endpoint_view(e, missing_ok=True) for e in sorted(self.endpoints)]
            raise _Reply(200, {"value": [v for v in views if v is not None]})
        m = re.fullmatch(r"/onlineEndpoints/([^/]+)", rest)
        if m:
            self._endpoint(c, m.group(1))
        m = re.fullmatch(r"/onlineEndpoints/([^/]+)/listKeys", rest)
        if m and c.method == "POST":
            self._require_endpoint(m.group(1))
            raise _Reply(200, self.keys[m.group(1)])
        m = re.fullmatch(r"/onlineEndpoints/([^/]+)/deployments", rest)
        if m and c.method == "GET":
            self._require_endpoint(m.group(1))
            views = [self._deployment_view(k, missing_ok=True) for k in sorted(self.deployments) if k[0] == m.group(1)]
            items = [v for v in views if v is not None]
            raise _Reply(200, {"value": items})
        m = re.fullmatch(r"/onlineEndpoints/([^/]+)/deployments/([^/]+)", rest)
        if m:
            self._deployment(c, m.group(1), m.group(2))
        m = re.fullmatch(r"/models/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "GET":
            model = self.workspace_models.get((m.group(1), m.group(2)))
            if model is None:
                raise _error(404, "UserError", f"Could not find model {m.group(1)}:{m.group(2)}")
            raise _Reply(200, model)
        m = re.fullmatch(r"/models/([^/]+)/versions", rest)
        if m and c.method == "GET":
            items = [v for k, v in self.workspace_models.items() if k[0] == m.group(1)]
            raise _Reply(200, {"value": items})
        m = re.fullmatch(r"/data/([^/]+)", rest)
        if m and c.method == "GET":
            self._data_container(ws, m.group(1))
        m = re.fullmatch(r"/data/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "GET":
            data = self.data.get((m.group(1), m.group(2)))
            if data is None:
                raise _error(404, "UserError", f"Could not find data asset {m.group(1)}:{m.group(2)}")
            raise _Reply(200, data)
        if rest == "/jobs" and c.method == "GET":
            self._job_list(c)
        m = re.fullmatch(r"/jobs/([^/]+)", rest)
        if m and c.method == "GET":
            job = self.jobs.get(m.group(1))
            if job is None:
                raise _error(404, "UserError", f"Job {m.group(1)} not found.")
            raise _Reply(200, copy.deepcopy(job))
        if m and c.method == "PUT":
            self._job_put(c, m.group(1))

    def _registry_route(self, c: Call, reg: str, rest: str) -> None:
        m = re.fullmatch(r"/models/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "GET":
            model = self.registry_models.get((m.group(1), m.group(2)))
            if model is None:
                raise _error(404, "UserError", f"Could not find model {m.group(1)}:{m.group(2)} in registry {reg}")
            raise _Reply(200, model)
        if m and c.method == "PUT":
            self._registry_model_put(c, m.group(1), m.group(2))
        m = re.fullmatch(r"/models/([^/]+)/versions", rest)
        if m and c.method == "GET":
            items = [v for k, v in self.registry_models.items() if k[0] == m.group(1)]
            raise _Reply(200, {"value": items})
        m = re.fullmatch(r"/models/([^/]+)", rest)
        if m and c.method == "GET":
            versions = [k for k in self.registry_models if k[0] == m.group(1)]
            if not versions:
                raise _error(404, "UserError", f"Could not find model container {m.group(1)}")
            latest = max(versions, key=lambda k: _version_key(k[1]))[1]
            raise _Reply(200, {"id": f"{_reg_prefix(reg)}/models/{m.group(1)}", "name": m.group(1),
                               "properties": {"latestVersion": latest, "nextVersion": str(int(latest) + 1)
                                              if latest.isdigit() else None, "tags": {}, "isArchived": False}})
        m = re.fullmatch(r"/tempdatarefs/([^/]+)/versions/([^/]+)", rest)
        if m and c.method == "PUT":
            # Upload location for a new asset version; 409 "already exists" for an existing one (the SDK
            # skips the upload on 409 and goes on to PUT the version).
            if (m.group(1), m.group(2)) in self.registry_models:
                raise _error(409, "Conflict", "Asset already exists")
            raise _error(400, "BadArgument", "fake registry does not accept uploads (no blob storage)")
        if rest == "/import" and c.method == "POST":
            self._registry_import(c, reg)

    # ---------------------------------------------------------------- workspace

    def _workspace_body(self, ws: str) -> dict:
        return {
            "id": _ws_prefix(ws), "name": ws, "type": "Microsoft.MachineLearningServices/workspaces",
            "location": self.location, "kind": "Default", "tags": {},
            "identity": {"type": "SystemAssigned", "principalId": str(uuid.UUID(int=3)), "tenantId": TENANT},
            "sku": {"name": "Basic", "tier": "Basic"},
            "properties": {
                "workspaceId": self.workspaces[ws]["guid"], "friendlyName": ws, "provisioningState": "Succeeded",
                "discoveryUrl": f"https://{self.location}.api.azureml.ms/discovery",
                "mlFlowTrackingUri": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{_ws_prefix(ws)}",
                "publicNetworkAccess": "Enabled", "hbiWorkspace": False,
            },
            "systemData": _system_data(),
        }

    # ---------------------------------------------------------------- data and jobs

    def _data_container(self, ws: str, name: str) -> None:
        versions = [k[1] for k in self.data if k[0] == name]
        if not versions:
            raise _error(404, "UserError", f"Could not find data asset {name}")
        latest = max(versions, key=_version_key)
        raise _Reply(200, {"id": f"{_ws_prefix(ws)}/data/{name}", "name": name,
                           "type": "Microsoft.MachineLearningServices/workspaces/data",
                           "properties": {"dataType": self.data[(name, latest)]["properties"]["dataType"],
                                          "latestVersion": latest, "isArchived": False, "tags": {}},
                           "systemData": _system_data()})

    # What a PUT may change on an existing job (the service's own list, from its error message).
    _JOB_MUTABLE = frozenset({"description", "tags", "displayName", "properties", "isArchived"})

    def _store_job(self, name: str, props: dict, status: str) -> dict:
        props = copy.deepcopy(props)
        props["status"] = status
        props.setdefault("experimentName", "Default")
        studio = f"https://ml.azure.com/runs/{name}?wsid={_ws_prefix(WORKSPACE)}"  # the SDK appends &tid=
        props["services"] = {
            "Tracking": {"jobServiceType": "Tracking", "endpoint": f"azureml://{self.location}.api.azureml.ms/mlflow"
                                                                   f"/v1.0{_ws_prefix(WORKSPACE)}?"},
            "Studio": {"jobServiceType": "Studio", "endpoint": studio},
        }
        stored = {"id": f"{_ws_prefix(WORKSPACE)}/jobs/{name}", "name": name,
                  "type": "Microsoft.MachineLearningServices/workspaces/jobs", "properties": props,
                  "systemData": {**_system_data(), "createdAt": f"2026-01-01T00:00:{len(self.jobs) % 60:02d}Z"}}
        self.jobs[name] = stored
        return stored

    def _job_put(self, c: Call, name: str) -> None:
        body = c.body if isinstance(c.body, dict) else {}
        props = body.get("properties") or {}
        existing = self.jobs.get(name)
        if existing is None:
            raise _Reply(201, copy.deepcopy(self._store_job(name, props, "NotStarted")))
        old = existing["properties"]
        ignore = self._JOB_MUTABLE | {"status", "services"}
        if {k: v for k, v in props.items() if k not in ignore} != {k: v for k, v in old.items() if k not in ignore}:
            raise _error(400, "UserError", "A job with this name already exists. If you are trying to create a new "
                         "job, use a different name. If you are trying to update an existing job, the existing "
                         "job's Settings, Inputs, Outputs, Jobs, InputBindings, OutputBindings cannot be changed. "
                         "Only description, tags, displayName, properties, and isArchived can be updated.")
        for key in self._JOB_MUTABLE & set(props):
            old[key] = copy.deepcopy(props[key])
        raise _Reply(200, copy.deepcopy(existing))

    def _job_list(self, c: Call) -> None:
        tag = (c.query.get("tag") or [None])[0]
        job_type = (c.query.get("jobType") or [None])[0]
        view = (c.query.get("listViewType") or ["ActiveOnly"])[0]
        items = []
        for job in reversed(list(self.jobs.values())):  # newest first
            props = job["properties"]
            if tag is not None and tag not in (props.get("tags") or {}):
                continue
            if job_type is not None and props.get("jobType") != job_type:
                continue
            archived = bool(props.get("isArchived"))
            if (view == "ActiveOnly" and archived) or (view == "ArchivedOnly" and not archived):
                continue
            items.append(copy.deepcopy(job))
        skip = int((c.query.get("$skip") or ["0"])[0])
        size = self.job_page_size or len(items) or 1
        page: dict[str, Any] = {"value": items[skip:skip + size]}
        if skip + size < len(items):
            query = urlencode({**{k: v[0] for k, v in c.query.items()}, "$skip": str(skip + size)})
            page["nextLink"] = f"https://{c.host}{c.path}?{query}"
        raise _Reply(200, page)

    # ---------------------------------------------------------------- endpoints

    def _require_endpoint(self, name: str) -> dict:
        ep = self.endpoints.get(name)
        if ep is None:
            raise _error(404, "UserError", f"Endpoint {name} not found.")
        return ep

    def _endpoint_view(self, name: str, missing_ok: bool = False) -> dict | None:
        self._tick("endpoint", (name,))
        if name not in self.endpoints:  # the tick finished a pending delete
            if missing_ok:
                return None
            raise _error(404, "UserError", f"Endpoint {name} not found.")
        return copy.deepcopy(self.endpoints[name])

    def _endpoint(self, c: Call, name: str) -> None:
        if c.method == "GET":
            self._require_endpoint(name)
            raise _Reply(200, self._endpoint_view(name))
        if c.method == "PUT":
            self._endpoint_put(c, name)
        if c.method == "DELETE":
            if name not in self.endpoints:
                raise _Reply(204)
            self.endpoints[name]["properties"]["provisioningState"] = "Deleting"
            op = self._start("endpoint", (name,), "delete")
            raise _Reply(202, None, self._lro_headers(op, location=True))

    def _endpoint_put(self, c: Call, name: str) -> None:
        body = c.body if isinstance(c.body, dict) else {}
        props = body.get("properties") or {}
        existing = self.endpoints.get(name)
        traffic = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        self._check_traffic(name, traffic)
        auth = props.get("authMode") or "Key"
        scoring_uri = self.scoring_uris.get(name, f"https://{name}.{self.location}.inference.ml.azure.com/score")
        stored = {
            "id": f"{_ws_prefix(WORKSPACE)}/onlineEndpoints/{name}", "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
            "location": body.get("location") or self.location, "kind": "Managed", "tags": body.get("tags") or {},
            "identity": {"type": (body.get("identity") or {}).get("type", "SystemAssigned"),
                         "principalId": str(uuid.UUID(int=5)), "tenantId": TENANT},
            "properties": {
                "authMode": auth, "description": props.get("description"), "properties": props.get("properties") or {},
                "traffic": traffic, "mirrorTraffic": {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items()},
                "publicNetworkAccess": props.get("publicNetworkAccess") or "Enabled",
                "scoringUri": scoring_uri,
                "swaggerUri": f"https://{name}.{self.location}.inference.ml.azure.com/swagger.json",
                "provisioningState": "Creating" if existing is None else "Updating",
            },
            "systemData": _system_data(),
        }
        self.endpoints[name] = stored
        if name not in self.keys:
            self.rotate_keys(name)
        op = self._start("endpoint", (name,), "create" if existing is None else "update")
        raise _Reply(201 if existing is None else 200, copy.deepcopy(stored), self._lro_headers(op))

    def _check_traffic(self, endpoint: str, traffic: dict[str, int]) -> None:
        if not traffic:
            return
        for name, weight in traffic.items():
            dep = self.deployments.get((endpoint, name))
            if dep is None:
                raise _error(400, "BadArgument", f"Traffic names deployment {name} that does not exist")
            if weight and dep["properties"]["provisioningState"] != "Succeeded":
                raise _error(400, "BadArgument", f"Deployment {name} is not in a succeeded state")
            if weight < 0 or weight > 100:
                raise _error(400, "BadArgument", f"Invalid traffic value for {name}")
        if sum(traffic.values()) not in (0, 100):
            raise _error(400, "BadArgument", "Traffic values must sum to 100")

    # ---------------------------------------------------------------- deployments

    def _deployment_view(self, key: tuple[str, str], missing_ok: bool = False) -> dict | None:
        self._tick("deployment", key)
        if key not in self.deployments:  # the tick finished a pending delete
            if missing_ok:
                return None
            raise _error(404, "UserError", f"Deployment {key[1]} not found in endpoint {key[0]}.")
        return copy.deepcopy(self.deployments[key])

    def _deployment(self, c: Call, endpoint: str, name: str) -> None:
        key = (endpoint, name)
        if c.method == "GET":
            self._require_endpoint(endpoint)
            if key not in self.deployments:
                raise _error(404, "UserError", f"Deployment {name} not found in endpoint {endpoint}.")
            raise _Reply(200, self._deployment_view(key))
        if c.method == "PUT":
            self._require_endpoint(endpoint)
            body = c.body if isinstance(c.body, dict) else {}
            existing = self.deployments.get(key)
            props = copy.deepcopy(body.get("properties") or {})
            props["provisioningState"] = "Creating" if existing is None else "Updating"
            props.setdefault("scaleSettings", {"scaleType": "Default"})  # the service fills these in
            props.setdefault("endpointComputeType", "Managed")
            stored = {
                "id": f"{_ws_prefix(WORKSPACE)}/onlineEndpoints/{endpoint}/deployments/{name}", "name": name,
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                "location": body.get("location") or self.location, "kind": body.get("kind") or "Managed",
                "tags": body.get("tags") or {}, "sku": body.get("sku") or {"name": "Default", "capacity": 1},
                "properties": props, "systemData": _system_data(),
            }
            self.deployments[key] = stored
            op = self._start("deployment", key, "create" if existing is None else "update")
            raise _Reply(201 if existing is None else 200, copy.deepcopy(stored), self._lro_headers(op))
        if c.method == "DELETE":
            if endpoint not in self.endpoints or key not in self.deployments:
                raise _Reply(204)
            if self.endpoints[endpoint]["properties"]["traffic"].get(name):
                raise _error(400, "BadArgument", f"Deployment {name} has traffic; set it to 0 before deleting")
            self.deployments[key]["properties"]["provisioningState"] = "Deleting"
            op = self._start("deployment", key, "delete")
            raise _Reply(202, None, self._lro_headers(op, location=True))

    # ---------------------------------------------------------------- registry

    def _discovery(self, c: Call, reg: str) -> None:
        if reg not in self.registries:
            raise _error(404, "RegistryNotFound", f"registry {reg} not found")
        raise _Reply(200, {
            "registryName": reg, "tenantId": TENANT, "primaryRegion": self.location, "regions": [self.location],
            "subscriptionId": REGISTRY_SUBSCRIPTION, "resourceGroup": REGISTRY_RESOURCE_GROUP,
            "workspaceName": None,
            "primaryRegionResourceProviderUri": f"https://cert-{self.location}.experiments.azureml.net/",
            "registryFqdns": {self.location: {"api": f"https://{self.location}.api.azureml.ms"}},
        })

    def _registry_import(self, c: Call, reg: str) -> None:
        props = (c.body or {}).get("properties") or {}
        name, version = props.get("destinationName"), props.get("destinationVersion")
        source = props.get("sourceAssetId") or ""
        m = re.fullmatch(r"azureml://locations/([^/]+)/workspaces/([^/]+)/models/([^/]+)/versions/([^/]+)", source)
        if not m:
            raise _error(400, "BadArgument", f"unsupported sourceAssetId {source!r}")
        source_key = (m.group(3), m.group(4))
        if m.group(2) != WORKSPACE_GUID or source_key not in self.workspace_models:
            raise _error(404, "UserError", f"source asset {source} not found")
        if (name, version) in self.registry_models:
            raise _error(409, "Conflict", f"model {name}:{version} already exists in registry {reg}")
        op = self._start("import", (name, version, source_key), "import")
        raise _Reply(202, None, self._result_headers(op))

    def _registry_model_put(self, c: Call, name: str, version: str) -> None:
        body = c.body if isinstance(c.body, dict) else {}
        existing = self.registry_models.get((name, version))
        if existing is None:
            raise _error(400, "BadArgument", "fake registry only supports updating imported model versions")
        props = body.get("properties") or {}
        # Registry versions are immutable except description/tags/stage/properties.
        for field_name in ("description", "tags", "properties", "stage"):
            if field_name in props:
                existing["properties"][field_name] = props[field_name]
        raise _Reply(200, copy.deepcopy(existing))

    # ---------------------------------------------------------------- operations

    def _start(self, kind: str, key: tuple, action: str) -> _Operation:
        for op in self._ops.values():  # a newer write supersedes an unfinished one on the same resource
            if op.kind == kind and op.key == key and op.status == "InProgress":
                op.status = "Canceled"
        op = _Operation(f"op-{next(self._seq)}", kind, key, action, self.settle_after)
        self._ops[op.id] = op
        if op.remaining == 0:
            self._finish(op)
        return op

    def _lro_headers(self, op: _Operation, location: bool = False) -> dict[str, str]:
        url = f"{OPERATIONS_HOST}/fake-operations/{op.id}?api-version=fake"
        headers = {"Azure-AsyncOperation": url, "Retry-After": self.retry_after}
        if location:
            headers["Location"] = f"{OPERATIONS_HOST}/fake-results/{op.id}"
            # The generated delete client parses an initial Retry-After as an int: send none (the
            # poller thread then waits its default interval; nothing here waits for it).
            del headers["Retry-After"]
        return headers

    def _result_headers(self, op: _Operation) -> dict[str, str]:
        return {"Location": f"{OPERATIONS_HOST}/fake-results/{op.id}", "Retry-After": self.retry_after}

    def _tick(self, kind: str, key: tuple) -> None:
        for op in list(self._ops.values()):
            if op.kind == kind and op.key == key:
                self._advance(op)

    def _advance(self, op: _Operation) -> None:
        if op.status != "InProgress" or op.remaining is None:
            return
        op.remaining -= 1
        if op.remaining <= 0:
            self._finish(op)

    def _finish(self, op: _Operation) -> None:
        op.status = "Succeeded"
        if op.kind == "endpoint":
            ep = self.endpoints.get(op.key[0])
            if ep is not None:
                if op.action == "delete":
                    del self.endpoints[op.key[0]]
                    for k in [k for k in self.deployments if k[0] == op.key[0]]:
                        del self.deployments[k]
                else:
                    ep["properties"]["provisioningState"] = "Succeeded"
        elif op.kind == "deployment":
            dep = self.deployments.get(op.key)
            if dep is not None:
                if op.action == "delete":
                    del self.deployments[op.key]
                else:
                    dep["properties"]["provisioningState"] = "Succeeded"
        elif op.kind == "import":
            name, version, source_key = op.key
            source = self.workspace_models[source_key]
            # The service copies the workspace version (artifacts, tags, properties) into the registry.
            self.registry_models[(name, version)] = _registry_model_body(
                name, version, dict(source["properties"].get("tags") or {}), self.location,
                description=source["properties"].get("description"))

    def fail_operation(self, kind: str, key: tuple, message: str = "fake failure") -> None:
        """Make the pending operation on a resource end in Failed (e.g. an image build error)."""
        with self._lock:
            for op in self._ops.values():
                if op.kind == kind and op.key == key and op.status == "InProgress":
                    op.status, op.error = "Failed", {"code": "DeploymentFailed", "message": message}
                    if kind == "deployment" and op.key in self.deployments:
                        self.deployments[op.key]["properties"]["provisioningState"] = "Failed"
                    if kind == "endpoint" and op.key[0] in self.endpoints:
                        self.endpoints[op.key[0]]["properties"]["provisioningState"] = "Failed"

    def _operation_status(self, c: Call, op_id: str) -> None:
        op = self._ops.get(op_id)
        if op is None:
            raise _error(404, "NotFound", f"operation {op_id} not found")
        self._advance(op)
        body: dict[str, Any] = {"id": op.id, "name": op.id, "status": op.status}
        if op.error:
            body["error"] = op.error
        raise _Reply(200, body)

    def _operation_result(self, c: Call, op_id: str) -> None:
        op = self._ops.get(op_id)
        if op is None:
            raise _error(404, "NotFound", f"operation {op_id} not found")
        self._advance(op)
        if op.status == "InProgress":
            raise _Reply(202, None, self._result_headers(op))
        if op.status == "Failed":
            raise _Reply(500, {"error": op.error})
        raise _Reply(200 if op.kind == "import" else 204, None)


# ------------------------------------------------------------------------------------------- helpers


class _BytesRaw:
    """Minimal stand-in for urllib3's response, enough for requests/azure-core to stream a body."""

    def __init__(self, content: bytes) -> None:
        self._content = content
        self._read = False

    def read(self, amt: int | None = None, decode_content: bool = True) -> bytes:
        if self._read:
            return b""
        self._read = True
        return self._content

    def stream(self, chunk_size: int = 1024, decode_content: bool = True):
        for i in range(0, len(self._content), chunk_size or len(self._content) or 1):
            yield self._content[i:i + (chunk_size or len(self._content))]

    def close(self) -> None:
        pass

    def release_conn(self) -> None:
        pass


def _ws_prefix(ws: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}{PROVIDER}/workspaces/{ws}"


def _reg_prefix(reg: str) -> str:
    return f"/subscriptions/{REGISTRY_SUBSCRIPTION}/resourceGroups/{REGISTRY_RESOURCE_GROUP}{PROVIDER}/registries/{reg}"


def _registry_model_body(name: str, version: str, tags: dict, location: str, description: str | None = None) -> dict:
    return {
        "id": f"azureml://registries/{REGISTRY}/models/{name}/versions/{version}",
        "name": version, "type": "Microsoft.MachineLearningServices/registries/models/versions",
        "properties": {
            "description": description, "tags": tags, "properties": {}, "isArchived": False, "isAnonymous": False,
            "flavors": {}, "modelType": "custom_model",
            "modelUri": f"https://{REGISTRY}{location}.blob.core.windows.net/{uuid.uuid4().hex[:12]}/{name}/{version}/",
            "provisioningState": "Succeeded", "stage": "Development",
        },
        "systemData": _system_data(),
    }


def _version_key(v: str) -> tuple:
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def _system_data() -> dict:
    return {"createdAt": "2026-01-01T00:00:00Z", "createdBy": "fake", "createdByType": "User",
            "lastModifiedAt": "2026-01-01T00:00:00Z", "lastModifiedBy": "fake", "lastModifiedByType": "User"}
