"""The rollout's side effects, one small function per `op`, all behind ports.

Durable runs each through the `rollout_activity` function; the local driver calls `dispatch`
directly. Every op is safe to run twice (Durable retries, at-least-once): creates are create-only
or idempotent in the port, deletes are idempotent, audit records are create-only by sequence.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Callable

from functions.domain import gates as g
from functions.domain import traffic as tmap
from functions.domain.config import SERVING_MODES, build_model_config
from functions.domain.evaluation import EvaluationError, read_evaluation_csv
from functions.ports import (
    DeploymentSpec,
    Endpoints,
    ModelFiles,
    ModelRegistry,
    PlatformError,
    Store,
    TrafficLog,
)
from functions.services import contracts
from functions.services.records import RolloutStore
from functions.shared.contract import ContractError, ModelContract
from functions.shared.contract_sources import read_contract as contract_of_files
from functions.shared.names import version_key

# The scoring entry point (ml/score.py) reads the contract and the skops allowlist from these.
CONTRACT_ENV = "MODELOPS_CONTRACT"
SKOPS_TRUSTED_ENV = "MODELOPS_SKOPS_TRUSTED"


@dataclass
class RolloutPorts:
    """The ports the rollout's activities touch (built once by the composition root)."""

    staging: Endpoints
    production: Endpoints
    registry: ModelRegistry
    traffic_log: TrafficLog  # production endpoint's traffic log (health checks)
    store: Store
    model_files: ModelFiles  # the registered files a version's contract is read from
    workspace_id: str = ""  # the staging workspace (lineage tag)
    deployment_env: dict[str, str] = field(default_factory=dict)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(timezone.utc))

    @property
    def rollouts(self) -> RolloutStore:
        return RolloutStore(self.store)

    def endpoints(self, workspace: str) -> Endpoints:
        if workspace == "staging":
            return self.staging
        if workspace == "production":
            return self.production
        raise ValueError(f"unknown workspace {workspace!r}")


def payload(activity: Callable[..., Any], **args: Any) -> dict[str, Any]:
    """The dispatcher's input for one activity, checked against the registry (OPS, below)."""
    if OPS.get(activity.__name__) is not activity:
        raise ValueError(f"{activity.__name__} is not a rollout activity")
    return {"op": activity.__name__, "args": args}


def dispatch(ports: RolloutPorts, payload: dict[str, Any]) -> Any:
    """The one Durable activity (`rollout_activity`): run the named activity with its arguments."""
    op = payload["op"]
    handler = OPS.get(op)
    if handler is None:
        raise ValueError(f"unknown rollout activity {op!r}")
    return handler(ports, **payload["args"])


# --- records -------------------------------------------------------------------------------

def begin(p: RolloutPorts, rollout: dict, event: dict, config: dict, at: str) -> dict:
    p.rollouts.start(rollout, event, config, at)
    return {"ok": True}


def audit(p: RolloutPorts, rollout: dict, seq: int, step: str, at: str, details: dict) -> dict:
    p.rollouts.audit(rollout, seq, step, at, details)
    return {"ok": True}


def finish(p: RolloutPorts, rollout: dict, outcome: dict, at: str) -> dict:
    p.rollouts.finish(rollout, outcome, at)
    return {"ok": True}


def set_production(p: RolloutPorts, rollout: dict, deployment: str, traffic: dict,
                   contract: dict | None = None) -> dict:
    if contract:  # before the record: a reader that sees the new production sees its contract
        contracts.store_contract(p.store, rollout["model"], rollout["version"], ModelContract.from_dict(contract),
                                 current=True)
    p.rollouts.set_production(rollout, deployment, traffic, p.clock().isoformat())
    return {"ok": True}


def version_contract(p: RolloutPorts, rollout: dict) -> dict:
    """The contract stored for the rollout's version (an undo re-deploys and smokes by it)."""
    stored = contracts.version_contract(p.store, rollout["model"], rollout["version"])
    return {"contract": stored.to_dict() if stored is not None else None}


