"""The drift statistics on numpy arrays, replicating Evidently 0.7.23 exactly.

Rules (files under evidently/legacy/calculations/ unless said otherwise):
- Missing values are dropped per column, on each side separately, before anything else; ±inf counts
  as missing (data_drift.py: get_one_column_drift). "Reference size" below is that column's count
  of non-missing reference values.
- Automatic test (stattests/registry.py: _get_default_stattest), n = distinct non-missing values of
  reference and current together:
    reference size <= 1000: numeric n > 5 → K-S p-value; otherwise (categorical, or numeric n <= 5)
                            chi-square p-value when n > 2, Z-test p-value when n <= 2
    reference size  > 1000: numeric n > 5 → Wasserstein distance normed by the reference std;
                            otherwise (categorical, or numeric n <= 5) Jensen-Shannon distance
- Jensen-Shannon (stattests/jensenshannon.py, stattests/utils.py: get_binned_data): frequencies
  count/size over the union of observed values; numeric columns whose reference has more than 20
  distinct values (only reachable by configuring the method) use Sturges bins over both sides;
  scipy.spatial.distance.jensenshannon with the natural log (base None).
- Wasserstein (stattests/wasserstein_distance_norm.py): scipy's W1 / max(population std of the
  reference, 0.001).
- K-S: scipy.stats.ks_2samp(reference, current) p-value. Chi-square: scipy.stats.chisquare with
  expected = reference counts * (current size / reference size). Z: two-proportion z-test of "not
  the smallest value", p = 2 * (1 - Φ(|z|)); p = 1 when both sides hold the same single value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ml.drift.config import METHODS, FeatureType

SMALL_REFERENCE = 1000  # reference sizes up to this use the p-value tests
LOW_CARDINALITY = 5  # numeric columns with at most this many distinct values are compared as categories
STURGES_ABOVE = 20  # get_binned_data: numeric reference with more distinct values → Sturges histogram


@dataclass(frozen=True)
class Score:
    method: str
    score: float
    threshold: float
    detected: bool


def _finish(method: str, score: float, threshold: float | None) -> Score:
    spec = METHODS[method]
    thr = spec.default_threshold if threshold is None else float(threshold)
    score = float(score)
    return Score(method, score, thr, spec.detected(score, thr))


def auto_method(kind: FeatureType, reference_size: int, n_values: int) -> str:
    if reference_size <= SMALL_REFERENCE:
        if kind == "num" and n_values > LOW_CARDINALITY:
            return "ks"
        return "chisquare" if n_values > 2 else "z"
    if kind == "num" and n_values > LOW_CARDINALITY:
        return "wasserstein"
    return "jensenshannon"


# ------------------------------------------------------------------------------------- numeric


def _distinct_sorted(a: np.ndarray) -> int:
    return 0 if a.size == 0 else 1 + int(np.count_nonzero(a[1:] != a[:-1]))


def _uniques_sorted(a: np.ndarray) -> np.ndarray:
    if a.size == 0:
        return a
    keep = np.empty(a.size, dtype=bool)
    keep[0] = True
    np.not_equal(a[1:], a[:-1], out=keep[1:])
    return a[keep]


def wasserstein_sorted(rs: np.ndarray, cs: np.ndarray) -> float:
    """W1 between two samples given sorted, in O(n) after the sorts.

    Same integral as scipy.stats.wasserstein_distance (sum over the merged sample of
    |F_ref - F_cur| * gap to the next value), without its argsorts, merge sort and binary searches:
    the merge is a searchsorted of the small side into the large one, and the CDFs are running
    counts. Inside a run of ties the gap is 0, so where a tie lands in the merge does not matter.
    """
    nr, nc = rs.size, cs.size
    n = nr + nc
    pos = np.searchsorted(cs, rs, side="right")
    pos += np.arange(nr)
    from_ref = np.zeros(n, dtype=bool)
    from_ref[pos] = True
    merged = np.empty(n, dtype=np.float64)
    merged[pos] = rs
    merged[~from_ref] = cs
    gaps = np.diff(merged)
    del merged
    ref_below = np.cumsum(from_ref[:-1], dtype=np.int64)  # reference values <= merged[i]
    del from_ref
    cur_below = np.arange(1, n, dtype=np.int64)
    cur_below -= ref_below
    diff = ref_below / nr
    diff -= cur_below / nc
    np.abs(diff, out=diff)
    return float(np.dot(diff, gaps))


def numeric_drift(reference: np.ndarray, current: np.ndarray, method: str | None, threshold: float | None) -> Score:
    """Drift of one numeric column; both arrays already without missing values (float64, finite)."""
    rs = np.sort(reference)
    cs = np.sort(current)
    if method is None:
        method = auto_method("num", reference.size, _union_distinct(rs, cs, cap=LOW_CARDINALITY))
    if method == "wasserstein":
        norm = max(float(np.std(reference)), 0.001)
        return _finish(method, wasserstein_sorted(rs, cs) / norm, threshold)
    if method == "ks":
        from scipy.stats import ks_2samp

        return _finish(method, ks_2samp(reference, current)[1], threshold)
    if method == "jensenshannon" and _distinct_sorted(rs) > STURGES_ABOVE:
        edges = np.histogram_bin_edges(np.concatenate([reference, current]), bins="sturges")
        p = np.histogram(reference, edges)[0] / reference.size
        q = np.histogram(current, edges)[0] / current.size
        return _finish(method, _jensenshannon(p, q), threshold)
    keys = np.union1d(_uniques_sorted(rs), _uniques_sorted(cs))
    ref_counts = np.searchsorted(rs, keys, side="right") - np.searchsorted(rs, keys, side="left")
    cur_counts = np.searchsorted(cs, keys, side="right") - np.searchsorted(cs, keys, side="left")
    return counts_drift(keys.tolist(), ref_counts, cur_counts, method, threshold)


def _union_distinct(rs: np.ndarray, cs: np.ndarray, cap: int) -> int:
    """Distinct values of both sorted samples together; exact up to ``cap``, else some number > cap."""
    dr, dc = _distinct_sorted(rs), _distinct_sorted(cs)
    if dr > cap or dc > cap:
        return max(dr, dc)
    return int(np.union1d(_uniques_sorted(rs), _uniques_sorted(cs)).size)


# ---------------------------------------------------------------------------------- categorical


def categorical_drift(
    reference_codes: np.ndarray,
    current_codes: np.ndarray,
    categories: Sequence[Any],
    method: str | None,
    threshold: float | None,
) -> Score:
    """Drift of one categorical column given integer codes into ``categories`` (missing removed)."""
    k = len(categories)
    ref_counts = np.bincount(reference_codes, minlength=k)
    cur_counts = np.bincount(current_codes, minlength=k)
    seen = np.flatnonzero(ref_counts + cur_counts)
    keys = [categories[i] for i in seen]
    return counts_drift(keys, ref_counts[seen], cur_counts[seen], method, threshold, kind="cat")


def counts_drift(
    keys: list[Any],
    ref_counts: np.ndarray,
    cur_counts: np.ndarray,
    method: str | None,
    threshold: float | None,
    kind: FeatureType = "num",
) -> Score:
    """The frequency-based tests on counts per observed value (union of both sides, no zeros in both)."""
    n_ref = int(ref_counts.sum())
    n_cur = int(cur_counts.sum())
    if method is None:
        method = auto_method(kind, n_ref, len(keys))
    if method == "jensenshannon":
        return _finish(method, _jensenshannon(ref_counts / n_ref, cur_counts / n_cur), threshold)
    if method == "chisquare":
        from scipy.stats import chisquare

        expected = ref_counts * (n_cur / n_ref)
        with np.errstate(divide="ignore", invalid="ignore"):
            p_value = chisquare(cur_counts, expected)[1]
        return _finish(method, p_value, threshold)
    if method == "z":
        return _finish(method, _z_test(keys, ref_counts, cur_counts), threshold)
    raise ValueError(f"{method} is not a test on frequencies")


def _jensenshannon(p: np.ndarray, q: np.ndarray) -> float:
    from scipy.spatial.distance import jensenshannon

    return float(jensenshannon(p, q))


def _z_test(keys: list[Any], ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """z_stattest.py, on counts: the proportion of values other than the smallest key."""
    from scipy.stats import norm

    ref_seen = np.flatnonzero(ref_counts)
    cur_seen = np.flatnonzero(cur_counts)
    if ref_seen.size == 1 and cur_seen.size == 1 and ref_seen[0] == cur_seen[0]:
        return 1.0
    first = keys.index(sorted(keys)[0])
    n1 = int(ref_counts.sum())
    n2 = int(cur_counts.sum())
    p1 = float(n1 - int(ref_counts[first])) / n1
    p2 = float(n2 - int(cur_counts[first])) / n2
    pooled = float(p1 * n1 + p2 * n2) / (n1 + n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1.0 / n1 + 1.0 / n2))
    return float(2 * (1 - norm.cdf(np.abs(z))))
