"""`modelops models list|validate|put|remove`: the managed models' configuration, from MODELOPS_MODELS,
the per-model files (MODELOPS_MODELS_DIR, or files given on the command line) and the store's
config/models/ files (services/model_configs.py). They read or write configuration only: no
platform is opened, so they work beside a running one (which re-reads the store every
MODELOPS_CONFIG_REFRESH_SECONDS) and, without --store, in CI."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from functions.cli.output import BAD_INPUT, OK, emit_json, fail

models_app = typer.Typer(help="The managed models' configuration (MODELOPS_MODELS, MODELOPS_MODELS_DIR).",
                         no_args_is_help=True)


def attach(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")


def _settings() -> Any:
    from functions.settings import Settings, SettingsError

    try:
        return Settings.from_env()
    except SettingsError as exc:
        fail(str(exc))


def _store(settings: Any) -> Any:
    from functions.bootstrap import build_store
    from functions.settings import SettingsError

    try:
        return build_store(settings)
    except SettingsError as exc:
        fail(str(exc))


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json"),
                store: bool = typer.Option(True, "--store/--no-store",
                                           help="include the store's config/models/ files")) -> None:
    """Every managed model, where its configuration comes from, and what it says."""
    from functions.domain.config import ConfigError
    from functions.ports import PlatformError
    from functions.services.model_configs import ModelConfigs, read_model_files, read_store_files

    settings = _settings()
    try:
        configs = ModelConfigs(settings.models_json, settings.models_dir, platform=settings.platform,
                               refresh_seconds=0)
        files = read_model_files(settings.models_dir)
    except ConfigError as exc:
        fail(f"{exc} (run `modelops models validate` for every problem)")
    state = _store(settings) if store else None
    try:
        managed = configs.current(state, strict=True)
        stored = read_store_files(state)[0] if state is not None else {}
    except PlatformError as exc:
        fail(f"cannot read the store: {exc}", 1)
    rows = []
    for name in managed.names:
        cfg = managed.get(name)
        source = (files[name][0] if name in files else stored[name][0] if name in stored
                  else "MODELOPS_MODELS" if settings.models_json else "default")
        rows.append({"model": name, "source": source, "staging_endpoint": cfg.staging_endpoint,
                     "production_endpoint": cfg.production_endpoint, "evaluation_data": cfg.evaluation_data,
                     "canary_steps": list(cfg.canary.steps), "approval_required": cfg.approval_required,
                     "contract": cfg.contract, "allow_contract_change": cfg.allow_contract_change})
    invalid = [{"model": name, "problem": problem} for name, problem in sorted(managed.invalid.items())]
    if as_json:
        emit_json(rows + [{**row, "invalid": True} for row in invalid])
        return
    for row in rows:
        typer.echo(f"{row['model']}  ({row['source']})  staging {row['staging_endpoint']}  production "
                   f"{row['production_endpoint']}  canary {row['canary_steps']}  evaluation {row['evaluation_data']}")
    for row in invalid:
        typer.echo(f"{row['model']}  NOT MANAGED: {row['problem']}")


@models_app.command("put")
def models_put(file: Path = typer.Argument(..., help="<model>.json or <model>.yaml: the file's name is the model's")
               ) -> None:
    """Validate a model's configuration file and store it (config/models/ in the store): a running
    platform manages the model from its next configuration read, without a redeploy."""
    from functions.domain.config import ConfigError, load_managed_models
    from functions.ports import PlatformError
    from functions.services.model_configs import SUFFIXES, ModelConfigs, parse_model_file, store_key

    settings = _settings()
    if file.suffix not in SUFFIXES:
        fail(f"{file}: not a configuration file (name it <model>.json or <model>.yaml)")
    try:
        data = file.read_bytes()
    except OSError as exc:
        fail(f"{file}: cannot be read ({exc.strerror})")
    model = file.stem
    try:
        values = parse_model_file(data, file.suffix, str(file))
        load_managed_models(None, None, {model: (str(file), values)}, settings.platform)
        configs = ModelConfigs(settings.models_json, settings.models_dir, platform=settings.platform)
    except ConfigError as exc:
        fail(str(exc))
    if model in configs.base.models and not configs.implicit_default:
        fail(f"{file}: model {model!r} is configured in MODELOPS_MODELS or MODELOPS_MODELS_DIR already (keep one)")
    state = _store(settings)
    key = store_key(model, file.suffix)
    try:
        others = [store_key(model, suffix) for suffix in SUFFIXES
                  if suffix != file.suffix and state.get(store_key(model, suffix)) is not None]
        if others:
            fail(f"{file}: model {model!r} already has {', '.join(others)} in the store (remove it first: "
                 f"modelops models remove {model})")
        state.put(key, data)
    except PlatformError as exc:
        fail(f"cannot write the store: {exc}", 1)
    typer.echo(f"stored {key} (model {model}; a running platform reads it within "
               f"{settings.config_refresh_seconds:.0f} s)")


@models_app.command("remove")
def models_remove(model: str = typer.Argument(..., help="the model whose stored configuration goes")) -> None:
    """Delete a model's configuration file from the store (its rollouts, records and endpoints stay)."""
    from functions.ports import PlatformError
    from functions.services.model_configs import SUFFIXES, store_key

    settings = _settings()
    state = _store(settings)
    try:
        keys = [store_key(model, suffix) for suffix in SUFFIXES if state.get(store_key(model, suffix)) is not None]
        for key in keys:
            state.delete(key)
    except PlatformError as exc:
        fail(f"cannot write the store: {exc}", 1)
    if not keys:
        fail(f"model {model!r} has no configuration file in the store")
    typer.echo(f"removed {', '.join(keys)}")


