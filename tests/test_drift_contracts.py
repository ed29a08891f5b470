"""ml.drift by a model's contract (DriftSchema.from_contract: the contract as plain data): the
credit-card contract gives exactly the credit-card results; models the project has never seen — a
regression on scikit-learn's diabetes data, a multiclass classifier on its iris data — are compared
over their own features with Evidently's DataDriftPreset as the oracle (scores to 1e-9, same flags,
tests and verdict), drift flagged on a shifted copy and not on an unshifted sample; and the whole
path: exported by the contract, checked by functions/services/monitoring.py, in process and as
the drift job step (--contract).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from functions.adapters.local.inference_logs import LocalInferenceLogs
from functions.adapters.local.store import DirectoryStore
from functions.services.contracts import store_contract
from functions.services.export import export_model
from functions.services.monitoring import run_drift_check
from functions.services.records import RolloutStore
from ml import schema
from ml.datagen import STRONG_DRIFT, generate
from ml.drift import DriftConfig, DriftInputError, DriftSchema, compute_drift, drift_scores
from tests.export_helpers import NOW, T0, local_home_from
from tests.model_contracts import (
    DIABETES_MODEL,
    IRIS_MODEL,
    credit_contract,
    diabetes_contract,
    diabetes_frame,
    iris_contract,
    iris_frame,
    with_colour,
)
from tests.test_drift import evidently_drift
from tests.test_export_contracts import console_traffic, exported_iris_hour, model_records

REPO_ROOT = Path(__file__).resolve().parent.parent


def test_the_credit_card_contract_is_the_credit_card_schema():
    assert DriftSchema.from_contract(credit_contract().to_dict()) == DriftSchema.credit_card()
    assert DriftSchema.from_contract(schema.schema_dict()) == DriftSchema.credit_card()
    reference, current = generate(3_000, seed=1), generate(3_000, seed=2, drift=STRONG_DRIFT)
    by_default = drift_scores(reference, current, DriftConfig(min_current_rows=1))
    by_contract = drift_scores(reference, current, DriftConfig.from_dict(
        {"min_current_rows": 1}, DriftSchema.from_contract(credit_contract().to_dict())))
    assert by_contract.to_dict() == by_default.to_dict()  # identical, to the last digit


def test_a_contracts_schema_says_what_each_column_is():
    iris = DriftSchema.from_contract(iris_contract().to_dict())
    assert iris.categorical == ("petal colour",) and iris.numeric == tuple(
        c for c in iris_frame().columns if c != "species")
    assert (iris.target, iris.target_kind, iris.kind("species")) == ("species", "cat", "cat")
    diabetes = DriftSchema.from_contract(diabetes_contract().to_dict())
    assert diabetes.categorical == () and (diabetes.target_kind, diabetes.kind("progression")) == ("num", "num")
    with pytest.raises(DriftInputError, match=r"features\[0\].type 'text' is not categorical or numeric"):
        DriftSchema.from_contract({"features": [{"name": "a", "type": "text"}], "target": "y"})
    with pytest.raises(DriftInputError, match="unknown column"):  # settings are checked against the model's columns
        DriftConfig.from_dict({"per_column_threshold": {"age": 0.2}}, iris)
    assert DriftConfig.from_dict({"per_column_method": {"sepal length (cm)": "ks"}}, iris).method_for(
        "sepal length (cm)") == "ks"


# ----------------------------------------------------------------------- Evidently as the oracle

def shifted(frame: pd.DataFrame, numeric: list[str], by: float, seed: int) -> pd.DataFrame:
    """A sample of the rows (with replacement) with `by` added to every numeric feature."""
    out = frame.sample(n=600, replace=True, random_state=seed).reset_index(drop=True)
    for name in numeric:
        out[name] = out[name] + by
    return out


CASES = {
    # name: (reference, current) — the data set against a sample of itself, shifted or not
    "iris-unshifted": lambda: (with_colour(iris_frame()), shifted(with_colour(iris_frame()), [], 0.0, seed=5)),
    "iris-shifted": lambda: (with_colour(iris_frame()),
                             shifted(with_colour(iris_frame()), list(iris_frame().columns[:4]), 1.0, seed=6)),
    "diabetes-unshifted": lambda: (diabetes_frame(), shifted(diabetes_frame(), [], 0.0, seed=7)),
    "diabetes-shifted": lambda: (diabetes_frame(),
                                 shifted(diabetes_frame(), list(diabetes_frame().columns[:10]), 0.03, seed=8)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_never_seen_models_drift_equals_evidently(case):
    contract = iris_contract() if case.startswith("iris") else diabetes_contract()
    columns = DriftSchema.from_contract(contract.to_dict())
    reference, current = CASES[case]()

    ours = drift_scores(reference, current, DriftConfig.from_dict({"min_current_rows": 1}, columns))
    theirs = evidently_drift(reference, current)

    assert ours.status == "ok"
    assert [f.feature_name for f in ours.features] == [*columns.features, columns.target]
    assert {f.feature_name for f in ours.features} == set(theirs["columns"])
    for feature in ours.features:
        expected = theirs["columns"][feature.feature_name]
        assert abs(feature.drift_score - expected["score"]) <= 1e-9, (feature, expected)
        assert feature.drift_detected == expected["detected"], (feature, expected)
        assert feature.stattest_name == expected["stattest_name"], (feature, expected)
        assert feature.feature_type == expected["type"], (feature, expected)
        assert feature.threshold == pytest.approx(expected["threshold"], abs=1e-15)
    assert ours.n_drifted_features == theirs["count"]
    assert ours.dataset_drift == theirs["dataset_drift"]
    assert ours.dataset_drift is case.endswith("-shifted")


# ------------------------------------------------------------ the whole path: export, then drift

@pytest.mark.parametrize("model", [IRIS_MODEL, DIABETES_MODEL])
def test_exported_by_its_contract_then_checked_by_it(model, tmp_path):
    """Console logs → the export (the contract's layout) → run_drift_check (the contract passed to
    ml.drift as data): an unshifted window is no drift, a shifted one is; the drift job step reads
    the same window with --contract and says the same."""
    contract = iris_contract() if model == IRIS_MODEL else diabetes_contract()
    frame = with_colour(iris_frame()) if model == IRIS_MODEL else diabetes_frame()
    store = DirectoryStore(tmp_path / "store")
    store_contract(store, model, "1", contract, current=True)
    RolloutStore(store).set_production({"model": model, "version": "1", "id": "rollout-1"}, "blue", {"blue": 100},
                                       NOW.isoformat())
    reference = tmp_path / "reference.parquet"
    frame.to_parquet(reference, index=False)  # the training sample, with its target
    shift = 1.0 if model == IRIS_MODEL else 0.03
    clean, _ = console_traffic(model, model_records(model, 600, seed=11), start=T0)
    drifted, _ = console_traffic(model, model_records(model, 600, seed=12, shift=shift), start=T0 + timedelta(hours=1))
    local_home_from(clean + drifted, tmp_path / "home")
    source = LocalInferenceLogs(tmp_path / "home")
    report = export_model(model, source, store, now=T0 + timedelta(hours=2, minutes=15), since=T0)
    assert (report.error, report.rows, report.quarantined) == ("", 1200, 0)

    config = {"min_current_rows": 100}
    verdicts = {}
    for name, hour in (("clean", 1), ("drifted", 2)):
        check = run_drift_check(model, store, lambda m, v, tmp: reference, now=T0 + timedelta(hours=hour),
                                window=timedelta(hours=1), config=config, report=False)
        verdicts[name] = check
        assert check.rows == 600 and check.quarantined_parts == 0 and check.invalid_rows == 0
        overall = next(r for r in check.records if r["type"] == "OverallDriftMetrics")
        assert overall["data"]["n_features"] == len(contract.features)  # the contract's, no target in exports
    assert (verdicts["clean"].status, verdicts["drifted"].status) == ("no_drift", "drift")

    # the drift job's step on the drifted window, the contract as a file
    window = tmp_path / "window"
    window.mkdir()
    for i, key in enumerate(k for k in store.list(f"exports/{model}/1/") if "/08/" in k):
        (window / f"part-{i}.parquet").write_bytes(store.get(key)[0])
    (tmp_path / "contract.json").write_text(json.dumps(contract.to_dict()))
    done = subprocess.run(
        [sys.executable, "-m", "ml.steps.drift", "--reference", str(reference), "--current", str(window),
         "--output", str(tmp_path / "out"), "--model-name", model, "--config", json.dumps(config),
         "--contract", str(tmp_path / "contract.json"), "--no-report"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out" / "result.json").read_text())
    assert result["dataset_drift"] is True and result["columns"]["numeric"] == list(contract.numeric)
    assert [r["data"] for r in result["records"]] == [r["data"] for r in verdicts["drifted"].records]


def test_a_production_version_without_a_contract_is_not_checked(tmp_path):
    store = DirectoryStore(tmp_path / "store")
    RolloutStore(store).set_production({"model": IRIS_MODEL, "version": "4", "id": "r"}, "blue", {"blue": 100},
                                       NOW.isoformat())
    check = run_drift_check(IRIS_MODEL, store, lambda m, v, tmp: tmp / "never.parquet", now=NOW)
    assert check.status == "no_contract" and check.dataset_drift is None
    assert check.reason == ("no contract is stored for iris-species:4 (contracts/iris-species/versions/4.json or "
                            "contracts/iris-species/current.json): drift never guesses a model's columns")


def test_compute_drift_takes_the_contract_as_data(tmp_path):
    reference, current = tmp_path / "reference.parquet", tmp_path / "current.parquet"
    iris_frame().to_parquet(reference, index=False)
    shifted(iris_frame(), list(iris_frame().columns[:4]), 1.0, seed=3).drop(columns=["species"]).to_parquet(
        current, index=False)
    contract = {**iris_contract().to_dict(), "features": [f.to_dict() for f in iris_contract().features
                                                          if f.name != "petal colour"]}
    result = compute_drift(reference, current, tmp_path / "out", config={"min_current_rows": 1}, contract=contract,
                           model_name=IRIS_MODEL)
    assert result.dataset_drift is True and [f.feature_name for f in result.features] == list(iris_frame().columns[:4])
    with pytest.raises(DriftInputError, match=r"missing column\(s\) sex, education"):  # the credit card's, by default
        compute_drift(reference, current, tmp_path / "out2")


def test_the_drift_command_takes_the_contract(tmp_path):
    reference, current = tmp_path / "reference.parquet", tmp_path / "current.csv"
    diabetes_frame().to_parquet(reference, index=False)
    shifted(diabetes_frame(), list(diabetes_frame().columns[:10]), 0.03, seed=9).to_csv(current, index=False)
    (tmp_path / "contract.json").write_text(json.dumps(diabetes_contract().to_dict()))
    done = subprocess.run(
        [sys.executable, "-m", "functions.cli.main", "drift", "--reference", str(reference), "--current", str(current),
         "--contract", str(tmp_path / "contract.json"), "--config", '{"min_current_rows": 1}', "--json"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "MODELOPS_HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    records = json.loads(done.stdout)
    assert records["OverallDriftMetrics"]["data"]["dataset_drift"] is True
    assert [f["feature_name"] for f in records["FeatureDriftMetrics"]["data"]] == [
        *diabetes_contract().numeric, "progression"]


def test_each_model_is_checked_with_its_own_drift_settings(tmp_path):
    """check_models takes the settings per model (App: MODELOPS_DRIFT_CONFIG, then the model's
    `drift`): the same window is judged for one model and too small for the other's minimum."""
    from functions.services.monitoring import check_models

    store, reference, _ = exported_iris_hour(tmp_path, 300, seed=11)
    asked = []

    def settings(model):
        asked.append(model)
        return {"min_current_rows": minimum}

    for minimum, expected in ((100, "no_drift"), (1000, "insufficient_data")):
        [item] = check_models([IRIS_MODEL], store, lambda m, v, tmp: reference, now=T0 + timedelta(hours=1),
                              window=timedelta(hours=1), config=settings, report=False)
        assert item["check"]["status"] == expected and item["check"]["rows"] == 300, item
    assert asked == [IRIS_MODEL, IRIS_MODEL]


def test_the_app_layers_a_models_drift_settings_over_the_global_ones(tmp_path):
    from functions.bootstrap import build_app
    from functions.settings import Settings

    app = build_app(Settings.from_env({
        "MODELOPS_HOME": str(tmp_path / "home"),
        "MODELOPS_MODELS": json.dumps({"iris": {"drift": {"min_current_rows": 5000, "drift_share": 0.25}},
                                       "credit": {}}),
        "MODELOPS_DRIFT_CONFIG": json.dumps({"min_current_rows": 100, "threshold": 0.1})}))
    assert app._drift_settings("iris") == {"min_current_rows": 5000, "drift_share": 0.25, "threshold": 0.1}
    assert app._drift_settings("credit") == {"min_current_rows": 100, "threshold": 0.1}
