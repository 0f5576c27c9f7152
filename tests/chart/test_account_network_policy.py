"""The NetworkPolicy the operator puts in each account namespace admits the gateway the chart
installs (and the operator), and nothing else: checked on the objects `helm template`
renders and the operator's own Account plan, for every value set of the chart tests."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from hearth_operator.planning.account import plan_account
from hearth_operator.settings import settings_from_mapping
from tests.chart.helm import NAMESPACE, Obj, find, needs_helm, render
from tests.chart.test_render import VALUE_SETS

pytestmark = [needs_helm, pytest.mark.timeout(120)]

ACCOUNT: Obj = {
    "apiVersion": "hearth.dev/v1alpha1",
    "kind": "Account",
    "metadata": {"name": "acme", "uid": "u-1"},
    "spec": {},
}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether a label selector (matchLabels only, as the operator writes) selects `labels`."""
    assert set(selector) <= {"matchLabels"}, selector
    wanted: dict[str, str] = selector.get("matchLabels") or {}
    return all(labels.get(key) == value for key, value in wanted.items())


def admitted(policy: Obj, namespace: str, pod_labels: dict[str, str]) -> bool:
    """Whether a pod with `pod_labels` in `namespace` may connect to the selected pods."""
    namespace_labels = {"kubernetes.io/metadata.name": namespace}
    for rule in policy["spec"].get("ingress") or []:
        for peer in rule.get("from") or []:
            in_namespace = (
                selects(peer["namespaceSelector"], namespace_labels)
                if "namespaceSelector" in peer
                else namespace == policy["metadata"]["namespace"]
            )
            if in_namespace and selects(peer.get("podSelector") or {}, pod_labels):
                return True
    return False


def pod_labels(deployment: Obj) -> dict[str, str]:
    labels: dict[str, str] = deployment["spec"]["template"]["metadata"]["labels"]
    return labels


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_account_policy_admits_the_charts_gateway_and_operator(value_set: str) -> None:
    objects = render(VALUE_SETS[value_set])
    config = find(objects, "ConfigMap", "hearth-operator-config")
    settings = settings_from_mapping(yaml.safe_load(config["data"]["settings.yaml"]))
    assert settings.namespace == NAMESPACE  # the operator knows where the gateway runs
    plan = plan_account(ACCOUNT, settings)
    [policy] = [c for c in plan.children if c["kind"] == "NetworkPolicy"]
    server = {"app.kubernetes.io/name": "hearth-server"}
    assert selects(policy["spec"]["podSelector"], server)

    gateway = pod_labels(find(objects, "Deployment", "hearth-gateway"))
    operator = pod_labels(find(objects, "Deployment", "hearth-operator"))
    assert admitted(policy, NAMESPACE, gateway)
    assert admitted(policy, NAMESPACE, operator)
    # Not another account's pods, nor an unlabelled pod next to the gateway.
    assert not admitted(policy, "globex", gateway)
    assert not admitted(policy, "acme", {"app": "anything"})
    assert not admitted(policy, NAMESPACE, {"app": "curl"})
