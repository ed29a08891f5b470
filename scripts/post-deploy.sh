#!/bin/sh
# The post-deploy layer (infra/post-deploy/main.bicep): Event Grid subscriptions, the function key for
# the alert webhook, the drift alerts. azd runs it after `azd deploy` (azure.yaml hooks.postdeploy);
# run it by hand the same way (`./scripts/post-deploy.sh`) after changing its parameters.
#
# It needs the deployed functions: an Event Grid subscription to an Azure Function endpoint is
# validated against the function, and the host's keys exist only once the runtime has started. So it
# first waits until the Function App lists model_registered, run_status_changed and alert_webhook.
set -eu

for tool in az azd; do
  command -v "$tool" >/dev/null 2>&1 || { echo "error: $tool is not on the PATH (README \"Deploy to Azure\")" >&2; exit 1; }
done

# The main layer's outputs (azd stores them in the environment as KEY="value" lines)
while IFS='=' read -r key value; do
  case "$key" in
    ''|*[!A-Za-z0-9_]*) continue ;;
  esac
  value=$(printf '%s' "$value" | sed 's/^"//; s/"$//')
  export "$key=$value"
done <<EOF
$(azd env get-values)
EOF

for name in AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME APPLICATIONINSIGHTS_NAME AZURE_STORAGE_ACCOUNT_NAME \
            EVENTGRID_DEAD_LETTER_CONTAINER MODELOPS_STAGING_RESOURCE_GROUP MODELOPS_STAGING_WORKSPACE; do
  eval "value=\${$name:-}"
  [ -n "$value" ] || { echo "error: $name is not in the azd environment: run 'azd provision' first" >&2; exit 1; }
done

# The functions the post-deploy layer points at (function_app.py registers them)
required="model_registered run_status_changed alert_webhook"
attempts=${MODELOPS_POST_DEPLOY_WAIT_ATTEMPTS:-30}
i=1
while :; do
  listed=$(az functionapp function list -g "$AZURE_RESOURCE_GROUP" -n "$AZURE_FUNCTION_APP_NAME" \
             --query "[].name" -o tsv 2>/dev/null || true)
  missing=""
  for fn in $required; do
    printf '%s\n' "$listed" | grep -Eq "(^|/)$fn\$" || missing="$missing $fn"
  done
  [ -z "$missing" ] && break
  if [ "$i" -ge "$attempts" ]; then
    echo "error: $AZURE_FUNCTION_APP_NAME does not list:$missing after $attempts attempts; is the code deployed (azd deploy)?" >&2
    exit 1
  fi
  echo "waiting for the Function App to list:$missing ($i/$attempts)"
  i=$((i + 1))
  sleep 10
done

az deployment group create \
  --name "modelops-post-deploy" \
  --resource-group "$AZURE_RESOURCE_GROUP" \
  --template-file infra/post-deploy/main.bicep \
  --parameters @infra/post-deploy/main.parameters.json \
  --parameters functionAppName="$AZURE_FUNCTION_APP_NAME" \
               applicationInsightsName="$APPLICATIONINSIGHTS_NAME" \
               storageAccountName="$AZURE_STORAGE_ACCOUNT_NAME" \
               deadLetterContainerName="$EVENTGRID_DEAD_LETTER_CONTAINER" \
               stagingResourceGroup="$MODELOPS_STAGING_RESOURCE_GROUP" \
               stagingWorkspaceName="$MODELOPS_STAGING_WORKSPACE" \
               systemTopicName="${MODELOPS_SYSTEM_TOPIC_NAME:-}" \
  --output none

echo "post-deploy layer deployed: Event Grid subscriptions, alert action group, drift alert rules"
