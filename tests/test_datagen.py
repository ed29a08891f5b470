"""The generator: deterministic, on-schema, with real (not perfect) signal and working drift knobs."""

from __future__ import annotations

import pandas as pd
import pytest

from ml import schema
from ml.datagen import STRONG_DRIFT, Drift, generate


def test_same_seed_same_data_and_different_seed_different_data():
    a = generate(2_000, seed=11)
    b = generate(2_000, seed=11)
    c = generate(2_000, seed=12)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(c)


def test_columns_types_and_domains_follow_the_schema():
    frame = generate(5_000, seed=3)
    assert list(frame.columns) == list(schema.COLUMNS)
    for feature in schema.CATEGORICAL_FEATURES:
        assert set(frame[feature.name].unique()) <= set(feature.domain), feature.name
    for name in schema.NUMERIC:
        assert pd.api.types.is_float_dtype(frame[name]), name
    assert set(frame[schema.TARGET].unique()) == {0, 1}
    # Realistic base rate (UCI: 22% default) and ranges on the scenario's money scale.
    assert 0.15 < frame[schema.TARGET].mean() < 0.30
    assert frame["age"].between(21, 79).all()
    assert frame["credit_limit"].between(500, 50_000).all()
    assert (frame["payment_amount_1"] >= 0).all()
    # Every level of the common categoricals occurs; delays of several months are rare but present.
    assert set(frame["sex"]) == set(schema.SEX)
    assert {"duly_paid", "no_delay", "delay_1_month", "delay_2_months"} <= set(frame["repayment_status_1"])


def test_unlabelled_has_no_target():
    frame = generate(100, seed=1, labelled=False)
    assert list(frame.columns) == list(schema.FEATURE_NAMES)


def test_random_forest_finds_real_but_imperfect_signal():
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import train_test_split

    from ml.training import build_pipeline

    frame = generate(30_000, seed=0)
    x, y = frame[list(schema.FEATURE_NAMES)], frame[schema.TARGET]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    pipeline = build_pipeline(seed=0)
    pipeline.set_params(model__n_estimators=100, model__min_samples_leaf=20, model__n_jobs=2)
    pipeline.fit(x_train, y_train)
    auc = roc_auc_score(y_test, pipeline.predict_proba(x_test)[:, 1])
    assert 0.72 <= auc < 0.9, auc


def test_drift_knobs_shift_the_population():
    base = generate(10_000, seed=5)
    drifted = generate(10_000, seed=5, drift=STRONG_DRIFT)
    assert drifted["credit_limit"].median() > 1.5 * base["credit_limit"].median()
    assert drifted["age"].mean() > base["age"].mean() + 6
    late = lambda f: (~f["repayment_status_1"].isin(["duly_paid", "no_delay"])).mean()  # noqa: E731
    assert late(drifted) > late(base) + 0.05
    only_age = generate(10_000, seed=5, drift=Drift(age_shift=5))
    # Older clients have somewhat higher limits, but an age shift alone must not look like a limit shift.
    assert only_age["credit_limit"].median() == pytest.approx(base["credit_limit"].median(), rel=0.1)


def test_rejects_non_positive_row_count():
    with pytest.raises(ValueError, match="n_rows"):
        generate(0)
