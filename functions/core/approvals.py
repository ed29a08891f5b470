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
