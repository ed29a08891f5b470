"""compute_drift: the drift job's work, from input paths to result.json (and report.html)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from ml import schema
from ml.drift.config import DriftConfig, DriftResult, DriftSchema, sustained, to_log_records
from ml.drift.data import load
from ml.drift.scores import drift_scores

RESULT_FILE = "result.json"
REPORT_FILE = "report.html"


def compute_drift(
    reference: str | Path,
    current: str | Path,
    output: str | Path,
    *,
    config: DriftConfig | Mapping[str, Any] | None = None,
    contract: Mapping[str, Any] | None = None,
    model_name: str = schema.MODEL_NAME,
    report: bool = False,
    history: Sequence[bool | None] = (),
    seed: int = 0,
) -> DriftResult:
    """Compare ``current`` (a file or a folder of CSV/Parquet/JSON-lines files: exported inference
    data) with ``reference`` (the production model's training sample, e.g. its reference.parquet)
    and write ``output``/result.json; with ``report=True`` also ``output``/report.html.

    result.json holds the status, the scenario's two log records (none without a verdict), the full
    result (per-feature details, rows read and rows dropped for a wrong schema) and, when the config
    sets sustain_m/sustain_n, whether drift is sustained over ``history`` (previous windows'
    dataset_drift, oldest first) plus this window. The records are also printed, one JSON per line.

    A ``current`` folder is a window of parts: a part that cannot be read or used is skipped and
    reported (result.current.quarantined: part → reason, quarantined_rows), and the verdict is on
    the rest — or insufficient_data, with the reason, when too little remains. A single
    ``current`` file, and the reference, must be readable.

    ``contract``: the model's contract as data (ModelContract.to_dict(): its features [{name, type}],
    target and task say which columns are compared and as what); without one, the credit-card
    schema of ml/schema.py — or the columns of a DriftConfig passed in.
    """
    started = time.perf_counter()
    columns = DriftSchema.from_contract(contract) if contract is not None else None
    if config is None:
        config = DriftConfig.from_dict({}, columns)
    elif not isinstance(config, DriftConfig):
        config = DriftConfig.from_dict(config, columns)
    elif columns is not None:
        config = config.with_columns(columns)
    ref = load(reference, source=str(reference), columns=config.columns)
    cur = load(current, source=str(current), skip_unusable=Path(current).is_dir(), columns=config.columns)
    loaded = time.perf_counter()
    result = drift_scores(ref, cur, config)
    scored = time.perf_counter()

    records = list(to_log_records(result, model_name)) if result.has_verdict else []
    is_sustained = None
    if config.sustain_m is not None and result.has_verdict:
        windows = [*history, result.dataset_drift]
        is_sustained = sustained(windows, config.sustain_m, config.sustain_n)  # type: ignore[arg-type]

    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    report_file = None
    if report and result.has_verdict:
        from ml.drift.report import render_html_report

        report_file = render_html_report(ref, cur, out / REPORT_FILE, config.report_max_rows, seed, config).name
    payload = {
        "model_name": model_name,
        "status": result.status,
        "dataset_drift": result.dataset_drift,
        "sustained": is_sustained,
        "records": records,
        "result": result.to_dict(),
        "config": config.to_dict(),
        "columns": {"categorical": list(config.columns.categorical), "numeric": list(config.columns.numeric),
                    "target": config.columns.target, "target_kind": config.columns.target_kind},
        "inputs": {"reference": str(reference), "current": str(current)},
        "report": report_file,
        "seconds": {
            "load": round(loaded - started, 3),
            "scores": round(scored - loaded, 3),
            "total": round(time.perf_counter() - started, 3),
        },
    }
    (out / RESULT_FILE).write_text(json.dumps(payload, indent=2) + "\n")
    if records:
        for record in records:
            print(json.dumps(record, separators=(",", ":")), flush=True)
    else:
        print(
            json.dumps({"model_name": model_name, "status": result.status, "current_rows": result.current.rows,
                        "reason": result.reason, "quarantined_parts": result.current.quarantined_parts}),
            flush=True,
        )
    return result
