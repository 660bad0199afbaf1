"""The Dockerfile, cloudbuild.yaml and k8s/ say what docs/DEPLOY.md promises.

Parsed, not built: no container engine or cluster runs here. Kubernetes manifests are
validated strictly (unknown fields rejected) against the schemas bundled in
kubernetes-validate, offline. The Knative Service for Cloud Run is a CRD the validator has no
schema for: its structure is checked here, and its container against the core Container schema.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import requests
import yaml
from kubernetes_validate.utils import ValidationError

from backend.devtools.service_process import free_port
from backend.execution.errors import ConfigurationError
from backend.execution.settings import Settings
from tests.deploy import files

# The oldest Kubernetes minor we deploy to, and the newest the pinned validator bundles: an
# API that is missing in either fails.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
CLOUD_RUN_SIGKILL_AFTER_S = 10
KILL_SWITCH_CONFIGMAP = "execution-kill-switch"


@pytest.fixture(scope="module")
def instructions() -> list[files.Instruction]:
    return files.dockerfile()


@pytest.fixture(scope="module")
def gke() -> dict[str, dict[str, Any]]:
    return files.gke_resources()


@pytest.fixture(scope="module")
def cloud_build() -> dict[str, Any]:
    return files.load_documents(files.REPO_ROOT / "cloudbuild.yaml")[0]


def _deployed(gke: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [gke["Deployment"], files.cloud_run_service()]


# --- Dockerfile ----------------------------------------------------------------------------


def test_the_base_image_is_a_pinned_python_3_11_slim_bookworm_release(
    instructions: list[files.Instruction],
) -> None:
    (base,) = [i.arguments for i in instructions if i.keyword == "FROM"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", base), base


def test_the_image_runs_as_a_numeric_non_root_user(instructions: list[files.Instruction]) -> None:
    user = [i.arguments for i in instructions if i.keyword == "USER"][-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, user
    assert gid == "" or (gid.isdigit() and int(gid) != 0), user


def test_requirements_are_installed_before_the_code_is_copied(
    instructions: list[files.Instruction],
) -> None:
    def first(keyword: str, pattern: str) -> int:
        return next(
            n
            for n, i in enumerate(instructions)
            if i.keyword == keyword and re.search(pattern, i.arguments)
        )

    copy_requirements = first("COPY", r"^requirements\.txt\b")
    install = first("RUN", r"pip install .*-r requirements\.txt")
    copy_code = first("COPY", r"^backend\b")
    assert copy_requirements < install < copy_code


def test_python_output_is_unbuffered(instructions: list[files.Instruction]) -> None:
    assert files.image_env(instructions).get("PYTHONUNBUFFERED") == "1"


def test_the_command_execs_gunicorn_with_the_app_factory_on_all_interfaces(
    instructions: list[files.Instruction],
) -> None:
    command = files.cmd(instructions)
    assert command.words[:2] == ["exec", "gunicorn"], "without exec, SIGTERM stops at the shell"
    assert command.words[-1] == files.APP_FACTORY
    assert re.fullmatch(r"0\.0\.0\.0:\$\{PORT(:-8080)?\}", command.option("--bind") or "")
    assert command.option("--timeout") == "0"
    env = files.image_env(instructions)
    assert int(files.effective_default(command.option("--workers") or "", env)) >= 1
    assert int(files.effective_default(command.option("--threads") or "", env)) >= 1


def test_the_image_loads_the_gunicorn_config_that_drains_on_sigterm(
    instructions: list[files.Instruction],
) -> None:
    command = files.cmd(instructions)
    assert command.option("--config") == "python:backend.services.execution_service.gunicorn_conf"


def test_the_default_graceful_timeout_fits_cloud_runs_ten_seconds_before_sigkill(
    instructions: list[files.Instruction],
) -> None:
    command = files.cmd(instructions)
    word = command.option("--graceful-timeout") or ""
    assert "GUNICORN_GRACEFUL_TIMEOUT" in word, "GKE sets a longer one through the environment"
    default = int(files.effective_default(word, files.image_env(instructions)))
    assert default <= CLOUD_RUN_SIGKILL_AFTER_S - 1


def test_gunicorn_writes_nothing_outside_tmp_on_a_read_only_root(
    instructions: list[files.Instruction],
) -> None:
    command = files.cmd(instructions)
    assert "--no-control-socket" in command.words  # else gunicorn 27 writes ~/.gunicorn/
    assert command.option("--worker-tmp-dir") == "/tmp"


def test_the_dockerignore_keeps_the_repository_metadata_tests_and_dev_tools_out() -> None:
    ignored = {
        line.strip()
        for line in (files.REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for entry in [".git", ".venv", ".local", "tests", "docs", "backend/devtools"]:
        assert entry in ignored, entry
    assert {"node_modules", "**/node_modules"} & ignored
    assert "**/__pycache__" in ignored


def test_the_image_command_serves_healthz_and_stops_gracefully_on_sigterm(
    instructions: list[files.Instruction], tmp_path: Path
) -> None:
    port = free_port()
    home = tmp_path / "home"
    home.mkdir()
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(home),
        "PORT": str(port),
        "GUNICORN_WORKERS": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        # Nothing listens there: /healthz must answer without touching either.
        "EXEC_POSTGRES_DSN": "postgresql://nobody@127.0.0.1:9/none",
        "FIRESTORE_EMULATOR_HOST": "127.0.0.1:9",
        "GOOGLE_CLOUD_PROJECT": "demo-deploy-test",
    }
    process = subprocess.Popen(
        ["/bin/sh", "-c", files.cmd(instructions).line],
        cwd=files.REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_healthz(f"http://127.0.0.1:{port}/healthz", process)
        # exec: the shell's PID is now gunicorn's master, so SIGTERM reaches gunicorn.
        assert b"gunicorn" in Path(f"/proc/{process.pid}/cmdline").read_bytes()
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=CLOUD_RUN_SIGKILL_AFTER_S) == 0
        assert time.monotonic() - started < CLOUD_RUN_SIGKILL_AFTER_S
        assert list(home.iterdir()) == [], "gunicorn wrote into HOME"
    finally:
        # The whole session: without `exec`, gunicorn outlives the shell it was started from.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _wait_for_healthz(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read().decode(errors="replace") if process.stdout else ""
            pytest.fail(f"the image command exited early:\n{output}")
        try:
            if requests.get(url, timeout=0.5).json() == {"status": "ok"}:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail("the image command did not answer /healthz within 30 s")


# --- cloudbuild.yaml -----------------------------------------------------------------------


def _prerequisites(steps: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Step id -> every step it waits for, directly or not (Cloud Build's waitFor rules)."""
    direct: dict[str, set[str]] = {}
    for position, step in enumerate(steps):
        wait_for = step.get("waitFor")
        if wait_for is None:  # no waitFor: waits for every earlier step
            direct[step["id"]] = {s["id"] for s in steps[:position]}
        else:
            direct[step["id"]] = {w for w in wait_for if w != "-"}
    closure: dict[str, set[str]] = {}
    for step_id in direct:
        seen: set[str] = set()
        todo = list(direct[step_id])
        while todo:
            current = todo.pop()
            if current not in seen:
                seen.add(current)
                todo.extend(direct[current])
        closure[step_id] = seen
    return closure


