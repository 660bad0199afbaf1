"""A value the console read, or why it could not: anything unreadable is shown as unknown."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Known(Generic[T]):
    """``value`` when read, else ``error`` (a short, key-free description)."""

    value: T | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def read(what: str, fetch: Callable[[], T]) -> Known[T]:
    """Any exception becomes an unknown, never a page error and never a healthy default: a
    console that cannot read the kill switch must say so, not show it off."""
    try:
        return Known(value=fetch())
    except Exception as exc:  # the point: every failure is shown as unknown
        log.warning("console could not read %s: %s", what, type(exc).__name__,
                    extra={"event": "console.unreadable", "what": what})  # fmt: skip
        return Known(error=f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}")
