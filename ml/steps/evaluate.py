"""Held-out metrics of the candidate (and of the champion, when one is given) on the test split.

    python -m ml.steps.evaluate --model <folder> --test-data <file|folder> [--champion <folder>]
                                --metrics-out <folder>        (writes <folder>/metrics.json)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ml.steps._io import fail, load_labelled, log_metrics, write_json

METRICS_FILE = "metrics.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="candidate artifact folder")
    parser.add_argument("--test-data", required=True, help="labelled CSV/Parquet file, or a folder of them")
    parser.add_argument("--champion", type=Path, default=None, help="artifact folder of the model in production")
    parser.add_argument("--metrics-out", required=True, type=Path)
    args = parser.parse_args(argv)

    from ml import artifact, dataset
    from ml.training import evaluate

    try:
        features, target = load_labelled(args.test_data)
        card = artifact.read_card(args.model)
        pipeline = artifact.load_pipeline(args.model)
    except (dataset.DataError, FileNotFoundError) as exc:
        fail(str(exc))

    metrics: dict[str, Any] = evaluate(pipeline, features, target)
    metrics.update(n_test=int(len(features)), positive_rate=float(target.mean()))
    if args.champion is not None:
        try:
            champion = artifact.load_pipeline(args.champion)
        except FileNotFoundError as exc:
            fail(f"champion: {exc}")
        metrics["champion_roc_auc"] = evaluate(champion, features, target)["roc_auc"]

    log_metrics({k: float(v) for k, v in metrics.items() if k not in ("n_test",)})
    out = write_json(args.metrics_out / METRICS_FILE, metrics)
    print(json.dumps({"step": "evaluate", "model_name": card.get("model_name"), "metrics_file": str(out),
                      **metrics}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
