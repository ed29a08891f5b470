"""`modelops rollouts approve|reject|abort|pause|resume|promote|retry ID` and `rollouts undo MODEL`:
operator controls, through the application that runs the rollout.

A `modelops up` host owning MODELOPS_HOME, or the Function App (MODELOPS_APP_URL): the command posts
to its HTTP route (POST /api/rollouts/{id}/actions/{action}, POST /api/models/{model}/undo) and prints
the answer. Neither: nothing runs a rollout without a host, so a control is answered from the
store (409 naming the state, audited) without taking the home; `retry` and `undo` take the home,
run in-process and wait, as `rollouts retry MODEL VERSION` does.

Exit codes (functions/cli/output.py): 0 accepted (or the run succeeded), 1 refused (403), invalid
(409) or failed, 2 bad input or unknown (400/404), 3 the retry/undo run did not succeed.
"""

from __future__ import annotations

import asyncio
import getpass
import socket
from typing import Any, Optional

import typer

from functions.cli.output import BAD_INPUT, FAILURE, emit_json, fail

CONTROLS = ("approve", "reject", "abort", "pause", "resume", "promote")


def _me() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()} (cli)"


def _remote(settings: Any) -> Any:
    from functions.cli.remote import remote_app

    return remote_app(settings.home)


def _answer(status: int, body: Any, as_json: bool, ok_line: str) -> None:
    if as_json:
        emit_json({"status": status, "body": body})
    if status in (200, 201, 202):
        if not as_json:
            typer.echo(ok_line)
        return
    error = body.get("error") if isinstance(body, dict) else str(body)
    fail(f"{status}: {error}", BAD_INPUT if status in (400, 404) else FAILURE)


def _call(client: Any, method: str, path: str, body: dict) -> tuple[int, Any]:
    from functions.cli.remote import RemoteError

    try:
        return client.call(method, path, body=body)
    except RemoteError as exc:
        fail(str(exc), FAILURE)
    raise AssertionError("unreachable")


def client_for(command: str) -> Any:
    """The application to talk to: the Function App (MODELOPS_APP_URL) or a `modelops up` host
    owning the home; None when neither (the command runs in-process)."""
    if _app_url():
        return _remote_azure()
    from functions.cli.platform_commands import local_settings

    return _remote(local_settings(command))


def retry_version_remote(client: Any, model: str, version: str, comment: str, as_json: bool) -> None:
    """`rollouts retry MODEL VERSION` beside a host or against the Function App."""
    status, answer = _call(client, "POST", f"/api/rollouts/{model}/{version}/retry", {"by": _me(), "comment": comment})
    _answer(status, answer, as_json, f"retry {model}:{version} started: "
            f"{answer.get('rollout_id') if isinstance(answer, dict) else ''}")


def _local_operator(application: Any) -> Any:
    """The in-process operator: the user at the keyboard (domain.authorisation.Caller.local)."""
    from functions.domain.authorisation import Caller
    from functions.services.operator import Operator

    me = Caller.local(_me())
    registry = application.ports.registry
    return Operator(application.rollouts, application.store, application.orchestrations(),
                    lambda action, model, record: (me, None), managed=application.managed,
                    in_workspace=lambda m, v: registry.get_workspace_model(m, v) is not None,
                    in_registry=lambda m, v: registry.get_registry_model(m, v) is not None)


def control(action: str, rollout_id: str, comment: str, full: bool, as_json: bool) -> None:
    from functions.bootstrap import build_app
    from functions.cli.platform_commands import local_settings

    settings = local_settings(f"rollouts {action}") if not _app_url() else None
    client = _remote(settings) if settings is not None else _remote_azure()
    body = {"comment": comment, **({"full": True} if full else {})}
    if client is not None:
        status, answer = _call(client, "POST", f"/api/rollouts/{rollout_id}/actions/{action}", body)
    else:  # no host: nothing is running here; the store answers (never takes the home)
        application = build_app(settings)
        result = asyncio.run(_local_operator(application).act(action, rollout_id, comment=comment, full=full))
        status, answer = result.status, result.body
        if status == 409 and isinstance(answer, dict) and "no longer running" in answer.get("error", ""):
            answer["error"] = (f"rollout {rollout_id} is recorded running but no modelops up host runs it "
                               "(start `modelops up`, which ends or resumes it)")
    _answer(status, answer, as_json, f"{action} → rollout {rollout_id}: accepted")


def _app_url() -> bool:
    import os

    return bool((os.environ.get("MODELOPS_APP_URL") or "").strip())


def _remote_azure() -> Any:
    from pathlib import Path

    from functions.cli.remote import remote_app

    return remote_app(Path("."))  # MODELOPS_APP_URL is set: the home is not consulted


