"""infra/ and azure.yaml (`azd up`), checked without the Bicep compiler (README "Deploy to Azure").

- every .bicep file parses (tree-sitter-bicep; pycep-parser for the structure);
- contract tests over the parsed templates: the functions the post-deploy layer points at are the
  ones function_app registers, the app settings are the ones functions/settings.py reads, the event
  types, schema and delivery, the alert query is the README's, each role assignment holds the role
  (by its real built-in id) its comment justifies;
- checkov's Bicep policies with zero parsing errors and no failed check (a skipped one names why),
  run from the tools venv (.venv-tools: its pins clash with the control plane's; `make test` builds it).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from functions.domain.alerts import RUN_STATUS_CHANGED
from functions.settings import REPO_ROOT
from functions.shared.eventgrid import MODEL_REGISTERED
from tests import bicep_templates as bt

API = bt.INFRA / "app" / "api.bicep"
RESOURCES = bt.INFRA / "app" / "resources.bicep"
EVENT_SUBSCRIPTIONS = bt.INFRA / "post-deploy" / "event-subscriptions.bicep"
SYSTEM_TOPIC = bt.INFRA / "post-deploy" / "system-topic.bicep"

# Built-in role definition ids (Microsoft Learn "Azure built-in roles"; the storage and monitoring ones
# are also those of the Azure-Samples Functions azd templates' rbac.bicep).
BUILTIN_ROLES = {
    "AzureML Data Scientist": "f6c7c914-8db3-469d-8ca1-694a8f32e121",
    "AzureML Registry User": "1823dd4f-9b8c-4ab6-ab4e-7397a3684615",
    "Log Analytics Reader": "73c42c96-874c-492b-b04d-ab87d138a893",
    "Monitoring Contributor": "749f88d5-cbae-40b8-bcfc-e573ddc772fa",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Blob Data Contributor": "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
    "Storage Queue Data Contributor": "974c5e8b-45b9-4653-ba55-5f855dd0fb88",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
}

# What settings.py reads that the Azure deployment deliberately does not set
NOT_SET_IN_AZURE = {
    "MODELOPS_HOME": "the local platform's state folder (MODELOPS_PLATFORM=azure)",
    "MODELOPS_SERVING_PYTHON": "the local platform's scoring interpreter",
    "MODELOPS_STORAGE_CONNECTION_STRING": "a secret: the app uses MODELOPS_STORAGE_ACCOUNT_URL and its identity",
    "AzureWebJobsStorage": "a connection string: the host uses the identity-based AzureWebJobsStorage__* settings",
}
# Flex Consumption rejects or manages these itself; setting them breaks the app
FORBIDDEN_ON_FLEX = {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
                     "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING", "WEBSITE_CONTENTSHARE"}


def readme_drift_query() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = re.findall(r"```kusto\n(.*?)```", readme, re.S)
    drift = [b for b in blocks if "OverallDriftMetrics" in b]
    assert len(drift) == 1, "the README has one drift alert query"
    return drift[0]


def registered_functions() -> dict[str, list[dict]]:
    """function_app's functions and their bindings; get_functions() may be called once per app
    instance, so a fresh process indexes it."""
    code = ("import json, function_app\n"
            "print(json.dumps({f.get_function_name(): [json.loads(b) for b in f.get_raw_bindings()]"
            " for f in function_app.app.get_functions()}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def settings_read() -> set[str]:
    """Every app setting functions/settings.py reads (the string literals it looks names up by)."""
    source = (REPO_ROOT / "functions" / "settings.py").read_text()
    names = set(re.findall(r'"((?:MODELOPS|AZURE)_[A-Z_]+|AzureWebJobsStorage)"', source))
    assert {"MODELOPS_PLATFORM", "MODELOPS_CONFIG_REFRESH_SECONDS", "AZURE_SUBSCRIPTION_ID"} <= names
    return names


def modelops_settings() -> dict[str, object]:
    return bt.body(bt.modules(bt.MAIN)["api"])["params"]["modelopsSettings"]


def host_settings() -> dict[str, object]:
    return bt.variable(API, "hostSettings")


# --- syntax ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", bt.bicep_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_bicep_file_parses(path):
    assert bt.syntax_errors(path.read_bytes()) == []
    assert bt.parsed(path)  # pycep-parser too (checkov parses with it: see the checkov test)


def test_the_syntax_check_finds_errors():
    source = bt.MAIN.read_bytes()
    broken = source.replace(b"targetScope = 'subscription'", b"targetScope = = 'subscription'", 1)
    assert broken != source
    assert bt.syntax_errors(broken)
    assert bt.syntax_errors(source[: len(source) // 2])  # a truncated file


def test_no_registry_modules_and_every_local_module_exists():
    for path in bt.bicep_files():
        text = path.read_text()
        assert not re.search(r"""\bmodule\s+\w+\s+'br[:/]""", text), f"{path}: registry module (needs a registry to compile)"
        for name, module in bt.modules(path).items():
            assert module["type"] == "local", (path, name)
            assert (path.parent / module["detail"]["path"]).is_file(), (path, name)


