"""Contracts the export and drift tests use: the credit-card-default one (ml.schema's features, as a
modelops model card gives them) and two models the project has never seen, built from
scikit-learn's bundled data sets (no download): a regression on the diabetes data and a multiclass
classifier on the iris data, with the data sets' own column names — "sepal length (cm)", spaces,
parentheses and all.
"""

from __future__ import annotations

from typing import Any

from functions.shared.contract import ModelContract
from ml import schema

CREDIT_MODEL = schema.MODEL_NAME
IRIS_MODEL = "iris-species"
DIABETES_MODEL = "diabetes-progression"


def credit_contract() -> ModelContract:
    sample = {f.name: (f.domain[0] if f.kind == "categorical" else 1.0) for f in schema.FEATURES}
    return ModelContract.from_dict({**schema.schema_dict(), "task": "binary_classification",
                                    "response_kind": "probability", "classes": [0, 1],
                                    "sample_request": {"data": [sample]}})


def iris_frame() -> Any:
    """The iris data (150 rows): four numeric features, the species as the target (0, 1, 2)."""
    from sklearn.datasets import load_iris

    frame = load_iris(as_frame=True).frame
    return frame.rename(columns={"target": "species"})


def diabetes_frame() -> Any:
    """The diabetes data (442 rows): ten numeric features (sex among them, as sklearn scales it),
    disease progression as the target."""
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True).frame
    return frame.rename(columns={"target": "progression"})


def iris_contract() -> ModelContract:
    """A multiclass classifier answering class probabilities. "petal colour" (a categorical the
    bundled data does not have: the tests derive it) makes the contract mixed-kind."""
    frame = iris_frame()
    names = [c for c in frame.columns if c != "species"]
    features = [{"name": n, "type": "numeric"} for n in names]
    features.append({"name": "petal colour", "type": "categorical", "domain": ["white", "blue", "violet"]})
    sample = {**{n: float(frame[n].iloc[0]) for n in names}, "petal colour": "white"}
    return ModelContract.from_dict({"features": features, "target": "species", "task": "multiclass_classification",
                                    "response_kind": "class_probabilities", "classes": [0, 1, 2],
                                    "sample_request": {"data": [sample]}})


def diabetes_contract() -> ModelContract:
    """A regression answering values, its requests rows in feature order."""
    frame = diabetes_frame()
    names = [c for c in frame.columns if c != "progression"]
    return ModelContract.from_dict({"features": [{"name": n, "type": "numeric"} for n in names],
                                    "target": "progression", "task": "regression", "response_kind": "value",
                                    "request_shape": "rows",
                                    "sample_request": {"data": [[float(frame[n].iloc[0]) for n in names]]}})


COLOURS = ("white", "blue", "violet")


def with_colour(frame: Any) -> Any:
    """Iris rows with "petal colour": a categorical that follows the species (and so drifts with it)."""
    out = frame.copy()
    out["petal colour"] = [COLOURS[int(s)] for s in out["species"]]
    return out


# --- live traffic for the many-models tests (local and Azure): the seeds' iris and the diabetes data

def iris_rows() -> list[list[float]]:
    """The iris features as rows (the seeds' request shape), in a seeded random order: the data set
    is sorted by species, and a load generator sends rows in order, so a window holding one and a
    third passes over it would be a setosa-heavy sample — drift the population never had."""
    import numpy as np

    from ml.mlflow_models import iris_frame as seeds_iris_frame

    rows = seeds_iris_frame()[0].to_numpy()
    return rows[np.random.default_rng(7).permutation(len(rows))].tolist()


def diabetes_records(shifted: bool) -> list[dict]:
    """The diabetes features as records; `shifted`: another population, every measurement half as
    high again (dataset drift in most columns)."""
    from ml.sample_models import DIABETES_TARGET, diabetes_frame as sample_diabetes_frame

    frame = sample_diabetes_frame().drop(columns=[DIABETES_TARGET])
    if shifted:
        numeric = [c for c in frame.columns if c != "sex"]
        frame[numeric] = frame[numeric] * 1.5
    return frame.to_dict(orient="records")
