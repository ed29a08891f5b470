"""ports.TrafficLog over Azure Monitor Logs: the AmlOnlineEndpointTrafficLog table of the Log
Analytics workspace the production AzureML workspace sends its diagnostics to.

Columns used (Azure Monitor Logs table reference,
https://learn.microsoft.com/azure/azure-monitor/reference/tables/amlonlineendpointtrafficlog):
  TimeGenerated    datetime  when AzureML received the request (UTC)
  EndpointName     string    the online endpoint
  DeploymentName   string    the deployment the request went to
  ResponseCode     int       the final response code returned to the user
  TotalDurationMs  int       request start → last response byte sent to the client
The local traffic log (adapters/local/traffic_log.py) records the same three facts per request:
deployment, status, duration. ResponseCode is wrapped in toint(): the table reference types it
int, but Microsoft's own sample query on that page compares it with strings, and toint() reads
both the same way.

Ingestion lag: this table is a resource log (sent by each online endpoint's diagnostic setting,
which the rollout ensures: aml_endpoints.AzureEndpoints.ensure_logging; without one the table stays
empty, or does not exist at all — the query then fails, and the canary with it, naming the table),
and Azure Monitor documents resource logs as "usually available within 3 to 10 minutes end-to-end"
(https://learn.microsoft.com/azure/azure-monitor/logs/data-ingestion-time). A health window that
ends "now" therefore under-counts, and an empty window reads as "no traffic". Canary bake times in
Azure must be longer than the ingestion delay; `ingestion_lag` shifts the queried window back by
that much so the figures describe traffic that has had time to arrive.

Value safety: endpoint and deployment names are checked against AzureML's name rules
(functions.shared.names) and enter the query only as escaped KQL string literals (`kql_string`);
datetimes are formatted from datetime objects. Nothing a caller passes is pasted into KQL as it is.
The client and the error mapping are shared with the export: log_analytics.py.

No Azure SDK import at module level: this module is imported when the Function App is composed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from functions.adapters.azure.log_analytics import describe_error, kql_datetime, kql_string, table_query_error, utc
from functions.ports import PlatformError, TrafficStats
from functions.shared.names import check_endpoint_name

TABLE = "AmlOnlineEndpointTrafficLog"


def stats_query(endpoint: str, deployment: str, start: datetime, end: datetime) -> str:
    """The KQL for one deployment's request count, 5xx count, 4xx count and p90 duration in [start, end).

    The window is stated in the query as well as in the request's `timespan`: the API does not
    document whether the timespan's end is inclusive, and the health window is half-open."""
    endpoint_literal = kql_string(check_endpoint_name(endpoint, "endpoint"))
    deployment_literal = kql_string(check_endpoint_name(deployment, "deployment"))
    return "\n".join([
        TABLE,
        f"| where TimeGenerated >= {kql_datetime(start)} and TimeGenerated < {kql_datetime(end)}",
        f"| where EndpointName == {endpoint_literal} and DeploymentName == {deployment_literal}",
        "| summarize Requests = count(), Errors = countif(toint(ResponseCode) >= 500),"
        " ClientErrors = countif(toint(ResponseCode) >= 400 and toint(ResponseCode) < 500),"
        " P90Ms = percentile(TotalDurationMs, 90)",
    ])


class LogAnalyticsTrafficLog:
    """ports.TrafficLog on a `LogsQueryClient` (azure-monitor-query 2.x) and a workspace id.

    `enforce_https=False` is passed per call for a local http endpoint (tests); `ingestion_lag`
    shifts every queried window back (see the module docstring) and the returned TrafficStats
    carry the window actually measured; `server_timeout` (seconds) is the service-side limit.
    Failures are PlatformError: transient for 408/429/5xx, timeouts and connection failures;
    a partial result is an error too (its figures would be incomplete), never a silent answer.
    """

    def __init__(self, client: Any, workspace_id: str, *, enforce_https: bool = True,
                 ingestion_lag: timedelta = timedelta(0), server_timeout: int | None = None) -> None:
        if not workspace_id:
            raise ValueError("workspace_id is required")
        if ingestion_lag < timedelta(0):
            raise ValueError("ingestion_lag cannot be negative")
        self.client = client
        self.workspace_id = workspace_id
        self.enforce_https = enforce_https
        self.ingestion_lag = ingestion_lag
        self.server_timeout = server_timeout

    def stats(self, endpoint: str, deployment: str, start: datetime, end: datetime) -> TrafficStats:
        start, end = utc(start) - self.ingestion_lag, utc(end) - self.ingestion_lag
        if end < start:
            raise ValueError(f"window ends ({end.isoformat()}) before it starts ({start.isoformat()})")
        query = stats_query(endpoint, deployment, start, end)  # validates the names first
        if end == start:
            return TrafficStats(deployment=deployment, requests=0, errors=0, p90_ms=None, start=start, end=end)
        action = f"traffic stats of {endpoint}/{deployment}"
        response = self._query(query, start, end, action)
        requests, errors, client_errors, p90 = _read_summary(response, action)
        return TrafficStats(
            deployment=deployment,
            requests=requests,
            errors=errors,
            p90_ms=p90 if requests else None,
            start=start,
            end=end,
            client_errors=client_errors,
        )

    def _query(self, query: str, start: datetime, end: datetime, action: str) -> Any:
        from azure.core.exceptions import AzureError
        from azure.monitor.query import LogsQueryStatus

        kwargs: dict[str, Any] = {"timespan": (start, end), "enforce_https": self.enforce_https}
        if self.server_timeout:
            kwargs["server_timeout"] = self.server_timeout
        try:
            response = self.client.query_workspace(self.workspace_id, query, **kwargs)
        except AzureError as exc:  # a missing table, a right the identity lacks: said in words
            raise table_query_error(exc, action, TABLE, self.workspace_id) from exc
        if response.status == LogsQueryStatus.PARTIAL:
            detail = describe_error(response.partial_error)
            raise PlatformError(f"{action}: Log Analytics returned a partial result ({detail})")
        if response.status != LogsQueryStatus.SUCCESS:
            raise PlatformError(f"{action}: unexpected query status {response.status!r}")
        return response


def _read_summary(response: Any, action: str) -> tuple[int, int, int, float | None]:
    tables = list(response.tables or [])
    if len(tables) != 1:
        raise PlatformError(f"{action}: expected one result table, got {len(tables)}")
    table = tables[0]
    wanted = ("Requests", "Errors", "ClientErrors", "P90Ms")
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise PlatformError(f"{action}: result lacks column(s) {missing} (got {table.columns})")
    if not table.rows:  # summarize without `by` answers one row, but an empty answer is plain
        return 0, 0, 0, None
    if len(table.rows) != 1:
        raise PlatformError(f"{action}: expected one summary row, got {len(table.rows)}")
    row = table.rows[0]
    try:
        requests = int(row["Requests"] or 0)
        errors = int(row["Errors"] or 0)
        client_errors = int(row["ClientErrors"] or 0)
        p90 = None if row["P90Ms"] is None else float(row["P90Ms"])
    except (TypeError, ValueError) as exc:
        raise PlatformError(f"{action}: unreadable summary row {list(row)!r}: {exc}") from exc
    if requests < 0 or not 0 <= errors <= requests or not 0 <= client_errors <= requests - errors:
        raise PlatformError(f"{action}: inconsistent summary (requests={requests}, errors={errors}, "
                            f"client_errors={client_errors})")
    return requests, errors, client_errors, p90
