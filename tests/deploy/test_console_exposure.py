"""The console (/console/) is never on a public route: a public Ingress or Gateway route may
carry only the two paths Pub/Sub and Cloud Scheduler call, never a catch-all, and Cloud Run's
own IAP switch (which would also stand in front of Pub/Sub's pushes) stays off. How to reach the
console instead is in docs/CONSOLE.md and docs/DEPLOY.md#the-console."""

from __future__ import annotations

from typing import Any

from tests.deploy import files

PUBLIC_PATHS = frozenset({"/pubsub/push", "/sync-fills"})


def documents(kind: str) -> list[dict[str, Any]]:
    return [
        doc for path in files.yaml_files() for doc in files.load_documents(path)
        if doc.get("kind") == kind
    ]  # fmt: skip


def test_an_ingress_routes_only_the_push_paths_and_never_a_catch_all() -> None:
    for ingress in documents("Ingress"):
        spec = ingress.get("spec") or {}
        assert "defaultBackend" not in spec, "a default backend would route /console/ too"
        for rule in spec.get("rules") or []:
            for path in (rule.get("http") or {}).get("paths") or []:
                assert path.get("path") in PUBLIC_PATHS, path
                assert path.get("pathType") == "Exact", path


def test_a_gateway_route_matches_only_the_push_paths_exactly() -> None:
    for route in documents("HTTPRoute"):
        for rule in (route.get("spec") or {}).get("rules") or []:
            matches = rule.get("matches") or []
            assert matches, "a rule without matches routes every path"
            for match in matches:
                path = match.get("path") or {}
                assert path.get("type") == "Exact" and path.get("value") in PUBLIC_PATHS, match


def test_cloud_runs_own_iap_switch_stays_off() -> None:
    service = files.load_documents(files.CLOUD_RUN_SERVICE)[0]
    annotations = service.get("metadata", {}).get("annotations") or {}
    assert str(annotations.get("run.googleapis.com/iap-enabled", "false")).lower() == "false"
