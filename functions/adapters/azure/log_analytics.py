"""What the two Log Analytics adapters share: the query client, KQL literals, and how the service's
failures become PlatformError.

Both the health check (traffic_log.py: `query_workspace`) and the export (inference_logs.py: the
client's own pipeline through `send_request`) query the Log Analytics query API
(POST /v1/workspaces/{id}/query, https://learn.microsoft.com/rest/api/loganalytics/query/execute)
with one `LogsQueryClient`. Its errors arrive as azure-core exceptions, as an error JSON body
(`{"error": {"code", "message", "innererror", "details"}}`), or — for a partial result — as the
SDK's LogsQueryError; `describe_error` reads all three the same way.

Value safety: nothing a caller passes enters KQL as it is — names are checked by
functions.shared.names and quoted by `kql_string`; datetimes are formatted from datetimes.

No Azure SDK import at module level: this module is imported when the Function App is composed.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from functions.ports import PlatformError

# Statuses worth retrying later (with a new request): throttling and timeouts, and every 5xx.
TRANSIENT_STATUS = frozenset({408, 429})


class QueryTimedOut(PlatformError):
    """The service gave up on a query: 504 GatewayTimeout ("ADX query timed out" in its inner error;
    azure-sdk-for-python's recorded session sdk/monitor/azure-monitor-query/tests/recordings/
    test_logs_client.pyTestLogsClienttest_logs_server_timeout.json). Its server timeout is 3 minutes
    by default and at most 10 with `Prefer: wait=600`
    (https://learn.microsoft.com/azure/azure-monitor/logs/api/timeouts): the same query over the
    same data times out again, so a caller that can make the query smaller does (the export splits
    its window); transient for the others (the data, or the service's load, may change)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, transient=True)


def is_query_timeout(status: int) -> bool:
    return status == 504


def is_transient(status: int) -> bool:
    return status in TRANSIENT_STATUS or status >= 500


def logs_client(endpoint: str | None = None, credential: Any = None, **kwargs: Any) -> Any:
    """A LogsQueryClient: `endpoint` defaults to the public cloud's https://api.loganalytics.io
    (the token audience follows it), `credential` to DefaultAzureCredential (the Function App's
    managed identity in Azure, az login on a laptop). Extra kwargs go to the client (retry_total,
    transport, …). Builds no connection until the first query."""
    from azure.monitor.query import LogsQueryClient

    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    if endpoint:
        kwargs["endpoint"] = endpoint
    return LogsQueryClient(credential, **kwargs)


def https_required(endpoint: str | None) -> bool:
    """Whether queries must go over TLS (azure-core's bearer policy refuses plain http unless told):
    always, except for a plain-http endpoint on this machine's loopback (an emulator of the query
    API, as AzureWebJobsStorage may name Azurite). Any other http endpoint keeps the check, and fails."""
    from urllib.parse import urlsplit

    parts = urlsplit(endpoint or "")
    return not (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def kql_string(value: str) -> str:
    """`value` as a double-quoted KQL string literal: backslashes and quotes escaped.

    Control characters (and Unicode line/paragraph separators) are refused rather than escaped:
    no legitimate name contains them, and refusing is safer than trusting an escape table."""
    if not isinstance(value, str):
        raise TypeError(f"kql_string takes str, not {type(value).__name__}")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp"):
            raise ValueError(f"control character U+{ord(ch):04X} not allowed in a KQL string literal")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kql_datetime(value: datetime) -> str:
    """A KQL datetime literal for an aware (or UTC-naive) datetime."""
    return f"datetime({utc(value).strftime('%Y-%m-%dT%H:%M:%S.%fZ')})"


def utc(value: datetime) -> datetime:
    """Naive datetimes are UTC (as the service's are); aware ones are converted."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def platform_error(exc: BaseException, action: str) -> PlatformError:
    """The PlatformError for an azure-core failure of a query: transient when the same query may
    succeed later (408/429/5xx, no answer, a broken read), permanent for authorization and
    configuration."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    first = first_line(exc)
    if isinstance(exc, ClientAuthenticationError):
        return PlatformError(f"{action}: not authorized ({first})")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        if status < 400:  # no error status: an answer that broke while it was read
            return PlatformError(f"{action}: {type(exc).__name__}: {first}", transient=True)
        detail = describe_error(getattr(exc, "model", None)) or first
        return PlatformError(f"{action}: HTTP {status} {detail}", transient=is_transient(status))
    if isinstance(exc, ServiceRequestError) and "non-TLS" in str(exc):
        # azure-core's bearer policy refused a plain-http endpoint before sending: configuration
        return PlatformError(f"{action}: {first} (pass enforce_https=False only for a local endpoint)")
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):  # no answer, incl. timeouts
        return PlatformError(f"{action}: no answer from Log Analytics ({first})", transient=True)
    return PlatformError(f"{action}: {type(exc).__name__}: {first}", transient=True)


def error_in_body(body: bytes | bytearray) -> str:
    """The described `error` of an error answer's JSON body, or its first bytes when it is not JSON."""
    try:
        error = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        return bytes(body[:200]).decode("utf-8", "replace")
    return describe_error(error)


def describe_error(error: Any) -> str:
    """`code: message`, then the inner messages (a partial error's own message is only "There were
    some errors when processing your query."). `error` is the API's error JSON (a Mapping) or the
    SDK's LogsQueryError (attributes); "" for None."""
    if error is None:
        return ""
    if isinstance(error, Mapping):
        get = error.get
    elif hasattr(error, "code") or hasattr(error, "message"):
        def get(key: str) -> Any:
            return getattr(error, key, None)
    else:
        return str(error)[:500]
    code, message = get("code") or "", get("message") or ""
    parts = [f"{code}: {message}" if code and message else str(code or message)]
    inner = get("innererror")
    while isinstance(inner, Mapping):
        if inner.get("message"):
            parts.append(str(inner["message"]))
        inner = inner.get("innererror")
    for detail in get("details") or []:
        if isinstance(detail, Mapping):  # the SDK's models are MutableMappings, not dicts
            text = (detail.get("innererror") or {}).get("message") or detail.get("message")
            if text:
                parts.append(str(text))
    return "; ".join(p for p in parts if p)[:1000]


def first_line(exc: BaseException) -> str:
    message = str(getattr(exc, "message", None) or exc).strip()
    return message.splitlines()[0][:500] if message else type(exc).__name__


QUERY_ACTION = "Microsoft.OperationalInsights/workspaces/query/read"  # what Log Analytics Reader grants


def table_query_error(exc: BaseException, action: str, table: str, workspace_id: str) -> PlatformError:
    """platform_error, saying what it means for the failures after which modelops cannot see at all:
    the table does not exist (400, the semantic error SEM0100 naming it: Log Analytics creates a
    resource table with its first row, so nothing has ever sent one — an endpoint without its
    diagnostic setting), the identity may not query (403), the workspace id is wrong (404)."""
    error = platform_error(exc, action)
    status = getattr(exc, "status_code", None)
    detail = str(error)[len(action) + 2:] if str(error).startswith(f"{action}: ") else str(error)
    if status == 400 and f"Failed to resolve table or column expression named '{table}'" in detail:
        return PlatformError(f"{action}: HTTP 400: table {table} does not exist in Log Analytics workspace "
                             f"{workspace_id}: no row has ever reached it (the production endpoints need a "
                             f"diagnostic setting sending {table} there)")
    if status == 403:
        return PlatformError(f"{action}: HTTP 403: the identity may not query Log Analytics workspace "
                             f"{workspace_id} ({QUERY_ACTION}: Log Analytics Reader) ({detail})")
    if status == 404:
        return PlatformError(f"{action}: HTTP 404: Log Analytics workspace {workspace_id} not found "
                             f"(MODELOPS_LOG_ANALYTICS_WORKSPACE_ID is its workspace id, a GUID) ({detail})")
    return error
