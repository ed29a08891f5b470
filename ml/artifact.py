"""The model artifact: one folder, registered in AzureML as a custom model.

    model.joblib        the fitted scikit-learn pipeline (pure sklearn classes: loads anywhere)
    model_card.json     features and types, metrics, training-data fingerprint, library versions, and
                        the model's contract (the "contract" block: what a request holds, what the
                        answer is, how it is judged; the dict of functions/shared/contract.py's
                        ModelContract.to_dict())
    reference.parquet   a uniform sample of the training data, the reference for drift

`save` writes the credit-card-default artifact; `save_model` any scikit-learn pipeline of any task
with the contract given. score.py reads only model.joblib and model_card.json, so the scoring
runtime needs no pyarrow. Cards written before contracts (no "contract" block) still serve: a
binary classifier answering P(positive) per record.
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml import schema

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline

    from ml.training import TrainResult

MODEL_FILE = "model.joblib"
CARD_FILE = "model_card.json"
REFERENCE_FILE = "reference.parquet"
ARTIFACT_FORMAT = 1
REFERENCE_ROWS = 10_000
CONTRACT_VERSION = 1  # of functions/shared/contract.py (ml/ never imports the control plane)
SAMPLE_ROWS = 2  # reference rows in the contract's sample request
CARD_TASKS = {"binary_classification": "binary-classification",
              "multiclass_classification": "multiclass-classification", "regression": "regression"}
DEFAULT_RESPONSE = {"binary_classification": "probability", "multiclass_classification": "label",
                    "regression": "value"}
DEFAULT_METRIC = {"binary_classification": "roc_auc", "multiclass_classification": "accuracy",
                  "regression": "rmse"}


def library_versions() -> dict[str, str]:
    import joblib
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "joblib": joblib.__version__,
    }


def save(
    result: "TrainResult",
    features: "pd.DataFrame",
    target: "pd.Series",
    out_dir: str | Path,
    *,
    model_name: str = schema.MODEL_NAME,
    data_source: str = "",
    fingerprint: str = "",
    seed: int = 42,
) -> Path:
    """Write the artifact folder and return it. Overwrites an existing artifact in ``out_dir``."""
    import joblib

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(result.pipeline, out / MODEL_FILE, compress=3)

    reference = _write_reference(features, target, schema.TARGET, out, seed=seed)
    contract = make_contract(
        schema.schema_dict()["features"], schema.TARGET, "binary_classification", response_kind="probability",
        request_shape="records", response_key="predictions", classes=[0, 1], positive_class=1, metric="roc_auc",
    )
    card = {
        "artifact_format": ARTIFACT_FORMAT,
        "model_name": model_name,
        "flavor": "sklearn-pipeline",
        "task": "binary-classification",
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **schema.schema_dict(),
        "positive_label": 1,
        "metrics": result.metrics,
        "hyperparameters": result.best_params,
        "training_data": {
            "source": data_source,
            "fingerprint": fingerprint,
            "rows": int(len(features)),
            "reference_rows": int(len(reference)),
        },
        "libraries": library_versions(),
        "files": {"model": MODEL_FILE, "reference": REFERENCE_FILE},
        "contract": _complete(contract, reference),
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2, default=_jsonable) + "\n")
    return out


def save_model(
    pipeline: Any,
    contract: dict[str, Any],
    reference_frame: "pd.DataFrame",
    out_dir: str | Path,
    *,
    model_name: str,
    metrics: dict[str, Any] | None = None,
    hyperparameters: dict[str, Any] | None = None,
    data_source: str = "",
    fingerprint: str = "",
    training_rows: int | None = None,
    seed: int = 42,
) -> Path:
    """Write the artifact folder of any fitted scikit-learn pipeline and return it.

    `contract` holds at least features, target and task (make_contract builds one); the card gets
    the whole contract with the sample request (the first SAMPLE_ROWS reference rows, in the
    contract's request shape) and `reference: "reference.parquet"`. `reference_frame` holds the
    features and the target column; it is sampled down to REFERENCE_ROWS. Overwrites an existing
    artifact in `out_dir`."""
    import joblib

    contract = make_contract(**{k: v for k, v in contract.items() if k in _CONTRACT_ARGS})
    target = contract["target"]
    names = [f["name"] for f in contract["features"]]
    missing = [n for n in [*names, target] if n not in reference_frame.columns]
    if missing:
        raise ValueError(f"the reference frame has no column(s) {', '.join(missing)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipeline, out / MODEL_FILE, compress=3)
    reference = _write_reference(reference_frame[names], reference_frame[target], target, out, seed=seed)
    card = {
        "artifact_format": ARTIFACT_FORMAT,
        "model_name": model_name,
        "flavor": "sklearn-pipeline",
        "task": CARD_TASKS[contract["task"]],
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "features": contract["features"],
        "target": target,
        **({"positive_label": contract["positive_class"]} if contract["task"] == "binary_classification" else {}),
        "metrics": dict(metrics or {}),
        "hyperparameters": dict(hyperparameters or {}),
        "training_data": {
            "source": data_source,
            "fingerprint": fingerprint,
            "rows": int(training_rows if training_rows is not None else len(reference_frame)),
            "reference_rows": int(len(reference)),
        },
        "libraries": library_versions(),
        "files": {"model": MODEL_FILE, "reference": REFERENCE_FILE},
        "contract": _complete(contract, reference),
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2, default=_jsonable) + "\n")
    return out


_CONTRACT_ARGS = ("features", "target", "task", "response_kind", "request_shape", "response_key", "classes",
                  "positive_class", "metric")


def make_contract(
    features: list[dict[str, Any]],
    target: str,
    task: str,
    *,
    response_kind: str | None = None,
    request_shape: str = "records",
    response_key: str = "predictions",
    classes: list[Any] | None = None,
    positive_class: Any = None,
    metric: str | None = None,
) -> dict[str, Any]:
    """A contract's fields (without sample request and reference: save_model adds them), with the
    task's defaults: binary → probability of class 1 and roc_auc, multiclass → label and accuracy,
    regression → value and rmse. The control plane validates it (ModelContract.from_dict)."""
    if task not in CARD_TASKS:
        raise ValueError(f"task {task!r} is not one of {', '.join(CARD_TASKS)}")
    classes = [_native(c) for c in (classes if classes is not None else ([0, 1] if task == "binary_classification"
                                                                         else []))]
    if positive_class is None and task == "binary_classification":
        positive_class = 1 if 1 in classes or not classes else classes[-1]
    return {
        "contract_version": CONTRACT_VERSION, "features": [dict(f) for f in features], "target": target,
        "task": task, "request_shape": request_shape, "response_kind": response_kind or DEFAULT_RESPONSE[task],
        "response_key": response_key, "classes": classes, "positive_class": _native(positive_class),
        "metric": metric or DEFAULT_METRIC[task],
    }


def features_of(frame: "pd.DataFrame", max_levels: int = 50) -> list[dict[str, Any]]:
    """Contract features of a training frame: numbers are numeric (unbounded); text, booleans and
    categories are categorical, with their levels (up to max_levels) as the domain."""
    from pandas.api import types

    out: list[dict[str, Any]] = []
    for name in frame.columns:
        column = frame[name]
        if types.is_numeric_dtype(column) and not types.is_bool_dtype(column):
            out.append({"name": str(name), "type": "numeric"})
        else:
            levels = sorted({str(v) for v in column.dropna().unique()})
            out.append({"name": str(name), "type": "categorical", "domain": levels[:max_levels]})
    return out


def sample_request(contract: dict[str, Any], reference: "pd.DataFrame", rows: int = SAMPLE_ROWS) -> dict[str, Any]:
    """The first `rows` reference rows as a request in the contract's shape (JSON-native values;
    a missing value is null)."""
    names = [f["name"] for f in contract["features"]]
    records = [{n: _native(v) for n, v in zip(names, values)} for values in
               reference[names].head(rows).itertuples(index=False, name=None)]
    if contract.get("request_shape") == "rows":
        return {"data": [[r[n] for n in names] for r in records]}
    return {"data": records}


def _complete(contract: dict[str, Any], reference: "pd.DataFrame") -> dict[str, Any]:
    return {**contract, "sample_request": sample_request(contract, reference), "reference": REFERENCE_FILE}


def _write_reference(features: "pd.DataFrame", target: "pd.Series", target_name: str, out: Path, *,
                     seed: int) -> "pd.DataFrame":
    reference = features.copy()
    reference[target_name] = target.to_numpy()
    if len(reference) > REFERENCE_ROWS:
        reference = reference.sample(n=REFERENCE_ROWS, random_state=seed)
    reference = reference.reset_index(drop=True)
    reference.to_parquet(out / REFERENCE_FILE, index=False)
    return reference


def _native(value: Any) -> Any:
    """A numpy or pandas scalar as its JSON-native Python value; NaN and NA as None."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:
        pass
    return value


def find_artifact_dir(root: str | Path) -> Path:
    """The folder holding model_card.json: ``root`` itself or one level below.

    AzureML mounts a registered folder model as AZUREML_MODEL_DIR/<folder name>/.
    """
    root = Path(root)
    if (root / CARD_FILE).is_file():
        return root
    found = sorted(p.parent for p in root.glob(f"*/{CARD_FILE}"))
    if len(found) == 1:
        return found[0]
    if not found:
        raise FileNotFoundError(f"no {CARD_FILE} in {root} or its subfolders")
    raise FileNotFoundError(f"more than one {CARD_FILE} under {root}: {', '.join(map(str, found))}")


def read_card(root: str | Path) -> dict[str, Any]:
    return json.loads((find_artifact_dir(root) / CARD_FILE).read_text())


def load_pipeline(root: str | Path) -> "Pipeline":
    import joblib

    return joblib.load(find_artifact_dir(root) / MODEL_FILE)


def load_reference(root: str | Path) -> "pd.DataFrame":
    import pandas as pd

    return pd.read_parquet(find_artifact_dir(root) / REFERENCE_FILE)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")

