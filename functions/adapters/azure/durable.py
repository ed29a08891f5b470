"""ports.Orchestrations on the Durable Functions client a trigger receives (its binding)."""

from __future__ import annotations

from typing import Any

# Runtime statuses of an instance that can still receive events (azure.durable_functions'
# OrchestrationRuntimeStatus values).
_ACTIVE = ("Running", "Pending", "ContinuedAsNew")


class DurableOrchestrations:
    def __init__(self, client: Any) -> None:
        self.client = client

    async def _status(self, instance_id: str) -> str | None:
        status = await self.client.get_status(instance_id)
        runtime_status = getattr(status, "runtime_status", None) if status is not None else None
        if runtime_status is None:
            return None
        return str(getattr(runtime_status, "value", runtime_status))

    async def exists(self, instance_id: str) -> bool:
        return await self._status(instance_id) is not None

    async def start(self, name: str, instance_id: str, input_: Any) -> None:
        await self.client.start_new(name, instance_id, input_)

    async def raise_event(self, instance_id: str, event: str, data: Any) -> bool:
        if await self._status(instance_id) not in _ACTIVE:
            return False
        await self.client.raise_event(instance_id, event, data)
        return True
