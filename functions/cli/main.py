"""The `modelops` command. Thin: parse arguments, call the library, print, map errors to exit codes.

Errors are one line on stderr naming the problem: exit 0 only for success, 2 for bad input (usage
errors included), 1 for failures. Inputs are checked before any work starts (training, a server).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import NoReturn, Optional

import typer

from functions.cli.output import CliError, emit_json, fail, one_line

app = typer.Typer(
    name="modelops",
    help="Event-driven MLOps control plane for Azure Machine Learning: local platform and tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _existing_ancestor(path: Path) -> Path:
    """The nearest part of ``path`` that exists (what creating ``path`` would write into)."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path.cwd()


def _check_creatable_in(folder: Path, option: str, path: Path) -> None:
    """``path`` (missing) could be created under ``folder``: the part of it that exists is a
    writable folder."""
    base = _existing_ancestor(folder)
    if not base.is_dir():
        fail(f"{option} {path}: {base} is a file, not a folder")
    if not os.access(base, os.W_OK | os.X_OK):
        fail(f"{option} {path}: {base} is not writable")


def check_output_file(path: Path, option: str) -> None:
    """A file the command will write: not a folder, and its folder exists or can be created."""
    if path.is_dir():
        fail(f"{option} {path}: is a folder; give a file name")
    if path.exists():
        if not os.access(path, os.W_OK):
            fail(f"{option} {path}: the file is not writable")
        return
    _check_creatable_in(path.parent, option, path)


def check_output_dir(path: Path, option: str) -> None:
    """A folder the command will write into: a folder if it exists, else creatable."""
    if path.exists():
        if not path.is_dir():
            fail(f"{option} {path}: exists and is not a folder")
        if not os.access(path, os.W_OK | os.X_OK):
            fail(f"{option} {path}: the folder is not writable")
        return
    _check_creatable_in(path.parent, option, path)


def check_model_dir(model_dir: Path) -> Path:
    """The model folder behind --model-dir, as score.py will find it under AZUREML_MODEL_DIR:
    the folder itself or its single subfolder (AzureML mounts <dir>/<name>/) — a modelops artifact
    (model_card.json + model.joblib) or an MLflow model (MLmodel). Anything else is named here
    rather than discovered by a server that exits during start-up."""
    from ml.artifact import CARD_FILE, MODEL_FILE, find_artifact_dir

    option = f"--model-dir {model_dir}"
    if not model_dir.exists():
        fail(f"{option}: no such folder")
    if not model_dir.is_dir():
        fail(f"{option}: is a file, not a folder (give the artifact folder that holds {CARD_FILE})")
    try:
        if not any(model_dir.iterdir()):
            fail(f"{option}: the folder is empty (train one with `modelops train --out`)")
        mlflow = [p for p in (model_dir, *sorted(model_dir.iterdir())) if p.is_dir() and (p / "MLmodel").is_file()]
        if mlflow and not (model_dir / CARD_FILE).is_file():
            return mlflow[0]  # an MLflow model: its contract is checked when it is read
        folder = find_artifact_dir(model_dir)
    except FileNotFoundError as exc:
        fail(f"{option}: {exc} (nor an MLflow MLmodel)")
    except OSError as exc:
        fail(f"{option}: cannot be read: {exc.strerror}")
    if not (folder / MODEL_FILE).is_file():
        fail(f"{option}: no {MODEL_FILE} next to {folder / CARD_FILE}")
    try:
        card = json.loads((folder / CARD_FILE).read_text())
    except (OSError, ValueError) as exc:
        fail(f"{option}: {folder / CARD_FILE} cannot be read as JSON: {one_line(exc)}")
    if not isinstance(card, dict) or not isinstance(card.get("features"), list):
        fail(f"{option}: {folder / CARD_FILE} is not a model card (no features list)")
    return folder


def check_url(url: str) -> str:
    """``url`` for messages (userinfo dropped); bad input unless http(s) with a host."""
    from urllib.parse import urlsplit

    shown = display_url(url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number in range)
    except ValueError:
        fail(f"--url {shown}: not a valid URL (bad port?)")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"--url {shown}: not an http(s) URL with a host, e.g. http://127.0.0.1:5001/score")
    return shown


