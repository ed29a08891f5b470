"""Timers: hourly inference-log export, daily drift check.

Both are safe to run twice (timer retries, overlapping instances): the export advances its
watermark by compare-and-swap after create-only writes; the drift check only adds a result.
Failures are logged and raised (the Functions host records the failed run; the next run retries).
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions.shared.logs import log_event

bp = func.Blueprint()
logger = logging.getLogger("modelops.timers")


@bp.function_name("export_inference_logs")
@bp.timer_trigger(arg_name="timer", schedule="0 5 * * * *", run_on_startup=False, use_monitor=True)
def export_inference_logs(timer: func.TimerRequest) -> None:
    from functions.bootstrap import app

    reports = app().export_logs()
    for model, report in reports.items():
        level = logging.ERROR if report.get("error") else logging.INFO
        log_event(logger, "export", level, model=model, rows=report["rows"], malformed=report["malformed"],
                  quarantined=report.get("quarantined", 0), files=len(report["files"]), high_water=report["high_water"], error=report.get("error", ""),
                  past_due=timer.past_due)
    failed = [m for m, r in reports.items() if r.get("error")]
    if failed:
        raise RuntimeError(f"export failed for {', '.join(failed)}; the watermark stays, the next run retries")


@bp.function_name("drift_check")
@bp.timer_trigger(arg_name="timer", schedule="0 30 2 * * *", run_on_startup=False, use_monitor=True)
def drift_check(timer: func.TimerRequest) -> None:
    from functions.bootstrap import app

    failed = []
    for item in app().check_drift():
        check = item["check"]
        level = logging.ERROR if item.get("error") else logging.INFO
        log_event(logger, "drift", level, model=check["model"], status=check["status"], version=check["version"],
                  dataset_drift=check["dataset_drift"], result=check["result_key"], report=check["report_key"],
                  error=item.get("error", ""), past_due=timer.past_due)
        if item.get("error"):
            failed.append(check["model"])
    if failed:  # after every model ran: the host records the failed run, the next run retries
        raise RuntimeError(f"drift check failed for {', '.join(failed)}")
