"""Schema versions of what modelops keeps in the store (records, notes, histories).

A stored JSON object carries `schema_version`; one written before the field existed is version 1
and is read as such. One from a newer modelops is refused with both versions named — never
misread — so an old Function App beside a newer CLI (or a rolled-back deployment) stops cleanly
for what it cannot understand instead of guessing.
"""

from __future__ import annotations

from typing import Any

from functions.ports import PlatformError


def stamped(obj: dict[str, Any], version: int) -> dict[str, Any]:
    """`obj` with its schema version."""
    return {**obj, "schema_version": version}


def readable_version(record: Any, key: str, reads_up_to: int) -> int:
    """The record's schema version (1 when it has none); PlatformError when this modelops cannot read it."""
    version = record.get("schema_version", 1) if isinstance(record, dict) else None
    if not isinstance(version, int) or isinstance(version, bool) or version > reads_up_to:
        raise PlatformError(f"{key}: written by a newer modelops (record schema {version!r}; this one reads up to "
                            f"{reads_up_to}): upgrade modelops before it reads this store")
    return version
