"""The production endpoints' diagnostic settings: where their request and console logs go.

AmlOnlineEndpointTrafficLog (canary health) and AmlOnlineEndpointConsoleLog (the inference-log
export) are resource logs of each online endpoint (resource type
Microsoft.MachineLearningServices/workspaces/onlineEndpoints), not of the workspace. An endpoint
without a diagnostic setting that sends those categories to the Log Analytics workspace modelops
queries sends nothing there: every canary window looks quiet and the export finds no records. So
the control plane, which creates the endpoints, also makes sure of their diagnostic setting.

On the wire (Microsoft.Insights, api-version 2021-05-01-preview; checked against
azure-rest-api-specs specification/monitor/resource-manager/Microsoft.Insights/preview/
2021-05-01-preview/diagnosticsSettings_API.json and its examples getDiagnosticSetting.json,
listDiagnosticSettings.json, createOrUpdateDiagnosticSetting.json; the category names against
Microsoft Learn, "Supported logs for Microsoft.MachineLearningServices/workspaces/onlineEndpoints"):

    GET {endpoint id}/providers/Microsoft.Insights/diagnosticSettings?api-version=…   → {"value": [setting…]}
    PUT {endpoint id}/providers/Microsoft.Insights/diagnosticSettings/modelops?api-version=…
        {"properties": {"workspaceId": "<Log Analytics resource id>",
                        "logs": [{"category": "AmlOnlineEndpointConsoleLog", "enabled": true}, …]}}  → 200

`ensure` reads first and writes only what is missing: a category is already covered when any of the
endpoint's settings (ours, or one an Azure Policy or a person made) sends it — by name, or through
the `allLogs` category group — enabled, to the configured workspace (ARM ids compared without
case). Only the missing categories are written, into modelops' own setting (`modelops`), whose
other entries (e.g. an AmlOnlineEndpointEventLog someone added) are kept: Azure refuses a second
setting sending a category to a destination another setting already sends it to.

Failures are PlatformError: 408/429/5xx and no answer are transient; 403 names the action the
identity lacks, as ARM names it: Microsoft.Insights/diagnosticSettings/read or /write on the endpoint
(AzureML Data Scientist grants neither), or — ARM's linked check on the destination,
LinkedAuthorizationFailed — Microsoft.OperationalInsights/workspaces/sharedKeys/action on the Log
Analytics workspace (MicrosoftDocs/azure-docs#80159). Monitoring Contributor grants all three.

No Azure SDK import at module level: this module is imported when the Function App is composed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from functions.ports import PlatformError

API_VERSION = "2021-05-01-preview"
SETTING_NAME = "modelops"
# What modelops reads: the traffic log (canary health) and the console log (InputData records).
REQUIRED_CATEGORIES = ("AmlOnlineEndpointConsoleLog", "AmlOnlineEndpointTrafficLog")
ALL_LOGS = "allLogs"  # the category group that stands for every log category of the resource
# 409 is not among them: here it means a sink another setting already uses for a category (permanent)
TRANSIENT_STATUS = frozenset({408, 429})
READ_ACTION = "Microsoft.Insights/diagnosticSettings/read"
WRITE_ACTION = "Microsoft.Insights/diagnosticSettings/write"


@dataclass(frozen=True)
class LogRouting:
    """Which of the required categories an endpoint sends to the workspace, and which not."""

    endpoint_id: str
    workspace_id: str
    missing: tuple[str, ...]  # required categories no enabled setting sends to the workspace
    settings: tuple[str, ...] = ()  # the endpoint's diagnostic settings, by name

    @property
    def ok(self) -> bool:
        return not self.missing

    def describe(self) -> str:
        where = _short_id(self.workspace_id)
        if self.ok:
            return f"{', '.join(REQUIRED_CATEGORIES)} sent to {where} (settings: {', '.join(self.settings)})"
        found = f"settings: {', '.join(self.settings)}" if self.settings else "no diagnostic setting"
        return f"{', '.join(self.missing)} not sent to {where} ({found})"


class EndpointDiagnostics:
    """Reads and writes online endpoints' diagnostic settings through an ARM pipeline client
    (`clients.arm_client`: azure-core's `send_request`)."""

    def __init__(self, client: Any, workspace_resource_id: str, *, setting_name: str = SETTING_NAME) -> None:
        if not workspace_resource_id:
            raise ValueError("workspace_resource_id is required")
        self.client = client
        self.workspace_id = workspace_resource_id
        self.setting_name = setting_name

    def routing(self, endpoint_id: str) -> LogRouting:
        """One GET: what the endpoint's settings send to the workspace."""
        return self._routing(endpoint_id, self._list(endpoint_id))

    def ensure(self, endpoint_id: str) -> str:
        """Make the endpoint send the required categories to the workspace; a GET, then a PUT only
        when something is missing. Returns what it found or did (for the audit trail)."""
        settings = self._list(endpoint_id)
        routing = self._routing(endpoint_id, settings)
        if routing.ok:
            return f"diagnostic setting present: {routing.describe()}"
        ours = next((s for s in settings if str(s.get("name", "")).lower() == self.setting_name.lower()), None)
        properties = dict((ours or {}).get("properties") or {})
        logs = [entry for entry in properties.get("logs") or []
                if entry.get("category") not in routing.missing]
        logs += [{"category": category, "enabled": True} for category in routing.missing]
        properties.update(workspaceId=self.workspace_id, logs=logs)
        self._send("PUT", f"{endpoint_id}/providers/Microsoft.Insights/diagnosticSettings/{self.setting_name}",
                   f"write the diagnostic setting {self.setting_name} of {_short_id(endpoint_id)}", WRITE_ACTION,
                   body={"properties": properties})
        done = "updated" if ours is not None else "created"
        return (f"diagnostic setting {self.setting_name} {done}: {', '.join(routing.missing)} "
                f"→ {_short_id(self.workspace_id)}")

    # ------------------------------------------------------------------ wire

    def _list(self, endpoint_id: str) -> list[dict]:
        body = self._send("GET", f"{endpoint_id}/providers/Microsoft.Insights/diagnosticSettings",
                          f"read the diagnostic settings of {_short_id(endpoint_id)}", READ_ACTION)
        value = (body or {}).get("value")
        if not isinstance(value, list):
            raise PlatformError(f"diagnostic settings of {_short_id(endpoint_id)}: unexpected answer {body!r:.200}")
        return [s for s in value if isinstance(s, dict)]

    def _routing(self, endpoint_id: str, settings: list[dict]) -> LogRouting:
        covered: set[str] = set()
        for setting in settings:
            props = setting.get("properties") or {}
            if str(props.get("workspaceId") or "").lower() != self.workspace_id.lower():
                continue
            for entry in props.get("logs") or []:
                if entry.get("enabled") is not True:
                    continue
                if entry.get("categoryGroup") == ALL_LOGS:
                    covered.update(REQUIRED_CATEGORIES)
                elif entry.get("category") in REQUIRED_CATEGORIES:
                    covered.add(entry["category"])
        missing = tuple(c for c in REQUIRED_CATEGORIES if c not in covered)
        return LogRouting(endpoint_id, self.workspace_id, missing, tuple(str(s.get("name", "")) for s in settings))

    def _send(self, method: str, path: str, action: str, permission: str, body: Any = None) -> Any:
        from azure.core.exceptions import AzureError
        from azure.core.rest import HttpRequest

        from functions.adapters.azure.errors import to_platform_error

        request = HttpRequest(method, self.client.format_url(path), params={"api-version": API_VERSION}, json=body)
        try:
            response = self.client.send_request(request)
        except AzureError as exc:  # no answer (connection, timeout): transient
            raise to_platform_error(exc, action) from exc
        status = response.status_code
        try:
            answer = response.json() if response.content else None
        except ValueError:
            answer = None
        if 200 <= status < 300:
            return answer
        code, message = _error_of(answer, response.text())
        detail = f"HTTP {status} {code}: {message}" if code else f"HTTP {status} {message}"
        if status == 403:
            # ARM names the action it refused: ours on the endpoint, or (LinkedAuthorizationFailed) the
            # one a setting needs on its destination, the Log Analytics workspace
            refused = re.search(r"does not have (?:permission|authorization) to perform action '([^']+)'", message)
            permission = refused.group(1) if refused else permission
            where = "the Log Analytics workspace" if code == "LinkedAuthorizationFailed" else "the endpoint"
            raise PlatformError(f"{action}: the identity may not perform {permission} on {where} ({detail})")
        raise PlatformError(f"{action}: {detail}", transient=status in TRANSIENT_STATUS or status >= 500)


def _error_of(answer: Any, text: str) -> tuple[str, str]:
    """ARM wraps errors in {"error": {code, message}}; the diagnostic settings spec's ErrorResponse
    is the flat {code, message}: read both."""
    if isinstance(answer, dict):
        error = answer.get("error") if isinstance(answer.get("error"), dict) else answer
        return str(error.get("code") or ""), str(error.get("message") or "")[:1000]
    return "", (text or "")[:200]


def _short_id(resource_id: str) -> str:
    """`onlineEndpoints/<name>` or `workspaces/<name>`: the part of an ARM id a person recognises."""
    parts = [p for p in resource_id.split("/") if p]
    return "/".join(parts[-2:]) if len(parts) >= 2 else resource_id
