from datetime import date

import pytest

from ecrf.domain.dates import (
    PartialDate,
    PartialDateError,
    Period,
    PeriodError,
    add_months,
    certainly_before,
    shift,
)

# --- Period parsing -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "amount", "unit"),
    [
        ("0d", 0, "d"),
        ("1d", 1, "d"),
        ("14d", 14, "d"),
        ("-28d", -28, "d"),
        ("-1d", -1, "d"),
        ("2w", 2, "w"),
        ("-2w", -2, "w"),
        ("3m", 3, "m"),
        ("-6m", -6, "m"),
        ("12m", 12, "m"),
        ("1y", 1, "y"),
        ("5y", 5, "y"),
        ("0y", 0, "y"),
        ("365d", 365, "d"),
        ("-0d", 0, "d"),
    ],
)
def test_period_parse_valid(text, amount, unit):
    period = Period.parse(text)
    assert period == Period(amount, unit)


@pytest.mark.parametrize(
    "text", ["0d", "14d", "-28d", "2w", "3m", "1y", "-6m", "100d"]
)
def test_period_str_round_trips(text):
    assert str(Period.parse(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        "",
        "d",
        "14",
        "14 d",
        " 14d",
        "14d ",
        "+14d",
        "14D",
        "3M",
        "1.5m",
        "14days",
        "1h",
        "1q",
        "--1d",
        "1-d",
        "014d",
        "d14",
        "1d2",
        "1 y",
        "one month",
    ],
)
def test_period_parse_invalid_names_the_text(text):
    with pytest.raises(PeriodError) as excinfo:
        Period.parse(text)
    assert repr(text) in str(excinfo.value)


@pytest.mark.parametrize("value", [14, None, 1.5, b"14d", ["14d"]])
def test_period_parse_rejects_non_text(value):
    with pytest.raises(PeriodError, match="period must be text"):
        Period.parse(value)


@pytest.mark.parametrize(
    ("amount", "unit", "message"),
    [
        (1, "h", "unit"),
        (1, "", "unit"),
        (1, "D", "unit"),
        (1.0, "d", "integer"),
        ("1", "d", "integer"),
        (True, "d", "integer"),
        (None, "m", "integer"),
    ],
)
def test_period_constructor_validates(amount, unit, message):
    with pytest.raises(PeriodError, match=message):
        Period(amount, unit)


@pytest.mark.parametrize(
    ("period", "negative", "zero", "months", "days"),
    [
        (Period(0, "d"), False, True, 0, 0),
        (Period(-1, "d"), True, False, 0, -1),
        (Period(2, "w"), False, False, 0, 14),
        (Period(-2, "w"), True, False, 0, -14),
        (Period(3, "m"), False, False, 3, 0),
        (Period(2, "y"), False, False, 24, 0),
        (Period(-1, "y"), True, False, -12, 0),
    ],
)
def test_period_parts(period, negative, zero, months, days):
    assert period.is_negative is negative
    assert period.is_zero is zero
    assert period.months == months
    assert period.days == days


def test_period_negation():
    assert -Period(14, "d") == Period(-14, "d")
    assert -Period(-3, "m") == Period(3, "m")


# --- add_months and Period.add_to ---------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),  # leap year
        (date(2023, 1, 31), 1, date(2023, 2, 28)),  # common year
        (date(2100, 1, 31), 1, date(2100, 2, 28)),  # century, not leap
        (date(2000, 1, 31), 1, date(2000, 2, 29)),  # 400-year leap
        (date(2024, 1, 30), 1, date(2024, 2, 29)),
        (date(2024, 1, 29), 1, date(2024, 2, 29)),
        (date(2024, 1, 28), 1, date(2024, 2, 28)),
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 2, 29), 48, date(2028, 2, 29)),
        (date(2024, 8, 31), -6, date(2024, 2, 29)),
        (date(2023, 8, 31), -6, date(2023, 2, 28)),
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2024, 3, 31), 1, date(2024, 4, 30)),
        (date(2024, 5, 31), 1, date(2024, 6, 30)),
        (date(2024, 12, 31), 1, date(2025, 1, 31)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2024, 1, 15), -1, date(2023, 12, 15)),
        (date(2024, 1, 31), -2, date(2023, 11, 30)),
        (date(2024, 1, 31), -13, date(2022, 12, 31)),
        (date(2024, 1, 31), 0, date(2024, 1, 31)),
        (date(2024, 1, 31), 2, date(2024, 3, 31)),
        (date(2024, 1, 31), 25, date(2026, 2, 28)),
        (date(2024, 6, 30), 120, date(2034, 6, 30)),
    ],
)
def test_add_months_clamps_to_month_end(start, months, expected):
    assert add_months(start, months) == expected