@pytest.mark.parametrize("path", bt.bicep_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_unused_parameters_or_variables(path):
    """What `bicep lint` (no-unused-params, no-unused-vars) would say, here already."""
    code = bt.code_without_comments(path.read_text())
    parsed = bt.parsed(path)
    for kind in ("parameters", "variables"):
        for name in parsed.get(kind, {}):
            uses = len(re.findall(rf"(?<![\w.']){re.escape(name)}\b", code)) - 1  # minus the declaration
            assert uses > 0, f"{path.name}: {kind[:-1]} {name} is never used"


def test_every_module_call_passes_declared_parameters_and_reads_declared_outputs():
    """What the compiler checks of a module call (unknown or missing parameters, unknown outputs)."""
    for path in bt.bicep_files():
        code = bt.code_without_comments(path.read_text())
        for name, module in bt.modules(path).items():
            target = path.parent / module["detail"]["path"]
            declared = bt.parameters(target)
            passed = set(bt.body(module).get("params", {}))
            assert passed <= set(declared), f"{path.name} → {target.name}: unknown {passed - set(declared)}"
            required = {n for n, p in declared.items() if p["default"] is None}
            assert required <= passed, f"{path.name} → {target.name}: missing {required - passed}"
            outputs = set(bt.parsed(target).get("outputs", {}))
            read = set(re.findall(rf"\b{name}\.outputs\.(\w+)", code))
            assert read <= outputs, f"{path.name} reads {read - outputs} from {target.name}"


# --- azd conventions -----------------------------------------------------------------------------------

def test_main_is_subscription_scoped_with_the_azd_parameters():
    assert bt.parsed(bt.MAIN)["globals"]["scope"]["value"] == "subscription"
    params = bt.parameters(bt.MAIN)
    assert params["location"]["decorators"][-1] == {"type": "metadata", "argument": {"azd": {"type": "location"}}}
    token = bt.functions_called(bt.variable(bt.MAIN, "resourceToken"), "unique_string")
    assert token and token[0]["extra_string_1"] == "environmentName" and token[0]["extra_string_2"] == "location"

    file = json.loads((bt.INFRA / "main.parameters.json").read_text())["parameters"]
    assert file["environmentName"]["value"] == "${AZURE_ENV_NAME}"
    assert file["location"]["value"] == "${AZURE_LOCATION}"
    assert file["principalId"]["value"] == "${AZURE_PRINCIPAL_ID}"
    assert set(file) <= set(params), set(file) - set(params)
    required = {name for name, p in params.items() if p["default"] is None}
    assert required <= set(file), f"required parameters azd would not fill: {required - set(file)}"


def test_azure_yaml_deploys_this_folder_to_the_tagged_function_app():
    spec = yaml.safe_load((REPO_ROOT / "azure.yaml").read_text())
    assert spec["services"] == {"api": {"project": ".", "language": "python", "host": "function"}}
    site = bt.resources(API, "Microsoft.Web/sites")["site"]
    tags = bt.body(site)["tags"]
    assert tags["function"]["type"] == "union"
    assert tags["function"]["parameters"]["arg_2"] == {"'azd-service-name'": "api"}  # pycep keeps the quotes
    hook = spec["hooks"]["postdeploy"]["posix"]
    script = REPO_ROOT / hook["run"]
    assert script.is_file() and os.access(script, os.X_OK) and hook["continueOnError"] is False


# --- the Function App --------------------------------------------------------------------------------

def test_flex_consumption_python_311_with_blob_deployment_storage_and_the_user_identity():
    plan = bt.body(bt.resources(API, "Microsoft.Web/serverfarms")["plan"])
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"} and plan["properties"]["reserved"] is True
    site = bt.body(bt.resources(API, "Microsoft.Web/sites")["site"])
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    props = site["properties"]
    assert props["httpsOnly"] is True
    config = props["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    assert storage["value"] == "${storage.properties.primaryEndpoints.blob}${deploymentContainerName}"


def test_host_storage_is_identity_based_for_blob_queue_and_table():
    host = host_settings()
    assert host["AzureWebJobsStorage__credential"] == "managedidentity"
    assert host["AzureWebJobsStorage__clientId"] == "identityClientId"
    for service in ("blob", "queue", "table"):  # Durable Functions needs all three
        assert host[f"AzureWebJobsStorage__{service}ServiceUri"]
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in host
    assert host["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identityClientId};Authorization=AAD"
    app_insights = bt.body(bt.resources(RESOURCES, "Microsoft.Insights/components")["applicationInsights"])
    assert app_insights["properties"]["DisableLocalAuth"] is True  # hence the AAD authentication string
    assert "WorkspaceResourceId" in app_insights["properties"]


def test_the_app_settings_are_the_ones_settings_py_reads():
    set_here = set(modelops_settings()) | set(host_settings())
    read = settings_read()
    missing = read - set(NOT_SET_IN_AZURE) - set_here
    assert not missing, f"settings.py reads these, the template does not set them: {sorted(missing)}"
    unread = {n for n in set(modelops_settings()) if n.startswith("MODELOPS_")} - read - {"MODELOPS_TASK_HUB"}
    assert not unread, f"the template sets these, settings.py does not read them: {sorted(unread)}"
    assert not (set(NOT_SET_IN_AZURE) & set_here)
    assert not (FORBIDDEN_ON_FLEX & set_here)
    # host.json's %NAME% references are app settings too
    host_json = (REPO_ROOT / "host.json").read_text()
    assert set(re.findall(r"%([A-Za-z0-9_]+)%", host_json)) <= set_here
    assert "AZURE_CLIENT_ID" in set_here  # DefaultAzureCredential picks the user-assigned identity by it


def test_the_azure_settings_have_usable_values():
    values = modelops_settings()
    assert values["MODELOPS_PLATFORM"] == "azure"
    assert values["MODELOPS_EXPORT_FORMATS"] == "exportFormats"
    assert bt.parameters(bt.MAIN)["exportFormats"]["default"] == "parquet"  # "" would be refused
    assert values["MODELOPS_STORAGE_CONTAINER"] == "stateContainerName"
    assert bt.variable(bt.MAIN, "stateContainerName") == "modelops"
    assert values["MODELOPS_CONFIG_REFRESH_SECONDS"] == "configRefreshSeconds"
    assert bt.parameters(bt.MAIN)["configRefreshSeconds"]["default"] == "60"
    # the query API takes the workspace GUID (customerId), not its resource id
    la = values["MODELOPS_LOG_ANALYTICS_WORKSPACE_ID"]["operator"]["operands"]
    assert la["operand_1"] == "endpointsLogAnalytics"
    # the Settings defaults hold for what the template passes on as given
    from functions.settings import Settings

    defaults = Settings()
    params = bt.parameters(bt.MAIN)
    assert float(params["retrainCooldownHours"]["default"]) == defaults.retrain_cooldown_hours
    assert float(params["exportLagMinutes"]["default"]) == defaults.export_lag_minutes
    assert int(params["driftJobRows"]["default"]) == defaults.drift_job_rows
    assert int(values["MODELOPS_ALERT_MAX_BYTES"]) == defaults.alert_max_bytes


# --- role assignments ------------------------------------------------------------------------------

def roles_assigned(path: Path) -> dict[str, str]:
    """Symbolic name of each role assignment → the GUID (or role id parameter) it assigns."""
    ids = bt.role_definition_ids(path)
    return {name: ids.get(bt.assigned_role(r), bt.assigned_role(r))
            for name, r in bt.resources(path, "Microsoft.Authorization/roleAssignments").items()}


def test_every_role_assignment_is_a_service_principal_assignment_with_a_deterministic_name():
    for path in bt.bicep_files():
        for name, resource in bt.resources(path, "Microsoft.Authorization/roleAssignments").items():
            config = bt.body(resource)
            assert bt.functions_called(config["name"], "guid"), (path, name)
            assert "scope" in config, (path, name)
            if name not in ("userStateContributor",):
                assert config["properties"]["principalType"] == "ServicePrincipal", (path, name)


def test_the_identity_holds_each_role_it_needs_and_no_other():
    app = roles_assigned(bt.INFRA / "app" / "rbac-app.bicep")
    assert app == {
        "blobOwner": BUILTIN_ROLES["Storage Blob Data Owner"],
        "queueContributor": BUILTIN_ROLES["Storage Queue Data Contributor"],
        "tableContributor": BUILTIN_ROLES["Storage Table Data Contributor"],
        "telemetryPublisher": BUILTIN_ROLES["Monitoring Metrics Publisher"],
        "userStateContributor": BUILTIN_ROLES["Storage Blob Data Contributor"],
        "driftComputeStateContributor": BUILTIN_ROLES["Storage Blob Data Contributor"],
    }
    # the person's and the drift compute's assignments are on the state container, not the account
    rbac_app = bt.resources(bt.INFRA / "app" / "rbac-app.bicep")
    for name in ("userStateContributor", "driftComputeStateContributor"):
        assert "stateContainer" in json.dumps(bt.body(rbac_app[name])["scope"])
    assert roles_assigned(bt.INFRA / "app" / "rbac-workspace.bicep") == {
        "dataScientist": BUILTIN_ROLES["AzureML Data Scientist"],
        "diagnosticSettingsWriter": "diagnosticSettingsRoleId",
    }
    assert roles_assigned(bt.INFRA / "app" / "rbac-registry.bicep") == {
        "registryUser": BUILTIN_ROLES["AzureML Registry User"]}
    assert roles_assigned(bt.INFRA / "app" / "rbac-log-analytics.bicep") == {
        "reader": BUILTIN_ROLES["Log Analytics Reader"],
        "diagnosticDestination": "diagnosticDestinationRoleId",
    }
    assert roles_assigned(bt.POST_DEPLOY) == {"deadLetterWriter": BUILTIN_ROLES["Storage Blob Data Contributor"]}


def test_each_workspace_registry_and_log_analytics_gets_its_assignments():
    mods = bt.modules(bt.MAIN)
    staging, production = bt.body(mods["stagingWorkspaceRbac"]), bt.body(mods["productionWorkspaceRbac"])
    assert staging["params"]["workspaceName"] == "stagingWorkspaceName"
    assert staging["params"]["diagnosticSettingsRoleId"] == ""  # staging endpoints: no diagnostic settings
    assert production["params"]["workspaceName"] == "productionWorkspaceName"
    assert bt.body(mods["registryRbac"])["params"]["registryName"] == "registryName"
    assert bt.body(mods["logAnalyticsRbac"])["params"]["workspaceName"] == "logAnalyticsWorkspaceName"
    # writing endpoint diagnostic settings: the custom role, or Monitoring Contributor ('builtin')
    assert bt.variable(bt.MAIN, "monitoringContributorRoleId") == BUILTIN_ROLES["Monitoring Contributor"]
    for module, role in ((production, "endpointDiagnosticSettingsRoleId"),
                         (bt.body(mods["logAnalyticsRbac"]), "logAnalyticsDestinationRoleId")):
        key = "diagnosticSettingsRoleId" if "diagnosticSettingsRoleId" in module["params"] else "diagnosticDestinationRoleId"
        choice = module["params"][key]["operator"]
        assert choice["type"] == "conditional", choice
        assert choice["operands"]["true_value"] == role
        assert choice["operands"]["false_value"] == "monitoringContributorRoleId"
        assert module["dependsOn"] == ["diagnosticRoles"]  # the custom role exists before it is assigned


def test_the_custom_diagnostic_roles_hold_only_what_a_diagnostic_setting_needs():
    roles = bt.resources(bt.INFRA / "app" / "diagnostic-roles.bicep", "Microsoft.Authorization/roleDefinitions")
    actions = {name: bt.body(r)["properties"]["permissions"][0]["actions"] for name, r in roles.items()}
    assert actions == {
        "endpointDiagnosticSettings": ["Microsoft.Insights/diagnosticSettings/read",
                                       "Microsoft.Insights/diagnosticSettings/write"],
        # ARM's linked-authorization check on the destination workspace
        "logAnalyticsDestination": ["Microsoft.OperationalInsights/workspaces/read",
                                    "Microsoft.OperationalInsights/workspaces/sharedKeys/action"],
    }
    for r in roles.values():
        assert bt.body(r)["properties"]["type"] == "CustomRole"
        assert len(bt.body(r)["properties"]["assignableScopes"]) == 1  # one resource group each


# --- the post-deploy layer -------------------------------------------------------------------------

def event_subscriptions() -> dict[str, dict]:
    """function name → subscription item passed to event-subscriptions.bicep."""
    items = bt.body(bt.modules(bt.POST_DEPLOY)["eventSubscriptions"])["params"]["subscriptions"]
    names = {bt.variable(bt.POST_DEPLOY, "modelRegisteredFunction"): None,
             bt.variable(bt.POST_DEPLOY, "runStatusChangedFunction"): None}
    variables = {"modelRegisteredFunction": "model_registered", "runStatusChangedFunction": "run_status_changed"}
    assert set(variables.values()) == set(names)
    return {variables[item["functionName"]]: item for item in items}


def test_event_grid_subscriptions_point_at_the_registered_event_grid_triggers():
    functions = registered_functions()
    event_grid_triggers = {name for name, bindings in functions.items()
                           if any(b["type"] == "eventGridTrigger" for b in bindings)}
    subscriptions = event_subscriptions()
    assert set(subscriptions) == event_grid_triggers == {"model_registered", "run_status_changed"}
    assert subscriptions["model_registered"]["eventTypes"] == [MODEL_REGISTERED]
    assert subscriptions["run_status_changed"]["eventTypes"] == [RUN_STATUS_CHANGED]


def test_event_delivery_azure_function_endpoint_event_grid_schema_retries_and_dead_letters():
    subscription = bt.body(bt.resources(EVENT_SUBSCRIPTIONS)["eventSubscription"])["properties"]
    assert subscription["destination"]["endpointType"] == "AzureFunction"
    assert subscription["destination"]["properties"]["resourceId"] == "${functionAppId}/functions/${s.functionName}"
    assert subscription["destination"]["properties"]["maxEventsPerBatch"] == 1
    assert subscription["eventDeliverySchema"] == "EventGridSchema"
    # the triggers' payloads are in that schema
    for payload in ("eventgrid-aml-modelregistered.egschema.json", "eventgrid-aml-runstatuschanged.egschema.json"):
        events = json.loads((REPO_ROOT / "tests" / "payloads" / payload).read_text())
        event = events[0] if isinstance(events, list) else events
        assert {"eventType", "subject", "data", "dataVersion", "eventTime"} <= set(event)
    assert set(subscription["retryPolicy"]) == {"maxDeliveryAttempts", "eventTimeToLiveInMinutes"}
    dead_letter = subscription["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"]["endpointType"] == "StorageBlob"
    topic = bt.body(bt.resources(SYSTEM_TOPIC)["topic"])
    assert topic["identity"] == {"type": "SystemAssigned"}
    assert topic["properties"]["topicType"] == "Microsoft.MachineLearningServices.Workspaces"
    main = bt.body(bt.modules(bt.POST_DEPLOY)["eventSubscriptions"])
    assert main["dependsOn"] == ["deadLetterWriter"]  # the topic may write dead letters before any arrive
    assert bt.parameters(bt.POST_DEPLOY)["maxDeliveryAttempts"]["default"] == 30


def test_the_drift_alert_query_is_the_readme_query():
    kql = bt.INFRA / "post-deploy" / "drift-alert.kql"
    assert kql.read_text() == readme_drift_query()
    assert bt.functions_called(bt.variable(bt.POST_DEPLOY, "driftQuery"), "load_text_content") == [
        {"file_path": "drift-alert.kql", "encoding": None}]
    rule = bt.body(bt.resources(bt.POST_DEPLOY, "Microsoft.Insights/scheduledQueryRules")["driftAlerts"])
    criteria = rule["properties"]["criteria"]["allOf"]
    assert len(criteria) == 1
    query = bt.bicep_string(criteria[0]["query"], {"trim(driftQuery)": readme_drift_query().strip(),
                                                   "model": "credit-card-default"})
    assert query == readme_drift_query().strip() + "\n| where model_name == 'credit-card-default'"
    assert criteria[0]["timeAggregation"] == "Count" and criteria[0]["operator"] == "GreaterThan"
    assert criteria[0]["threshold"] == 0
    assert rule["kind"] == "LogAlert"
    assert rule["properties"]["scopes"] == [{"operator": {"type": "property_accessor",
                                                          "operands": {"operand_1": "applicationInsights",
                                                                       "operand_2": "id"}}}]
    actions = rule["properties"]["actions"]
    assert actions["customProperties"] == {"model_name": "model"}  # the loop's model: what the webhook reads
    assert actions["actionGroups"][0]["operator"]["operands"]["operand_1"] == "actionGroup"


def test_the_action_group_posts_the_common_alert_schema_to_the_alert_webhook_with_a_function_key():
    functions = registered_functions()
    http = next(b for b in functions["alert_webhook"] if b["type"] == "httpTrigger")
    prefix = json.loads((REPO_ROOT / "host.json").read_text())["extensions"]["http"]["routePrefix"]
    assert bt.variable(bt.POST_DEPLOY, "alertWebhookPath") == f"/{prefix}/{http['route']}"
    assert http["authLevel"] == "FUNCTION" and http["methods"] == ["POST"]
    group = bt.body(bt.resources(bt.POST_DEPLOY, "Microsoft.Insights/actionGroups")["actionGroup"])
    assert group["location"] == "Global"
    (receiver,) = group["properties"]["webhookReceivers"]
    assert receiver["useCommonAlertSchema"] is True
    assert receiver["serviceUri"] == "https://${site.properties.defaultHostName}${alertWebhookPath}?code=${functionKey}"
    (keys,) = bt.functions_called(bt.variable(bt.POST_DEPLOY, "functionKey"), "list_func")
    assert keys["func_name"] == "listKeys"
    assert bt.functions_called(keys["resource_identifier"], "resource_id")[0]["resource_type"] == "Microsoft.Web/sites/host"
    assert receiver["useAadAuth"] == "webhookUseAadAuth"  # optional Secure Webhook


# --- the GitHub Actions workflow for users (bicep build/lint, what-if: it cannot run here) ----------

def test_the_workflow_builds_lints_and_previews_both_layers_with_the_parameters_they_take():
    workflow = yaml.safe_load((REPO_ROOT / ".github" / "workflows" / "infra.yml").read_text())
    runs = {job: "\n".join(step.get("run", "") for step in spec["steps"]) for job, spec in workflow["jobs"].items()}
    for entry in ("infra/main.bicep", "infra/post-deploy/main.bicep"):
        assert (REPO_ROOT / entry).is_file()
        assert f"az bicep build --file {entry}" in runs["build-and-lint"]
        assert f"az bicep lint --file {entry}" in runs["build-and-lint"]
    assert "make test-infra" in runs["contract-tests"]
    what_if = runs["what-if"]
    assert "az deployment sub what-if" in what_if and "--template-file infra/main.bicep" in what_if
    passed = set(re.findall(r"(\w+)=\"\$\{\{ vars\.", what_if))
    params = bt.parameters(bt.MAIN)
    assert passed <= set(params), passed - set(params)
    assert {n for n, p in params.items() if p["default"] is None} <= passed


# --- the post-deploy script --------------------------------------------------------------------------

def run_post_deploy(tmp_path: Path, listed: list[str], attempts: int = 1) -> tuple[subprocess.CompletedProcess, list]:
    """scripts/post-deploy.sh with stand-ins for azd and az that answer as they would and record
    what they were asked."""
    calls = tmp_path / "calls.jsonl"
    env_values = {
        "AZURE_RESOURCE_GROUP": "rg-dev", "AZURE_FUNCTION_APP_NAME": "func-modelops-abc",
        "APPLICATIONINSIGHTS_NAME": "appi-abc", "AZURE_STORAGE_ACCOUNT_NAME": "stabc",
        "EVENTGRID_DEAD_LETTER_CONTAINER": "eventgrid-deadletter", "MODELOPS_STAGING_RESOURCE_GROUP": "rg-ml",
        "MODELOPS_STAGING_WORKSPACE": "mlw-staging", "MODELOPS_MODELS": '{"a": {}}',
    }
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    recorder = textwrap.dedent(f"""\
        #!{sys.executable}
        import json, os, sys
        with open({str(calls)!r}, "a") as f:
            f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
        if os.path.basename(sys.argv[0]) == "azd":
            for k, v in {env_values!r}.items():
                print(f'{{k}}="{{v}}"')
        elif sys.argv[1:4] == ["functionapp", "function", "list"]:
            print("\\n".join({[f"func-modelops-abc/{n}" for n in listed]!r}))
        """)
    for tool in ("az", "azd"):
        path = bin_dir / tool
        path.write_text(recorder)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "MODELOPS_POST_DEPLOY_WAIT_ATTEMPTS": str(attempts)}
    out = subprocess.run(["sh", str(REPO_ROOT / "scripts" / "post-deploy.sh")], cwd=REPO_ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    return out, [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []


def test_post_deploy_script_deploys_the_layer_with_every_parameter_it_needs(tmp_path):
    out, calls = run_post_deploy(tmp_path, ["model_registered", "run_status_changed", "alert_webhook", "health"])
    assert out.returncode == 0, out.stderr
    deploy = next(c for c in calls if c[:4] == ["az", "deployment", "group", "create"])
    assert deploy[deploy.index("--template-file") + 1] == "infra/post-deploy/main.bicep"
    assert deploy[deploy.index("--resource-group") + 1] == "rg-dev"
    passed = dict(a.split("=", 1) for a in deploy if re.fullmatch(r"[A-Za-z]+=.*", a))
    params = bt.parameters(bt.POST_DEPLOY)
    file = json.loads((bt.INFRA / "post-deploy" / "main.parameters.json").read_text())["parameters"]
    assert set(passed) <= set(params) and set(file) <= set(params)
    required = {n for n, p in params.items() if p["default"] is None}
    assert required <= set(passed) | set(file), required - set(passed) - set(file)
    assert passed["functionAppName"] == "func-modelops-abc" and passed["stagingWorkspaceName"] == "mlw-staging"


def test_post_deploy_script_waits_for_the_functions_and_fails_when_they_never_come(tmp_path):
    out, calls = run_post_deploy(tmp_path, ["health"], attempts=1)
    assert out.returncode == 1
    assert "model_registered run_status_changed alert_webhook" in out.stderr
    assert not [c for c in calls if c[:3] == ["az", "deployment", "group"]]


# --- checkov (the tools venv) --------------------------------------------------------------------------

def checkov() -> Path:
    path = Path(os.environ.get("MODELOPS_CHECKOV", REPO_ROOT / ".venv-tools" / "bin" / "checkov"))
    if not path.exists():
        pytest.fail(f"checkov not found at {path}: `make tools-env` builds .venv-tools (make test does)")
    return path


@pytest.mark.integration
def test_checkov_bicep_policies_parse_every_file_and_fail_none():
    out = subprocess.run([str(checkov()), "--directory", str(bt.INFRA), "--framework", "bicep", "--output", "json",
                          "--compact", "--skip-download"],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    # checkov exits 0 on a file it cannot parse: its JSON says so
    report = json.loads(out.stdout)
    assert report["check_type"] == "bicep", report
    summary = report["summary"]
    assert summary["parsing_errors"] == 0, summary
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"].get("failed_checks", [])]
    assert failed == [], failed
    assert summary["passed"] > 0 and summary["resource_count"] > 0
    # every skip says why, and every skip comment is one checkov used
    skipped = report["results"].get("skipped_checks", [])
    assert all(c["check_result"].get("suppress_comment", "No comment provided") != "No comment provided"
               for c in skipped), skipped
    comments = sum(len(re.findall(r"//\s*checkov:skip=", p.read_text())) for p in bt.bicep_files())
    assert summary["skipped"] == comments == len(skipped)
    assert out.returncode == 0, out.stderr[-2000:]


@pytest.mark.integration
def test_checkov_reports_a_file_it_cannot_parse_only_in_its_json(tmp_path):
    """Why the test above reads the JSON: checkov's parser (pycep-parser 0.5.1, pinned by checkov)
    refuses valid Bicep — a child resource declared with a loop inside its parent, as here — and
    checkov then checks nothing in that file and still exits 0."""
    (tmp_path / "nested_loop.bicep").write_text(textwrap.dedent("""\
        param names array
        resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
          name: 'st${uniqueString(resourceGroup().id)}'
          location: resourceGroup().location
          kind: 'StorageV2'
          sku: {
            name: 'Standard_LRS'
          }

          resource blobServices 'blobServices' = {
            name: 'default'

            resource containers 'containers' = [for n in names: {
              name: n
            }]
          }
        }
        """))
    assert bt.syntax_errors((tmp_path / "nested_loop.bicep").read_bytes()) == []  # valid Bicep
    out = subprocess.run([str(checkov()), "--directory", str(tmp_path), "--framework", "bicep", "--output", "json",
                          "--compact", "--skip-download"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0
    assert json.loads(out.stdout)["summary"]["parsing_errors"] == 1
