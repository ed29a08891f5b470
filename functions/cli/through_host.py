"""The CLI beside a running `modelops up` host: deliver to it over its routes, never own the home.

A command that would otherwise open the embedded platform asks `running_host(settings)` first;
when a host owns the home it sends what it would have run in-process to the host's routes — the
Event Grid webhook for ModelRegistered events, /api/alerts, /admin/functions/NAME — and follows
the rollouts it started through GET /api/rollouts/{model}/{id}. It reads the store only for
decisions made beforehand (dry runs, what the host will decide), and never reconciles or resumes
the host's rollouts.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from functions.cli.output import FAILURE, fail

MODEL_REGISTERED = "model_registered"  # the Event Grid trigger ModelRegistered events go to
TIMERS = {"export": "export_inference_logs", "drift": "drift_check"}  # `timers run NAME` → the function
POLL_SECONDS = 0.5


def running_host(settings: Any) -> Any:
    """The AppClient of the host (or Function App) this command should talk to; None to run in-process."""
    from functions.cli.remote import remote_app

    return remote_app(settings.home)


def local_host(settings: Any) -> Any:
    """Only a `modelops up` host of this home (never MODELOPS_APP_URL): for the commands that read
    this home's store and workspace beside it (events send decides from it, register writes to it)."""
    import os

    from functions.cli.remote import remote_app

    return remote_app(settings.home, {k: v for k, v in os.environ.items() if k != "MODELOPS_APP_URL"})


def checked(client: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """A call whose failure to get any answer is one line, exit 1."""
    from functions.cli.remote import RemoteError

    try:
        return client.call(method, path, **kwargs)
    except RemoteError as exc:
        fail(str(exc), FAILURE)


def deliver_events(client: Any, payload: bytes) -> None:
    """A Notification delivery of the payload to the host's ModelRegistered trigger. A payload
    that is not an event array answers 400 (its events are `invalid` already); 5xx fails."""
    status, body = checked(client, "POST", "/runtime/webhooks/eventgrid", body=payload,
                           params={"functionName": MODEL_REGISTERED}, headers={"aeg-event-type": "Notification"})
    if status == 401:
        fail(f"{client.where} refused the delivery: {_error(body)}", FAILURE)
    if status >= 500 or status == 404:
        fail(f"{client.where} could not deliver the events ({status}): {_error(body)}", FAILURE)


def wait_for_rollouts(client: Any, started: list[tuple[str, str]], timeout: float) -> list[dict[str, Any]]:
    """Poll each (model, rollout id) until it is no longer running; its record's outcome."""
    deadline = time.monotonic() + timeout
    outcomes: dict[str, dict[str, Any]] = {}
    while True:
        for model, rollout_id in started:
            if rollout_id in outcomes:
                continue
            status, body = checked(client, "GET", f"/api/rollouts/{quote(model, safe='')}/{quote(rollout_id, safe='')}")
            if status == 200 and isinstance(body, dict) and body.get("state") not in (None, "running"):
                outcomes[rollout_id] = {k: body.get(k) for k in ("id", "model", "version", "state", "reason")}
        if len(outcomes) == len(started):
            return [outcomes[rollout_id] for _, rollout_id in started]
        if time.monotonic() > deadline:
            waiting = ", ".join(r for _, r in started if r not in outcomes)
            fail(f"still running on {client.where} after {timeout:.0f} s: {waiting} (follow it with modelops status)",
                 FAILURE)
        time.sleep(POLL_SECONDS)


def send_alert(client: Any, body: bytes, dry_run: bool) -> tuple[int, Any]:
    status, answer = checked(client, "POST", "/api/alerts", body=body, params={"dryRun": "1"} if dry_run else None)
    return status, answer if isinstance(answer, dict) else {"error": str(answer)[:300]}


def run_timer(client: Any, name: str) -> dict[str, Any]:
    function = TIMERS[name]
    status, body = checked(client, "POST", f"/admin/functions/{function}", body={"input": ""})
    if status != 202:
        fail(f"{client.where} did not start {function} ({status}): {_error(body)}", FAILURE)
    return {"function": function, "status": status, "host": client.base_url,
            "started": f"{function} started on {client.where} (its log shows the result)"}


def _error(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("error") or body)[:300]
    return str(body)[:300] or "no answer body"
