"""Train one candidate with fixed hyperparameters (one trial of the pipeline's sweep).

Cross-validated ROC AUC on the training split is the sweep's primary metric, logged as `roc_auc`;
the model is then refit on the whole split and written as the artifact folder (ml/artifact.py).

    python -m ml.steps.train --train-data <file|folder> --model-out <folder> [hyperparameters]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ml.steps._io import fail, load_labelled, log_metrics

PRIMARY_METRIC = "roc_auc"


def parse_max_depth(value: str | int) -> int | None:
    """Component inputs are typed, so "no limit" (None in TrainConfig) travels as 0."""
    text = str(value).strip().lower()
    if text in ("0", "none", ""):
        return None
    depth = int(text)
    if depth < 0:
        raise argparse.ArgumentTypeError(f"max_depth must be >= 0 (0 = no limit), got {value!r}")
    return depth


def parse_max_features(value: str) -> str | float | int:
    """"sqrt"/"log2", a fraction ("0.3") or a count ("5"): the forms RandomForestClassifier takes."""
    text = str(value).strip().lower()
    if text in ("sqrt", "log2"):
        return text
    try:
        return int(text)
    except ValueError:
        pass
    try:
        fraction = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"max_features must be sqrt, log2 or a number, got {value!r}") from None
    if not 0.0 < fraction <= 1.0:
        raise argparse.ArgumentTypeError(f"max_features as a fraction must be in (0, 1], got {value!r}")
    return fraction


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-data", required=True, help="labelled CSV/Parquet file, or a folder of them")
    parser.add_argument("--n-estimators", type=int, default=150)
    parser.add_argument("--max-depth", type=parse_max_depth, default=None, help="0 = no limit")
    parser.add_argument("--min-samples-leaf", type=int, default=10)
    parser.add_argument("--max-features", type=parse_max_features, default="sqrt")
    parser.add_argument("--cv-folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--model-name", default="credit-card-default")
    parser.add_argument("--model-out", required=True, type=Path)
    args = parser.parse_args(argv)

    from sklearn.model_selection import StratifiedKFold, cross_val_score

    from ml import artifact, dataset
    from ml.training import TrainResult, build_pipeline

    try:
        features, target = load_labelled(args.train_data)
    except dataset.DataError as exc:
        fail(str(exc))
    if int(target.value_counts().min()) < args.cv_folds:
        fail(f"{args.train_data}: too few rows of the minority class for {args.cv_folds}-fold CV")

    hyperparameters: dict[str, Any] = {
        "n_estimators": args.n_estimators,
        "max_depth": args.max_depth,
        "min_samples_leaf": args.min_samples_leaf,
        "max_features": args.max_features,
    }
    pipeline = build_pipeline(args.seed)
    pipeline.set_params(**{f"model__{k}": v for k, v in hyperparameters.items()})
    folds = StratifiedKFold(args.cv_folds, shuffle=True, random_state=args.seed)
    scores = cross_val_score(pipeline, features, target, scoring="roc_auc", cv=folds)
    pipeline.fit(features, target)

    metrics = {
        "cv_roc_auc": float(scores.mean()),
        "cv_roc_auc_std": float(scores.std()),
        "cv_folds": args.cv_folds,
        "n_train": int(len(features)),
        "positive_rate": float(target.mean()),
    }
    result = TrainResult(pipeline=pipeline, metrics=metrics, best_params=hyperparameters)
    folder = artifact.save(
        result,
        features,
        target,
        args.model_out,
        model_name=args.model_name,
        data_source=str(args.train_data),
        fingerprint=dataset.fingerprint(features, target),
        seed=args.seed,
    )
    log_metrics({PRIMARY_METRIC: metrics["cv_roc_auc"], "cv_roc_auc_std": metrics["cv_roc_auc_std"]},
                params=hyperparameters)
    print(json.dumps({"step": "train", "artifact": str(folder), "hyperparameters": hyperparameters,
                      **metrics}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
