"""Account, User and Model planning, the role matrix, settings and conditions."""

from datetime import UTC, datetime

import pytest

from hearth.api import Role
from hearth_operator.conditions import Cond, set_conditions
from hearth_operator.planning.account import account_status, account_usage, plan_account
from hearth_operator.planning.model import check_model, deployed_model_refs, model_status
from hearth_operator.planning.roles import cluster_roles, role_rules
from hearth_operator.planning.user import binding_needs_replacement, plan_user, user_status
from hearth_operator.settings import Settings, settings_from_mapping
from tests.operator.factories import addon_model, base_model, pod, stored, with_status

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def account(**spec):
    return stored("Account", "acme", spec, namespace=None)


def by_kind(plan):
    return {child["kind"]: child for child in plan.children}


def test_account_owns_namespace_quota_policy_and_artifact_volume():
    plan = plan_account(
        account(
            quota={
                "gpus": 8,
                "gpusPerAcceleratorType": {"NVIDIA_H100_80GB": 4, "AMD_MI300X_192GB": 2},
                "deployments": 3,
            },
            artifactStorage={"size": "100Gi", "storageClassName": "fast"},
        ),
        Settings(),
    )
    assert plan.namespace["metadata"]["name"] == "acme"
    assert plan.namespace["metadata"]["ownerReferences"][0]["kind"] == "Account"
    children = by_kind(plan)
    assert children["ResourceQuota"]["spec"]["hard"] == {
        "requests.amd.com/gpu": "2",
        "requests.nvidia.com/gpu": "4",
        "count/deployments.hearth.dev": "3",
    }
    policy = children["NetworkPolicy"]["spec"]
    assert policy["podSelector"] == {"matchLabels": {"app.kubernetes.io/name": "hearth-server"}}
    source = policy["ingress"][0]["from"][0]
    assert source["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "hearth-system"
    }
    claim = children["PersistentVolumeClaim"]
    assert claim["metadata"]["name"] == "artifacts"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert all(c["metadata"]["namespace"] == "acme" for c in plan.children)


def test_total_gpu_quota_caps_every_vendor_and_no_quota_means_no_resource_quota():
    hard = by_kind(plan_account(account(quota={"gpus": 2}), Settings()))["ResourceQuota"]
    assert hard["spec"]["hard"] == {"requests.amd.com/gpu": "2", "requests.nvidia.com/gpu": "2"}
    assert "ResourceQuota" not in by_kind(plan_account(account(), Settings()))


def test_account_usage_and_status():
    pods = [
        pod("a", gpus=2, accelerator="NVIDIA_H100_80GB"),
        pod("b", gpus=1, accelerator="NVIDIA_L4_24GB"),
        pod("c", gpus=4, accelerator="NVIDIA_H100_80GB", phase="Failed"),
    ]
    deployments = [stored("Deployment", "d", {"baseModel": "m"})]
    usage = account_usage(deployments, [addon_model(), base_model()], pods)
    assert (usage.gpus, usage.deployments, usage.lora_addons) == (3, 1, 1)
    assert usage.gpus_per_accelerator_type == {"NVIDIA_H100_80GB": 2, "NVIDIA_L4_24GB": 1}
    namespace = {"metadata": {"name": "acme"}}
    status = account_status(account(quota={"gpus": 2}), namespace=namespace, usage=usage, now=NOW)
    assert status["state"] == "READY"
    assert status["usage"]["gpus"] == 3
    over = next(c for c in status["conditions"] if c["type"] == "QuotaExceeded")
    assert over["status"] == "True" and over["message"] == "3 GPUs in use, quota 2"
    pending = account_status(account(), namespace=None, usage=usage, now=NOW)
    assert pending["state"] == "CREATING"


def test_user_with_email_is_bound_as_a_user_subject():
    user = stored("User", "alice", {"role": "admin", "email": "alice@acme.example"})
    plan = plan_user(user)
    assert plan.service_account is None
    binding = plan.role_binding
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "hearth-admin",
    }
    assert binding["subjects"] == [
        {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "alice@acme.example"}
    ]
    status = user_status(user, plan, None, NOW)
    assert (
        status["state"] == "READY" and status["message"] == "User alice@acme.example has role admin"
    )


