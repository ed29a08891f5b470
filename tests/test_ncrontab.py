"""The NCRONTAB parser `modelops up` schedules timers with (functions/shared/ncrontab.py), on the
examples of Microsoft's "Timer trigger for Azure Functions" page and the app's own schedules."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from functions.shared.ncrontab import Schedule, ScheduleError

UTC = timezone.utc
# 2026-12-01 is a Tuesday
BASE = datetime(2026, 12, 1, 10, 7, 3, tzinfo=UTC)


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize("expression, base, expected", [
    # the docs' NCRONTAB examples
    ("0 */5 * * * *", BASE, at(2026, 12, 1, 10, 10, 0)),            # once every five minutes
    ("0 0 * * * *", BASE, at(2026, 12, 1, 11, 0, 0)),               # once at the top of every hour
    ("0 0 */2 * * *", BASE, at(2026, 12, 1, 12, 0, 0)),             # once every two hours
    ("0 0 9-17 * * *", at(2026, 12, 1, 17, 30, 0), at(2026, 12, 2, 9, 0, 0)),  # every hour 9 AM - 5 PM
    ("0 30 9 * * *", BASE, at(2026, 12, 2, 9, 30, 0)),              # at 9:30 AM every day
    ("0 30 9 * * 1-5", at(2026, 12, 4, 10, 0, 0), at(2026, 12, 7, 9, 30, 0)),  # weekdays: Fri → Mon
    ("0 30 9 * Jan Mon", BASE, at(2027, 1, 4, 9, 30, 0)),           # every Monday in January
    # the app's timers (functions/triggers/timers_monitoring.py)
    ("0 5 * * * *", BASE, at(2026, 12, 1, 11, 5, 0)),
    ("0 30 2 * * *", BASE, at(2026, 12, 2, 2, 30, 0)),
    # seconds, five fields, names in any case, a list, a step from a value
    ("* * * * * *", BASE, at(2026, 12, 1, 10, 7, 4)),
    ("*/10 * * * * *", BASE, at(2026, 12, 1, 10, 7, 10)),
    ("30 9 * * *", BASE, at(2026, 12, 2, 9, 30, 0)),
    ("0 0 0 * * SUNDAY", BASE, at(2026, 12, 6, 0, 0, 0)),
    ("0 0 0 1,15 * *", BASE, at(2026, 12, 15, 0, 0, 0)),
    ("5/20 * * * * *", BASE, at(2026, 12, 1, 10, 7, 5)),
    # day-of-month AND day-of-week (NCrontab), and a day that is not in every month
    ("0 0 0 13 * Fri", BASE, at(2027, 8, 13, 0, 0, 0)),
    ("0 0 0 31 * *", at(2027, 1, 31, 1, 0, 0), at(2027, 3, 31, 0, 0, 0)),
])
def test_next_occurrence(expression, base, expected):
    assert Schedule.parse(expression).next_after(base) == expected


def test_the_next_occurrence_is_strictly_after_the_base_time():
    on_time = at(2026, 12, 1, 11, 5, 0)
    assert Schedule.parse("0 5 * * * *").next_after(on_time) == at(2026, 12, 1, 12, 5, 0)


@pytest.mark.parametrize("expression, words", [
    ("0 5 * * *  * *", "6 fields"),
    ("60 * * * * *", "second field '60' is outside 0-59"),
    ("0 0 25 * * *", "hour field '25'"),
    ("0 0 0 * Smarch *", "month field 'Smarch' is not a number or a name"),
    ("0 0 0 * * 1-9", "day-of-week field '1-9' is outside 0-6"),
    ("0 */0 * * * *", "step that is not a positive number"),
    ("0 0 5-1 * * *", "ends before it starts"),
    ("0 0 0 30 Feb *", "does not fire"),
])
def test_bad_schedules_name_the_field(expression, words):
    with pytest.raises(ScheduleError, match=None) as caught:
        Schedule.parse(expression).next_after(BASE)
    assert words in str(caught.value)
