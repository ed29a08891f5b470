"""Register the evaluated candidate as a custom_model in the AzureML workspace.

Registration is what emits Event Grid's ModelRegistered, which starts the control plane's
staging → gates → production loop. The registered folder is the trained artifact with the
held-out metrics merged into its model card; tags carry the metrics and the data fingerprint.

    python -m ml.steps.register --model <folder> --metrics <folder|metrics.json> --model-name NAME [--dry-run]

Without --dry-run it must run on AzureML compute (it reads the workspace from AZUREML_ARM_* and
authenticates as the job's identity); --dry-run prints what would be registered and calls nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from ml.steps._io import fail, str2bool

WORKSPACE_ENV = ("AZUREML_ARM_SUBSCRIPTION", "AZUREML_ARM_RESOURCEGROUP", "AZUREML_ARM_WORKSPACE_NAME")
HELD_OUT = ("roc_auc", "f1", "precision", "recall", "accuracy", "n_test")


def read_metrics(path: Path) -> dict[str, Any]:
    file = path / "metrics.json" if path.is_dir() else path
    metrics = json.loads(file.read_text())
    if not isinstance(metrics, dict) or "roc_auc" not in metrics:
        raise ValueError(f"{file}: expected a JSON object with roc_auc")
    return metrics


def stage(model_dir: Path, metrics: dict[str, Any], staging: Path, model_name: str) -> tuple[Path, dict[str, Any]]:
    """Copy the artifact under ``staging/<model_name>`` and merge the held-out metrics into its card."""
    from ml import artifact

    source = artifact.find_artifact_dir(model_dir)
    target = staging / model_name
    shutil.copytree(source, target)
    card = artifact.read_card(target)
    card["model_name"] = model_name
    card["metrics"] = {**card.get("metrics", {}), **{k: metrics[k] for k in HELD_OUT if k in metrics}}
    (target / artifact.CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return target, card


def tags_for(card: dict[str, Any], metrics: dict[str, Any]) -> dict[str, str]:
    tags = {k: f"{float(v):.6g}" for k, v in metrics.items() if isinstance(v, (int, float))}
    training = card.get("training_data", {})
    tags["data_fingerprint"] = str(training.get("fingerprint", ""))
    tags["training_rows"] = str(training.get("rows", ""))
    tags["registered_by"] = "modelops-training-pipeline"
    run_id = os.environ.get("AZUREML_ROOT_RUN_ID") or os.environ.get("AZUREML_RUN_ID")
    if run_id:
        tags["pipeline_run_id"] = run_id
    return tags


def build_model(path: Path, name: str, card: dict[str, Any], tags: dict[str, str]) -> Any:
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    hyper = card.get("hyperparameters", {})
    return Model(
        path=str(path),
        name=name,
        type=AssetTypes.CUSTOM_MODEL,
        description="Credit-card-default classifier (scikit-learn pipeline + model card + drift reference).",
        tags=tags,
        properties={f"hp_{k}": str(v) for k, v in hyper.items()},
    )


def workspace_client() -> Any:
    """An MLClient for the workspace this job runs in, as the job's identity."""
    from azure.ai.ml import MLClient

    subscription, resource_group, workspace = (os.environ[k] for k in WORKSPACE_ENV)
    if os.environ.get("OBO_ENDPOINT"):  # the job runs with `identity: type: user_identity`
        from azure.ai.ml.identity import AzureMLOnBehalfOfCredential

        credential: Any = AzureMLOnBehalfOfCredential()
    else:  # the compute cluster's managed identity
        from azure.identity import ManagedIdentityCredential

        credential = ManagedIdentityCredential(client_id=os.environ.get("DEFAULT_IDENTITY_CLIENT_ID"))
    return MLClient(credential, subscription, resource_group, workspace)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="artifact folder from the train step")
    parser.add_argument("--metrics", required=True, type=Path, help="evaluate's output folder or metrics.json")
    parser.add_argument("--model-name", default="credit-card-default")
    parser.add_argument("--dry-run", type=str2bool, nargs="?", const=True, default=False,
                        help="print what would be registered; do not call AzureML")
    args = parser.parse_args(argv)

    missing = [k for k in WORKSPACE_ENV if not os.environ.get(k)]
    if missing and not args.dry_run:
        fail(f"not running on AzureML ({', '.join(missing)} unset): use --dry-run to see what would be registered")
    try:
        metrics = read_metrics(args.metrics)
    except (OSError, ValueError) as exc:
        fail(f"metrics: {exc}")

    with tempfile.TemporaryDirectory(prefix="modelops-register-") as tmp:
        try:
            path, card = stage(args.model, metrics, Path(tmp), args.model_name)
        except FileNotFoundError as exc:
            fail(str(exc))
        tags = tags_for(card, metrics)
        model = build_model(path, args.model_name, card, tags)
        summary = {"name": model.name, "type": model.type, "files": sorted(p.name for p in path.iterdir()),
                   "tags": tags, "properties": model.properties, "card_metrics": card["metrics"]}
        if args.dry_run:
            print(json.dumps({"step": "register", "dry_run": True, "would_register": summary}, indent=2),
                  flush=True)
            return 0
        registered = workspace_client().models.create_or_update(model)
    print(json.dumps({"step": "register", "registered": f"{registered.name}:{registered.version}",
                      "tags": tags}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
