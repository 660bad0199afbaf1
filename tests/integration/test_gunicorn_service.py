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

from tests.conftest import unique
from tests.support.service_process import APP, REPO_ROOT, ServiceProcess


class ConfigMapVolume:
    """Mimics the kubelet: files reached through ``..data``, updated by an atomic symlink swap."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.generation = 0

    def publish(self, **files: str) -> None:
        self.generation += 1
        version = self.root / f"..2026_11_21_{self.generation:02d}"
        version.mkdir()
        for name, content in files.items():
            (version / name).write_text(content)
        staging = self.root / "..data_tmp"
        staging.symlink_to(version.name)
        os.replace(staging, self.root / "..data")  # the atomic rename the kubelet does
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                link.symlink_to(f"..data/{name}")


@pytest.fixture
def service_env(firestore_emulator: str, firestore_project: str, pg_dsn: str) -> dict[str, str]:
    return {
        "FIRESTORE_EMULATOR_HOST": firestore_emulator,
        "GOOGLE_CLOUD_PROJECT": firestore_project,
        "EXEC_POSTGRES_DSN": pg_dsn,
    }


@pytest.fixture
def configmap(tmp_path: Path) -> ConfigMapVolume:
    volume = ConfigMapVolume(tmp_path / "kill-switch")
    volume.root.mkdir()
    volume.publish(EXECUTION_HALTED="0\n")
    return volume


@pytest.fixture
def service(service_env: dict[str, str], configmap: ConfigMapVolume) -> Iterator[ServiceProcess]:
    env = service_env | {"EXECUTION_HALTED_FILE": str(configmap.root / "EXECUTION_HALTED")}
    process = ServiceProcess(env).wait_healthy()
    yield process
    process.stop()


def execute(service: ServiceProcess) -> Any:
    body = {
        "client_intent_id": unique("gun"),
        "strategy_id": "s",
        "broker_account_id": unique("acct"),
        "symbol": "SPY",
        "side": "buy",
        "qty": "1",
        "order_type": "market",
    }
    return requests.post(f"{service.url}/execute", json=body, timeout=10)


def test_a_configmap_symlink_swap_halts_and_resumes_the_running_service(
    service: ServiceProcess, configmap: ConfigMapVolume
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
