"""The console's routes: sign-in, the four read pages, and the operator's actions.

Views only read (through ``known.read``, so a failure is shown, not raised), build the page's
model with the pure modules beside this one, and render. Actions go through ``parts.operator``.
"""

from __future__ import annotations

import io
import logging
import re
import time
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from backend.audit.output import write_csv
from backend.audit.queries import Filters
from backend.execution.bootstrap import ServiceParts
from backend.execution.clock import trading_date
from backend.execution.operator import Operator
from backend.execution.settings import Settings
from backend.services.execution_service.admin import state_document
from backend.services.execution_service.auth import Unauthorized
from backend.services.execution_service.console import decisions as decisions_model
from backend.services.execution_service.console import orders as orders_model
from backend.services.execution_service.console.access import (
    OPERATOR,
    Backoff,
    Keys,
    new_csrf_token,
    same_token,
    session_secret,
)
from backend.services.execution_service.console.actions import (
    ACTIONS,
    fallback_switches,
    flashed,
    perform,
    reason_problem,
)
from backend.services.execution_service.console.day_cache import DaySnapshot
from backend.services.execution_service.console.iap import ASSERTION_HEADER, IapVerifier
from backend.services.execution_service.console.known import Known, read
from backend.services.execution_service.console.reconcile import run_reconcile
from backend.services.execution_service.console.status import StatusInputs, status_view
from backend.services.execution_service.console.wiring import ConsoleReads, build_reads

log = logging.getLogger(__name__)

