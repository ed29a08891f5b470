"""The `modelops` CLI as a client of a running application, over the Function App's HTTP routes.

Which application a command talks to:
  1. MODELOPS_APP_URL set: the Function App in Azure (https://<app>.azurewebsites.net), with the
     function key MODELOPS_APP_KEY (x-functions-key) and/or an Entra ID bearer token
     (MODELOPS_APP_TOKEN as given, or one azure-identity gets for MODELOPS_APP_SCOPE);
  2. else a `modelops up` host that owns MODELOPS_HOME (<home>/up.json names its URL; the owner
     file proves it is alive), with the key in <home>/up-key when it binds beyond loopback;
  3. else None: the command runs the embedded platform in-process, as before hosts existed.

    <home>/up.json   {"url": "http://127.0.0.1:7071", "pid": N, "start_ticks": T, "started": ISO,
                      "key_required": bool}   written by `modelops up` once it listens, removed at stop
    <home>/up-key    the host key (mode 0600); never printed, never logged
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

UP_FILE = "up.json"
KEY_FILE = "up-key"


class RemoteError(RuntimeError):
    """The application could not be reached (connection refused, timeout): not an HTTP answer."""


@dataclass
class AppClient:
    base_url: str  # without a trailing slash; routes are appended ("/api/rollouts")
    headers: dict[str, str] = field(default_factory=dict)
    where: str = ""  # for messages: "the modelops up host at …" / "the Function App at …"

    def call(self, method: str, path: str, *, body: Any = None, params: Mapping[str, str] | None = None,
             headers: Mapping[str, str] | None = None, timeout: float = 60.0) -> tuple[int, Any]:
        """(status, decoded JSON body — or the text when it is not JSON). Raises RemoteError when
        nothing answered."""
        import requests

        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        sent = {**self.headers, **({"Content-Type": "application/json"} if data is not None else {}), **(headers or {})}
        try:
            answer = requests.request(method, self.base_url + path, data=data, params=params, headers=sent,
                                      timeout=timeout)
        except requests.exceptions.RequestException as exc:
            raise RemoteError(f"cannot reach {self.where or self.base_url}: {type(exc).__name__}") from None
        try:
            return answer.status_code, answer.json()
        except ValueError:
            return answer.status_code, answer.text


def read_up_file(home: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(home) / UP_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("url") else None


def live_host(home: Path) -> dict[str, Any] | None:
    """The up.json of a host that is alive and owns `home` now; None otherwise (a stale file of a
    host that died is ignored: the next owner takes the home over)."""
    from functions.adapters.local.ownership import is_alive, read_owner

    up = read_up_file(home)
    owner = read_owner(home)
    if up is None or owner is None or owner.pid != int(up.get("pid", -1)):
        return None
    if int(up.get("start_ticks", 0) or 0) and owner.start_ticks and owner.start_ticks != int(up["start_ticks"]):
        return None
    return up if is_alive(owner) else None


def remote_app(home: Path, env: Mapping[str, str] | None = None) -> AppClient | None:
    env = os.environ if env is None else env
    url = (env.get("MODELOPS_APP_URL") or "").strip().rstrip("/")
    if url:
        headers: dict[str, str] = {}
        if env.get("MODELOPS_APP_KEY"):
            headers["x-functions-key"] = env["MODELOPS_APP_KEY"]
        token = (env.get("MODELOPS_APP_TOKEN") or "").strip() or _token_for(env.get("MODELOPS_APP_SCOPE", ""))
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return AppClient(url, headers, where=f"the Function App at {url}")
    up = live_host(home)
    if up is None:
        return None
    headers = {}
    if up.get("key_required"):
        try:
            headers["x-functions-key"] = (Path(home) / KEY_FILE).read_text().strip()
        except OSError:
            pass  # the host answers 401 and the command says so
    return AppClient(str(up["url"]).rstrip("/"), headers, where=f"the modelops up host at {up['url']}")


def _token_for(scope: str) -> str:
    """An Entra ID access token for the Function App's application (azure-identity's default chain:
    az login, a managed identity, environment credentials)."""
    scope = scope.strip()
    if not scope:
        return ""
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential().get_token(scope).token
