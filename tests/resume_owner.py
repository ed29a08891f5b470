"""`modelops up` for tests/test_resume_host.py, with one test hook: MODELOPS_TEST_HOLD_AFTER=<activity op>
makes the next run of that op do its work and then never return (its result is never recorded), so
a kill lands deterministically between an activity's effect and its record — a moment a real crash
hits only by chance. Everything else is the real command (`python -m functions.cli.main up …`)."""

from __future__ import annotations

import os
import sys
import threading


def main() -> None:
    hold = os.environ.get("MODELOPS_TEST_HOLD_AFTER", "")
    if hold:
        from functions.services import activities

        dispatch = activities.dispatch

        def held(ports, payload):
            result = dispatch(ports, payload)
            if payload["op"] == hold:
                threading.Event().wait()  # done, never reported: as if the process died right after it
            return result

        activities.dispatch = held  # bootstrap._wire_local looks it up when the host builds the App
    from functions.cli.main import main as modelops

    sys.argv = ["modelops", "up", *sys.argv[1:]]
    modelops()


if __name__ == "__main__":
    main()
