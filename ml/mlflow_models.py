"""MLflow models for the tests and the demo: the seeds' iris classifier as an MLflow model folder.

The folder is what `mlflow.sklearn.log_model(...)` leaves in a run's artifacts and AzureML registers
as an `mlflow_model` (or a custom model): an MLmodel file, the serialized model (model.skops, or
model.pkl for cloudpickle and pickle), the input example and the environment files. Saved here with
`mlflow.sklearn.save_model` (the same writer, no tracking server), with a signature
(`infer_signature(X, y_pred)`) and an input example, in the serialization format asked for: MLflow 3
writes skops by default outside Databricks, older versions and Databricks cloudpickle or pickle, and
a registry holds all three.

Beside it, `contract.json`: what MLmodel cannot say (target, task, metric, classes, request shape,
response key). The seeds' iris endpoint takes rows in feature order and answers under "result":

    {"data": [[4.6, 3.6, 1.0, 0.2], ...]}   →   {"result": [0, ...]}

Needs mlflow-skinny and skops (ml/environments/mlflow-pins.txt): training and test environments.
"""

from __future__ import annotations

import json
import operator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

MLMODEL_FILE = "MLmodel"
CONTRACT_FILE = "contract.json"
REFERENCE_FILE = "reference.parquet"
SERIALIZATION_FORMATS = ("skops", "cloudpickle", "pickle")
IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_TARGET = "species"
IRIS_NAMES = ("setosa", "versicolor", "virginica")
# A FunctionTransformer(operator.neg) step is stored by skops as this function, which skops does not
# trust by itself: a model holding it loads only where the platform's allowlist names it.
UNTRUSTED_TYPE = "_operator.neg"


def iris_frame(labels: str = "codes") -> tuple["pd.DataFrame", "pd.Series"]:
    """sklearn's bundled iris data: the features under IRIS_FEATURES, the target as class codes
    (0, 1, 2) or names ("setosa", ...)."""
    from sklearn.datasets import load_iris

    if labels not in ("codes", "names"):
        raise ValueError(f"labels must be 'codes' or 'names', not {labels!r}")
    data = load_iris(as_frame=True)
    features = data.data.copy()
    features.columns = list(IRIS_FEATURES)
    target = data.target.rename(IRIS_TARGET)
    if labels == "names":
        target = target.map(dict(enumerate(IRIS_NAMES))).astype(object)
    return features, target


def train_iris(*, labels: str = "codes", untrusted_step: bool = False, seed: int = 0) -> "Pipeline":
    """Scaler + logistic regression on iris; `untrusted_step` puts FunctionTransformer(operator.neg)
    first (UNTRUSTED_TYPE in a skops file; the predictions are as good)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    features, target = iris_frame(labels)
    steps: list[tuple[str, Any]] = [("scale", StandardScaler()),
                                    ("model", LogisticRegression(max_iter=1000, random_state=seed))]
    if untrusted_step:
        steps.insert(0, ("negate", FunctionTransformer(operator.neg, feature_names_out="one-to-one")))
    return Pipeline(steps).fit(features, target)


def save_mlflow_model(
    pipeline: Any,
    features: "pd.DataFrame",
    out_dir: str | Path,
    *,
    serialization_format: str = "skops",
    skops_trusted_types: list[str] | None = None,
    example_rows: int = 2,
) -> Path:
    """mlflow.sklearn.save_model with a signature inferred from `features` and the pipeline's
    predictions, and the first `example_rows` rows as the input example. `out_dir` must not exist
    (or be empty), as MLflow requires. `skops_trusted_types` is written into MLmodel the way MLflow
    does it (modelops' scoring never reads it: its allowlist is the platform's).

    The pip requirements are given rather than inferred: MLflow infers them by loading the model in
    a subprocess, seconds per model."""
    import mlflow
    import mlflow.sklearn
    import sklearn
    from mlflow.models import infer_signature

    if serialization_format not in SERIALIZATION_FORMATS:
        raise ValueError(f"serialization_format must be one of {', '.join(SERIALIZATION_FORMATS)}")
    requirements = [f"mlflow-skinny=={mlflow.__version__}", f"scikit-learn=={sklearn.__version__}"]
    if serialization_format == "skops":
        import skops

        requirements.append(f"skops=={skops.__version__}")
    elif serialization_format == "cloudpickle":
        import cloudpickle

        requirements.append(f"cloudpickle=={cloudpickle.__version__}")
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    mlflow.sklearn.save_model(
        pipeline, str(out), serialization_format=serialization_format,
        signature=infer_signature(features, pipeline.predict(features)),
        input_example=features.head(example_rows), pip_requirements=requirements,
        skops_trusted_types=skops_trusted_types,
    )
    return out


def iris_contract(classes: list[Any], sample_rows: list[list[float]]) -> dict[str, Any]:
    """contract.json of the iris classifier: what its MLmodel cannot say. The features come from
    the MLmodel signature; the sample request is in the rows shape (MLflow's input example is a
    pandas "split" frame, which the control plane would read as records)."""
    return {
        "contract_version": 1, "target": IRIS_TARGET, "task": "multiclass_classification",
        "request_shape": "rows", "response_kind": "label", "response_key": "result",
        "classes": [_native(c) for c in classes], "metric": "accuracy",
        "sample_request": {"data": [[_native(v) for v in row] for row in sample_rows]},
    }


def write_contract_json(out_dir: str | Path, contract: dict[str, Any]) -> Path:
    path = Path(out_dir) / CONTRACT_FILE
    path.write_text(json.dumps(contract, indent=2) + "\n")
    return path


def save_iris(
    out_dir: str | Path,
    *,
    serialization_format: str = "skops",
    labels: str = "codes",
    untrusted_step: bool = False,
    skops_trusted_types: list[str] | None = None,
    pipeline: Any = None,
) -> Path:
    """The iris classifier as an MLflow model folder with its contract.json. Pass a `pipeline`
    trained by train_iris (same `labels` and `untrusted_step`) to save one model in several formats."""
    features, _ = iris_frame(labels)
    if pipeline is None:
        pipeline = train_iris(labels=labels, untrusted_step=untrusted_step)
    out = save_mlflow_model(pipeline, features, out_dir, serialization_format=serialization_format,
                            skops_trusted_types=skops_trusted_types)
    contract = iris_contract(list(pipeline.classes_), features.head(2).to_numpy().tolist())
    # the reference sample monitoring compares with: the training data, registered with the model
    reference = features.copy()
    reference[IRIS_TARGET] = iris_frame(labels)[1].to_numpy()
    reference.to_parquet(out / REFERENCE_FILE, index=False)
    contract["reference"] = REFERENCE_FILE
    write_contract_json(out, contract)
    return out


def _native(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
