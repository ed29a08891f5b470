"""The Bicep templates under infra/, parsed without the Bicep compiler (which cannot be installed here).

- syntax: tree-sitter with the tree-sitter-bicep grammar (PyPI) — ERROR or MISSING nodes are errors;
- structure: pycep-parser (PyPI), Bicep → a JSON-like dict of parameters, variables, resources,
  modules and outputs. pycep renders identifiers and string literals alike as Python strings and
  keeps interpolated strings as their source text (`'${a}/b'` → "${a}/b"); the helpers below read
  it that way.

checkov parses with its own pinned pycep-parser (0.5.1), which refuses some valid Bicep that 0.7.1
reads: a child resource declared with a loop inside its parent, and ten or more consecutive comment
lines in an object. tests/test_infra.py's checkov test fails on any file checkov could not parse.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any, Iterator

from functions.settings import REPO_ROOT

INFRA = REPO_ROOT / "infra"
MAIN = INFRA / "main.bicep"
POST_DEPLOY = INFRA / "post-deploy" / "main.bicep"


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


@functools.lru_cache(maxsize=1)
def _ts_parser():
    import tree_sitter_bicep
    from tree_sitter import Language, Parser

    return Parser(Language(tree_sitter_bicep.language()))


def syntax_errors(source: bytes) -> list[str]:
    """Every ERROR / MISSING node tree-sitter-bicep finds, as 'line:column: text'."""
    tree = _ts_parser().parse(source)
    found: list[str] = []
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.type == "ERROR" or node.is_missing:
            row, column = node.start_point
            text = node.text.decode(errors="replace")[:60] if node.text else node.type
            found.append(f"{row + 1}:{column + 1}: {text!r}")
        stack.extend(node.children)
    return sorted(found)


@functools.lru_cache(maxsize=None)
def parsed(path: Path) -> dict[str, Any]:
    from pycep import BicepParser

    return BicepParser().parse(text=path.read_text())


def resources(path: Path, type_: str | None = None) -> dict[str, dict[str, Any]]:
    """Symbolic name → resource, optionally only those of one type."""
    return {name: r for name, r in parsed(path).get("resources", {}).items()
            if type_ is None or r["type"] == type_}


def body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's or module's body, looking through `[for …: {…}]` and `if (…)` (pycep nests the
    body under "config" beside "loop_type" / "condition")."""
    config = resource["config"]
    while "config" in config and set(config) <= {"config", "condition", "loop_type"}:
        config = config["config"]
    return config


def modules(path: Path) -> dict[str, dict[str, Any]]:
    return parsed(path).get("modules", {})


def variable(path: Path, name: str) -> Any:
    return parsed(path)["variables"][name]["value"]


def parameters(path: Path) -> dict[str, dict[str, Any]]:
    return parsed(path).get("parameters", {})


def walk(value: Any) -> Iterator[Any]:
    """Every dict, list and scalar inside a parsed value."""
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def functions_called(value: Any, kind: str) -> list[dict[str, Any]]:
    """The parameters of every call of one pycep function kind ('guid', 'list_func', …) in a value."""
    return [v["function"]["parameters"] for v in walk(value)
            if isinstance(v, dict) and isinstance(v.get("function"), dict) and v["function"].get("type") == kind]


def role_definition_ids(path: Path) -> dict[str, str]:
    """Variables holding a role definition id (a GUID literal): name → GUID."""
    guid = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
    return {name: v["value"] for name, v in parsed(path).get("variables", {}).items()
            if isinstance(v["value"], str) and guid.fullmatch(v["value"])}


def assigned_role(resource: dict[str, Any]) -> str:
    """The role definition a roleAssignments resource assigns: the identifier passed to
    subscriptionResourceId('Microsoft.Authorization/roleDefinitions', <it>)."""
    calls = functions_called(body(resource)["properties"]["roleDefinitionId"], "subscription_resource_id")
    assert len(calls) == 1, resource
    call = calls[0]
    assert call["resource_type"] == "Microsoft.Authorization/roleDefinitions", call
    return call["resource_name_1"]


def bicep_string(raw: str, values: dict[str, str]) -> str:
    """Render a pycep string literal: the escapes Bicep has (\\n, \\', \\\\, \\$) and `${name}`
    interpolations, each of which must be given in `values` (keyed by its expression text)."""
    def interpolate(match: re.Match) -> str:
        expression = match.group(1)
        if expression not in values:
            raise KeyError(f"no value given for ${{{expression}}} in {raw!r}")
        return values[expression]

    out = re.sub(r"(?<!\\)\$\{([^}]*)\}", interpolate, raw)
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), out)


def code_without_comments(text: str) -> str:
    """The source with its // comments removed (not those inside '…' strings, such as URLs)."""
    lines = []
    for line in text.splitlines():
        quoted, out, i = False, [], 0
        while i < len(line):
            if line[i] == "\\" and quoted:
                out.append(line[i:i + 2])
                i += 2
                continue
            if line[i] == "'":
                quoted = not quoted
            elif not quoted and line.startswith("//", i):
                break
            out.append(line[i])
            i += 1
        lines.append("".join(out))
    return "\n".join(lines)
