"""Online endpoints and their deployments in the fake ARM / AzureML service.

  endpoints       GET|PUT|DELETE  …/workspaces/W/onlineEndpoints/E          (PUT 201 + Azure-AsyncOperation + Location,
                  GET     …/workspaces/W/onlineEndpoints                     DELETE 202 + Location)
                  POST    …/onlineEndpoints/E/listKeys
  deployments     GET|PUT|DELETE  …/onlineEndpoints/E/deployments/D
                  GET     …/onlineEndpoints/E/deployments

Semantics it enforces, like the service: a deployment PUT needs its endpoint; an endpoint PUT's
traffic must name existing deployments, sum to 100 (or be empty) and give traffic only to
Succeeded deployments (400 otherwise); deleting a deployment that has traffic is refused (400).

No-code deployments: a deployment PUT without `environmentId` and `codeConfiguration` is AzureML's
no-code MLflow deployment (AzureML supplies the scoring script and image), which is for models of
type mlflow_model (Microsoft Learn, "Deploy MLflow models to online endpoints"; azureml-examples
cli/endpoints/online/mlflow/sklearn-deployment.yaml is one: model, instance_type, instance_count and
nothing else). The fake answers 400 BadArgument for one whose model is not a registered mlflow_model;
the service's wording of that error is not known to it.
"""

from __future__ import annotations

import copy
import re
import uuid

from tests.fake_arm.resources import WORKSPACE, _system_data, _ws_prefix
from tests.fake_arm.transport import Call, _error, _Reply
from tests.fake_credentials import TENANT


class OnlineEndpoints:
    """Endpoints, deployments, their keys and scoring URIs (part of `FakeAzureML`)."""

    endpoints: dict[str, dict]
    deployments: dict[tuple[str, str], dict]
    workspace_models: dict[tuple[str, str], dict]
    registry_models: dict[tuple[str, str], dict]
    keys: dict[str, dict]
    scoring_uris: dict[str, str]

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

    def _endpoint_routes(self, c: Call, rest: str) -> None:
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
                "compute": None,  # Kubernetes endpoints only
            },
            "systemData": _lro_system_data(),
        }
        self.endpoints[name] = stored
        if name not in self.keys:
            self.rotate_keys(name)
        op = self._start("endpoint", (name,), "create" if existing is None else "update")
        raise _Reply(201 if existing is None else 200, copy.deepcopy(stored), _put_headers(self._lro_headers(op), c))

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

    def _check_no_code(self, props: dict) -> None:
        if props.get("environmentId") or props.get("codeConfiguration"):
            return
        model = props.get("model") or ""
        ws = re.fullmatch(r".*/workspaces/[^/]+/models/([^/]+)/versions/([^/]+)", model, re.I)
        reg = re.fullmatch(r"azureml://registries/[^/]+/models/([^/]+)/versions/([^/]+)", model)
        found = (self.workspace_models.get((ws.group(1), ws.group(2))) if ws else
                 self.registry_models.get((reg.group(1), reg.group(2))) if reg else None)
        model_type = (found or {}).get("properties", {}).get("modelType")
        if model_type != "mlflow_model":
            raise _error(400, "BadArgument", f"a deployment without an environment needs an mlflow_model model; "
                                             f"{model or 'no model'} is {model_type or 'not registered'}")

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
            self._check_no_code(props)
            props["provisioningState"] = "Creating" if existing is None else "Updating"
            # the service fills these in (as the recorded session's answer has them: see _put_headers)
            props.setdefault("scaleSettings", {"scaleType": "Default"})
            props.setdefault("endpointComputeType", "Managed")
            for field_name, default in (("description", None), ("modelMountPath", None), ("livenessProbe", None),
                                        ("readinessProbe", None), ("appInsightsEnabled", False),
                                        ("privateNetworkConnection", False), ("egressPublicNetworkAccess", "Enabled")):
                props.setdefault(field_name, default)
            props["requestSettings"] = {"maxQueueWait": "PT0S", "requestTimeout": "PT0S",
                                        "maxConcurrentRequestsPerInstance": 1, **(props.get("requestSettings") or {})}
            sku = {"name": "Default", "capacity": 1, **(body.get("sku") or {})}
            sku.setdefault("tier", "Standard")
            stored = {
                "id": f"{_ws_prefix(WORKSPACE)}/onlineEndpoints/{endpoint}/deployments/{name}", "name": name,
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                "location": body.get("location") or self.location, "kind": body.get("kind") or "Managed",
                "tags": body.get("tags") or {}, "sku": sku,
                "properties": props, "systemData": _lro_system_data(),
            }
            self.deployments[key] = stored
            op = self._start("deployment", key, "create" if existing is None else "update")
            raise _Reply(201 if existing is None else 200, copy.deepcopy(stored), _put_headers(self._lro_headers(op), c))
        if c.method == "DELETE":
            if endpoint not in self.endpoints or key not in self.deployments:
                raise _Reply(204)
            if self.endpoints[endpoint]["properties"]["traffic"].get(name):
                raise _error(400, "BadArgument", f"Deployment {name} has traffic; set it to 0 before deleting")
            self.deployments[key]["properties"]["provisioningState"] = "Deleting"
            op = self._start("deployment", key, "delete")
            raise _Reply(202, None, self._lro_headers(op, location=True))


def _put_headers(lro: dict[str, str], c: Call) -> dict[str, str]:
    """An endpoint's or deployment's PUT answer headers, as azure-sdk-for-python's recorded session
    (sdk/ml/azure-ai-ml/tests/recordings/online_services/e2etests/test_online_deployment.py…json
    @0edb01d; tests/payloads/recorded/aml-online-deployment.json) has them: Azure-AsyncOperation, and
    Location = the resource itself (a PUT's poller GETs the resource at the end either way)."""
    return {**lro, "Location": f"https://{c.host}{c.path}?api-version={c.api_version}",
            "x-ms-async-operation-timeout": "PT30M"}


def _lro_system_data() -> dict:
    """systemData as online endpoints and deployments carry it (the same recorded session): three keys."""
    full = _system_data()
    return {k: full[k] for k in ("createdAt", "createdBy", "lastModifiedAt")}
