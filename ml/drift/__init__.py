"""Data drift of exported inference data (current) against the model's training sample (reference).

The statistics are Evidently 0.7.23 DataDriftPreset's, computed directly with numpy/scipy (see
ml/drift/stats.py for the exact rules and the Evidently source they follow); Evidently itself is
imported only to render the HTML report (ml/drift/report.py).

Importing this package is cheap (stdlib only): numpy, pyarrow and scipy load with the functions
that need them; pandas only for CSV/JSON-lines inputs and the report (Parquet is read through
pyarrow straight into numpy: ml/drift/parquet.py — the Function App installs no pandas).

    drift_scores(reference_df, current_df, config) -> DriftResult
    to_log_records(result, model_name) -> (OverallDriftMetrics record, FeatureDriftMetrics record)
    sustained(history, m, n) -> bool
    render_html_report(reference, current, path, max_rows, seed)
    compute_drift(reference_path, current_path, output_dir, contract=..., ...)  # the drift job (ml/steps/drift.py)
    DriftSchema.from_contract(contract_dict)    # the columns compared, from a contract as data
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ml.drift.config import (
    METHODS,
    DriftConfig,
    DriftInputError,
    DriftResult,
    DriftSchema,
    FeatureDrift,
    InputSummary,
    sustained,
    to_log_records,
)

if TYPE_CHECKING:
    from ml.drift.data import TypedFrame, coerce, load
    from ml.drift.job import compute_drift
    from ml.drift.report import render_html_report
    from ml.drift.scores import drift_scores

_LAZY = {
    "drift_scores": "ml.drift.scores",
    "compute_drift": "ml.drift.job",
    "render_html_report": "ml.drift.report",
    "TypedFrame": "ml.drift.data",
    "coerce": "ml.drift.data",
    "load": "ml.drift.data",
}

__all__ = [
    "METHODS",
    "DriftConfig",
    "DriftInputError",
    "DriftResult",
    "DriftSchema",
    "FeatureDrift",
    "InputSummary",
    "sustained",
    "to_log_records",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'ml.drift' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
