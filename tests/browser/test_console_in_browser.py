"""The console as an operator and an auditor use it, in Chromium, against a live gateway."""

from __future__ import annotations

import re
import time
from typing import Any

import requests
from playwright.sync_api import expect

from tests.browser.conftest import (
    ADMIN_KEY,
    ALPACA_SECRET,
    AUDITOR_KEY,
    Live,
    screenshot,
    sign_in,
)

PAGES = ("status", "decisions", "orders", "reconcile")


def wait_for_text(page: Any, text: str, within_s: float = 20) -> None:
    """Reloads until the text shows (the Decisions page's copy of the day is topped up in the
    background every few seconds)."""
    deadline = time.monotonic() + within_s
    while not page.get_by_text(text).count():
        assert time.monotonic() < deadline, f"{text} never showed"
        time.sleep(0.5)
        page.reload()


def submitted_within_the_switch_ttl(live: Live) -> bool:
    """Every instance sees a resume within the kill-switch document's TTL (0.5 s here)."""
    deadline = time.monotonic() + 3
    while True:
        answer = live.execute().json()
        if answer["status"] == "submitted" or answer.get("reason") != "kill_switch_enabled":
            return bool(answer["status"] == "submitted")
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)


# -- signing in ------------------------------------------------------------------------------


def test_the_operator_signs_in_with_the_keyboard_and_sees_the_actions(
    page: Any, live: Live
) -> None:
    page.goto(f"{live.url}/console/status")
    expect(page).to_have_url(re.compile(r"/console/signin"))
    screenshot(page, "signin")
    page.keyboard.type(ADMIN_KEY)  # the Key field has the focus
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/status$"))
    expect(page.get_by_text("Signed in as operator")).to_be_visible()
    expect(page.get_by_role("link", name="Actions")).to_be_visible()


def test_the_auditor_signs_in_read_only(page: Any, live: Live) -> None:
    sign_in(page, live, AUDITOR_KEY)
    expect(page.get_by_text("Signed in as auditor")).to_be_visible()
    expect(page.get_by_role("link", name="Actions")).to_have_count(0)
    screenshot(page, "status-auditor")


def test_a_wrong_key_is_refused_on_the_sign_in_page(page: Any, live: Live) -> None:
    page.goto(f"{live.url}/console/signin")
    page.get_by_label("Key").fill("not-the-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong key.")
    expect(page).to_have_url(re.compile(r"/console/signin"))
    page.goto(f"{live.url}/console/decisions")
    expect(page).to_have_url(re.compile(r"/console/signin"))


# -- what the operator sees ------------------------------------------------------------------


def test_the_status_page_shows_the_live_gateway_and_refreshes_itself(page: Any, live: Live) -> None:
    assert live.execute(qty="5").json()["status"] == "submitted"
    assert requests.post(f"{live.url}/sync-fills", json={}, timeout=30).status_code == 200
    sign_in(page, live, ADMIN_KEY)
    word = page.locator("#verdict-word")
    expect(word).to_have_text("TRADING")
    expect(page.get_by_text(re.compile(r"^firestore:ops/kill-"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+ of 50"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"SPY position 20, working buys \d+"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^complete, \d+ s ago"))).to_be_visible()
    expect(page.get_by_text("ready", exact=True)).to_have_count(2)
    screenshot(page, "status")
    # A halt made elsewhere shows up without a reload (the panel refreshes every 5 s).
    live.set_switch(True)
    try:
        expect(word).to_have_text("HALTED", timeout=12_000)
        expect(
            page.get_by_text(re.compile(r"kill switch firestore:ops/kill-\S+ is on"))
        ).to_be_visible()
    finally:
        live.set_switch(False)
    expect(word).to_have_text("TRADING", timeout=12_000)


def test_halt_from_the_page_refuses_the_next_intent_then_resume_lets_it_through(
    page: Any, live: Live
) -> None:
    sign_in(page, live, ADMIN_KEY)
    page.get_by_role("link", name="Actions").click()
    try:
        halt = page.locator("form", has=page.get_by_role("button", name="Halt trading"))
        halt.get_by_label("Reason").fill("browser test: halt")
        halt.get_by_label("Cancel working orders").check()
        screenshot(page, "actions")
        halt.get_by_role("button", name="Halt trading").click()
        expect(page.get_by_role("heading", name="Confirm: Halt trading")).to_be_visible()
        screenshot(page, "confirm")
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("Halt trading: done.")).to_be_visible()
        refused = live.execute()
        assert refused.status_code == 409
        assert refused.json()["reason"] == "kill_switch_enabled"

        resume = page.locator("form", has=page.get_by_role("button", name="Resume trading"))
        resume.get_by_label("Reason").fill("browser test: all clear")
        resume.get_by_role("button", name="Resume trading").click()
        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_text("Resume trading: done.")).to_be_visible()
        assert submitted_within_the_switch_ttl(live)
        page.get_by_role("navigation").get_by_role("link", name="Status").click()
        expect(page.locator("#verdict-word")).to_have_text("TRADING")
        expect(page.get_by_text("by operator: browser test: all clear")).to_be_visible()
    finally:
        live.set_switch(False)


