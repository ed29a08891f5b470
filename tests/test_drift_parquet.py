"""The drift check reads Parquet without pandas (ml/drift/parquet.py, what the Function App runs): on
the same files it types every column exactly as the pandas reader (pyarrow's to_pandas, then
ml.drift.data.coerce) does — codes, levels, values, wrong-schema rows — and a Parquet window
is read with pandas blocked from importing."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions.settings import REPO_ROOT
from ml.drift.config import DriftInputError, DriftSchema
from ml.drift.data import _read_parquet, coerce, load
from ml.drift.parquet import read_parquet_typed

TEXT = st.one_of(st.none(), st.sampled_from(["a", " a", "b ", "", "  ", "c", "1", "nan"]))
NUMBER = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True, width=64),
                   st.integers(-5, 5).map(float))
LABEL = st.one_of(st.none(), st.sampled_from(["0", "1", "true", "False", "yes", " ", "2"]))


def same(typed, pandas_typed) -> None:
    assert typed.n_rows == pandas_typed.n_rows
    assert typed.invalid_rows == pandas_typed.invalid_rows
    assert typed.invalid_by_column == pandas_typed.invalid_by_column
    assert typed.numeric.keys() == pandas_typed.numeric.keys()
    for name, values in typed.numeric.items():
        np.testing.assert_array_equal(values, pandas_typed.numeric[name])
        assert values.dtype == np.float64
    assert typed.categorical.keys() == pandas_typed.categorical.keys()
    for name, cat in typed.categorical.items():
        other = pandas_typed.categorical[name]
        # the same value in every row (codes may number the levels differently only if levels do)
        mine = np.array(list(cat.levels) + [None], dtype=object)[cat.codes]
        theirs = np.array(list(other.levels) + [None], dtype=object)[other.codes]
        assert mine.tolist() == theirs.tolist(), name


def both(path: Path, columns: DriftSchema):
    return (read_parquet_typed(path, columns, source=str(path)),
            coerce(_read_parquet(path, columns), source=str(path), columns=columns))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(TEXT, NUMBER, st.one_of(st.none(), st.integers(-3, 3)), LABEL), max_size=25),
       row_group=st.integers(1, 7))
def test_parquet_columns_are_typed_as_the_pandas_reader_types_them(tmp_path, rows, row_group):
    cat, num, ints, label = (list(c) for c in zip(*rows)) if rows else ([], [], [], [])
    table = pa.table({"cat": pa.array(cat, pa.string()), "num": pa.array(num, pa.float64()),
                      "ints": pa.array(ints, pa.int64()), "y": pa.array(label, pa.string())})
    path = tmp_path / "part.parquet"
    pq.write_table(table, path, row_group_size=row_group)  # several row groups: several dictionaries
    for kind in ("binary", "cat", "num"):
        same(*both(path, DriftSchema(("cat",), ("num", "ints"), "y", kind)))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.one_of(st.none(), st.sampled_from([0.0, 1.0, 2.0, -1.0, math.inf, math.nan])), max_size=20))
def test_a_numeric_binary_target_is_read_as_the_pandas_reader_reads_it(tmp_path, values):
    path = tmp_path / "labels.parquet"
    pq.write_table(pa.table({"x": pa.array([1.0] * len(values)), "y": pa.array(values, pa.float64())}), path)
    same(*both(path, DriftSchema((), ("x",), "y", "binary")))


def test_booleans_integers_with_nulls_and_an_all_null_column(tmp_path):
    path = tmp_path / "kinds.parquet"
    pq.write_table(pa.table({"flag": pa.array([True, None, False]), "n": pa.array([1, None, 3], pa.int32()),
                             "empty": pa.array([None, None, None]), "label": pa.array([True, False, None])}), path)
    for kind in ("binary", "cat"):
        columns = DriftSchema(("empty",), ("flag", "n"), "label", kind)
        typed, pandas_typed = both(path, columns)
        same(typed, pandas_typed)
    assert typed.numeric["flag"][0] == 1.0 and np.isnan(typed.numeric["n"][1])


def test_a_numeric_column_of_another_arrow_type_is_refused_with_its_name(tmp_path):
    path = tmp_path / "stamps.parquet"
    pq.write_table(pa.table({"when": pa.array([1, 2], pa.timestamp("s"))}), path)
    with pytest.raises(DriftInputError, match=r"stamps.parquet: column when holds timestamp"):
        read_parquet_typed(path, DriftSchema((), ("when",)), source=str(path))


def test_a_missing_feature_is_named(tmp_path):
    path = tmp_path / "part.parquet"
    pq.write_table(pa.table({"a": ["x"]}), path)
    with pytest.raises(DriftInputError, match=r"missing column\(s\) b"):
        read_parquet_typed(path, DriftSchema(("a", "b"), ()), source=str(path))


def test_a_parquet_window_is_read_and_scored_with_pandas_blocked(tmp_path):
    """What the Function App does (no pandas installed): load a folder of exported parts and the
    reference, score them — and a truncated part is still skipped with its reason."""
    rng = np.random.default_rng(0)
    for name, shift in (("reference.parquet", 0.0), ("current/part-1.parquet", 2.0)):
        path = tmp_path / name
        path.parent.mkdir(exist_ok=True)
        pq.write_table(pa.table({"colour": rng.choice(["red", "blue"], 2000),
                                 "size": rng.normal(shift, 1.0, 2000)}), path)
    (tmp_path / "current" / "part-2.parquet").write_bytes(b"PAR1 truncated")
    code = f"""
import sys, json
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('pandas', 'evidently'):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NotInstalled())
from ml.drift import DriftConfig, DriftSchema
from ml.drift.data import load
from ml.drift.scores import drift_scores
columns = DriftSchema(('colour',), ('size',))
ref = load({str(tmp_path / 'reference.parquet')!r}, columns=columns)
cur = load({str(tmp_path / 'current')!r}, skip_unusable=True, columns=columns)
result = drift_scores(ref, cur, DriftConfig.from_dict({{}}, columns))
print(json.dumps([result.status, result.dataset_drift, sorted(cur.quarantined), 'pandas' in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == '["ok", true, ["part-2.parquet"], false]'


def test_load_reads_csv_through_pandas_still(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text("colour,size\nred,1.5\nblue,x\n")
    frame = load(path, columns=DriftSchema(("colour",), ("size",)))
    assert frame.n_rows == 1 and frame.invalid_by_column == {"size": 1}
