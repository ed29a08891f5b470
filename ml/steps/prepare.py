"""Validate labelled data and split it (stratified) into train and test Parquet files.

    python -m ml.steps.prepare --data <file|folder> --train-out <folder> --test-out <folder>
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ml.steps._io import fail, load_labelled

TRAIN_FILE = "train.parquet"
TEST_FILE = "test.parquet"
MIN_PER_CLASS = 10  # enough for a 3-fold CV in train and both classes in test


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="labelled CSV/Parquet file, or a folder of them")
    parser.add_argument("--test-size", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--train-out", required=True, type=Path)
    parser.add_argument("--test-out", required=True, type=Path)
    args = parser.parse_args(argv)

    from ml import dataset, schema

    if not 0.0 < args.test_size < 1.0:
        fail(f"--test-size must be between 0 and 1, got {args.test_size}")
    try:
        features, target = load_labelled(args.data)
    except dataset.DataError as exc:
        fail(str(exc))
    minority = int(target.value_counts().min())
    if minority < MIN_PER_CLASS:
        fail(f"{args.data}: only {minority} rows of the minority class; need at least {MIN_PER_CLASS}")

    from sklearn.model_selection import train_test_split

    x_train, x_test, y_train, y_test = train_test_split(
        features, target, test_size=args.test_size, random_state=args.seed, stratify=target
    )
    for frame, labels, folder, name in ((x_train, y_train, args.train_out, TRAIN_FILE),
                                        (x_test, y_test, args.test_out, TEST_FILE)):
        folder.mkdir(parents=True, exist_ok=True)
        out = frame.assign(**{schema.TARGET: labels.to_numpy()}).reset_index(drop=True)
        out.to_parquet(folder / name, index=False)

    print(json.dumps({
        "step": "prepare",
        "rows": int(len(features)),
        "train_rows": int(len(x_train)),
        "test_rows": int(len(x_test)),
        "positive_rate": float(target.mean()),
        "fingerprint": dataset.fingerprint(features, target),
    }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
