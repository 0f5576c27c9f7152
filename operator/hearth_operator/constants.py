"""Label, annotation, finalizer and Secret keys the operator writes, in one place.

Every ``hearth.dev/*`` key lives here, so a rename is one edit and a grep finds them all.
"""

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
#: On an ApiKey's Secret, Role and RoleBinding: the ApiKey (its keyId).
LABEL_API_KEY = f"{DOMAIN}/api-key"
#: On the account ClusterRoles: which Fireworks role they grant.
LABEL_ROLE = f"{DOMAIN}/role"
#: On DeployedModels: the model they load (account and ID) and whether it is an addon.
LABEL_MODEL_ACCOUNT = f"{DOMAIN}/model-account"
LABEL_MODEL = f"{DOMAIN}/model"
LABEL_ADDON = f"{DOMAIN}/addon"
#: On validation Jobs and their pods: the Dataset they validate.
LABEL_DATASET = f"{DOMAIN}/dataset"
#: On training Jobs, their pods and the output Model: the FineTuningJob.
LABEL_FINE_TUNING_JOB = f"{DOMAIN}/fine-tuning-job"

#: On server and trainer pods: the acceleratorType they were scheduled for (quota usage).
ANNOTATION_ACCELERATOR_TYPE = f"{DOMAIN}/accelerator-type"

#: On model-server pods of Deployments with servingEngine VLLM: ``VLLM``. Pods without it
#: run hearth-server (so adding the engine choice changed no existing pod's spec hash).
ANNOTATION_SERVING_ENGINE = f"{DOMAIN}/serving-engine"

#: ``app.kubernetes.io/name`` of every model-server replica, whatever its engine (the
#: Service, the gateway's pod watch and the account's NetworkPolicy select it).
SERVER_APP = "hearth-server"

#: On an ApiKey: ``gateway`` means the REST control plane generated the key, returned it
#: once and records its hash in status itself; the operator then issues nothing and
#: creates no Secret (no plaintext is kept anywhere).
ANNOTATION_KEY_ISSUER = f"{DOMAIN}/key-issuer"
KEY_ISSUER_GATEWAY = "gateway"

#: On a Deployment: ``disabled`` keeps the built-in autoscaler off it, so that an HPA or a
#: KEDA ScaledObject alone drives its scale subresource.
ANNOTATION_AUTOSCALER = f"{DOMAIN}/autoscaler"
AUTOSCALER_DISABLED = "disabled"

#: The only finalizer Hearth uses, and only on DeployedModels whose adapter is loaded in a
#: running server: unloading it is cleanup garbage collection cannot do.
FINALIZER_ADAPTERS = f"{DOMAIN}/unload-adapters"

#: Name of the per-account ResourceQuota, NetworkPolicy and artifact PVC.
ACCOUNT_QUOTA_NAME = "hearth-quota"
ACCOUNT_NETWORK_POLICY_NAME = "hearth-model-servers"
ACCOUNT_ARTIFACT_CLAIM = "artifacts"

CLUSTER_ROLE_PREFIX = "hearth-"
#: The ClusterRole that lets the operator read and create Secrets, bound (RoleBinding)
#: only in account namespaces, and the RoleBinding's name there.
OPERATOR_SECRETS_ROLE = "hearth-operator-secrets"

#: The model server reads its API token from this variable (hearth-server --api-key).
SERVER_API_KEY_ENV = "HEARTH_SERVER_API_KEY"
#: vLLM's equivalent: it requires the token on its /v1 routes (not /health, /metrics).
VLLM_API_KEY_ENV = "VLLM_API_KEY"
#: The key of the token inside each Deployment's API-key Secret.
API_KEY_SECRET_KEY = "api-key"


def adapter_annotation(deployed_model: str) -> str:
    """Pod annotation recording that a DeployedModel's adapter was loaded into the pod."""
    return f"adapter.{DOMAIN}/{deployed_model}"


def api_key_secret_name(deployment: str) -> str:
    """The Secret holding a Deployment's server API token (one per Deployment)."""
    return f"{deployment}-api-key"


#: The key of the plaintext inside each ApiKey's Secret.
USER_API_KEY_SECRET_KEY = "key"


def user_api_key_secret_name(key_id: str) -> str:
    """The Secret (and the Role and RoleBinding that let its user read it) of an ApiKey.

    The dot keeps it apart from every Deployment's ``<id>-api-key`` Secret: IDs have no
    dots, so no ApiKey and Deployment IDs in one namespace can ever map to the same name.
    """
    return f"{key_id}.api-key"


def short_hash(*parts: str, length: int = 10) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:length]
