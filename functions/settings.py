"""One settings object, read from app settings / environment variables in one place.

In Azure these are Function App application settings; locally `local.settings.json` (Core Tools)
or the environment (the `modelops` CLI). Every name is documented in local.settings.json.template.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

REPO_ROOT = Path(__file__).resolve().parent.parent
ML_DIR = REPO_ROOT / "ml"
SCORE_SCRIPT = ML_DIR / "score.py"
SAMPLE_REQUEST = ML_DIR / "sample.json"


class SettingsError(ValueError):
    """A setting is present but unusable; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    platform: str = "local"  # "local" (embedded) or "azure"
    home: Path = field(default_factory=lambda: REPO_ROOT / ".modelops")  # local platform state
    serving_python: Path = field(default_factory=lambda: REPO_ROOT / ".venv-serve" / "bin" / "python")
    max_request_rows: int = 10_000
    log_level: str = "INFO"
    models_json: str | None = None  # MODELOPS_MODELS: which models are managed, and how
    allowed_topics: tuple[str, ...] = ()  # staging workspace resource id(s) events may come from

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        env = os.environ if env is None else env
        defaults = cls()
        platform = env.get("MODELOPS_PLATFORM", defaults.platform).strip().lower()
        if platform not in ("local", "azure"):
            raise SettingsError(f"MODELOPS_PLATFORM must be 'local' or 'azure', got {platform!r}")
        return cls(
            platform=platform,
            home=Path(env.get("MODELOPS_HOME", str(defaults.home))).expanduser(),
            serving_python=Path(env.get("MODELOPS_SERVING_PYTHON", str(defaults.serving_python))).expanduser(),
            max_request_rows=_int(env, "MODELOPS_MAX_ROWS", defaults.max_request_rows, minimum=1),
            log_level=env.get("MODELOPS_LOG_LEVEL", defaults.log_level).upper(),
            models_json=env.get("MODELOPS_MODELS") or None,
            allowed_topics=tuple(t.strip() for t in env.get("MODELOPS_STAGING_WORKSPACE_ID", "").split(",")
                                 if t.strip()),
        )


def _int(env: Mapping[str, str], name: str, default: int, minimum: int | None = None) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    return value
