"""The credit-card-default feature schema: one source of truth for training, scoring and drift.

Stdlib only, so the Function App can import it without paying for pandas. The domains follow the
UCI "default of credit card clients" data the scenario derives from (X2 sex, X3 education,
X4 marriage, X6..X11 repayment status), spelled the way the scenario's inference data spells them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

MODEL_NAME = "credit-card-default"
TARGET = "default_payment_next_month"

SEX = ("female", "male")
EDUCATION = ("graduate_school", "university", "high_school", "others")
MARRIAGE = ("married", "single", "others")
# UCI repayment status: -2/-1 paid duly, 0 revolving (paid the minimum, no delay), k = k months late.
REPAYMENT_STATUS = (
    "duly_paid",
    "no_delay",
    "delay_1_month",
    *(f"delay_{k}_months" for k in range(2, 10)),
)

FeatureKind = Literal["categorical", "numeric"]


@dataclass(frozen=True)
class Feature:
    name: str
    kind: FeatureKind
    domain: tuple[str, ...] = ()  # known levels of a categorical; unseen levels are tolerated
    # Valid range of a numeric (inclusive; None: unbounded). Training data outside it is refused.
    minimum: float | None = None
    maximum: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.kind}
        if self.kind == "categorical":
            out["domain"] = list(self.domain)
        # Optional keys: score.py reads name/type/domain and ignores the rest.
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return out


CATEGORICAL_FEATURES: tuple[Feature, ...] = (
    Feature("sex", "categorical", SEX),
    Feature("education", "categorical", EDUCATION),
    Feature("marriage", "categorical", MARRIAGE),
    *(Feature(f"repayment_status_{i}", "categorical", REPAYMENT_STATUS) for i in range(1, 7)),
)
NUMERIC_FEATURES: tuple[Feature, ...] = (
    Feature("credit_limit", "numeric", minimum=0),
    Feature("age", "numeric", minimum=0, maximum=150),
    # Bills are unbounded: UCI bill amounts are negative when a client overpaid (a credit balance).
    *(Feature(f"bill_amount_{i}", "numeric") for i in range(1, 7)),
    *(Feature(f"payment_amount_{i}", "numeric", minimum=0) for i in range(1, 7)),
)
NUMERIC_BY_NAME: dict[str, Feature] = {f.name: f for f in NUMERIC_FEATURES}
FEATURES: tuple[Feature, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES

CATEGORICAL = tuple(f.name for f in CATEGORICAL_FEATURES)
NUMERIC = tuple(f.name for f in NUMERIC_FEATURES)
FEATURE_NAMES = CATEGORICAL + NUMERIC
COLUMNS = FEATURE_NAMES + (TARGET,)

_TRUE = {"1", "true", "yes", "1.0"}
_FALSE = {"0", "false", "no", "0.0"}


def parse_target(value: Any) -> int:
    """Map a target cell to 1/0. Accepts 1/0, True/False (any case) and their string forms."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return int(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return 1
    if text in _FALSE:
        return 0
    raise ValueError(f"target {TARGET!r} must be 1/0 or true/false, got {value!r}")


def schema_dict() -> dict[str, Any]:
    """The schema as JSON-able data (goes into the model card, which score.py validates against)."""
    return {
        "features": [f.to_dict() for f in FEATURES],
        "target": TARGET,
    }
