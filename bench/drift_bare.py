"""Baseline for the drift benchmark: the same statistics, computed as plainly as numpy/scipy allow.

    python bench/drift_bare.py REFERENCE.parquet CURRENT.parquet OUT.json

Reads both files with pandas and, per column (types as Evidently infers them for this data: float →
numeric, anything else → categorical), drops missing values and computes what DataDriftPreset
computes for a reference of more than 1,000 rows: Wasserstein distance normed by the reference std
(threshold 0.1) for numeric columns with more than 5 distinct values, else Jensen-Shannon distance
on the frequencies over the union of values (threshold 0.1); dataset drift when at least half the
columns drift. No schema checks, no small-sample tests, no report. Self-contained: imports nothing
from the repository.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import pandas as pd
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance


def main(reference_path: str, current_path: str, out_path: str) -> None:
    started = time.perf_counter()
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    loaded = time.perf_counter()
    features = []
    for column in reference.columns:
        ref = reference[column].dropna()
        cur = current[column].dropna()
        numeric = ref.dtype.kind == "f"
        if numeric and pd.concat([ref, cur]).nunique() > 5:
            score = wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
            name = "Wasserstein distance (normed)"
        else:
            keys = pd.Index(ref.unique()).union(pd.Index(cur.unique()))
            p = ref.value_counts().reindex(keys, fill_value=0) / len(ref)
            q = cur.value_counts().reindex(keys, fill_value=0) / len(cur)
            score = jensenshannon(p.to_numpy(), q.to_numpy())
            name = "Jensen-Shannon distance"
        features.append(
            {
                "feature_name": column,
                "drift_score": float(score),
                "drift_detected": bool(score >= 0.1),
                "feature_type": "num" if numeric else "cat",
                "stattest_name": name,
            }
        )
    share = sum(f["drift_detected"] for f in features) / len(features)
    done = time.perf_counter()
    result = {
        "features": features,
        "dataset_drift": share >= 0.5,
        "seconds": {"load": loaded - started, "scores": done - loaded},
    }
    with open(out_path, "w") as handle:
        json.dump(result, handle)


if __name__ == "__main__":
    main(*sys.argv[1:4])
