"""Writers for the three listing formats: an aligned table, CSV and JSON lines."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from backend.audit.timestamps import shown
from backend.audit.views import View

FORMATS = ("table", "csv", "jsonl")
_EMPTY_CELL = "-"


def render(view: View, fmt: str, rows: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    if fmt == "csv":
        write_csv(view, rows, out)
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(view.document(row), default=_jsonable, ensure_ascii=False) + "\n")
    elif fmt == "table":
        write_table(view, rows, out)
    else:
        raise ValueError(f"unknown format {fmt!r}; use one of {FORMATS}")


def write_table(view: View, rows: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    headers = [column.header for column in view.table]
    cells = [[column.value(row) or _EMPTY_CELL for column in view.table] for row in rows]
    widths = [max([len(h), *(len(line[i]) for line in cells)]) for i, h in enumerate(headers)]

    def aligned(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    out.write(aligned(headers) + "\n")
    for row, line in zip(rows, cells, strict=True):
        out.write(aligned(line) + "\n")
        for detail in view.details(row):
            out.write(f"    {detail}\n")
    out.write(view.footer(list(rows)) + "\n")


def write_csv(view: View, rows: Sequence[Mapping[str, Any]], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([column.header for column in view.csv])
    for row in rows:
        writer.writerow([column.value(row) or "" for column in view.csv])


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return shown(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
