"""Event time: what the forms of an event's ``ts`` mean, as float epoch seconds.

``ts`` is epoch seconds (a number up to ``1e11``), epoch milliseconds (a number above
``1e11``, up to ``1e14``) or an RFC 3339 string with a UTC offset; the accepted range is
1970-01-01 to year 5138, so micro- and nanoseconds are refused rather than misread.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final

import msgspec

from stream_drift.pipeline.events import shorten

__all__ = [
    "MS_THRESHOLD",
    "NUMERIC_TS_RULE",
    "datetime_seconds",
    "numeric_seconds",
    "parse_timestamp",
]

MS_THRESHOLD: Final = 1e11
"""Numbers above this are epoch milliseconds (1e11 s is year 5138)."""
_MAX_NUMERIC_TS: Final = 1e14  # 1e14 ms = year 5138; above: micro/nanoseconds, refused
_MAX_SECONDS: Final = _MAX_NUMERIC_TS / 1000.0
NUMERIC_TS_RULE: Final = (
    "expected epoch seconds (0..1e11) or epoch milliseconds (1e11..1e14), got {!r}"
)
"""Detail of a numeric ``ts`` out of range (``format`` it with the value)."""


def numeric_seconds(value: float) -> float | None:
    """Epoch seconds from a number (seconds, or ms above 1e11); ``None`` if out of range.

    Examples
    --------
    >>> numeric_seconds(1764213000.25), numeric_seconds(1764213000250.0), numeric_seconds(-1.0)
    (1764213000.25, 1764213000.25, None)
    """
    if 0.0 <= value <= MS_THRESHOLD:
        return float(value)
    if MS_THRESHOLD < value <= _MAX_NUMERIC_TS:
        return value / 1000.0
    return None  # negative, NaN, inf, or micro/nanoseconds


def datetime_seconds(value: datetime) -> float:
    """Epoch seconds from an aware datetime; ``ValueError`` if naive or out of range.

    Examples
    --------
    >>> from datetime import UTC
    >>> datetime_seconds(datetime(2026, 11, 27, 9, 0, 0, 500000, tzinfo=UTC))
    1795770000.5
    """
    if value.tzinfo is None:
        raise ValueError(
            f"{value.isoformat()!r} has no UTC offset (RFC 3339 needs 'Z' or '+hh:mm')"
        )
    try:
        seconds = value.timestamp()
    except (OverflowError, OSError):
        seconds = -1.0
    if not 0.0 <= seconds <= _MAX_SECONDS:
        raise ValueError(f"{value.isoformat()!r} is out of range (1970-01-01 to year 5138)")
    return seconds


def parse_timestamp(value: float | int | str) -> float:
    """Convert an event ``ts`` to float epoch seconds.

    Parameters
    ----------
    value
        Epoch seconds (a number up to ``1e11``), epoch milliseconds (a number above
        ``1e11``, up to ``1e14``), or an RFC 3339 date-time string with a UTC offset
        (``T``, ``t`` or a space between date and time; up to nanosecond digits,
        rounded to microseconds).

    Returns
    -------
    float
        Epoch seconds.

    Raises
    ------
    ValueError
        If the value is negative, NaN, infinite, beyond year 5138 (e.g. micro- or
        nanoseconds), not RFC 3339, or a date-time without a UTC offset.
    TypeError
        If the value is neither a number nor a string (a bool is refused too).

    Examples
    --------
    >>> parse_timestamp(1764213000.25)
    1764213000.25
    >>> parse_timestamp(1764213000250)  # milliseconds
    1764213000.25
    >>> parse_timestamp("2026-11-27T10:00:00.5+01:00")
    1795770000.5
    >>> parse_timestamp("2026-11-27T10:00:00")
    Traceback (most recent call last):
    ...
    ValueError: '2026-11-27T10:00:00' has no UTC offset (RFC 3339 needs 'Z' or '+hh:mm')
    """
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError(
            "ts: expected a number (epoch seconds or milliseconds) or an RFC 3339 string, "
            f"got {type(value).__name__}"
        )
    if isinstance(value, str):
        try:
            parsed = msgspec.convert(value, datetime)
        except msgspec.ValidationError:
            raise ValueError(
                f"{shorten(value)!r} is not an RFC 3339 date-time (e.g. '2026-11-27T10:00:00Z')"
            ) from None
        return datetime_seconds(parsed)
    try:
        seconds = numeric_seconds(float(value))
    except OverflowError:
        seconds = None
    if seconds is None:
        raise ValueError(NUMERIC_TS_RULE.format(value))
    return seconds
