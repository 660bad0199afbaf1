"""``python -m backend.audit``: argument parsing, wiring, and the mapping of failures to exits.

The entry point is the only code of the toolkit that reads ``os.environ``. A failure that the
operator can fix (settings, an unreachable Firestore or broker) ends with one line on stderr
naming what failed and what to check, and exit code 2; never a traceback.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from datetime import date
from typing import Any

from google.auth.exceptions import GoogleAuthError
from google.cloud import firestore
from pydantic import SecretStr

from backend.audit.commands import list_decisions, list_trades, reconcile_day
from backend.audit.output import FORMATS
from backend.audit.queries import Filters, LedgerReader, describe
from backend.execution.adapters.alpaca_reader import AlpacaReader
from backend.execution.adapters.postgres_order_book import PostgresOrderBook
from backend.execution.adapters.postgres_pool import open_pool
from backend.execution.adapters.postgres_schema import SchemaGuard
from backend.execution.errors import (
    BrokerUnavailable,
    ConfigurationError,
    LedgerUnavailable,
    RiskDataUnavailable,
)
from backend.execution.settings import Settings

PROG = "python -m backend.audit"
FAILED = 2  # as argparse's usage errors
INTENT_STATUSES = ("in_progress", "retry_pending", "dry_run", "submitted", "rejected")
_DATE = re.compile(r"\d{4}-\d\d-\d\d")

_OVERVIEW = """\
Read-only audit of the execution gateway's Firestore ledger, and reconciliation with Alpaca.

environment:
  GOOGLE_CLOUD_PROJECT   project of the ledger (required)
  FIRESTORE_DATABASE     database id (default "(default)")
  FIRESTORE_EMULATOR_HOST  read a local emulator instead of Firestore
  EXEC_IO_TIMEOUT_S      bound on each Firestore call, retries included (default 2)
  ALPACA_API_KEY, ALPACA_SECRET_KEY, ALPACA_TRADING_HOST, EXEC_BROKER_TIMEOUT_S
                         the broker, for reconcile
  EXEC_POSTGRES_DSN      the order book, for reconcile (read only)

exit codes: 0 done (reconcile: clean), 1 reconcile found discrepancies,
            2 usage error, invalid settings, or Firestore/Alpaca unreachable.
Progress lines go to stderr; results to stdout."""

_TRADES_HELP = """\
formats:
  table  one line per order, then one indented line per fill (oldest first)
  csv    one row per order; the "fills" column is the number of fills
  jsonl  one JSON object per order: every stored field, with "fills" (list of FILL
         activities as Alpaca sent them, plus "activity_id") in place of raw_fills