@pytest.mark.parametrize(
    ("start", "months"), [(date(9999, 12, 1), 1), (date(1, 1, 1), -1), (date(2024, 1, 1), 10**6)]
)
def test_add_months_outside_calendar(start, months):
    with pytest.raises(OverflowError, match="outside the calendar"):
        add_months(start, months)


@pytest.mark.parametrize(
    ("text", "start", "times", "expected"),
    [
        ("0d", date(2024, 3, 1), 1, date(2024, 3, 1)),
        ("14d", date(2024, 2, 20), 1, date(2024, 3, 5)),
        ("-28d", date(2024, 3, 1), 1, date(2024, 2, 2)),
        ("2w", date(2024, 12, 25), 1, date(2025, 1, 8)),
        ("28d", date(2024, 1, 1), 3, date(2024, 3, 25)),
        ("1m", date(2024, 1, 31), 1, date(2024, 2, 29)),
        ("1m", date(2024, 1, 31), 2, date(2024, 3, 31)),  # one step, not two clamped ones
        ("1m", date(2024, 1, 31), 3, date(2024, 4, 30)),
        ("3m", date(2024, 8, 31), 2, date(2025, 2, 28)),
        ("1y", date(2024, 2, 29), 1, date(2025, 2, 28)),
        ("1y", date(2024, 2, 29), 4, date(2028, 2, 29)),
        ("-1y", date(2024, 2, 29), 1, date(2023, 2, 28)),
        ("-6m", date(2024, 8, 31), 1, date(2024, 2, 29)),
        ("1m", date(2024, 1, 31), 0, date(2024, 1, 31)),
        ("1m", date(2024, 3, 31), -1, date(2024, 2, 29)),
    ],
)
def test_period_add_to(text, start, times, expected):
    assert Period.parse(text).add_to(start, times) == expected


def test_repeat_never_drifts_from_month_end():
    every = Period(1, "m")
    anchor = date(2024, 1, 31)
    dates = [every.add_to(anchor, k) for k in range(13)]
    assert dates == [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 31),
        date(2024, 4, 30),
        date(2024, 5, 31),
        date(2024, 6, 30),
        date(2024, 7, 31),
        date(2024, 8, 31),
        date(2024, 9, 30),
        date(2024, 10, 31),
        date(2024, 11, 30),
        date(2024, 12, 31),
        date(2025, 1, 31),
    ]
    # Chaining single clamped steps is exactly the drift the engine must avoid.
    chained = anchor
    for _ in range(2):
        chained = every.add_to(chained)
    assert chained == date(2024, 3, 29) != dates[2]


@pytest.mark.parametrize(
    ("start", "months", "days", "expected"),
    [
        (date(2024, 1, 31), 1, 1, date(2024, 3, 1)),
        (date(2024, 1, 31), 0, 0, date(2024, 1, 31)),
        (date(2024, 1, 31), 0, -31, date(2023, 12, 31)),
        (date(2023, 2, 28), 1, 3, date(2023, 3, 31)),
    ],
)
def test_shift_applies_months_then_days(start, months, days, expected):
    assert shift(start, months=months, days=days) == expected


@pytest.mark.parametrize(
    ("text", "start"),
    [("1d", date(9999, 12, 31)), ("-1d", date(1, 1, 1)), ("1m", date(9999, 12, 1))],
)
def test_period_add_outside_calendar_raises_period_error(text, start):
    with pytest.raises(PeriodError, match=start.isoformat()):
        Period.parse(text).add_to(start)


# --- PartialDate ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parts", "complete", "earliest", "latest"),
    [
        ("2024", (2024, None, None), False, date(2024, 1, 1), date(2024, 12, 31)),
        ("2024-02", (2024, 2, None), False, date(2024, 2, 1), date(2024, 2, 29)),
        ("2023-02", (2023, 2, None), False, date(2023, 2, 1), date(2023, 2, 28)),
        ("2024-04", (2024, 4, None), False, date(2024, 4, 1), date(2024, 4, 30)),
        ("2024-12", (2024, 12, None), False, date(2024, 12, 1), date(2024, 12, 31)),
        ("2024-03-15", (2024, 3, 15), True, date(2024, 3, 15), date(2024, 3, 15)),
        ("2024-02-29", (2024, 2, 29), True, date(2024, 2, 29), date(2024, 2, 29)),
        ("2000-02-29", (2000, 2, 29), True, date(2000, 2, 29), date(2000, 2, 29)),
        ("0001-01-01", (1, 1, 1), True, date(1, 1, 1), date(1, 1, 1)),
        ("9999", (9999, None, None), False, date(9999, 1, 1), date(9999, 12, 31)),
    ],
)
def test_partial_date_parse_and_bounds(text, parts, complete, earliest, latest):
    value = PartialDate.parse(text)
    assert (value.year, value.month, value.day) == parts
    assert value.is_complete is complete
    assert value.earliest() == earliest
    assert value.latest() == latest
    assert value.isoformat() == text
    assert str(value) == text


