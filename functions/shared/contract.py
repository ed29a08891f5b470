"""A model version's contract: what it takes, what it answers, how it is judged and watched.

Every managed model version has one. The gates build their requests and read the answers from it,
the quality gate scores on its metric, the export types its table by its features, and drift
compares against its reference sample. Nothing in functions/ knows any particular model's columns.

A contract is data (`ModelContract.to_dict()` is what the store keeps, versioned by
`CONTRACT_VERSION`); `ModelContract.from_dict` validates it and every error names the field.
Where a contract comes from (a modelops model card, an MLflow model's MLmodel file, an explicit
contract file) is read in functions/shared/contract_sources.py.

Stdlib only: the domain imports this.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

CONTRACT_VERSION = 1

TASKS = ("binary_classification", "multiclass_classification", "regression")
REQUEST_SHAPES = ("records", "rows")  # {"data": [{name: value}]} or {"data": [[v1, v2, ...]]}

# How a deployment serves the model (ModelConfig.serving): modelops' entry point (ml/score.py),
# which takes and answers the contract's shapes, or AzureML's no-code MLflow deployment, whose
# scoring script has a wire format of its own (`ModelContract.for_serving`).
MODELOPS_SERVING = "modelops"
NO_CODE_SERVING = "mlflow_no_code"
SERVING_MODES = (MODELOPS_SERVING, NO_CODE_SERVING)
# The no-code wire: {"input_data": {"columns": [...], "index": [...], "data": [[...]]}} (a pandas
# DataFrame in the "split" orientation) in, the bare JSON list that the MLflow model's pyfunc
# predict returns out. Never a contract's own shape: only `for_serving` makes it. Checked against
# - AzureML's script: Azure/azureml-assets, assets/inference/environments/mlflow-py312-inference/
#   context/mlflow_score_script.py (last changed in d258c7ca, 2025-11-20): run() is decorated
#   @input_schema("input_data", PandasParameterType(<input example>, orient="split")) and returns
#   _get_jsonable_obj(model.predict(...), pandas_orient="records"), a list for an array;
# - Microsoft Learn, "Guidelines for deploying MLflow models" → "Input structure" (input_data;
#   split orientation) and "Deploy MLflow models to online endpoints" → "Invoke the endpoint" (the
#   answer is a bare list, e.g. [11633.10, 8522.11]).
# {"input_data": [[...]]} (those docs' "tensor input") is not sent: for a model whose input example
# is a DataFrame, as mlflow.sklearn.log_model saves it, the script reads input_data as a split frame
# and a list fails there with a 500 (measured with the script in azureml-inference-server-http 1.5.1).
INPUT_DATA = "input_data"
BARE_LIST = ""  # response_key of an answer that is the list itself, under no key
# Metrics that need probabilities, which pyfunc predict does not return for a classifier.
PROBABILITY_METRICS = ("roc_auc", "log_loss")
# probability: one P(positive) per record; class_probabilities: one list per record, in `classes`
# order; label: one class per record; value: one number per record (regression)
RESPONSE_KINDS = ("probability", "class_probabilities", "label", "value")
FEATURE_KINDS = ("numeric", "categorical")

# The quality metrics the gate computes, and which way is better.
METRIC_DIRECTION = {
    "roc_auc": "higher", "accuracy": "higher", "f1": "higher", "f1_macro": "higher", "log_loss": "lower",
    "rmse": "lower", "mae": "lower", "r2": "higher",
}
# What each metric needs from the answers.
METRIC_NEEDS = {
    "roc_auc": ("probability", "class_probabilities"),
    "log_loss": ("probability", "class_probabilities"),
    "accuracy": ("probability", "class_probabilities", "label"),
    "f1": ("probability", "class_probabilities", "label"),
    "f1_macro": ("probability", "class_probabilities", "label"),
    "rmse": ("value",), "mae": ("value",), "r2": ("value",),
}
TASK_RESPONSES = {
    "binary_classification": ("probability", "class_probabilities", "label"),
    "multiclass_classification": ("class_probabilities", "label"),
    "regression": ("value",),
}
DEFAULT_METRIC = {"binary_classification": "roc_auc", "multiclass_classification": "accuracy", "regression": "rmse"}

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
MAX_FEATURES = 1000
MAX_NAME = 128


class ContractError(ValueError):
    """A contract that cannot be used; the message names the field and what is wrong with it."""


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "numeric" | "categorical"
    domain: tuple[str, ...] = ()  # known levels of a categorical (unseen levels are tolerated)
    minimum: float | None = None  # inclusive bounds of a numeric; None: unbounded
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.kind == "categorical":
            out["domain"] = list(self.domain)
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


@dataclass(frozen=True)
class ModelContract:
    features: tuple[Feature, ...]
    target: str
    task: str
    response_kind: str
    metric: str
    sample_request: dict[str, Any]
    response_key: str = "predictions"
    request_shape: str = "records"
    classes: tuple[Any, ...] = ()  # classification labels; class_probabilities are in this order
    positive_class: Any = None  # binary: the label `probability` is the probability of
    reference: str = ""  # the reference sample's file in the model folder ("": none registered)
    source: str = ""  # where it was read: model_card.json, MLmodel, contract.json, configuration
    extras: dict[str, Any] = field(default_factory=dict)  # kept, not interpreted (e.g. the MLflow flavor)

    # --- reading ------------------------------------------------------------------------------

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def categorical(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "categorical")

    @property
    def numeric(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.kind == "numeric")

    @property
    def direction(self) -> str:
        return METRIC_DIRECTION[self.metric]

    def feature(self, name: str) -> Feature | None:
        return next((f for f in self.features if f.name == name), None)

    def sample_records(self) -> list[dict[str, Any]]:
        """The sample request's rows as records {feature: value}, whatever the request shape."""
        if self.request_shape == INPUT_DATA:
            frame = self.sample_request[INPUT_DATA]
            return [dict(zip(frame["columns"], row)) for row in frame["data"]]
        return [self.record(row) for row in self.sample_request["data"]]

    def record(self, row: Any) -> dict[str, Any]:
        """One request row (a record, or a list in feature order) as a record."""
        if self.request_shape in ("rows", INPUT_DATA):
            return dict(zip(self.feature_names, row))
        return dict(row)

    def request(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        """A scoring request for `records`, in the shape this model takes."""
        if self.request_shape == INPUT_DATA:
            return split_request(self.feature_names, records)
        if self.request_shape == "rows":
            return {"data": [[r.get(n) for n in self.feature_names] for r in records]}
        return {"data": [dict(r) for r in records]}

    @property
    def answer_place(self) -> str:
        """Where a 200 response holds the answers, in words."""
        return "as a bare JSON list" if self.response_key == BARE_LIST else f"under {self.response_key!r}"

    def predictions(self, body: Any, n_records: int) -> list[Any]:
        """The answers of a 200 response, one per record, checked against the response kind;
        ContractError says what is wrong."""
        if self.response_key == BARE_LIST:
            values = body
        else:
            values = body.get(self.response_key) if isinstance(body, dict) else None
        if not isinstance(values, list):
            what = "is not a JSON list" if self.response_key == BARE_LIST else f"has no list under {self.response_key!r}"
            raise ContractError(f"the answer {what}: {str(body)[:200]}")
        if len(values) != n_records:
            raise ContractError(f"expected {n_records} answers {self.answer_place}, got {len(values)}")
        bad = [v for v in values if not self._valid_answer(v)]
        if bad:
            raise ContractError(f"answers that are not a {self.response_kind.replace('_', ' ')}: {str(bad[:5])[:200]}")
        return values

    def _valid_answer(self, value: Any) -> bool:
        if self.response_kind == "probability":
            return _number(value) and 0.0 <= value <= 1.0
        if self.response_kind == "value":
            return _number(value) and math.isfinite(value)
        if self.response_kind == "label":
            return not isinstance(value, (dict, list)) and (not self.classes or _in_classes(value, self.classes))
        # class_probabilities
        return isinstance(value, list) and (not self.classes or len(value) == len(self.classes)) and \
            all(_number(p) and 0.0 <= p <= 1.0 for p in value) and abs(sum(value) - 1.0) <= 1e-3

    # --- serving -------------------------------------------------------------------------------

    def for_serving(self, serving: str, where: str = "contract") -> ModelContract:
        """The contract as a deployment served `serving` takes and answers it: what the gates send
        and read. modelops' entry point serves the contract itself; AzureML's no-code MLflow
        deployment runs AzureML's scoring script, which takes the rows as a "split" DataFrame under
        "input_data" and answers the bare list pyfunc predict returns (see INPUT_DATA above). Its
        wire contract: request shape "input_data", response kind label (classifiers) or value
        (regression), no response key, the sample request in that shape. A metric that needs
        probabilities (roc_auc, log_loss) cannot be computed from labels: ContractError naming
        `where`, the field and the fix. The wire contract is never stored (the model's is)."""
        if serving == MODELOPS_SERVING:
            return self
        if serving != NO_CODE_SERVING:
            raise ContractError(f"{where}: serving {serving!r} is not one of {', '.join(SERVING_MODES)}")
        if self.metric in PROBABILITY_METRICS:  # (a regression's metrics never need them)
            labels = "accuracy, f1 or f1_macro" if self.task == "binary_classification" else "accuracy or f1_macro"
            raise ContractError(
                f"{where}: metric {self.metric!r} needs probabilities, but serving {NO_CODE_SERVING} answers what the "
                f"MLflow model's predict returns (labels): set contract.metric to {labels} in the model's "
                f"configuration, or serve it with serving: {MODELOPS_SERVING}")
        kind = "value" if self.task == "regression" else "label"
        return replace(self, request_shape=INPUT_DATA, response_kind=kind, response_key=BARE_LIST,
                       sample_request=split_request(self.feature_names, self.sample_records()))

    # --- comparing -------------------------------------------------------------------------------

    def changes_from(self, champion: ModelContract) -> list[str]:
        """What would break the champion's callers: features added, removed or retyped, another
        request shape, response kind, key or class list. Domains and bounds may change freely."""
        changes = []
        ours, theirs = {f.name: f for f in self.features}, {f.name: f for f in champion.features}
        for name in theirs.keys() - ours.keys():
            changes.append(f"feature {name!r} removed")
        for name in ours.keys() - theirs.keys():
            changes.append(f"feature {name!r} added")
        for name in ours.keys() & theirs.keys():
            if ours[name].kind != theirs[name].kind:
                changes.append(f"feature {name!r} retyped {theirs[name].kind} → {ours[name].kind}")
        if self.request_shape == "rows" and champion.request_shape == "rows" and \
                self.feature_names != champion.feature_names and not changes:
            changes.append("feature order changed (requests are rows in feature order)")
        for what in ("request_shape", "response_kind", "response_key", "task"):
            if getattr(self, what) != getattr(champion, what):
                changes.append(f"{what} {getattr(champion, what)!r} → {getattr(self, what)!r}")
        if self.response_kind in ("class_probabilities", "label") and list(self.classes) != list(champion.classes):
            changes.append(f"classes {list(champion.classes)} → {list(self.classes)}")
        return sorted(changes)

    # --- data ----------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out = {
            "contract_version": CONTRACT_VERSION, "features": [f.to_dict() for f in self.features],
            "target": self.target, "task": self.task, "request_shape": self.request_shape,
            "response_kind": self.response_kind, "response_key": self.response_key, "classes": list(self.classes),
            "positive_class": self.positive_class, "metric": self.metric, "sample_request": self.sample_request,
            "reference": self.reference, "source": self.source,
        }
        if self.extras:
            out["extras"] = self.extras
        return out

    def with_source(self, source: str) -> ModelContract:
        return replace(self, source=source)

    @classmethod
    def from_dict(cls, data: Any, where: str = "contract") -> ModelContract:
        """Validate and build; ContractError names `where` and the field."""
        if not isinstance(data, dict):
            raise ContractError(f"{where}: must be a JSON object, not {type(data).__name__}")
        version = data.get("contract_version", CONTRACT_VERSION)
        if version != CONTRACT_VERSION:
            raise ContractError(f"{where}: contract_version {version!r} is not supported (this modelops reads "
                                f"{CONTRACT_VERSION})")
        features = _features(data.get("features"), where)
        names = {f.name for f in features}
        target = _text(data.get("target"), f"{where}: target")
        if target in names:
            raise ContractError(f"{where}: target {target!r} is also a feature")
        task = _choice(data.get("task"), TASKS, f"{where}: task")
        response_kind = _choice(data.get("response_kind"), RESPONSE_KINDS, f"{where}: response_kind")
        if response_kind not in TASK_RESPONSES[task]:
            raise ContractError(f"{where}: response_kind {response_kind!r} does not fit task {task!r} "
                                f"(use one of {', '.join(TASK_RESPONSES[task])})")
        metric = data.get("metric") or DEFAULT_METRIC[task]
        metric = _choice(metric, tuple(METRIC_DIRECTION), f"{where}: metric")
        if response_kind not in METRIC_NEEDS[metric]:
            raise ContractError(f"{where}: metric {metric!r} cannot be computed from {response_kind!r} answers")
        if task == "regression" and metric not in ("rmse", "mae", "r2"):
            raise ContractError(f"{where}: metric {metric!r} is for classification, the task is regression")
        if task != "regression" and metric in ("rmse", "mae", "r2"):
            raise ContractError(f"{where}: metric {metric!r} is for regression, the task is {task}")
        classes = data.get("classes") or []
        if not isinstance(classes, list) or any(isinstance(c, (dict, list)) for c in classes) or \
                len({json.dumps(c) for c in classes}) != len(classes):
            raise ContractError(f"{where}: classes must be a list of distinct labels")
        if response_kind == "class_probabilities" and len(classes) < 2:
            raise ContractError(f"{where}: class_probabilities answers need the class list (classes)")
        if task == "binary_classification" and classes and len(classes) != 2:
            raise ContractError(f"{where}: a binary classifier has two classes, not {len(classes)}")
        if task == "multiclass_classification" and metric in ("roc_auc", "log_loss") and not classes:
            raise ContractError(f"{where}: metric {metric!r} of a multiclass model needs the class list (classes)")
        positive = data.get("positive_class", 1 if task == "binary_classification" else None)
        if data.get("request_shape") == INPUT_DATA:
            raise ContractError(f"{where}: request_shape {INPUT_DATA!r} is the wire of serving: {NO_CODE_SERVING} (set "
                                "serving in the model's configuration); a contract's request shape is records or rows")
        request_shape = _choice(data.get("request_shape") or "records", REQUEST_SHAPES, f"{where}: request_shape")
        response_key = data.get("response_key") or "predictions"
        if not isinstance(response_key, str) or not _KEY.fullmatch(response_key):
            raise ContractError(f"{where}: response_key must be a JSON key of letters, digits and '_'")
        contract = cls(
            features=features, target=target, task=task, response_kind=response_kind, metric=metric,
            sample_request={}, response_key=response_key, request_shape=request_shape, classes=tuple(classes),
            positive_class=positive, reference=str(data.get("reference") or ""), source=str(data.get("source") or ""),
            extras=dict(data.get("extras") or {}),
        )
        return replace(contract, sample_request=_sample(data.get("sample_request"), contract, where))


