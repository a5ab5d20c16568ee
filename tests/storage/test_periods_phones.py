from datetime import UTC, date, datetime

import pytest

from storage.periods import days_left, deadline, window, zone_abbreviation
from storage.phones import InvalidPhone, normalise_phone, whatsapp_id_to_phone


@pytest.mark.parametrize(
    "raw",
    ["081234567890", "0812-3456-7890", "+62 812 3456 7890", "6281234567890", " +6281234567890 "],
)
def test_indonesian_numbers_normalise_to_e164(raw: str) -> None:
    assert normalise_phone(raw) == "+6281234567890"


@pytest.mark.parametrize("raw", ["", "nihil", "12", "+62 8"])
def test_garbage_is_not_a_phone(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise_phone(raw)


def test_whatsapp_id_is_the_number_without_plus() -> None:
    assert whatsapp_id_to_phone("6281234567890") == "+6281234567890"


@pytest.mark.parametrize(
    ("timezone", "utc_hour", "abbreviation"),
    [("Asia/Jakarta", 17, "WIB"), ("Asia/Makassar", 16, "WITA"), ("Asia/Jayapura", 15, "WIT")],
)
def test_deadline_is_end_of_due_date_in_region_time(
    timezone: str, utc_hour: int, abbreviation: str
) -> None:
    # B08 2025: evidence due "paling lambat 25 Agustus 2025".
    assert deadline(date(2025, 8, 25), timezone) == datetime(2025, 8, 25, utc_hour, tzinfo=UTC)
    assert zone_abbreviation(timezone) == abbreviation


def test_window_is_open_until_the_deadline_and_not_after() -> None:
    w = window(date(2025, 8, 18), date(2025, 8, 25), "Asia/Jayapura")
    assert not w.is_open(datetime(2025, 8, 17, 14, 59, tzinfo=UTC))
    assert w.is_open(datetime(2025, 8, 17, 15, 0, tzinfo=UTC))  # 00:00 WIT on 18 Aug
    assert w.is_open(datetime(2025, 8, 25, 14, 59, tzinfo=UTC))  # 23:59 WIT on 25 Aug
    assert not w.is_open(datetime(2025, 8, 25, 15, 0, tzinfo=UTC))


def test_days_left_counts_in_the_region_calendar() -> None:
    # 23:30 WIB on 24 Aug is already 25 Aug in Papua.
    now = datetime(2025, 8, 24, 16, 30, tzinfo=UTC)
    assert days_left(date(2025, 8, 25), now, "Asia/Jakarta") == 1
    assert days_left(date(2025, 8, 25), now, "Asia/Jayapura") == 0
