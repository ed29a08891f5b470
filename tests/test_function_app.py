"""The Function App indexes cleanly with the azure-functions library and imports nothing heavy."""

from __future__ import annotations

import json
import subprocess
import sys

import azure.functions as func

from functions.settings import REPO_ROOT

HEAVY = ("azure.ai.ml", "evidently", "sklearn", "pandas", "scipy", "pyarrow", "numpy", "pydantic")

# name -> (trigger binding type, expected trigger binding JSON subset)
EXPECTED = {
    "health": ("httpTrigger", {"direction": "IN", "methods": ["GET"], "authLevel": "ANONYMOUS", "route": "health"}),
    "model_registered": ("eventGridTrigger", {"direction": "IN", "name": "event"}),
    "rollout_orchestrator": ("orchestrationTrigger", {"name": "context", "orchestration": "rollout_orchestrator"}),
    "rollout_activity": ("activityTrigger", {"name": "payload", "activity": "rollout_activity"}),
    "rollouts": ("httpTrigger", {"methods": ["GET"], "authLevel": "FUNCTION", "route": "rollouts"}),
    "rollout_detail": ("httpTrigger", {"methods": ["GET"], "authLevel": "FUNCTION",
                                       "route": "rollouts/{model}/{rollout_id}"}),
    "rollout_approval": ("httpTrigger", {"methods": ["POST"], "authLevel": "FUNCTION",
                                         "route": "rollouts/{rollout_id}/approval"}),
    "rollout_retry": ("httpTrigger", {"methods": ["POST"], "authLevel": "FUNCTION",
                                      "route": "rollouts/{model}/{version}/retry"}),
    "rollout_action": ("httpTrigger", {"methods": ["POST"], "authLevel": "FUNCTION",
                                       "route": "rollouts/{rollout_id}/actions/{action}"}),
    "model_undo": ("httpTrigger", {"methods": ["POST"], "authLevel": "FUNCTION", "route": "models/{model}/undo"}),
    "status": ("httpTrigger", {"methods": ["GET"], "authLevel": "FUNCTION", "route": "status"}),
    "undo_orchestrator": ("orchestrationTrigger", {"name": "context", "orchestration": "undo_orchestrator"}),
    "alert_webhook": ("httpTrigger", {"methods": ["POST"], "authLevel": "FUNCTION", "route": "alerts"}),
    "run_status_changed": ("eventGridTrigger", {"direction": "IN", "name": "event"}),
    "export_inference_logs": ("timerTrigger", {"schedule": "0 5 * * * *", "useMonitor": True}),
    "drift_check": ("timerTrigger", {"schedule": "0 30 2 * * *", "useMonitor": True}),
    "freezes": ("httpTrigger", {"methods": ["GET"], "authLevel": "FUNCTION", "route": "freezes"}),
    "freeze": ("httpTrigger", {"methods": ["POST"], "authLevel": "FUNCTION", "route": "freezes"}),
    "unfreeze": ("httpTrigger", {"methods": ["DELETE"], "authLevel": "FUNCTION", "route": "freezes"}),
    "release_freezes": ("timerTrigger", {"schedule": "0 */5 * * * *", "useMonitor": True}),
    "retention": ("timerTrigger", {"schedule": "0 15 3 * * *", "useMonitor": True}),
}
# functions that also take a Durable client binding
DURABLE_CLIENT = {"model_registered", "rollout_approval", "rollout_retry", "rollout_action", "model_undo", "unfreeze",
                  "release_freezes"}


def indexed() -> dict[str, list[dict]]:
    # get_functions() may be called once per app instance: index a fresh import.
    code = (
        "import json, function_app\n"
        "print(json.dumps({f.get_function_name(): [json.loads(b) for b in f.get_raw_bindings()]"
        " for f in function_app.app.get_functions()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_every_function_has_the_expected_name_trigger_and_bindings():
    functions = indexed()
    assert set(functions) == set(EXPECTED)
    for name, (trigger, subset) in EXPECTED.items():
        bindings = functions[name]
        triggers = [b for b in bindings if b["type"].endswith("Trigger")]
        assert len(triggers) == 1, bindings
        assert triggers[0]["type"] == trigger
        for key, value in subset.items():
            assert triggers[0][key] == value, (name, key)
        for binding in bindings:  # every binding is well-formed JSON the host understands
            assert {"direction", "type", "name"} <= binding.keys()
        clients = [b for b in bindings if b["type"] == "durableClient"]
        assert len(clients) == (1 if name in DURABLE_CLIENT else 0), name


def test_function_app_imports_no_heavy_module():
    code = "import sys, function_app; print(','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


def test_health_answers_json():
    from functions.triggers.http_health import health

    fn = health.build().get_user_function()
    response = fn(func.HttpRequest("GET", "/api/health", body=b""))
    assert response.status_code == 200
    body = json.loads(response.get_body())
    assert body["status"] == "ok" and body["platform"] in ("local", "azure")


def test_repository_holds_the_product_card_layout():
    for name in ("function_app.py", "functions", "ml", "host.json", "local.settings.json.template",
                 "requirements.txt", "tests", "README.md", "pyproject.toml", "Makefile", ".ci/run"):
        assert (REPO_ROOT / name).exists(), name
    host = json.loads((REPO_ROOT / "host.json").read_text())
    assert host["version"] == "2.0"
    template = json.loads((REPO_ROOT / "local.settings.json.template").read_text())
    assert template["Values"]["FUNCTIONS_WORKER_RUNTIME"] == "python"
    tracked = subprocess.run(["git", "ls-files", "local.settings.json"], cwd=REPO_ROOT, capture_output=True, text=True)
    assert tracked.stdout.strip() == ""


def test_every_app_setting_the_code_reads_is_documented_in_the_template():
    import re

    source = (REPO_ROOT / "functions" / "settings.py").read_text()
    names = set(re.findall(r'"((?:MODELOPS|AZURE)_[A-Z_]+)"', source))
    template = json.loads((REPO_ROOT / "local.settings.json.template").read_text())["Values"]
    readme = (REPO_ROOT / "README.md").read_text()
    assert names, "no settings found"
    missing_template = sorted(n for n in names if n not in template and n != "MODELOPS_STORAGE_CONNECTION_STRING")
    missing_readme = sorted(n for n in names if n not in readme)
    assert missing_template == [] and missing_readme == []
