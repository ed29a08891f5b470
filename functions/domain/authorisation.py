"""Who may do what to a rollout: a pure decision over the caller, the action and the facts.

    approve, reject                        the approver role (ModelOps.Approver)
    abort, pause, resume, promote,
    retry, undo, freeze, unfreeze          the operator role (ModelOps.Operator)

With Entra ID on (MODELOPS_OPERATOR_AUDIENCE), a caller with a valid bearer token is authorised by
the app roles on that token. A caller with only the function key may do what MODELOPS_KEY_ACTIONS
lists. A person whose identity is known from a verified token never approves (or rejects) a
rollout they started or whose model version they registered. The local CLI (no host) acts as the
user at the keyboard: every action, and its name is a claim, not a verified identity, so the
self-approval rule cannot apply to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

APPROVER_ROLE = "ModelOps.Approver"
OPERATOR_ROLE = "ModelOps.Operator"
APPROVER_ACTIONS = ("approve", "reject")
OPERATOR_ACTIONS = ("abort", "pause", "resume", "promote", "retry", "undo", "freeze", "unfreeze")
ACTIONS = APPROVER_ACTIONS + OPERATOR_ACTIONS
ROLE_FOR = {**{a: APPROVER_ROLE for a in APPROVER_ACTIONS}, **{a: OPERATOR_ROLE for a in OPERATOR_ACTIONS}}

FUNCTION_KEY = "function key"


@dataclass(frozen=True)
class Caller:
    """Who is asking. `via`: "entra" (a validated bearer token), "function key" (the key alone;
    identity unknown), or "local" (the CLI in-process on the user's own home)."""

    identity: str
    via: str
    roles: tuple[str, ...] = ()
    ids: tuple[str, ...] = ()  # every id the token names the person by (oid, upn, preferred_username)

    @classmethod
    def function_key(cls) -> "Caller":
        return cls(FUNCTION_KEY, FUNCTION_KEY)

    @classmethod
    def local(cls, who: str) -> "Caller":
        return cls(who, "local")

    @property
    def verified(self) -> bool:
        return self.via == "entra"

    def to_dict(self) -> dict[str, object]:
        return {"identity": self.identity, "via": self.via, "roles": list(self.roles)}


@dataclass(frozen=True)
class Policy:
    """MODELOPS_KEY_ACTIONS: what a function key alone may do (default: every action, as before
    roles existed). `roles`: the app role each action needs with Entra on."""

    key_actions: frozenset[str] = frozenset(ACTIONS)
    roles: dict[str, str] = field(default_factory=lambda: dict(ROLE_FOR))

    @classmethod
    def from_setting(cls, raw: str | None) -> "Policy":
        if raw is None or not raw.strip():
            return cls()
        names = {a.strip().lower() for a in raw.split(",") if a.strip()}
        if names == {"none"}:
            return cls(key_actions=frozenset())
        unknown = sorted(names - set(ACTIONS))
        if unknown:
            raise ValueError(f"MODELOPS_KEY_ACTIONS names unknown action(s) {', '.join(unknown)}; "
                             f"known: {', '.join(ACTIONS)} (or 'none')")
        return cls(key_actions=frozenset(names))


def authorise(action: str, caller: Caller, policy: Policy, *, started_by: Iterable[str] = (),
              registered_by: Iterable[str] = ()) -> str | None:
    """None when allowed, else the reason for a 403 (said to the caller and audited)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}")
    if caller.via == "local":
        return None
    if caller.via == FUNCTION_KEY:
        if action in policy.key_actions:
            return None
        return (f"a function key alone may not {action} (MODELOPS_KEY_ACTIONS allows "
                f"{', '.join(sorted(policy.key_actions)) or 'nothing'}); sign in with Entra ID")
    role = policy.roles[action]
    if role not in caller.roles:
        return f"{caller.identity} may not {action}: the {role} app role is required"
    if action in APPROVER_ACTIONS:
        mine = {i.lower() for i in caller.ids + (caller.identity,) if i}
        if mine & {s.lower() for s in started_by if s}:
            return f"{caller.identity} started this rollout and may not {action} it"
        if mine & {r.lower() for r in registered_by if r}:
            return f"{caller.identity} registered this model version and may not {action} its rollout"
    return None