_PUBLIC_ENDPOINTS = frozenset({"console.static", "console.signin", "console.signin_post"})
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the browser reached us over https (also
    behind a TLS-terminating front end such as Cloud Run's or IAP's, which says so in
    X-Forwarded-Proto)."""

    def get_cookie_secure(self, app: Flask) -> bool:
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return bool(request.is_secure or forwarded == "https")


def register_console(
    app: Flask, parts: ServiceParts, settings: Settings, reads: ConsoleReads | None = None
) -> None:
    assert settings.admin_key is not None, "the console exists only with EXEC_AGENT_ADMIN_KEY"
    admin_key = settings.admin_key.get_secret_value()
    auditor_key = settings.auditor_key.get_secret_value() if settings.auditor_key else None
    keys = Keys(admin_key, auditor_key)
    lifetime_s = settings.console_session_hours * 3600
    app.secret_key = session_secret(admin_key, auditor_key)
    app.config.update(
        SESSION_COOKIE_NAME="exec_console",
        SESSION_COOKIE_PATH="/console",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_REFRESH_EACH_REQUEST=False,
        PERMANENT_SESSION_LIFETIME=timedelta(seconds=lifetime_s),
    )
    app.session_interface = ConsoleSessionInterface()
    reads = reads if reads is not None else build_reads(settings, parts.closers)
    iap = (
        IapVerifier(settings.console_iap_audience, settings.console_iap_certs_url)
        if settings.console_iap_audience
        else None
    )
    backoff = Backoff()
    engine = parts.engine
    console = Blueprint(
        "console",
        __name__,
        url_prefix="/console",
        template_folder="templates",
        static_folder="static",
    )

    # -- access -------------------------------------------------------------------------

    @console.before_request
    def _gate() -> Any:
        g.console_email = None
        g.who = None
        if iap is not None:
            try:
                g.console_email = iap.email(request.headers.get(ASSERTION_HEADER))
            except Unauthorized as exc:
                return _refused(401, str(exc))
        if request.endpoint in _PUBLIC_ENDPOINTS:
            return None
        g.who = _signed_in()
        if g.who is None:
            if request.method == "GET" and not request.path.startswith("/console/api/"):
                return redirect(url_for("console.signin", next=request.path))
            return _refused(401, "sign in first")
        if request.method == "POST":
            if not same_token(request.form.get("csrf_token"), session.get("csrf")):
                return _refused(403, "missing or wrong CSRF token: reload the page and retry")
            origin = request.headers.get("Origin")
            if origin and urlsplit(origin).netloc != request.host:
                return _refused(403, "the request came from another site")
        return None

    @console.after_request
    def _headers(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        # Not "no-referrer": with it Chromium sends "Origin: null" on our own form posts.
        response.headers["Referrer-Policy"] = "same-origin"
        if request.endpoint != "console.static":
            response.headers["Cache-Control"] = "no-store"
        return response

    def _signed_in() -> Operator | None:
        role, issued = session.get("role"), session.get("iat")
        if role not in keys.roles or not isinstance(issued, int | float):
            return None
        age = time.time() - issued
        if age > lifetime_s or age < -60:
            return None
        if iap is not None and session.get("email") != g.console_email:
            return None  # a cookie signed in by another IAP user
        return Operator(str(role), session.get("email"))

    def _client() -> str:
        forwarded = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
        return f"{request.remote_addr}|{forwarded}"

    @console.get("/signin")
    def signin() -> Any:
        return _signin_page()

    @console.post("/signin")
    def signin_post() -> Any:
        client = _client()
        wait = backoff.wait_s(client)
        if wait > 0:
            message = f"Too many wrong keys: wait {wait:.0f} s before the next try."
            return _signin_page(message, 429, {"Retry-After": str(max(1, round(wait)))})
        role = keys.role_of(request.form.get("key", ""))
        if role is None:
            imposed = backoff.failed(client)
            log.warning("console sign-in refused", extra={"event": "console.signin_refused",
                        "client": request.remote_addr, "wait_s": imposed})  # fmt: skip
            return _signin_page("Wrong key.", 401)
        backoff.succeeded(client)
        session.clear()
        session.permanent = True
        session.update(role=role, email=g.console_email, csrf=new_csrf_token(), iat=time.time())
        log.info("console sign-in: %s", role, extra={"event": "console.signin", "role": role,
                 "email": g.console_email})  # fmt: skip
        target = request.args.get("next", "")
        if not target.startswith("/console/") or target.startswith("//"):
            target = url_for("console.status")
        return redirect(target)

    @console.post("/signout")
    def signout() -> Any:
        session.clear()
        return redirect(url_for("console.signin"))

    def _signin_page(
        error: str | None = None, status: int = 200, headers: dict[str, str] | None = None
    ) -> Any:
        page = render_template(
            "signin.html",
            error=error,
            has_auditor=len(keys.roles) > 1,
            iap_email=g.console_email,
            next=request.args.get("next", ""),
        )
        return page, status, headers or {}

    # -- the read pages -------------------------------------------------------------------

    @console.get("/")
    def home() -> Any:
        return redirect(url_for("console.status"))

    def _status_view() -> Any:
        now = engine.clock.now()
        day = trading_date(now)
        account = settings.broker_account_id
        postgres, firestore = reads.postgres, reads.firestore
        book: Known[Any] | None = None
        if account is not None:
            book = (
                read("exposure", lambda: postgres.exposure_inputs(account, day))
                if postgres is not None
                else Known(error="no Postgres configured (EXEC_POSTGRES_DSN)")
            )
        sync: Known[Any] | None = None
        if parts.fill_sync is not None:
            sync = (
                read("fill sync state", firestore.sync_state)
                if firestore is not None
                else Known(error="no Firestore client")
            )
        return status_view(
            StatusInputs(
                now=now,
                trading_day=day,
                state=read("gate state", lambda: state_document(parts)),
                readiness=read("readiness", engine.check_readiness),
                book=book,
                fill_sync=sync,
                max_daily_trades=settings.max_daily_trades,
                max_position_qty=settings.max_position_qty,
                position_skew_s=settings.position_skew_s,
            )
        )

    @console.get("/status")
    def status() -> Any:
        return _page("status.html", "Status", view=_status_view(), refreshed=_now_shown())

    @console.get("/api/status")
    def status_panel() -> Any:
        """The status panel alone, for the page's auto-refresh."""
        return render_template("status_panel.html", view=_status_view(), refreshed=_now_shown())

    def _account() -> str | None:
        return settings.broker_account_id or (request.args.get("account", "").strip()[:128] or None)

    def _day() -> date:
        try:
            return date.fromisoformat(request.args.get("day", ""))
        except ValueError:
            return trading_date(engine.clock.now())

    def _day_copy(account: str, day: date) -> DaySnapshot | None:
        return reads.day.snapshot(account, day) if reads.day is not None else None

    options_memo: list[tuple[Any, Any]] = []

    def _options(account: str | None, day: date, copy: DaySnapshot) -> Any:
        """The filter choices change only when the day's records do."""
        key = (account, day, copy.version)
        if options_memo and options_memo[-1][0] == key:
            return options_memo[-1][1]
        options = decisions_model.filter_options(copy.records)
        options_memo[:] = [(key, options)]
        return options

    @console.get("/decisions")
    def decisions() -> Any:
        account, day = _account(), _day()
        filters = decisions_model.DecisionFilters.from_args(request.args)
        copy = _day_copy(account, day) if account else None
        view = None
        if copy is not None and copy.complete:
            view = decisions_model.decisions_view(
                copy.records,
                filters,
                _int_arg("page"),
                options=_options(account, day, copy),
                newest_first_already=True,
            )
        return _page(
            "decisions.html",
            "Decisions",
            account=account,
            day=day,
            filters=filters,
            copy=copy,
            no_firestore=reads.day is None,
            view=view,
        )

    @console.get("/decisions.csv")
    def decisions_csv() -> Any:
        account, day = _account(), _day()
        if not account:
            return _refused(400, "name an account: no EXEC_BROKER_ACCOUNT_ID is bound")
        copy = _day_copy(account, day)
        if copy is None or not copy.complete:
            why = copy.error or copy.read_so_far if copy else "no Firestore client"
            return (
                {"status": "loading", "message": f"the day is still being read ({why}); retry"},
                503,
                {"Retry-After": "5"},
            )
        filters = decisions_model.DecisionFilters.from_args(request.args)
        out = io.StringIO()
        write_csv(decisions_model.EXPORT, decisions_model.for_export(copy.records, filters), out)
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"decisions-{account}-{day.isoformat()}.csv")
        return Response(
            out.getvalue(),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )

    @console.get("/orders")
    def orders() -> Any:
        account, day = _account(), _day()
        view, book, ledger = None, None, None
        if account:
            postgres, ledger_reader = reads.postgres, reads.ledger
            book = (
                read("order book", lambda: postgres.book_rows(account, day, limit=2000))
                if postgres
                else Known(error="no Postgres configured (EXEC_POSTGRES_DSN)")
            )
            ledger = (
                read("ledger", lambda: ledger_reader.trades(Filters(account, day)))
                if ledger_reader
                else Known(error="no Firestore client")
            )
            view = orders_model.orders_view(book.value or [], ledger.value or [], _int_arg("page"))
        return _page(
            "orders.html", "Orders", account=account, day=day, view=view, book=book, ledger=ledger
        )

    @console.get("/orders/<intent_id>")
    def order(intent_id: str) -> Any:
        """One order: its book row, its ledger entry, its fills and its event history."""
        account = _account()
        postgres, firestore = reads.postgres, reads.firestore
        book = (
            read("order book", lambda: postgres.book_row(account, intent_id))
            if postgres and account
            else Known(error="no Postgres configured (EXEC_POSTGRES_DSN) or no account")
        )
        ledger = (
            read("ledger", lambda: firestore.trade_of_intent(intent_id))
            if firestore
            else Known(error="no Firestore client")
        )
        entry = ledger.value if isinstance(ledger.value, dict) else None
        if entry is not None and account and entry.get("broker_account_id") != account:
            entry = None  # another deployment's order: not this console's to show
        order_id = (book.value.broker_order_id if book.value else None) or (
            str(entry.get("broker_order_id")) if entry else None
        )
        events: Known[Any] = Known(value={})
        if order_id and firestore:
            events = read("order events", lambda: firestore.events_of([order_id]))
        row = None
        if book.value is not None or entry is not None:
            row = orders_model.order_row(book.value, entry, events.value or {})
        return _page(
            "order.html", f"Order {intent_id}", intent_id=intent_id, account=account, row=row,
            book=book, ledger=ledger, events=events,
        )  # fmt: skip

    @console.get("/reconcile")
    def reconcile() -> Any:
        account, day = _account(), _day()
        result = None
        missing = [
            name
            for name, part in (("Firestore", reads.ledger), ("Alpaca keys", reads.broker))
            if part is None
        ]
        if account and request.args.get("run") == "1" and not missing:
            ledger_reader, broker = reads.ledger, reads.broker
            assert ledger_reader is not None and broker is not None
            result = read(
                "reconcile", lambda: run_reconcile(ledger_reader, broker, reads.book, account, day)
            )
        return _page(
            "reconcile.html", "Reconcile", account=account, day=day, result=result,
            missing=missing,
        )  # fmt: skip

    # -- actions (operator only) -----------------------------------------------------------

    def _operator_only() -> Any:
        if g.who is None or g.who.role != OPERATOR:
            return _refused(403, "the auditor's role is read-only: it cannot act")
        return None

    @console.get("/actions")
    def actions() -> Any:
        refused = _operator_only()
        if refused is not None:
            return refused
        return _actions_page()

    def _actions_page(error: str | None = None, status_code: int = 200) -> Any:
        latched = read("latched strategies", parts.operator.latched_strategies)
        page = _page(
            "actions.html",
            "Actions",
            error=error,
            latched=latched,
            document_configured=parts.operator.kill_switch_document_configured,
            fallback=fallback_switches(settings),
            word=_status_view().word,
            result=session.pop("result", None),
        )
        return page, status_code

    @console.post("/actions/<name>")
    def act(name: str) -> Any:
        refused = _operator_only()
        if refused is not None:
            return refused
        if name not in ACTIONS:
            return _refused(404, f"no action {name!r}")
        form = request.form
        reason = (form.get("reason") or "").strip()
        problem = reason_problem(reason)
        strategy = (form.get("strategy_id") or "").strip()
        if name == "enable-strategy" and not (0 < len(strategy) <= 128):
            problem = problem or "choose the strategy to re-enable"
        if problem:
            return _actions_page(problem, 400)
        cancel = form.get("cancel_working_orders") == "yes"
        if form.get("step") != "confirm":
            title, effect = ACTIONS[name]
            return _page(
                "confirm.html", f"Confirm: {title}", name=name, action=title, effect=effect,
                reason=reason, cancel=cancel, strategy=strategy,
            )  # fmt: skip
        outcome = read(
            f"action {name}", lambda: perform(parts.operator, name, g.who, reason, cancel, strategy)
        )
        session["result"] = flashed(ACTIONS[name][0], outcome)
        return redirect(url_for("console.actions"))

    # -- helpers ---------------------------------------------------------------------------

    def _page(template: str, title: str, **context: Any) -> str:
        return render_template(
            template,
            title=title,
            who=g.who,
            csrf_token=session.get("csrf", ""),
            is_operator=g.who is not None and g.who.role == OPERATOR,
            **context,
        )

    def _refused(status_code: int, message: str) -> Any:
        wants_html = request.method == "GET" and not request.path.startswith("/console/api/")
        if wants_html or request.accept_mimetypes.accept_html:
            who = g.get("who")
            page = render_template(
                "refused.html", title="Not allowed", status=status_code, message=message,
                who=who, csrf_token=session.get("csrf", "") if who else "",
                is_operator=who is not None and who.role == OPERATOR,
            )  # fmt: skip
            return page, status_code
        return {"status": "refused", "message": message}, status_code

    def _int_arg(name: str = "page") -> int:
        try:
            return max(1, int(request.args.get(name, "1")))
        except ValueError:
            return 1

    def _now_shown() -> str:
        return engine.clock.now().strftime("%Y-%m-%d %H:%M:%S UTC")

    app.register_blueprint(console)
