"""One typed, frozen settings object, read from the environment once at start-up.

Every variable is documented in docs/CONFIGURATION.md. Invalid values stop start-up with a
message naming the variable; nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

import idna
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from backend.execution.errors import ConfigurationError
from backend.execution.kill_switch import is_switch_value
from backend.execution.vocabulary import AgentMode

_EMAIL = re.compile(r"[^@\s,]+@[^@\s,]+")
PAPER_HOST = "https://paper-api.alpaca.markets"
DATA_HOST = "https://data.alpaca.markets"
LIVE_HOST = "https://api.alpaca.markets"


def canonical_host(url: str) -> str:
    """The host name a client reaches through ``url``, in one spelling.

    requests drops the userinfo and the port, decodes percent-escapes in the host
    (``api%2ealpaca.markets``) and maps Unicode through IDNA/UTS 46 (case, full-width letters,
    ideographic full stops); DNS ignores a trailing dot. Each of these spellings reaches the
    same host, so each must compare equal here.
    """
    host = unquote(urlsplit(url.strip()).hostname or "").rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    try:
        host = idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        host = host.casefold()  # not a valid name: no client reaches it; compare it as text
    return host.rstrip(".")


def is_live_host(url: str) -> bool:
    """True for Alpaca's live trading host, however the URL spells it (see canonical_host)."""
    return canonical_host(url) == canonical_host(LIVE_HOST)


class RepeatLimit(BaseModel):
    """N orders for one strategy, symbol and side within M seconds latch the strategy off."""

    model_config = ConfigDict(frozen=True)

    orders: int = Field(ge=1)
    within_s: int = Field(ge=1, le=86400)

    def __init__(self, orders: int, within_s: int) -> None:
        super().__init__(orders=orders, within_s=within_s)

    @classmethod
    def parse(cls, text: str) -> RepeatLimit:
        count, _, seconds = text.partition("/")
        try:
            return cls(int(count), int(seconds))
        except ValueError:
            raise ValueError(f"expected N/SECONDS such as 10/60, not {text!r}") from None

    def __str__(self) -> str:
        return f"{self.orders}/{self.within_s}"


# Controls an operator may switch off with the value "off" (never silently: a warning is logged).
SWITCHABLE_CONTROLS = (
    "max_order_qty",
    "max_order_notional",
    "price_collar_pct",
    "max_orders_per_minute",
    "repeat_limit",
)
_SYMBOL_LISTS = ("restricted_symbols", "allowed_symbols")