def read_contract(p: RolloutPorts, rollout: dict, overrides: dict | None = None, serving: str = "modelops") -> dict:
    """The version's contract from its registered files (+ the model's configuration), stored at
    contracts/<model>/<version>.json. A model without a usable one is refused, with the reason:
    {"ok": False, "reason"} — a fact about the files, so never retried. So is one the model's
    `serving` cannot gate (a probability metric for a no-code MLflow deployment, which answers labels)."""
    name, version = rollout["model"], rollout["version"]
    model = p.registry.get_workspace_model(name, version)
    if model is None:
        raise PlatformError(f"model {name}:{version} is not in the staging workspace")
    try:
        contract = contract_of_files(lambda file: p.model_files.read(model, file), overrides or {},
                                     where=f"model {name}:{version}")
        contract.for_serving(serving, where=f"model {name}:{version} (serving: {serving})")
    except ContractError as exc:
        return {"ok": False, "reason": str(exc)}
    contracts.store_contract(p.store, name, version, contract)
    return {"ok": True, "contract": contract.to_dict(), "key": contracts.version_key(name, version)}


def superseded(p: RolloutPorts, rollout: dict) -> dict:
    """A newer version already in production or rolling out makes this rollout moot."""
    mine = version_key(rollout["version"])
    production = p.rollouts.production(rollout["model"])
    if production and version_key(production["version"]) > mine:
        return {"by": production["version"]}
    for record in p.rollouts.running(rollout["model"]):
        if version_key(record["version"]) > mine:
            return {"by": record["version"]}
    return {"by": ""}


# --- endpoints -----------------------------------------------------------------------------

def _endpoint_dict(state: Any, name: str) -> dict:
    if state is None:
        return {"name": name, "provisioning_state": "Missing", "traffic": {}, "deployments": {}, "scoring_uri": ""}
    return {"name": state.name, "provisioning_state": state.provisioning_state, "traffic": dict(state.traffic),
            "deployments": dict(state.deployments), "scoring_uri": state.scoring_uri}


def ensure_endpoint(p: RolloutPorts, rollout: dict, workspace: str, endpoint: str) -> dict:
    endpoints = p.endpoints(workspace)
    state = endpoints.get_endpoint(endpoint)
    if state is None:
        endpoints.begin_create_endpoint(endpoint, tags={"managed-by": "modelops", "model": rollout["model"]})
        state = endpoints.get_endpoint(endpoint)
        if state is None:
            return {"name": endpoint, "provisioning_state": "Creating", "traffic": {}, "deployments": {}}
    return _endpoint_dict(state, endpoint)


def get_endpoint(p: RolloutPorts, rollout: dict, workspace: str, endpoint: str) -> dict:
    return _endpoint_dict(p.endpoints(workspace).get_endpoint(endpoint), endpoint)


def create_deployment(p: RolloutPorts, rollout: dict, workspace: str, endpoint: str, deployment: str, source: str,
                      instance_type: str, instance_count: int, model_uri: str = "", contract: dict | None = None,
                      skops_trusted_types: list | None = None, serving: str = "modelops") -> dict:
    """The version's deployment at 0%. `serving` (the model's configuration): "modelops" — our
    scoring entry point, which reads MODELOPS_CONTRACT and MODELOPS_SKOPS_TRUSTED; "mlflow_no_code" —
    AzureML's no-code MLflow deployment (the variables are still set, as a record: AzureML's scoring
    script does not read them)."""
    if serving not in SERVING_MODES:
        raise ValueError(f"unknown serving {serving!r} (one of {', '.join(SERVING_MODES)})")
    name, version = rollout["model"], rollout["version"]
    if source == "workspace":
        model = p.registry.get_workspace_model(name, version)
        if model is None:
            raise PlatformError(f"model {name}:{version} is not in the staging workspace")
    else:
        model = p.registry.get_registry_model(name, version)
        if model is None:
            raise PlatformError(f"model {name}:{version} is not in the registry")
    # before anything is deployed there: a canary on an endpoint whose logs go nowhere is judged blind
    logs = _ensure_logging(p.production, endpoint) if workspace == "production" else ""
    env = dict(p.deployment_env)
    if contract:  # the scoring entry point validates and answers by it
        env[CONTRACT_ENV] = json.dumps(contract, separators=(",", ":"), sort_keys=True)
    if skops_trusted_types:
        env[SKOPS_TRUSTED_ENV] = json.dumps(list(skops_trusted_types))
    spec = DeploymentSpec(
        endpoint=endpoint, name=deployment, model=model, instance_type=instance_type,
        instance_count=instance_count, environment_variables=env,
        tags={"managed-by": "modelops", "rollout": rollout["id"], "model-version": version},
        no_code=serving == "mlflow_no_code",
    )
    p.endpoints(workspace).begin_create_deployment(spec)
    return {"model_uri": model.uri, **({"logs": logs} if logs else {})}


