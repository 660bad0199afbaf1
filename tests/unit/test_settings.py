"""Settings are read once; bad values stop start-up naming the variable."""

from __future__ import annotations

import pytest

from backend.execution.errors import ConfigurationError
from backend.execution.settings import Settings
from backend.execution.vocabulary import AgentMode

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
    assert (settings.halted_env, settings.halted_file) == ("1", "/k")
    assert any("EXEC_KILL_SWITCH is deprecated" in w for w in settings.startup_warnings)


def test_the_new_name_wins_over_a_deprecated_alias() -> None:
    settings = Settings.from_env({"EXECUTION_HALTED": "0", "EXEC_KILL_SWITCH": "1"})
    assert settings.halted_env == "0"


def test_an_unknown_agent_mode_falls_back_to_disabled_with_a_warning() -> None:
    settings = Settings.from_env({"AGENT_MODE": "turbo"})
    assert settings.agent_mode is AgentMode.DISABLED
    assert settings.startup_warnings


def test_secrets_never_show_in_the_settings_repr() -> None:
    settings = Settings.from_env(LIVE_KEYS | {"ALPACA_SECRET_KEY": "very-secret-value"})
    assert "very-secret-value" not in repr(settings)