def test_an_action_needs_a_reason(page: Any, live: Live) -> None:
    sign_in(page, live, ADMIN_KEY)
    page.get_by_role("link", name="Actions").click()
    halt = page.locator("form", has=page.get_by_role("button", name="Halt trading"))
    halt.get_by_label("Reason").fill("   ")  # passes the browser's `required`, not the server
    halt.get_by_role("button", name="Halt trading").click()
    expect(page.get_by_role("alert")).to_contain_text('a "Reason" is required')
    assert live.execute().status_code == 200


def test_decisions_are_filtered_and_open_to_their_checks(page: Any, live: Live) -> None:
    live.execute(qty="1")
    too_big = live.execute(qty="500").json()
    assert too_big["reason"] == "max_order_qty_exceeded"
    sign_in(page, live, ADMIN_KEY)
    page.get_by_role("link", name="Decisions").click()
    # The page shows the day from a copy topped up every 5 s: wait for the new refusal.
    wait_for_text(page, too_big["client_intent_id"])
    page.get_by_label("Outcome", exact=True).select_option("rejected")
    page.get_by_label("Reason", exact=True).select_option("max_order_qty_exceeded")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#decisions-count")).to_contain_text("1 of ")
    row = page.locator("li.decision").filter(has_text=too_big["client_intent_id"])
    row.locator("summary").focus()
    page.keyboard.press("Enter")
    checks = row.get_by_role("table")
    expect(checks).to_be_visible()
    expect(checks.get_by_role("row", name=re.compile(r"^max_order_qty failed"))).to_be_visible()
    screenshot(page, "decisions")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    exported = download.value.path().read_text()
    assert exported.startswith("trading_date,received_at,decided_at,client_intent_id")
    assert too_big["client_intent_id"] in exported and exported.count("\n") == 2


def test_the_orders_and_reconcile_pages_show_the_book_and_the_broker(page: Any, live: Live) -> None:
    placed = live.execute(qty="2").json()
    sign_in(page, live, ADMIN_KEY)
    page.get_by_role("link", name="Orders").click()
    screenshot(page, "orders")
    page.get_by_role("link", name=placed["client_intent_id"]).click()
    expect(page.get_by_role("heading", name=f"Order {placed['client_intent_id']}")).to_be_visible()
    expect(page.get_by_text(re.compile(r"^submitted .* status=accepted"))).to_be_visible()
    screenshot(page, "order")
    page.get_by_role("link", name="Reconcile").click()
    page.get_by_role("button", name="Run reconcile").click()
    expect(page.get_by_role("heading", name=re.compile("^Ledger against Alpaca"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"orders compared"))).to_be_visible()
    screenshot(page, "reconcile")


# -- what the auditor cannot do ----------------------------------------------------------------


def test_the_auditor_has_no_action_buttons_and_a_forged_post_is_refused(
    page: Any, live: Live
) -> None:
    sign_in(page, live, AUDITOR_KEY)
    for name in PAGES:
        page.goto(f"{live.url}/console/{name}")
        for button in ("Halt trading", "Reduce only", "Resume trading", "Re-enable strategy"):
            expect(page.get_by_role("button", name=button)).to_have_count(0)
    page.goto(f"{live.url}/console/actions")
    expect(page.get_by_role("heading", name="Not allowed (403)")).to_be_visible()
    token = page.locator('input[name="csrf_token"]').first.get_attribute("value")
    forged = page.request.post(
        f"{live.url}/console/actions/halt",
        form={"csrf_token": token, "reason": "forged", "step": "confirm"},
    )
    assert forged.status == 403
    assert live.execute().status_code == 200  # nothing was halted


# -- never a key -------------------------------------------------------------------------------


def test_no_page_shows_a_key(page: Any, live: Live) -> None:
    page.goto(f"{live.url}/console/signin")
    page.get_by_label("Key").fill(ADMIN_KEY + "x")
    page.get_by_role("button", name="Sign in").click()
    seen = [page.content()]
    for key in (ADMIN_KEY, AUDITOR_KEY):
        sign_in(page, live, key)
        for name in (*PAGES, "actions"):
            page.goto(f"{live.url}/console/{name}")
            seen.append(page.content())
        page.goto(f"{live.url}/console/reconcile?run=1")
        seen.append(page.content())
        page.get_by_role("button", name="Sign out").click()
        expect(page).to_have_url(re.compile(r"/console/signin"))
    for html in seen:
        for secret in (ADMIN_KEY, AUDITOR_KEY, ALPACA_SECRET):
            assert secret not in html


# -- a phone -----------------------------------------------------------------------------------


def test_every_page_fits_a_phone_screen(phone: Any, live: Live) -> None:
    sign_in(phone, live, ADMIN_KEY)
    for name in (*PAGES, "actions"):
        phone.goto(f"{live.url}/console/{name}")
        overflow = phone.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 1, f"{name} scrolls sideways by {overflow}px on a phone"
    phone.goto(f"{live.url}/console/status")
    screenshot(phone, "status-phone")
