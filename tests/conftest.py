"""Shared fixtures. Everything is generated here: the suite never reads files outside the repo."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from functions.settings import REPO_ROOT, Settings

SERVING_PYTHON = Path(os.environ.get("MODELOPS_SERVING_PYTHON", REPO_ROOT / ".venv-serve" / "bin" / "python"))


# `make test` runs the files on two workers (pytest-xdist, --dist loadfile: a file's tests and its
# module fixtures stay on one worker). Files are handed out in collection order, so the longest start
# first: otherwise one of them, reached last, runs alone while the other worker idles.
LONGEST_FIRST = ("test_crash_recovery.py", "test_demo_loop.py", "test_many_models_local.py",
                 "test_many_models_azure.py", "test_cli_register.py", "test_rollout_local.py", "test_package.py")


def pytest_collection_modifyitems(items: list) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env({"MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON)})


@pytest.fixture(scope="session")
def training_csv(tmp_path_factory) -> Path:
    from ml.datagen import generate

    path = tmp_path_factory.mktemp("data") / "train.csv"
    generate(6_000, seed=7).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory, training_csv) -> Path:
    """A small but real trained artifact, laid out like AzureML mounts it: <name>/<version>/."""
    from ml.training import train_from_file

    out = tmp_path_factory.mktemp("models") / "credit-card-default" / "3"
    train_from_file(training_csv, out, search_iterations=2)
    return out


@pytest.fixture(scope="session")
def bad_artifact(tmp_path_factory, artifact_dir) -> Path:
    """The session artifact with a constant-prediction model: the quality gate rejects it."""
    import shutil

    import joblib
    from sklearn.dummy import DummyClassifier

    from ml import artifact
    from ml.datagen import generate

    folder = tmp_path_factory.mktemp("bad") / "model"
    shutil.copytree(artifact_dir, folder)
    pipeline = joblib.load(folder / artifact.MODEL_FILE)
    pipeline.steps[-1] = ("model", DummyClassifier(strategy="prior"))
    frame = generate(500, seed=2)
    pipeline.fit(frame.drop(columns=["default_payment_next_month"]), frame["default_payment_next_month"])
    joblib.dump(pipeline, folder / artifact.MODEL_FILE)
    return folder


@pytest.fixture(scope="session")
def sample_request() -> dict:
    return json.loads((REPO_ROOT / "ml" / "sample.json").read_text())


def require_serving_env() -> None:
    if not SERVING_PYTHON.exists():
        pytest.fail(f"serving environment missing at {SERVING_PYTHON}: run `make env` (make test builds it)")


def seed_evaluation_data(store, model: str, rows: int = 2_000, seed: int = 1234) -> str:
    """Write a labelled evaluation set for the quality gate (generated; same population as training)."""
    from ml.datagen import generate

    key = f"datasets/{model}/evaluation.csv"
    store.put(key, generate(rows, seed=seed).to_csv(index=False).encode())
    return key
