"""`modelops demo`: the main job on the embedded local platform, narrated.

Today: generate data → train → serve on a real azureml-inference-server-http process → score
ml/sample.json (and show a rejected request). Later capabilities grow this into the whole loop.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from functions.settings import SAMPLE_REQUEST, Settings

Echo = Callable[[str], None]


def run_demo(settings: Settings, workdir: Path, *, rows: int = 30_000, echo: Echo = print) -> dict:
    from functions.adapters.local.inference_server import InferenceServer
    from functions.scoring_client import post_json
    from ml import schema
    from ml.datagen import generate
    from ml.training import train_from_file

    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data" / "train.csv"
    data.parent.mkdir(parents=True, exist_ok=True)
    echo(f"[1/4] generating {rows:,} labelled rows → {data}")
    generate(rows, seed=0).to_csv(data, index=False)

    model_dir = workdir / "models" / schema.MODEL_NAME / "1"
    echo(f"[2/4] training {schema.MODEL_NAME} (randomized search) → {model_dir}")
    metrics = train_from_file(data, model_dir)
    echo(
        f"      held-out ROC AUC {metrics['roc_auc']:.3f}, F1 {metrics['f1']:.3f} "
        f"on {metrics['n_test']:,} rows (trained on {metrics['n_train']:,})"
    )

    console_log = workdir / "logs" / "console-v1.log"
    console_log.unlink(missing_ok=True)
    echo("[3/4] starting azureml-inference-server-http with ml/score.py on 127.0.0.1")
    with InferenceServer(model_dir, settings.serving_python, console_log) as server:
        echo(f"      scoring URI {server.scoring_uri} (pid {server.pid})")
        echo(f"[4/4] scoring {SAMPLE_REQUEST.relative_to(SAMPLE_REQUEST.parent.parent)}")
        good = post_json(server.scoring_uri, SAMPLE_REQUEST.read_bytes())
        echo(f"      {good.status} {json.dumps(good.json)} ({good.elapsed_ms:.1f} ms)")
        bad = post_json(server.scoring_uri, {"data": [{"sex": "male"}]})
        echo(f"      an invalid request is rejected: {bad.status} {bad.json.get('error', '')[:100]}")
    log_lines = [
        line for line in console_log.read_text().splitlines() if line.startswith("{") and '"service_name"' in line
    ]
    echo(f"      console log {console_log}: {len(log_lines)} inference log lines, e.g.")
    for line in log_lines[:2]:
        echo(f"        {line[:150]}{'…' if len(line) > 150 else ''}")
    summary = {
        "data": str(data),
        "artifact": str(model_dir),
        "metrics": {k: metrics[k] for k in ("roc_auc", "f1", "precision", "recall", "accuracy", "n_train", "n_test")},
        "sample_response": good.json,
        "invalid_request_status": bad.status,
        "console_log": str(console_log),
        "seconds": round(time.perf_counter() - started, 1),
    }
    echo(f"done in {summary['seconds']} s")
    return summary
