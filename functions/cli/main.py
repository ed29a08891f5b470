"""The `modelops` command. Thin: parse arguments, call the library, print, map errors to exit codes.

Errors are one line on stderr naming the problem (exit 2 for bad input, 1 for failures).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(
    name="modelops",
    help="Event-driven MLOps control plane for Azure Machine Learning: local platform and tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class CliError(Exception):
    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 2) -> None:
    raise CliError(message, code)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="CSV file to write"),
    rows: int = typer.Option(30_000, "--rows", min=1, help="number of rows"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same data)"),
    credit_limit_factor: float = typer.Option(1.0, help="drift knob: multiply credit limits"),
    age_shift: float = typer.Option(0.0, help="drift knob: years added to ages"),
    repayment_delay_shift: float = typer.Option(0.0, help="drift knob: log-odds added to late repayment"),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="omit the target column (inference data)"),
) -> None:
    """Generate synthetic credit-card-default data with the scenario's schema."""
    from ml.datagen import Drift, generate as make

    drift = Drift(credit_limit_factor, age_shift, repayment_delay_shift)
    frame = make(rows, seed=seed, drift=drift, labelled=not unlabelled)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out, index=False)
    typer.echo(f"wrote {len(frame):,} rows to {out}")


@app.command()
def train(
    data: Path = typer.Option(..., "--data", help="CSV or Parquet with the schema's 23 features and target"),
    out: Path = typer.Option(..., "--out", help="artifact folder to write"),
    model_name: str = typer.Option("credit-card-default", "--model-name"),
    seed: int = typer.Option(42, "--seed"),
    search_iterations: int = typer.Option(4, "--search-iterations", min=1, help="randomized search candidates"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object with the metrics"),
) -> None:
    """Train the credit-card-default pipeline and write the model artifact."""
    from ml.training import train_from_file

    summary = train_from_file(data, out, model_name=model_name, seed=seed, search_iterations=search_iterations)
    if as_json:
        emit_json(summary)
    else:
        m = summary
        typer.echo(
            f"trained {model_name} on {m['n_train']:,} rows (held out {m['n_test']:,}): "
            f"ROC AUC {m['roc_auc']:.3f}, F1 {m['f1']:.3f}, precision {m['precision']:.3f}, "
            f"recall {m['recall']:.3f}, accuracy {m['accuracy']:.3f}\nartifact: {m['artifact']}"
        )


@app.command()
def serve(
    model_dir: Path = typer.Option(..., "--model-dir", help="artifact folder (AZUREML_MODEL_DIR)"),
    port: int = typer.Option(5001, "--port"),
    console_log: Optional[Path] = typer.Option(None, "--console-log", help="file for the server's output"),
) -> None:
    """Serve a model artifact with azureml-inference-server-http on 127.0.0.1 until Ctrl-C."""
    import time

    from functions.adapters.local.inference_server import InferenceServer
    from functions.settings import Settings

    settings = Settings.from_env()
    log = console_log or settings.home / "serve" / f"console-{port}.log"
    with InferenceServer(model_dir, settings.serving_python, log, port=port) as server:
        typer.echo(f"serving {model_dir} at {server.scoring_uri} (console log: {log}); Ctrl-C to stop")
        try:
            while server.is_running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass


@app.command()
def score(
    request: Path = typer.Argument(..., help="JSON request file, e.g. ml/sample.json"),
    url: str = typer.Option("http://127.0.0.1:5001/score", "--url"),
    deployment: Optional[str] = typer.Option(None, "--deployment", help="azureml-model-deployment header"),
    key: Optional[str] = typer.Option(None, "--key", envvar="MODELOPS_ENDPOINT_KEY", help="endpoint key"),
) -> None:
    """Send a scoring request and print the status and JSON answer."""
    from functions.scoring_client import post_json

    try:
        body = request.read_bytes()
    except OSError as exc:
        fail(f"cannot read {request}: {exc.strerror}")
    answer = post_json(url, body, deployment=deployment, key=key)
    emit_json({"status": answer.status, "body": answer.json})


events_app = typer.Typer(help="Deliver Event Grid payloads to the ModelRegistered handler (local platform).",
                         no_args_is_help=True)
app.add_typer(events_app, name="events")


def _local_platform(**kwargs: Any):
    from functions.bootstrap import LocalPlatform
    from functions.core.config import ConfigError
    from functions.settings import Settings, SettingsError

    try:
        return LocalPlatform(Settings.from_env(), **kwargs)
    except (ConfigError, SettingsError) as exc:
        fail(str(exc))


@events_app.command("send")
def events_send(
    file: Path = typer.Argument(..., help="Event Grid payload (an array of events or one event) as JSON"),
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and print; start nothing, record nothing"),
    as_json: bool = typer.Option(False, "--json"),
    timeout: float = typer.Option(1800.0, "--timeout", help="seconds to wait for started rollouts"),
) -> None:
    """Send an Event Grid payload file to the handler; without --dry-run, run the rollouts it starts."""
    try:
        payload = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    platform = _local_platform()
    with platform:
        if not dry_run:
            platform.revive()
        accepted = platform.deliver(payload, dry_run=dry_run)
        decisions = [{k: v for k, v in a.decision.to_dict().items() if k != "event_id" or v} for a in accepted]
        outcomes = [] if dry_run else platform.wait_all(timeout)
    if as_json:
        if dry_run:
            emit_json(decisions[0] if len(decisions) == 1 else decisions)
        else:
            emit_json({"decisions": decisions, "rollouts": outcomes})
        return
    for d in decisions:
        typer.echo(f"{d['action']:<9} {d.get('model') or '-'}:{d.get('version') or '-'}  {d['reason']}")
    for outcome in outcomes:
        typer.echo(f"rollout {outcome.get('model')}:{outcome.get('version')} → {outcome.get('state')}: "
                   f"{outcome.get('reason', '')}")


alerts_app = typer.Typer(help="Deliver Azure Monitor alert payloads to the webhook handler (local platform).",
                         no_args_is_help=True)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("send")
def alerts_send(
    file: Path = typer.Argument(..., help="common alert schema payload (JSON)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="decide and answer; launch nothing, record nothing"),
    as_json: bool = typer.Option(False, "--json"),
    wait: bool = typer.Option(False, "--wait", help="wait for the launched job and the rollout it starts"),
) -> None:
    """POST a payload to the alert webhook handler; prints {"status": <http status>, "body": <json>}."""
    try:
        body = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    platform = _local_platform()
    with platform:
        answer = platform.send_alert(body, dry_run=dry_run)
        result: dict[str, Any] = {"status": answer.status, "body": answer.body}
        if wait and not dry_run and answer.status == 202:
            platform.revive()
            result["job"] = platform.jobs.wait(answer.body["job"])
            result["rollouts"] = platform.wait_all()
    if as_json:
        emit_json(result)
    else:
        body_ = result["body"]
        typer.echo(f"{result['status']} {body_.get('action', 'error')}: {body_.get('reason') or body_.get('error')}"
                   + (f" (job {body_['job']})" if body_.get("job") else ""))


@app.command()
def drift(
    reference: Path = typer.Option(..., "--reference", help="reference data: CSV or Parquet (e.g. reference.parquet)"),
    current: Path = typer.Option(..., "--current", help="current data: CSV/Parquet file or a folder of them"),
    as_json: bool = typer.Option(False, "--json", help="print {OverallDriftMetrics, FeatureDriftMetrics}"),
    report: Optional[Path] = typer.Option(None, "--report", help="write Evidently's HTML report here"),
    model_name: str = typer.Option("credit-card-default", "--model-name"),
    config: Optional[str] = typer.Option(None, "--config", help="JSON drift settings (methods, thresholds, ...)"),
) -> None:
    """Data drift of CURRENT against REFERENCE (Evidently DataDriftPreset statistics, computed fast)."""
    import shutil
    import tempfile

    from ml.drift import DriftInputError, compute_drift

    for label, path in (("reference", reference), ("current", current)):
        if not path.exists():
            fail(f"--{label} {path}: no such file or folder")
    try:
        settings = json.loads(config) if config else None
    except ValueError as exc:
        fail(f"--config is not valid JSON: {exc}")
    out = Path(tempfile.mkdtemp(prefix="modelops-drift-"))
    try:
        try:
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):  # the job prints its records; we print ours
                result = compute_drift(reference, current, out, config=settings, model_name=model_name,
                                       report=report is not None)
        except DriftInputError as exc:
            fail(str(exc))
        payload = json.loads((out / "result.json").read_text())
        if report is not None and (out / "report.html").exists():
            report.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(out / "report.html", report)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    records = {r["type"]: r for r in payload.get("records", [])}
    if as_json:
        emit_json({"OverallDriftMetrics": records.get("OverallDriftMetrics"),
                   "FeatureDriftMetrics": records.get("FeatureDriftMetrics"), "status": payload["status"],
                   **({"report": str(report)} if report is not None and result.has_verdict else {})})
        return
    if not result.has_verdict:
        typer.echo(f"{payload['status']}: {result.current.rows} valid current rows "
                   f"(minimum {result.min_current_rows}); no drift verdict")
        return
    overall = records["OverallDriftMetrics"]["data"]
    typer.echo(f"dataset drift: {overall['dataset_drift']} ({overall['n_drifted_features']} of "
               f"{overall['n_features']} columns drifted)")
    for f in records["FeatureDriftMetrics"]["data"]:
        mark = "DRIFT" if f["drift_detected"] else "     "
        typer.echo(f"  {mark} {f['feature_name']:<22} {f['stattest_name']:<40} {f['drift_score']:.4f}")
    if report is not None:
        typer.echo(f"report: {report}")


timers_app = typer.Typer(help="Run the Function App's timers on the local platform.", no_args_is_help=True)
app.add_typer(timers_app, name="timers")


@timers_app.command("run")
def timers_run(
    name: str = typer.Argument(..., help="export | drift"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run a timer now: `export` (inference logs → Parquet) or `drift` (drift check + local alert rule)."""
    if name not in ("export", "drift"):
        fail(f"unknown timer {name!r}: choose export or drift")
    platform = _local_platform()
    with platform:
        if name == "export":
            result: Any = platform.export_logs()
        else:
            platform.revive()
            result = platform.check_drift()
            for item in result:
                alert = item.get("alert")
                if alert and alert["status"] == 202:
                    platform.jobs.wait(alert["body"]["job"])
                    item["rollouts"] = platform.wait_all()
    if as_json:
        emit_json(result)
    else:
        typer.echo(json.dumps(result, indent=2, default=str))


@app.command()
def register(
    model_dir: Path = typer.Option(..., "--model-dir", help="a trained artifact folder (modelops train --out)"),
    name: str = typer.Option("credit-card-default", "--name"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="run the rollout the registration triggers"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Register a model version in the local workspace; its ModelRegistered event starts a rollout."""
    platform = _local_platform()
    with platform:
        platform.revive()
        ref, payload = platform.workspace.register(model_dir, name)
        outcomes = platform.wait_all() if wait else []
    if as_json:
        emit_json({"model": ref.name, "version": ref.version, "event": payload[0], "rollouts": outcomes})
        return
    typer.echo(f"registered {ref.name}:{ref.version} ({ref.uri})")
    for outcome in outcomes:
        typer.echo(f"rollout → {outcome.get('state')}: {outcome.get('reason', '')}")


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json"),
    model: Optional[str] = typer.Option(None, "--model"),
    audit: bool = typer.Option(False, "--audit", help="include each rollout's audit trail"),
) -> None:
    """Rollouts and their states (running, succeeded, rejected, rolled_back, skipped, failed)."""
    from functions.adapters.local.store import DirectoryStore
    from functions.core.records import RolloutStore
    from functions.core.status import rollouts_view
    from functions.settings import Settings

    settings = Settings.from_env()
    view = rollouts_view(RolloutStore(DirectoryStore(settings.home / "store")), model, with_audit=audit)
    if as_json:
        emit_json(view)
        return
    if not view["rollouts"]:
        typer.echo("no rollouts yet")
    for r in view["rollouts"]:
        typer.echo(f"{r['model']}:{r['version']:<5} {r['state']:<11} {r.get('started') or '':<32} {r.get('reason') or ''}")
        for step in r.get("audit", []):
            typer.echo(f"    {step['seq']:>3} {step['at']}  {step['step']}")
    for name, current in view["production"].items():
        typer.echo(f"production: {name}:{current['version']} ({current['deployment']})")


@app.command()
def demo(
    workdir: Optional[Path] = typer.Option(None, "--workdir", help="where the demo keeps its files"),
    rows: int = typer.Option(10_000, "--rows", min=2_000),
    as_json: bool = typer.Option(False, "--json", help="also print the summary as JSON"),
) -> None:
    """Run the main job on the embedded local platform and print what it did."""
    from functions.demo import run_demo
    from functions.settings import Settings

    settings = Settings.from_env()
    summary = run_demo(settings, workdir or settings.home / "demo", rows=rows, echo=typer.echo)
    if as_json:
        emit_json(summary)


def main() -> None:
    import signal

    from ml.dataset import DataError

    # SIGTERM (e.g. from a supervisor) exits normally, so local servers are stopped at exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        app()
    except CliError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.code)
    except DataError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except Exception as exc:  # last resort: one line, not a traceback
        from functions.adapters.local.inference_server import ServingError

        code = 1
        if isinstance(exc, ServingError):
            typer.echo(f"error: {str(exc).splitlines()[0]}", err=True)
        else:
            typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
        sys.exit(code)


if __name__ == "__main__":
    main()