def split_request(names: tuple[str, ...], records: list[dict[str, Any]]) -> dict[str, Any]:
    """`records` as AzureML's no-code MLflow scoring script takes them: a pandas DataFrame in the
    "split" orientation under "input_data" (the index is sent: the script's fallback parser, for a
    model with neither signature nor input example, reads a frame only when columns, index and data
    are all there)."""
    return {INPUT_DATA: {"columns": list(names), "index": list(range(len(records))),
                         "data": [[r.get(n) for n in names] for r in records]}}


def _features(value: Any, where: str) -> tuple[Feature, ...]:
    if not isinstance(value, list) or not value:
        raise ContractError(f"{where}: features must be a non-empty list of {{name, type}}")
    if len(value) > MAX_FEATURES:
        raise ContractError(f"{where}: {len(value)} features, more than {MAX_FEATURES}")
    out, seen = [], set()
    for i, item in enumerate(value):
        at = f"{where}: features[{i}]"
        if not isinstance(item, dict):
            raise ContractError(f"{at} must be an object with name and type")
        name = _text(item.get("name"), f"{at}.name")
        if name in seen:
            raise ContractError(f"{at}.name {name!r} appears twice")
        seen.add(name)
        kind = _choice(item.get("type"), FEATURE_KINDS, f"{at}.type")
        domain = item.get("domain") or []
        if kind == "categorical" and (not isinstance(domain, list) or not all(isinstance(d, str) for d in domain)):
            raise ContractError(f"{at}.domain must be a list of strings")
        bounds = []
        for key in ("minimum", "maximum"):
            bound = item.get(key)
            if bound is not None and not (_number(bound) and math.isfinite(bound)):
                raise ContractError(f"{at}.{key} must be a finite number")
            bounds.append(None if bound is None else float(bound))
        if None not in bounds and bounds[0] > bounds[1]:
            raise ContractError(f"{at}: minimum {bounds[0]} > maximum {bounds[1]}")
        out.append(Feature(name, kind, tuple(domain) if kind == "categorical" else (), *bounds))
    return tuple(out)


