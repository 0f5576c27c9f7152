"""The chart renders the generated sources, not hand copies of them: CRDs, the operator's RBAC,
the account roles, and settings the operator's own loader accepts."""

from __future__ import annotations

import filecmp
from pathlib import Path

import pytest
import yaml

from hearth_operator.manifests import operator_rules, secrets_rules
from hearth_operator.planning.roles import cluster_roles
from hearth_operator.settings import (
    DEFAULT_ACCELERATORS,
    LEDGER_URL_ENV,
    Settings,
    load_settings,
    settings_from_mapping,
)
from tests.chart.helm import CHART, NAMESPACE, VALUES, Obj, find, needs_helm, render
from tests.harness.tools import ROOT

COPIES = [(ROOT / "crds", CHART / "crds"), (ROOT / "operator" / "manifests", CHART / "files")]


@pytest.mark.parametrize(("source", "copy"), COPIES, ids=["crds", "operator-manifests"])
def test_chart_copies_equal_the_generated_files(source: Path, copy: Path) -> None:
    """`make generate` copies them and `make verify` diffs them; this says which file differs."""
    names = sorted(p.name for p in source.glob("*.yaml"))
    assert names == sorted(p.name for p in copy.glob("*.yaml"))
    _, mismatch, errors = filecmp.cmpfiles(source, copy, names, shallow=False)
    assert (mismatch, errors) == ([], []), f"stale copies in {copy}: run `make generate`"


def _settings(objects: list[Obj]) -> Settings:
    config = find(objects, "ConfigMap", "hearth-operator-config")
    return settings_from_mapping(yaml.safe_load(config["data"]["settings.yaml"]))


@needs_helm
def test_operator_rbac_is_the_generated_one() -> None:
    objects = render()
    assert find(objects, "ClusterRole", "hearth-operator")["rules"] == operator_rules()
    assert find(objects, "ClusterRole", "hearth-operator-secrets")["rules"] == secrets_rules()
    for role in cluster_roles():
        rendered = find(objects, "ClusterRole", role["metadata"]["name"])
        assert rendered["rules"] == role["rules"]
        assert rendered["metadata"]["labels"].items() >= role["metadata"]["labels"].items() - {
            ("app.kubernetes.io/managed-by", "hearth-operator")
        }
    binding = find(objects, "ClusterRoleBinding", "hearth-operator")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "hearth-operator", "namespace": NAMESPACE}
    ]
    operator = find(objects, "Deployment", "hearth-operator")
    pod = operator["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == Settings().service_account
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert env["HEARTH_OPERATOR_NAMESPACE"]["valueFrom"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }
    assert env["HEARTH_OPERATOR_SERVICE_ACCOUNT"]["value"] == Settings().service_account
    assert "Namespace" not in {o["kind"] for o in objects}  # helm --create-namespace makes it
    assert LEDGER_URL_ENV not in env  # the SQLite ledger is the gateway pod's own file


@needs_helm
def test_the_operator_meters_into_the_gateways_postgresql_ledger() -> None:
    objects = render([VALUES / "postgres-redis-ingress.yaml"])
    operator = find(objects, "Deployment", "hearth-operator")
    gateway = find(objects, "Deployment", "hearth-gateway")
    operator_env = {
        e["name"]: e for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    gateway_env = {
        e["name"]: e for e in gateway["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert (
        operator_env[LEDGER_URL_ENV]["valueFrom"]
        == gateway_env["HEARTH_GATEWAY_LEDGER_URL"]["valueFrom"]
    )
    assert load_settings({LEDGER_URL_ENV: "postgresql://db/x"}).ledger_url == "postgresql://db/x"


@needs_helm
def test_default_settings_are_the_operators_defaults() -> None:
    """With default values the operator runs exactly as with no settings at all."""
    assert _settings(render()) == Settings()


@needs_helm
def test_custom_settings_reach_the_operator() -> None:
    settings = _settings(render([VALUES / "custom-images-namespaces.yaml"]))
    assert settings.watch_namespaces == ("team-a", "team-b")
    assert settings.server_image == "registry.example.com:5000/ml/hearth-server:1.2.3-cuda"
    assert settings.server_command == Settings().server_command
    assert settings.model_cache_claim == "model-cache"
    assert settings.server_env == {"HF_ENDPOINT": "https://hf-mirror.example.com"}
    h100 = settings.accelerators["NVIDIA_H100_80GB"]
    assert h100.node_selector == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    gaudi = settings.accelerators["INTEL_GAUDI3_128GB"]
    assert (gaudi.resource, gaudi.node_selector) == (
        "habana.ai/gaudi",
        {"habana.ai/product": "gaudi3"},
    )
    assert settings.accelerators["NVIDIA_L4_24GB"] == DEFAULT_ACCELERATORS["NVIDIA_L4_24GB"]


@needs_helm
@pytest.mark.parametrize("values", [[], [VALUES / "postgres-redis-ingress.yaml"]])
def test_gateway_arguments_env_and_probes_are_the_gateways(values: list[Path]) -> None:
    from starlette.routing import Route

    from hearth_gateway import cli
    from hearth_gateway.app import create_app
    from hearth_gateway.config import GatewayConfig
    from hearth_gateway.ledger import PATH_ENV

    gateway = find(render(values), "Deployment", "hearth-gateway")
    spec = gateway["spec"]["template"]["spec"]["containers"][0]
    args = cli.parser().parse_args(spec["args"])  # exits (fails the test) on an unknown flag
    assert args.port == spec["ports"][0]["containerPort"] == 8080
    known = {cli.LEDGER_URL_ENV, cli.REDIS_URL_ENV, cli.PLATFORM_ACCOUNT_ENV, PATH_ENV}
    assert {e["name"] for e in spec["env"]} <= known
    paths = {r.path for r in create_app(GatewayConfig()).routes if isinstance(r, Route)}
    for probe in ("readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"]["path"] in paths
