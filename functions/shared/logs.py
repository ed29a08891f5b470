"""Structured logs: one JSON object per record, so Application Insights `traces` can be queried.

Never pass secrets (keys, tokens, connection strings) as fields.
"""

from __future__ import annotations

import json
import logging
from typing import Any


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    logger.log(level, json.dumps({"event": event, **fields}, default=str, separators=(",", ":")))
