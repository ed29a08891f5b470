"""Calling a scoring URI the way AzureML clients do: bearer key + explicit deployment header.

Used for the local platform and for real managed online endpoints alike (the SDK's
`online_endpoints.invoke` mutates a module-level header dict, so we call the URI ourselves).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScoringAnswer:
    status: int
    json: Any  # parsed body, or {"raw": text} when the body is not JSON
    elapsed_ms: float
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def post_json(
    url: str,
    body: bytes | str | dict | list,
    *,
    deployment: str | None = None,
    key: str | None = None,
    timeout: float = 30.0,
    session: Any = None,
) -> ScoringAnswer:
    import requests

    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    headers = {"Content-Type": "application/json"}
    if deployment:
        headers["azureml-model-deployment"] = deployment
    if key:
        headers["Authorization"] = f"Bearer {key}"
    http = session or requests
    started = time.perf_counter()
    response = http.post(url, data=body, headers=headers, timeout=timeout)
    elapsed = (time.perf_counter() - started) * 1000
    try:
        parsed = response.json()
    except ValueError:
        parsed = {"raw": response.text[:2000]}
    return ScoringAnswer(response.status_code, parsed, elapsed, dict(response.headers))
