"""`modelops models list` and `modelops models validate`: the managed models' configuration, from
MODELOPS_MODELS and the per-model files (MODELOPS_MODELS_DIR, or files given on the command line).
Both read configuration only: no platform is opened, so they work beside a running one and in CI."""

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


@models_app.command("list")
def models_list(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every managed model, where its configuration comes from, and what it says."""
    from functions.domain.config import ConfigError
    from functions.services.model_configs import managed_models, read_model_files

    settings = _settings()
    try:
        managed = managed_models(settings.models_json, settings.models_dir, platform=settings.platform)
        files = read_model_files(settings.models_dir)
    except ConfigError as exc:
        fail(f"{exc} (run `modelops models validate` for every problem)")
    rows = []
    for name in managed.names:
        cfg = managed.get(name)
        source = files[name][0] if name in files else "MODELOPS_MODELS" if settings.models_json else "default"
        rows.append({"model": name, "source": source, "staging_endpoint": cfg.staging_endpoint,
                     "production_endpoint": cfg.production_endpoint, "evaluation_data": cfg.evaluation_data,
                     "canary_steps": list(cfg.canary.steps), "approval_required": cfg.approval_required,
                     "contract": cfg.contract, "allow_contract_change": cfg.allow_contract_change})
    if as_json:
        emit_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['model']}  ({row['source']})  staging {row['staging_endpoint']}  production "
                   f"{row['production_endpoint']}  canary {row['canary_steps']}  evaluation {row['evaluation_data']}")


@models_app.command("validate")
def models_validate(
    files: Optional[list[Path]] = typer.Argument(None, help="configuration files to check (default: "
                                                           "MODELOPS_MODELS and every file in MODELOPS_MODELS_DIR)"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Check every model's configuration and print every problem, one per line (file, field, fix),
    for the platform MODELOPS_PLATFORM names (the local platform cannot run a registered component).
    Exit 0 when all are valid, 2 otherwise."""
    from functions.domain.config import ConfigError, build_model_config, load_managed_models
    from functions.services.model_configs import SUFFIXES, read_model_file

    settings = _settings()
    problems: list[str] = []
    checked: list[str] = []
    paths = list(files or [])
    if not paths:
        if settings.models_json:
            checked.append("MODELOPS_MODELS")
            try:
                load_managed_models(settings.models_json, platform=settings.platform)
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
            build_model_config(path.stem, read_model_file(path), where=str(path), platform=settings.platform)
        except ConfigError as exc:
            problems.extend(_split(str(exc)))
    if as_json:
        emit_json({"checked": checked, "valid": not problems, "problems": problems})
    else:
        for problem in problems:
            typer.echo(problem, err=True)
        if not problems:
            typer.echo(f"valid: {', '.join(checked) or 'the default configuration'}")
    raise typer.Exit(BAD_INPUT if problems else OK)


def _split(message: str) -> list[str]:
    return [part.strip() for part in message.split("; ") if part.strip()]