def test_service_account_user_gets_a_service_account():
    user = stored("User", "ci-bot", {"role": "inference-user", "serviceAccount": True})
    plan = plan_user(user)
    assert plan.service_account is not None
    assert plan.service_account["metadata"]["name"] == "ci-bot"
    assert plan.role_binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "ci-bot", "namespace": "acme"}
    ]
    assert plan.role_binding["roleRef"]["name"] == "hearth-inference-user"


def test_role_change_replaces_the_binding():
    admin = plan_user(stored("User", "u", {"role": "admin", "email": "u@x.io"})).role_binding
    user = plan_user(stored("User", "u", {"role": "user", "email": "u@x.io"})).role_binding
    assert binding_needs_replacement(admin, user)
    assert not binding_needs_replacement(admin, admin)


def verbs(role, resource):
    return {v for rule in role_rules(role) if resource in rule["resources"] for v in rule["verbs"]}


def test_role_matrix():
    assert {r["metadata"]["name"] for r in cluster_roles()} == {
        "hearth-admin",
        "hearth-user",
        "hearth-contributor",
        "hearth-inference-user",
    }
    assert verbs(Role.INFERENCE_USER, "deployments") == {"get", "list", "watch"}
    assert verbs(Role.INFERENCE_USER, "users") == {"get", "list", "watch"}
    assert verbs(Role.CONTRIBUTOR, "models") == {"get", "list", "watch", "create"}
    assert verbs(Role.USER, "deployments") >= {"create", "update", "patch", "delete"}
    assert verbs(Role.USER, "users") == {"get", "list", "watch"}
    assert verbs(Role.ADMIN, "users") >= {"create", "delete"}
    assert "update" in verbs(Role.USER, "deployments/scale")
    assert not verbs(Role.CONTRIBUTOR, "deployments/scale")


@pytest.mark.parametrize(
    ("model", "base", "ok", "reason"),
    [
        (base_model(ready=False), None, True, "Validated"),
        (addon_model(), base_model(), True, "Validated"),
        (addon_model(), None, False, "BaseModelNotFound"),
        (addon_model(), base_model(ready=False), False, "BaseModelNotReady"),
        (addon_model(), base_model(supportsLora=False), False, "BaseModelNoLora"),
        (
            addon_model(),
            with_status(addon_model("smollm2"), state="READY"),
            False,
            "BaseModelNotBase",
        ),
        (
            addon_model(base="accounts/other/models/smollm2"),
            base_model(namespace="other"),
            False,
            "BaseModelNotAccessible",
        ),
        (
            addon_model(base="accounts/hearth/models/smollm2"),
            base_model(namespace="hearth"),
            True,
            "Validated",
        ),
    ],
)
def test_model_checks(model, base, ok, reason):
    verdict = check_model(model, base, platform_account="hearth")
    assert (verdict.ok, verdict.reason) == (ok, reason), verdict.message


def test_model_status_mirrors_deployed_model_refs():
    model = base_model()
    dm = stored("DeployedModel", "x", {"model": "smollm2", "deployment": "d1"})
    dm = with_status(dm, state="DEPLOYED", default=True)
    unrelated = stored("DeployedModel", "y", {"model": "other", "deployment": "d1"})
    refs = deployed_model_refs(model, [dm, unrelated])
    assert refs == [
        {
            "name": "accounts/acme/deployedModels/x",
            "deployment": "accounts/acme/deployments/d1",
            "state": "DEPLOYED",
            "default": True,
            "public": False,
        }
    ]
    verdict = check_model(model, None, platform_account="hearth")
    status = model_status(model, verdict, refs=refs, serverless=False, now=NOW)
    assert status["state"] == "READY" and status["deployedModelRefs"] == refs
    failed = model_status(
        addon_model(),
        check_model(addon_model(), None, platform_account="hearth"),
        refs=[],
        serverless=False,
        now=NOW,
    )
    assert failed["state"] == "FAILED"
    assert failed["message"] == "base model accounts/acme/models/smollm2 does not exist"