def display_url(url: str) -> str:
    """The URL without user:password@ (never echo credentials)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


@app.command()
def generate(
    out: Path = typer.Option(..., "--out", help="CSV file to write"),
    rows: int = typer.Option(30_000, "--rows", min=1, help="number of rows"),
    seed: int = typer.Option(0, "--seed", help="random seed (same seed, same data)"),
    credit_limit_factor: float = typer.Option(1.0, min=0.0, help="drift knob: multiply credit limits"),
    age_shift: float = typer.Option(0.0, help="drift knob: years added to ages"),
    repayment_delay_shift: float = typer.Option(0.0, help="drift knob: log-odds added to late repayment"),
    unlabelled: bool = typer.Option(False, "--unlabelled", help="omit the target column (inference data)"),
) -> None:
    """Generate synthetic credit-card-default data with the scenario's schema."""
    from ml.datagen import Drift, generate as make

    check_output_file(out, "--out")
    drift = Drift(credit_limit_factor, age_shift, repayment_delay_shift)
    frame = make(rows, seed=seed, drift=drift, labelled=not unlabelled)
    # Written next to the target and renamed: a failed write leaves no half-written CSV at --out.
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(partial, index=False)
        os.replace(partial, out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        fail(f"cannot write {out}: {exc.strerror or exc}", 1)
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

    # Before training, which takes minutes: a bad --out would otherwise fail only at the end.
    if not data.exists():
        fail(f"--data {data}: no such file")
    if data.is_dir():
        fail(f"--data {data}: is a folder; give a CSV or Parquet file")
    check_output_dir(out, "--out")
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
    port: int = typer.Option(5001, "--port", min=1, max=65535),
    console_log: Optional[Path] = typer.Option(None, "--console-log", help="file for the server's output"),
) -> None:
    """Serve a model artifact with azureml-inference-server-http on 127.0.0.1 until Ctrl-C."""
    import time

    from functions.adapters.local.inference_server import InferenceServer, PortUnavailableError
    from functions.settings import Settings

    check_model_dir(model_dir)
    settings = Settings.from_env()
    log = console_log or settings.home / "serve" / f"console-{port}.log"
    check_output_file(log, "--console-log")
    server = InferenceServer(model_dir, settings.serving_python, log, port=port)
    try:  # stopped however this ends, Ctrl-C during start-up included
        try:
            server.start()  # refuses a busy port; healthy means this server answered, not another program
        except PortUnavailableError as exc:
            fail(str(exc).splitlines()[0])
        typer.echo(f"serving {model_dir} at {server.scoring_uri} (console log: {log}); Ctrl-C to stop")
        try:
            while server.is_running():
                time.sleep(0.5)
        except KeyboardInterrupt:
            return
        # It stopped without being asked to: a failure, never a success.
        fail(server.exit_message(), 1)
    finally:
        server.stop()


@app.command()
def score(
    request: Path = typer.Argument(..., help="JSON request file, e.g. ml/sample.json"),
    url: str = typer.Option("http://127.0.0.1:5001/score", "--url"),
    deployment: Optional[str] = typer.Option(None, "--deployment", help="azureml-model-deployment header"),
    key: Optional[str] = typer.Option(None, "--key", envvar="MODELOPS_ENDPOINT_KEY", help="endpoint key"),
) -> None:
    """Send a scoring request and print the status and JSON answer."""
    import requests

    from functions.shared.scoring_client import post_json

    shown = check_url(url)
    try:
        body = request.read_bytes()
    except OSError as exc:
        fail(f"cannot read {request}: {exc.strerror}")
    try:
        json.loads(body)
    except ValueError as exc:  # UnicodeDecodeError included
        fail(f"{request}: not valid JSON: {one_line(exc)}")
    timeout = 30.0
    try:
        answer = post_json(url, body, deployment=deployment, key=key, timeout=timeout)
    except requests.exceptions.Timeout:
        fail(f"no answer from {shown} within {timeout:.0f}s", 1)
    except requests.exceptions.ConnectionError as exc:
        text = str(exc)
        reason = ("connection refused" if "refused" in text.lower() else
                  "unknown host" if "resolve" in text.lower() or "not known" in text.lower() else
                  "connection failed")
        fail(f"cannot connect to {shown}: {reason}", 1)
    except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema):
        fail(f"--url {shown}: not a valid URL")
    except requests.exceptions.RequestException as exc:
        fail(f"request to {shown} failed: {type(exc).__name__}", 1)
    emit_json({"status": answer.status, "body": answer.json})


@app.command()
def drift(
    reference: Path = typer.Option(..., "--reference", help="reference data: CSV or Parquet (e.g. reference.parquet)"),
    current: Path = typer.Option(..., "--current", help="current data: CSV/Parquet file or a folder of them"),
    as_json: bool = typer.Option(False, "--json", help="print {OverallDriftMetrics, FeatureDriftMetrics}"),
    report: Optional[Path] = typer.Option(None, "--report", help="write Evidently's HTML report here"),
    model_name: str = typer.Option("credit-card-default", "--model-name"),
    config: Optional[str] = typer.Option(None, "--config", help="JSON drift settings (methods, thresholds, ...)"),
    contract: Optional[Path] = typer.Option(None, "--contract", help="the model's contract (JSON: its features "
                                            "and target are compared; default: the credit-card columns)"),
) -> None:
    """Data drift of CURRENT against REFERENCE (Evidently DataDriftPreset statistics, computed fast)."""
    import shutil
    import tempfile

    from ml.drift import DriftInputError, compute_drift

    for label, path in (("reference", reference), ("current", current)):
        if not path.exists():
            fail(f"--{label} {path}: no such file or folder")
    if report is not None:
        check_output_file(report, "--report")
    try:
        settings = json.loads(config) if config else None
    except ValueError as exc:
        fail(f"--config is not valid JSON: {exc}")
    columns = None
    if contract is not None:
        from functions.shared.contract import ContractError, ModelContract

        try:
            columns = ModelContract.from_dict(json.loads(contract.read_text(encoding="utf-8")), str(contract)).to_dict()
        except (OSError, ValueError) as exc:  # ContractError and JSONDecodeError are ValueErrors
            fail(f"--contract {contract}: {exc}" if not isinstance(exc, ContractError) else str(exc))
    out = Path(tempfile.mkdtemp(prefix="modelops-drift-"))
    try:
        try:
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):  # the job prints its records; we print ours
                result = compute_drift(reference, current, out, config=settings, contract=columns,
                                       model_name=model_name, report=report is not None)
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


