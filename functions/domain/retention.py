"""Retention: which stored records are old enough to go (a pure decision; the service gathers them).

Kinds (MODELOPS_RETENTION_DAYS): "exports" (exported inference data), "reports" (drift results and
reports), "gate_reports", "audit" (rollout audit trails, operator records, event decisions). A
record goes when it is older than its kind's days (0: kept forever) AND nothing live references
it: the service passes what a running rollout or the current production version still needs as
`protected` (its rollout's gate report and audit trail, the latest drift result and report of the
production version, the exports inside the drift window and those that result was computed from).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Iterable

KINDS = ("exports", "reports", "gate_reports", "audit")


@dataclass(frozen=True)
class Stored:
    key: str
    kind: str
    at: datetime  # when it was written (or the time it is about)


def expired(items: Iterable[Stored], days: dict[str, float], now: datetime,
            protected: set[str]) -> list[str]:
    """Keys to delete, sorted: older than their kind's retention and not protected."""
    out = []
    for item in items:
        keep_for = days.get(item.kind, 0)
        if keep_for > 0 and item.at < now - timedelta(days=keep_for) and item.key not in protected:
            out.append(item.key)
    return sorted(out)
