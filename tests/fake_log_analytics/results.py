"""What an evaluator gives the fake Log Analytics server: a `Result` (rows, or a partial answer
with its error) or a `QueryError`, and the OneAPI error bodies the server answers them with.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Result:
    """What an evaluator returns. `rows` are lists in column order (JSON-able; datetimes allowed),
    or `encoded_rows` are the rows' JSON texts (used as they are). `error` (a OneAPI error object)
    turns the answer into a partial result."""

    columns: list[tuple[str, str]]
    rows: Sequence[Sequence[Any]] = ()
    encoded_rows: Sequence[str] | None = None
    error: dict[str, Any] | None = None
    table_name: str = "PrimaryResult"

    def __len__(self) -> int:
        return len(self.encoded_rows) if self.encoded_rows is not None else len(self.rows)


class QueryError(Exception):
    """Raised by an evaluator: answered as a Log Analytics error (400 by default)."""

    def __init__(self, message: str, *, code: str = "SemanticError", status: int = 400,
                 inner_code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.inner_code = inner_code

    def body(self) -> dict[str, Any]:
        """With an inner code, the service's shape for a semantic error (bodies users reported, e.g.
        CDCgov/prime-reportstream#11773 and Azure/azure-quickstart-templates#5174, both an unknown
        table): {"error": {"code": "BadArgumentError", "innererror": {"code": "SemanticError",
        "message": "A semantic error occurred.", "innererror": {"code": "SEM0100", "message":
        "'where' operator: Failed to resolve table or column expression named 'T'"}}}}."""
        inner: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner_code:
            if self.code == "SemanticError":
                inner["message"] = "A semantic error occurred."
            inner["innererror"] = {"code": self.inner_code, "message": self.message}
        return error_body("BadArgumentError", "The request had some invalid properties", innererror=inner)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """A OneAPI error body as Log Analytics sends it (with a correlation id)."""
    return {"error": {"message": message, "code": code, "correlationId": str(uuid.uuid4()), **extra}}


def limit_error(reason: str) -> dict[str, Any]:
    """The partial error of a result cut at the service's limits (E_QUERY_RESULT_SET_TOO_LARGE,
    0x80DA0003 = -2133196797 as a signed 32-bit code)."""
    # the keys of the recorded partial answer (tests/payloads/recorded/monitor-logs-query.json): no correlationId
    return {
        "message": "There were some errors when processing your query.",
        "code": "PartialError",
        "details": [{
            "code": "EngineError",
            "message": "Something went wrong processing your query on the server.",
            "innererror": {
                "code": "-2133196797",
                "message": f"Query result set has exceeded the internal {reason} (E_QUERY_RESULT_SET_TOO_LARGE).",
                "severity": 2,
                "severityName": "Error",
            },
        }],
    }



def gateway_timeout_body() -> dict[str, Any]:
    """The 504 a query over the server timeout gets, as azure-sdk-for-python's recorded session
    sdk/monitor/azure-monitor-query/tests/recordings/test_logs_client.pyTestLogsClienttest_logs_server_timeout.json
    (@bf0ae07) has it: GatewayTimeout, "Gateway timeout", inner error "ADX query timed out"."""
    return error_body("GatewayTimeout", "Gateway timeout",
                      innererror={"code": "GatewayTimeout", "message": "ADX query timed out"})
