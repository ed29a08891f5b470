"""What the Azure platform is missing, as check results (GET /api/health?deep=1 and the start-up log).

Each check does what the control plane itself does, harmlessly, and reports what it finds:

    endpoint:<workspace>/<name>   GET the managed model's endpoint (absent is fine: the first rollout
                                  creates it); 403 names Microsoft.MachineLearningServices/workspaces/
                                  onlineEndpoints/read
    logs:<name>                   a production endpoint's diagnostic settings: its
                                  AmlOnlineEndpointConsoleLog and AmlOnlineEndpointTrafficLog reach the
                                  Log Analytics workspace (the next rollout writes what is missing);
                                  403 names Microsoft.Insights/diagnosticSettings/read
    table:<table>                 `<table> | take 0` in the Log Analytics workspace: the table exists
                                  (400 SEM0100 when no row ever reached it), the identity may query
                                  (403 names Microsoft.OperationalInsights/workspaces/query/read), the
                                  workspace id is right (404)

Rights are probed by the operations that need them, never read from role assignments (reading
those needs Microsoft.Authorization/roleAssignments/read, which the app should not have). Writes
are not probed (the rollout reports a refused write, naming the right, when it happens).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterable

from functions.ports import HealthCheck, PlatformError

TABLES = ("AmlOnlineEndpointTrafficLog", "AmlOnlineEndpointConsoleLog")  # canary health, the export
ENDPOINT_READ = "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/read"


def endpoint_checks(workspace: str, endpoints: Any, names: Iterable[str], *,
                    logs: bool = False) -> list[HealthCheck]:
    """One check per endpoint (and, for production, `logs:` its diagnostic setting)."""
    checks: list[HealthCheck] = []
    for name in sorted(set(names)):
        label = f"endpoint:{workspace}/{name}"
        try:
            state = endpoints.get_endpoint(name)
        except PlatformError as exc:
            checks.append(HealthCheck(label, False, _refused(exc, ENDPOINT_READ)))
            continue
        if state is None:
            checks.append(HealthCheck(label, True, "not created yet (the first rollout creates it"
                                                   + (", with its diagnostic setting)" if logs else ")")))
            continue
        checks.append(HealthCheck(label, True, f"{state.provisioning_state}, traffic {state.traffic}"))
        if logs:
            checks.append(_logs_check(endpoints, name))
    return checks


def _logs_check(endpoints: Any, name: str) -> HealthCheck:
    from functions.adapters.azure.diagnostic_settings import READ_ACTION

    label = f"logs:{name}"
    diagnostics = getattr(endpoints, "diagnostics", None)
    if diagnostics is None:
        return HealthCheck(label, False, "no Log Analytics workspace configured for the endpoints' logs")
    try:
        routing = diagnostics.routing(endpoints.endpoint_id(name))
    except PlatformError as exc:
        return HealthCheck(label, False, _refused(exc, READ_ACTION))
    if routing.ok:
        return HealthCheck(label, True, routing.describe())
    return HealthCheck(label, False, f"{routing.describe()}: its canary would see no requests and the export "
                                     "no records (the next rollout of the model writes the setting)")


def table_checks(client: Any, workspace_id: str, *, enforce_https: bool = True,
                 tables: Iterable[str] = TABLES) -> list[HealthCheck]:
    """`<table> | take 0` per table: answers nothing either way but whether it can be read."""
    from azure.core.exceptions import AzureError

    from functions.adapters.azure.log_analytics import table_query_error

    checks = []
    for table in tables:
        label, action = f"table:{table}", f"query {table}"
        try:
            client.query_workspace(workspace_id, f"{table} | take 0", timespan=timedelta(days=1),
                                   enforce_https=enforce_https, server_timeout=30)
        except AzureError as exc:
            error = table_query_error(exc, action, table, workspace_id)
            checks.append(HealthCheck(label, False, str(error)[len(action) + 2:]))
            continue
        checks.append(HealthCheck(label, True, f"exists in Log Analytics workspace {workspace_id}"))
    return checks


def _refused(exc: PlatformError, action: str) -> str:
    text = str(exc)[:500]
    if "HTTP 403" in text or "not authorized" in text or "may not perform" in text:
        return f"the identity may not perform {action}: {text}" if "may not perform" not in text else text
    return text
