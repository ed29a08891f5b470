"""Configuration, results and the pure helpers of the drift check (stdlib only: cheap to import).

The statistics replicate Evidently 0.7.23's DataDriftPreset; the source files they follow are named
next to each rule (paths under evidently/legacy/calculations/stattests/ unless said otherwise).

Which columns are compared, and as what, is a `DriftSchema`: from a model's contract as plain data
(`DriftSchema.from_contract`: the `features` [{name, type}], `target` and `task` of a contract's
JSON — ml/ never imports the control plane), or, without one, the credit-card-default schema of
ml/schema.py (what every check compared before contracts).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal, Mapping, Sequence

from ml import schema
from ml.dataset import DataError

FeatureType = Literal["cat", "num"]  # Evidently's ColumnType values, as the log records spell them
Status = Literal["ok", "insufficient_data"]


class DriftInputError(DataError):
    """The drift inputs cannot be used (missing columns, no usable reference rows, bad config)."""


@dataclass(frozen=True)
class Method:
    """One drift test as Evidently registers it (name, display name, default threshold, types)."""

    name: str
    display_name: str  # Evidently's StatTest.display_name: the log records' stattest_name
    default_threshold: float
    feature_types: tuple[FeatureType, ...]
    detects_when: Literal["score>=t", "p<=t", "p<t"]

    def detected(self, score: float, threshold: float) -> bool:
        if self.detects_when == "score>=t":
            return bool(score >= threshold)
        if self.detects_when == "p<=t":
            return bool(score <= threshold)
        return bool(score < threshold)


# Comparison directions differ between tests in Evidently and are kept exactly: K-S uses p <= t
# (ks_stattest.py), chi-square and Z use p < t (chisquare_stattest.py, z_stattest.py), the
# distances use score >= t (wasserstein_distance_norm.py, jensenshannon.py).
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("wasserstein", "Wasserstein distance (normed)", 0.1, ("num",), "score>=t"),
        Method("jensenshannon", "Jensen-Shannon distance", 0.1, ("cat", "num"), "score>=t"),
        Method("ks", "K-S p_value", 0.05, ("num",), "p<=t"),
        Method("chisquare", "chi-square p_value", 0.05, ("cat",), "p<t"),
        Method("z", "Z-test p_value", 0.05, ("cat",), "p<t"),
    )
}


TargetKind = Literal["binary", "cat", "num"]
_BINARY_LABELS = (0, 1, True, False, "0", "1", "true", "false")


@dataclass(frozen=True)
class DriftSchema:
    """The columns drift compares: the features (categoricals, then numerics, each in the
    contract's order, as the export writes them) and the target, if the model has one to compare.

    The target's kind: "binary" (0/1 labels read as ml.schema.parse_target reads them: the
    credit-card target, any binary classifier labelled 0/1), "cat" (other class labels, compared
    as text like a categorical feature), "num" (a regression target). A target is compared only
    when both sides hold it (a training sample has it, exported inference data has not)."""

    categorical: tuple[str, ...]
    numeric: tuple[str, ...]
    target: str | None = None
    target_kind: TargetKind = "binary"

    def __post_init__(self) -> None:
        names = self.categorical + self.numeric
        if not names:
            raise DriftInputError("drift schema: no features to compare")
        if len(set(names)) != len(names):
            raise DriftInputError("drift schema: a feature appears twice")
        if self.target is not None and self.target in names:
            raise DriftInputError(f"drift schema: target {self.target!r} is also a feature")
        if self.target_kind not in ("binary", "cat", "num"):
            raise DriftInputError(f"drift schema: target kind {self.target_kind!r} is not binary, cat or num")

    @property
    def features(self) -> tuple[str, ...]:
        return self.categorical + self.numeric

    @property
    def columns(self) -> tuple[str, ...]:
        return self.features + ((self.target,) if self.target else ())

    def kind(self, column: str) -> FeatureType:
        """The column's type in Evidently's words. A 0/1 or class-label target is categorical, as
        Evidently infers for an integer column with at most 10 distinct values (evidently/core/datasets.py)."""
        if column in self.numeric or (column == self.target and self.target_kind == "num"):
            return "num"
        if column in self.categorical or column == self.target:
            return "cat"
        raise KeyError(f"{column!r} is not a column of the schema")

    @classmethod
    def credit_card(cls) -> "DriftSchema":
        return cls(tuple(schema.CATEGORICAL), tuple(schema.NUMERIC), schema.TARGET, "binary")

    @classmethod
    def from_contract(cls, contract: Mapping[str, Any]) -> "DriftSchema":
        """From a contract as data (ModelContract.to_dict(), ml.schema.schema_dict(), or any
        {"features": [{"name", "type"}], "target", "task"?, "classes"?}); DriftInputError names
        what is wrong."""
        if not isinstance(contract, Mapping):
            raise DriftInputError(f"drift contract: must be a JSON object, not {type(contract).__name__}")
        features = contract.get("features")
        if not isinstance(features, list) or not features:
            raise DriftInputError("drift contract: features must be a non-empty list of {name, type}")
        categorical, numeric = [], []
        for i, feature in enumerate(features):
            name = feature.get("name") if isinstance(feature, Mapping) else None
            kind = feature.get("type") if isinstance(feature, Mapping) else None
            if not isinstance(name, str) or not name:
                raise DriftInputError(f"drift contract: features[{i}].name must be a non-empty string")
            if kind not in ("categorical", "numeric"):
                raise DriftInputError(f"drift contract: features[{i}].type {kind!r} is not categorical or numeric")
            (categorical if kind == "categorical" else numeric).append(name)
        target = contract.get("target")
        if target is not None and (not isinstance(target, str) or not target):
            raise DriftInputError("drift contract: target must be a non-empty string")
        task = contract.get("task") or "binary_classification"
        classes = contract.get("classes") or []
        if task == "regression":
            target_kind: TargetKind = "num"
        elif task == "binary_classification" and all(c in _BINARY_LABELS for c in classes):
            target_kind = "binary"
        else:
            target_kind = "cat"
        return cls(tuple(categorical), tuple(numeric), target or None, target_kind)


CREDIT_CARD = DriftSchema.credit_card()


def feature_type(column: str, columns: DriftSchema = CREDIT_CARD) -> FeatureType:
    """The column's type in Evidently's words (`columns`: the credit-card schema by default)."""
    return columns.kind(column)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional(check: Any) -> Any:
    return lambda value: value is None or check(value)


def _mapping_of(check: Any) -> Any:
    return lambda value: isinstance(value, Mapping) and all(isinstance(k, str) and check(v) for k, v in value.items())


_FIELD_TYPES: dict[str, tuple[str, Any]] = {
    "drift_share": ("a number", _number),
    "method": ("a method name or null", _optional(lambda v: isinstance(v, str))),
    "cat_method": ("a method name or null", _optional(lambda v: isinstance(v, str))),
    "num_method": ("a method name or null", _optional(lambda v: isinstance(v, str))),
    "per_column_method": ("an object of column → method name", _mapping_of(lambda v: isinstance(v, str))),
    "threshold": ("a number or null", _optional(_number)),
    "cat_threshold": ("a number or null", _optional(_number)),
    "num_threshold": ("a number or null", _optional(_number)),
    "per_column_threshold": ("an object of column → number", _mapping_of(_number)),
    "min_current_rows": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "include_target": ("true or false", lambda v: isinstance(v, bool)),
    "report_max_rows": ("an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    "sustain_m": ("an integer or null", _optional(lambda v: isinstance(v, int) and not isinstance(v, bool))),
    "sustain_n": ("an integer or null", _optional(lambda v: isinstance(v, int) and not isinstance(v, bool))),
}


@dataclass(frozen=True)
class DriftConfig:
    """What DataDriftPreset takes (same names, same precedence), plus the alert-noise guards.

    Method precedence per column: per_column_method > cat_method/num_method > method > automatic.
    Threshold precedence: per_column_threshold > cat/num_threshold > threshold > the method's default.
    """

    drift_share: float = 0.5  # dataset drift when share of drifted columns >= drift_share
    method: str | None = None
    cat_method: str | None = None
    num_method: str | None = None
    per_column_method: Mapping[str, str] = field(default_factory=dict)
    threshold: float | None = None
    cat_threshold: float | None = None
    num_threshold: float | None = None
    per_column_threshold: Mapping[str, float] = field(default_factory=dict)
    # Fewer valid current rows than this: status insufficient_data and no verdict at all.
    min_current_rows: int = 500
    # The target is compared like DataDriftPreset does (as one more column) when both frames have it.
    include_target: bool = True
    # The HTML report runs Evidently on at most this many rows per side (uniform sample above it).
    # Above 1,000 so that a sampled reference keeps the large-sample tests of the verdict.
    report_max_rows: int = 100_000
    # Sustained drift: dataset_drift in at least sustain_m of the last sustain_n windows (both or neither).
    sustain_m: int | None = None
    sustain_n: int | None = None
    # The columns compared and their types (not a setting: the model's contract gives them).
    columns: DriftSchema = CREDIT_CARD

    def __post_init__(self) -> None:
        wrong = [f"{name} must be {kind}, got {getattr(self, name)!r}" for name, (kind, ok) in _FIELD_TYPES.items()
                 if not ok(getattr(self, name))]
        if not isinstance(self.columns, DriftSchema):
            wrong.append(f"columns must be a DriftSchema, got {type(self.columns).__name__}")
        if wrong:  # the checks below assume the types: a JSON config of the wrong shape stops here
            raise DriftInputError("drift config: " + "; ".join(wrong))
        problems: list[str] = []
        for where, name in self._method_settings():
            if name not in METHODS:
                problems.append(f"{where}: unknown method {name!r} (known: {', '.join(METHODS)})")
        for where, value in self._threshold_settings():
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                problems.append(f"{where}: threshold must be a positive number, got {value!r}")
        known = self.columns.columns
        for mapping_name in ("per_column_method", "per_column_threshold"):
            unknown = [c for c in getattr(self, mapping_name) if c not in known]
            if unknown:
                problems.append(f"{mapping_name}: unknown column(s) {', '.join(map(str, unknown))}")
        for column, name in self.per_column_method.items():
            if column in known and name in METHODS:
                if self.columns.kind(column) not in METHODS[name].feature_types:
                    kind = self.columns.kind(column)
                    problems.append(f"per_column_method: {name} does not apply to {kind} column {column}")
        for kind in ("cat", "num"):
            name = getattr(self, f"{kind}_method")
            if name in METHODS and kind not in METHODS[name].feature_types:
                problems.append(f"{kind}_method: {name} does not apply to {kind} columns")
        if not 0 < self.drift_share <= 1:
            problems.append(f"drift_share must be in (0, 1], got {self.drift_share!r}")
        if self.min_current_rows < 1:
            problems.append(f"min_current_rows must be at least 1, got {self.min_current_rows!r}")
        if self.report_max_rows <= 1000:
            problems.append(
                f"report_max_rows must be above 1000 (a smaller sample switches Evidently to the "
                f"small-sample tests), got {self.report_max_rows!r}"
            )
        if (self.sustain_m is None) != (self.sustain_n is None):
            problems.append("sustain_m and sustain_n go together")
        elif self.sustain_m is not None and not 1 <= self.sustain_m <= self.sustain_n:  # type: ignore[operator]
            problems.append(f"sustain: need 1 <= m <= n, got m={self.sustain_m} n={self.sustain_n}")
        if problems:
            raise DriftInputError("drift config: " + "; ".join(problems))

    def _method_settings(self) -> list[tuple[str, str]]:
        out = [(k, getattr(self, k)) for k in ("method", "cat_method", "num_method") if getattr(self, k)]
        out += [(f"per_column_method[{c}]", m) for c, m in self.per_column_method.items()]
        return out

    def _threshold_settings(self) -> list[tuple[str, Any]]:
        keys = ("threshold", "cat_threshold", "num_threshold")
        out = [(k, getattr(self, k)) for k in keys if getattr(self, k) is not None]
        out += [(f"per_column_threshold[{c}]", t) for c, t in self.per_column_threshold.items()]
        return out

    def method_for(self, column: str) -> str | None:
        """The configured method, or None for Evidently's automatic choice
        (evidently/legacy/utils/data_drift_utils.py: _calculate_stattest)."""
        kind = self.columns.kind(column)
        chosen = self.method
        by_type = self.cat_method if kind == "cat" else self.num_method
        if by_type is not None:
            chosen = by_type
        chosen = self.per_column_method.get(column, chosen)
        if chosen is not None and kind not in METHODS[chosen].feature_types:
            # Evidently raises StatTestInvalidFeatureTypeError for this (stattests/registry.py).
            raise DriftInputError(f"drift config: {chosen} does not apply to {kind} column {column}")
        return chosen

    def threshold_for(self, column: str) -> float | None:
        """The configured threshold, or None for the method's default (data_drift_utils.py: _calculate_threshold)."""
        if column in self.per_column_threshold:
            return float(self.per_column_threshold[column])
        kind = self.columns.kind(column)
        by_type = self.cat_threshold if kind == "cat" else self.num_threshold
        if by_type is not None:
            return float(by_type)
        return None if self.threshold is None else float(self.threshold)

    def preset_kwargs(self) -> dict[str, Any]:
        """The same settings as DataDriftPreset(**kwargs), for the HTML report."""
        return {
            "drift_share": self.drift_share,
            "method": self.method,
            "cat_method": self.cat_method,
            "num_method": self.num_method,
            "per_column_method": dict(self.per_column_method) or None,
            "threshold": self.threshold,
            "cat_threshold": self.cat_threshold,
            "num_threshold": self.num_threshold,
            "per_column_threshold": dict(self.per_column_threshold) or None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], columns: DriftSchema | None = None) -> "DriftConfig":
        """The settings (DriftConfig's fields but `columns`), checked against `columns` (the
        model's schema; default: the credit-card one)."""
        known = set(cls.__dataclass_fields__) - {"columns"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DriftInputError(f"drift config: unknown setting(s) {', '.join(unknown)}")
        return cls(**dict(data), columns=columns or CREDIT_CARD)

    def with_columns(self, columns: DriftSchema) -> "DriftConfig":
        """The same settings for another schema (checked again: a column setting must name one of its columns)."""
        return replace(self, columns=columns)

    def to_dict(self) -> dict[str, Any]:
        """The settings (what from_dict takes back; the schema is the contract's, not a setting)."""
        out = asdict(self)
        out.pop("columns")
        out["per_column_method"] = dict(self.per_column_method)
        out["per_column_threshold"] = dict(self.per_column_threshold)
        return out


@dataclass(frozen=True)
class FeatureDrift:
    feature_name: str
    feature_type: FeatureType
    method: str  # registry name (wasserstein, jensenshannon, ks, chisquare, z)
    stattest_name: str  # Evidently's display name
    threshold: float
    drift_score: float
    drift_detected: bool
    reference_values: int  # non-missing values compared
    current_values: int

    def record(self) -> dict[str, Any]:
        return {
            "feature_name": self.feature_name,
            "drift_score": self.drift_score,
            "drift_detected": self.drift_detected,
            "feature_type": self.feature_type,
            "stattest_name": self.stattest_name,
        }


@dataclass(frozen=True)
class InputSummary:
    """What was read from one side: rows kept, rows dropped for a wrong schema and why, and the
    files of a folder that could not be used at all (quarantined: skipped so that one bad part
    cannot decide the window; file → reason, and the rows their footers say they held)."""

    rows: int
    invalid_rows: int = 0
    invalid_by_column: Mapping[str, int] = field(default_factory=dict)
    has_target: bool = False
    quarantined: Mapping[str, str] = field(default_factory=dict)
    quarantined_rows: int = 0  # rows in the quarantined files, where their footer could still tell

    @property
    def quarantined_parts(self) -> int:
        return len(self.quarantined)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "invalid_rows": self.invalid_rows,
            "invalid_by_column": dict(self.invalid_by_column),
            "has_target": self.has_target,
            "quarantined_parts": self.quarantined_parts,
            "quarantined_rows": self.quarantined_rows,
            "quarantined": dict(self.quarantined),
        }


