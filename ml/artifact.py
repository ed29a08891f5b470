"""The model artifact: one folder, registered in AzureML as a custom model.

    model.joblib        the fitted scikit-learn pipeline (pure sklearn classes: loads anywhere)
    model_card.json     features and types, metrics, training-data fingerprint, library versions
    reference.parquet   a uniform sample of the training data, the reference for drift

score.py reads only model.joblib and model_card.json, so the scoring runtime needs no pyarrow.
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

    reference = features.copy()
    reference[schema.TARGET] = target.to_numpy()
    if len(reference) > REFERENCE_ROWS:
        reference = reference.sample(n=REFERENCE_ROWS, random_state=seed)
    reference.reset_index(drop=True).to_parquet(out / REFERENCE_FILE, index=False)

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
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2, default=_jsonable) + "\n")
    return out


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

