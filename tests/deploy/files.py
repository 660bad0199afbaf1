"""Readers for the deployment files: the Dockerfile, cloudbuild.yaml and the YAML under k8s/.

No container engine or cluster is needed: everything is parsed, and the Kubernetes manifests
are checked against the JSON schemas bundled in kubernetes-validate (no network).
"""

from __future__ import annotations

import json
import re
import shlex
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from backend.execution.settings import ENV_NAMES, Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = REPO_ROOT / "k8s"
CLOUD_RUN_SERVICE = K8S_DIR / "cloudrun" / "service.yaml"
RENDER_SCRIPT = K8S_DIR / "cloudrun" / "render.sh"
APP_FACTORY = "backend.services.execution_service.app:create_app()"

# Variables the deployment may set that Settings does not read: gunicorn's (the Dockerfile's
# CMD), the emulator's, and the OIDC verification of Pub/Sub and Cloud Scheduler pushes.
EXTRA_ENV_NAMES = frozenset(
    {
        "PORT",
        "GUNICORN_WORKERS",
        "GUNICORN_THREADS",
        "GUNICORN_GRACEFUL_TIMEOUT",
        "FIRESTORE_EMULATOR_HOST",
        "FIRESTORE_EMULATOR_PORT",
        "PUBSUB_PUSH_AUDIENCE",
        "PUBSUB_PUSH_SERVICE_ACCOUNT",
    }
)


# Secret settings a deployment may leave out: the console's auditor key (the auditor role is
# optional, docs/DEPLOY.md#the-console). When set, it comes from a secret like the others.
OPTIONAL_SECRET_ENV_NAMES = frozenset({"EXEC_AUDITOR_KEY"})


def setting_env_names() -> frozenset[str]:
    """Preferred names only: a deprecated alias logs a warning at every start-up."""
    return frozenset(names[0] for names in ENV_NAMES.values())


def secret_env_names() -> frozenset[str]:
    """The variables Settings holds as SecretStr (Alpaca keys, Postgres DSN, admin key)."""
    names = set()
    for field_name, field in Settings.model_fields.items():
        annotation = field.annotation
        if annotation is SecretStr or SecretStr in typing.get_args(annotation):
            names.update(ENV_NAMES[field_name])
    return frozenset(names)


# --- YAML ----------------------------------------------------------------------------------


def yaml_files() -> list[Path]:
    return sorted(p for p in K8S_DIR.rglob("*") if p.suffix in {".yaml", ".yml"})


def load_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def gke_resources() -> dict[str, dict[str, Any]]:
    """The resources `kubectl apply -k k8s/` applies, by kind (one of each)."""
    kustomization = load_documents(K8S_DIR / "kustomization.yaml")[0]
    by_kind: dict[str, dict[str, Any]] = {}
    for name in kustomization["resources"]:
        for doc in load_documents(K8S_DIR / name):
            key = doc["kind"]
            if key == "ConfigMap":
                key = f"ConfigMap/{doc['metadata']['name']}"
            assert key not in by_kind, f"two {key} resources"
            by_kind[key] = doc
    return by_kind


def cloud_run_service() -> dict[str, Any]:
    (doc,) = load_documents(CLOUD_RUN_SERVICE)
    return doc


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, or the revision spec of a Knative Service."""
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def containers(resource: dict[str, Any]) -> list[dict[str, Any]]:
    spec = pod_spec(resource)
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_entries(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every explicit `env` entry of every container, by variable name."""
    entries: dict[str, dict[str, Any]] = {}
    for container in containers(resource):
        for entry in container.get("env", []):
            entries[entry["name"]] = entry
    return entries


def walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every (path, value) pair of a parsed YAML tree, e.g. ('spec.replicas', 2)."""
    if isinstance(node, dict):
        for key, value in node.items():
            child = f"{path}.{key}" if path else str(key)
            yield child, value
            yield from walk(value, child)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{path}[{index}]")


# --- Dockerfile ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile(path: Path = REPO_ROOT / "Dockerfile") -> list[Instruction]:
    """Instructions in order, with line continuations joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker also drops comment lines inside a continuation
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def image_env(instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword != "ENV":
            continue
        words = shlex.split(instruction.arguments)
        if "=" not in words[0]:  # legacy form: ENV NAME value
            env[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            name, _, value = word.partition("=")
            env[name] = value
    return env


@dataclass(frozen=True)
class ShellCommand:
    line: str  # exactly what /bin/sh -c runs
    words: list[str]

    def option(self, name: str) -> str | None:
        """The value after `--name`, or None if the option is absent."""
        if name not in self.words:
            return None
        return self.words[self.words.index(name) + 1]


def cmd(instructions: list[Instruction]) -> ShellCommand:
    """The final CMD, which must be exec form: ["/bin/sh", "-c", "exec gunicorn ..."]."""
    last = [i for i in instructions if i.keyword == "CMD"][-1]
    form = json.loads(last.arguments)  # raises for the shell form
    assert form[:2] == ["/bin/sh", "-c"] and len(form) == 3, form
    return ShellCommand(form[2], shlex.split(form[2]))


_DEFAULTED = re.compile(r"^\$\{(?P<name>\w+):-(?P<default>[^}]*)\}$")
_PLAIN = re.compile(r"^\$\{?(?P<name>\w+)\}?$")


def effective_default(word: str, env: dict[str, str]) -> str:
    """What `${NAME:-default}` (or `$NAME`, or a literal) expands to with the image's ENV."""
    if match := _DEFAULTED.match(word):
        return env.get(match["name"]) or match["default"]
    if match := _PLAIN.match(word):
        return env[match["name"]]
    return word
