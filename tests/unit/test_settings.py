"""Settings are read once; bad values stop start-up naming the variable."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from backend.execution.bootstrap import build_kill_switches
from backend.execution.engine import ExecutionEngine
from backend.execution.errors import ConfigurationError
from backend.execution.kill_switch import KillSwitchReading, kill_switch_check
from backend.execution.settings import Settings, is_live_host
from backend.execution.vocabulary import AgentMode, Reason
from tests.support.fakes import InMemoryLedger, InMemoryRiskBook


class FakeFirestore:
    """Stands in for the Firestore client: building a document source reads nothing."""

    def document(self, path: str) -> Any:
        return path


LIVE_KEYS = {
    "EXEC_DRY_RUN": "0",
    "ALPACA_API_KEY": "k",
    "ALPACA_SECRET_KEY": "s",
    "EXEC_BROKER_ACCOUNT_ID": "paper-1",
}


def test_the_defaults_are_safe() -> None:
    settings = Settings.from_env({})
    assert settings.dry_run is True
    assert settings.agent_mode is AgentMode.DISABLED
    assert settings.risk_fail_open is False
    assert (settings.max_daily_trades, settings.max_position_qty) == (50, 100)


@pytest.mark.parametrize(
    "env,variable",
    [
        ({"EXEC_MAX_DAILY_TRADES": "ten"}, "EXEC_MAX_DAILY_TRADES"),
        ({"EXEC_MAX_POSITION_QTY": "-1"}, "EXEC_MAX_POSITION_QTY"),
        ({"EXEC_DRY_RUN": "maybe"}, "EXEC_DRY_RUN"),
        ({"EXEC_BROKER_TIMEOUT_S": "0"}, "EXEC_BROKER_TIMEOUT_S"),
        ({"EXECUTION_HALTED_DOC": "just-a-collection"}, "EXECUTION_HALTED_DOC"),
    ],
)
def test_invalid_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigurationError, match=variable):
        Settings.from_env(env)


def test_live_routing_without_alpaca_keys_does_not_start() -> None:
    with pytest.raises(ConfigurationError, match="ALPACA_API_KEY, ALPACA_SECRET_KEY"):
        Settings.from_env({"EXEC_DRY_RUN": "false"})


def test_alpacas_live_host_needs_an_explicit_trading_mode() -> None:
    env = LIVE_KEYS | {"ALPACA_TRADING_HOST": "https://api.alpaca.markets"}
    with pytest.raises(ConfigurationError, match="TRADING_MODE=LIVE"):
        Settings.from_env(env)
    assert Settings.from_env(env | {"TRADING_MODE": "live"}).trading_mode == "LIVE"


@pytest.mark.parametrize(
    "host",
    ["https://api.alpaca.markets:443", "https://API.Alpaca.Markets/", "http://api.alpaca.markets"],
)
def test_the_live_host_is_recognised_however_it_is_spelled(host: str) -> None:
    with pytest.raises(ConfigurationError, match="TRADING_MODE=LIVE"):
        Settings.from_env(LIVE_KEYS | {"ALPACA_TRADING_HOST": host})


def test_the_claim_lease_must_outlast_an_attempt() -> None:
    with pytest.raises(ConfigurationError, match="EXEC_CLAIM_LEASE_S"):
        Settings.from_env({"EXEC_CLAIM_LEASE_S": "5"})


def test_deprecated_kill_switch_aliases_work_and_warn() -> None:
    settings = Settings.from_env({"EXEC_KILL_SWITCH": "1", "EXEC_KILL_SWITCH_FILE": "/k"})
    assert settings.halted_env == (("EXEC_KILL_SWITCH", "1"),)
    assert settings.halted_file == ("/k",)
    assert any("EXEC_KILL_SWITCH is deprecated" in w for w in settings.startup_warnings)


def readings(env: dict[str, str]) -> list[KillSwitchReading]:
    sources = build_kill_switches(Settings.from_env(env), FakeFirestore)
    return [source.read() for source in sources]


def test_every_kill_switch_alias_is_a_source_and_any_one_on_halts() -> None:
    halted = kill_switch_check(readings({"EXECUTION_HALTED": "0", "EXEC_KILL_SWITCH": "1"}))
    assert halted.reason is Reason.KILL_SWITCH_ENABLED
    assert "env:EXEC_KILL_SWITCH is on" in halted.detail


def test_both_kill_switch_files_and_both_documents_are_read(tmp_path: Path) -> None:
    on, off = tmp_path / "on", tmp_path / "off"
    on.write_text("1\n")
    off.write_text("0\n")
    env = {
        "EXECUTION_HALTED_FILE": str(off),
        "EXEC_KILL_SWITCH_FILE": str(on),
        "EXECUTION_HALTED_DOC": "ops/kill",
        "EXEC_KILL_SWITCH_DOC": "ops/old_kill",
    }
    sources = build_kill_switches(Settings.from_env(env), FakeFirestore)
    assert [type(s).__name__ for s in sources] == [
        "FileKillSwitch",
        "FileKillSwitch",
        "FirestoreKillSwitch",
        "FirestoreKillSwitch",
    ]
    assert kill_switch_check([s.read() for s in sources[:2]]).reason is Reason.KILL_SWITCH_ENABLED


@pytest.mark.parametrize(
    "variable",
    [
        "EXECUTION_HALTED",
        "EXEC_KILL_SWITCH",
        "EXECUTION_HALTED_FILE",
        "EXEC_KILL_SWITCH_FILE",
        "EXECUTION_HALTED_DOC",
        "EXEC_KILL_SWITCH_DOC",
    ],
)
def test_a_blank_kill_switch_variable_stops_start_up_naming_it(variable: str) -> None:
    with pytest.raises(ConfigurationError, match=f"{variable}: is set but blank"):
        Settings.from_env({variable: " "})


def test_an_env_kill_switch_value_that_is_neither_on_nor_off_stops_start_up() -> None:
    with pytest.raises(ConfigurationError, match="EXEC_KILL_SWITCH='ture' is neither on"):
        Settings.from_env({"EXECUTION_HALTED": "0", "EXEC_KILL_SWITCH": "ture"})


def test_live_routing_without_a_file_or_firestore_kill_switch_does_not_start() -> None:
    settings = Settings.from_env(LIVE_KEYS | {"EXECUTION_HALTED": "0"})  # env alone: restart
    with pytest.raises(ConfigurationError, match="EXECUTION_HALTED_FILE or EXECUTION_HALTED_DOC"):
        build_kill_switches(settings, FakeFirestore, routes_to_broker=True)
    with pytest.raises(ConfigurationError, match="EXEC_ALLOW_NO_KILL_SWITCH"):
        ExecutionEngine(settings=settings, ledger=InMemoryLedger(), risk_book=InMemoryRiskBook())


def test_live_routing_with_a_kill_switch_file_or_document_starts() -> None:
    for switch in ({"EXECUTION_HALTED_FILE": "/k"}, {"EXECUTION_HALTED_DOC": "ops/kill"}):
        settings = Settings.from_env(LIVE_KEYS | switch)
        assert len(build_kill_switches(settings, FakeFirestore, routes_to_broker=True)) == 1


def test_the_no_kill_switch_opt_out_starts_live_routing_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = Settings.from_env(LIVE_KEYS | {"EXEC_ALLOW_NO_KILL_SWITCH": "true"})
    with caplog.at_level(logging.WARNING):
        assert build_kill_switches(settings, FakeFirestore, routes_to_broker=True) == []
    assert any("EXEC_ALLOW_NO_KILL_SWITCH" in r.getMessage() for r in caplog.records)


def test_dry_run_needs_no_kill_switch() -> None:
    assert build_kill_switches(Settings.from_env({}), FakeFirestore, routes_to_broker=False) == []


@pytest.mark.parametrize(
    "host",
    [
        "https://api.alpaca.markets./",  # a trailing dot: DNS reaches the same host
        "https://api.alpaca.markets..",
        "https://user:pass@api.alpaca.markets",
        "https://api%2ealpaca.markets",  # requests decodes the escape before connecting
        "https://API%2EALPACA.MARKETS:443/",
        "https://\uff41\uff50\uff49.alpaca.markets",  # full-width letters, mapped by IDNA
        "https://api\u3002alpaca\u3002markets",  # ideographic full stops
    ],
)
def test_every_spelling_of_the_live_host_is_recognised(host: str) -> None:
    assert is_live_host(host)
    with pytest.raises(ConfigurationError, match="TRADING_MODE=LIVE"):
        Settings.from_env(LIVE_KEYS | {"ALPACA_TRADING_HOST": host})


@pytest.mark.parametrize(
    "host",
    [
        "https://paper-api.alpaca.markets",
        "https://api.alpaca.markets.example.com",
        "http://127.0.0.1:8765",
        "http://[::1]:8765",
    ],
)
def test_other_hosts_are_not_the_live_host(host: str) -> None:
    assert not is_live_host(host)


def test_database_url_and_firebase_project_id_are_read_as_aliases_without_a_warning() -> None:
    settings = Settings.from_env(
        {"DATABASE_URL": "postgresql://db/x", "FIREBASE_PROJECT_ID": "proj-1"}
    )
    assert settings.postgres_dsn is not None
    assert settings.postgres_dsn.get_secret_value() == "postgresql://db/x"
    assert settings.gcp_project == "proj-1"
    assert settings.startup_warnings == ()


def test_an_alias_equal_to_the_preferred_name_is_accepted() -> None:
    env = {"GOOGLE_CLOUD_PROJECT": "p", "FIREBASE_PROJECT_ID": "p"}
    assert Settings.from_env(env).gcp_project == "p"


@pytest.mark.parametrize(
    "env,names",
    [
        (
            {"GOOGLE_CLOUD_PROJECT": "a", "FIREBASE_PROJECT_ID": "b"},
            "GOOGLE_CLOUD_PROJECT and FIREBASE_PROJECT_ID",
        ),
        (
            {"EXEC_POSTGRES_DSN": "postgresql://a/x", "DATABASE_URL": "postgresql://b/x"},
            "EXEC_POSTGRES_DSN and DATABASE_URL",
        ),
    ],
)
def test_an_alias_that_differs_from_the_preferred_name_stops_start_up_naming_both(
    env: dict[str, str], names: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"{names} are both set and differ") as raised:
        Settings.from_env(env)
    assert "postgresql://" not in str(raised.value)  # names, never the values


def test_an_unknown_agent_mode_falls_back_to_disabled_with_a_warning() -> None:
    settings = Settings.from_env({"AGENT_MODE": "turbo"})
    assert settings.agent_mode is AgentMode.DISABLED
    assert settings.startup_warnings


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = Settings.from_env(LIVE_KEYS | {"ALPACA_SECRET_KEY": "very-secret-value"})
    assert "very-secret-value" not in repr(settings)


def test_a_verified_account_number_must_be_the_bound_account() -> None:
    verified = LIVE_KEYS | {"ALPACA_ACCOUNT_NUMBER": "PA-ONE"}
    with pytest.raises(ConfigurationError, match="EXEC_BROKER_ACCOUNT_ID must be the verified"):
        Settings.from_env(verified)
    assert Settings.from_env(verified | {"EXEC_BROKER_ACCOUNT_ID": "PA-ONE"}).broker_account_id
