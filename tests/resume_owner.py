"""A TEST HARNESS standing in for `modelops up` (the host) in tests/test_resume_host.py: a process
that owns MODELOPS_HOME as a resuming owner — `build_app(settings, resume=True)`, opened — and
takes commands on stdin, one JSON object a line:

    {"register": "<artifact folder>", "name": "<model>"}   register a version (its rollout starts)
    {"approve": "<rollout id>"}                             raise the approval event
    {"hold_after": "<activity op>"}                         the next run of that op does its work, then
                                                            never returns (its result is never recorded):
                                                            a kill lands deterministically after it

It prints one JSON line when it owns the home ({"ready": true, "resumed": [...], "recovered": [...]})
and then runs until SIGTERM (exit 143, as the CLI) or SIGKILL. When `modelops up` serves the
routes, tests/test_resume_host.py `start_owner` starts that instead (and registers and approves
over HTTP); nothing else here is needed then.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    from functions.bootstrap import build_app
    from functions.settings import Settings
    from functions.shared.orchestration import ACTIVITY, APPROVAL_EVENT

    application = build_app(Settings.from_env(), resume=True)
    hold: set[str] = set()
    run = application.local.driver.activities[ACTIVITY]

    def held(payload):
        result = run(payload)
        if payload["op"] in hold:
            threading.Event().wait()  # done, never reported: as if the process died right after it
        return result

    application.local.driver.activities[ACTIVITY] = held
    with application:
        print(json.dumps({"ready": True, "resumed": application.resumed,
                          "recovered": [{"rollout_id": e.rollout_id, "state": e.state, "reason": e.reason}
                                        for e in application.recovered]}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if "register" in command:
                application.local.workspace.register(command["register"], command["name"])
            elif "hold_after" in command:
                hold.add(command["hold_after"])
            elif "approve" in command:
                application.local.driver.raise_event(command["approve"], APPROVAL_EVENT,
                                                     {"approved": True, "by": "test", "comment": "resume test"})
        while True:  # stdin closed: serve until a signal
            time.sleep(1)


if __name__ == "__main__":
    main()
