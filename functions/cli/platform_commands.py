"""The `modelops` commands that run the embedded local platform: register, events, alerts, timers,
rollouts, status, demo.

Each takes ownership of MODELOPS_HOME for as long as it runs (a second process on the same home is
refused with the owner named), ends whatever a previous owner left unfinished, and ends its own
unfinished rollouts when it stops (Ctrl-C, SIGTERM): see functions/bootstrap.py `App` and functions/adapters/local/host.py.
They exist only on the local platform: with MODELOPS_PLATFORM=azure they refuse instead of
silently running locally. Exit codes: functions/cli/output.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from functions.cli.output import BAD_INPUT, FAILURE, OK, ROLLOUT_UNSUCCESSFUL, emit_json, fail

UNSUCCESSFUL = ("rejected", "rolled_back", "failed", "abandoned", "interrupted")  # interrupted: did not finish

events_app = typer.Typer(help="Deliver Event Grid payloads to the ModelRegistered handler (local application).",
                         no_args_is_help=True)
alerts_app = typer.Typer(help="Deliver Azure Monitor alert payloads to the webhook handler (local application).",
                         no_args_is_help=True)
timers_app = typer.Typer(help="Run the Function App's timers on the local application.", no_args_is_help=True)
rollouts_app = typer.Typer(help="Act on rollouts (local application).", no_args_is_help=True)


def attach(app: typer.Typer) -> None:
    from functions.cli import controls_commands

    controls_commands.attach(rollouts_app)
    app.add_typer(events_app, name="events")
    app.add_typer(alerts_app, name="alerts")
    app.add_typer(timers_app, name="timers")
    app.add_typer(rollouts_app, name="rollouts")
    app.command()(register)
    app.command()(status)
    app.command()(demo)
    from functions.cli.up_command import up

    app.command()(up)


def local_settings(command: str) -> Any:
    from functions.settings import Settings, SettingsError

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))
    if settings.platform != "local":
        fail(f"modelops {command} runs the embedded local application, but MODELOPS_PLATFORM={settings.platform}: "
             "unset it to use the local platform (in Azure the Function App does this)")
    return settings


def open_platform(command: str, **kwargs: Any) -> Any:
    """The local application, owned by this process (HomeBusy → exit 1 naming the owner)."""
    from functions.adapters.local.ownership import HomeBusy
    from functions.bootstrap import build_app
    from functions.domain.config import ConfigError

    settings = local_settings(command)
    try:
        return build_app(settings, **kwargs).open()
    except ConfigError as exc:
        fail(str(exc))
    except HomeBusy as exc:
        fail(str(exc), FAILURE)


def outcome_code(outcomes: list[dict[str, Any]]) -> int:
    return ROLLOUT_UNSUCCESSFUL if any(o.get("state") in UNSUCCESSFUL for o in outcomes) else OK


def read_input(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except IsADirectoryError:
        fail(f"{file} is a folder, not a file")
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")


def _recovered_lines(application: Any) -> list[str]:
    return [f"ended {e.model}:{e.version} left by a stopped process → {e.state}: {e.reason}" for e in application.recovered]


# --- events ----------------------------------------------------------------------------------

@events_app.command("send")
def events_send(
    file: Path = typer.Argument(..., help="Event Grid payload (an array of events or one event) as JSON"),
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and print; start nothing, record nothing"),
    as_json: bool = typer.Option(False, "--json"),
    timeout: float = typer.Option(1800.0, "--timeout", help="seconds to wait for started rollouts"),
    wait: bool = typer.Option(True, "--wait/--no-wait",
                              help="wait for the rollouts it starts (without a host, --no-wait ends them when "
                                   "this process exits; beside a `modelops up` host they run on)"),
) -> None:
    """Send an Event Grid payload file to the handler; without --dry-run, run the rollouts it starts
    (beside a running `modelops up` host: delivered to its Event Grid webhook, the rollouts run there).
    Exit 2 if an event is invalid, 3 if a rollout did not succeed."""
    from functions.cli.through_host import local_host

    payload = read_input(file)
    settings = local_settings("events send")
    client = local_host(settings)
    recovered: list[str] = []
    if client is not None:
        decisions, outcomes = _events_through_host(client, settings, payload, dry_run, wait, timeout)
    else:
        with open_platform("events send") as application:
            accepted = application.deliver(payload, dry_run=dry_run)
            decisions = [_shown(a.decision) for a in accepted]
            if not wait:
                application.stop_reason = "exited without waiting for it (events send --no-wait)"
            outcomes = [] if dry_run or not wait else application.wait_all(timeout)
            recovered = _recovered_lines(application)
    if as_json:
        emit_json((decisions[0] if len(decisions) == 1 else decisions) if dry_run
                  else {"decisions": decisions, "rollouts": outcomes})
    else:
        for line in recovered:
            typer.echo(line)
        for d in decisions:
            typer.echo(f"{d['action']:<9} {d.get('model') or '-'}:{d.get('version') or '-'}  {d['reason']}")
        for outcome in outcomes:
            typer.echo(f"rollout {outcome.get('model')}:{outcome.get('version')} → {outcome.get('state')}: "
                       f"{outcome.get('reason', '')}")
        if client is not None and not dry_run and not wait:
            typer.echo(f"delivered to {client.where}: its rollouts run there (modelops status)")
    if any(d["action"] == "invalid" for d in decisions):
        raise typer.Exit(BAD_INPUT)
    raise typer.Exit(outcome_code(outcomes))


def _shown(decision: Any) -> dict[str, Any]:
    return {k: v for k, v in decision.to_dict().items() if k != "event_id" or v}


def _events_through_host(client: Any, settings: Any, payload: bytes, dry_run: bool, wait: bool,
                         timeout: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The decisions the host will make (a dry run over the same store: read only, the home stays
    the host's), then the delivery to its webhook and, with `wait`, the rollouts' outcomes."""
    from functions.bootstrap import build_app
    from functions.cli.through_host import deliver_events, wait_for_rollouts
    from functions.domain.config import ConfigError

    try:
        accepted = build_app(settings).deliver(payload, dry_run=True)  # not opened: nothing is owned
    except ConfigError as exc:
        fail(str(exc))
    decisions = [_shown(a.decision) for a in accepted]
    if dry_run:
        return decisions, []
    deliver_events(client, payload)
    started = [(a.decision.model, a.decision.run_key) for a in accepted if a.decision.action == "rollout"]
    return decisions, (wait_for_rollouts(client, started, timeout) if wait else [])


