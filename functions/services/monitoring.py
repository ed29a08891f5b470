"""The drift check the daily timer runs (and `modelops timers run drift`), and the local alert rule.

    reference = the production model's training sample (reference.parquet in its artifact)
    current   = the exported inference data of the last window (exports/<model>/<version>/...)
    columns   = the production version's contract (contracts/<model>/versions/<version>.json, else
                contracts/<model>/current.json: functions/services/contracts.py), passed as data
    → ml.drift.compute_drift (pyarrow → numpy/scipy; Evidently only for the HTML report)
    → the scenario's OverallDriftMetrics / FeatureDriftMetrics records as structured logs
      (Application Insights `traces` in Azure), result.json + report.html in the store,
      the window's verdict appended to drift/<model>/history.json (for M-of-N)

The HTML report is Evidently's, and the Function App does not install Evidently (~230 MB with
plotly: requirements.txt holds what it imports, nothing more). So report.html is rendered where
Evidently is: in the function only when it is installed (the embedded platform's .venv), by the
drift job on AzureML compute for a window sent there (ml/environments/training-requirements.txt),
and on demand from a stored result (`render_stored_report`, `modelops drift-report MODEL`): the
result.json of an in-function check names its window's parts (`window.parts`) and the reference's
model version, and the report is rendered from those and put beside it.

Scale-out: when the window's Parquet footers add up to more than `job_rows` current rows and a
`submit_drift_job` callable is given, the function does not compute. It stages the inputs in the
store (drift-jobs/<model>/<version>/<time>/reference.parquet and current/part-*.parquet), submits
the drift job (ml/jobs/drift.yml, the same ml.steps.drift code) under a deterministic name, and
answers status "submitted"; the job writes result.json/report.html to drift/<model>/<version>/<time>/.
The contract is staged beside them (contract.json) and the job reads it (--contract).

A model whose production version has no stored contract is not checked (status no_contract, the
reason says which keys were looked for): drift never guesses a model's columns.

A part or a record can never stop the check: an exported part in the window that cannot be read
(a truncated or corrupt Parquet file) or used (columns missing, or a column of the other kind: a
part written for another contract) is skipped, counted
(quarantined_parts, quarantined_rows; wrong-schema rows dropped are invalid_rows) and copied to
quarantine/drift/<model>/<version>/<YYYY-MM-DD>/<HH>/part-….parquet (plus a .json note: the source
key and why) for inspection; the verdict is on the rest, or insufficient_data with the reason
when too little remains — never a verdict from nothing. The part stays where it is (the export's
exactly-once record), so every window that holds it skips it again, without failing. An
unreadable history.json is copied to quarantine/drift/<model>/history-<time>.json and M-of-N
starts again; a drift job's unreadable pending note or result.json is quarantined the same way.

The local alert rule evaluates those records the way the README's Azure Monitor log alert rule
does (dataset_drift == true) and posts a common-alert-schema payload to the webhook handler.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from functions.services.contracts import StoreContracts, current_key, version_key
from functions.services.export import exported_parts
from functions.services.records import RolloutStore
from functions.shared.contract import ModelContract
from functions.shared.logs import log_event
from functions.shared.versioned import readable_version, stamped
from functions.ports import Conflict, ContractSource, Store

logger = logging.getLogger("modelops.drift")
# result.json, the verdict history and the drift jobs' pending notes: 1 = before the field existed
# (a history was a bare list then); 2 = stamped, the history an object {"verdicts": [...]}
SIGNAL_SCHEMA = 2
ALERT_RULE = "modelops-dataset-drift"
QUARANTINE_PREFIX = "quarantine/drift/"


@dataclass
class DriftCheck:
    model: str
    status: str  # drift | no_drift | insufficient_data | no_production_model | no_contract | no_data | submitted
    version: str | None = None
    dataset_drift: bool | None = None
    sustained: bool | None = None
    rows: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    result_key: str = ""
    report_key: str = ""
    reason: str = ""
    job: str = ""  # the drift job computing this window (status "submitted")
    quarantined_parts: int = 0  # exported parts of the window that could not be read or used: skipped
    quarantined_rows: int = 0  # rows those parts held, as far as their footers still tell
    invalid_rows: int = 0  # wrong-schema rows dropped from the parts that were read
    quarantine: list[str] = field(default_factory=list)  # the copies under quarantine/drift/

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


# submit_drift_job(job_name, model, version, staged_prefix, output_prefix, config) -> job summary
SubmitDriftJob = Callable[[str, str, str, str, str, dict[str, Any]], dict[str, Any]]


def drift_job_inputs(staged_prefix: str, output_prefix: str, config: dict[str, Any] | None = None,
                     report: bool = True, contract: bool = False) -> dict[str, Any]:
    """ports.Jobs.submit_drift `inputs` for a window staged by run_drift_check (`contract`: with
    the contract it staged, contract.json — a job without one compares the credit-card columns)."""
    inputs = {"reference": f"{staged_prefix}/reference.parquet", "current": f"{staged_prefix}/current/",
              "output": output_prefix, "config": dict(config or {}), "report": report}
    if contract:
        inputs["contract"] = f"{staged_prefix}/contract.json"
    return inputs


def drift_job_name(model: str, version: str, stamp: str) -> str:
    """Deterministic and valid as an AzureML job name (lower case: the SDK lower-cases command job names)."""
    raw = f"drift-{model}-{version}-{stamp}".lower()
    return re.sub(r"[^a-z0-9_-]", "-", raw)[:255]


def production_contract(contracts: ContractSource, model: str, version: str) -> ModelContract | None:
    """The contract drift compares `version` by: the one stored for that version, else the model's
    current one (the rollout makes the production version's contract current)."""
    return contracts.version(model, version) or contracts.current(model)


def run_drift_check(model: str, store: Store, reference_file: Callable[[str, str, Path], Path], *,
                    now: datetime | None = None, window: timedelta = timedelta(hours=24),
                    config: dict[str, Any] | None = None, report: bool = True, job_rows: int = 0,
                    submit_drift_job: SubmitDriftJob | None = None,
                    contracts: ContractSource | None = None) -> DriftCheck:
    """`reference_file(model, version, tmp_dir)` returns a local path to the production model's
    reference sample (a folder path locally; downloaded from the registry in Azure). With
    `job_rows` > 0 and `submit_drift_job`, a window of more than `job_rows` rows goes to the drift job.
    `contracts` (default: the Store's) gives the columns compared (`production_contract`)."""
    from ml.drift import DriftConfig, DriftSchema, compute_drift

    now = now or datetime.now(timezone.utc)
    production = RolloutStore(store).production(model)
    if not production:
        return DriftCheck(model, "no_production_model", reason="no version of the model is in production")
    version = production["version"]
    contract = production_contract(contracts if contracts is not None else StoreContracts(store), model, version)
    if contract is None:
        check = DriftCheck(model, "no_contract", version,
                           reason=f"no contract is stored for {model}:{version} ({version_key(model, version)} "
                                  f"or {current_key(model)}): drift never guesses a model's columns")
        log_event(logger, "drift_check", logging.WARNING, **{k: v for k, v in check.to_dict().items() if k != "records"})
        return check
    contract_data = contract.to_dict()
    keys = exported_parts(store, model, version, now - window, now)
    if not keys:
        return DriftCheck(model, "no_data", version, reason=f"no exported inference data for version {version} "
                                                             f"in the last {window}")
    drift_config = DriftConfig.from_dict(config or {}, DriftSchema.from_contract(contract_data))
    history_key = f"drift/{model}/history.json"
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    history = _read_history(store, model, stamp)
    tmp = Path(tempfile.mkdtemp(prefix="modelops-drift-"))
    try:
        current = tmp / "current"
        current.mkdir()
        parts: dict[str, str] = {}  # local file name → export key
        for i, key in enumerate(keys):
            found = store.get(key)
            if found is None:
                continue  # removed since it was listed
            name = f"part-{i:05d}.parquet"
            (current / name).write_bytes(found[0])
            parts[name] = key
        if not parts:
            return DriftCheck(model, "no_data", version, reason=f"the exported parts of version {version} in the "
                                                                 f"last {window} vanished while being read")
        # A part without a readable footer can be told now, before it is counted or staged for a job
        # (in process, compute_drift skips it and says why).
        unreadable = _unreadable_footers(current) if job_rows > 0 else {}
        rows = _footer_rows(current, skip=unreadable) if job_rows > 0 else None
        if rows is not None and rows > job_rows:
            if submit_drift_job is not None:
                copies = _quarantine_parts(store, model, version, parts, unreadable, current, stamp)
                return _submit(model, version, stamp, rows, job_rows, store, current,
                               reference_file(model, version, tmp), submit_drift_job, config or {}, report,
                               skip=set(unreadable), copies=copies, contract=contract_data)
            log_event(logger, "drift_job_unavailable", logging.WARNING, model=model, version=version, rows=rows,
                      job_rows=job_rows, reason="no drift job submitter: computing in the function")
        reference = reference_file(model, version, tmp)
        render = report and report_renderer_installed()
        with contextlib.redirect_stdout(io.StringIO()):  # the AzureML job prints its records; we log them
            result = compute_drift(reference, current, tmp / "out", config=drift_config, contract=contract_data,
                                   model_name=model,
                                   report=render, history=[h.get("dataset_drift") for h in history
                                                           if h.get("version") == version])
        quarantined = dict(result.current.quarantined)  # what compute_drift skipped (footer or not)
        copies = _quarantine_parts(store, model, version, parts, quarantined, current, stamp)
        prefix = f"drift/{model}/{version}/{stamp}"
        payload = json.loads((tmp / "out" / "result.json").read_bytes())
        # the skipped parts by their store keys (compute_drift only saw temporary file names)
        payload["quarantine"] = [{"part": parts.get(name, name), "copy": copies.get(name, ""), "reason": why}
                                 for name, why in sorted(quarantined.items())]
        # what the report is rendered from on demand (render_stored_report), where Evidently is not here
        payload["window"] = {"start": (now - window).isoformat(), "end": now.isoformat(), "version": version,
                             "parts": [parts[name] for name in sorted(parts)]}
        if report and not render and result.has_verdict:
            payload["report_on_demand"] = f"modelops drift-report {model} --at {stamp}"
        store.put(f"{prefix}/result.json", (json.dumps(stamped(payload, SIGNAL_SCHEMA), indent=2) + "\n").encode())
        report_key = ""
        if report and (tmp / "out" / "report.html").exists():
            report_key = f"{prefix}/report.html"
            store.put(report_key, (tmp / "out" / "report.html").read_bytes())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    records = payload.get("records") or []
    for record in records:  # the scenario's KQL reads these from traces
        logger.info(json.dumps(record, separators=(",", ":")))
    dataset_drift = payload.get("dataset_drift") if result.has_verdict else None
    status = ("drift" if dataset_drift else "no_drift") if result.has_verdict else result.status
    check = DriftCheck(model, status, version, dataset_drift, payload.get("sustained"), result.current.rows,
                       records, f"{prefix}/result.json", report_key,
                       reason="" if result.has_verdict else (result.reason or f"{result.current.rows} valid current "
                                                             f"rows (minimum {result.min_current_rows})"),
                       quarantined_parts=result.current.quarantined_parts,
                       quarantined_rows=result.current.quarantined_rows, invalid_rows=result.current.invalid_rows,
                       quarantine=sorted(copies.values()))
    if dataset_drift is not None:
        history.append({"at": now.isoformat(), "version": version, "dataset_drift": bool(dataset_drift)})
        _write_history(store, history_key, history)
    log_event(logger, "drift_check", **{k: v for k, v in check.to_dict().items() if k != "records"})
    return check


def report_renderer_installed() -> bool:
    """Evidently (the HTML report's renderer) can be imported here — looked up, not imported (~2.4 s)."""
    import importlib.util

    try:
        return importlib.util.find_spec("evidently") is not None
    except (ImportError, ValueError):  # a finder that refuses it, a module without a spec
        return False


def stored_results(store: Store, model: str) -> list[str]:
    """The result.json keys of `model`'s in-function and job checks, oldest first (by their stamp)."""
    keys = [k for k in store.list(f"drift/{model}/") if k.endswith("/result.json") and k.count("/") == 4]
    return sorted(keys, key=lambda k: k.split("/")[3])


def render_stored_report(model: str, store: Store, reference_file: Callable[[str, str, Path], Path],
                         stamp: str | None = None, *, output: Path | None = None) -> dict[str, Any]:
    """Evidently's HTML report of a stored check (the newest, or the one at `stamp`), rendered from
    the inputs its result.json names — the window's exported parts and the production version's
    reference — with its columns and settings, and put beside it (create-only: a report already
    there is kept). Needs Evidently (the CLI's environment). Answers {result_key, report_key,
    parts, missing_parts, file?}; ValueError naming what is missing."""
    from ml.drift import DriftConfig, DriftSchema, compute_drift

    keys = stored_results(store, model)
    if stamp is not None:
        keys = [k for k in keys if k.split("/")[3] == stamp]
    if not keys:
        raise ValueError(f"no stored drift result for {model}" + (f" at {stamp}" if stamp else ""))
    result_key = keys[-1]
    found = store.get(result_key)
    if found is None:
        raise ValueError(f"{result_key} vanished while being read")
    payload = json.loads(found[0])
    window = payload.get("window") or {}
    if not window.get("parts"):
        raise ValueError(f"{result_key} names no window parts (written by a drift job or before modelops "
                         "recorded them): its report is rendered where it was computed")
    if payload.get("status") != "ok":
        raise ValueError(f"{result_key}: status {payload.get('status')}, no verdict: nothing to report")
    if not report_renderer_installed():
        raise ValueError("Evidently is not installed here (pip install -r requirements-cli.txt)")
    columns = payload["columns"]
    schema = DriftSchema(tuple(columns["categorical"]), tuple(columns["numeric"]), columns.get("target"),
                         columns.get("target_kind", "binary"))
    config = DriftConfig.from_dict(payload.get("config") or {}, schema)
    report_key = result_key.rsplit("/", 1)[0] + "/report.html"
    tmp = Path(tempfile.mkdtemp(prefix="modelops-drift-report-"))
    try:
        current = tmp / "current"
        current.mkdir()
        missing = []
        for i, key in enumerate(window["parts"]):
            part = store.get(key)
            if part is None:
                missing.append(key)
                continue
            (current / f"part-{i:05d}.parquet").write_bytes(part[0])
        if len(missing) == len(window["parts"]):
            raise ValueError(f"none of the {len(missing)} exported parts {result_key} names is in the store now")
        reference = reference_file(model, str(window["version"]), tmp)
        with contextlib.redirect_stdout(io.StringIO()):
            compute_drift(reference, current, tmp / "out", config=config, model_name=model, report=True)
        html = (tmp / "out" / "report.html").read_bytes()
        _put_new(store, report_key, html)
        answer: dict[str, Any] = {"result_key": result_key, "report_key": report_key,
                                  "parts": len(window["parts"]) - len(missing), "missing_parts": missing}
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_bytes(html)
            answer["file"] = str(output)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log_event(logger, "drift_report_rendered", model=model, **{k: v for k, v in answer.items() if k != "missing_parts"},
              missing_parts=len(missing))
    return answer


def _write_history(store: Store, key: str, history: list[dict[str, Any]]) -> None:
    store.put(key, json.dumps(stamped({"verdicts": history[-100:]}, SIGNAL_SCHEMA)).encode())


def _read_history(store: Store, model: str, stamp: str) -> list[dict[str, Any]]:
    """The verdict history (oldest first). One that cannot be read is copied to quarantine and
    M-of-N starts again: a broken history must not fail every later check. The next verdict
    writes a fresh one."""
    key = f"drift/{model}/history.json"
    found = store.get(key)
    if found is None:
        return []
    try:
        stored = json.loads(found[0])
        if isinstance(stored, dict):  # schema 2: {"schema_version": 2, "verdicts": [...]}
            readable_version(stored, key, SIGNAL_SCHEMA)  # a newer one is refused, not set aside
            stored = stored.get("verdicts")
        history = stored  # schema 1: the bare list
        if not isinstance(history, list):
            raise ValueError(f"a JSON {type(history).__name__}, not a list of verdicts")
    except ValueError as exc:  # (UnicodeDecodeError and JSONDecodeError are ValueErrors)
        copy = f"{QUARANTINE_PREFIX}{model}/history-{stamp}.json"
        _put_new(store, copy, found[0])
        log_event(logger, "drift_history_quarantined", logging.WARNING, model=model, key=key, copy=copy,
                  reason=str(exc)[:300])
        return []
    return [h for h in history if isinstance(h, dict)]


def _put_new(store: Store, key: str, data: bytes) -> None:
    """Create-only: a copy made by an earlier run (or another instance) stays as it is."""
    try:
        store.put(key, data, if_absent=True)
    except Conflict:
        pass


def _quarantine_parts(store: Store, model: str, version: str, parts: dict[str, str], unusable: dict[str, str],
                      folder: Path, stamp: str) -> dict[str, str]:
    """Copy each unusable part (local name → reason) under quarantine/drift/, with a note of where
    it came from and why; returns local name → the copy's key. The part itself stays in exports/:
    it is the export's exactly-once record and is skipped, not removed."""
    copies: dict[str, str] = {}
    for name, why in sorted(unusable.items()):
        key = parts.get(name)
        path = folder / name
        if key is None or not path.exists():
            continue
        data = path.read_bytes()
        export_prefix = f"exports/{model}/{version}/"
        tail = key[len(export_prefix):] if key.startswith(export_prefix) else key.replace("/", "_")
        copy = f"{QUARANTINE_PREFIX}{model}/{version}/{tail}"
        _put_new(store, copy, data)
        _put_new(store, f"{copy}.json", json.dumps({
            "source": key, "reason": why, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "first_seen": stamp}, indent=1).encode())
        copies[name] = copy
        log_event(logger, "drift_part_quarantined", logging.WARNING, model=model, version=version, part=key,
                  copy=copy, reason=why)
    return copies


def _unreadable_footers(folder: Path) -> dict[str, str]:
    """Parts in `folder` whose Parquet footer cannot be read: name → why."""
    import pyarrow.parquet as pq

    out = {}
    for part in sorted(folder.glob("*.parquet")):
        try:
            pq.read_metadata(part)
        except Exception as exc:  # noqa: BLE001 - whatever it is, this part cannot be opened
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            out[part.name] = f"{part.name}: no readable Parquet footer: {first}"[:500]
    return out


def _footer_rows(folder: Path, skip: Any = ()) -> int | None:
    """Rows of the Parquet parts in `folder` (but `skip`), from their footers (None: a footer could
    not be read after all, and the in-process path reports on it)."""
    import pyarrow.parquet as pq

    try:
        return sum(pq.read_metadata(part).num_rows for part in sorted(folder.glob("*.parquet"))
                   if part.name not in skip)
    except Exception:  # noqa: BLE001 - counting is an optimisation, never a new failure
        return None


def _submit(model: str, version: str, stamp: str, rows: int, job_rows: int, store: Store, current: Path,
            reference: Path, submit_drift_job: SubmitDriftJob, config: dict[str, Any], report: bool,
            skip: Any = (), copies: dict[str, str] | None = None,
            contract: dict[str, Any] | None = None) -> DriftCheck:
    """Stage the window where the job reads it (but the parts in `skip`, which cannot be opened:
    already quarantined) with the contract it compares by, submit, and answer at once (the job
    never is waited for). A part whose footer reads but whose pages do not is skipped by the job
    itself (its result.json names it)."""
    staged = f"drift-jobs/{model}/{version}/{stamp}"
    output = f"drift/{model}/{version}/{stamp}"
    store.put(f"{staged}/reference.parquet", Path(reference).read_bytes())
    if contract is not None:
        store.put(f"{staged}/contract.json", (json.dumps(contract, indent=1, sort_keys=True) + "\n").encode())
    for part in sorted(current.glob("*.parquet")):
        if part.name in skip:
            continue
        store.put(f"{staged}/current/{part.name}", part.read_bytes())
    name = drift_job_name(model, version, stamp)
    # The job sees one window, not the verdict history: M-of-N stays with the in-process path.
    job_config = {k: v for k, v in config.items() if k not in ("sustain_m", "sustain_n")}
    job = submit_drift_job(name, model, version, staged, output, job_config)
    # Remembered until a later timer run finds the job's result.json (collect_drift_jobs).
    store.put(f"drift/{model}/pending/{stamp}.json", json.dumps(stamped({
        "job": str(job.get("name") or name), "version": version, "result_key": f"{output}/result.json",
        "report_key": f"{output}/report.html" if report else "", "rows": rows}, SIGNAL_SCHEMA)).encode())
    check = DriftCheck(model, "submitted", version, rows=rows, result_key=f"{output}/result.json",
                       report_key=f"{output}/report.html" if report else "",
                       reason=f"{rows} current rows > {job_rows} (MODELOPS_DRIFT_JOB_ROWS): drift job {name} "
                              f"({job.get('status', 'submitted')}) computes this window",
                       job=str(job.get("name") or name), quarantined_parts=len(skip),
                       quarantine=sorted((copies or {}).values()))
    log_event(logger, "drift_check", **{k: v for k, v in check.to_dict().items() if k != "records"})
    return check


def collect_drift_jobs(store: Store, model: str, now: datetime | None = None) -> list[DriftCheck]:
    """Results of drift jobs submitted by earlier runs that have finished since: their records are
    logged here (so the Application Insights alert rule sees them, as for an in-process check) and
    their verdict joins the history. Unfinished jobs stay pending."""
    now = now or datetime.now(timezone.utc)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    done = []
    for key in store.list(f"drift/{model}/pending/"):
        found = store.get(key)
        if found is None:
            continue
        try:
            pending = json.loads(found[0])
            if isinstance(pending, dict):  # a newer note is refused (the model's check errors), not set aside
                readable_version(pending, key, SIGNAL_SCHEMA)
            result_key, version = str(pending["result_key"]), str(pending["version"])
            pending.setdefault("report_key", "")
            pending.setdefault("job", "")
        except (ValueError, KeyError, TypeError) as exc:
            # a note no run can act on would be read, and fail, by every later run: set it aside
            copy = f"{QUARANTINE_PREFIX}{model}/pending/{key.rsplit('/', 1)[-1]}"
            _put_new(store, copy, found[0])
            store.delete(key)
            log_event(logger, "drift_job_note_quarantined", logging.WARNING, model=model, key=key, copy=copy,
                      reason=str(exc)[:300])
            continue
        result = store.get(result_key)
        if result is None:
            continue  # still running (or failed: its job status says why)
        try:
            payload = json.loads(result[0])
            if not isinstance(payload, dict):
                raise ValueError(f"a JSON {type(payload).__name__}, not an object")
            readable_version(payload, result_key, SIGNAL_SCHEMA)  # (the job's own result.json: version 1)
        except ValueError as exc:
            copy = f"{QUARANTINE_PREFIX}{model}/{version}/results/{stamp}-{key.rsplit('/', 1)[-1]}"
            _put_new(store, copy, result[0])
            store.delete(key)
            check = DriftCheck(model, "insufficient_data", version, result_key=result_key, job=str(pending["job"]),
                               reason=f"the drift job's result.json cannot be read ({str(exc)[:200]}): "
                                      f"copied to {copy}, no verdict for this window", quarantine=[copy])
            log_event(logger, "drift_job_collected", logging.WARNING,
                      **{k: v for k, v in check.to_dict().items() if k != "records"})
            done.append(check)
            continue
        records = payload.get("records") or []
        for record in records:
            logger.info(json.dumps(record, separators=(",", ":")))
        dataset_drift = payload.get("dataset_drift") if payload.get("status") == "ok" else None
        status = ("drift" if dataset_drift else "no_drift") if dataset_drift is not None else payload.get("status", "")
        report_key = pending["report_key"] if pending["report_key"] and store.get(pending["report_key"]) else ""
        current = (payload.get("result") or {}).get("current") or {}
        check = DriftCheck(model, status, version, dataset_drift, payload.get("sustained"),
                           int(pending.get("rows", 0)), records, result_key, report_key,
                           job=pending["job"], quarantined_parts=int(current.get("quarantined_parts", 0)),
                           quarantined_rows=int(current.get("quarantined_rows", 0)),
                           invalid_rows=int(current.get("invalid_rows", 0)))
        if dataset_drift is not None:
            history_key = f"drift/{model}/history.json"
            history = _read_history(store, model, stamp)
            history.append({"at": now.isoformat(), "version": version, "dataset_drift": bool(dataset_drift),
                            "job": pending["job"]})
            _write_history(store, history_key, history)
        store.delete(key)
        log_event(logger, "drift_job_collected", **{k: v for k, v in check.to_dict().items() if k != "records"})
        done.append(check)
    return done


def drift_alert_payload(check: DriftCheck, now: datetime | None = None) -> dict[str, Any] | None:
    """What Azure Monitor would send for the README's log alert rule on this check (None: no alert).
    With M-of-N configured, only sustained drift fires."""
    if not check.dataset_drift or check.sustained is False:
        return None
    now = now or datetime.now(timezone.utc)
    digest = hashlib.sha256(f"{check.model}|{check.result_key}".encode()).hexdigest()
    alert_id = (f"/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.AlertsManagement/alerts/"
                f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}")
    overall = next((r for r in check.records if r.get("type") == "OverallDriftMetrics"), {})
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": alert_id, "alertRule": ALERT_RULE, "severity": "Sev2", "signalType": "Log",
                "monitorCondition": "Fired", "monitoringService": "Log Alerts V2",
                "alertTargetIDs": ["local-platform/application-insights"], "firedDateTime": now.isoformat(),
                "description": f"Dataset drift detected for {check.model}", "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
            },
            "alertContext": {
                "properties": {"model_name": check.model},
                "conditionType": "LogQueryCriteria",
                "condition": {"allOf": [{"searchQuery": DRIFT_ALERT_KQL.strip(), "metricValue":
                                         overall.get("data", {}).get("share_drifted_features"),
                                         "operator": "GreaterThan", "threshold": "0"}]},
            },
            "customProperties": {"model_name": check.model, "drift_result": check.result_key},
        },
    }


