"""Training: the scenario's pipeline with a small randomized hyperparameter search.

Median imputer for numerics; constant imputer + one-hot (unseen levels ignored) for categoricals;
a random forest. Metrics come from a held-out split, ROC AUC from probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml import schema

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.pipeline import Pipeline


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 42
    test_size: float = 0.2
    search_iterations: int = 4  # small on purpose: the search runs on every retraining
    cv_folds: int = 3
    n_jobs: int = 2
    search_space: dict[str, list[Any]] = field(
        default_factory=lambda: {
            "model__n_estimators": [100, 150, 200],
            "model__max_depth": [8, 12, 16, None],
            "model__min_samples_leaf": [5, 10, 20, 40],
            "model__max_features": ["sqrt", 0.3],
        }
    )


@dataclass
class TrainResult:
    pipeline: "Pipeline"
    metrics: dict[str, Any]
    best_params: dict[str, Any]


def build_pipeline(seed: int = 42) -> "Pipeline":
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    # keep_empty_features: a sparse column can be all-missing in one cross-validation fold. Without it
    # the median imputer drops the column there (and warns from every worker process) and the
    # constant imputer warns that its behaviour changes in sklearn 1.8. For a column with a value in
    # the rows being fitted it changes nothing; a column with no value in the whole training set is
    # refused before training (dataset.require_values).
    numeric = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True))])
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="constant", fill_value="missing", keep_empty_features=True)),
            ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
        ]
    )
    features = ColumnTransformer(
        [("numeric", numeric, list(schema.NUMERIC)), ("categorical", categorical, list(schema.CATEGORICAL))]
    )
    model = RandomForestClassifier(random_state=seed, n_jobs=1, class_weight="balanced_subsample")
    return Pipeline([("features", features), ("model", model)])


def evaluate(pipeline: "Pipeline", features: "pd.DataFrame", target: "pd.Series") -> dict[str, float]:
    """Held-out metrics. ROC AUC uses probabilities; the others use the 0.5 threshold."""
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score

    proba = pipeline.predict_proba(features)[:, 1]
    predicted = (proba >= 0.5).astype(int)
    return {
        "roc_auc": float(roc_auc_score(target, proba)),
        "f1": float(f1_score(target, predicted, zero_division=0)),
        "precision": float(precision_score(target, predicted, zero_division=0)),
        "recall": float(recall_score(target, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(target, predicted)),
    }


def train(features: "pd.DataFrame", target: "pd.Series", config: TrainConfig = TrainConfig()) -> TrainResult:
    from sklearn.model_selection import RandomizedSearchCV, StratifiedKFold, train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=config.test_size, random_state=config.seed, stratify=target
    )
    search = RandomizedSearchCV(
        build_pipeline(config.seed),
        config.search_space,
        n_iter=config.search_iterations,
        scoring="roc_auc",
        cv=StratifiedKFold(config.cv_folds, shuffle=True, random_state=config.seed),
        random_state=config.seed,
        n_jobs=config.n_jobs,
        refit=True,
    )
    search.fit(x_train, y_train)
    pipeline = search.best_estimator_
    # Serving scores a few rows at a time: a thread pool per request would only add latency.
    pipeline.named_steps["model"].n_jobs = 1
    metrics: dict[str, Any] = evaluate(pipeline, x_test, y_test)
    metrics.update(
        n_train=int(len(x_train)),
        n_test=int(len(x_test)),
        cv_roc_auc=float(search.best_score_),
        positive_rate=float(target.mean()),
    )
    best = {k.removeprefix("model__"): v for k, v in search.best_params_.items()}
    return TrainResult(pipeline=pipeline, metrics=metrics, best_params=best)


def train_from_file(
    data: "str | Path",
    out_dir: "str | Path",
    *,
    model_name: str = schema.MODEL_NAME,
    seed: int = 42,
    search_iterations: int = 4,
) -> dict[str, Any]:
    """Load and validate a labelled file, train, write the artifact; return metrics + paths."""
    from ml import artifact, dataset

    features, target = dataset.load_labelled(data)
    dataset.require_values(features, str(data))
    if target.value_counts().min() < 2 * TrainConfig.cv_folds:
        raise dataset.DataError(
            f"{data}: too few rows of the minority class ({int(target.value_counts().min())}) "
            f"for {TrainConfig.cv_folds}-fold search and a held-out split"
        )
    config = TrainConfig(seed=seed, search_iterations=search_iterations)
    result = train(features, target, config)
    folder = artifact.save(
        result,
        features,
        target,
        out_dir,
        model_name=model_name,
        data_source=str(data),
        fingerprint=dataset.fingerprint(features, target),
        seed=seed,
    )
    return {**result.metrics, "hyperparameters": result.best_params, "artifact": str(folder)}
