"""Run the execution gateway locally: ``make run`` == ``python -m backend.devtools.run_local``.

1. starts the pinned Firestore emulator on 127.0.0.1:``$FIRESTORE_EMULATOR_PORT`` (default
   8787) -- skipped if ``FIRESTORE_EMULATOR_HOST`` is already set;
2. finds/starts Postgres (:func:`backend.devtools.local_stack.ensure_postgres`), creates the
   ``execution_gateway_local`` database if missing and creates or upgrades its tables (``backend/db/migrations``) --
   skipped if ``EXEC_POSTGRES_DSN`` is already set;
3. unless ``ALPACA_API_KEY`` is set, starts the local Alpaca stand-in
   (``tests/support/alpaca_standin.py``) on a free port, serving always-fresh reference prices
   (``LOCAL_PRICES``) for the pre-trade controls that need one, and points the gateway's
   trading and market-data hosts at it with throwaway keys (dry-run still sends nothing);
4. runs gunicorn serving ``$EXEC_LOCAL_APP`` (default
   ``backend.services.execution_service.app:create_app()``) on 127.0.0.1:``$PORT`` (default
   8080) with ``--workers 1 --threads 8`` and, unless already set, ``FIRESTORE_EMULATOR_HOST``,
   ``GOOGLE_CLOUD_PROJECT=demo-execution-gateway``, ``EXEC_POSTGRES_DSN`` and
   ``EXEC_DRY_RUN=true`` in its environment.

Ctrl-C / SIGTERM stops gunicorn, then the emulator. Extra command-line arguments are
passed through to gunicorn (e.g. ``--reload``, ``--log-level debug``).
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
from types import FrameType

from backend.devtools.local_stack import (
    REPO_ROOT,
    EmulatorProcess,
    apply_schema,
    create_database,
    ensure_postgres,
    start_firestore_emulator,
)

DEFAULT_APP = "backend.services.execution_service.app:create_app()"
LOCAL_DB_NAME = "execution_gateway_local"
DEFAULT_PROJECT = "demo-execution-gateway"
# Reference prices the local stand-in serves (latest trades, stamped fresh at every answer).
LOCAL_PRICES = {"SPY": "450.00", "QQQ": "380.00", "AAPL": "190.00", "MSFT": "410.00"}

SAMPLE_ORDER = (
    '{"client_intent_id":"demo-1","strategy_id":"demo","broker_account_id":"paper-1",'
    '"symbol":"SPY","side":"buy","qty":"1","order_type":"market"}'
)


def _say(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


class _StandIn:
    """The Alpaca stand-in in a child process (it prints its URL on its first line)."""

    def __init__(self, process: subprocess.Popen[str], url: str) -> None:
        self.process, self.url = process, url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _start_standin() -> _StandIn:
    prices = [
        arg for symbol, price in LOCAL_PRICES.items() for arg in ("--price", f"{symbol}={price}")
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.alpaca_standin", "--port", "0", *prices],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http://"):
        process.kill()
        raise SystemExit("[run-local] the local Alpaca stand-in did not start")
    return _StandIn(process, url)


class _Stop(Exception):
    """Raised from the SIGTERM/SIGHUP handler to unwind into the cleanup path."""


def _raise_stop(signum: int, _frame: FrameType | None) -> None:
    raise _Stop(signum)


def main(argv: list[str] | None = None) -> int:
    extra_args = list(sys.argv[1:] if argv is None else argv)
    http_port = _int_env("PORT", 8080)
    app = os.environ.get("EXEC_LOCAL_APP", "").strip() or DEFAULT_APP

    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)

    emulator: EmulatorProcess | None = None
    standin: _StandIn | None = None
    gunicorn: subprocess.Popen[bytes] | None = None
    env = dict(os.environ)
    try:
        # --- Firestore emulator ---------------------------------------------------------
        if env.get("FIRESTORE_EMULATOR_HOST"):
            _say(f"[run-local] using FIRESTORE_EMULATOR_HOST={env['FIRESTORE_EMULATOR_HOST']}")
        else:
            emulator_port = _int_env("FIRESTORE_EMULATOR_PORT", 8787)
            try:
                emulator = start_firestore_emulator(emulator_port)
            except RuntimeError as exc:
                _say(f"[run-local] {exc}")
                _say(
                    "[run-local] hint: choose another port with FIRESTORE_EMULATOR_PORT=<port> "
                    "(0 = any free port), or point FIRESTORE_EMULATOR_HOST at a running emulator."
                )
                return 1
            env["FIRESTORE_EMULATOR_HOST"] = emulator.host
        env.setdefault("GOOGLE_CLOUD_PROJECT", DEFAULT_PROJECT)

        # --- Postgres -------------------------------------------------------------------
        if env.get("EXEC_POSTGRES_DSN"):
            _say("[run-local] using EXEC_POSTGRES_DSN from the environment (schema not applied)")
        else:
            try:
                admin_dsn = ensure_postgres()
                dsn = create_database(admin_dsn, LOCAL_DB_NAME, exist_ok=True)
                apply_schema(dsn)
            except RuntimeError as exc:
                _say(f"[run-local] {exc}")
                return 1
            env["EXEC_POSTGRES_DSN"] = dsn
        env.setdefault("EXEC_DRY_RUN", "true")

        # --- Alpaca stand-in: market data for the price controls ---------------------------
        if env.get("ALPACA_API_KEY"):
            _say("[run-local] using the Alpaca keys and hosts from the environment")
        else:
            standin = _start_standin()
            env |= {
                "ALPACA_API_KEY": "local",
                "ALPACA_SECRET_KEY": "local",
                "ALPACA_TRADING_HOST": standin.url,
                "ALPACA_DATA_HOST": standin.url,
            }

        # --- gunicorn -------------------------------------------------------------------
        cmd = [
            sys.executable,
            "-m",
            "gunicorn",
            # The service's own config (the SIGTERM drain hook); the flags below override
            # its bind, workers and threads for a local run.
            "--config",
            "python:backend.services.execution_service.gunicorn_conf",
            "--bind",
            f"127.0.0.1:{http_port}",
            "--workers",
            "1",
            "--threads",
            "8",
            # gunicorn >= 24 opens a control socket in ~/.gunicorn by default; a second
            # local instance (or a test) would collide on it, and we don't need it.
            "--no-control-socket",
            *extra_args,
            app,
        ]
        sample_curl = (
            f"curl -s localhost:{http_port}/execute -H 'content-type: application/json' "
            f"-d '{SAMPLE_ORDER}'"
        )
        _say()
        _say(f"Execution gateway (dry run={env['EXEC_DRY_RUN']}): http://127.0.0.1:{http_port}")
        _say(f"  FIRESTORE_EMULATOR_HOST={env['FIRESTORE_EMULATOR_HOST']}")
        _say(f"  GOOGLE_CLOUD_PROJECT={env['GOOGLE_CLOUD_PROJECT']}")
        _say(f"  EXEC_POSTGRES_DSN={env['EXEC_POSTGRES_DSN']}")
        _say(f"  ALPACA_DATA_HOST={env.get('ALPACA_DATA_HOST', 'https://data.alpaca.markets')}")
        if standin is not None:
            prices = ", ".join(f"{s} {p}" for s, p in LOCAL_PRICES.items())
            _say(f"  local Alpaca stand-in serving reference prices: {prices}")
        _say("Try:")
        _say(f"  {sample_curl}")
        _say("Ctrl-C stops the gateway and the emulator.")
        _say(f"[run-local] {shlex.join(cmd)}")
        _say()

        gunicorn = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env)
        return gunicorn.wait()
    except (KeyboardInterrupt, _Stop):
        _say("\n[run-local] stopping...")
        return 0
    finally:
        # Ignore further signals while cleaning up so a second Ctrl-C can't skip it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if gunicorn is not None and gunicorn.poll() is None:
            gunicorn.terminate()  # SIGTERM = graceful shutdown
            try:
                gunicorn.wait(timeout=30)
            except subprocess.TimeoutExpired:
                gunicorn.kill()
                gunicorn.wait()
        if emulator is not None:
            emulator.stop()
            _say("[run-local] Firestore emulator stopped")
        if standin is not None:
            standin.stop()


if __name__ == "__main__":
    sys.exit(main())
