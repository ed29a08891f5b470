"""Diagnostic settings (Microsoft.Insights) of the fake's online endpoints.

  list            GET     …/onlineEndpoints/E/providers/Microsoft.Insights/diagnosticSettings
  one             GET|PUT|DELETE  …/onlineEndpoints/E/providers/Microsoft.Insights/diagnosticSettings/N

Checked against azure-rest-api-specs specification/monitor/resource-manager/Microsoft.Insights/
preview/2021-05-01-preview: diagnosticsSettings_API.json (paths; PUT answers 200 with the resource,
DELETE 200/204, errors the flat ErrorResponse {code, message}) and the examples
getDiagnosticSetting.json / listDiagnosticSettings.json / createOrUpdateDiagnosticSetting.json
(the resource: id = <resource id>/providers/microsoft.insights/diagnosticSettings/<name> — the
service lower-cases that provider segment —, type Microsoft.Insights/diagnosticSettings, name,
properties as sent). The endpoint's log categories are Microsoft Learn's "Supported logs for
Microsoft.MachineLearningServices/workspaces/onlineEndpoints" (AmlOnlineEndpointConsoleLog,
AmlOnlineEndpointEventLog, AmlOnlineEndpointTrafficLog; the category group allLogs).

What it enforces, as the service does (wording from errors users reported, not from the spec):
an unknown category → 400 BadRequest "Category 'X' is not supported." (hashicorp/terraform#20534);
a category already sent to the same destination by another setting of the resource → 409 Conflict
"Data sink '<id>' is already used in diagnostic setting '<name>' for category '<category>' …"
(Azure/bicep-registry-modules#3407; Azure/Community-Policy#188: one setting per category and sink);
at most five settings per resource (Microsoft Learn, "Diagnostic settings in Azure Monitor"); a
missing setting → 404 ResourceNotFound; an endpoint that does not exist → 404.

`deny(action)` makes the fake answer 403 AuthorizationFailed, ARM's shape naming the action and
scope, for requests that need `Microsoft.Insights/diagnosticSettings/read` or `/write`; denying
`Microsoft.OperationalInsights/workspaces/sharedKeys/action` makes a PUT naming a Log Analytics
workspace answer 403 LinkedAuthorizationFailed — ARM's linked check on the destination (the wording
of CDCgov/prime-reportstream#7678 and JimGBritt/AzurePolicy#17; MicrosoftDocs/azure-docs#80159 lists
that action as the one a Log Analytics destination needs).
"""

from __future__ import annotations

import copy
import re

from tests.fake_arm.transport import Call, _error, _Reply

ENDPOINT_LOG_CATEGORIES = ("AmlOnlineEndpointConsoleLog", "AmlOnlineEndpointEventLog", "AmlOnlineEndpointTrafficLog")
CATEGORY_GROUPS = ("allLogs",)
MAX_SETTINGS = 5
READ = "Microsoft.Insights/diagnosticSettings/read"
WRITE = "Microsoft.Insights/diagnosticSettings/write"
LINKED = "Microsoft.OperationalInsights/workspaces/sharedKeys/action"  # on the destination workspace
PRINCIPAL = "00000000-0000-0000-0000-0000000000a1"  # the fake credential's object id, in 403 messages