# --- alerts ----------------------------------------------------------------------------------

@alerts_app.command("send")
def alerts_send(
    file: Path = typer.Argument(..., help="common alert schema payload (JSON)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and answer; launch nothing, record nothing"),
    as_json: bool = typer.Option(False, "--json"),
    wait: bool = typer.Option(False, "--wait", help="wait for the launched job and the rollout it starts"),
) -> None:
    """POST a payload to the alert webhook handler; prints {"status": <http status>, "body": <json>}.
    Exit 2 for a 4xx answer, 1 for a 5xx, 3 if the rollout it led to did not succeed."""
    from functions.cli.through_host import running_host, send_alert

    body = read_input(file)
    client = running_host(local_settings("alerts send"))
    if client is not None:
        if wait:
            fail(f"alerts send --wait: the job runs on {client.where}, which serves no job status; "
                 "send without --wait and follow it with modelops status")
        status_, answer_body = send_alert(client, body, dry_run)
        result: dict[str, Any] = {"status": status_, "body": answer_body}
    else:
        with open_platform("alerts send") as application:
            answer = application.send_alert(body, dry_run=dry_run)
            result = {"status": answer.status, "body": answer.body}
            if wait and not dry_run and answer.status == 202:
                result["job"] = application.jobs.wait(answer.body["job"])
                result["rollouts"] = application.wait_all()
    if as_json:
        emit_json(result)
    else:
        body_ = result["body"]
        typer.echo(f"{result['status']} {body_.get('action', 'error')}: {body_.get('reason') or body_.get('error')}"
                   + (f" (job {body_['job']})" if body_.get("job") else ""))
    if 400 <= result["status"] < 500:
        raise typer.Exit(BAD_INPUT)
    if result["status"] >= 500:
        raise typer.Exit(FAILURE)
    raise typer.Exit(outcome_code(result.get("rollouts", [])))