@dataclass(frozen=True)
class DriftResult:
    status: Status
    reference: InputSummary
    current: InputSummary
    drift_share: float
    min_current_rows: int
    features: tuple[FeatureDrift, ...] = ()
    # Columns without a single value on one side: no verdict (Evidently raises instead).
    skipped: Mapping[str, str] = field(default_factory=dict)
    reason: str = ""  # why there is no verdict (status insufficient_data)

    @property
    def has_verdict(self) -> bool:
        return self.status == "ok"

    @property
    def n_features(self) -> int:
        return len(self.features)

    @property
    def n_drifted_features(self) -> int:
        return sum(f.drift_detected for f in self.features)

    @property
    def share_drifted_features(self) -> float | None:
        return self.n_drifted_features / self.n_features if self.features else None

    @property
    def dataset_drift(self) -> bool | None:
        """Share of drifted columns >= drift_share (evidently/legacy/calculations/data_drift.py:
        get_dataset_drift); None when there is no verdict."""
        share = self.share_drifted_features
        if not self.has_verdict or share is None:
            return None
        return bool(share >= self.drift_share)

    def feature(self, name: str) -> FeatureDrift:
        for f in self.features:
            if f.feature_name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "n_features": self.n_features,
            "n_drifted_features": self.n_drifted_features,
            "share_drifted_features": self.share_drifted_features,
            "dataset_drift": self.dataset_drift,
            "drift_share": self.drift_share,
            "min_current_rows": self.min_current_rows,
            "reference": self.reference.to_dict(),
            "current": self.current.to_dict(),
            "features": [asdict(f) for f in self.features],
            "skipped": dict(self.skipped),
            "reason": self.reason,
        }


