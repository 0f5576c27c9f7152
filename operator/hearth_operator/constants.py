"""Label, annotation and finalizer keys the operator writes, in one place."""

from __future__ import annotations

import hashlib

DOMAIN = "hearth.dev"
MANAGED_BY = "hearth-operator"

LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_ACCOUNT = f"{DOMAIN}/account"
LABEL_DEPLOYMENT = f"{DOMAIN}/deployment"
LABEL_SPEC_HASH = f"{DOMAIN}/spec-hash"
LABEL_USER = f"{DOMAIN}/user"
#: On DeployedModels: the model they load (account and ID) and whether it is an addon.
LABEL_MODEL_ACCOUNT = f"{DOMAIN}/model-account"
LABEL_MODEL = f"{DOMAIN}/model"
LABEL_ADDON = f"{DOMAIN}/addon"

SERVER_APP = "hearth-server"

#: Finalizer on DeployedModels: adapters loaded into running servers need unloading, which
#: garbage collection cannot do.
FINALIZER_ADAPTERS = f"{DOMAIN}/unload-adapters"

#: Name of the per-account ResourceQuota, NetworkPolicy and artifact PVC.
ACCOUNT_QUOTA_NAME = "hearth-quota"
ACCOUNT_NETWORK_POLICY_NAME = "hearth-model-servers"
ACCOUNT_ARTIFACT_CLAIM = "artifacts"

CLUSTER_ROLE_PREFIX = "hearth-"


def adapter_annotation(deployed_model: str) -> str:
    """Pod annotation recording that a DeployedModel's adapter was loaded into the pod."""
    return f"adapter.{DOMAIN}/{deployed_model}"


def short_hash(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:length]
