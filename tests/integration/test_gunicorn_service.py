"""The service as deployed: gunicorn, the app factory, and a ConfigMap-style kill switch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from backend.devtools.configmap import ConfigMapDir
from backend.devtools.service_process import APP, REPO_ROOT, ServiceProcess
from tests.conftest import intent_body


@pytest.fixture
def service_env(firestore_emulator: str, firestore_project: str, pg_dsn: str) -> dict[str, str]:
    return {
        "FIRESTORE_EMULATOR_HOST": firestore_emulator,
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "EXEC_POSTGRES_DSN": pg_dsn,
        # No market data here (no Alpaca keys): the controls that need a price are switched off.
        "EXEC_MAX_ORDER_NOTIONAL": "off",
        "EXEC_PRICE_COLLAR_PCT": "off",
    }


@pytest.fixture
def configmap(tmp_path: Path) -> ConfigMapDir:
    volume = ConfigMapDir(tmp_path / "kill-switch")
    volume.publish(EXECUTION_HALTED="0\n")
    return volume


@pytest.fixture
def service(service_env: dict[str, str], configmap: ConfigMapDir) -> Iterator[ServiceProcess]:
    env = service_env | {"EXECUTION_HALTED_FILE": str(configmap.root / "EXECUTION_HALTED")}
    process = ServiceProcess(env).wait_healthy()
    yield process
    process.stop()


def execute(service: ServiceProcess, headers: dict[str, str] | None = None) -> Any:
    body = intent_body("gun")
    return requests.post(f"{service.url}/execute", json=body, headers=headers, timeout=10)


def test_a_configmap_symlink_swap_halts_and_resumes_the_running_service(
    service: ServiceProcess, configmap: ConfigMapDir
) -> None:
    assert execute(service).json()["status"] == "dry_run"
    configmap.publish(EXECUTION_HALTED="1\n")
    halted = execute(service)
    assert halted.status_code == 409
    assert halted.json()["reason"] == "kill_switch_enabled"
    configmap.publish(EXECUTION_HALTED="0\n")
    assert execute(service).status_code == 200


def test_the_service_logs_one_json_decision_record_per_intent(service: ServiceProcess) -> None:
    response = execute(service)
    intent_id = response.json()["client_intent_id"]
    records = [line for line in service.output().splitlines() if intent_id in line]
    decisions = [line for line in records if '"execution.decision"' in line]
    assert len(decisions) == 1
    assert json.loads(decisions[0])["decision"]["client_intent_id"] == intent_id
    assert '"severity": "INFO"' in decisions[0]


def test_the_decision_record_carries_the_requests_cloud_trace(
    service: ServiceProcess, service_env: dict[str, str]
) -> None:
    trace_id = "105445aa7843bc8bf206b12000100000"
    response = execute(service, {"X-Cloud-Trace-Context": f"{trace_id}/1;o=1"})
    intent_id = response.json()["client_intent_id"]
    line = next(
        line
        for line in service.output().splitlines()
        if intent_id in line and '"execution.decision"' in line
    )
    expected = f"projects/{service_env['GOOGLE_CLOUD_PROJECT']}/traces/{trace_id}"
    assert json.loads(line)["logging.googleapis.com/trace"] == expected


def test_invalid_settings_stop_start_up_naming_the_variable(service_env: dict[str, str]) -> None:
    env = {**os.environ, **service_env, "EXEC_MAX_DAILY_TRADES": "ten"}
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        "127.0.0.1:0",
        "--no-control-socket",
        APP,
    ]
    finished = subprocess.run(
        command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert finished.returncode != 0
    assert "EXEC_MAX_DAILY_TRADES" in finished.stdout + finished.stderr
