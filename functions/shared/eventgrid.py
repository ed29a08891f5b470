"""The Event Grid message AzureML sends when a model version is registered, as this app sees it
(Event Grid schema, camelCase `data` as live workspaces send it; functions/domain/events.py parses
every documented variant). The local workspace emits exactly this shape.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

MODEL_REGISTERED = "Microsoft.MachineLearningServices.ModelRegistered"


def model_registered_payload(topic: str, name: str, version: str, tags: dict[str, str],
                             when: datetime | None = None) -> dict[str, Any]:
    when = when or datetime.now(timezone.utc)
    return {
        "topic": topic,
        "subject": f"models/{name}:{version}",
        "eventType": MODEL_REGISTERED,
        "eventTime": when.isoformat().replace("+00:00", "Z"),
        "id": str(uuid.uuid4()),
        "data": {"modelName": name, "modelVersion": version, "modelTags": tags, "modelProperties": {}},
        "dataVersion": "2",
        "metadataVersion": "1",
    }
