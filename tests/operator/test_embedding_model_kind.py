"""Model kind EMBEDDING_MODEL (Fireworks' Model.kind): accepted by the CRD, validated
like a base model, deployed with exactly the server a HF_BASE_MODEL gets."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hearth.validation import validate
from hearth_operator.planning.deployed_model import DeployedModelInputs, check
from hearth_operator.planning.deployment import DeploymentInputs, plan_deployment
from hearth_operator.planning.model import check_model
from hearth_operator.settings import Settings
from tests.operator.factories import addon_model, base_model, stored

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def embedding_model(**spec: Any) -> dict[str, Any]:
    return base_model(kind="EMBEDDING_MODEL", **spec)


def manifest(spec: dict) -> dict:
    meta = {"name": "emb", "namespace": "acme"}
    return {"apiVersion": "hearth.dev/v1alpha1", "kind": "Model", "metadata": meta, "spec": spec}


def test_the_crd_accepts_the_kind_and_refuses_peft_details_on_it() -> None:
    spec = {"kind": "EMBEDDING_MODEL", "source": {"uri": "builtin://smollm2-135m-instruct"}}
    assert validate(manifest(spec)).ok
    assert validate(manifest({**spec, "baseModelDetails": {"worldSize": 1}})).ok
    refused = validate(manifest({**spec, "peftDetails": {"baseModel": "b", "r": 8}}))
    assert not refused.ok
    assert any("only for HF_PEFT_ADDON" in e.message for e in refused.errors)


def test_an_embedding_model_validates_like_a_base_but_hosts_no_addons() -> None:
    assert check_model(embedding_model(ready=False), None, platform_account="hearth").ok
    verdict = check_model(addon_model(), embedding_model(), platform_account="hearth")
    assert (verdict.ok, verdict.reason) == (False, "BaseModelNotBase")
    assert "EMBEDDING_MODEL" in verdict.message


def plan(base: dict) -> object:
    dep = stored("Deployment", "d1", {"baseModel": "smollm2", "acceleratorType": "CPU"})
    dep["spec"]["minReplicaCount"] = 1
    return plan_deployment(
        DeploymentInputs(
            deployment=dep,
            base_model=base,
            pods=[],
            settings=Settings(),
            now=NOW,
            fresh_api_key="token",
        )
    )


def test_deploying_an_embedding_model_runs_the_same_server() -> None:
    as_base, as_embedding = plan(base_model()), plan(embedding_model())
    assert as_embedding.status["state"] == as_base.status["state"]  # type: ignore[attr-defined]
    pods = [p.create for p in (as_base, as_embedding)]  # type: ignore[attr-defined]
    assert pods[0] and [p["spec"] for p in pods[0]] == [p["spec"] for p in pods[1]]


def test_the_base_deployed_model_of_an_embedding_model_is_not_a_kind_mismatch() -> None:
    dep = stored("Deployment", "d1", {"baseModel": "smollm2", "acceleratorType": "CPU"})
    dm = plan(embedding_model()).base_deployed_model  # type: ignore[attr-defined]
    verdict = check(
        DeployedModelInputs(deployed_model=dm, model=embedding_model(), deployment=dep, pods=[])
    )
    assert verdict.reason != "ModelKindMismatch", verdict.message
    dm["spec"]["modelKind"] = "HF_PEFT_ADDON"
    verdict = check(
        DeployedModelInputs(deployed_model=dm, model=embedding_model(), deployment=dep, pods=[])
    )
    assert verdict.reason == "ModelKindMismatch"
