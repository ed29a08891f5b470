"""Quality metrics the quality gate computes from a model's answers and the evaluation labels.

numpy only (no scikit-learn in the Function App); tests/test_metrics.py checks every metric against
scikit-learn's. What a metric needs from the answers follows the contract's response kind:
probability (P(positive) per record), class_probabilities (a list per record in `classes` order),
label, value. Pure functions: answers and labels in, a float out, or MetricError saying why not.
"""

from __future__ import annotations

import math
from typing import Any

from functions.shared.contract import ModelContract


class MetricError(ValueError):
    """The metric cannot be computed from this evaluation (one class only, no rows, bad labels)."""


def compute(contract: ModelContract, answers: list[Any], labels: list[Any]) -> float:
    """`contract.metric` of `answers` (as the model gave them) against `labels` (the evaluation
    data's target, already typed by `evaluation.read_evaluation_csv`)."""
    if not answers or len(answers) != len(labels):
        raise MetricError(f"{len(answers)} answers for {len(labels)} labels")
    metric = contract.metric
    if metric in ("rmse", "mae", "r2"):
        return _regression(metric, [float(a) for a in answers], [float(y) for y in labels])
    classes = _classes(contract, labels)
    if metric == "roc_auc":
        return _roc_auc(contract, answers, labels, classes)
    if metric == "log_loss":
        return _log_loss(contract, answers, labels, classes)
    predicted = predicted_labels(contract, answers, classes)
    if metric == "accuracy":
        return sum(_same(p, y) for p, y in zip(predicted, labels)) / len(labels)
    if metric == "f1":
        positive = contract.positive_class if contract.task == "binary_classification" else None
        if positive is None:
            raise MetricError("f1 needs a positive class (a binary model); use f1_macro for multiclass")
        return _f1(predicted, labels, positive)
    if metric == "f1_macro":
        return sum(_f1(predicted, labels, c) for c in classes) / len(classes)
    raise MetricError(f"unknown metric {metric!r}")


def predicted_labels(contract: ModelContract, answers: list[Any], classes: list[Any]) -> list[Any]:
    if contract.response_kind == "label":
        return list(answers)
    if contract.response_kind == "probability":
        positive, negative = _binary(contract, classes)
        return [positive if float(p) >= 0.5 else negative for p in answers]
    order = list(contract.classes)
    return [order[max(range(len(row)), key=lambda i: (row[i], -i))] for row in answers]


def _classes(contract: ModelContract, labels: list[Any]) -> list[Any]:
    if contract.classes:
        return list(contract.classes)
    seen: list[Any] = []
    for y in labels:
        if not any(_same(y, s) for s in seen):
            seen.append(y)
    return sorted(seen, key=str)


def _binary(contract: ModelContract, classes: list[Any]) -> tuple[Any, Any]:
    positive = contract.positive_class
    others = [c for c in classes if not _same(c, positive)]
    if len(others) != 1:
        raise MetricError(f"a binary model needs exactly one class besides {positive!r}, the labels hold {classes}")
    return positive, others[0]


def _probabilities(contract: ModelContract, answers: list[Any], classes: list[Any]) -> tuple[list[Any], Any]:
    """(classes, an n×k matrix of probabilities)."""
    import numpy as np

    if contract.response_kind == "probability":
        positive, negative = _binary(contract, classes)
        p = np.asarray(answers, dtype=np.float64)
        return [negative, positive], np.column_stack([1.0 - p, p])
    if contract.response_kind == "class_probabilities":
        return list(contract.classes), np.asarray(answers, dtype=np.float64)
    raise MetricError(f"{contract.metric} needs probabilities; the model answers {contract.response_kind}s")


def _indices(labels: list[Any], classes: list[Any]) -> Any:
    import numpy as np

    out = []
    for y in labels:
        found = next((i for i, c in enumerate(classes) if _same(y, c)), None)
        if found is None:
            raise MetricError(f"label {y!r} is not one of the model's classes {classes}")
        out.append(found)
    return np.asarray(out, dtype=np.int64)


def _roc_auc(contract: ModelContract, answers: list[Any], labels: list[Any], classes: list[Any]) -> float:
    order, matrix = _probabilities(contract, answers, classes)
    y = _indices(labels, order)
    if len(order) == 2:
        return binary_roc_auc((y == 1).astype(int).tolist(), matrix[:, 1].tolist())
    # one-vs-rest, macro average over the classes present (scikit-learn's multi_class="ovr")
    scores = [binary_roc_auc((y == k).astype(int).tolist(), matrix[:, k].tolist()) for k in range(len(order))]
    return sum(scores) / len(scores)


def binary_roc_auc(labels: list[int], scores: list[float]) -> float:
    """Rank-based ROC AUC (Mann–Whitney U with average ranks for ties)."""
    import numpy as np

    y = np.asarray(labels, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise MetricError("the evaluation set needs both classes (of every class, for a multiclass ROC AUC)")
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


def _log_loss(contract: ModelContract, answers: list[Any], labels: list[Any], classes: list[Any]) -> float:
    import numpy as np

    order, matrix = _probabilities(contract, answers, classes)
    y = _indices(labels, order)
    eps = np.finfo(np.float64).eps  # scikit-learn clips the same way
    matrix = np.clip(matrix, eps, 1 - eps)
    matrix = matrix / matrix.sum(axis=1, keepdims=True)
    return float(-np.mean(np.log(matrix[np.arange(len(y)), y])))


def _f1(predicted: list[Any], labels: list[Any], positive: Any) -> float:
    tp = sum(_same(p, positive) and _same(y, positive) for p, y in zip(predicted, labels))
    fp = sum(_same(p, positive) and not _same(y, positive) for p, y in zip(predicted, labels))
    fn = sum(not _same(p, positive) and _same(y, positive) for p, y in zip(predicted, labels))
    return 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)


def _regression(metric: str, predicted: list[float], actual: list[float]) -> float:
    if not all(math.isfinite(v) for v in predicted + actual):
        raise MetricError("predictions and labels must be finite numbers")
    n = len(actual)
    errors = [p - a for p, a in zip(predicted, actual)]
    if metric == "rmse":
        return math.sqrt(sum(e * e for e in errors) / n)
    if metric == "mae":
        return sum(abs(e) for e in errors) / n
    mean = sum(actual) / n
    total = sum((a - mean) ** 2 for a in actual)
    if total == 0:
        raise MetricError("r2 needs labels that vary")
    return 1.0 - sum(e * e for e in errors) / total


def _same(a: Any, b: Any) -> bool:
    """Labels compare by value across JSON and CSV spellings: 1 == 1.0 == "1", "setosa" == "setosa"."""
    if a == b and not (isinstance(a, bool) ^ isinstance(b, bool)):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)