def _sample(value: Any, contract: ModelContract, where: str) -> dict[str, Any]:
    at = f"{where}: sample_request"
    if not isinstance(value, dict) or not isinstance(value.get("data"), list) or not value["data"]:
        raise ContractError(f"{at} must be a request body {{\"data\": [...]}} with at least one row")
    names = contract.feature_names
    for i, row in enumerate(value["data"]):
        if contract.request_shape == "rows":
            if not isinstance(row, list) or len(row) != len(names):
                raise ContractError(f"{at}.data[{i}] must be a list of {len(names)} values in feature order")
        elif not isinstance(row, dict) or set(row) != set(names):
            missing, extra = sorted(set(names) - set(row or {})), sorted(set(row or {}) - set(names)) \
                if isinstance(row, dict) else (list(names), [])
            raise ContractError(f"{at}.data[{i}] must be a record of the features (missing {missing}, extra {extra})")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise ContractError(f"{what} must be a non-empty string of at most {MAX_NAME} characters")
    return value


def _choice(value: Any, options: tuple[str, ...], what: str) -> str:
    if value not in options:
        raise ContractError(f"{what} {value!r} is not one of {', '.join(options)}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _in_classes(value: Any, classes: tuple[Any, ...]) -> bool:
    return any(value == c and type(value) is type(c) or (str(value) == str(c)) for c in classes)
