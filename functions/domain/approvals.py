"""Parsing an approval answer: {"approved": bool, "by": str, "comment": str}."""

from __future__ import annotations

import json
from typing import Any


def parse_approval(body: bytes | str) -> dict[str, Any]:
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ValueError("body must be JSON: {\"approved\": true|false, \"by\": \"name\"}") from None
    if not isinstance(data, dict) or not isinstance(data.get("approved"), bool):
        raise ValueError("body must have \"approved\": true or false")
    by = data.get("by", "")
    comment = data.get("comment", "")
    if not isinstance(by, str) or not by.strip():
        raise ValueError("body must say who decides: \"by\": \"name\"")
    if not isinstance(comment, str):
        raise ValueError("\"comment\" must be a string")
    return {"approved": data["approved"], "by": by.strip()[:200], "comment": comment[:2000]}


def parse_actor(body: bytes | str, default_by: str) -> tuple[str, str]:
    """An optional {"by": str, "comment": str} body of an operator action; empty means `default_by`."""
    if not body or not str(body if isinstance(body, str) else body.decode("utf-8", "replace")).strip():
        return default_by, ""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError('body must be JSON: {"by": "name", "comment": "why"} (both optional)') from None
    if not isinstance(data, dict):
        raise ValueError('body must be a JSON object: {"by": "name", "comment": "why"}')
    by, comment = data.get("by", default_by), data.get("comment", "")
    if not isinstance(by, str) or not isinstance(comment, str):
        raise ValueError('"by" and "comment" must be strings')
    return (by.strip() or default_by)[:200], comment[:2000]
