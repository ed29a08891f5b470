"""The whole loop on the real local platform, as `make demo` runs it (smaller data): clean traffic →
no drift; drifted traffic → drift → alert → retraining job → v2 registered → rolled out under live
traffic with zero failed requests — and beside it the iris MLflow model of another contract, served,
exported and monitored all along, and never retrained (the alert was the other model's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from functions.cli.demo import run_demo
from functions.settings import Settings
from tests.conftest import SERVING_PYTHON, require_serving_env

pytestmark = pytest.mark.integration


def test_the_whole_loop(tmp_path):
    require_serving_env()
    lines: list[str] = []
    settings = Settings.from_env({"MODELOPS_HOME": str(tmp_path / "home"),
                                  "MODELOPS_SERVING_PYTHON": str(SERVING_PYTHON)})
    summary = run_demo(settings, tmp_path / "demo", rows=4_000, echo=lines.append)

    assert summary["v1"]["state"] == "succeeded"
    assert summary["drift"]["clean"]["status"] == "no_drift"
    assert summary["drift"]["drifted"]["status"] == "drift"
    assert summary["alert"]["status"] == 202 and summary["alert"]["body"]["action"] == "retrain"
    assert summary["job"]["status"] == "Completed" and summary["job"]["registered_version"] == "2"
    assert summary["v2"]["state"] == "succeeded", summary["v2"]
    assert summary["production_traffic"] == {"credit-card-default-v2": 100}
    # Zero failures at whatever rate the machine served (the demo prints it; no figure is asserted):
    # both versions answered live traffic, and v2 passed three canary windows, each judged on at
    # least min_requests of its own live requests.
    traffic = summary["traffic"]
    assert traffic["failed"] == 0 and traffic["requests"] > 0
    assert traffic["by_deployment"].get("credit-card-default-v1", 0) > 0
    assert traffic["by_deployment"].get("credit-card-default-v2", 0) > 0
    for report in summary["gate_reports"]:
        assert Path(report).is_file()
    drifted_report = Path(summary["home"]) / "store" / summary["drift"]["drifted"]["report_key"]
    assert drifted_report.read_text(errors="replace").lstrip().lower().startswith("<!doctype html")
    assert any("summary" in line for line in lines)
    iris = summary["iris"]
    assert iris["rollout"]["state"] == "succeeded" and iris["production"]["version"] == "1"
    assert iris["traffic"]["failed"] == 0 and iris["traffic"]["requests"] > 0
    assert iris["exported_rows"] > 0
    assert iris["drift"]["clean"]["status"] == iris["drift"]["drifted"]["status"] == "no_drift"
    assert iris["retrained"] == []
