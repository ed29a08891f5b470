"""ml.drift: Evidently's DataDriftPreset is the oracle (scores to 1e-9, same flags, tests, verdict),
plus the guards (minimum sample, wrong-schema rows, M-of-N), the records, the report and the job."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml import schema
from ml.dataset import DataError
from ml.datagen import STRONG_DRIFT, Drift, generate
from ml.drift import (
    DriftConfig,
    DriftInputError,
    compute_drift,
    drift_scores,
    sustained,
    to_log_records,
)
from ml.drift.report import sample_rows
from ml.drift.stats import wasserstein_sorted

REPO_ROOT = Path(__file__).resolve().parent.parent
ANY_ROWS = DriftConfig(min_current_rows=1)


# ---------------------------------------------------------------------------------------- oracle


def evidently_drift(reference: pd.DataFrame, current: pd.DataFrame, **preset: Any) -> dict[str, Any]:
    """DataDriftPreset's per-column score, test, threshold, flag and type, and its dataset verdict."""
    from evidently import Report
    from evidently.presets import DataDriftPreset

    with warnings.catch_warnings():  # its chi-square divides by zero expected counts, loudly
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset(**preset)], include_tests=True).run(current, reference)  # current first
    report = snapshot.dict()
    types = snapshot.context.data_definition
    columns: dict[str, dict[str, Any]] = {}
    out: dict[str, Any] = {"columns": columns}
    for metric in report["metrics"]:
        config = metric["config"]
        if config["type"].endswith(":ValueDrift"):
            columns[config["column"]] = {"score": float(metric["value"]), "threshold": config["threshold"]}
        elif config["type"].endswith(":DriftedColumnsCount"):
            out["count"], out["share"] = metric["value"]["count"], metric["value"]["share"]
    for test in report["tests"]:
        params = test["metric_config"]["params"]
        if params["type"].endswith(":ValueDrift"):
            column = columns[params["column"]]
            column["detected"] = test["status"] == "FAIL"
            # The display name (config["method"] holds the registry name when the method is configured).
            column["stattest_name"] = re.search(r"method is (.*)\. The drift threshold", test["description"]).group(1)
            column["type"] = types.get_column_type(params["column"]).value
        elif params["type"].endswith(":DriftedColumnsCount"):
            out["dataset_drift"] = test["status"] == "FAIL"  # the preset's test is share < drift_share
    return out


