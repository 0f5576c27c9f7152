"""`helm lint --strict` and `helm template` of charts/hearth with four value sets, every object
validated against the Kubernetes 1.35 schemas; bad values refused with a clear message."""

from __future__ import annotations

import pytest
import yaml

from tests.chart.helm import (
    CHART,
    NAMESPACE,
    VALUES,
    Obj,
    container,
    env_of,
    find,
    helm,
    names,
    needs_helm,
    render,
    value_args,
)
from tests.chart.kinds import validation_errors

pytestmark = [needs_helm, pytest.mark.timeout(120)]

VALUE_SETS = {
    "default": [],
    "postgres-redis-ingress": [VALUES / "postgres-redis-ingress.yaml"],
    "httproute-monitors": [VALUES / "httproute-monitors.yaml"],
    "custom-images-namespaces": [VALUES / "custom-images-namespaces.yaml"],
}
CORE = [
    "ClusterRole/hearth-admin",
    "ClusterRole/hearth-contributor",
    "ClusterRole/hearth-gateway",
    "ClusterRole/hearth-inference-user",
    "ClusterRole/hearth-operator",
    "ClusterRole/hearth-operator-secrets",
    "ClusterRole/hearth-user",
    "ClusterRoleBinding/hearth-gateway",
    "ClusterRoleBinding/hearth-operator",
    "ConfigMap/hearth-operator-config",
    "Deployment/hearth-gateway",
    "Deployment/hearth-operator",
    "Service/hearth-gateway",
    "ServiceAccount/hearth-gateway",
    "ServiceAccount/hearth-operator",
]


def operator_settings(objects: list[Obj]) -> dict[str, object]:
    config = find(objects, "ConfigMap", "hearth-operator-config")
    loaded = yaml.safe_load(config["data"]["settings.yaml"])
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_lint_strict(value_set: str) -> None:
    done = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE,
                *value_args(VALUE_SETS[value_set]))  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 chart(s) linted, 0 chart(s) failed" in done.stdout


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_object_is_valid_kubernetes_1_35(value_set: str) -> None:
    objects = render(VALUE_SETS[value_set], include_crds=True)
    errors = [line for obj in objects for line in validation_errors(obj)]
    assert errors == []
    crds = [o for o in objects if o["kind"] == "CustomResourceDefinition"]
    assert len(crds) == len(list((CHART / "crds").glob("*.yaml")))
    for obj in objects:
        if obj["kind"] in ("ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"):
            assert "namespace" not in obj["metadata"]
        else:
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["metadata"]
            assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "hearth"


def test_the_validator_catches_a_broken_object() -> None:
    """The schemas really refuse things: the check above cannot pass vacuously."""
    deployment = find(render(), "Deployment", "hearth-gateway")
    deployment["spec"]["replicas"] = "two"
    container(deployment)["imagePullPolicy"] = 3
    assert validation_errors(deployment)
    route = find(render(VALUE_SETS["httproute-monitors"]), "HTTPRoute", "hearth-gateway")
    route["spec"]["rules"][0]["backendRefs"][0]["port"] = "http"
    assert validation_errors(route) == [
        "HTTPRoute/hearth-gateway: spec.rules.0.backendRefs.0.port: 'http' is not of type 'integer'"
    ]