def test_cloud_build_tests_then_builds_then_pushes_then_deploys(
    cloud_build: dict[str, Any],
) -> None:
    steps = cloud_build["steps"]
    ids = [step["id"] for step in steps]
    assert ids == ["test", "build", "push", "deploy"]
    after = _prerequisites(steps)
    assert after["build"] >= {"test"}
    assert after["push"] >= {"test", "build"}
    assert after["deploy"] >= {"test", "build", "push"}
    test_step = steps[0]
    assert "make test" in " ".join(test_step["args"])
    assert re.search(r"apt-get install .*\bpostgresql\b", " ".join(test_step["args"]))


def test_the_test_step_runs_on_the_same_python_release_as_the_image(
    cloud_build: dict[str, Any], instructions: list[files.Instruction]
) -> None:
    (base,) = [i.arguments for i in instructions if i.keyword == "FROM"]
    release = re.match(r"python:(3\.11\.\d+)-", base)
    assert release is not None
    assert cloud_build["steps"][0]["name"] == f"python:{release[1]}-bookworm"


def test_the_image_is_tagged_with_the_commit_sha_and_never_latest(
    cloud_build: dict[str, Any],
) -> None:
    text = (files.REPO_ROOT / "cloudbuild.yaml").read_text()
    assert not re.search(r"latest", text, re.IGNORECASE)
    image = "${_REGION}-docker.pkg.dev/$PROJECT_ID/${_REPOSITORY}/${_SERVICE}:$COMMIT_SHA"
    steps = {step["id"]: step for step in cloud_build["steps"]}
    assert steps["build"]["args"][:1] == ["build"] and image in steps["build"]["args"]
    assert steps["push"]["args"] == ["push", image]
    assert image in " ".join(steps["deploy"]["args"])
    assert cloud_build["images"] == [image]
    assert set(cloud_build["substitutions"]) == {"_REGION", "_REPOSITORY", "_SERVICE"}