@models_app.command("validate")
def models_validate(
    files: Optional[list[Path]] = typer.Argument(None, help="configuration files to check (default: "
                                                           "MODELOPS_MODELS and every file in MODELOPS_MODELS_DIR)"),
    as_json: bool = typer.Option(False, "--json"),
    store: bool = typer.Option(False, "--store", help="also the store's config/models/ files (as a running "
                                                      "platform reads them)"),
) -> None:
    """Check every model's configuration and print every problem, one per line (file, field, fix),
    for the platform MODELOPS_PLATFORM names (the local platform cannot run a registered component).
    Exit 0 when all are valid, 2 otherwise."""
    from functions.domain.config import ConfigError, build_model_config, load_managed_models
    from functions.ports import PlatformError
    from functions.services.model_configs import SUFFIXES, ModelConfigs, read_model_file

    settings = _settings()
    problems: list[str] = []
    checked: list[str] = []
    paths = list(files or [])
    if not paths:
        if settings.models_json:
            checked.append("MODELOPS_MODELS")
            try:
                for name, cfg in load_managed_models(settings.models_json, platform=settings.platform).models.items():
                    problems.extend(_drift_problems(f"MODELOPS_MODELS[{name!r}]", cfg.drift))
            except ConfigError as exc:
                problems.extend(_split(str(exc)))
        folder = settings.models_dir
        if folder is not None:
            if not folder.is_dir():
                problems.append(f"MODELOPS_MODELS_DIR {folder}: no such folder")
            else:
                paths = sorted(p for p in folder.iterdir() if p.suffix in SUFFIXES and not p.name.startswith("."))
    names: dict[str, str] = {}
    for path in paths:
        checked.append(str(path))
        if path.suffix not in SUFFIXES:
            problems.append(f"{path}: not a configuration file (name it <model>.json or <model>.yaml)")
            continue
        if path.stem in names:
            problems.append(f"{path}: model {path.stem!r} also has {names[path.stem]} (keep one file per model)")
        names[path.stem] = str(path)
        try:
            cfg = build_model_config(path.stem, read_model_file(path), where=str(path), platform=settings.platform)
            problems.extend(_drift_problems(str(path), cfg.drift))
        except ConfigError as exc:
            problems.extend(_split(str(exc)))
    if store:
        state = _store(settings)
        checked.append("store config/models/")
        try:
            configs = ModelConfigs(settings.models_json, settings.models_dir, platform=settings.platform,
                                   refresh_seconds=0)
            configs.current(state, strict=True)
        except ConfigError:
            configs = None  # the setting's or the folder's problems are listed above
        except PlatformError as exc:
            fail(f"cannot read the store: {exc}", 1)
        for problem in (configs.problems.values() if configs is not None else ()):
            problems.extend(_split(problem))
    if as_json:
        emit_json({"checked": checked, "valid": not problems, "problems": problems})
    else:
        for problem in problems:
            typer.echo(problem, err=True)
        if not problems:
            typer.echo(f"valid: {', '.join(checked) or 'the default configuration'}")
    raise typer.Exit(BAD_INPUT if problems else OK)


def _drift_problems(where: str, drift: dict[str, Any]) -> list[str]:
    """Unknown drift setting names (their values and column names are checked against the model's
    contract when its drift check runs: the contract comes with the model version)."""
    from ml.drift.config import DriftConfig

    known = sorted(set(DriftConfig.__dataclass_fields__) - {"columns"})
    unknown = sorted(set(drift) - set(known))
    return [f"{where}: drift.{name} is not a drift setting (known: {', '.join(known)})" for name in unknown]


def _split(message: str) -> list[str]:
    return [part.strip() for part in message.split("; ") if part.strip()]