def test_default_values() -> None:
    objects = render()
    assert names(objects) == sorted(
        [*CORE, "NetworkPolicy/hearth-gateway", "NetworkPolicy/hearth-operator",
         "PersistentVolumeClaim/hearth-gateway-ledger"]
    )  # fmt: skip
    gateway = find(objects, "Deployment", "hearth-gateway")
    # SQLite serves one replica, on a ReadWriteOnce volume that outlives an uninstall.
    assert gateway["spec"]["replicas"] == 1
    assert gateway["spec"]["strategy"] == {"type": "Recreate"}
    env = env_of(gateway)
    assert env["HEARTH_GATEWAY_LEDGER_PATH"] == "/var/lib/hearth-gateway/ledger.sqlite3"
    assert env["HEARTH_PLATFORM_ACCOUNT"] == "hearth"
    assert "HEARTH_GATEWAY_LEDGER_URL" not in env and "HEARTH_GATEWAY_REDIS_URL" not in env
    pvc = find(objects, "PersistentVolumeClaim", "hearth-gateway-ledger")
    assert pvc["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert container(gateway)["image"] == "ghcr.io/hearth-dev/hearth-gateway:0.1.0"
    operator = find(objects, "Deployment", "hearth-operator")
    assert container(operator)["image"] == "ghcr.io/hearth-dev/hearth-operator:0.1.0"
    assert operator["spec"]["replicas"] == 1
    for deployment in (gateway, operator):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert container(deployment)["securityContext"]["readOnlyRootFilesystem"] is True
        assert "command" not in container(deployment)  # the image's entrypoint runs
    settings = operator_settings(objects)
    assert settings["watch_namespaces"] == []
    assert settings["platform_account"] == "hearth"


def test_postgres_redis_ingress() -> None:
    objects = render(VALUE_SETS["postgres-redis-ingress"])
    assert names(objects) == sorted(
        [*CORE, "Ingress/hearth-gateway", "NetworkPolicy/hearth-gateway",
         "NetworkPolicy/hearth-operator", "PodDisruptionBudget/hearth-gateway"]
    )  # fmt: skip
    gateway = find(objects, "Deployment", "hearth-gateway")
    assert gateway["spec"]["replicas"] == 2  # a shared ledger: several replicas by default
    assert gateway["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    env = env_of(gateway)
    assert env["HEARTH_GATEWAY_LEDGER_URL"] == {
        "secretKeyRef": {"name": "hearth-ledger", "key": "database-url"}
    }
    assert env["HEARTH_GATEWAY_REDIS_URL"] == {
        "secretKeyRef": {"name": "hearth-redis", "key": "url"}
    }
    assert "HEARTH_GATEWAY_LEDGER_PATH" not in env
    pdb = find(objects, "PodDisruptionBudget", "hearth-gateway")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == gateway["spec"]["selector"]["matchLabels"]
    ingress = find(objects, "Ingress", "hearth-gateway")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {"hosts": ["llm.example.com"], "secretName": "llm-example-com-tls"}
    ]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "hearth-gateway", "port": {"name": "http"}}


