"""The reference pages name what the code declares: every variable of ENV_NAMES in
docs/CONFIGURATION.md, every reason of REASON_RULES in docs/HTTP_API.md's reason table with the
same finality and HTTP statuses, and every control of the table in docs/RISK_CONTROLS.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from backend.execution.controls.table import CONTROLS
from backend.execution.settings import ENV_NAMES, SWITCHABLE_CONTROLS
from backend.execution.vocabulary import REASON_RULES, Reason

DOCS = Path(__file__).resolve().parents[2] / "docs"


def page(name: str) -> str:
    return (DOCS / name).read_text(encoding="utf-8")


def table_rows(text: str, first_cell: str) -> list[list[str]]:
    """The cells of every Markdown table row whose first cell is exactly ``first_cell``."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("|"):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells and cells[0] == first_cell:
            rows.append(cells)
    return rows


@pytest.mark.parametrize(
    "variable", sorted({name for names in ENV_NAMES.values() for name in names})
)
def test_every_variable_the_settings_read_is_documented_in_the_configuration_page(
    variable: str,
) -> None:
    assert f"`{variable}`" in page("CONFIGURATION.md")


@pytest.mark.parametrize("field", SWITCHABLE_CONTROLS)
def test_every_control_that_can_be_switched_off_says_so_in_its_configuration_row(
    field: str,
) -> None:
    variable = ENV_NAMES[field][0]
    rows = table_rows(page("CONFIGURATION.md"), f"`{variable}`")
    assert rows, f"{variable} has no row in CONFIGURATION.md"
    assert "`off`" in rows[0][-1], f"{variable}'s validation cell does not mention `off`"


@pytest.mark.parametrize("reason", list(Reason), ids=str)
def test_every_reason_has_a_row_in_the_http_reason_table_with_its_finality_and_statuses(
    reason: Reason,
) -> None:
    if reason in (Reason.INVALID_REQUEST, Reason.UNAUTHORIZED, Reason.SHUTTING_DOWN):
        # The HTTP layer's own reasons: described in the text below the table, never decided.
        assert f"`{reason.value}`" in page("HTTP_API.md")
        return
    # The reason table's rows have five cells (the Retry-After table's have two).
    rows = [r for r in table_rows(page("HTTP_API.md"), f"`{reason.value}`") if len(r) == 5]
    assert len(rows) == 1, f"{reason.value}: {len(rows)} rows in HTTP_API.md's reason table"
    _, _meaning, retryable, execute, push = rows[0]
    rule = REASON_RULES[reason]
    assert retryable == ("no" if rule.final else "yes")
    assert execute == str(rule.http_status)
    assert push == ("200 (ack)" if rule.push_acked else "503 (nack)")


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name)
def test_every_control_of_the_table_has_its_row_in_risk_controls_with_its_reason(
    control: object,
) -> None:
    name = getattr(control, "name")  # noqa: B009 - the parametrize id already used it
    rows = [
        line
        for line in page("RISK_CONTROLS.md").splitlines()
        if line.startswith("|") and f"(`{name}`)" in line
    ]
    assert len(rows) == 1, f"{name}: {len(rows)} rows in RISK_CONTROLS.md"
    reasons = {r.value for r in Reason if re.search(rf"`{r.value}`", rows[0])}
    assert reasons, f"{name}'s row names no reason code"
