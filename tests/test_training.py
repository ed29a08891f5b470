"""`modelops train` on good data and on each kind of bad data (through the real console script)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ml import artifact, schema
from ml.datagen import generate

MODELOPS = Path(sys.executable).with_name("modelops")


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(MODELOPS), *args], capture_output=True, text=True, timeout=300)


def test_train_json_prints_metrics_and_writes_the_artifact(tmp_path, training_csv):
    out = tmp_path / "model"
    result = run_cli("train", "--data", str(training_csv), "--out", str(out), "--json", "--search-iterations", "2")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # no warning (sklearn's are multi-line, some from worker processes)
    summary = json.loads(result.stdout)
    assert {"roc_auc", "f1", "precision", "recall", "accuracy", "n_train", "n_test"} <= summary.keys()
    assert summary["n_train"] + summary["n_test"] == 6_000
    assert summary["n_test"] == 1_200
    assert 0.7 < summary["roc_auc"] < 0.9

    card = artifact.read_card(out)
    assert [f["name"] for f in card["features"]] == list(schema.FEATURE_NAMES)
    assert {f["type"] for f in card["features"]} == {"categorical", "numeric"}
    assert card["metrics"]["roc_auc"] == pytest.approx(summary["roc_auc"])
    assert card["training_data"]["fingerprint"].startswith("sha256:")
    assert card["libraries"]["scikit-learn"] == pinned_sklearn()
    reference = artifact.load_reference(out)
    assert list(reference.columns) == list(schema.COLUMNS)
    assert len(reference) == 6_000  # below the reference cap, the whole training set
    pipeline = artifact.load_pipeline(out)
    assert pipeline.named_steps["model"].n_jobs == 1


def test_roc_auc_is_computed_from_probabilities(artifact_dir, training_csv):
    from sklearn.metrics import roc_auc_score

    from ml.dataset import load_labelled

    features, target = load_labelled(training_csv)
    pipeline = artifact.load_pipeline(artifact_dir)
    from_proba = roc_auc_score(target, pipeline.predict_proba(features)[:, 1])
    from_labels = roc_auc_score(target, pipeline.predict(features))
    assert from_proba > from_labels  # probabilities rank better than hard labels
    from ml.training import evaluate

    assert evaluate(pipeline, features, target)["roc_auc"] == pytest.approx(from_proba)


def test_fingerprint_ignores_file_formatting_but_not_content(tmp_path):
    from ml.dataset import fingerprint, load_labelled

    frame = generate(300, seed=2)
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    frame.to_csv(a, index=False)
    frame.to_csv(b, index=False, float_format="%.2f")  # same values, other text
    assert fingerprint(*load_labelled(a)) == fingerprint(*load_labelled(b))
    frame.loc[0, "age"] += 1
    frame.to_csv(b, index=False)
    assert fingerprint(*load_labelled(a)) != fingerprint(*load_labelled(b))


def test_target_accepts_true_false(tmp_path):
    from ml.dataset import load_labelled

    frame = generate(200, seed=4)
    frame[schema.TARGET] = frame[schema.TARGET].map({1: "True", 0: "false"})
    path = tmp_path / "bool.csv"
    frame.to_csv(path, index=False)
    _, target = load_labelled(path)
    assert set(target.unique()) == {0, 1}


def bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    good = generate(300, seed=9)
    cases: dict[str, tuple[Path, str]] = {}

    def write(name: str, frame: pd.DataFrame | None, text: str | None = None) -> Path:
        path = tmp_path / f"{name}.csv"
        if text is not None:
            path.write_text(text)
        else:
            frame.to_csv(path, index=False)
        return path

    cases["missing_columns"] = (write("missing", good.drop(columns=["age", "sex"])), "missing column(s) sex, age")
    unparseable = good.copy().astype({"credit_limit": object})
    unparseable.loc[4, "credit_limit"] = "lots"
    cases["unparseable"] = (write("unparseable", unparseable), "credit_limit has a value that is not a number: 'lots'")
    cases["empty"] = (write("empty", None, ""), "the file is empty")
    cases["header_only"] = (write("header", None, ",".join(schema.COLUMNS) + "\n"), "no rows")
    one_class = good.copy()
    one_class[schema.TARGET] = 0
    cases["one_class"] = (write("oneclass", one_class), "only one class")
    bad_target = good.copy().astype({schema.TARGET: object})
    bad_target.loc[2, schema.TARGET] = "maybe"
    cases["bad_target"] = (write("badtarget", bad_target), "must be 1/0 or true/false, got 'maybe'")
    cases["no_target"] = (write("notarget", good.drop(columns=[schema.TARGET])), "missing target column")
    cases["not_a_file"] = (tmp_path / "nope.csv", "no such file")
    return cases


@pytest.mark.parametrize(
    "case", ["missing_columns", "unparseable", "empty", "header_only", "one_class", "bad_target", "no_target",
             "not_a_file"]
)
def test_bad_data_exits_nonzero_with_one_line_naming_the_problem(tmp_path, case):
    path, expected = bad_files(tmp_path)[case]
    result = run_cli("train", "--data", str(path), "--out", str(tmp_path / "out"), "--json")
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert not (tmp_path / "out" / artifact.CARD_FILE).exists()


def pinned_sklearn() -> str:
    from functions.settings import REPO_ROOT

    for line in (REPO_ROOT / "ml" / "environments" / "runtime-pins.txt").read_text().splitlines():
        if line.startswith("scikit-learn=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError("no scikit-learn pin")
