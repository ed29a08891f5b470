"""Run the real `azmlinfsrv` bound to 127.0.0.1 instead of 0.0.0.0.

Executed by the serving environment's interpreter (it imports nothing from this repository):
    .venv-serve/bin/python loopback_azmlinfsrv.py --entry_script ml/score.py --port 5001
azmlinfsrv hard-codes its bind host; everything else (arguments, gunicorn, routes) is untouched.
"""

import azureml_inference_server_http.amlserver as amlserver

amlserver.DEFAULT_HOST = "127.0.0.1"

# Not PR_SET_PDEATHSIG: it fires when the *thread* that spawned the server exits, and deployments
# are provisioned from short-lived threads. The owner stops servers on close/exit instead.

if __name__ == "__main__":
    amlserver.run()