def retry_by_id(rollout_id: str, comment: str, as_json: bool, timeout: float) -> None:
    from functions.cli.platform_commands import local_settings, open_platform, outcome_code

    if _app_url() or _remote(local_settings("rollouts retry")) is not None:
        client = _remote_azure() if _app_url() else _remote(local_settings("rollouts retry"))
        status, answer = _call(client, "POST", f"/api/rollouts/{rollout_id}/actions/retry", {"comment": comment})
        _answer(status, answer, as_json, f"retry of {rollout_id} started: {answer.get('retry_id') if isinstance(answer, dict) else ''}")
        return
    with open_platform("rollouts retry") as application:
        result = asyncio.run(_local_operator(application).act("retry", rollout_id, comment=comment))
        if result.status != 202:
            _answer(result.status, result.body, as_json, "")
        run = application.local.driver.wait(result.body["retry_id"], timeout)
        outcome = run.output or {"id": result.body["retry_id"], "state": "failed", "reason": run.error}
    if as_json:
        emit_json({"rollout_id": result.body["retry_id"], "rollout": outcome})
    else:
        typer.echo(f"retry of {rollout_id} ({result.body['retry_id']}) → {outcome.get('state')}: "
                   f"{outcome.get('reason', '')}")
    raise typer.Exit(outcome_code([outcome]))


def undo(model: str, to: Optional[str], comment: str, as_json: bool, timeout: float) -> None:
    from functions.cli.platform_commands import local_settings, open_platform, outcome_code

    body = {"comment": comment, **({"to": to} if to else {})}
    client = _remote_azure() if _app_url() else _remote(local_settings("rollouts undo"))
    if client is not None:
        status, answer = _call(client, "POST", f"/api/models/{model}/undo", body)
        _answer(status, answer, as_json, f"undo {model} → {answer.get('version') if isinstance(answer, dict) else ''}"
                f" started ({answer.get('rollout_id') if isinstance(answer, dict) else ''})")
        return
    with open_platform("rollouts undo") as application:
        result = asyncio.run(_local_operator(application).undo(model, to=to, comment=comment))
        if result.status != 202:
            _answer(result.status, result.body, as_json, "")
        run = application.local.driver.wait(result.body["rollout_id"], timeout)
        outcome = run.output or {"id": result.body["rollout_id"], "state": "failed", "reason": run.error}
    if as_json:
        emit_json({"rollout_id": result.body["rollout_id"], "rollout": outcome})
    else:
        typer.echo(f"undo {model} → {result.body['version']} ({result.body['rollout_id']}) → {outcome.get('state')}: "
                   f"{outcome.get('reason', '')}")
    raise typer.Exit(outcome_code([outcome]))


def attach(rollouts_app: typer.Typer) -> None:
    for action in CONTROLS:
        rollouts_app.command(action, help=_HELP[action])(_control_command(action))
    rollouts_app.command("undo")(undo_command)


_HELP = {
    "approve": "Approve a rollout awaiting approval.",
    "reject": "Reject a rollout awaiting approval.",
    "abort": "Abort a running rollout: a canary rolls back now; earlier, it ends rejected.",
    "pause": "Hold a rollout's current canary step (its bake clock stops).",
    "resume": "Resume a paused rollout: it bakes the rest of the step.",
    "promote": "End the current canary step's bake (after its health check); --full skips the remaining steps.",
}


def _control_command(action: str):
    if action == "promote":
        def command(rollout_id: str = typer.Argument(..., help="the rollout id"),
                    full: bool = typer.Option(False, "--full", help="skip every remaining step: 100% after "
                                              "this step's health check"),
                    comment: str = typer.Option("", "--comment", help="why (audited)"),
                    as_json: bool = typer.Option(False, "--json")) -> None:
            control(action, rollout_id, comment, full, as_json)
    else:
        def command(rollout_id: str = typer.Argument(..., help="the rollout id"),
                    comment: str = typer.Option("", "--comment", help="why (audited)"),
                    as_json: bool = typer.Option(False, "--json")) -> None:
            control(action, rollout_id, comment, False, as_json)
    command.__name__ = f"rollouts_{action}"
    return command


def undo_command(
    model: str = typer.Argument(..., help="the model whose production goes back"),
    to: Optional[str] = typer.Option(None, "--to", help="this version (default: the previous champion); "
                                     "re-deployed from the registry if its deployment is gone"),
    comment: str = typer.Option("", "--comment", help="why (audited)"),
    as_json: bool = typer.Option(False, "--json"),
    timeout: float = typer.Option(1800.0, "--timeout", help="seconds to wait (in-process)"),
) -> None:
    """Production back to the previous champion (or --to VERSION), gated by a smoke test."""
    undo(model, to, comment, as_json, timeout)
