"""drift_scores: reference vs current → per-feature statistics and the dataset verdict."""

from __future__ import annotations

from typing import TYPE_CHECKING, Union

import numpy as np

from ml.drift.config import CREDIT_CARD, METHODS, DriftConfig, DriftInputError, DriftResult, DriftSchema, FeatureDrift
from ml.drift.data import Categorical, TypedFrame, coerce
from ml.drift.stats import Score, categorical_drift, numeric_drift

if TYPE_CHECKING:
    import pandas as pd

Frame = Union["pd.DataFrame", TypedFrame]


def as_typed(frame: Frame, source: str, columns: DriftSchema = CREDIT_CARD) -> TypedFrame:
    if isinstance(frame, TypedFrame):
        if frame.columns != columns:
            raise DriftInputError(f"{frame.source}: typed for other columns than the drift config's")
        return frame
    return coerce(frame, source=source, columns=columns)


def drift_columns(reference: TypedFrame, current: TypedFrame, config: DriftConfig) -> list[str]:
    """The schema's features, then the target when both sides have it (DataDriftPreset compares
    every column of the current data; a column missing from the reference makes Evidently fail)."""
    columns = list(config.columns.features)
    target = config.columns.target
    if config.include_target and target is not None and target in reference and target in current:
        columns.append(target)
    return columns


def drift_scores(reference: Frame, current: Frame, config: DriftConfig | None = None) -> DriftResult:
    """Evidently DataDriftPreset's statistics for ``current`` against ``reference``.

    Frames are pandas DataFrames with the columns of config.columns (the model's DriftSchema;
    extra columns are ignored) or TypedFrames from ml.drift.data. Rows with a wrong schema are dropped and counted; with fewer
    valid current rows than config.min_current_rows the status is insufficient_data and there is
    no verdict.
    """
    config = config or DriftConfig()
    ref = as_typed(reference, "reference", config.columns)
    cur = as_typed(current, "current", config.columns)
    if ref.n_rows == 0:
        raise DriftInputError(f"{ref.source}: no valid reference rows")
    base = dict(
        reference=ref.summary(),
        current=cur.summary(),
        drift_share=config.drift_share,
        min_current_rows=config.min_current_rows,
    )
    columns = drift_columns(ref, cur, config)
    methods = {c: config.method_for(c) for c in columns}  # config errors before any work
    if cur.n_rows < config.min_current_rows:
        return DriftResult(status="insufficient_data", reason=_too_few(cur, config), **base)

    features: list[FeatureDrift] = []
    skipped: dict[str, str] = {}
    for column in columns:
        threshold = config.threshold_for(column)
        if column in ref.numeric:
            r = _present(ref.numeric[column])
            c = _present(cur.numeric[column])
            sizes = (r.size, c.size)
            if min(sizes) == 0:
                skipped[column] = _empty_reason(sizes)
                continue
            score = numeric_drift(r, c, methods[column], threshold)
        else:
            r_codes, c_codes, levels = _aligned(ref.categorical[column], cur.categorical[column])
            sizes = (r_codes.size, c_codes.size)
            if min(sizes) == 0:
                skipped[column] = _empty_reason(sizes)
                continue
            score = categorical_drift(r_codes, c_codes, levels, methods[column], threshold)
        features.append(_feature(column, score, sizes, config.columns))
    if not features:
        if all("reference" in why for why in skipped.values()):  # the reference is unusable: a real error
            raise DriftInputError("no column has values on both sides: nothing to compare")
        # The current window has rows but no values to compare (every usable column empty there):
        # no data is no verdict — never a "no drift" from nothing, and never an error that fails
        # every check of this window.
        return DriftResult(status="insufficient_data", skipped=skipped,
                           reason="no column has values on both sides: nothing to compare", **base)
    return DriftResult(status="ok", features=tuple(features), skipped=skipped, **base)


def _too_few(current: TypedFrame, config: DriftConfig) -> str:
    reason = f"{current.n_rows} valid current rows (minimum {config.min_current_rows})"
    if current.invalid_rows:
        reason += f"; {current.invalid_rows} wrong-schema rows dropped"
    if current.quarantined:
        reason += f"; {len(current.quarantined)} unusable part(s) quarantined"
    return reason


def _feature(column: str, score: Score, sizes: tuple[int, int], columns: DriftSchema) -> FeatureDrift:
    return FeatureDrift(
        feature_name=column,
        feature_type=columns.kind(column),
        method=score.method,
        stattest_name=METHODS[score.method].display_name,
        threshold=score.threshold,
        drift_score=score.score,
        drift_detected=score.detected,
        reference_values=sizes[0],
        current_values=sizes[1],
    )


def _present(values: np.ndarray) -> np.ndarray:
    missing = np.isnan(values)
    return values[~missing] if missing.any() else values


def _aligned(ref: Categorical, cur: Categorical) -> tuple[np.ndarray, np.ndarray, list]:
    """Both sides' codes (missing removed) into one list of levels: the reference's, then new ones."""
    levels = list(ref.levels)
    index = {level: i for i, level in enumerate(levels)}
    lut = np.empty(len(cur.levels) + 1, dtype=np.int32)
    lut[-1] = -1
    for i, level in enumerate(cur.levels):
        if level not in index:
            index[level] = len(levels)
            levels.append(level)
        lut[i] = index[level]
    cur_codes = cur.values()
    if not np.array_equal(lut[:-1], np.arange(len(cur.levels))):
        cur_codes = lut[cur_codes]
    return ref.values(), cur_codes, levels


def _empty_reason(sizes: tuple[int, int]) -> str:
    sides = [name for name, size in zip(("reference", "current"), sizes) if size == 0]
    return f"no values in {' and '.join(sides)}"