def test_conditions_keep_transition_time_until_status_flips():
    t0, t1 = NOW, datetime(2026, 11, 25, 13, 0, tzinfo=UTC)
    first = set_conditions(None, [Cond("Ready", False, "Starting", "a")], generation=1, now=t0)
    same = set_conditions(first, [Cond("Ready", False, "Still", "b")], generation=2, now=t1)
    assert same[0]["lastTransitionTime"] == "2026-11-25T12:00:00Z"
    assert (same[0]["reason"], same[0]["observedGeneration"]) == ("Still", 2)
    flipped = set_conditions(same, [Cond("Ready", True, "Up")], generation=2, now=t1)
    assert flipped[0]["lastTransitionTime"] == "2026-11-25T13:00:00Z"
    both = set_conditions(flipped, [Cond("Degraded", None, "Unknown")], generation=2, now=t1)
    assert [c["type"] for c in both] == ["Ready", "Degraded"]
    assert both[1]["status"] == "Unknown"


def test_settings_from_mapping():
    settings = settings_from_mapping(
        {
            "namespace": "llm-ops",
            "watch_namespaces": ["a", "b"],
            "accelerators": {
                "NVIDIA_L4_24GB": {"resource": "nvidia.com/gpu", "nodeSelector": {"pool": "l4"}}
            },
        }
    )
    assert settings.watch_namespaces == ("a", "b")
    assert settings.accelerators["NVIDIA_L4_24GB"].node_selector == {"pool": "l4"}
    assert settings.accelerators["NVIDIA_H100_80GB"].resource == "nvidia.com/gpu"
    with pytest.raises(ValueError, match="unknown operator settings: bogus"):
        settings_from_mapping({"bogus": 1})


def test_operator_manifests_are_fresh_and_valid():
    from pathlib import Path

    import kubernetes_validate
    import yaml

    from hearth_operator import manifests

    directory = Path(__file__).resolve().parents[2] / "operator" / "manifests"
    assert manifests.main(["--check", str(directory)]) == 0
    for path in directory.glob("*.yaml"):
        for document in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(document, "1.35.0", strict=True)


def test_operator_may_bind_exactly_the_account_roles_and_its_secret_access():
    from hearth_operator.manifests import operator_rules

    bind = [r for r in operator_rules() if "bind" in r["verbs"]]
    assert bind == [
        {
            "apiGroups": ["rbac.authorization.k8s.io"],
            "resources": ["clusterroles"],
            "verbs": ["bind"],
            "resourceNames": [
                "hearth-admin",
                "hearth-user",
                "hearth-contributor",
                "hearth-inference-user",
                "hearth-operator-secrets",
            ],
        }
    ]
    # No wildcard anywhere: least privilege.
    assert all("*" not in r["verbs"] and "*" not in r["resources"] for r in operator_rules())


def test_secrets_are_granted_only_in_account_namespaces():
    from hearth_operator.manifests import operator_rbac, operator_rules

    # Cluster-wide, the operator cannot touch a Secret.
    assert not [r for r in operator_rules() if "secrets" in r["resources"]]
    roles = {o["metadata"]["name"]: o for o in operator_rbac() if o["kind"] == "ClusterRole"}
    assert roles["hearth-operator-secrets"]["rules"] == [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]}
    ]
    bindings = [o for o in operator_rbac() if o["kind"] == "ClusterRoleBinding"]
    assert [b["roleRef"]["name"] for b in bindings] == ["hearth-operator"]
    # Each account namespace binds that role to the operator's ServiceAccount.
    settings = Settings(namespace="ops", service_account="op")
    binding = by_kind(plan_account(account(), settings))["RoleBinding"]
    assert binding["metadata"] == {
        **binding["metadata"],
        "name": "hearth-operator-secrets",
        "namespace": "acme",
    }
    assert binding["metadata"]["ownerReferences"][0]["kind"] == "Account"
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "hearth-operator-secrets",
    }
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "op", "namespace": "ops"}]
    # The manifests' ServiceAccount is the one the settings name by default.
    accounts = [o for o in operator_rbac() if o["kind"] == "ServiceAccount"]
    assert accounts[0]["metadata"]["name"] == Settings().service_account
