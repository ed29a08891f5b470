"""NCRONTAB schedules, as the Functions timer trigger reads them: when does "0 5 * * * *" fire next?

    {second} {minute} {hour} {day} {month} {day-of-week}     (six fields; five fields: no seconds)

Each field: `*`, a value, a range `a-b`, a list `a,b`, a step `*/n` or `a-b/n`. Months and days of
the week may be named in English, any case, full or abbreviated ("Jan", "monday"); days of the week
are 0-6 with 0 for Sunday. Times are UTC (the Functions default without WEBSITE_TIME_ZONE).

Checked against Microsoft's "Timer trigger for Azure Functions" (MicrosoftDocs/azure-docs,
articles/azure-functions/functions-bindings-timer.md: the field order, names and the NCRONTAB
examples tests/test_ncrontab.py runs) and atifaziz/NCrontab `CrontabSchedule.TryGetNextOccurrence`
(the library the host uses): the next occurrence is strictly after the base time, and a day must
match the day-of-month field AND the day-of-week field (unlike Vixie cron's OR).
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

MONTHS = {name.lower(): number for number, name in enumerate(calendar.month_name) if name}
MONTHS.update({name.lower(): number for number, name in enumerate(calendar.month_abbr) if name})
# Python's calendar counts Monday as 0; NCRONTAB counts Sunday as 0
DAYS = {name.lower(): (number + 1) % 7 for number, name in enumerate(calendar.day_name)}
DAYS.update({name.lower(): (number + 1) % 7 for number, name in enumerate(calendar.day_abbr)})
# (name, lowest, highest, names)
FIELDS = (("second", 0, 59, {}), ("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day", 1, 31, {}),
          ("month", 1, 12, MONTHS), ("day-of-week", 0, 6, DAYS))
SEARCH_DAYS = 366 * 8  # "29 Feb on a Monday" recurs within 28 years; anything rarer than 8 years is refused


class ScheduleError(ValueError):
    """The expression is not an NCRONTAB schedule (the message names the field)."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday

    @classmethod
    def parse(cls, expression: str) -> "Schedule":
        parts = str(expression).split()
        if len(parts) == 5:
            parts = ["0", *parts]
        if len(parts) != 6:
            raise ScheduleError(f"schedule {expression!r}: NCRONTAB needs 6 fields ({{second}} {{minute}} {{hour}} "
                                f"{{day}} {{month}} {{day-of-week}}) or 5 without seconds, got {len(parts)}")
        values = [_field(part, *spec, expression) for part, spec in zip(parts, FIELDS)]
        return cls(expression, *values)

    def next_after(self, moment: datetime) -> datetime:
        """The first time strictly after `moment` the schedule fires (UTC, whole seconds)."""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
        start = moment.replace(microsecond=0)
        day = start.date()
        for offset in range(SEARCH_DAYS):
            date = day + timedelta(days=offset)
            if date.month not in self.months or date.day not in self.days:
                continue
            if (date.weekday() + 1) % 7 not in self.weekdays:
                continue
            base = start if offset == 0 else None
            found = self._first_time_on(date, base)
            if found is not None:
                return found
        raise ScheduleError(f"schedule {self.expression!r} does not fire within {SEARCH_DAYS // 366} years")

    def _first_time_on(self, date, after: datetime | None) -> datetime | None:
        for hour in sorted(self.hours):
            if after is not None and hour < after.hour:
                continue
            for minute in sorted(self.minutes):
                if after is not None and (hour, minute) < (after.hour, after.minute):
                    continue
                for second in sorted(self.seconds):
                    if after is not None and (hour, minute, second) <= (after.hour, after.minute, after.second):
                        continue
                    return datetime(date.year, date.month, date.day, hour, minute, second, tzinfo=timezone.utc)
        return None


def _field(text: str, name: str, low: int, high: int, names: dict[str, int], expression: str) -> frozenset[int]:
    out: set[int] = set()
    for item in text.split(","):
        out.update(_item(item, name, low, high, names, expression))
    return frozenset(out)


def _item(item: str, name: str, low: int, high: int, names: dict[str, int], expression: str) -> range:
    def bad(why: str) -> ScheduleError:
        return ScheduleError(f"schedule {expression!r}: the {name} field {item!r} {why}")

    span, _, step_text = item.partition("/")
    step = 1
    if step_text:
        if not step_text.isdigit() or int(step_text) < 1:
            raise bad("has a step that is not a positive number")
        step = int(step_text)
    if span == "*":
        first, last = low, high
    elif "-" in span:
        first_text, _, last_text = span.partition("-")
        first, last = _value(first_text, names, bad), _value(last_text, names, bad)
    else:
        first = _value(span, names, bad)
        last = high if step_text else first  # "5/15": from 5 on, every 15
    if not (low <= first <= high and low <= last <= high):
        raise bad(f"is outside {low}-{high}")
    if first > last:
        raise bad("is a range that ends before it starts")
    return range(first, last + 1, step)


def _value(text: str, names: dict[str, int], bad) -> int:
    if text.isdigit():
        return int(text)
    if text.lower() in names:
        return names[text.lower()]
    raise bad("is not a number" + (" or a name" if names else ""))