def test_httproute_monitors_no_network_policy() -> None:
    objects = render(VALUE_SETS["httproute-monitors"])
    assert names(objects) == sorted(
        [*CORE, "HTTPRoute/hearth-gateway", "PersistentVolumeClaim/hearth-gateway-ledger",
         "PodMonitor/hearth-operator", "PodMonitor/hearth-server", "ServiceMonitor/hearth-gateway"]
    )  # fmt: skip
    route = find(objects, "HTTPRoute", "hearth-gateway")
    assert route["spec"]["parentRefs"] == [
        {"name": "public", "namespace": "gateways", "sectionName": "https"}
    ]
    assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "hearth-gateway", "port": 80}]
    monitor = find(objects, "ServiceMonitor", "hearth-gateway")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "15s"}]
    servers = find(objects, "PodMonitor", "hearth-server")
    assert servers["spec"]["namespaceSelector"] == {"any": True}
    assert servers["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "hearth-server"}
    env = env_of(find(objects, "Deployment", "hearth-gateway"))
    assert env["HEARTH_GATEWAY_REDIS_URL"] == "redis://redis.cache.svc:6379/0"


def test_custom_images_and_namespaces() -> None:
    objects = render(VALUE_SETS["custom-images-namespaces"])
    assert "PodDisruptionBudget/hearth-gateway" not in names(objects)
    operator = find(objects, "Deployment", "hearth-operator")
    assert container(operator)["image"] == "registry.example.com:5000/ml/hearth-operator:1.2.3"
    assert container(operator)["imagePullPolicy"] == "Always"
    assert operator["spec"]["template"]["spec"]["imagePullSecrets"] == [
        {"name": "registry-credentials"}
    ]
    assert "--log-level=DEBUG" in container(operator)["args"]
    settings = operator_settings(objects)
    assert settings["server_image"] == "registry.example.com:5000/ml/hearth-server:1.2.3-cuda"
    assert settings["trainer_image"] == "registry.example.com:5000/ml/hearth-trainer:1.2.4"
    assert settings["watch_namespaces"] == ["team-a", "team-b"]
    assert settings["platform_account"] == "shared"
    assert settings["model_cache_claim"] == "model-cache"
    assert settings["artifact_access_modes"] == ["ReadWriteMany"]
    gateway = find(objects, "Deployment", "hearth-gateway")
    assert env_of(gateway)["HEARTH_PLATFORM_ACCOUNT"] == "shared"


def test_a_changed_setting_restarts_the_operator() -> None:
    def checksum(sets: list[str]) -> str:
        operator = find(render(sets=sets), "Deployment", "hearth-operator")
        value: str = operator["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
        return value

    assert checksum([]) == checksum([])
    assert checksum([]) != checksum(["platformAccount=other"])


BAD_VALUES = [
    (["platformAccount=Bad_Name"], "at '/platformAccount': 'Bad_Name' does not match pattern"),
    (["platformAccount=kube-system"], "platformAccount: 'kube-system' is a system namespace"),
    (["platformAccount=hearth-system"], "platformAccount: 'hearth-system' is a system namespace"),
    (["gateway.replicas=3"], "gateway.replicas: 3 replicas need a shared ledger"),
    (["gateway.replicas=0"], "at '/gateway/replicas': minimum: got 0, want 1"),
    (
        ["gateway.ledger.type=mysql"],
        "at '/gateway/ledger/type': value must be one of 'sqlite', 'postgresql'",
    ),
    (["gateway.ledger.type=postgresql"], "gateway.ledger.postgresql.secretName: required"),
    (["gateway.ledgr.type=sqlite"], "at '/gateway': additional properties 'ledgr' not allowed"),
    (
        ["gateway.redis.url=http://redis:6379"],
        "at '/gateway/redis/url': 'http://redis:6379' does not match pattern",
    ),
    (
        ["gateway.redis.url=redis://r:6379", "gateway.redis.secretName=r"],
        "gateway.redis: set url or secretName, not both",
    ),
    (["gateway.httpRoute.enabled=true"], "gateway.httpRoute.parentRefs: required"),
    (["gateway.ingress.enabled=true"], "gateway.ingress.host: required"),
    (
        ["images.server.flavor=rocm"],
        "at '/images/server/flavor': value must be one of 'cpu', 'cuda'",
    ),
    (["images.tag=latest!"], "at '/images/tag': 'latest!' does not match pattern"),
    (["watchNamespaces={Team_A}"], "at '/watchNamespaces/0': 'Team_A' does not match pattern"),
    (["operator.replicas=2"], "at '/operator/replicas': maximum: got 2, want 1"),
    (
        ["accelerators.h100.resource=nvidia.com/gpu"],
        "at '/accelerators': additional properties 'h100' not allowed",
    ),
    (["server.env.bad-name=x"], "at '/server/env': additional properties 'bad-name' not allowed"),
    (
        ["accelerators.NVIDIA_L4_24GB.nodeSelector.zone=a"],
        "at '/accelerators/NVIDIA_L4_24GB': missing property 'resource'",
    ),
    (["server.cpuRequests.cpu=lots"], "at '/server/cpuRequests/cpu'"),
    (
        ["monitoring.serviceMonitor.interval=soon"],
        "at '/monitoring/serviceMonitor/interval': 'soon' does not match pattern",
    ),
]


@pytest.mark.parametrize(("sets", "message"), BAD_VALUES, ids=[s[0] for s, _ in BAD_VALUES])
def test_bad_values_are_refused_with_a_clear_message(sets: list[str], message: str) -> None:
    template = helm("template", "hearth", str(CHART), "--namespace", NAMESPACE,
                    *value_args(sets=sets))  # fmt: skip
    assert template.returncode != 0, f"helm template accepted {sets}"
    assert message in template.stderr, template.stderr
    lint = helm("lint", "--strict", str(CHART), "--namespace", NAMESPACE, *value_args(sets=sets))
    assert message in lint.stdout + lint.stderr, lint.stdout + lint.stderr
    if message.startswith("at '/"):  # values.schema.json: lint fails too
        assert lint.returncode != 0, f"helm lint --strict accepted {sets}"
    # The rules spanning several values are `fail` calls in the templates (the message says
    # why); helm lint renders with `fail` reported as INFO, so there it is printed only.


def test_the_values_file_and_the_schema_agree() -> None:
    """Every default is accepted, and the schema names every key of values.yaml."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())

    def walk(value: object, node: dict[str, object], path: str) -> None:
        if isinstance(value, dict) and node.get("properties") is not None:
            properties = node["properties"]
            assert isinstance(properties, dict)
            for key, item in value.items():
                assert key in properties, f"{path}{key} has no schema"
                walk(item, properties[key], f"{path}{key}.")

    walk(values, schema, "")