# The Azure Monitor log alert rule (scheduled query on Application Insights traces); see the README.
DRIFT_ALERT_KQL = """
traces
| where message has '"type":"OverallDriftMetrics"'
| extend record = parse_json(message)
| where tobool(record.data.dataset_drift) == true
| project timestamp, model_name = tostring(record.model_name),
          share_drifted = todouble(record.data.share_drifted_features)
"""


def drift_job_submitter(jobs: Any, extra_inputs: dict[str, Any] | None = None,
                        report: bool = True) -> SubmitDriftJob:
    """The `submit_drift_job` of run_drift_check on a Jobs port (`extra_inputs`: e.g. the AzureML
    datastore the job reads the staged window through)."""

    def submit(name: str, model: str, version: str, staged: str, output: str, config: dict) -> dict:
        # run_drift_check stages the contract with every window (contract.json)
        inputs = {**drift_job_inputs(staged, output, config, report, contract=True), **(extra_inputs or {})}
        return jobs.submit_drift(name, model, inputs, {"modelops.model_version": version,
                                                       "modelops.trigger": "drift-timer"})

    return submit


def check_models(models: list[str], store: Store, reference_file: Callable[[str, str, Path], Path], *,
                 now: datetime | None = None, window: timedelta = timedelta(hours=24),
                 config: dict[str, Any] | Callable[[str], dict[str, Any]] | None = None, report: bool = True,
                 job_rows: int = 0, submit_drift_job: SubmitDriftJob | None = None,
                 alert: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
                 contracts: ContractSource | None = None) -> list[dict[str, Any]]:
    """The drift timer: for each model, the results of finished drift jobs, then this window.
    `config` is the drift settings, or a function of the model giving that model's.
    One model's failure never stops the others (an error item: `{"check": {..., "status": "error"},
    "error": ...}`). `alert(payload)` — the local platform's stand-in for Azure Monitor's log alert
    rule — receives the alert a drifted check raises and answers {"status", "body"}."""
    out: list[dict[str, Any]] = []
    for model in models:
        try:
            checks = collect_drift_jobs(store, model, now)
            settings = config(model) if callable(config) else config
            checks.append(run_drift_check(model, store, reference_file, now=now, window=window, config=settings,
                                          report=report, job_rows=job_rows, submit_drift_job=submit_drift_job,
                                          contracts=contracts))
        except Exception as exc:  # noqa: BLE001 - reported per model, never swallowed
            error = f"{type(exc).__name__}: {str(exc)[:500]}"
            log_event(logger, "drift_check_failed", logging.ERROR, model=model, error=error)
            out.append({"check": {"model": model, "status": "error", "reason": error, "version": None,
                                  "dataset_drift": None, "result_key": None, "report_key": None}, "error": error})
            continue
        for check in checks:
            item: dict[str, Any] = {"check": check.to_dict()}
            payload = drift_alert_payload(check) if alert is not None else None
            if payload is not None:
                item["alert"] = alert(payload)
            out.append(item)
    return out
