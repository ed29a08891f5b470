"""The quality gate's metrics (functions/domain/metrics.py) agree with scikit-learn's, for every
response kind; evaluation data is read by the contract (functions/domain/evaluation.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from functions.domain.evaluation import EvaluationError, read_evaluation_csv
from functions.domain.metrics import MetricError, compute
from functions.shared.contract import ModelContract

RNG = np.random.default_rng(7)
N = 400


def contract(**fields) -> ModelContract:
    base = {"features": [{"name": "x", "type": "numeric"}], "target": "y",
            "sample_request": {"data": [{"x": 1.0}]}}
    return ModelContract.from_dict({**base, **fields})


def test_binary_probability_metrics_match_scikit_learn():
    labels = RNG.integers(0, 2, N)
    p = np.clip(labels * 0.3 + RNG.random(N) * 0.7, 0, 1)
    p[:20] = 0.5  # ties
    for metric, oracle in (("roc_auc", skm.roc_auc_score(labels, p)), ("log_loss", skm.log_loss(labels, p)),
                           ("accuracy", skm.accuracy_score(labels, p >= 0.5)), ("f1", skm.f1_score(labels, p >= 0.5))):
        c = contract(task="binary_classification", response_kind="probability", classes=[0, 1], metric=metric)
        assert compute(c, p.tolist(), labels.tolist()) == pytest.approx(oracle, rel=1e-12), metric


def test_multiclass_metrics_match_scikit_learn():
    classes = ["setosa", "versicolor", "virginica"]
    y = RNG.integers(0, 3, N)
    raw = RNG.random((N, 3)) + np.eye(3)[y] * 0.8
    proba = raw / raw.sum(axis=1, keepdims=True)
    labels = [classes[i] for i in y]
    argmax = [classes[i] for i in proba.argmax(axis=1)]
    oracles = {"roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr"), "log_loss": skm.log_loss(y, proba),
               "accuracy": skm.accuracy_score(labels, argmax), "f1_macro": skm.f1_score(labels, argmax, average="macro")}
    for metric, oracle in oracles.items():
        c = contract(task="multiclass_classification", response_kind="class_probabilities", classes=classes,
                     metric=metric)
        assert compute(c, proba.tolist(), labels) == pytest.approx(oracle, rel=1e-9), metric
    as_labels = contract(task="multiclass_classification", response_kind="label", metric="f1_macro")
    assert compute(as_labels, argmax, labels) == pytest.approx(oracles["f1_macro"], rel=1e-12)


def test_regression_metrics_match_scikit_learn():
    actual = RNG.normal(100, 30, N)
    predicted = actual + RNG.normal(0, 10, N)
    for metric, oracle in (("rmse", skm.mean_squared_error(actual, predicted) ** 0.5),
                           ("mae", skm.mean_absolute_error(actual, predicted)), ("r2", skm.r2_score(actual, predicted))):
        c = contract(task="regression", response_kind="value", metric=metric)
        assert compute(c, predicted.tolist(), actual.tolist()) == pytest.approx(oracle, rel=1e-9), metric


def test_metrics_that_cannot_be_computed_say_why():
    c = contract(task="binary_classification", response_kind="probability", classes=[0, 1])
    with pytest.raises(MetricError, match="both classes"):
        compute(c, [0.2, 0.4], [1, 1])
    with pytest.raises(MetricError, match="2 answers for 3 labels"):
        compute(c, [0.2, 0.4], [1, 0, 1])
    labels_model = contract(task="multiclass_classification", response_kind="class_probabilities",
                            classes=["a", "b", "c"], metric="roc_auc")
    with pytest.raises(MetricError, match="'d' is not one of"):
        compute(labels_model, [[0.2, 0.3, 0.5]] * 2, ["a", "d"])


def test_evaluation_data_is_typed_by_the_contract():
    iris = contract(task="multiclass_classification", response_kind="label", classes=[0, 1, 2],
                    features=[{"name": "sepal length (cm)", "type": "numeric"}, {"name": "kind", "type": "categorical"}],
                    sample_request={"data": [{"sepal length (cm)": 1.0, "kind": "a"}]})
    data = b'sepal length (cm),kind,y,other\n5.1,a,2,zzz\n4.9,,0.0,zzz\n'
    rows, labels = read_evaluation_csv(data, iris, limit=10)
    assert rows == [{"sepal length (cm)": 5.1, "kind": "a"}, {"sepal length (cm)": 4.9, "kind": None}]
    assert labels == [2, 0]
    with pytest.raises(EvaluationError, match="row 1: target 'y' '7' is not one of the classes"):
        read_evaluation_csv(b'sepal length (cm),kind,y\n5.1,a,7\n', iris, limit=10)
    with pytest.raises(EvaluationError, match="lacks column"):
        read_evaluation_csv(b'kind,y\na,1\n', iris, limit=10)
    binary = contract(task="binary_classification", response_kind="probability", classes=[0, 1])
    assert read_evaluation_csv(b'x,y\n1,true\n2,0\n', binary, limit=10)[1] == [1, 0]
    regression = contract(task="regression", response_kind="value")
    assert read_evaluation_csv(b'x,y\n1,151.5\n', regression, limit=10)[1] == [151.5]
    with pytest.raises(EvaluationError, match="finite"):
        read_evaluation_csv(b'x,y\n1,nan\n', regression, limit=10)
