"""The Function App's drift check runs without Evidently (and without pandas): requirements.txt
installs neither. Its verdict, records and result.json are the same; the HTML report is then
rendered on demand from what result.json names (the window's parts, the reference's version) by
`render_stored_report` / `modelops drift-report`, where Evidently is installed, and stored beside it."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from functions.adapters.local.store import DirectoryStore
from functions.services.monitoring import render_stored_report, run_drift_check
from tests.test_cli_input import assert_one_line_error, run
from tests.export_helpers import T0
from tests.model_contracts import IRIS_MODEL
from tests.test_export_contracts import exported_iris_hour

REPO_ROOT = Path(__file__).resolve().parent.parent
BLOCK = """
import sys
class NotInstalled:  # what requirements.txt does not install: importing it raises ImportError
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('evidently', 'pandas', 'sklearn', 'typer'):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, NotInstalled())
"""


@pytest.fixture(name="window")
def window_fixture(tmp_path):
    """An exported, shifted hour of the iris model and its production state in a store."""
    store, reference, report = exported_iris_hour(tmp_path, 600, seed=12, shift=1.0)
    assert (report.error, report.rows) == ("", 600)
    return store, reference


def in_function_check(tmp_path: Path, store_dir: Path, reference: Path) -> dict:
    code = BLOCK + f"""
import json
from datetime import datetime, timedelta
from functions.adapters.local.store import DirectoryStore
from functions.services.monitoring import run_drift_check
check = run_drift_check({IRIS_MODEL!r}, DirectoryStore({str(store_dir)!r}), lambda m, v, tmp: {str(reference)!r},
                        now=datetime.fromisoformat({(T0 + timedelta(hours=1)).isoformat()!r}),
                        window=timedelta(hours=1), config={{"min_current_rows": 100}}, report=True)
print(json.dumps({{"check": check.to_dict(), "loaded": sorted(m for m in ('evidently', 'pandas', 'sklearn')
                                                           if sys.modules.get(m) is not None)}}))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_in_function_check_needs_no_evidently_and_says_how_to_get_the_report(window, tmp_path):
    store, reference = window
    done = in_function_check(tmp_path, store.root, reference)
    check = done["check"]
    assert done["loaded"] == []
    assert check["status"] == "drift" and check["rows"] == 600 and check["report_key"] == ""
    result = json.loads(store.get(check["result_key"])[0])
    stamp = check["result_key"].split("/")[3]
    assert result["report"] is None
    assert result["report_on_demand"] == f"modelops drift-report {IRIS_MODEL} --at {stamp}"
    assert result["window"]["version"] == "1"
    assert result["window"]["parts"] == sorted(k for k in store.list(f"exports/{IRIS_MODEL}/1/")
                                               if k.endswith(".parquet"))
    # the same verdict and records as the check with Evidently at hand
    here = run_drift_check(IRIS_MODEL, store, lambda m, v, tmp: reference, now=T0 + timedelta(hours=1),
                           window=timedelta(hours=1), config={"min_current_rows": 100}, report=False)
    assert [r["data"] for r in here.records] == [r["data"] for r in check["records"]]


def test_the_report_is_rendered_on_demand_from_the_stored_result_and_stored_beside_it(window, tmp_path):
    store, reference = window
    check = in_function_check(tmp_path, tmp_path / "store", reference)["check"]
    answer = render_stored_report(IRIS_MODEL, store, lambda m, v, tmp: reference, output=tmp_path / "r.html")
    report_key = check["result_key"].rsplit("/", 1)[0] + "/report.html"
    assert answer["result_key"] == check["result_key"] and answer["report_key"] == report_key
    assert answer["missing_parts"] == [] and answer["parts"] >= 1
    html = store.get(report_key)[0]
    assert html.lstrip().lower().startswith(b"<!doctype html") and b"</html>" in html.lower()
    assert (tmp_path / "r.html").read_bytes() == html
    assert b"petal colour" in html and b"credit_limit" not in html  # the contract's columns
    render_stored_report(IRIS_MODEL, store, lambda m, v, tmp: reference)  # again: the stored one is kept
    assert store.get(report_key)[0] == html


def test_a_result_without_its_window_or_verdict_is_refused_with_the_reason(tmp_path):
    store = DirectoryStore(tmp_path / "store")
    with pytest.raises(ValueError, match="no stored drift result for iris"):
        render_stored_report(IRIS_MODEL, store, lambda m, v, tmp: tmp)
    store.put(f"drift/{IRIS_MODEL}/1/20260509T080000Z/result.json", json.dumps({"status": "ok"}).encode())
    with pytest.raises(ValueError, match="names no window parts"):
        render_stored_report(IRIS_MODEL, store, lambda m, v, tmp: tmp, "20260509T080000Z")


def test_the_command_fails_in_one_line_when_nothing_is_stored(tmp_path):
    out = run(tmp_path / "home", "drift-report", IRIS_MODEL)
    assert_one_line_error(out, 1, f"no stored drift result for {IRIS_MODEL}")