LOGGING_ATTEMPTS = 3  # a transient failure to read or write the endpoint's diagnostic setting is retried


def _ensure_logging(endpoints: Endpoints, endpoint: str) -> str:
    """The production endpoint's logs reach the traffic log (ports.Endpoints.ensure_logging), or
    the rollout stops here, before production changes: failed, with the reason (a missing right
    named), and `modelops rollouts retry` once it is fixed."""
    for attempt in range(1, LOGGING_ATTEMPTS + 1):
        try:
            return endpoints.ensure_logging(endpoint)
        except PlatformError as exc:
            if exc.transient and attempt < LOGGING_ATTEMPTS:
                time.sleep(2.0 ** (attempt - 1))  # 1 s, 2 s
                continue
            raise PlatformError(f"the logs of production endpoint {endpoint} would not reach the traffic log "
                                f"(no canary could be judged), after {attempt} attempt(s): {exc}") from exc
    raise AssertionError("unreachable")


def get_deployment(p: RolloutPorts, rollout: dict, workspace: str, endpoint: str, deployment: str) -> dict:
    state = p.endpoints(workspace).get_deployment(endpoint, deployment)
    if state is None:
        return {"provisioning_state": "Missing", "error": "deployment not found"}
    return {"provisioning_state": state.provisioning_state, "error": state.error, "model_uri": state.model_uri}


def delete_deployment(p: RolloutPorts, rollout: dict, workspace: str, endpoint: str, deployment: str) -> dict:
    endpoints = p.endpoints(workspace)
    state = endpoints.get_endpoint(endpoint)
    if state is not None and state.traffic.get(deployment, 0) > 0:
        # AzureML refuses to delete a deployment with traffic: move its share away first.
        others = {k: v for k, v in state.traffic.items() if k != deployment}
        if tmap.serving(others):
            endpoints.set_traffic(endpoint, tmap.restore(_normalise(others), deployment))
        else:
            endpoints.set_traffic(endpoint, {k: 0 for k in state.traffic})
    endpoints.begin_delete_deployment(endpoint, deployment)
    return {"deleted": deployment}


STAGING_MIN_INSTANCES = 1  # AzureML managed online deployments have no scale to zero


def clean_staging(p: RolloutPorts, rollout: dict, endpoint: str, deployment: str, how: str) -> dict:
    """Cost (ModelConfig.staging_cleanup): the staging deployment of a version that reached
    production or was rejected is deleted or scaled to its minimum. Idempotent: a deployment that
    is gone (deleted at a failed gate, replaced by a newer version) is left alone."""
    if p.staging.get_deployment(endpoint, deployment) is None:
        return {"how": how, "deployment": deployment, "done": "absent"}
    if how == "delete":
        delete_deployment(p, rollout, "staging", endpoint, deployment)
        return {"how": how, "deployment": deployment, "done": "deleted"}
    if how == "scale_to_min":
        count = p.staging.scale_deployment(endpoint, deployment, STAGING_MIN_INSTANCES)
        return {"how": how, "deployment": deployment, "done": "scaled", "instance_count": count}
    raise ValueError(f"unknown staging_cleanup {how!r}")