Quantities and prices are printed exactly as stored (decimal strings, never floats)."""

_INTENTS_HELP = """\
Every decision (submissions, refusals, dry runs, retries pending), by received_at.
formats:
  table  one line per decision, then its message and a summary of its checks
         (name=outcome; the detail of any failed, error or warning check)
  csv    one row per decision; "checks" holds the same summary
  jsonl  one JSON object per decision with every stored field, checks in full"""

_RECONCILE_HELP = """\
Compares ledger_trades of the account and New York trading date with Alpaca, and never
writes. Broker side: orders submitted that New York day whose client_order_id is a decision
record of this account, plus a lookup of every ledger order the listing did not return.
Reports, one line each: orders missing from the ledger, ledger orders unknown to the broker,
and qty, filled_qty, filled_avg_price (compared as decimals) and status mismatches.
Then the order book (Postgres): every row of the account still working in the book against
the broker's open orders, whatever their day. Reports rows working in the book but closed at
(or unknown to) the broker, orders open at the broker that the book does not count as
working, and working quantities that differ. Reserved rows the broker does not have are not
reported: their outcome is still being settled (the fill sync releases them).
Exit code 1 when anything is reported, 0 when clean."""


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else FAILED
    settings: Settings | None = None
    try:
        settings = Settings.from_env(os.environ)
        return run(args, settings)
    except ConfigurationError as exc:
        return fail(str(exc))
    except LedgerUnavailable as exc:
        return fail(
            f"cannot read the Firestore ledger ({_firestore_target(settings, os.environ)}): "
            f"{str(exc).rstrip('.')}. Check FIRESTORE_EMULATOR_HOST, GOOGLE_CLOUD_PROJECT, "
            "FIRESTORE_DATABASE and the Google credentials."
        )
    except BrokerUnavailable as exc:
        host = settings.alpaca_trading_host if settings else "?"
        return fail(
            f"cannot read orders from Alpaca at {host}: {str(exc).rstrip('.')}. "
            "Check ALPACA_TRADING_HOST, ALPACA_API_KEY and ALPACA_SECRET_KEY."
        )
    except RiskDataUnavailable as exc:
        return fail(
            f"cannot read the order book in Postgres: {str(exc).rstrip('.')}. "
            "Check EXEC_POSTGRES_DSN."
        )
    except KeyboardInterrupt:
        return fail("interrupted", code=130)


def run(args: argparse.Namespace, settings: Settings) -> int:
    # The broker first: a missing key fails at once, before any Firestore call.
    broker = open_broker(settings) if args.command == "reconcile" else None
    client = open_firestore(settings)
    try:
        ledger = LedgerReader(client, timeout_s=settings.io_timeout_s, progress=progress)
        if broker is not None:
            book = open_book(settings)
            try:
                return reconcile_day(
                    ledger, broker, args.account, args.date, sys.stdout, progress, book
                )
            finally:
                book.close()
        statuses = tuple(dict.fromkeys(getattr(args, "status", None) or ()))
        filters = Filters(args.account, args.date, args.strategy, args.symbol, statuses)
        if args.command == "intents":
            return list_decisions(ledger, filters, args.format, sys.stdout)
        return list_trades(ledger, filters, args.format, sys.stdout)
    finally:
        client.close()


def open_firestore(settings: Settings) -> firestore.Client:
    if not settings.gcp_project:
        # Without it the client would guess a project and an empty ledger would look clean.
        raise ConfigurationError("GOOGLE_CLOUD_PROJECT is not set: name the ledger's project")
    try:
        return firestore.Client(project=settings.gcp_project, database=settings.firestore_database)
    except GoogleAuthError as exc:
        raise LedgerUnavailable(f"no Google credentials: {describe(exc)}") from None


def open_broker(settings: Settings) -> AlpacaReader:
    key, secret = _secret(settings.alpaca_api_key), _secret(settings.alpaca_secret_key)
    named = (("ALPACA_API_KEY", key), ("ALPACA_SECRET_KEY", secret))
    missing = [name for name, value in named if not value]
    if missing:
        raise ConfigurationError(f"reconcile reads Alpaca and needs {' and '.join(missing)}")
    return AlpacaReader(
        key, secret, settings.alpaca_trading_host, timeout_s=settings.broker_timeout_s
    )


def open_book(settings: Settings) -> PostgresOrderBook:
    """The order book, read-only: reconcile never creates or upgrades tables."""
    if settings.postgres_dsn is None:
        raise ConfigurationError("reconcile also checks the order book and needs EXEC_POSTGRES_DSN")
    pool = open_pool(
        settings.postgres_dsn.get_secret_value(), max_size=1, timeout_s=settings.io_timeout_s
    )
    schema = SchemaGuard(pool, migrate=False, timeout_s=settings.io_timeout_s)
    return PostgresOrderBook(pool, timeout_s=settings.io_timeout_s, schema=schema)


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def fail(message: str, *, code: int = FAILED) -> int:
    print(f"audit: {' '.join(message.split())}", file=sys.stderr, flush=True)
    return code


def _firestore_target(settings: Settings | None, env: Mapping[str, str]) -> str:
    project = settings.gcp_project if settings else None
    database = settings.firestore_database if settings else "(default)"
    emulator = env.get("FIRESTORE_EMULATOR_HOST")
    where = f"emulator at {emulator}" if emulator else "Google Cloud"
    return f"project {project}, database {database}, {where}"


# -- arguments ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description=_OVERVIEW, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    trades = _command(commands, "trades", "orders in ledger_trades, with their fills", _TRADES_HELP)
    _add_scope(trades)
    _add_listing_options(trades)

    intents = _command(commands, "intents", "every decision in execution_intents", _INTENTS_HELP)
    _add_scope(intents)
    _add_listing_options(intents)
    intents.add_argument(
        "--status", nargs="+", action="extend", choices=INTENT_STATUSES, metavar="STATUS",
        help=f"only these statuses (repeatable): {', '.join(INTENT_STATUSES)}",
    )  # fmt: skip

    reconcile = _command(
        commands, "reconcile", "compare the ledger with Alpaca (read-only)", _RECONCILE_HELP
    )
    _add_scope(reconcile)
    return parser


def _command(commands: Any, name: str, summary: str, epilog: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary, epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    return parser


def _add_scope(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", required=True, type=_non_empty, help="broker_account_id")
    parser.add_argument(
        "--date", required=True, type=_trading_date, metavar="YYYY-MM-DD",
        help="trading date (New York)",
    )  # fmt: skip


def _add_listing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--strategy", type=_non_empty, help="only this strategy_id")
    parser.add_argument("--symbol", type=_symbol, help="only this symbol (any case)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="default: table")


def _trading_date(text: str) -> date:
    try:
        if _DATE.fullmatch(text):
            return date.fromisoformat(text)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a date as YYYY-MM-DD, got {text!r}")


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text.strip()


def _symbol(text: str) -> str:
    return _non_empty(text).upper()  # the gateway stores symbols upper-cased
