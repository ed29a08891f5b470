"""Seeded synthetic credit-card-default data with the scenario's schema and real (not perfect) signal.

The generative story follows the UCI "default of credit card clients" data the scenario derives
from: a latent credit risk drives lower limits, more and longer repayment delays, higher
utilisation and smaller payments; default next month depends on what is observable plus noise,
so a random forest reaches a realistic ROC AUC (≈0.75–0.8), not ≈1.0. Money is on the scenario's
scale (UCI NT$ / 20). Knobs shift the population for drift scenarios.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ml import schema

if TYPE_CHECKING:  # pandas/numpy are loaded only when data is generated
    import pandas as pd


@dataclass(frozen=True)
class Drift:
    """Population shift applied by the generator (all zero/one = the training population)."""

    credit_limit_factor: float = 1.0  # multiplies credit limits (and with them bills/payments)
    age_shift: float = 0.0  # years added to every age
    repayment_delay_shift: float = 0.0  # added to the log-odds of being late each month

    @property
    def is_none(self) -> bool:
        return self == Drift()


NO_DRIFT = Drift()
# A clearly drifted population: richer, older clients who pay late more often.
STRONG_DRIFT = Drift(credit_limit_factor=1.8, age_shift=8.0, repayment_delay_shift=1.2)


def generate(
    n_rows: int = 30_000,
    seed: int = 0,
    drift: Drift = NO_DRIFT,
    labelled: bool = True,
) -> "pd.DataFrame":
    """Return ``n_rows`` rows with the 23 features (and the target when ``labelled``).

    The same (n_rows, seed, drift) always yields the same frame.
    """
    import numpy as np
    import pandas as pd

    if n_rows < 1:
        raise ValueError("n_rows must be at least 1")
    rng = np.random.default_rng(seed)
    n = n_rows

    sex = rng.choice(schema.SEX, size=n, p=[0.60, 0.40])
    education = rng.choice(schema.EDUCATION, size=n, p=[0.35, 0.47, 0.16, 0.02])
    marriage = rng.choice(schema.MARRIAGE, size=n, p=[0.46, 0.53, 0.01])
    age = 21.0 + rng.gamma(shape=2.0, scale=7.0, size=n) + np.where(marriage == "married", 4.0, 0.0)
    age = np.clip(np.round(age + drift.age_shift), 21, 79)

    # Latent risk: younger, less educated clients are riskier on average.
    edu_risk = pd.Series(education).map(
        {"graduate_school": -0.35, "university": 0.05, "high_school": 0.25, "others": -0.2}
    ).to_numpy()
    risk = rng.normal(0.0, 1.0, size=n) + edu_risk - 0.012 * (age - 35.0)

    log_limit = np.log(7_000.0) - 0.45 * risk + 0.01 * (age - 35.0) + rng.normal(0.0, 0.7, size=n)
    credit_limit = np.clip(np.round(np.exp(log_limit) / 500.0) * 500.0, 500.0, 50_000.0)
    credit_limit = np.round(credit_limit * drift.credit_limit_factor / 500.0) * 500.0

    # Repayment status, month 6 (oldest) to month 1 (most recent): delays persist and lengthen.
    late_logit = -2.1 + 1.0 * risk + drift.repayment_delay_shift
    duly_share = 1.0 / (1.0 + np.exp(0.4 + 0.8 * risk))  # low-risk clients tend to pay in full
    delay = np.zeros((n, 6), dtype=np.int64)  # -1 duly paid, 0 no delay, k months late
    prev = np.where(rng.random(n) < duly_share, -1, 0)
    for month in range(5, -1, -1):
        was_late = prev > 0
        p_late = 1.0 / (1.0 + np.exp(-(late_logit + 1.6 * was_late)))
        late = rng.random(n) < p_late
        grows = rng.random(n) < 0.2  # most late payers stay at the same delay, a few fall further behind
        lengthen = np.where(was_late, prev + grows, rng.choice([1, 2], size=n, p=[0.55, 0.45]))
        settled = np.where(rng.random(n) < duly_share, -1, 0)
        prev = np.where(late, np.minimum(lengthen, 9), settled)
        delay[:, month] = prev

    # Bills follow utilisation of the limit; payments follow the status of the month.
    utilisation = np.clip(rng.beta(0.8, 1.6, size=n) + 0.12 * risk, 0.0, 1.2)
    bills = np.empty((n, 6))
    payments = np.empty((n, 6))
    level = utilisation * credit_limit
    for month in range(5, -1, -1):
        level = np.maximum(level * rng.normal(1.0, 0.08, size=n), 0.0)
        status = delay[:, month]
        no_use = (status == -1) & (rng.random(n) < 0.35)
        bills[:, month] = np.where(no_use, 0.0, level)
        pay_share = np.select(
            [status == -1, status == 0],
            [rng.uniform(0.8, 1.0, size=n), rng.uniform(0.03, 0.25, size=n)],
            default=rng.uniform(0.0, 0.05, size=n),
        )
        payments[:, month] = bills[:, month] * pay_share
    # A few overpaid accounts carry a small negative balance, as in the source data.
    credit = rng.random((n, 6)) < 0.015
    bills = np.where(credit, -rng.uniform(0.0, 50.0, size=(n, 6)), bills)
    bills = np.round(bills, 2)
    payments = np.round(np.maximum(payments, 0.0), 2)

    frame = pd.DataFrame({"sex": sex, "education": education, "marriage": marriage})
    for i in range(6):
        frame[f"repayment_status_{i + 1}"] = _status_labels(delay[:, i])
    frame["credit_limit"] = credit_limit
    frame["age"] = age
    for i in range(6):
        frame[f"bill_amount_{i + 1}"] = bills[:, i]
    for i in range(6):
        frame[f"payment_amount_{i + 1}"] = payments[:, i]
    frame = frame[list(schema.FEATURE_NAMES)]

    if labelled:
        recent = np.clip(delay[:, 0], 0, 9)
        months_late = (delay > 0).sum(axis=1)
        util_now = np.clip(bills[:, 0] / credit_limit, -0.1, 1.5)
        paid_ratio = payments[:, :3].sum(axis=1) / np.maximum(bills[:, :3].sum(axis=1), 1.0)
        logit = (
            -2.2
            + 0.75 * np.minimum(recent, 3)
            + 0.18 * months_late
            + 0.5 * util_now
            - 0.45 * np.clip(paid_ratio, 0.0, 1.0)
            - 0.25 * np.log(credit_limit / 7_000.0)
            + 0.35 * risk  # unobserved part of the risk: keeps AUC realistic
            + rng.normal(0.0, 0.8, size=n)
        )
        frame[schema.TARGET] = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    return frame


def _status_labels(codes: "np.ndarray") -> "np.ndarray":
    import numpy as np

    labels = np.array(schema.REPAYMENT_STATUS, dtype=object)
    # -1 → duly_paid (index 0), 0 → no_delay (1), k → delay_k (k + 1)
    return labels[np.clip(codes, -1, 9) + 1]


if TYPE_CHECKING:
    import numpy as np