def to_log_records(result: DriftResult, model_name: str = schema.MODEL_NAME) -> tuple[dict[str, Any], dict[str, Any]]:
    """The scenario's two log records: (OverallDriftMetrics, FeatureDriftMetrics).

    A result without a verdict (insufficient_data) has no records: raises ValueError.
    """
    if not result.has_verdict or result.dataset_drift is None:
        raise ValueError(f"no drift verdict to log (status {result.status})")
    overall = {
        "model_name": model_name,
        "type": "OverallDriftMetrics",
        "data": {
            "n_features": result.n_features,
            "n_drifted_features": result.n_drifted_features,
            "share_drifted_features": result.share_drifted_features,
            "dataset_drift": result.dataset_drift,
        },
    }
    features = {
        "model_name": model_name,
        "type": "FeatureDriftMetrics",
        "data": [f.record() for f in result.features],
    }
    return overall, features


def sustained(history: Sequence[bool | None], m: int, n: int) -> bool:
    """M-of-N: True when at least ``m`` of the last ``n`` windows (oldest first) had dataset drift.

    ``None`` entries (windows with insufficient data) are no window at all and are skipped, so a
    quiet night does not reset or dilute the count. Fewer than ``n`` windows: the ones there are.
    """
    if not 1 <= m <= n:
        raise ValueError(f"sustained: need 1 <= m <= n, got m={m} n={n}")
    windows = [bool(h) for h in history if h is not None][-n:]
    return sum(windows) >= m
