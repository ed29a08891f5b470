"""The HTML drift report, rendered by Evidently itself (imported here only: ~2.4 s and ~420 MB)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ml.drift.config import DriftConfig
from ml.drift.scores import Frame, as_typed, drift_columns


def sample_rows(n_rows: int, max_rows: int, seed: int) -> np.ndarray | None:
    """Sorted indices of a uniform sample without replacement, or None when every row fits."""
    if n_rows <= max_rows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=max_rows, replace=False))


def render_html_report(
    reference: Frame,
    current: Frame,
    path: str | Path,
    max_rows: int | None = None,
    seed: int = 0,
    config: DriftConfig | None = None,
) -> Path:
    """Run Evidently's DataDriftPreset (same settings as ``config``) and save its HTML at ``path``.

    Each side is used in full up to ``max_rows`` (default config.report_max_rows) and is a uniform
    sample of that many rows above it, so the report's numbers can differ slightly from the scores
    computed on all rows; the scores are the verdict. Keep ``max_rows`` above 1,000: Evidently
    picks its small-sample tests for a reference of 1,000 rows or fewer.
    """
    config = config or DriftConfig()
    limit = config.report_max_rows if max_rows is None else max_rows
    ref = as_typed(reference, "reference", config.columns)
    cur = as_typed(current, "current", config.columns)
    columns = drift_columns(ref, cur, config)
    ref_frame = ref.to_pandas(columns, sample_rows(ref.n_rows, limit, seed))
    cur_frame = cur.to_pandas(columns, sample_rows(cur.n_rows, limit, seed + 1))

    os.environ.setdefault("DO_NOT_TRACK", "1")  # no usage telemetry from a job
    from evidently import Report
    from evidently.presets import DataDriftPreset

    kwargs: dict[str, Any] = {k: v for k, v in config.preset_kwargs().items() if v is not None}
    with warnings.catch_warnings():  # numpy noise from inside Evidently (e.g. chi-square on zero counts)
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = Report([DataDriftPreset(**kwargs)]).run(cur_frame, ref_frame)  # current first
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(path))
    return path