# --- timers ----------------------------------------------------------------------------------

@timers_app.command("run")
def timers_run(
    name: str = typer.Argument(..., help="export | drift | retention | freezes"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run a timer now: `export` (inference logs → Parquet), `drift` (drift check + local alert rule),
    `retention` (old, unreferenced records go) or `freezes` (expired freezes end; held versions release)."""
    import asyncio

    from functions.cli.through_host import TIMERS, run_timer, running_host

    if name not in TIMERS:
        fail(f"unknown timer {name!r}: choose {', '.join(TIMERS)}")
    client = running_host(local_settings(f"timers run {name}"))
    if client is not None:  # the host runs it in the background, as the Functions admin API does
        started = run_timer(client, name)
        if as_json:
            emit_json(started)
        else:
            typer.echo(started["started"])
        raise typer.Exit(OK)
    with open_platform(f"timers run {name}") as application:
        outcomes: list[dict[str, Any]] = []
        if name == "export":
            result: Any = application.export_logs()
        elif name == "retention":
            result = application.apply_retention()
        elif name == "freezes":
            result = asyncio.run(application.release_due_freezes())
            outcomes = application.wait_all()
        else:
            result = application.check_drift()
            for item in result:
                alert = item.get("alert")
                if alert and alert["status"] == 202:
                    application.jobs.wait(alert["body"]["job"])
                    item["rollouts"] = application.wait_all()
                    outcomes += item["rollouts"]
    if as_json:
        emit_json(result)
    else:
        typer.echo(json.dumps(result, indent=2, default=str))
    raise typer.Exit(outcome_code(outcomes))


# --- register --------------------------------------------------------------------------------

def register(
    model_dir: Path = typer.Option(..., "--model-dir", help="a trained artifact folder (modelops train --out)"),
    name: str = typer.Option("credit-card-default", "--name", help="the model's name (AzureML's naming rules)"),
    evaluation_data: Optional[Path] = typer.Option(
        None, "--evaluation-data",
        help="labelled CSV (the features + target) for the quality gate; stored where the model's "
             "evaluation_data setting points (needed once per model, kept for later versions)"),
    wait: bool = typer.Option(True, "--wait/--no-wait",
                              help="run the rollout the registration triggers (without waiting, this process "
                                   "ends it when it exits: run it later with `modelops rollouts retry`)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Register a model version in the local workspace; its ModelRegistered event starts a rollout.
    Exit 0 when the rollout succeeded, 3 when it was rejected, rolled back or did not finish."""
    from functions.cli.main import check_model_dir
    from functions.shared.names import InvalidName, check_model_name

    from functions.cli.through_host import local_host

    settings = local_settings("register")  # before anything else: with MODELOPS_PLATFORM=azure nothing here applies
    try:
        check_model_name(name)
    except InvalidName as exc:
        fail(f"--name: {exc}")
    artifact = check_model_dir(model_dir)
    client = local_host(settings)
    if client is not None:
        _register_through_host(client, settings, artifact, model_dir, name, evaluation_data, wait, as_json)
    application = open_platform("register")
    with application:
        cfg = application.managed.get(name)
        _store_evaluation(application.store, cfg, name, artifact, model_dir, evaluation_data, settings.home)
        ref, payload = application.local.workspace.register(artifact, name)
        if not wait:
            application.stop_reason = "exited without waiting for it (register --no-wait)"
        outcomes = application.wait_all() if wait else []
        recovered = _recovered_lines(application)
    if not wait:  # ended by close(): report what the record now says
        outcomes = [r for r in application.rollouts.list(name) if r.get("version") == ref.version]
    if as_json:
        emit_json({"model": ref.name, "version": ref.version, "event": payload[0], "rollouts": outcomes,
                   "recovered": recovered})
    else:
        for line in recovered:
            typer.echo(line)
        typer.echo(f"registered {ref.name}:{ref.version} ({ref.uri})")
        for outcome in outcomes:
            typer.echo(f"rollout → {outcome.get('state')}: {outcome.get('reason', '')}")
            if not wait and outcome.get("state") == "abandoned":
                typer.echo(f"run it with: modelops rollouts retry {ref.name} {ref.version}")
        if cfg is None:
            typer.echo(f"{name} is not a managed model (MODELOPS_MODELS): no rollout")
    raise typer.Exit(outcome_code(outcomes) if wait else OK)


def _store_evaluation(store: Any, cfg: Any, name: str, artifact: Path, model_dir: Path,
                      evaluation_data: Optional[Path], home: Path) -> None:
    """Check the version's contract (and --evaluation-data against it) before it is registered, and
    store the evaluation data where the quality gate reads it; a managed model with none stored yet
    is refused (its gate could never pass)."""
    contract = _read_contract(artifact, cfg.contract if cfg is not None else {}, model_dir,
                              cfg.serving if cfg is not None else "modelops")
    evaluation = _read_evaluation(evaluation_data, contract) if evaluation_data is not None else None
    if cfg is None:
        return
    if evaluation is not None:
        store.put(cfg.evaluation_data, evaluation)
    elif store.get(cfg.evaluation_data) is None:
        fail(f"no labelled evaluation data for {name} (the quality gate needs it at {cfg.evaluation_data} in "
             f"{home / 'store'}): give it once with --evaluation-data FILE")


def _register_through_host(client: Any, settings: Any, artifact: Path, model_dir: Path, name: str,
                           evaluation_data: Optional[Path], wait: bool, as_json: bool) -> None:
    """Beside a `modelops up` host: the version goes into the workspace without owning the home
    (LocalWorkspace.register takes its number by one atomic rename, safe beside the host's own
    registrations), its ModelRegistered event to the host's webhook; the rollout runs on the host."""
    from functions.adapters.local.workspace import LocalWorkspace
    from functions.bootstrap import build_app
    from functions.cli.through_host import deliver_events, wait_for_rollouts
    from functions.domain.config import ConfigError

    reader = build_app(settings)  # not opened: configuration and the store, read beside the host
    try:
        cfg = reader.managed.get(name)
    except ConfigError as exc:
        fail(str(exc))
    _store_evaluation(reader.store, cfg, name, artifact, model_dir, evaluation_data, settings.home)
    ref, payload = LocalWorkspace(settings.home, "staging").register(artifact, name, emit=False)
    accepted = reader.deliver(payload, dry_run=True)  # what the host will decide
    deliver_events(client, json.dumps(payload).encode())
    started = [(a.decision.model, a.decision.run_key) for a in accepted if a.decision.action == "rollout"]
    outcomes = wait_for_rollouts(client, started, 1800.0) if wait else []
    if as_json:
        emit_json({"model": ref.name, "version": ref.version, "event": payload[0], "rollouts": outcomes,
                   "recovered": [], "host": client.base_url})
    else:
        typer.echo(f"registered {ref.name}:{ref.version} ({ref.uri}); its event went to {client.where}")
        for outcome in outcomes:
            typer.echo(f"rollout → {outcome.get('state')}: {outcome.get('reason', '')}")
        if started and not wait:
            typer.echo("its rollout runs on the host: follow it with modelops status")
        if cfg is None:
            typer.echo(f"{name} is not a managed model (MODELOPS_MODELS): no rollout")
    raise typer.Exit(outcome_code(outcomes))


def _read_contract(folder: Path, overrides: dict[str, Any], model_dir: Path, serving: str) -> Any:
    """The model's contract as its rollout will read it, one its `serving` can be gated on (exit 2
    naming the file and field: a probability metric for a no-code MLflow deployment, too)."""
    from functions.shared.contract import ContractError
    from functions.shared.contract_sources import read_contract
    from functions.shared.model_folder import find_in_folder

    def read(name: str) -> bytes | None:
        path = find_in_folder(folder, name)
        return None if path is None else path.read_bytes()

    try:
        contract = read_contract(read, overrides, where=f"--model-dir {model_dir}")
        contract.for_serving(serving, where=f"--model-dir {model_dir} (serving: {serving})")
        return contract
    except ContractError as exc:
        fail(str(exc))


def _read_evaluation(path: Path, contract: Any) -> bytes:
    """The file's bytes once they parse as the model's labelled evaluation data (exit 2 naming the problem)."""
    from functions.domain.evaluation import EvaluationError, read_evaluation_csv

    data = read_input(path)
    try:
        rows, labels = read_evaluation_csv(data, contract, 1_000_000)
    except EvaluationError as exc:
        fail(f"--evaluation-data {path}: {exc}")
    if contract.task != "regression" and len({str(label) for label in labels}) < 2:
        fail(f"--evaluation-data {path}: the target has only one class; the quality gate needs at least two")
    return data


# --- rollouts --------------------------------------------------------------------------------

@rollouts_app.command("retry")
def rollouts_retry(
    model: str = typer.Argument(..., help="model name (or a rollout id, without VERSION)"),
    version: Optional[str] = typer.Argument(None, help="the version whose rollout ended without success"),
    comment: str = typer.Option("", "--comment", help="why (recorded in the audit trail)"),
    as_json: bool = typer.Option(False, "--json"),
    timeout: float = typer.Option(1800.0, "--timeout", help="seconds to wait for the new run"),
) -> None:
    """Start a new, audited run of a version whose rollout was rejected, rolled back, failed or
    abandoned (a redelivered event never does: it stays a duplicate): `retry MODEL VERSION` or
    `retry ROLLOUT_ID`. Exit 3 if the run does not succeed."""
    import getpass
    import socket

    if version is None:
        from functions.cli.controls_commands import retry_by_id

        retry_by_id(model, comment, as_json, timeout)
        return
    from functions.cli.controls_commands import client_for, retry_version_remote

    client = client_for("rollouts retry")
    if client is not None:  # the host (or the Function App) runs it; this command does not wait
        retry_version_remote(client, model, version, comment, as_json)
        return

    with open_platform("rollouts retry") as application:
        answer = application.retry(model, version, by=f"{getpass.getuser()}@{socket.gethostname()} (cli)",
                                comment=comment)
        if answer.status != 202:
            fail(answer.decision.reason)
        outcome = application.local.driver.wait(answer.decision.run_key, timeout)
        result = outcome.output or {"id": answer.decision.run_key, "state": "failed", "reason": outcome.error}
    if as_json:
        emit_json({"rollout_id": answer.decision.run_key, "rollout": result})
    else:
        typer.echo(f"retry {model}:{version} ({answer.decision.run_key}) → {result.get('state')}: "
                   f"{result.get('reason', '')}")
    raise typer.Exit(outcome_code([result]))


# --- status ----------------------------------------------------------------------------------

def status(
    as_json: bool = typer.Option(False, "--json"),
    model: Optional[str] = typer.Option(None, "--model"),
    audit: bool = typer.Option(False, "--audit", help="include each rollout's audit trail"),
    watch: bool = typer.Option(False, "--watch", help="refresh every second (Ctrl-C to stop)"),
) -> None:
    """Per model: what serves production and since when, running rollouts with their phase, step and
    the time left in the current bake; then every rollout's state, and which process owns the home.
    Through a `modelops up` host (or MODELOPS_APP_URL) when one runs; else it reads the store and
    never takes the home over."""
    if watch:
        _watch(model)
        return
    view = _status_view(model, audit)
    if as_json:
        emit_json(view)
        return
    for line in _status_lines(view):
        typer.echo(line)


def _status_view(model: Optional[str], audit: bool = False) -> dict[str, Any]:
    import os

    from functions.cli.remote import RemoteError, remote_app

    settings = None if (os.environ.get("MODELOPS_APP_URL") or "").strip() else local_settings("status")
    client = remote_app(settings.home if settings is not None else Path("."))
    if client is not None:
        try:
            status_code, body = client.call("GET", "/api/status", params={"model": model} if model else None)
            _, listed = client.call("GET", "/api/rollouts", params={"model": model} if model else None)
        except RemoteError as exc:
            fail(str(exc), FAILURE)
        if status_code != 200 or not isinstance(body, dict):
            fail(f"{status_code}: {body.get('error') if isinstance(body, dict) else body}", FAILURE)
        return {**(listed if isinstance(listed, dict) else {}), **body, "via": client.where}
    from functions.adapters.local.ownership import is_alive, read_owner
    from functions.bootstrap import build_app
    from functions.services.status import rollouts_view, status_view

    application = build_app(settings)  # read only: not opened
    view = rollouts_view(application.rollouts, model, with_audit=audit)
    view.update(status_view(application.rollouts, application.managed.names, model=model,
                            freezes=application.freezes))
    owner = read_owner(settings.home)
    alive = owner is not None and is_alive(owner)
    view["owner"] = ({**owner.to_dict(), "alive": alive} if owner is not None else None)
    return view


def _status_lines(view: dict[str, Any]) -> list[str]:
    lines = []
    owner = view.get("owner")
    alive = bool(owner and owner.get("alive"))
    if owner:
        lines.append(f"home owned by process {owner['pid']} ({owner['command']}) since {owner['since']}"
                     + ("" if alive else " — that process is gone; the next modelops command ends what it left"))
    for item in view.get("models", []):
        prod = item.get("production")
        lines.append(f"{item['model']}: production " + (f"{prod['version']} ({prod['deployment']}) since {prod['since']}"
                                                        if prod else "serves nothing yet"))
        if item.get("frozen"):
            lines.append(f"  {item['frozen']}")
        if item.get("held"):
            lines.append(f"  held while frozen: version(s) {', '.join(item['held'])} (unfreezing releases the newest)")
        for r in item.get("running", []):
            left = "paused" if r.get("paused") else (f"{r['bake_left_seconds']:.0f} s left in the bake"
                                                     if r.get("bake_left_seconds") is not None else "")
            pct = f" at {r['percent']}%" if r.get("percent") is not None else ""
            lines.append(f"  running {r['id']} ({r.get('kind')}) {r['version']}: {r['phase']}{pct}, step "
                         f"{r.get('step')}" + (f", {left}" if left else ""))
    if not view.get("rollouts"):
        lines.append("no rollouts yet")
    for r in view.get("rollouts", []):
        orphan = r["state"] == "running" and owner is not None and not alive
        lines.append(f"{r['model']}:{r['version']:<5} {r['state']:<11} {r.get('started') or '':<32} "
                     f"{r.get('reason') or ''}" + ("  (its process is gone)" if orphan else ""))
        for step in r.get("audit", []):
            lines.append(f"    {step['seq']:>3} {step['at']}  {step['step']}")
    return lines


def _watch(model: Optional[str]) -> None:
    """rich's Live view, redrawn every second from a fresh status view; Ctrl-C ends it (exit 0)."""
    import time

    from rich.live import Live
    from rich.text import Text

    def render() -> Text:
        return Text("\n".join(_status_lines(_status_view(model))))

    try:
        with Live(render(), refresh_per_second=4, transient=False) as live:
            while True:
                time.sleep(1.0)
                live.update(render())
    except KeyboardInterrupt:
        return


# --- demo ------------------------------------------------------------------------------------

def demo(
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="where the demo keeps its files"),
    rows: int = typer.Option(10_000, "--rows", min=2_000),
    as_json: bool = typer.Option(False, "--json", help="also print the summary as JSON"),
) -> None:
    """Run the main job on the embedded local platform and print what it did."""
    from functions.cli.demo import run_demo

    from functions.cli.remote import live_host

    settings = local_settings("demo")
    host = live_host(settings.home)
    if host is not None:
        fail(f"modelops demo runs its own local platform, but the modelops up host at {host['url']} (pid "
             f"{host['pid']}) owns {settings.home}: stop it or use another MODELOPS_HOME", FAILURE)
    summary = run_demo(settings, workdir or settings.home / "demo", rows=rows, echo=typer.echo)
    if as_json:
        emit_json(summary)
