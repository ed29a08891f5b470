"""Each model version's contract in the store, and the one production serves.

    contracts/<model>/<version>.json   the version's contract (ModelContract.to_dict(): carries
                                       contract_version), written when its rollout reads it
    contracts/<model>/current.json     {"version", "contract"}: production's, set on release

The rollout writes them; the gates compare a challenger with `current`, the export types its table
and drift picks its features by `current`. A model released before contracts has no `current` until
its next release (the gates then compare on the challenger's contract, as they always did).
"""

from __future__ import annotations

import json
from typing import Any

from functions.ports import Store
from functions.shared.contract import ModelContract
from functions.shared.names import check_model_name, check_version

CURRENT = "current"


def version_key(model: str, version: str) -> str:
    return f"contracts/{check_model_name(model)}/{check_version(version)}.json"


def current_key(model: str) -> str:
    return f"contracts/{check_model_name(model)}/{CURRENT}.json"


def store_version_contract(store: Store, model: str, version: str, contract: ModelContract) -> str:
    """Idempotent: the same version's contract is the same data (a re-read may add nothing new)."""
    key = version_key(model, version)
    store.put(key, _dumps(contract.to_dict()))
    return key


def version_contract(store: Store, model: str, version: str) -> ModelContract | None:
    found = store.get(version_key(model, version))
    return None if found is None else ModelContract.from_dict(json.loads(found[0]), version_key(model, version))


def set_current_contract(store: Store, model: str, version: str, contract: ModelContract) -> None:
    store.put(current_key(model), _dumps({"version": version, "contract": contract.to_dict()}))


def current_contract(store: Store, model: str) -> tuple[str, ModelContract] | None:
    """(version, contract) of what production serves, or None (no release since contracts)."""
    found = store.get(current_key(model))
    if found is None:
        return None
    data = json.loads(found[0])
    return str(data["version"]), ModelContract.from_dict(data["contract"], current_key(model))


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, indent=2, sort_keys=True).encode()
