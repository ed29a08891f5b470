"""`modelops freeze [MODEL]`, `modelops unfreeze [MODEL]`, `modelops freezes`.

Through the running application when there is one (functions/cli/remote.py: the Function App at
MODELOPS_APP_URL, or a `modelops up` host owning the home: POST/DELETE/GET /api/freezes), else
in-process: freezing and listing touch only the store; unfreezing takes the home, because the
released version's rollout runs in this process (it waits for it, like `modelops register`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Optional

import typer

from functions.cli.output import FAILURE, OK, emit_json, fail, one_line


def attach(app: typer.Typer) -> None:
    app.command()(freeze)
    app.command()(unfreeze)
    app.command("freezes")(list_freezes)


def _remote() -> Any:
    from functions.cli.remote import remote_app
    from functions.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))
    return remote_app(settings.home), settings


def _answer(client: Any, method: str, path: str, **kwargs: Any) -> Any:
    from functions.cli.remote import RemoteError

    try:
        status, body = client.call(method, path, **kwargs)
    except RemoteError as exc:
        fail(str(exc), FAILURE)
    if status >= 400:
        error = body.get("error") if isinstance(body, dict) else body
        fail(one_line(f"{client.where} answered {status}: {error}"), FAILURE if status >= 500 else 2)
    return body


def _me() -> Any:
    import getpass

    from functions.domain.authorisation import Caller

    try:
        return Caller.local(f"{getpass.getuser()} (cli)")
    except (KeyError, OSError):
        return Caller.local("unknown user (cli)")


def _local_app(command: str) -> Any:
    """The application without taking the home: freezes are store records."""
    from functions.bootstrap import build_app
    from functions.cli.platform_commands import local_settings

    return build_app(local_settings(command))


def freeze(
    model: Optional[str] = typer.Argument(None, help="the model to freeze (none: every model)"),
    until: Optional[str] = typer.Option(None, "--until", help="end the freeze at this ISO 8601 time (UTC if no offset)"),
    for_: Optional[str] = typer.Option(None, "--for", help="end the freeze after this long: 30m, 2h, 1d, 1w"),
    comment: str = typer.Option("", "--comment", help="why (kept in the audit)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Freeze a model (or every model): new versions are held, retraining is skipped, running
    rollouts go on (and can be aborted). Audited."""
    from datetime import datetime, timezone

    from functions.domain.freezes import parse_until

    try:
        expiry = parse_until(until, for_, datetime.now(timezone.utc))
    except ValueError as exc:
        fail(f"--until/--for: {exc}")
    client, _ = _remote()
    if client is not None:
        body = _answer(client, "POST", "/api/freezes", body={"model": model, "until": expiry, "comment": comment})
    else:
        application = _local_app("freeze")
        if model is not None and application.managed.get(model) is None:
            fail(f"model {model!r} is not managed (managed: {', '.join(application.managed.names) or 'none'})")
        body, _status = application.freeze(model, caller=_me(), until=expiry, comment=comment)
    emit_json(body) if as_json else typer.echo(body["frozen"])


def unfreeze(
    model: Optional[str] = typer.Argument(None, help="the model to unfreeze (none: the global freeze)"),
    comment: str = typer.Option("", "--comment", help="why (kept in the audit)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Unfreeze: the newest version held meanwhile is rolled out; older held ones are superseded."""
    client, _ = _remote()
    if client is not None:
        params = {k: v for k, v in (("model", model), ("comment", comment)) if v}
        body = _answer(client, "DELETE", "/api/freezes", params=params)
        outcomes: list[dict[str, Any]] = []
    else:
        from functions.cli.platform_commands import open_platform, outcome_code

        application = open_platform("unfreeze")
        with application:
            body, status = asyncio.run(application.unfreeze(model, caller=_me(), comment=comment))
            if status >= 400:
                fail(body["error"])
            outcomes = application.wait_all()
        body = {**body, "rollouts": outcomes}
    if as_json:
        emit_json(body)
    else:
        typer.echo(f"unfrozen {model or '(global freeze)'}")
        for item in body.get("released", []):
            extra = f" (by {item['superseded_by']})" if item["outcome"] == "superseded" else ""
            typer.echo(f"{item['model']}:{item['version']} {item['outcome']}{extra}")
        if body.get("still_frozen"):
            typer.echo(f"still frozen: {body['still_frozen']}")
        for outcome in outcomes:
            typer.echo(f"rollout → {outcome.get('state')}: {outcome.get('reason', '')}")
    if client is None:
        raise typer.Exit(outcome_code(outcomes))
    raise typer.Exit(OK)


def list_freezes(as_json: bool = typer.Option(False, "--json")) -> None:
    """What is frozen now and which versions are held."""
    client, _ = _remote()
    body = _answer(client, "GET", "/api/freezes") if client is not None else _local_app("freezes").freezes_view()
    if as_json:
        emit_json(body)
        return
    if not body["freezes"]:
        typer.echo("nothing is frozen")
    for f in body["freezes"]:
        typer.echo(f["frozen"])
    for h in body["held"]:
        typer.echo(f"held: {h['model']}:{h['version']} since {h['at']}")
