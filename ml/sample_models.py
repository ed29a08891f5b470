"""Small models of other tasks as modelops artifacts (ml/artifact.py's save_model), from the data
sets scikit-learn ships: a regression (diabetes) and a multiclass classifier (wine). For the tests
and the demo: they show the scoring entry point and the control plane working by a model's
contract, not by the credit-card model's columns. Each trains in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml import artifact

if TYPE_CHECKING:
    import pandas as pd

DIABETES_TARGET = "progression"  # a quantitative measure of disease progression one year after baseline
WINE_TARGET = "cultivar"


def diabetes_frame() -> "pd.DataFrame":
    """sklearn's diabetes data, unscaled: nine numeric features and `sex` as a categorical ("1"/"2",
    the data set's own codes), the target under DIABETES_TARGET."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True, scaled=False)
    frame = data.data.copy()
    frame["sex"] = frame["sex"].astype(int).astype(str)
    frame[DIABETES_TARGET] = data.target.to_numpy()
    return frame


def wine_frame(labels: str = "codes") -> "pd.DataFrame":
    """sklearn's wine data: 13 numeric features; the target (three cultivars) as codes 0, 1, 2 or
    names "class_0", ... under WINE_TARGET."""
    from sklearn.datasets import load_wine

    if labels not in ("codes", "names"):
        raise ValueError(f"labels must be 'codes' or 'names', not {labels!r}")
    data = load_wine(as_frame=True)
    frame = data.data.copy()
    target = data.target
    frame[WINE_TARGET] = target.map(lambda k: str(data.target_names[k])).astype(object) if labels == "names" \
        else target.to_numpy()
    return frame


def train_diabetes(out_dir: str | Path, *, request_shape: str = "records", model_name: str = "diabetes-progression",
                   seed: int = 0) -> Path:
    """Ridge regression (one-hot `sex`) answering a value per row; metric rmse on a held-out split."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import Ridge
    from sklearn.metrics import mean_squared_error
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    frame = diabetes_frame()
    features = frame.drop(columns=[DIABETES_TARGET])
    numeric = [c for c in features.columns if c != "sex"]
    pipeline = Pipeline([
        ("features", ColumnTransformer([("numeric", StandardScaler(), numeric),
                                        ("categorical", OneHotEncoder(handle_unknown="ignore"), ["sex"])])),
        ("model", Ridge(alpha=1.0)),
    ])
    train, test = train_test_split(frame, test_size=0.25, random_state=seed)
    pipeline.fit(train[features.columns], train[DIABETES_TARGET])
    rmse = float(mean_squared_error(test[DIABETES_TARGET], pipeline.predict(test[features.columns])) ** 0.5)
    pipeline.fit(features, frame[DIABETES_TARGET])
    contract = artifact.make_contract(artifact.features_of(features), DIABETES_TARGET, "regression",
                                      request_shape=request_shape, metric="rmse")
    return artifact.save_model(pipeline, contract, frame, out_dir, model_name=model_name, metrics={"rmse": rmse},
                               data_source="sklearn.datasets.load_diabetes(scaled=False)", seed=seed)


def train_wine(out_dir: str | Path, *, response_kind: str = "class_probabilities", request_shape: str = "records",
               labels: str = "codes", response_key: str = "predictions", model_name: str = "wine-cultivar",
               seed: int = 0) -> Path:
    """Scaler + logistic regression on wine; answers class probabilities (in the model's class order)
    or labels; metric accuracy on a held-out split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    frame = wine_frame(labels)
    names = [c for c in frame.columns if c != WINE_TARGET]
    pipeline = Pipeline([("scale", StandardScaler()), ("model", LogisticRegression(max_iter=2000, random_state=seed))])
    train, test = train_test_split(frame, test_size=0.25, random_state=seed, stratify=frame[WINE_TARGET])
    pipeline.fit(train[names], train[WINE_TARGET])
    accuracy = float(accuracy_score(test[WINE_TARGET], pipeline.predict(test[names])))
    pipeline.fit(frame[names], frame[WINE_TARGET])
    classes: list[Any] = [c.item() if hasattr(c, "item") else c for c in pipeline.classes_]
    contract = artifact.make_contract(artifact.features_of(frame[names]), WINE_TARGET, "multiclass_classification",
                                      response_kind=response_kind, request_shape=request_shape,
                                      response_key=response_key, classes=classes, metric="accuracy")
    return artifact.save_model(pipeline, contract, frame, out_dir, model_name=model_name,
                               metrics={"accuracy": accuracy}, data_source="sklearn.datasets.load_wine", seed=seed)
