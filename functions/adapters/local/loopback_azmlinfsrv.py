"""Run the real `azmlinfsrv` bound to 127.0.0.1 instead of 0.0.0.0, tied to the process that owns it.

Executed by the serving environment's interpreter (it imports nothing from this repository):
    .venv-serve/bin/python loopback_azmlinfsrv.py --entry_script ml/score.py --port 5001
azmlinfsrv hard-codes its bind host; everything else (arguments, gunicorn, routes) is untouched.
azmlinfsrv runs gunicorn in this process, so this process is the gunicorn master.
"""

import os
import signal
import sys
import threading
import time

import azureml_inference_server_http.amlserver as amlserver

amlserver.DEFAULT_HOST = "127.0.0.1"

# Not PR_SET_PDEATHSIG: it fires when the *thread* that spawned the server exits, and deployments
# are provisioned from short-lived threads. The owner stops servers on close/exit instead, and the
# watchdog below covers an owner that cannot (kill -9, a crash): the server runs in its own session
# (start_new_session), so nothing else would ever stop it.

OWNER_PID_ENV = "MODELOPS_SERVER_OWNER_PID"  # set by InferenceServer: the pid that started us
POLL_SECONDS = 0.5
GRACE_SECONDS = 5.0  # after SIGTERM, before SIGKILL: gunicorn stops its workers gracefully first


def owner_pid() -> int:
    """The owner's pid as the owner said it: reading os.getppid() here instead would miss an owner
    that died before this line ran (we would already be reparented)."""
    try:
        return int(os.environ[OWNER_PID_ENV])
    except (KeyError, ValueError):
        return os.getppid()  # run by hand: whoever started us


def signal_server(sig: int) -> None:
    """``sig`` to the whole server: our process group (gunicorn's workers are in it) when we lead
    it, as under InferenceServer; run by hand inside another group, only ourselves (the master then
    stops its workers, and a worker exits when its master is gone)."""
    if os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), sig)
    else:
        os.kill(os.getpid(), sig)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def owner_gone(owner: int, parent: int) -> bool:
    # Reparented: our parent died (a live parent never changes our ppid). Normally the parent is
    # the owner. When it is not, either something sits between us (a serving "python" that is a
    # wrapper script without exec) or the owner died before we started and we were reparented
    # already: then the owner's own liveness decides.
    return os.getppid() != parent or (parent != owner and not alive(owner))


def watch_owner(owner: int, parent: int, master: int) -> None:
    while True:
        # A thread does not survive fork, so gunicorn's workers never run this loop; the check makes
        # sure a copy in a forked child could not act for the master either.
        if os.getpid() != master:
            return
        if owner_gone(owner, parent):
            break
        time.sleep(POLL_SECONDS)
    print(f"modelops: owner process {owner} is gone; stopping this inference server (pid {master})",
          file=sys.stderr, flush=True)
    signal_server(signal.SIGTERM)
    time.sleep(GRACE_SECONDS)
    signal_server(signal.SIGKILL)  # reached only if the graceful stop did not end this process


def start_watchdog() -> threading.Thread:
    # Before gunicorn starts (and forks workers): the thread lives in the master only.
    thread = threading.Thread(target=watch_owner, args=(owner_pid(), os.getppid(), os.getpid()),
                              name="owner-watchdog", daemon=True)
    thread.start()
    return thread


if __name__ == "__main__":
    start_watchdog()
    amlserver.run()