# field name -> environment variables, preferred first. A later name is an alias: a
# deprecated one logs a warning; a compatible one (COMPATIBLE_ALIASES) is read silently.
ENV_NAMES: dict[str, tuple[str, ...]] = {
    "gcp_project": ("GOOGLE_CLOUD_PROJECT", "FIREBASE_PROJECT_ID"),
    "firestore_database": ("FIRESTORE_DATABASE",),
    "postgres_dsn": ("EXEC_POSTGRES_DSN", "DATABASE_URL"),
    "db_migrate": ("EXEC_DB_MIGRATE",),
    "dry_run": ("EXEC_DRY_RUN",),
    "broker_account_id": ("EXEC_BROKER_ACCOUNT_ID",),
    "alpaca_account_number": ("ALPACA_ACCOUNT_NUMBER",),
    "alpaca_account_ttl_s": ("ALPACA_ACCOUNT_CHECK_TTL_S",),
    "agent_mode": ("AGENT_MODE",),
    "halted_env": ("EXECUTION_HALTED", "EXEC_KILL_SWITCH"),
    "halted_file": ("EXECUTION_HALTED_FILE", "EXEC_KILL_SWITCH_FILE"),
    "halted_doc": ("EXECUTION_HALTED_DOC", "EXEC_KILL_SWITCH_DOC"),
    "halted_doc_ttl_s": ("EXECUTION_HALTED_DOC_TTL_S",),
    "allow_no_kill_switch": ("EXEC_ALLOW_NO_KILL_SWITCH",),
    "heartbeat_doc": ("MARKETDATA_HEARTBEAT_DOC",),
    "heartbeat_stale_s": ("MARKETDATA_STALE_THRESHOLD_S",),
    "admin_key": ("EXEC_AGENT_ADMIN_KEY",),
    # The console (docs/CONSOLE.md): a read-only role, and Identity-Aware Proxy in front of it.
    "auditor_key": ("EXEC_AUDITOR_KEY",),
    "console_session_hours": ("EXEC_CONSOLE_SESSION_HOURS",),
    "console_iap_audience": ("EXEC_CONSOLE_IAP_AUDIENCE",),
    "console_iap_certs_url": ("EXEC_CONSOLE_IAP_CERTS_URL",),
    "max_daily_trades": ("EXEC_MAX_DAILY_TRADES",),
    "max_position_qty": ("EXEC_MAX_POSITION_QTY",),
    "position_skew_s": ("EXEC_POSITION_SKEW_S",),
    "risk_fail_open": ("EXEC_RISK_FAIL_OPEN",),
    # Pre-trade controls (docs/RISK_CONTROLS.md); each accepts "off".
    "max_order_qty": ("EXEC_MAX_ORDER_QTY",),
    "max_order_notional": ("EXEC_MAX_ORDER_NOTIONAL",),
    "price_collar_pct": ("EXEC_PRICE_COLLAR_PCT",),
    "max_orders_per_minute": ("EXEC_MAX_ORDERS_PER_MINUTE",),
    "repeat_limit": ("EXEC_REPEAT_LIMIT",),
    "restricted_symbols": ("EXEC_RESTRICTED_SYMBOLS",),
    "allowed_symbols": ("EXEC_ALLOWED_SYMBOLS",),
    "restricted_doc": ("EXEC_RESTRICTED_DOC",),
    "trading_hours": ("EXEC_TRADING_HOURS",),
    "reference_price_max_age_s": ("EXEC_REFERENCE_PRICE_MAX_AGE_S",),
    "reference_price_cache_s": ("EXEC_REFERENCE_PRICE_CACHE_S",),
    "alpaca_data_host": ("ALPACA_DATA_HOST",),
    "alpaca_data_feed": ("ALPACA_DATA_FEED",),
    "intent_max_age_s": ("EXEC_INTENT_MAX_AGE_S",),
    "alpaca_api_key": ("ALPACA_API_KEY",),
    "alpaca_secret_key": ("ALPACA_SECRET_KEY",),
    "alpaca_trading_host": ("ALPACA_TRADING_HOST",),
    "trading_mode": ("TRADING_MODE",),
    "broker_timeout_s": ("EXEC_BROKER_TIMEOUT_S",),
    "io_timeout_s": ("EXEC_IO_TIMEOUT_S",),
    "request_deadline_s": ("EXEC_REQUEST_DEADLINE_S",),
    "claim_lease_s": ("EXEC_CLAIM_LEASE_S",),
    "duplicate_wait_s": ("EXEC_DUPLICATE_WAIT_S",),
    "sync_budget_s": ("EXEC_SYNC_BUDGET_S",),
    "sync_overlap_s": ("EXEC_SYNC_OVERLAP_S",),
    "broker_min_interval_s": ("EXEC_BROKER_MIN_INTERVAL_S",),
    "error_backoff_base_s": ("EXEC_AGENT_ERROR_BACKOFF_S",),
    "error_backoff_max_s": ("EXEC_AGENT_ERROR_BACKOFF_MAX_S",),
    "pg_pool_max": ("EXEC_PG_POOL_MAX",),
    "max_body_bytes": ("EXEC_MAX_BODY_BYTES",),
    "log_level": ("LOG_LEVEL",),
    "push_audience": ("PUBSUB_PUSH_AUDIENCE",),
    "push_service_account": ("PUBSUB_PUSH_SERVICE_ACCOUNT",),
    "execute_audience": ("EXECUTE_AUDIENCE",),
    "execute_allowed_callers": ("EXECUTE_ALLOWED_CALLERS",),
    "oidc_certs_url": ("EXEC_OIDC_CERTS_URL",),
}

