"""The export's object layout: the keys it writes are the keys monitoring reads back (one parser)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from functions.services.export import exported_parts, parse_part_key, part_key
from tests.fakes import MemoryStore

T = datetime(2026, 5, 9, 7, 0, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_part_key_parses_back_to_its_slice_and_format(fmt):
    key = part_key("credit-card-default", "3", T, fmt)
    assert key == f"exports/credit-card-default/3/2026-05-09/07/part-20260509T070030Z.{fmt}"
    assert parse_part_key(key) == (T, fmt)


def test_names_written_before_they_carried_seconds_still_parse():
    assert parse_part_key("exports/m/1/2026-05-09/07/part-20260509T0700Z.parquet") == (T.replace(second=0), "parquet")
    assert parse_part_key("exports/m/1/2026-05-09/07/result.json") is None


def test_exported_parts_are_the_window_s_parts_of_one_format_in_time_order():
    store = MemoryStore()
    for minutes in (-30, 0, 59, 61, 125):
        for fmt in ("parquet", "csv"):
            store.put(part_key("m", "1", T + timedelta(minutes=minutes), fmt), b"x")
    store.put("exports/m/1/2026-05-09/07/notes.txt", b"x")
    window = exported_parts(store, "m", "1", T, T + timedelta(hours=2))
    assert [parse_part_key(k)[0] - T for k in window] == [timedelta(0), timedelta(minutes=59), timedelta(minutes=61)]
