"""Baseline scoring script for the scoring-overhead benchmark: predict_proba and nothing else.

Answers the same request as ml/score.py ({"data": [{23 features}, ...]} → {"predictions": [...]})
with the standard, undecorated run(data) interface: no validation, no logging, no error mapping.
bench/scoring_overhead.py serves it next to the real score.py to measure what score.py adds.
Self-contained like score.py (it runs in the serving environment and imports nothing from the repo).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

CARD_FILE = "model_card.json"
MODEL_FILE = "model.joblib"

model = None
feature_order: list[str] = []


def init() -> None:
    global model, feature_order
    import joblib

    root = Path(os.environ.get("AZUREML_MODEL_DIR", "."))
    # Same rule as score.py: the folder itself or its single subfolder holding the card.
    if (root / CARD_FILE).is_file():
        folder = root
    else:
        found = sorted(p.parent for p in root.glob(f"*/{CARD_FILE}"))
        if len(found) != 1:
            raise FileNotFoundError(f"expected one {CARD_FILE} in {root} or one subfolder, found {len(found)}")
        folder = found[0]
    card = json.loads((folder / CARD_FILE).read_text())
    feature_order = [f["name"] for f in card["features"]]
    model = joblib.load(folder / MODEL_FILE)


def run(data: str) -> dict:
    import pandas as pd

    frame = pd.DataFrame.from_records(json.loads(data)["data"], columns=feature_order)
    return {"predictions": model.predict_proba(frame)[:, 1].tolist()}
