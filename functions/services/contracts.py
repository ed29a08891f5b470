"""The stored contracts of a model's versions: what the export types its table by and drift compares.

    contracts/<model>/current.json              the contract of the current production version
    contracts/<model>/versions/<version>.json   the contract of each version it was stored for

Each object is `ModelContract.to_dict()` as JSON (its `contract_version` says how to read it). The
rollout stores a version's contract when it learns it (`store_contract(..., current=False)`) and
makes it current when the version goes to production (`current=True`, or `make_current`). The
export and the drift check read them (`StoreContracts`, the ports.ContractSource on a Store): a
model without a current contract is not exported and not checked — nothing guesses its columns.

A stored contract that cannot be read is a ContractError naming the key (never "no contract": an
object that is there but broken needs a person, not a silent skip).
"""

from __future__ import annotations

import json
from typing import Any, Callable

from functions.ports import Store
from functions.shared.contract import ContractError, ModelContract
from functions.shared.names import check_model_name, check_version

CONTRACTS_PREFIX = "contracts/"


def current_key(model: str) -> str:
    return f"{CONTRACTS_PREFIX}{check_model_name(model)}/current.json"


def version_key(model: str, version: str) -> str:
    return f"{CONTRACTS_PREFIX}{check_model_name(model)}/versions/{check_version(version)}.json"


def _encode(contract: ModelContract) -> bytes:
    return (json.dumps(contract.to_dict(), indent=1, sort_keys=True) + "\n").encode()


def store_contract(store: Store, model: str, version: str, contract: ModelContract, *, current: bool = False) -> None:
    """Keep `contract` as `version`'s (overwriting what was stored for that version) and, with
    `current=True`, as the model's current one (the version is, or is becoming, production)."""
    data = _encode(contract)
    store.put(version_key(model, version), data)
    if current:
        store.put(current_key(model), data)


def make_current(store: Store, model: str, version: str) -> ModelContract:
    """Make the contract stored for `version` the model's current one; ContractError when that
    version has none stored."""
    contract = version_contract(store, model, version)
    if contract is None:
        raise ContractError(f"no contract is stored for {model}:{version} ({version_key(model, version)})")
    store.put(current_key(model), _encode(contract))
    return contract


def current_contract(store: Store, model: str) -> ModelContract | None:
    """The contract of the model's current production version; None when none is stored."""
    return _read(store, current_key(model))


def version_contract(store: Store, model: str, version: str) -> ModelContract | None:
    """The contract stored for `version`; None when none is."""
    return _read(store, version_key(model, version))


def _read(store: Store, key: str) -> ModelContract | None:
    found = store.get(key)
    if found is None:
        return None
    try:
        data = json.loads(found[0])
    except (ValueError, UnicodeDecodeError) as exc:
        raise ContractError(f"{key}: not JSON ({exc})") from None
    return ModelContract.from_dict(data, key)


class StoreContracts:
    """ports.ContractSource over the Store's contracts/ objects."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def current(self, model: str) -> ModelContract | None:
        return current_contract(self.store, model)

    def version(self, model: str, version: str) -> ModelContract | None:
        return version_contract(self.store, model, version)


def adopt_production_contracts(models: list[str], store: Store, production_of: Callable[[str], dict | None],
                               registry: Any, model_files: Any,
                               overrides_of: Callable[[str], dict[str, Any]]) -> dict[str, str]:
    """The migration for models released before contracts existed: a production version with no
    current contract gets one, read from its registered files (the registry copy, else the
    workspace's) as its rollout would have read it, and made current — so the export and drift
    check of an upgraded installation go on instead of pausing until the next release. A version
    whose files give no usable contract stays without one (those checks then fail closed, naming
    why). Returns {model: what was done} for the models it looked at."""
    from functions.shared.contract_sources import read_contract

    done: dict[str, str] = {}
    for model in models:
        if store.get(current_key(model)) is not None:
            continue
        production = production_of(model)
        if not production:
            continue
        version = str(production["version"])
        contract = version_contract(store, model, version)
        if contract is None:
            ref = registry.get_registry_model(model, version) or registry.get_workspace_model(model, version)
            if ref is None:
                done[model] = f"production version {version} is in neither the registry nor the workspace"
                continue
            try:
                contract = read_contract(lambda name: model_files.read(ref, name), overrides_of(model),
                                         where=f"model {model}:{version}")
            except ContractError as exc:
                done[model] = str(exc)
                continue
        store_contract(store, model, version, contract, current=True)
        done[model] = f"adopted the contract of production version {version} ({contract.source})"
    return done
