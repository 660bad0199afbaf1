"""Instants as the ledger spells them: Firestore datetimes, and Alpaca's RFC 3339 strings.

Alpaca's strings carry up to nine fractional digits, more than ``datetime`` holds, so ordering
fills by them goes through integer nanoseconds rather than through ``datetime`` or plain text
(text sorts ``…:05Z`` after ``…:05.1Z``).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def epoch_ns(text: object) -> int | None:
    """'2026-03-10T15:00:01.123456789Z' -> nanoseconds since the epoch; None if not RFC 3339."""
    match = _RFC3339.fullmatch(text.strip()) if isinstance(text, str) else None
    if match is None:
        return None
    whole = datetime.fromisoformat(match[1] + ("+00:00" if match[3] == "Z" else match[3]))
    return int(whole.timestamp()) * 10**9 + int((match[2] or "").ljust(9, "0"))


def chronological(text: object) -> tuple[int, int, str]:
    """A sort key: parsable instants in time order, anything else after them by its text."""
    ns = epoch_ns(text)
    return (0, ns, "") if ns is not None else (1, 0, str(text))


def floor_datetime(text: object) -> datetime | None:
    """The instant truncated to the microsecond ``datetime`` can hold; None if not RFC 3339."""
    ns = epoch_ns(text)
    if ns is None:
        return None
    seconds, rest = divmod(ns, 10**9)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def shown(value: object) -> str | None:
    """How an instant is printed: datetimes in UTC ISO 8601 with 'Z', strings as stored."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return None if value is None else str(value)
