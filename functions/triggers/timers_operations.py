"""Timers: expired freezes end and release their held version (every 5 minutes); retention (daily).

Both are idempotent (a retried or overlapping run changes nothing twice): a release hands the held
event to the normal hand-off, whose create-only claim lets one start; retention deletes only what
is past its age and referenced by nothing live.
"""

from __future__ import annotations

import logging

import azure.durable_functions as df
import azure.functions as func

from functions.shared.logs import log_event

bp = df.Blueprint()
logger = logging.getLogger("modelops.timers")


@bp.function_name("release_freezes")
@bp.timer_trigger(arg_name="timer", schedule="0 */5 * * * *", run_on_startup=False, use_monitor=True)
@bp.durable_client_input(client_name="client")
async def release_freezes(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    from functions.bootstrap import app

    for item in await app().release_due_freezes(client):
        log_event(logger, "freeze_release", model=item["model"], version=item["version"], outcome=item["outcome"],
                  past_due=timer.past_due)


@bp.function_name("retention")
@bp.timer_trigger(arg_name="timer", schedule="0 15 3 * * *", run_on_startup=False, use_monitor=True)
def retention(timer: func.TimerRequest) -> None:
    from functions.bootstrap import app

    done = app().apply_retention()
    log_event(logger, "retention_run", deleted=done["deleted"], kept_referenced=done["kept_referenced"],
              past_due=timer.past_due)