def set_traffic(p: RolloutPorts, rollout: dict, workspace: str, endpoint: str, traffic: dict) -> dict:
    p.endpoints(workspace).set_traffic(endpoint, {k: int(v) for k, v in traffic.items()})
    return {"traffic": traffic}


def take_over_staging(p: RolloutPorts, rollout: dict, endpoint: str, deployment: str) -> dict:
    """Staging always serves the newest validated model: 100% to it, older deployments removed."""
    state = p.staging.get_endpoint(endpoint)
    live = dict(state.traffic) if state else {}
    for name in (state.deployments if state else {}):
        live.setdefault(name, 0)
    traffic = {name: 0 for name in live}
    traffic[deployment] = 100
    p.staging.set_traffic(endpoint, traffic)
    removed = []
    for name in sorted(live):
        if name != deployment:
            p.staging.begin_delete_deployment(endpoint, name)
            removed.append(name)
    return {"traffic": {deployment: 100}, "removed": removed}


def retire(p: RolloutPorts, rollout: dict, endpoint: str, keep: str) -> dict:
    """After the final bake: everything but `keep` is at 0%; delete those deployments."""
    state = p.production.get_endpoint(endpoint)
    removed = []
    if state is None:
        return {"removed": removed}
    names = set(state.traffic) | set(state.deployments)
    if any(state.traffic.get(n, 0) for n in names if n != keep):
        p.production.set_traffic(endpoint, {n: (100 if n == keep else 0) for n in names})
    for name in sorted(names - {keep}):
        p.production.begin_delete_deployment(endpoint, name)
        removed.append(name)
    return {"removed": removed}


# --- gates and health ----------------------------------------------------------------------

def _scorer(endpoints: Endpoints, endpoint: str, deployment: str | None) -> Callable[[Any], Any]:
    return lambda body: endpoints.score(endpoint, body, deployment=deployment)


def _contract(p: RolloutPorts, rollout: dict, contract: dict | None) -> ModelContract:
    if contract:
        return ModelContract.from_dict(contract, f"contract of {rollout['model']}:{rollout['version']}")
    stored = contracts.version_contract(p.store, rollout["model"], rollout["version"])
    if stored is None:
        raise PlatformError(f"no contract stored for {rollout['model']}:{rollout['version']}")
    return stored


def _wire(contract: ModelContract, serving: str, what: str) -> ModelContract:
    """What a deployment served `serving` takes and answers (ModelContract.for_serving); a contract
    it cannot gate is a GateError (read_contract refuses such a version before anything is deployed)."""
    try:
        return contract.for_serving(serving, where=what)
    except ContractError as exc:
        raise g.GateError(str(exc)) from None


def smoke(p: RolloutPorts, rollout: dict, workspace: str, endpoint: str, deployment: str,
          contract: dict | None = None, serving: str = "modelops") -> dict:
    try:
        wire = _wire(_contract(p, rollout, contract), serving, f"{rollout['model']}:{rollout['version']}")
    except g.GateError as exc:
        return {"passed": False, "reason": str(exc), "figures": {}}
    result = g.smoke(_scorer(p.endpoints(workspace), endpoint, deployment), wire)
    return {"passed": result.passed, "reason": result.reason, "figures": result.figures}


def _champion_serving(p: RolloutPorts, model: str, production: dict | None) -> str:
    """How the production version is served: its rollout's configuration said (a production
    version without that record — adopted, or released before serving existed — was modelops')."""
    record = p.rollouts.get(model, production["rollout_id"]) if production and production.get("rollout_id") else None
    return str(((record or {}).get("config") or {}).get("serving") or "modelops")