class DiagnosticSettings:
    """Per-endpoint diagnostic settings (part of `FakeAzureML`)."""

    endpoints: dict[str, dict]
    diagnostic_settings: dict[str, dict[str, dict]]  # endpoint → setting name → resource
    denied_actions: set[str]

    def add_diagnostic_setting(self, endpoint: str, name: str, properties: dict) -> None:
        """Seed a setting (one a person or an Azure Policy made), without the checks a PUT gets."""
        with self._lock:
            self.diagnostic_settings.setdefault(endpoint, {})[name] = self._setting_body(endpoint, name, properties)

    def deny(self, action: str) -> None:
        """Answer 403 for requests that need `action` (READ or WRITE) until `allow`."""
        with self._lock:
            self.denied_actions.add(action)

    def allow(self, action: str) -> None:
        with self._lock:
            self.denied_actions.discard(action)

    def _diagnostic_routes(self, c: Call, rest: str) -> None:
        m = re.fullmatch(r"/onlineEndpoints/([^/]+)/providers/Microsoft\.Insights/diagnosticSettings(?:/([^/]+))?",
                         rest, re.I)
        if not m:
            return
        endpoint, name = m.group(1), m.group(2)
        scope = f"{self.endpoints[endpoint]['id']}" if endpoint in self.endpoints else rest
        self._authorize(c, READ if c.method == "GET" else WRITE, scope)
        if endpoint not in self.endpoints:
            raise _error(404, "ResourceNotFound", f"The Resource 'Microsoft.MachineLearningServices/workspaces/"
                                                  f"onlineEndpoints/{endpoint}' was not found.")
        settings = self.diagnostic_settings.setdefault(endpoint, {})
        if name is None:
            if c.method != "GET":
                return
            raise _Reply(200, {"value": [copy.deepcopy(s) for s in settings.values()]})
        if c.method == "GET":
            if name not in settings:
                raise _flat(404, "ResourceNotFound", f"The diagnostic setting '{name}' doesn't exist.")
            raise _Reply(200, copy.deepcopy(settings[name]))
        if c.method == "DELETE":
            raise _Reply(200 if settings.pop(name, None) is not None else 204)
        if c.method == "PUT":
            body = c.body if isinstance(c.body, dict) else {}
            props = copy.deepcopy(body.get("properties") or {})
            self._check_setting(endpoint, name, props, settings)
            if LINKED in self.denied_actions and props.get("workspaceId"):
                raise _error(403, "LinkedAuthorizationFailed",
                             f"The client '{PRINCIPAL}' with object id '{PRINCIPAL}' has permission to perform action "
                             f"'{WRITE}' on scope '{scope}/providers/Microsoft.Insights/diagnosticSettings/{name}'; "
                             f"however, it does not have permission to perform action '{LINKED}' on the linked "
                             f"scope(s) '{props['workspaceId']}' or the linked scope(s) are invalid.")
            settings[name] = self._setting_body(endpoint, name, props)
            raise _Reply(200, copy.deepcopy(settings[name]))

    def _authorize(self, c: Call, action: str, scope: str) -> None:
        if action in self.denied_actions:
            raise _error(403, "AuthorizationFailed",
                         f"The client '{PRINCIPAL}' with object id '{PRINCIPAL}' does not have authorization to "
                         f"perform action '{action}' over scope '{scope}/providers/Microsoft.Insights' or the scope "
                         "is invalid. If access was recently granted, please refresh your credentials.")

    def _check_setting(self, endpoint: str, name: str, props: dict, settings: dict[str, dict]) -> None:
        if name not in settings and len(settings) >= MAX_SETTINGS:
            raise _flat(400, "BadRequest", f"Diagnostic settings does not support more than {MAX_SETTINGS} "
                                           "diagnostic settings per resource.")
        sinks = {k: v for k in ("workspaceId", "storageAccountId", "eventHubAuthorizationRuleId",
                                "marketplacePartnerId") if (v := props.get(k))}
        if not sinks:
            raise _flat(400, "BadRequest", "A destination (workspaceId, storageAccountId, event hub or "
                                           "marketplace partner) is required.")
        for entry in props.get("logs") or []:
            category, group = entry.get("category"), entry.get("categoryGroup")
            if category is not None and category not in ENDPOINT_LOG_CATEGORIES:
                raise _flat(400, "BadRequest", f"Category '{category}' is not supported.")
            if group is not None and group not in CATEGORY_GROUPS:
                raise _flat(400, "BadRequest", f"Category group '{group}' is not supported.")
        mine = _enabled_categories(props)
        for other_name, other in settings.items():
            if other_name.lower() == name.lower():
                continue
            theirs = other["properties"]
            shared = mine & _enabled_categories(theirs)
            for key, sink in sinks.items():
                if shared and str(theirs.get(key) or "").lower() == str(sink).lower():
                    category = sorted(shared)[0]
                    raise _flat(409, "Conflict",
                                f"Data sink '{sink}' is already used in diagnostic setting '{other_name}' for category "
                                f"'{category}' for this resource. Data sinks can't be reused in different settings on "
                                "the same category for the same resource.")

    def _setting_body(self, endpoint: str, name: str, props: dict) -> dict:
        base = self.endpoints[endpoint]["id"] if endpoint in self.endpoints else f"/onlineEndpoints/{endpoint}"
        return {"id": f"{base}/providers/microsoft.insights/diagnosticSettings/{name}",
                "type": "Microsoft.Insights/diagnosticSettings", "name": name, "properties": props}


def _enabled_categories(props: dict) -> set[str]:
    found: set[str] = set()
    for entry in props.get("logs") or []:
        if entry.get("enabled") is True:
            if entry.get("categoryGroup") in CATEGORY_GROUPS:
                found.update(ENDPOINT_LOG_CATEGORIES)
            elif entry.get("category"):
                found.add(entry["category"])
    return found


def _flat(status: int, code: str, message: str) -> _Reply:
    """The diagnostic settings API's ErrorResponse: {code, message} without an "error" wrapper."""
    return _Reply(status, {"code": code, "message": message})
