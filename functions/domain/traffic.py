"""Pure traffic-map arithmetic for canaries and rollbacks."""

from __future__ import annotations


def canary_map(previous: dict[str, int], new: str, percent: int) -> dict[str, int]:
    """Give `new` `percent`% and share the rest among the previous deployments in proportion to
    their previous weights (largest remainder, so the map sums to exactly 100). Every deployment
    in `previous` stays in the map, at 0 if need be: AzureML re-PUTs the endpoint with the map, and
    a map that drops a live deployment would fail or detach it."""
    if not 0 <= percent <= 100:
        raise ValueError(f"percent must be within 0..100, got {percent}")
    others = {name: weight for name, weight in previous.items() if name != new}
    total = sum(others.values())
    rest = 100 - percent
    out = {name: 0 for name in others}
    if total > 0 and rest > 0:
        exact = {name: rest * weight / total for name, weight in others.items()}
        floors = {name: int(value) for name, value in exact.items()}
        short = rest - sum(floors.values())
        by_remainder = sorted(others, key=lambda n: (exact[n] - floors[n], others[n], n), reverse=True)
        for name in by_remainder[:short]:
            floors[name] += 1
        out = floors
    elif rest > 0:
        percent = 100  # nothing else serves traffic: the new deployment takes it all
    out[new] = percent
    return out


def without(traffic: dict[str, int], name: str) -> dict[str, int]:
    """The map after deleting a deployment that has no traffic."""
    if traffic.get(name, 0) != 0:
        raise ValueError(f"deployment {name} still has {traffic[name]}% of the traffic")
    return {k: v for k, v in traffic.items() if k != name}


def restore(previous: dict[str, int], new: str) -> dict[str, int]:
    """Rollback map: the previous weights, with the (still live) new deployment at 0."""
    out = {name: weight for name, weight in previous.items() if name != new}
    out[new] = 0
    return out


def serving(traffic: dict[str, int]) -> list[str]:
    return sorted(name for name, weight in traffic.items() if weight > 0)