@pytest.mark.parametrize(
    "text",
    [
        "2024-02-30",
        "2023-02-29",
        "2100-02-29",
        "2024-04-31",
        "2024-13",
        "2024-00",
        "2024-01-00",
        "2024-01-32",
        "0000",
        "2024-3-1",
        "2024-3",
        "2024-03-1",
        "24-03",
        "24",
        "2024--15",
        "2024-03-15T10:00",
        "2024/03/15",
        "20240315",
        "2024-03-",
        "",
        " 2024",
        "2024 ",
        "abcd",
        "+2024",
    ],
)
def test_partial_date_parse_invalid_names_the_value(text):
    with pytest.raises(PartialDateError) as excinfo:
        PartialDate.parse(text)
    assert repr(text) in str(excinfo.value)


@pytest.mark.parametrize("value", [2024, None, date(2024, 1, 1)])
def test_partial_date_parse_rejects_non_text(value):
    with pytest.raises(PartialDateError, match="must be text"):
        PartialDate.parse(value)


@pytest.mark.parametrize(
    ("parts", "message"),
    [
        ((2024, None, 15), "day without a month"),
        ((2024, 13, None), "month out of range"),
        ((2024, 0, None), "month out of range"),
        ((2024, 2, 30), "no day 30 in 2024-02"),
        ((2023, 2, 29), "no day 29 in 2023-02"),
        ((2024, 6, 0), "no day 0"),
        ((0, None, None), "year out of range"),
        ((10000, None, None), "year out of range"),
    ],
)
def test_partial_date_constructor_validates(parts, message):
    with pytest.raises(PartialDateError, match=message):
        PartialDate(*parts)


@pytest.mark.parametrize("text", ["2024", "2024-03"])
def test_partial_date_to_date_refuses_incomplete(text):
    with pytest.raises(PartialDateError, match=text):
        PartialDate.parse(text).to_date()


def test_partial_date_to_date_and_from_date():
    assert PartialDate.parse("2024-03-15").to_date() == date(2024, 3, 15)
    assert PartialDate.from_date(date(2024, 3, 5)).isoformat() == "2024-03-05"


def test_partial_date_has_no_ordering():
    with pytest.raises(TypeError):
        _ = PartialDate(2024) < PartialDate(2025)


# --- certainly_before ----------------------------------------------------------------------


def _pd(text):
    return PartialDate.parse(text)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (_pd("2024-03-14"), _pd("2024-03-15"), True),
        (_pd("2024-03-15"), _pd("2024-03-15"), False),
        (_pd("2024-03-16"), _pd("2024-03-15"), False),
        (_pd("2024-02"), _pd("2024-03-01"), True),
        (_pd("2024-03"), _pd("2024-03-31"), False),  # could be the 31st
        (_pd("2024-03"), _pd("2024-04-01"), True),
        (_pd("2024-03-01"), _pd("2024-03"), False),  # March could start on the 1st
        (_pd("2024-02-29"), _pd("2024-03"), True),
        (_pd("2024"), _pd("2025-01-01"), True),
        (_pd("2024"), _pd("2024-12-31"), False),
        (_pd("2024"), _pd("2025"), True),
        (_pd("2024"), _pd("2024"), False),
        (_pd("2024-12"), _pd("2025"), True),
        (_pd("2025"), _pd("2024"), False),
        (date(2024, 3, 14), date(2024, 3, 15), True),
        (date(2024, 3, 15), date(2024, 3, 15), False),
        (date(2024, 3, 31), _pd("2024-04"), True),
        (date(2024, 4, 1), _pd("2024-04"), False),
        (_pd("2024-03"), date(2024, 4, 1), True),
        (_pd("2024-03"), date(2024, 3, 31), False),
    ],
)
def test_certainly_before(a, b, expected):
    assert certainly_before(a, b) is expected


@pytest.mark.parametrize("bad", ["2024-03-15", 20240315, None])
def test_certainly_before_rejects_other_types(bad):
    with pytest.raises(PartialDateError, match="expected a date or partial date"):
        certainly_before(bad, date(2024, 1, 1))


@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("2024-02-30", "no day 30 in 2024-02 (last day 29)"),
        ("2023-02-29", "no day 29 in 2023-02 (last day 28)"),
        ("2024-13", "month out of range 1-12"),
        ("2024-3-1", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
    ],
)
def test_partial_date_parse_explains_the_problem(text, detail):
    with pytest.raises(PartialDateError) as excinfo:
        PartialDate.parse(text)
    assert detail in str(excinfo.value)