def test_every_build_step_image_has_an_explicit_tag(cloud_build: dict[str, Any]) -> None:
    for step in cloud_build["steps"]:
        last_part = step["name"].rsplit("/", 1)[-1]
        assert ":" in last_part or "@sha256:" in step["name"], step["name"]


def test_the_deploy_step_renders_the_knative_yaml_and_replaces_the_service(
    cloud_build: dict[str, Any],
) -> None:
    deploy = " ".join(next(s for s in cloud_build["steps"] if s["id"] == "deploy")["args"])
    assert "k8s/cloudrun/render.sh" in deploy
    assert re.search(r"gcloud run services replace \S+ --region=\$\{_REGION\}", deploy)


# --- every YAML under k8s/ -----------------------------------------------------------------


@pytest.mark.parametrize(
    "path", files.yaml_files(), ids=lambda p: str(p.relative_to(files.K8S_DIR))
)
def test_every_yaml_file_under_k8s_parses_and_names_its_kind(path: Path) -> None:
    documents = files.load_documents(path)
    assert documents, f"{path} is empty"
    for doc in documents:
        assert doc.get("apiVersion") and doc.get("kind"), doc


def _kubernetes_documents() -> list[tuple[str, dict[str, Any]]]:
    found = []
    for path in files.yaml_files():
        for doc in files.load_documents(path):
            group = doc["apiVersion"].split("/")[0]
            if group in {"kustomize.config.k8s.io", "serving.knative.dev", "networking.gke.io"}:
                continue  # no bundled schema (CRDs): checked structurally below
            found.append((f"{path.relative_to(files.K8S_DIR)}:{doc['kind']}", doc))
    return found


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(
    ("name", "doc"), _kubernetes_documents(), ids=[n for n, _ in _kubernetes_documents()]
)
def test_kubernetes_manifests_pass_strict_schema_validation(
    name: str, doc: dict[str, Any], version: str
) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_schema_validator_rejects_a_misspelt_field(gke: dict[str, dict[str, Any]]) -> None:
    broken = copy.deepcopy(gke["Deployment"])
    files.pod_spec(broken)["containers"][0]["readinessProbe"]["httpget"] = {"path": "/readyz"}
    with pytest.raises(ValidationError, match="httpget"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


def test_the_kustomization_lists_every_gke_manifest_and_sets_the_image() -> None:
    kustomization = files.load_documents(files.K8S_DIR / "kustomization.yaml")[0]
    on_disk = {p.name for p in files.K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(on_disk)
    (image,) = kustomization["images"]
    container_images = {c["image"] for c in files.containers(files.gke_resources()["Deployment"])}
    assert container_images == {image["name"]}
    assert image["newTag"] != "latest"


def test_no_secret_values_are_committed_as_a_secret_manifest() -> None:
    for path in files.yaml_files():
        for doc in files.load_documents(path):
            assert doc["kind"] != "Secret", f"{path}: reference an existing Secret by name"


# --- the kill switch -----------------------------------------------------------------------


def test_the_kill_switch_configmap_is_mounted_as_a_directory_the_file_setting_points_into(
    gke: dict[str, dict[str, Any]],
) -> None:
    deployment = gke["Deployment"]
    (volume,) = [
        v
        for v in files.pod_spec(deployment)["volumes"]
        if v.get("configMap", {}).get("name") == KILL_SWITCH_CONFIGMAP
    ]
    assert "items" not in volume["configMap"], "project the whole ConfigMap"
    (container,) = files.pod_spec(deployment)["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert "subPath" not in mount and "subPathExpr" not in mount
    halted_file = files.env_entries(deployment)["EXECUTION_HALTED_FILE"]["value"]
    directory, _, key = halted_file.rpartition("/")
    assert directory == mount["mountPath"].rstrip("/")
    assert key in gke[f"ConfigMap/{KILL_SWITCH_CONFIGMAP}"]["data"]


def test_no_volume_anywhere_is_mounted_with_subpath() -> None:
    for path in files.yaml_files():
        for doc in files.load_documents(path):
            for where, _ in files.walk(doc):
                assert not where.endswith((".subPath", ".subPathExpr")), f"{path}: {where}"


def test_the_kill_switch_configmap_is_never_read_as_environment_variables() -> None:
    for path in files.yaml_files():
        for doc in files.load_documents(path):
            for where, value in files.walk(doc):
                if where.endswith((".configMapKeyRef", ".configMapRef")):
                    assert value["name"] != KILL_SWITCH_CONFIGMAP, f"{path}: {where}"


def test_the_kill_switch_starts_off(gke: dict[str, dict[str, Any]]) -> None:
    assert gke[f"ConfigMap/{KILL_SWITCH_CONFIGMAP}"]["data"] == {"EXECUTION_HALTED": "0"}


# --- secrets and settings ------------------------------------------------------------------


def test_secret_settings_come_only_from_secret_references(
    gke: dict[str, dict[str, Any]],
) -> None:
    for resource in _deployed(gke):
        entries = files.env_entries(resource)
        for name in files.secret_env_names():
            if name not in entries:
                # Every preferred name is set; an alias (DATABASE_URL) need not be, but if it
                # is, it comes from a secret too. So does an optional one, when it is set.
                assert (
                    name not in files.setting_env_names() or name in files.OPTIONAL_SECRET_ENV_NAMES
                ), f"{resource['kind']} lacks {name}"
                continue
            entry = entries[name]
            assert "value" not in entry, f"{name} is a literal"
            assert set(entry["valueFrom"]) == {"secretKeyRef"}, name
        for container in files.containers(resource):
            for source in container.get("envFrom", []):
                assert "configMapRef" in source or "secretRef" in source, source


def test_config_maps_hold_no_secret_settings(gke: dict[str, dict[str, Any]]) -> None:
    for key, resource in gke.items():
        if key.startswith("ConfigMap/"):
            assert not set(resource["data"]) & files.secret_env_names(), key


def test_every_environment_variable_in_the_manifests_is_a_real_setting(
    gke: dict[str, dict[str, Any]],
) -> None:
    known = files.setting_env_names() | files.EXTRA_ENV_NAMES
    used = set(files.env_entries(gke["Deployment"])) | set(
        files.env_entries(files.cloud_run_service())
    )
    used |= set(gke["ConfigMap/execution-gateway-config"]["data"])
    assert used - known == set(), "not read by anything (typo or deprecated alias?)"


# --- GKE: probes, security, lifecycle --------------------------------------------------------


def _probe_path(container: dict[str, Any], probe: str) -> str:
    path: str = container[probe]["httpGet"]["path"]
    return path


def test_probes_point_at_healthz_and_readyz(gke: dict[str, dict[str, Any]]) -> None:
    (container,) = files.pod_spec(gke["Deployment"])["containers"]
    assert _probe_path(container, "livenessProbe") == "/healthz"
    assert _probe_path(container, "startupProbe") == "/healthz"
    assert _probe_path(container, "readinessProbe") == "/readyz"
    for probe in ("livenessProbe", "startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["port"] in {"http", 8080}
    (cloud_run,) = files.pod_spec(files.cloud_run_service())["containers"]
    assert _probe_path(cloud_run, "livenessProbe") == "/healthz"
    assert _probe_path(cloud_run, "startupProbe") == "/healthz"


def test_the_pods_run_as_user_10001_read_only_without_privileges(
    gke: dict[str, dict[str, Any]],
) -> None:
    spec = files.pod_spec(gke["Deployment"])
    pod = spec["securityContext"]
    assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 10001
    assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in files.containers(gke["Deployment"]):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert context.get("runAsUser", 10001) == 10001
        assert context.get("privileged", False) is False


def test_tmp_is_a_writable_emptydir(gke: dict[str, dict[str, Any]]) -> None:
    spec = files.pod_spec(gke["Deployment"])
    (container,) = spec["containers"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert not mount.get("readOnly", False)
    (volume,) = [v for v in spec["volumes"] if v["name"] == mount["name"]]
    assert "emptyDir" in volume


def test_termination_grace_outlasts_the_prestop_sleep_and_gunicorns_graceful_timeout(
    gke: dict[str, dict[str, Any]], instructions: list[files.Instruction]
) -> None:
    spec = files.pod_spec(gke["Deployment"])
    (container,) = spec["containers"]
    graceful_word = files.cmd(instructions).option("--graceful-timeout") or ""
    configured = files.env_entries(gke["Deployment"]).get("GUNICORN_GRACEFUL_TIMEOUT")
    graceful = int(
        configured["value"]
        if configured
        else files.effective_default(graceful_word, files.image_env(instructions))
    )
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command")
    sleep = int(pre_stop[-1]) if pre_stop and pre_stop[0].endswith("sleep") else 0
    assert spec["terminationGracePeriodSeconds"] >= sleep + graceful + 2


def test_the_deployment_runs_at_least_two_pods_with_requests_and_limits(
    gke: dict[str, dict[str, Any]],
) -> None:
    deployment = gke["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    for container in files.containers(deployment):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"])
        assert {"cpu", "memory"} <= set(resources["limits"])


def _selects_the_pods(selector: dict[str, Any], gke: dict[str, dict[str, Any]]) -> bool:
    labels = gke["Deployment"]["spec"]["template"]["metadata"]["labels"]
    wanted = selector.get("matchLabels", selector)
    return bool(wanted) and all(labels.get(k) == v for k, v in wanted.items())


def test_the_service_sends_port_80_to_the_containers_port_8080(
    gke: dict[str, dict[str, Any]],
) -> None:
    service = gke["Service"]
    assert service["spec"].get("type", "ClusterIP") == "ClusterIP"
    assert _selects_the_pods(service["spec"]["selector"], gke)
    (port,) = service["spec"]["ports"]
    (container,) = files.pod_spec(gke["Deployment"])["containers"]
    by_name = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert port["port"] == 80
    assert by_name.get(port["targetPort"], port["targetPort"]) == 8080


def test_the_disruption_budget_and_the_autoscaler_keep_the_gateway_available(
    gke: dict[str, dict[str, Any]],
) -> None:
    budget = gke["PodDisruptionBudget"]["spec"]
    assert budget["minAvailable"] == 1 and _selects_the_pods(budget["selector"], gke)
    autoscaler = gke["HorizontalPodAutoscaler"]
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    target = autoscaler["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", gke["Deployment"]["metadata"]["name"])
    assert autoscaler["spec"]["minReplicas"] >= 2
    assert {m["resource"]["name"] for m in autoscaler["spec"]["metrics"]} == {"cpu"}


def test_the_network_policy_admits_only_port_8080_and_lets_out_dns_postgres_and_https(
    gke: dict[str, dict[str, Any]],
) -> None:
    policy = gke["NetworkPolicy"]["spec"]
    assert _selects_the_pods(policy["podSelector"], gke)
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    for rule in policy["ingress"]:
        assert rule["from"], "an ingress rule without `from` admits everyone"
        assert [(p["port"], p["protocol"]) for p in rule["ports"]] == [(8080, "TCP")]
    egress = {(p["port"], p["protocol"]) for rule in policy["egress"] for p in rule["ports"]}
    assert {(53, "UDP"), (53, "TCP"), (5432, "TCP"), (443, "TCP")} <= egress
    assert all(rule.get("ports") for rule in policy["egress"]), "a rule opens every port"


# --- GKE: what is public ---------------------------------------------------------------------

PUBLIC_PATHS = {"/pubsub/push", "/sync-fills"}
PRIVATE_PATHS = [
    "/execute",
    "/state",
    "/recover",
    "/halt",
    "/resume",
    "/strategies/momentum/enable",
    "/readyz",
    "/healthz",
    "/openapi.json",
]
GOOGLE_LOAD_BALANCER_RANGES = {"35.191.0.0/16", "130.211.0.0/22"}


def _ingress_routes(path: str) -> list[dict[str, Any]]:
    """The backends every Ingress in k8s/ sends a request for ``path`` to, as the Ingress API
    matches paths (Exact; Prefix by whole segments; ImplementationSpecific taken as a prefix
    of characters, the widest reading)."""
    backends = []
    for file in files.yaml_files():
        for doc in files.load_documents(file):
            if doc["kind"] != "Ingress":
                continue
            spec = doc["spec"]
            matched = False
            for rule in spec.get("rules", []):
                for route in rule.get("http", {}).get("paths", []):
                    prefix, kind = route.get("path", "/"), route["pathType"]
                    if kind == "Exact":
                        hit = path == prefix
                    elif kind == "Prefix":
                        stem = prefix.rstrip("/")
                        hit = path in (prefix, stem) or path.startswith(stem + "/")
                    else:
                        hit = path.startswith(prefix)
                    if hit:
                        backends.append(route["backend"])
                        matched = True
            if not matched and "defaultBackend" in spec:
                backends.append(spec["defaultBackend"])
    return backends


def test_the_public_ingress_routes_exactly_the_push_and_fill_sync_paths_to_the_gateway(
    gke: dict[str, dict[str, Any]],
) -> None:
    ingress = gke["Ingress"]
    routes = {
        route["path"]: route for rule in ingress["spec"]["rules"] for route in rule["http"]["paths"]
    }
    assert set(routes) == PUBLIC_PATHS
    for route in routes.values():
        assert route["pathType"] == "Exact"
        service = route["backend"]["service"]
        assert service["name"] == gke["Service"]["metadata"]["name"]
        assert service["port"]["number"] == gke["Service"]["spec"]["ports"][0]["port"]
    assert "defaultBackend" not in ingress["spec"], "unmatched paths must not reach the pods"


@pytest.mark.parametrize("path", PRIVATE_PATHS)
def test_no_public_route_reaches_execute_or_the_admin_endpoints(path: str) -> None:
    assert _ingress_routes(path) == []


@pytest.mark.parametrize("path", sorted(PUBLIC_PATHS))
def test_the_route_matcher_does_find_the_public_paths(path: str) -> None:
    assert len(_ingress_routes(path)) == 1  # the check above is not vacuous


def test_no_service_is_exposed_outside_the_cluster_by_itself() -> None:
    for file in files.yaml_files():
        for doc in files.load_documents(file):
            if doc["kind"] == "Service" and doc["apiVersion"] == "v1":
                assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", file
            assert doc["kind"] not in {"Gateway", "HTTPRoute"}, f"{file}: a second entrance"


def test_the_public_ingress_is_https_only_with_a_managed_certificate_for_its_host(
    gke: dict[str, dict[str, Any]],
) -> None:
    ingress = gke["Ingress"]
    annotations = ingress["metadata"]["annotations"]
    assert annotations["kubernetes.io/ingress.class"] == "gce"
    assert annotations["kubernetes.io/ingress.allow-http"] == "false"
    certificate = gke["ManagedCertificate"]
    assert (certificate["apiVersion"], certificate["kind"]) == (
        "networking.gke.io/v1",
        "ManagedCertificate",
    )
    names = annotations["networking.gke.io/managed-certificates"].split(",")
    assert certificate["metadata"]["name"] in names
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert certificate["spec"]["domains"] == hosts


def test_the_push_audience_is_the_public_ingress_host(gke: dict[str, dict[str, Any]]) -> None:
    (host,) = [rule["host"] for rule in gke["Ingress"]["spec"]["rules"]]
    config = gke["ConfigMap/execution-gateway-config"]["data"]
    assert config["PUBSUB_PUSH_AUDIENCE"] == f"https://{host}"


def test_the_service_uses_container_native_load_balancing_for_the_ingress(
    gke: dict[str, dict[str, Any]],
) -> None:
    annotation = gke["Service"]["metadata"]["annotations"]["cloud.google.com/neg"]
    assert yaml.safe_load(annotation) == {"ingress": True}


def test_the_network_policy_admits_from_outside_the_cluster_only_googles_load_balancers(
    gke: dict[str, dict[str, Any]],
) -> None:
    blocks = [
        peer["ipBlock"]
        for rule in gke["NetworkPolicy"]["spec"]["ingress"]
        for peer in rule["from"]
        if "ipBlock" in peer
    ]
    assert {block["cidr"] for block in blocks} == GOOGLE_LOAD_BALANCER_RANGES
    assert all("except" not in block for block in blocks)


def test_the_service_account_carries_the_workload_identity_annotation(
    gke: dict[str, dict[str, Any]],
) -> None:
    account = gke["ServiceAccount"]
    assert files.pod_spec(gke["Deployment"])["serviceAccountName"] == account["metadata"]["name"]
    annotation = account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
    assert annotation.endswith(".iam.gserviceaccount.com")


# --- Cloud Run -----------------------------------------------------------------------------


def test_the_cloud_run_service_is_a_knative_service_with_an_image_placeholder() -> None:
    service = files.cloud_run_service()
    assert (service["apiVersion"], service["kind"]) == ("serving.knative.dev/v1", "Service")
    spec = files.pod_spec(service)
    assert spec["serviceAccountName"].endswith(".iam.gserviceaccount.com")
    (container,) = spec["containers"]
    assert container["image"] == "IMAGE"
    assert [p["containerPort"] for p in container["ports"]] == [8080]
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    annotations = service["spec"]["template"]["metadata"]["annotations"]
    low = int(annotations["autoscaling.knative.dev/minScale"])
    high = int(annotations["autoscaling.knative.dev/maxScale"])
    assert 0 <= low <= high


def test_cloud_run_sends_no_more_concurrent_requests_than_gunicorn_has_threads() -> None:
    spec = files.pod_spec(files.cloud_run_service())
    env = files.env_entries(files.cloud_run_service())
    threads = int(env["GUNICORN_WORKERS"]["value"]) * int(env["GUNICORN_THREADS"]["value"])
    assert 1 <= spec["containerConcurrency"] <= threads


def test_cloud_run_graceful_timeout_fits_before_sigkill() -> None:
    env = files.env_entries(files.cloud_run_service())
    assert int(env["GUNICORN_GRACEFUL_TIMEOUT"]["value"]) <= CLOUD_RUN_SIGKILL_AFTER_S - 1


def test_the_cloud_run_container_passes_the_core_container_schema() -> None:
    spec = copy.deepcopy(files.pod_spec(files.cloud_run_service()))
    for knative_only in ("containerConcurrency", "timeoutSeconds"):
        spec.pop(knative_only, None)
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "cloud-run"}, "spec": spec}
    kubernetes_validate.validate(pod, KUBERNETES_VERSIONS[0], strict=True)


def _render(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(files.RENDER_SCRIPT), *arguments], capture_output=True, text=True, check=False
    )


def test_rendering_the_cloud_run_yaml_fills_every_placeholder() -> None:
    image = "europe-west1-docker.pkg.dev/acme-prod/gw/execution-gateway:0123abcd"
    result = _render(
        image, "execution-gateway", "acme-prod", "123456789", "europe-west1", "paper-1"
    )
    assert result.returncode == 0, result.stderr
    (rendered,) = [d for d in yaml.safe_load_all(result.stdout) if d]
    assert rendered["metadata"]["name"] == "execution-gateway"
    (container,) = files.pod_spec(rendered)["containers"]
    assert container["image"] == image
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PUBSUB_PUSH_AUDIENCE"] == "https://execution-gateway-123456789.europe-west1.run.app"
    assert env["GOOGLE_CLOUD_PROJECT"] == "acme-prod"
    placeholders = re.compile(
        r"\b(IMAGE|SERVICE|PROJECT_ID|PROJECT_NUMBER|REGION|BROKER_ACCOUNT_ID)\b"
    )
    for where, value in files.walk(rendered):
        assert not (isinstance(value, str) and placeholders.search(value)), where


@pytest.mark.parametrize(
    "image",
    ["registry/p/r/execution-gateway", "registry/p/r/execution-gateway:latest", ""],
)
def test_rendering_refuses_an_image_without_an_immutable_tag(image: str) -> None:
    result = _render(
        image, "execution-gateway", "acme-prod", "123456789", "europe-west1", "paper-1"
    )
    assert result.returncode == 2 and result.stdout == ""


# --- one broker account per deployment ----------------------------------------------------------

LIVE = {"EXEC_DRY_RUN": "false", "AGENT_MODE": "LIVE"}


def _settings_env(entries: dict[str, dict[str, Any]], config: dict[str, str]) -> dict[str, str]:
    """What the container's Settings would read: the ConfigMap, literal values, and a stand-in
    value for every secret reference (the real ones live in Secret Manager or the cluster)."""
    env = dict(config)
    for name, entry in entries.items():
        env[name] = entry["value"] if "value" in entry else f"secret-{name.lower()}"
    return env


def _rendered_cloud_run(service: str, account: str) -> dict[str, Any]:
    image = "europe-west1-docker.pkg.dev/acme-prod/gw/execution-gateway:0123abcd"
    result = _render(image, service, "acme-prod", "123456789", "europe-west1", account)
    assert result.returncode == 0, result.stderr
    (rendered,) = [d for d in yaml.safe_load_all(result.stdout) if d]
    return rendered


def _live_envs(gke: dict[str, dict[str, Any]]) -> dict[str, dict[str, str]]:
    cloud_run = _rendered_cloud_run("execution-gateway", "paper-1")
    return {
        "GKE": _settings_env(
            files.env_entries(gke["Deployment"]), gke["ConfigMap/execution-gateway-config"]["data"]
        ),
        "Cloud Run": _settings_env(files.env_entries(cloud_run), {}),
    }


def test_a_live_deployment_of_either_target_names_its_broker_account(
    gke: dict[str, dict[str, Any]],
) -> None:
    for target, env in _live_envs(gke).items():
        settings = Settings.from_env(env | LIVE)
        assert settings.routes_to_broker, target
        assert settings.broker_account_id, f"{target} names no EXEC_BROKER_ACCOUNT_ID"


def test_switching_a_deployment_live_without_its_account_would_not_start(
    gke: dict[str, dict[str, Any]],
) -> None:
    for env in _live_envs(gke).values():
        env.pop("EXEC_BROKER_ACCOUNT_ID", None)
        with pytest.raises(ConfigurationError, match="EXEC_BROKER_ACCOUNT_ID"):
            Settings.from_env(env | LIVE)


def test_the_gke_config_leaves_the_account_as_a_placeholder_to_fill(
    gke: dict[str, dict[str, Any]],
) -> None:
    data = gke["ConfigMap/execution-gateway-config"]["data"]
    assert data["EXEC_BROKER_ACCOUNT_ID"] == "BROKER_ACCOUNT_ID"


def test_each_cloud_run_service_gets_its_own_account_and_secrets() -> None:
    rendered = _rendered_cloud_run("execution-gateway-acct2", "paper-2")
    entries = files.env_entries(rendered)
    assert entries["EXEC_BROKER_ACCOUNT_ID"]["value"] == "paper-2"
    for name in files.secret_env_names() & set(entries):
        secret = entries[name]["valueFrom"]["secretKeyRef"]["name"]
        assert secret.startswith("execution-gateway-acct2-"), (name, secret)


def test_the_deploy_step_names_the_account_and_has_no_default_for_it(
    cloud_build: dict[str, Any],
) -> None:
    deploy = " ".join(next(s for s in cloud_build["steps"] if s["id"] == "deploy")["args"])
    assert re.search(r"render\.sh(\s+\S+){5}\s+\$\{_BROKER_ACCOUNT_ID\}", deploy), deploy
    # No default: a build that does not name the account fails (substitutionOption MUST_MATCH).
    assert "_BROKER_ACCOUNT_ID" not in cloud_build["substitutions"]
    assert cloud_build["options"]["substitutionOption"] == "MUST_MATCH"


def test_rendering_refuses_a_missing_account() -> None:
    image = "europe-west1-docker.pkg.dev/acme-prod/gw/execution-gateway:0123abcd"
    result = _render(image, "execution-gateway", "acme-prod", "123456789", "europe-west1")
    assert result.returncode == 2 and result.stdout == ""