# The names other deployments of this design use; not deprecated, so no warning.
COMPATIBLE_ALIASES = frozenset({"FIREBASE_PROJECT_ID", "DATABASE_URL"})

# Kill-switch sources: every name that is set is a source of its own (aliases included), and a
# name set to a blank value stops start-up instead of silently dropping the source.
KILL_SWITCH_FIELDS = frozenset({"halted_env", "halted_file", "halted_doc"})

_DOC_PATH = r"^[^/]+/[^/]+(/[^/]+/[^/]+)*$"
DocumentPath = Annotated[str, Field(pattern=_DOC_PATH)]


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    gcp_project: str | None = None
    firestore_database: str = "(default)"
    postgres_dsn: SecretStr | None = None
    # Create or upgrade the gateway's own tables at start-up (off for locked-down roles).
    db_migrate: bool = True
    dry_run: bool = True
    # The one broker account this deployment routes for (the Alpaca keys' account). Intents
    # naming any other account are refused; limits are kept per this account.
    broker_account_id: str | None = Field(default=None, min_length=1, max_length=128)
    # When set, GET /v2/account must report this account_number before anything is routed.
    alpaca_account_number: str | None = Field(default=None, min_length=1, max_length=64)
    # How long one confirmation of the keys' account is reused before GET /v2/account again.
    alpaca_account_ttl_s: float = Field(default=30.0, ge=0, le=3600)
    agent_mode: AgentMode = AgentMode.DISABLED
    # Every kill-switch variable that is set, aliases included: (variable, value) pairs for
    # the environment source, paths for the file and Firestore sources. Any one on halts.
    halted_env: tuple[tuple[str, str], ...] = ()
    halted_file: tuple[str, ...] = ()
    halted_doc: tuple[DocumentPath, ...] = ()
    halted_doc_ttl_s: float = Field(default=2.0, ge=0, le=60)
    # Live routing needs a kill switch an operator can flip while the service runs (a file or
    # a Firestore document), unless this says, knowingly, that none is wanted.
    allow_no_kill_switch: bool = False
    heartbeat_doc: str | None = Field(default=None, pattern=_DOC_PATH)
    heartbeat_stale_s: float = Field(default=120.0, gt=0)
    admin_key: SecretStr | None = None
    # Signs in to the console read-only (never an action); the console exists only with admin_key.
    auditor_key: SecretStr | None = None
    console_session_hours: float = Field(default=8.0, gt=0, le=168)
    # When set, every console request must carry a valid IAP JWT for this audience.
    console_iap_audience: str | None = None
    console_iap_certs_url: str = Field(
        default="https://www.gstatic.com/iap/verify/public_key", pattern=r"^https?://"
    )
    max_daily_trades: int = Field(default=50, ge=0)
    max_position_qty: Decimal = Field(default=Decimal(100), ge=0, allow_inf_nan=False)
    # How far a fill's time may be from the position row's updated_at and still be of
    # uncertain inclusion in it (clock skew plus the position-sync job's read-to-write delay).
    position_skew_s: float = Field(default=10.0, ge=0, le=3600)
    risk_fail_open: bool = False
    # -- pre-trade controls: None means switched off explicitly ("off"), with a warning --------
    max_order_qty: Decimal | None = Field(default=Decimal(100), gt=0, allow_inf_nan=False)
    max_order_notional: Decimal | None = Field(default=Decimal(50000), gt=0, allow_inf_nan=False)
    price_collar_pct: Decimal | None = Field(default=Decimal(5), gt=0, allow_inf_nan=False)
    max_orders_per_minute: int | None = Field(default=30, ge=1)
    repeat_limit: RepeatLimit | None = Field(default_factory=lambda: RepeatLimit(10, 60))
    restricted_symbols: frozenset[str] = frozenset()
    # When set, only these symbols may be traded.
    allowed_symbols: frozenset[str] | None = None
    restricted_doc: str | None = Field(default=None, pattern=r"^[^/]+/[^/]+(/[^/]+/[^/]+)*$")
    trading_hours: Literal["any", "regular", "extended"] = "any"
    reference_price_max_age_s: float = Field(default=60.0, gt=0, le=86400)
    # How long one market-data read serves later intents for the same symbol (0: every intent).
    reference_price_cache_s: float = Field(default=1.0, ge=0, le=60)
    alpaca_data_host: str = Field(default=DATA_HOST, pattern=r"^https?://[^/]+(:\d+)?/?$")
    alpaca_data_feed: Literal["iex", "sip", "delayed_sip", "boats", "overnight"] = "iex"
    intent_max_age_s: float = Field(default=300.0, gt=0)
    alpaca_api_key: SecretStr | None = None
    alpaca_secret_key: SecretStr | None = None
    alpaca_trading_host: str = Field(default=PAPER_HOST, pattern=r"^https?://[^/]+(:\d+)?/?$")
    trading_mode: Literal["PAPER", "LIVE"] = "PAPER"
    broker_timeout_s: float = Field(default=2.5, gt=0, le=60)
    io_timeout_s: float = Field(default=1.0, gt=0, le=30)
    # Every answer within this, so Pub/Sub (10 s ack deadline) never redelivers a running one.
    request_deadline_s: float = Field(default=9.0, gt=0, le=600)
    claim_lease_s: float = Field(default=45.0, gt=0)
    duplicate_wait_s: float = Field(default=2.0, ge=0, le=8)
    sync_budget_s: float = Field(default=20.0, gt=0, le=3600)
    sync_overlap_s: float = Field(default=300.0, ge=0)
    # 200 requests per minute per account: one call every 0.3 s stays under it.
    broker_min_interval_s: float = Field(default=0.3, ge=0)
    error_backoff_base_s: float = Field(default=1.0, gt=0)
    error_backoff_max_s: float = Field(default=60.0, gt=0)
    pg_pool_max: int = Field(default=10, ge=1, le=200)
    max_body_bytes: int = Field(default=65536, ge=1024)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # OIDC on /pubsub/push and /sync-fills: verified only when an audience is configured.
    push_audience: str | None = None
    push_service_account: str | None = None
    # OIDC on /execute: verified only when an audience is configured, and then only tokens of
    # these service accounts pass (any Google account can mint a token for any audience).
    execute_audience: str | None = None
    execute_allowed_callers: frozenset[str] = frozenset()
    oidc_certs_url: str = Field(
        default="https://www.googleapis.com/oauth2/v1/certs", pattern=r"^https?://"
    )
    # Deprecation and fallback notices gathered while reading; logged once at start-up.
    startup_warnings: tuple[str, ...] = ()

    @field_validator("execute_allowed_callers", mode="before")
    @classmethod
    def _comma_separated_emails(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        emails = frozenset(part.strip() for part in value.split(",") if part.strip())
        malformed = sorted(e for e in emails if not _EMAIL.fullmatch(e))
        if malformed:
            raise ValueError(f"not service-account emails: {', '.join(malformed)}")
        return emails

    @model_validator(mode="after")
    def _execute_authentication_is_complete(self) -> Settings:
        # Half a configuration would look like protection and be none (or lock everyone out).
        if self.execute_audience is not None and not self.execute_allowed_callers:
            raise ValueError(
                "EXECUTE_AUDIENCE needs EXECUTE_ALLOWED_CALLERS: any Google account can mint a "
                "token for any audience, so the callers must be named"
            )
        if self.execute_allowed_callers and self.execute_audience is None:
            raise ValueError("EXECUTE_ALLOWED_CALLERS has no effect without EXECUTE_AUDIENCE")
        return self

    @field_validator("halted_env")
    @classmethod
    def _env_switches_are_on_or_off(
        cls, value: tuple[tuple[str, str], ...]
    ) -> tuple[tuple[str, str], ...]:
        # Read once, at start-up, and unchangeable without a restart: a value the switch does
        # not understand is reported now, where it is seen, rather than halting for good.
        bad = [f"{name}={raw[:40]!r}" for name, raw in value if not is_switch_value(raw)]
        if bad:
            raise ValueError(
                f"{', '.join(bad)} is neither on (1, true, yes, on) nor off (0, false, no, off)"
            )
        return value

    @property
    def has_operator_kill_switch(self) -> bool:
        """A kill switch an operator can flip while the service runs: a file or a document."""
        return bool(self.halted_file or self.halted_doc)

    @model_validator(mode="after")
    def _live_routing_is_fully_configured(self) -> Settings:
        if not self.dry_run:
            missing = [
                name
                for name, value in (
                    ("ALPACA_API_KEY", self.alpaca_api_key),
                    ("ALPACA_SECRET_KEY", self.alpaca_secret_key),
                )
                if value is None or not value.get_secret_value()
            ]
            if self.broker_account_id is None:
                missing.append("EXEC_BROKER_ACCOUNT_ID")
            if missing:
                raise ValueError(
                    f"EXEC_DRY_RUN=false routes real orders and needs {', '.join(missing)}"
                )
            if is_live_host(self.alpaca_trading_host) and self.trading_mode != "LIVE":
                raise ValueError(
                    "ALPACA_TRADING_HOST is Alpaca's live host: set TRADING_MODE=LIVE to confirm"
                )
        # A claim must outlive the attempt holding it. The engine refuses to start a broker
        # call that could outlast the lease; this makes sure a normal attempt never has to:
        # a lookup and a submit (each up to connect + read timeout) plus the store round trips.
        slowest_attempt = 4 * self.broker_timeout_s + 6 * self.io_timeout_s + 1
        if self.claim_lease_s < slowest_attempt:
            raise ValueError(
                f"EXEC_CLAIM_LEASE_S ({self.claim_lease_s:g}) must be at least the slowest "
                f"attempt: 4 x EXEC_BROKER_TIMEOUT_S + 6 x EXEC_IO_TIMEOUT_S + 1 = "
                f"{slowest_attempt:g}"
            )
        if (
            self.auditor_key is not None
            and self.admin_key is not None
            and self.auditor_key.get_secret_value() == self.admin_key.get_secret_value()
        ):
            # One key for both roles would make every auditor an operator.
            raise ValueError("EXEC_AUDITOR_KEY must differ from EXEC_AGENT_ADMIN_KEY")
        if (
            self.alpaca_account_number is not None
            and self.broker_account_id is not None
            and self.broker_account_id != self.alpaca_account_number
        ):
            # The limits are kept per bound account: two deployments with the same keys under
            # two labels would each get a full set. Verified, the label is the account number.
            raise ValueError(
                "EXEC_BROKER_ACCOUNT_ID must be the verified ALPACA_ACCOUNT_NUMBER when that is "
                "set, so that one Alpaca account is one set of limits"
            )
        # Routing for real, the claim, then a broker call with its settle and record, must fit
        # in the deadline, or no intent could ever be routed.
        routable = 2 * self.broker_timeout_s + 3 * self.io_timeout_s
        if not self.dry_run and self.request_deadline_s < routable:
            raise ValueError(
                f"EXEC_REQUEST_DEADLINE_S ({self.request_deadline_s:g}) leaves no time for a "
                f"broker call: it needs 2 x EXEC_BROKER_TIMEOUT_S + 3 x EXEC_IO_TIMEOUT_S = "
                f"{routable:g}"
            )
        if self.error_backoff_max_s < self.error_backoff_base_s:
            raise ValueError("EXEC_AGENT_ERROR_BACKOFF_MAX_S must be >= EXEC_AGENT_ERROR_BACKOFF_S")
        return self

    @property
    def routes_to_broker(self) -> bool:
        return not self.dry_run

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        """Reads the settings; raises ConfigurationError naming each bad variable."""
        raw: dict[str, Any] = {}
        notices: list[str] = []
        problems: list[str] = []
        used_names: dict[str, list[str]] = {}
        for field_name, names in ENV_NAMES.items():
            present = [(name, env[name]) for name in names if env.get(name) is not None]
            if field_name in KILL_SWITCH_FIELDS:
                # A blank kill-switch variable is a half-done edit, not "no source".
                problems += [
                    f"{name}: is set but blank; give it a value or unset it (a kill-switch variable "
                    "is never ignored)"
                    for name, value in present
                    if not value.strip()
                ]
            given = [(name, value.strip()) for name, value in present if value.strip()]
            if not given:
                continue
            notices += [
                f"{name} is deprecated; use {names[0]}"
                for name, _ in given
                if name != names[0] and name not in COMPATIBLE_ALIASES
            ]
            used_names[field_name] = [name for name, _ in given]
            if field_name == "halted_env":
                raw[field_name] = tuple(given)
            elif field_name in KILL_SWITCH_FIELDS:
                raw[field_name] = tuple(value for _, value in given)
            elif len({value for _, value in given}) > 1:
                # Two names for one setting that disagree: which one the operator meant is
                # a guess, and a wrong guess could be the wrong database or project.
                names_given = " and ".join(name for name, _ in given)
                problems.append(f"{names_given} are both set and differ: set only one")
            else:
                raw[field_name] = given[0][1]
        mode = raw.get("agent_mode")
        if mode is not None:
            raw["agent_mode"] = mode.upper()
            if raw["agent_mode"] not in AgentMode.__members__:
                notices.append(f"AGENT_MODE={mode!r} is not a known mode; using DISABLED")
                raw["agent_mode"] = AgentMode.DISABLED.value
        for upper_field in ("trading_mode", "log_level"):
            if upper_field in raw:
                raw[upper_field] = raw[upper_field].upper()
        for control in SWITCHABLE_CONTROLS:
            if str(raw.get(control, "")).lower() == "off":
                raw[control] = None
                notices.append(f"{used_names[control][0]}=off: this pre-trade control is disabled")
        if isinstance(raw.get("repeat_limit"), str):
            try:
                raw["repeat_limit"] = RepeatLimit.parse(raw["repeat_limit"])
            except ValueError as exc:
                raise ConfigurationError(
                    f"invalid configuration: EXEC_REPEAT_LIMIT: {exc}"
                ) from None
        for listed in _SYMBOL_LISTS:
            if listed in raw:
                raw[listed] = symbol_list(raw[listed])
        if "trading_hours" in raw:
            raw["trading_hours"] = raw["trading_hours"].lower()
        raw["startup_warnings"] = tuple(notices)
        try:
            settings = cls.model_validate(raw)
        except ValidationError as exc:
            problems += _explain(exc, used_names)
        else:
            if not problems:
                return settings
        raise ConfigurationError("invalid configuration: " + "; ".join(problems))


def _explain(exc: ValidationError, used_names: Mapping[str, list[str]]) -> list[str]:
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        loc = error["loc"]
        field_name = str(loc[0]) if loc else ""
        names = used_names.get(field_name) or list(ENV_NAMES.get(field_name, ("",))[:1])
        message = str(error["msg"]).removeprefix("Value error, ")
        if len(loc) > 1 and isinstance(loc[1], int) and loc[1] < len(names):
            variable = names[loc[1]]  # one of several sources: the one that is wrong
        elif field_name == "halted_env":
            variable = ""  # the message names each variable itself
        else:
            variable = names[0]
        lines.append(f"{variable}: {message}" if variable else message)
    return lines


def symbol_list(text: str) -> frozenset[str]:
    """Comma-separated symbols, as the intent spells them (upper case, trimmed)."""
    return frozenset(part.strip().upper() for part in text.split(",") if part.strip())
