"""Small helpers shared by the step entry points (stdlib only at import)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def table_files(path: str | Path) -> list[Path]:
    """The data files behind an input: the file itself (uri_file) or the tables in a folder (uri_folder)."""
    from ml.dataset import table_files as files

    return files(path, TABLE_SUFFIXES)


def load_labelled(path: str | Path) -> tuple[Any, Any]:
    """Validated features and target from a file or a folder of files (concatenated)."""
    import pandas as pd

    from ml import dataset

    parts = [dataset.load_labelled(p) for p in table_files(path)]
    if len(parts) == 1:
        return parts[0]
    features = pd.concat([f for f, _ in parts], ignore_index=True)
    target = pd.concat([t for _, t in parts], ignore_index=True)
    return features, target


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path


def log_metrics(metrics: dict[str, float], params: dict[str, Any] | None = None) -> None:
    """Log to the AzureML run through MLflow when there is one; always print a parsable line.

    AzureML sets MLFLOW_TRACKING_URI (and the run id) for every job. Locally there is no tracking
    server, and logging would create ./mlruns in the code folder, so it is skipped.
    """
    for name, value in metrics.items():
        print(f"metric {name}={value:.6f}", flush=True)
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        return
    try:
        import mlflow
    except ImportError:
        print("mlflow is not installed: metrics were printed only", file=sys.stderr, flush=True)
        return
    mlflow.log_metrics(metrics)
    if params:
        mlflow.log_params({k: str(v) for k, v in params.items()})


def str2bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in ("1", "true", "yes", "y"):
        return True
    if text in ("0", "false", "no", "n", ""):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false, got {value!r}")


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line in the job's log instead of a stack trace, for errors in the inputs."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(code)
