"""Where model files live, in the fake ARM / AzureML service: the workspace's datastores and the
registry's storage references — what `models.download` asks the management plane before it reads
blobs with azure-storage-blob (which the fake does not serve: tests put the blobs in Azurite).

  datastores      GET     …/workspaces/W/datastores/D
                  POST    …/workspaces/W/datastores/D/listSecrets   body {"expirableSecret", "expireAfterHours"}
  registry SAS    POST    …/registries/R/datarefs/N/versions/V      body {"assetId", "blobUri"}
                          (api-version 2021-10-01-dataplanepreview, on the registry's regional host)

What the SDK does with the answers (azure-ai-ml 1.35, ModelOperations.download):
- workspace model: GET the version → `modelUri` azureml://…/datastores/<D>/paths/<prefix> → GET the
  datastore + listSecrets → azure-storage-blob with the account key on
  https://<accountName>.blob.<cloud storage suffix> (the suffix comes from the SDK's cloud metadata,
  not from the datastore's `endpoint`/`protocol`, which it ignores here), container `containerName`.
- registry model: GET the version → `modelUri` https://<account>.blob…/<container>/<prefix> → POST
  datarefs → `credential.sasUri`, used AS GIVEN as the container URL (any scheme and host: tests
  answer an Azurite container SAS URL); the blob prefix still comes from `modelUri`.
Then, on storage: HEAD <prefix> (is it a blob?), list with delimiter (a folder?), list with
metadata, and one ranged GET per blob, written under <download_path>/<name>/<last prefix segment>/.

Checked against azure-rest-api-specs stable/2025-09-01 examples: Datastore/AzureBlobWAccountKey/
createOrUpdate.json (the datastore body; its GET never returns the key: `secrets` holds only
`secretsType`), Datastore/listSecrets.json ({"secretsType": "AccountKey", "key"}) and
DataReference/getBlobReferenceSAS.json (the stable `datareferences` twin of the SDK's `datarefs`
route: {"blobReferenceForConsumption": {"blobUri", "storageAccountArmId", "credential":
{"credentialType", …}}}); and the SDK's recorded session
sdk/ml/azure-ai-ml/tests/recordings/model/e2etests/test_model.pyTestModeltest_create_get_download_model_registry.json
(a SAS credential is {"credentialType": "SAS", "sasUri": "https://<account>.blob.core.windows.net/
<container>?sv=…&sr=c&sig=…", "wasbsUri": null}; the download is HEAD, list, GET on that URL).
"""

from __future__ import annotations

import re

from tests.fake_arm.resources import (
    REGISTRY_RESOURCE_GROUP,
    REGISTRY_SUBSCRIPTION,
    WORKSPACE,
    WORKSPACE_GUID,
    _system_data,
    _ws_prefix,
)
from tests.fake_arm.transport import Call, _error, _Reply

DEFAULT_DATASTORE = "workspaceblobstore"
# Any base64 string is a well-formed key; the fake's default one opens nothing.
FAKE_ACCOUNT_KEY = "ZmFrZS1hY2NvdW50LWtleQ=="


class Storage:
    """Datastores and registry storage references (part of `FakeAzureML`)."""

    datastores: dict[tuple[str, str], dict]
    datastore_keys: dict[tuple[str, str], str]
    registry_sas: dict[str, str]
    registry_models: dict[tuple[str, str], dict]

    def add_datastore(self, name: str = DEFAULT_DATASTORE, *, workspace: str | None = None,
                      account: str = "stmlwstaging", container: str = f"azureml-blobstore-{WORKSPACE_GUID}",
                      key: str = FAKE_ACCOUNT_KEY, default: bool | None = None) -> dict:
        """An AzureBlob datastore with account-key credentials (what a workspace's default
        `workspaceblobstore` is)."""
        ws = workspace or WORKSPACE
        body = {
            "id": f"{_ws_prefix(ws)}/datastores/{name}", "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "properties": {
                "description": None, "tags": {}, "properties": {},
                "isDefault": name == DEFAULT_DATASTORE if default is None else default,
                "credentials": {"credentialsType": "AccountKey", "secrets": {"secretsType": "AccountKey"}},
                "datastoreType": "AzureBlob", "accountName": account, "containerName": container,
                "endpoint": "core.windows.net", "protocol": "https",
                "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
            },
            "systemData": _system_data(),
        }
        with self._lock:
            self.datastores[(ws, name)] = body
            self.datastore_keys[(ws, name)] = key
        return body

    def set_registry_sas(self, registry: str, sas_uri: str) -> None:
        """The container SAS URL the registry hands out for its model files (tests: Azurite's)."""
        with self._lock:
            self.registry_sas[registry] = sas_uri

    def _datastore_routes(self, c: Call, ws: str, rest: str) -> None:
        m = re.fullmatch(r"/datastores/([^/]+)", rest)
        if m and c.method == "GET":
            body = self.datastores.get((ws, m.group(1)))
            if body is None:
                raise _error(404, "UserError", f"Datastore {m.group(1)} not found")
            raise _Reply(200, body)
        m = re.fullmatch(r"/datastores/([^/]+)/listSecrets", rest)
        if m and c.method == "POST":
            if (ws, m.group(1)) not in self.datastores:
                raise _error(404, "UserError", f"Datastore {m.group(1)} not found")
            raise _Reply(200, {"secretsType": "AccountKey", "key": self.datastore_keys[(ws, m.group(1))]})

    def _registry_storage_routes(self, c: Call, reg: str, rest: str) -> None:
        m = re.fullmatch(r"/datarefs/([^/]+)/versions/([^/]+)", rest)
        if not (m and c.method == "POST"):
            return
        name, version = m.group(1), m.group(2)
        body = c.body if isinstance(c.body, dict) else {}
        model = self.registry_models.get((name, version))
        if model is None:
            raise _error(404, "UserError", f"Could not find model {name}:{version} in registry {reg}")
        asset_id = f"azureml://registries/{reg}/models/{name}/versions/{version}"
        if body.get("assetId") != asset_id:
            raise _error(400, "BadArgument", f"assetId {body.get('assetId')!r} does not name {asset_id}")
        blob_uri = model["properties"]["modelUri"]
        if body.get("blobUri") != blob_uri:
            raise _error(400, "BadArgument", f"blobUri {body.get('blobUri')!r} is not the asset's {blob_uri}")
        container_url = blob_uri.split("?", 1)[0]
        account = container_url.split("//", 1)[1].split(".", 1)[0]
        container_url = "/".join(container_url.split("/")[:4])
        sas = self.registry_sas.get(reg) or f"{container_url}?sv=2021-06-08&sr=c&sig=fake&sp=rl"
        raise _Reply(200, {"blobReferenceForConsumption": {
            "blobUri": container_url,
            "storageAccountArmId": (f"/subscriptions/{REGISTRY_SUBSCRIPTION}/resourceGroups/{REGISTRY_RESOURCE_GROUP}"
                                    f"/providers/Microsoft.Storage/storageAccounts/{account}"),
            "credential": {"credentialType": "SAS", "sasUri": sas, "wasbsUri": None},
        }})