@app.command("drift-report")
def drift_report(
    model: str = typer.Argument(..., help="a managed model"),
    at: Optional[str] = typer.Option(None, "--at", help="the check's stamp (YYYYMMDDTHHMMSSZ: its result.json's "
                                     "folder); default: the newest"),
    out: Optional[Path] = typer.Option(None, "--out", help="also write the report here"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Render Evidently's HTML report of a stored drift check (the Function App computes the verdict
    without Evidently) from the window and reference its result.json names, and store it beside it.
    Works on the configured platform: MODELOPS_PLATFORM=azure reads the blob store and the registry."""
    from functions.services.monitoring import render_stored_report
    from functions.settings import Settings, SettingsError

    if out is not None:
        check_output_file(out, "--out")
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))
    from functions.bootstrap import build_app
    from functions.domain.config import ConfigError

    try:
        # not opened: it reads the store and the registry's files and writes one report beside the
        # result — nothing a `modelops up` host owning the home runs, so it works beside one too
        application = build_app(settings)
    except ConfigError as exc:
        fail(str(exc))
    try:
        answer = render_stored_report(model, application.store, application.references.reference_file, at,
                                      output=out)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc), 1)
    if as_json:
        emit_json(answer)
        return
    typer.echo(f"report: {answer['report_key']} (from {answer['result_key']}, {answer['parts']} parts"
               + (f", {len(answer['missing_parts'])} no longer stored" if answer["missing_parts"] else "") + ")")
    if out is not None:
        typer.echo(f"written to {out}")


def _error(message: str, code: int) -> NoReturn:
    typer.echo(f"error: {one_line(message)}", err=True)
    sys.exit(code)


def _one_line_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                      line: str | None = None) -> str:
    # Python prints a warning as two lines (location, then the source line); keep stderr one line each.
    return f"warning: {category.__name__}: {one_line(str(message))}\n"


def _click_exception_classes() -> tuple[type[Exception], type[Exception]]:
    """(UsageError, ClickException) as Typer raises them: recent Typer vendors click (typer._click),
    older Typer uses click itself; typer.BadParameter derives from both classes either way."""
    mro = {cls.__name__: cls for cls in typer.BadParameter.__mro__}
    return mro["UsageError"], mro["ClickException"]


def main() -> None:
    import signal
    import warnings

    from functions.settings import SettingsError
    from ml.dataset import DataError

    usage_error, click_exception = _click_exception_classes()
    # SIGTERM (e.g. from a supervisor) exits normally, so local servers are stopped at exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    warnings.formatwarning = _one_line_warning
    try:
        # Not standalone: click would print usage errors itself (Typer with rich: a five-line box).
        result = app(prog_name="modelops", standalone_mode=False)
    except usage_error as exc:
        path = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        if type(exc).__name__ == "NoArgsIsHelpError":  # click >= 8.2; by name, as Typer checks it
            text = exc.format_message()
            if text.strip():  # plain click carries the help here; Typer with rich printed it already
                typer.echo(text)
            _error(f"{path}missing command", 2)
        _error(f"{path}{exc.format_message()}", 2)
    except click_exception as exc:
        _error(exc.format_message(), exc.exit_code)
    except typer.Abort as exc:
        if isinstance(exc.__cause__, KeyboardInterrupt):  # click turns Ctrl-C into Abort
            _error("interrupted", 130)
        _error("aborted", 1)
    except KeyboardInterrupt:  # Ctrl-C: the platform has already ended what this process ran
        _error("interrupted", 130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except CliError as exc:
        _error(str(exc), exc.code)
    except (DataError, SettingsError) as exc:
        _error(str(exc), 2)
    except Exception as exc:  # last resort: one line, not a traceback
        from functions.adapters.local.inference_server import ServingError

        if isinstance(exc, ServingError):  # the first line names the cause; the rest is the log's tail
            _error(str(exc).splitlines()[0], 1)
        _error(f"{type(exc).__name__}: {exc}", 1)
    # Non-standalone click returns the code of an Exit raised while parsing (0 after --help) and
    # commands' return values (None) otherwise.
    sys.exit(result if isinstance(result, int) else 0)


from functions.cli import freeze_commands, models_commands, platform_commands  # noqa: E402 - the command groups

platform_commands.attach(app)
models_commands.attach(app)
freeze_commands.attach(app)

if __name__ == "__main__":
    main()