def run_gates(p: RolloutPorts, rollout: dict, workspace: str, endpoint: str, deployment: str, gates: dict,
              production_endpoint: str, at: str, evaluation_data: str = "", contract: dict | None = None,
              allow_contract_change: bool = False, serving: str = "modelops") -> dict:
    """The gates against the new deployment, each request in the shape its `serving` takes (the
    wire contract); the compatibility gate compares the model's contracts, and how each is served."""
    cfg = build_model_config(rollout["model"], {"gates": gates}).gates
    score = _scorer(p.endpoints(workspace), endpoint, deployment)
    challenger = _contract(p, rollout, contract)
    production = p.rollouts.production(rollout["model"])
    champion = contracts.current_contract(p.store, rollout["model"]) \
        if production and production["version"] != rollout["version"] else None
    champion_serving = _champion_serving(p, rollout["model"], production) if champion is not None else serving
    results: list[g.GateResult] = []
    try:
        wire = _wire(challenger, serving, f"{rollout['model']}:{rollout['version']}")
        results.append(g.judge_compatibility(challenger, champion, allow_contract_change, serving, champion_serving))
        if results[-1].passed:
            results.append(g.smoke(score, wire))
        if results[-1].passed:
            results.append(g.contract_gate(score, wire))
        if results[-1].passed:
            rows, labels = _evaluation(p, evaluation_data or f"datasets/{rollout['model']}/evaluation.csv",
                                       challenger, cfg.evaluation_rows)
            results.append(g.latency(score, wire, rows, cfg.latency_requests, cfg.latency_p95_ms))
            if results[-1].passed:
                results.append(_quality(p, score, challenger, wire, champion, champion_serving, rows, labels,
                                        cfg, production_endpoint))
    except (g.GateError, PlatformError) as exc:
        results.append(g.GateResult("error", False, str(exc)))
    failed = next((r for r in results if not r.passed), None)
    report = {
        "rollout": rollout, "endpoint": endpoint, "deployment": deployment, "at": at,
        "passed": failed is None, "contract": challenger.to_dict(), "serving": serving,
        "gates": [r.to_dict() for r in results],
    }
    key = f"gate-reports/{rollout['model']}/{rollout['version']}/{rollout['id']}.json"
    p.store.put(key, g.dumps(report))
    return {
        "passed": failed is None,
        "reason": "" if failed is None else f"{failed.name}: {failed.reason}",
        "report_key": key,
        "summary": {r.name: {"passed": r.passed, "reason": r.reason} for r in results},
    }


def _evaluation(p: RolloutPorts, key: str, contract: ModelContract, limit: int) -> tuple[list[dict], list[Any]]:
    found = p.store.get(key)
    if found is None:
        raise g.GateError(f"no labelled evaluation data at {key} (store)")
    try:
        return read_evaluation_csv(found[0], contract, limit)
    except EvaluationError as exc:
        raise g.GateError(f"{key}: {exc}") from None


def _quality(p: RolloutPorts, score: Callable, model: ModelContract, challenger: ModelContract,
             champion_contract: ModelContract | None, champion_serving: str, rows: list[dict], labels: list[Any],
             cfg: Any, production_endpoint: str) -> g.GateResult:
    """`model` is the challenger's contract, `challenger` its deployment's wire contract
    (for_serving); the champion is asked on its own wire."""
    value = g.metric_of(challenger, g.predict_all(score, challenger, rows, cfg.batch_rows), labels)
    champion_value, note = None, ""
    prod = p.production.get_endpoint(production_endpoint)
    if prod is not None and tmap.serving(prod.traffic):
        champion = max(prod.traffic, key=lambda n: (prod.traffic[n], n))
        # the champion is asked in its own contract's shape, as it is served (a champion released
        # before contracts: the challenger's, as the gate always did); another feature set cannot
        # score these rows. The challenger's metric is computable from the champion's answers of
        # the same kind, or for_serving says why not (a no-code champion answers labels).
        try:
            theirs = replace(champion_contract or model, metric=challenger.metric).for_serving(champion_serving)
        except ContractError as exc:
            note = f"the champion cannot be judged on {challenger.metric} ({exc}): judged on the bound only"
        else:
            if set(theirs.feature_names) != set(challenger.feature_names) or \
                    (theirs.response_kind, theirs.task) != (challenger.response_kind, challenger.task):
                note = "the champion takes other features or answers otherwise: judged on the bound only"
            else:  # same task and answers: the challenger's metric is computable from the champion's answers
                answers = g.predict_all(_scorer(p.production, production_endpoint, champion), theirs, rows,
                                        cfg.batch_rows)
                champion_value = g.metric_of(theirs, answers, labels)
    bound = cfg.min_metric if cfg.min_metric is not None else cfg.min_roc_auc if challenger.metric == "roc_auc" else None
    return g.judge_quality(challenger.metric, challenger.direction, value, champion_value, bound,
                           cfg.champion_tolerance, len(rows), note)