def messy(frame: pd.DataFrame, seed: int, unseen_level: bool = False) -> pd.DataFrame:
    """Missing values in numeric and categorical columns; numeric columns with 2, 4 and 6 distinct
    values; optionally a marriage level the reference never had."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    n = len(out)
    for column, share in (("bill_amount_3", 0.10), ("age", 0.05), ("education", 0.08), ("sex", 0.02)):
        out.loc[rng.random(n) < share, column] = np.nan
    out["payment_amount_4"] = rng.integers(0, 6, size=n).astype(float)  # 6 values: a distance/K-S column
    out["payment_amount_5"] = rng.choice([0.0, 1.0], size=n, p=[0.7, 0.3])  # 2 values: JS / Z-test
    out["payment_amount_6"] = rng.choice([0.0, 100.0, 250.0, 500.0], size=n)  # 4 values: JS / chi-square
    if unseen_level:
        out.loc[rng.random(n) < 0.01, "marriage"] = "widowed"
    return out


OVERRIDES = dict(
    per_column_method={
        "age": "ks",  # a p-value test on a large reference
        "credit_limit": "jensenshannon",  # numeric JS with > 20 distinct values: Sturges bins
        "sex": "chisquare",
        "marriage": "z",
    },
    per_column_threshold={"bill_amount_1": 0.01, "age": 0.2, "marriage": 0.2},
    cat_threshold=0.05,
    threshold=0.03,  # the numeric columns without a threshold of their own
    num_method="wasserstein",
    drift_share=0.3,
)

# Each case costs one DataDriftPreset run (~2.5 s, mostly plotly), so the single-knob drifts ride
# along with the other situations instead of having runs of their own.
CASES = {
    # name: (make (reference, current), preset/config settings, tests that must occur)
    "no-drift": (lambda: (generate(3_000, seed=1), generate(3_000, seed=2)), {}, {"wasserstein", "jensenshannon"}),
    "strong-drift": (
        lambda: (generate(3_000, seed=1), generate(4_000, seed=2, drift=STRONG_DRIFT)),
        {},
        {"wasserstein", "jensenshannon"},
    ),
    "small-reference-age-shift": (
        lambda: (generate(800, seed=5), generate(2_500, seed=6, drift=Drift(age_shift=2))),
        {},
        {"ks", "chisquare", "z"},
    ),
    "nans-low-cardinality-limit-factor": (
        lambda: (
            messy(generate(3_000, seed=7), 1),
            messy(generate(3_000, seed=8, drift=Drift(credit_limit_factor=1.3)), 2, unseen_level=True),
        ),
        {},
        {"wasserstein", "jensenshannon"},
    ),
    "nans-low-cardinality-small-reference-repayment-delay": (
        lambda: (
            messy(generate(700, seed=7), 3),
            messy(generate(2_000, seed=8, drift=Drift(repayment_delay_shift=0.5)), 4, unseen_level=True),
        ),
        {},
        {"ks", "chisquare", "z"},
    ),
    "overrides-age-shift": (
        lambda: (generate(3_000, seed=9), generate(3_000, seed=10, drift=Drift(age_shift=1))),
        OVERRIDES,
        {"ks", "chisquare", "z", "jensenshannon", "wasserstein"},
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_scores_flags_tests_and_verdict_equal_evidently(case: str) -> None:
    make, settings, expected_tests = CASES[case]
    reference, current = make()
    ours = drift_scores(reference, current, DriftConfig(min_current_rows=1, **settings))
    theirs = evidently_drift(reference, current, **settings)

    assert ours.status == "ok"
    assert [f.feature_name for f in ours.features] == [*schema.FEATURE_NAMES, schema.TARGET]
    assert {f.feature_name for f in ours.features} == set(theirs["columns"])
    for feature in ours.features:
        expected = theirs["columns"][feature.feature_name]
        assert abs(feature.drift_score - expected["score"]) <= 1e-9, (feature, expected)
        assert feature.drift_detected == expected["detected"], (feature, expected)
        assert feature.stattest_name == expected["stattest_name"], (feature, expected)
        assert feature.feature_type == expected["type"], (feature, expected)
        assert feature.threshold == pytest.approx(expected["threshold"], abs=1e-15)
    assert ours.n_drifted_features == theirs["count"]
    assert ours.share_drifted_features == pytest.approx(theirs["share"], abs=1e-12)
    assert ours.dataset_drift == theirs["dataset_drift"]
    assert expected_tests <= {f.method for f in ours.features}
    if settings:
        assert any(f.threshold == 0.03 for f in ours.features) and ours.feature("age").threshold == 0.2
    if case == "strong-drift":
        assert ours.dataset_drift is True
    if case == "no-drift":
        assert ours.n_drifted_features == 0 and ours.dataset_drift is False


def test_the_rules_are_the_ones_evidently_documents() -> None:
    reference, current = messy(generate(3_000, seed=7), 1), messy(generate(3_000, seed=8), 2)
    by_name = {f.feature_name: f for f in drift_scores(reference, current, ANY_ROWS).features}
    assert by_name["payment_amount_4"].method == "wasserstein"  # numeric, 6 distinct values
    assert by_name["payment_amount_6"].method == "jensenshannon"  # numeric, 4 distinct values
    assert by_name["payment_amount_6"].feature_type == "num"
    assert by_name["sex"].method == "jensenshannon" and by_name["sex"].threshold == 0.1
    assert by_name["age"].reference_values == int(reference["age"].notna().sum())  # NaNs left out per column
    small = {f.feature_name: f for f in drift_scores(reference.head(1_000), current, ANY_ROWS).features}
    assert small["age"].method == "ks" and small["age"].threshold == 0.05
    assert small["education"].method == "chisquare" and small["sex"].method == "z"
    assert small["payment_amount_5"].method == "z" and small["payment_amount_6"].method == "chisquare"
    assert small[schema.TARGET].method == "z" and small[schema.TARGET].feature_type == "cat"


def test_wasserstein_on_sorted_samples_is_scipys() -> None:
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(0)
    for n_ref, n_cur, levels in ((1, 1, 3), (7, 1_000, 4), (3_000, 20_000, 50), (500, 400, 10**9)):
        ref = rng.integers(-levels, levels, size=n_ref).astype(float) / 3  # plenty of ties
        cur = rng.integers(-levels, levels, size=n_cur).astype(float) / 3 + 0.5
        expected = wasserstein_distance(ref, cur)
        assert wasserstein_sorted(np.sort(ref), np.sort(cur)) == pytest.approx(expected, rel=1e-12, abs=1e-12)


# ------------------------------------------------------------------------------------- the guards


def test_too_few_current_rows_is_insufficient_data_without_a_verdict(tmp_path: Path) -> None:
    reference, current = generate(2_000, seed=1), generate(120, seed=2, drift=STRONG_DRIFT)
    result = drift_scores(reference, current, DriftConfig(min_current_rows=500))
    assert result.status == "insufficient_data"
    assert result.features == () and result.dataset_drift is None and result.current.rows == 120
    with pytest.raises(ValueError, match="no drift verdict"):
        to_log_records(result, "m")
    assert drift_scores(reference, current, DriftConfig(min_current_rows=120)).status == "ok"

    reference.to_parquet(tmp_path / "reference.parquet", index=False)
    current.to_csv(tmp_path / "current.csv", index=False)
    compute_drift(tmp_path / "reference.parquet", tmp_path / "current.csv", tmp_path / "out", report=True)
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["status"] == "insufficient_data" and written["records"] == [] and written["dataset_drift"] is None
    assert not (tmp_path / "out" / "report.html").exists()


def test_wrong_schema_rows_are_dropped_and_counted_not_crashed_on(tmp_path: Path) -> None:
    reference = generate(3_000, seed=1)
    current = generate(1_000, seed=2).astype({"age": object, "bill_amount_2": object, schema.TARGET: object})
    current.loc[[3, 10], "age"] = "forty"
    current.loc[[10, 11, 12], "bill_amount_2"] = "n/a?"
    current.loc[[20], schema.TARGET] = "maybe"
    current.loc[[30], "bill_amount_2"] = "  "  # blank: missing, not wrong
    current.loc[[31], "age"] = " 41 "  # padded number: fine
    current.loc[[40], "education"] = None  # missing categorical: fine
    current.loc[[41], "education"] = "postdoc"  # unseen level: tolerated
    current.loc[[42], schema.TARGET] = "true"
    path = tmp_path / "current.csv"
    current.to_csv(path, index=False)
    reference.to_parquet(tmp_path / "reference.parquet", index=False)

    result = compute_drift(tmp_path / "reference.parquet", path, tmp_path / "out", config=ANY_ROWS)
    assert result.current.invalid_rows == 5  # rows 3, 10, 11, 12, 20
    assert result.current.rows == 995
    assert dict(result.current.invalid_by_column) == {"age": 2, "bill_amount_2": 3, schema.TARGET: 1}
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["result"]["current"]["invalid_rows"] == 5

    clean = current.drop(index=[3, 10, 11, 12, 20])
    clean["age"] = pd.to_numeric(clean["age"])
    clean["bill_amount_2"] = pd.to_numeric(clean["bill_amount_2"].where(clean["bill_amount_2"] != "  "))
    clean[schema.TARGET] = clean[schema.TARGET].map(lambda v: schema.parse_target(v)).astype("int64")
    expected = drift_scores(reference, clean, ANY_ROWS)
    assert [(f.feature_name, f.drift_score, f.drift_detected) for f in result.features] == [
        (f.feature_name, f.drift_score, f.drift_detected) for f in expected.features
    ]
    assert result.feature("bill_amount_2").current_values == 994  # the blank cell is missing, not a row drop


def test_missing_columns_are_named() -> None:
    reference = generate(2_000, seed=1)
    current = generate(600, seed=2).drop(columns=["age", "sex"])
    with pytest.raises(DriftInputError, match=r"current: missing column\(s\) sex, age"):
        drift_scores(reference, current)


def test_a_column_without_values_is_skipped_not_fatal() -> None:
    reference, current = generate(2_000, seed=1), generate(800, seed=2)
    current["marriage"] = None
    result = drift_scores(reference, current, ANY_ROWS)
    assert result.skipped == {"marriage": "no values in current"}
    assert "marriage" not in [f.feature_name for f in result.features] and result.n_features == 23


def test_sustained_is_m_of_the_last_n_windows() -> None:
    assert sustained([True, True], 2, 3)
    assert not sustained([True, False, False, True], 2, 3)
    assert sustained([False, True, False, True], 2, 3)
    assert sustained([True, None, None, True], 2, 2)  # windows without a verdict are no window
    assert not sustained([], 1, 1)
    with pytest.raises(ValueError):
        sustained([True], 3, 2)


# ------------------------------------------------------------------------------- outputs and config


def test_log_records_have_the_scenarios_exact_shapes() -> None:
    reference = generate(3_000, seed=1)  # the artifact's reference sample has the target
    current = generate(1_000, seed=2, labelled=False, drift=STRONG_DRIFT)  # exported inference data has not
    overall, features = to_log_records(drift_scores(reference, current), "credit-card-default")

    assert list(overall) == ["model_name", "type", "data"] and list(features) == ["model_name", "type", "data"]
    assert overall["model_name"] == features["model_name"] == "credit-card-default"
    assert overall["type"] == "OverallDriftMetrics" and features["type"] == "FeatureDriftMetrics"
    data = overall["data"]
    assert list(data) == ["n_features", "n_drifted_features", "share_drifted_features", "dataset_drift"]
    assert data["n_features"] == 23 and type(data["n_drifted_features"]) is int
    assert data["share_drifted_features"] == data["n_drifted_features"] / 23
    assert type(data["dataset_drift"]) is bool and data["dataset_drift"] is True
    assert [f["feature_name"] for f in features["data"]] == list(schema.FEATURE_NAMES)
    for item in features["data"]:
        assert list(item) == ["feature_name", "drift_score", "drift_detected", "feature_type", "stattest_name"]
        assert type(item["drift_score"]) is float and type(item["drift_detected"]) is bool
        expected_type = "num" if item["feature_name"] in schema.NUMERIC else "cat"
        assert item["feature_type"] == expected_type
        assert item["stattest_name"] == (
            "Wasserstein distance (normed)" if expected_type == "num" else "Jensen-Shannon distance"
        )
    json.dumps([overall, features], allow_nan=False)

    with_target = drift_scores(reference, generate(1_000, seed=2), ANY_ROWS)
    assert with_target.n_features == 24 and with_target.features[-1].feature_name == schema.TARGET
    assert drift_scores(reference, generate(1_000, seed=2), DriftConfig(include_target=False)).n_features == 23


def test_config_overrides_are_honoured_and_checked() -> None:
    reference, current = generate(3_000, seed=1), generate(3_000, seed=2, drift=Drift(age_shift=1))
    base = drift_scores(reference, current, ANY_ROWS)
    age = base.feature("age")
    assert age.method == "wasserstein" and 0 < age.drift_score
    stricter = DriftConfig(min_current_rows=1, per_column_threshold={"age": age.drift_score / 2})
    assert drift_scores(reference, current, stricter).feature("age").drift_detected is True
    looser = DriftConfig(min_current_rows=1, per_column_threshold={"age": age.drift_score * 2}, num_threshold=1e-6)
    result = drift_scores(reference, current, looser)
    assert result.feature("age").drift_detected is False and result.feature("age").threshold == age.drift_score * 2
    assert result.feature("bill_amount_1").threshold == 1e-6 and result.feature("sex").threshold == 0.1
    ks = drift_scores(reference, current, DriftConfig(min_current_rows=1, per_column_method={"age": "ks"}))
    assert ks.feature("age").stattest_name == "K-S p_value" and ks.feature("age").threshold == 0.05

    with pytest.raises(DriftInputError, match="chisquare does not apply to num column age"):
        DriftConfig(per_column_method={"age": "chisquare"})
    with pytest.raises(DriftInputError, match="unknown method 'psi'"):
        DriftConfig(method="psi")
    with pytest.raises(DriftInputError, match="unknown column"):
        DriftConfig(per_column_threshold={"agee": 0.2})
    with pytest.raises(DriftInputError, match="ks does not apply to cat column sex"):
        drift_scores(reference, current, DriftConfig(method="ks"))
    with pytest.raises(DriftInputError, match="sustain"):
        DriftConfig(sustain_m=3, sustain_n=2)
    with pytest.raises(DriftInputError, match="report_max_rows must be above 1000"):
        DriftConfig(report_max_rows=1000)
    assert DriftConfig.from_dict({"drift_share": 0.25}).drift_share == 0.25


# ------------------------------------------------------------------------------ report and the job


def test_job_writes_result_and_an_evidently_html_report(tmp_path: Path) -> None:
    reference = generate(3_000, seed=1)
    parts = tmp_path / "current"
    parts.mkdir()
    for i in range(2):  # an exported window: a folder of files, with columns the schema does not know
        part = generate(1_500, seed=10 + i, labelled=False, drift=STRONG_DRIFT)
        part.insert(0, "request_id", [f"r{i}-{k}" for k in range(len(part))])
        (part.to_parquet if i == 0 else part.to_csv)(parts / f"part-{i}.{'parquet' if i == 0 else 'csv'}", index=False)
    reference.to_parquet(tmp_path / "reference.parquet", index=False)
    config = DriftConfig(report_max_rows=1_500, sustain_m=2, sustain_n=3)

    result = compute_drift(
        tmp_path / "reference.parquet", parts, tmp_path / "out", config=config, report=True, history=[False, True]
    )
    assert result.current.rows == 3_000 and result.n_features == 23 and result.dataset_drift is True
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["status"] == "ok" and written["sustained"] is True and written["report"] == "report.html"
    assert [r["type"] for r in written["records"]] == ["OverallDriftMetrics", "FeatureDriftMetrics"]
    assert written["records"] == json.loads(json.dumps(list(to_log_records(result, schema.MODEL_NAME))))
    html = (tmp_path / "out" / "report.html").read_text()
    assert html.lstrip().lower().startswith("<!doctype html") or html.lstrip().lower().startswith("<html")
    assert "</html>" in html.lower() and "credit_limit" in html


def test_report_samples_uniformly_above_max_rows(tmp_path: Path) -> None:
    rows = sample_rows(10_000, 1_000, seed=3)
    assert rows is not None and rows.size == 1_000 and np.all(np.diff(rows) > 0) and rows[-1] < 10_000
    assert sample_rows(999, 1_000, seed=3) is None
    assert 4_000 < rows.mean() < 6_000  # spread over the whole range, not the head


def test_drift_step_runs_compute_drift(tmp_path: Path) -> None:
    generate(2_000, seed=1).to_parquet(tmp_path / "reference.parquet", index=False)
    generate(600, seed=2, labelled=False).to_csv(tmp_path / "current.csv", index=False)
    done = subprocess.run(
        [sys.executable, "-m", "ml.steps.drift", "--reference", str(tmp_path / "reference.parquet"),
         "--current", str(tmp_path / "current.csv"), "--output", str(tmp_path / "out")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["type"] for r in records] == ["OverallDriftMetrics", "FeatureDriftMetrics"]
    assert json.loads((tmp_path / "out" / "result.json").read_text())["records"] == records


def test_importing_ml_drift_does_not_import_evidently_or_the_numeric_stack() -> None:
    code = (
        "import sys, ml.drift\n"
        "from ml.drift import DriftConfig, sustained, to_log_records\n"
        "heavy = [m for m in ('evidently', 'pandas', 'numpy', 'scipy', 'pyarrow') if m in sys.modules]\n"
        "from ml.drift import compute_drift, drift_scores\n"
        "print(heavy, 'evidently' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] False"


# ------------------------------------------------------------------- a window with unusable parts


def test_an_unusable_part_in_a_window_is_skipped_counted_and_the_rest_judged(tmp_path: Path) -> None:
    reference = generate(3_000, seed=1)
    reference.to_parquet(tmp_path / "reference.parquet", index=False)
    window = tmp_path / "window"
    window.mkdir()
    good = [generate(800, seed=10 + i, labelled=False, drift=STRONG_DRIFT) for i in range(2)]
    for i, part in enumerate(good):
        part.to_parquet(window / f"part-{i}.parquet", index=False)
    whole = (window / "part-0.parquet").read_bytes()
    (window / "part-2.parquet").write_bytes(whole[: len(whole) // 2])  # truncated mid-write: no footer
    generate(300, seed=30, labelled=False).drop(columns=["age"]).to_parquet(window / "part-3.parquet", index=False)

    result = compute_drift(tmp_path / "reference.parquet", window, tmp_path / "out", config=ANY_ROWS)

    assert result.status == "ok" and result.dataset_drift is True and result.current.rows == 1_600
    assert (result.current.quarantined_parts, result.current.quarantined_rows) == (2, 300)  # 300: part-3's footer
    assert set(result.current.quarantined) == {"part-2.parquet", "part-3.parquet"}
    assert "cannot be read" in result.current.quarantined["part-2.parquet"]
    assert "missing column(s) age" in result.current.quarantined["part-3.parquet"]
    expected = drift_scores(reference, pd.concat(good, ignore_index=True), ANY_ROWS)  # the readable parts only
    assert [f.feature_name for f in result.features] == [f.feature_name for f in expected.features]
    for ours, theirs in zip(result.features, expected.features):
        assert ours.drift_score == pytest.approx(theirs.drift_score, abs=1e-12)
        assert ours.drift_detected == theirs.drift_detected
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["result"]["current"]["quarantined_parts"] == 2
    assert sorted(written["result"]["current"]["quarantined"]) == ["part-2.parquet", "part-3.parquet"]
    with pytest.raises(DataError, match="cannot be read"):  # a file named on purpose must be readable
        compute_drift(tmp_path / "reference.parquet", window / "part-2.parquet", tmp_path / "out2")


def test_a_window_with_nothing_usable_is_insufficient_data_never_a_verdict(tmp_path: Path) -> None:
    generate(2_000, seed=1).to_parquet(tmp_path / "reference.parquet", index=False)
    window = tmp_path / "window"
    window.mkdir()
    (window / "part-0.parquet").write_bytes(b"PAR1 this is not parquet")
    (window / "part-1.parquet").write_bytes(b"PAR1")

    result = compute_drift(tmp_path / "reference.parquet", window, tmp_path / "out", report=True)

    assert result.status == "insufficient_data" and result.dataset_drift is None and result.features == ()
    assert result.current.rows == 0 and result.current.quarantined_parts == 2
    assert result.reason == "0 valid current rows (minimum 500); 2 unusable part(s) quarantined"
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert written["records"] == [] and written["dataset_drift"] is None and written["result"]["reason"]
    assert not (tmp_path / "out" / "report.html").exists()


def test_rows_without_a_single_comparable_value_are_insufficient_data_not_an_error() -> None:
    reference = generate(2_000, seed=1)
    current = pd.DataFrame({name: [None] * 600 for name in schema.FEATURE_NAMES})  # enough rows, nothing in them
    result = drift_scores(reference, current)
    assert result.status == "insufficient_data" and result.dataset_drift is None
    assert result.reason == "no column has values on both sides: nothing to compare"
    assert set(result.skipped.values()) == {"no values in current"}
    empty_reference = pd.DataFrame({name: [None] * 600 for name in schema.FEATURE_NAMES})
    with pytest.raises(DriftInputError, match="nothing to compare"):  # the reference's problem: an error still
        drift_scores(empty_reference, generate(600, seed=2), ANY_ROWS)


@pytest.mark.parametrize("settings, message", [
    ({"drift_share": "0.5"}, "drift_share must be a number, got '0.5'"),
    ({"min_current_rows": "10"}, "min_current_rows must be an integer"),
    ({"min_current_rows": True}, "min_current_rows must be an integer"),
    ({"sustain_n": "3", "sustain_m": 1}, "sustain_n must be an integer or null"),
    ({"per_column_method": ["age"]}, "per_column_method must be an object"),
    ({"per_column_threshold": {"age": "high"}}, "per_column_threshold must be an object of column → number"),
    ({"include_target": "no"}, "include_target must be true or false"),
])
def test_a_drift_config_of_the_wrong_shape_is_refused_naming_the_setting(settings, message):
    from ml.drift.config import DriftConfig, DriftInputError

    with pytest.raises(DriftInputError, match=message.replace("(", r"\(")):
        DriftConfig.from_dict(settings)
