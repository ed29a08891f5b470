"""Release gates against one deployment (pinned by the `azureml-model-deployment` header).

smoke     sample request → 200 and one probability in [0, 1] per record
contract  each kind of invalid request → 4xx with an error, never 5xx
latency   N single-row requests, p95 under a threshold
quality   ROC AUC on a labelled evaluation set ≥ floor and ≥ champion − tolerance (same data)

Scoring goes through the `Endpoints` port; the decisions (`judge_*`) are pure functions.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from ml import schema

Score = Callable[[Any], Any]  # body -> ScoreResult (bound to endpoint + deployment)


@dataclass
class GateResult:
    name: str
    passed: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(overrides: dict[str, Any] | None = None, drop: str | None = None, sample: dict | None = None) -> dict:
    row = dict(sample or {})
    if drop:
        row.pop(drop, None)
    row.update(overrides or {})
    return row


def invalid_requests(sample_row: dict[str, Any]) -> dict[str, Any]:
    """One request per kind of invalid input (raw strings are sent as they are)."""
    # JSON text, not objects: no serializer nests this deep, and text fixes what goes on the wire
    # (an integer literal, the escape of a lone surrogate) whichever client sends it.
    depth = 100_000  # far beyond any JSON decoder's recursion limit

    def text(overrides: dict[str, Any]) -> str:
        return json.dumps({"data": [_row(overrides, sample=sample_row)]})

    return {
        "not_json": "{'data': oops",
        "not_an_object": "[1, 2, 3]",
        "no_data": {"rows": [sample_row]},
        "data_not_a_list": {"data": sample_row},
        "empty_list": {"data": []},
        "record_not_an_object": {"data": [[1, 2, 3]]},
        "missing_feature": {"data": [_row(drop="age", sample=sample_row)]},
        "extra_feature": {"data": [_row({"favourite_colour": "blue"}, sample=sample_row)]},
        "categorical_wrong_type": {"data": [_row({"sex": 1}, sample=sample_row)]},
        "numeric_wrong_type": {"data": [_row({"age": "thirty"}, sample=sample_row)]},
        "numeric_boolean": {"data": [_row({"age": True}, sample=sample_row)]},
        "too_deep": '{"data": ' + "[" * depth + "]" * depth + "}",
        "integer_beyond_float": text({"credit_limit": 10 ** 400}),
        "number_out_of_range": text({"credit_limit": 1e39}),  # finite, but beyond float32
        "non_finite_number": text({"age": math.nan}),
        "lone_surrogate": text({"sex": "\ud800"}),
        "text_too_long": text({"education": "x" * 10_000}),
    }


def smoke(score: Score, sample: dict[str, Any]) -> GateResult:
    answer = score(sample)
    return judge_smoke(answer.status, answer.body, len(sample.get("data", [])), answer.elapsed_ms)


def judge_smoke(status: int, body: Any, n_records: int, elapsed_ms: float = 0.0) -> GateResult:
    figures = {"status": status, "elapsed_ms": round(elapsed_ms, 2)}
    if status != 200:
        return GateResult("smoke", False, f"sample request answered {status}: {str(body)[:200]}", figures)
    predictions = body.get("predictions") if isinstance(body, dict) else None
    if not isinstance(predictions, list) or len(predictions) != n_records:
        return GateResult("smoke", False, f"expected {n_records} predictions, got {str(predictions)[:200]}", figures)
    bad = [p for p in predictions if not _is_probability(p)]
    if bad:
        return GateResult("smoke", False, f"predictions outside [0, 1]: {bad[:5]}", figures)
    figures["predictions"] = predictions[:10]
    return GateResult("smoke", True, "200 with one probability per record", figures)


def contract(score: Score, sample_row: dict[str, Any]) -> GateResult:
    answers = {}
    for kind, body in invalid_requests(sample_row).items():
        answer = score(body)
        answers[kind] = (answer.status, answer.body)
    return judge_contract(answers)


def judge_contract(answers: dict[str, tuple[int, Any]]) -> GateResult:
    failures = []
    for kind, (status, body) in answers.items():
        has_error = isinstance(body, dict) and bool(body.get("error") or body.get("message"))
        if not (400 <= status < 500) or not has_error:
            failures.append(f"{kind} → {status}")
    figures = {kind: status for kind, (status, _) in answers.items()}
    if failures:
        return GateResult("contract", False, "invalid requests not answered with a 4xx error: " + ", ".join(failures),
                          figures)
    return GateResult("contract", True, f"{len(answers)} kinds of invalid request → 4xx with an error", figures)


def latency(score: Score, rows: list[dict[str, Any]], n: int, p95_limit_ms: float) -> GateResult:
    elapsed, failures = [], 0
    for i in range(n):
        answer = score({"data": [rows[i % len(rows)]]})
        elapsed.append(answer.elapsed_ms)
        failures += answer.status != 200
    return judge_latency(elapsed, failures, p95_limit_ms)


def judge_latency(elapsed_ms: list[float], failures: int, p95_limit_ms: float) -> GateResult:
    p95 = percentile(elapsed_ms, 95)
    figures = {"requests": len(elapsed_ms), "failures": failures, "p50_ms": round(percentile(elapsed_ms, 50), 2),
               "p95_ms": round(p95, 2), "limit_p95_ms": p95_limit_ms}
    if failures:
        return GateResult("latency", False, f"{failures} of {len(elapsed_ms)} latency requests failed", figures)
    if p95 > p95_limit_ms:
        return GateResult("latency", False, f"p95 {p95:.1f} ms > {p95_limit_ms:.0f} ms", figures)
    return GateResult("latency", True, f"p95 {p95:.1f} ms ≤ {p95_limit_ms:.0f} ms", figures)


def predict_all(score: Score, rows: list[dict[str, Any]], batch_rows: int) -> list[float]:
    out: list[float] = []
    for start in range(0, len(rows), batch_rows):
        batch = rows[start:start + batch_rows]
        answer = score({"data": batch})
        if answer.status != 200:
            raise GateError(f"evaluation batch at row {start} answered {answer.status}: {str(answer.body)[:200]}")
        predictions = answer.body.get("predictions") if isinstance(answer.body, dict) else None
        if not isinstance(predictions, list) or len(predictions) != len(batch):
            raise GateError(f"evaluation batch at row {start}: expected {len(batch)} predictions")
        out.extend(float(p) for p in predictions)
    return out


def judge_quality(challenger_auc: float, champion_auc: float | None, floor: float, tolerance: float,
                  n_rows: int) -> GateResult:
    figures = {"roc_auc": round(challenger_auc, 6), "champion_roc_auc": None if champion_auc is None else
               round(champion_auc, 6), "floor": floor, "tolerance": tolerance, "rows": n_rows}
    if not challenger_auc >= floor:
        return GateResult("quality", False, f"ROC AUC {challenger_auc:.4f} < floor {floor:.4f}", figures)
    if champion_auc is not None and challenger_auc < champion_auc - tolerance:
        return GateResult("quality", False, f"ROC AUC {challenger_auc:.4f} < champion {champion_auc:.4f} − "
                                            f"{tolerance:.4f}", figures)
    versus = f" vs champion {champion_auc:.4f}" if champion_auc is not None else " (no champion)"
    return GateResult("quality", True, f"ROC AUC {challenger_auc:.4f} ≥ floor {floor:.4f}{versus}", figures)


class GateError(RuntimeError):
    pass


def roc_auc(labels: list[int], scores: list[float]) -> float:
    """Rank-based ROC AUC (Mann–Whitney U with average ranks for ties); no sklearn needed."""
    import numpy as np

    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise GateError("the evaluation set needs both classes")
    order = np.argsort(s, kind="mergesort")
    sorted_scores = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p95 is a latency that happened)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


def read_evaluation_csv(data: bytes, limit: int) -> tuple[list[dict[str, Any]], list[int]]:
    """Labelled rows as scoring records (typed per the schema) + labels."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise GateError(f"evaluation data is not UTF-8 text: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in schema.COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise GateError(f"evaluation data lacks column(s) {', '.join(missing)}")
    rows, labels = [], []
    for number, line in enumerate(reader, start=1):
        if len(rows) >= limit:
            break
        record: dict[str, Any] = {}
        try:
            for name in schema.CATEGORICAL:
                record[name] = line[name] if line[name] != "" else None
            for name in schema.NUMERIC:
                record[name] = float(line[name]) if line[name] not in ("", None) else None
                if record[name] is not None and not math.isfinite(record[name]):
                    raise ValueError(f"{name} is not a finite number")
            label = schema.parse_target(line[schema.TARGET])
        except (ValueError, TypeError) as exc:  # a row of the wrong shape or a value of the wrong type
            raise GateError(f"evaluation data row {number}: {exc}") from None
        rows.append(record)
        labels.append(label)
    if not rows:
        raise GateError("evaluation data has no rows")
    return rows, labels


def _is_probability(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, default=str).encode()


def judge_health(requests: int, errors: int, p90_ms: float | None, cfg: Any) -> tuple[str, str]:
    """Pure verdict on one window: ("healthy" | "unhealthy" | "insufficient", reason). Only 5xx
    count as errors; fewer requests than `min_requests` (never below 1) prove nothing either way."""
    minimum = max(1, int(cfg.min_requests))
    if requests < minimum:
        return "insufficient", f"{requests} request(s) reached the canary in the window, fewer than the {minimum} " \
                               "needed to judge it"
    rate = errors / requests
    if rate > cfg.max_error_rate:
        return "unhealthy", f"error rate {rate:.1%} ({errors}/{requests}) > {cfg.max_error_rate:.1%}"
    if p90_ms is not None and p90_ms > cfg.max_p90_ms:
        return "unhealthy", f"p90 {p90_ms:.0f} ms > {cfg.max_p90_ms:.0f} ms"
    return "healthy", f"error rate {rate:.1%} ({errors}/{requests}), p90 {p90_ms or 0:.0f} ms"