HEALTH_QUERY_ATTEMPTS = 3  # a flaky health query is retried before the canary is failed (closed)


def check_health(p: RolloutPorts, rollout: dict, endpoint: str, deployment: str, start: str, end: str,
                 canary: dict) -> dict:
    """The canary's figures for [start, end) and the verdict: healthy, unhealthy or insufficient
    (too few requests to judge: the workflow extends the bake). A query that keeps failing is
    unhealthy — a health check that cannot look never passes."""
    cfg = build_model_config(rollout["model"], {"canary": canary}).canary
    window = [start, end]
    for attempt in range(1, HEALTH_QUERY_ATTEMPTS + 1):
        try:
            stats = p.traffic_log.stats(endpoint, deployment, datetime.fromisoformat(start),
                                        datetime.fromisoformat(end))
            break
        except PlatformError as exc:
            if exc.transient and attempt < HEALTH_QUERY_ATTEMPTS:
                time.sleep(2.0 ** (attempt - 1))  # 1 s, 2 s: inside the activity, not a durable timer
                continue
            reason = f"health query failed after {attempt} attempt(s): {str(exc)[:300]}"
            return {"healthy": False, "verdict": "unhealthy", "reason": reason,
                    "figures": {"window": window, "query_error": str(exc)[:300]}}
    verdict, reason = g.judge_health(stats.requests, stats.errors, stats.p90_ms, cfg)
    figures = {"requests": stats.requests, "errors": stats.errors, "client_errors": stats.client_errors,
               "error_rate": round(stats.error_rate, 4), "p90_ms": stats.p90_ms,
               "max_error_rate": cfg.max_error_rate, "max_p90_ms": cfg.max_p90_ms,
               "min_requests": cfg.min_requests, "window": window}
    return {"healthy": verdict == "healthy", "verdict": verdict, "reason": reason, "figures": figures}


# --- registry ------------------------------------------------------------------------------

def promote(p: RolloutPorts, rollout: dict, gate_report: str, gate_summary: dict) -> dict:
    name, version = rollout["model"], rollout["version"]
    existing = p.registry.get_registry_model(name, version)
    if existing is not None:
        return {"uri": existing.uri, "already": True}
    model = p.registry.get_workspace_model(name, version)
    if model is None:
        raise PlatformError(f"model {name}:{version} is not in the staging workspace")
    tags = {
        "source_workspace": p.workspace_id or rollout.get("topic", ""),
        "source_event_id": rollout["event_id"],
        "rollout_id": rollout["id"],
        "gate_report": gate_report,
        "gate_results": json.dumps({k: v["passed"] for k, v in gate_summary.items()}, separators=(",", ":")),
        "promoted_by": "modelops",
    }
    promoted = p.registry.promote(model, tags)
    return {"uri": promoted.uri, "already": False}


def _normalise(traffic: dict[str, int]) -> dict[str, int]:
    total = sum(traffic.values())
    if total in (0, 100):
        return dict(traffic)
    scaled = tmap.canary_map(traffic, "__none__", 0)
    scaled.pop("__none__", None)
    return scaled


OPS: dict[str, Callable[..., Any]] = {
    fn.__name__: fn
    for fn in (begin, audit, finish, set_production, superseded, ensure_endpoint, get_endpoint, create_deployment,
               get_deployment, delete_deployment, set_traffic, take_over_staging, retire, read_contract, smoke,
               run_gates, check_health, promote, clean_staging, version_contract)
}

