"""What every `modelops` command prints and how it fails: one line on stderr, a meaningful exit code.

Exit codes: 0 success; 1 a failure; 2 bad input (one line naming the problem); 3 the command worked
but a rollout it ran did not succeed (rejected, rolled back, failed, abandoned), so scripts can
tell an unsuccessful rollout from a crash.
"""

from __future__ import annotations

import json
import sys
from typing import Any

OK, FAILURE, BAD_INPUT, ROLLOUT_UNSUCCESSFUL = 0, 1, 2, 3


class CliError(Exception):
    def __init__(self, message: str, code: int = BAD_INPUT) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = BAD_INPUT) -> None:
    raise CliError(message, code)


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def one_line(text: str) -> str:
    return " ".join(line.strip() for line in str(text).splitlines() if line.strip())
