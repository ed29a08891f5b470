"""Release gates against one deployment (pinned by the `azureml-model-deployment` header), by the
version's contract (functions/shared/contract.py): nothing here knows any model's columns.

compatibility  the challenger's contract vs the champion's: a change that breaks callers (a
               feature added, removed or retyped, another request shape, response kind or
               classes, another serving) fails unless the model's configuration allows it
smoke          the contract's sample request → 200 and one valid answer per record
contract       each kind of invalid request → 4xx with an error, never 5xx (a no-code MLflow
               deployment: see no_code_invalid_requests)
latency        N single-row requests, p95 under a threshold
quality        the contract's metric on the model's labelled evaluation set: within the floor
               (or ceiling, for a lower-is-better metric) and no worse than the champion on the
               same rows by more than the tolerance

Every request is built, and every answer read, by the contract the gates are given: the
deployment's wire contract (ModelContract.for_serving), which for a no-code MLflow deployment is
AzureML's {"input_data": <split frame>} in and a bare list out.

Scoring goes through the `Endpoints` port; the decisions (`judge_*`) are pure functions.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from functions.domain.metrics import MetricError, compute
from functions.shared.contract import INPUT_DATA, NO_CODE_SERVING, ContractError, ModelContract

Score = Callable[[Any], Any]  # body -> ScoreResult (bound to endpoint + deployment)


@dataclass
class GateResult:
    name: str
    passed: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class GateError(RuntimeError):
    pass


# --- compatibility -------------------------------------------------------------------------------

def judge_compatibility(challenger: ModelContract, champion: ModelContract | None, allowed: bool,
                        serving: str = "modelops", champion_serving: str = "modelops") -> GateResult:
    """The model's contracts (never the wire shapes derived from them: two versions served the same
    way have the same wire when their contracts agree), and how each is served: another serving
    changes the request body and the answer every caller sees."""
    if champion is None:
        return GateResult("compatibility", True, "no champion contract to compare with", {"changes": []})
    changes = challenger.changes_from(champion)
    if serving != champion_serving:
        changes.append(f"serving {champion_serving!r} → {serving!r} (another request body and answer: "
                       f"{_wire_words(champion_serving)} → {_wire_words(serving)})")
    figures = {"changes": changes, "allowed": allowed}
    if not changes:
        return GateResult("compatibility", True, "same contract as the champion (features, request and response)",
                          figures)
    if allowed:
        return GateResult("compatibility", True, f"contract changes allowed by the configuration: "
                                                 f"{'; '.join(changes)}", figures)
    return GateResult("compatibility", False, f"the contract changes what callers send or receive: "
                                              f"{'; '.join(changes)} (set allow_contract_change for this model "
                                              "to release it)", figures)


def _wire_words(serving: str) -> str:
    return "{\"input_data\": <split frame>} in, a bare list out" if serving == NO_CODE_SERVING else \
        "the contract's request and response"


# --- smoke ---------------------------------------------------------------------------------------

def smoke(score: Score, contract: ModelContract) -> GateResult:
    answer = score(contract.sample_request)
    return judge_smoke(contract, answer.status, answer.body, len(contract.sample_records()), answer.elapsed_ms)


def judge_smoke(contract: ModelContract, status: int, body: Any, n_records: int, elapsed_ms: float = 0.0) -> GateResult:
    figures = {"status": status, "elapsed_ms": round(elapsed_ms, 2)}
    if status != 200:
        return GateResult("smoke", False, f"sample request answered {status}: {str(body)[:200]}", figures)
    try:
        answers = contract.predictions(body, n_records)
    except ContractError as exc:
        return GateResult("smoke", False, str(exc), figures)
    figures["predictions"] = answers[:10]
    what = contract.response_kind.replace("_", " ")
    return GateResult("smoke", True, f"200 with one {what} per record {contract.answer_place}", figures)


# --- contract ------------------------------------------------------------------------------------

def invalid_requests(contract: ModelContract) -> dict[str, Any]:
    """One request per kind of invalid input, built from the contract's sample (raw strings are
    sent as they are). Kinds that need a categorical or a numeric feature are sent when the
    contract has one."""
    if contract.request_shape == INPUT_DATA:
        return no_code_invalid_requests(contract)
    # JSON text, not objects: no serializer nests this deep, and text fixes what goes on the wire
    # (an integer literal, the escape of a lone surrogate) whichever client sends it.
    depth = 100_000  # far beyond any JSON decoder's recursion limit
    record = contract.sample_records()[0]
    rows = contract.request_shape == "rows"

    def body(overrides: dict[str, Any] | None = None, drop: str | None = None) -> dict[str, Any]:
        changed = {k: v for k, v in record.items() if k != drop}
        changed.update(overrides or {})
        if rows:
            names = [n for n in contract.feature_names if n != drop]
            return {"data": [[changed[n] for n in names]]}
        return {"data": [changed]}

    def text(overrides: dict[str, Any]) -> str:
        return json.dumps(body(overrides))

    first = contract.feature_names[0]
    kinds: dict[str, Any] = {
        "not_json": "{'data': oops",
        "not_an_object": "[1, 2, 3]",
        "no_data": {"rows": contract.sample_request["data"]},
        "data_not_a_list": {"data": contract.sample_request["data"][0]},
        "empty_list": {"data": []},
        "too_deep": '{"data": ' + "[" * depth + "]" * depth + "}",
        "missing_feature": body(drop=first),
    }
    if rows:
        kinds["row_not_a_list"] = {"data": [record]}
        kinds["extra_value"] = {"data": [[record[n] for n in contract.feature_names] + [1.0]]}
    else:
        kinds["record_not_an_object"] = {"data": [[1, 2, 3]]}
        kinds["extra_feature"] = body({"favourite_colour_x": "blue"})
    numeric = contract.numeric[0] if contract.numeric else None
    categorical = contract.categorical[0] if contract.categorical else None
    if categorical:
        kinds["categorical_wrong_type"] = body({categorical: 1})
        kinds["lone_surrogate"] = text({categorical: "\ud800"})
        kinds["text_too_long"] = text({categorical: "x" * 10_000})
    if numeric:
        kinds["numeric_wrong_type"] = body({numeric: "thirty"})
        kinds["numeric_boolean"] = body({numeric: True})
        kinds["integer_beyond_float"] = text({numeric: 10 ** 400})
        kinds["number_out_of_range"] = text({numeric: 1e39})  # finite, but beyond float32
        kinds["non_finite_number"] = text({numeric: math.nan})
    return kinds


# The invalid requests a no-code MLflow deployment answers with a 5xx: AzureML's scoring script has
# no 4xx of its own. Its inference server answers 400 {"message"} for a body that is not JSON, not an
# object or has no "input_data" (azureml-inference-server-http 1.5.1, server/input_parsers.py
# ObjectInput, server/routes.py handle_score), and 415 for another content type; anything the
# script raises — a row its model's signature refuses, a frame pandas cannot read — is 500 {"message":
# "An unexpected error occurred in scoring script. Check the logs for more info."} (routes.py,
# UserScriptException). Measured against AzureML's script (Azure/azureml-assets mlflow_score_script.py)
# on the iris MLflow model: a missing column and a text for a number → 500, an extra column and a
# boolean for a number → 200 (ignored, coerced), {"input_data": [[...]]} → 500.
NO_CODE_REFUSED = ("missing_feature", "numeric_wrong_type")


def no_code_invalid_requests(contract: ModelContract) -> dict[str, Any]:
    """The invalid requests sent to a no-code MLflow deployment (wire shape "input_data"): the ones
    its inference server answers with a 4xx, and (NO_CODE_REFUSED) rows the model's signature
    refuses, which must not be scored. Kinds AzureML's script accepts (an extra column, a boolean or
    a huge number for a number) or answers from the server's own failure are not sent: modelops'
    validation is not there to check."""
    records = contract.sample_records()
    first, names = contract.feature_names[0], contract.feature_names
    kinds: dict[str, Any] = {
        "not_json": "{'input_data': oops",
        "not_an_object": "[1, 2, 3]",
        # the body a caller of modelops' entry point would send: no "input_data"
        "no_input_data": {"data": [[r[n] for n in names] for r in records]},
        "missing_feature": {INPUT_DATA: {"columns": [n for n in names if n != first], "index": [0],
                                         "data": [[records[0][n] for n in names if n != first]]}},
    }
    if contract.numeric:
        kinds["numeric_wrong_type"] = contract.request([{**records[0], contract.numeric[0]: "thirty"}])
    return kinds


def contract_gate(score: Score, contract: ModelContract) -> GateResult:
    answers = {}
    for kind, body in invalid_requests(contract).items():
        answer = score(body)
        answers[kind] = (answer.status, answer.body)
    refused = NO_CODE_REFUSED if contract.request_shape == INPUT_DATA else ()
    return judge_contract(answers, refused)


def judge_contract(answers: dict[str, tuple[int, Any]], refused: tuple[str, ...] = ()) -> GateResult:
    """Every kind → 4xx with an error; the `refused` kinds may be answered 5xx with an error
    (refused, not scored: a no-code deployment has nothing else for them)."""
    failures, five_xx = [], []
    for kind, (status, body) in answers.items():
        has_error = isinstance(body, dict) and bool(body.get("error") or body.get("message"))
        if kind in refused and 500 <= status < 600 and has_error:
            five_xx.append(kind)
        elif not (400 <= status < 500) or not has_error:
            failures.append(f"{kind} → {status}")
    figures: dict[str, Any] = {kind: status for kind, (status, _) in answers.items()}
    if failures:
        return GateResult("contract", False, "invalid requests not answered with a 4xx error: " + ", ".join(failures),
                          figures)
    if five_xx:
        figures["refused_with_5xx"] = five_xx
        return GateResult("contract", True, f"{len(answers) - len(five_xx)} kinds of invalid request → 4xx with an "
                                            f"error; {', '.join(five_xx)} refused with a 5xx (AzureML's no-code "
                                            "scoring script has no 4xx for them)", figures)
    return GateResult("contract", True, f"{len(answers)} kinds of invalid request → 4xx with an error", figures)


# --- latency -------------------------------------------------------------------------------------

def latency(score: Score, contract: ModelContract, records: list[dict[str, Any]], n: int,
            p95_limit_ms: float) -> GateResult:
    elapsed, failures = [], 0
    for i in range(n):
        answer = score(contract.request([records[i % len(records)]]))
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


# --- quality -------------------------------------------------------------------------------------

def predict_all(score: Score, contract: ModelContract, records: list[dict[str, Any]], batch_rows: int) -> list[Any]:
    out: list[Any] = []
    for start in range(0, len(records), batch_rows):
        batch = records[start:start + batch_rows]
        answer = score(contract.request(batch))
        if answer.status != 200:
            raise GateError(f"evaluation batch at row {start} answered {answer.status}: {str(answer.body)[:200]}")
        try:
            out.extend(contract.predictions(answer.body, len(batch)))
        except ContractError as exc:
            raise GateError(f"evaluation batch at row {start}: {exc}") from None
    return out


def metric_of(contract: ModelContract, answers: list[Any], labels: list[Any]) -> float:
    try:
        return compute(contract, answers, labels)
    except MetricError as exc:
        raise GateError(f"{contract.metric}: {exc}") from None


def judge_quality(metric: str, direction: str, challenger: float, champion: float | None, bound: float | None,
                  tolerance: float, n_rows: int, champion_note: str = "") -> GateResult:
    """`bound` is a floor for a higher-is-better metric and a ceiling for a lower-is-better one
    (None: no absolute bound); the champion comparison allows `tolerance` in the metric's units."""
    higher = direction == "higher"
    figures = {"metric": metric, "direction": direction, "value": round(challenger, 6),
               "champion_value": None if champion is None else round(champion, 6),
               "bound": bound, "tolerance": tolerance, "rows": n_rows}
    if metric == "roc_auc":  # the names the reports and dashboards have always shown
        figures.update(roc_auc=figures["value"], champion_roc_auc=figures["champion_value"], floor=bound)
    if champion_note:
        figures["champion_note"] = champion_note
    label = metric.upper() if metric in ("rmse", "mae") else "ROC AUC" if metric == "roc_auc" else metric
    if not math.isfinite(challenger):
        return GateResult("quality", False, f"{label} is not a number ({challenger})", figures)
    if bound is not None and (challenger < bound if higher else challenger > bound):
        word = "floor" if higher else "ceiling"
        sign = "<" if higher else ">"
        return GateResult("quality", False, f"{label} {challenger:.4f} {sign} {word} {bound:.4f}", figures)
    if champion is not None:
        worse = challenger < champion - tolerance if higher else challenger > champion + tolerance
        if worse:
            sign, op = ("<", "−") if higher else (">", "+")
            return GateResult("quality", False, f"{label} {challenger:.4f} {sign} champion {champion:.4f} {op} "
                                                f"{tolerance:.4f}", figures)
    versus = f" vs champion {champion:.4f}" if champion is not None else \
        f" ({champion_note})" if champion_note else " (no champion)"
    within = "" if bound is None else f" {'≥ floor' if higher else '≤ ceiling'} {bound:.4f}"
    return GateResult("quality", True, f"{label} {challenger:.4f}{within}{versus}", figures)


# --- helpers -------------------------------------------------------------------------------------

def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (no interpolation: a reported p95 is a latency that happened)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


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
