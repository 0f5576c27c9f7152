"""Typed models of Hearth's custom resources (group hearth.dev, version v1alpha1).

The CRDs in ``crds/`` are generated from these models (``make generate``).
"""

from ._base import (
    API_VERSION,
    GROUP,
    VERSION,
    AcceleratorType,
    Condition,
    ConditionStatus,
    KindInfo,
    Precision,
    Resource,
    StatusBase,
)
from .account import Account, AccountQuota, AccountSpec, AccountState, AccountStatus
from .api_key import ApiKey, ApiKeySpec, ApiKeyState, ApiKeyStatus
from .dataset import Dataset, DatasetFormat, DatasetSpec, DatasetState, DatasetStatus
from .deployed_model import (
    DeployedModel,
    DeployedModelSpec,
    DeployedModelState,
    DeployedModelStatus,
)
from .deployment import (
    AutoscalingPolicy,
    Deployment,
    DeploymentSpec,
    DeploymentState,
    DeploymentStatus,
    ServingEngine,
)
from .finetuning_job import FineTuningJob, FineTuningJobSpec, FineTuningJobStatus, JobState
from .model import Model, ModelKind, ModelSpec, ModelState, ModelStatus
from .user import Role, User, UserSpec, UserState, UserStatus

#: Every Hearth kind, in the order the docs and CRD files list them.
RESOURCE_CLASSES: tuple[type[Resource], ...] = (  # type: ignore[type-arg]
    Account,
    User,
    ApiKey,
    Model,
    Deployment,
    DeployedModel,
    Dataset,
    FineTuningJob,
)

__all__ = [
    "API_VERSION",
    "GROUP",
    "RESOURCE_CLASSES",
    "VERSION",
    "AcceleratorType",
    "Account",
    "AccountQuota",
    "AccountSpec",
    "AccountState",
    "AccountStatus",
    "ApiKey",
    "ApiKeySpec",
    "ApiKeyState",
    "ApiKeyStatus",
    "AutoscalingPolicy",
    "Condition",
    "ConditionStatus",
    "Dataset",
    "DatasetFormat",
    "DatasetSpec",
    "DatasetState",
    "DatasetStatus",
    "DeployedModel",
    "DeployedModelSpec",
    "DeployedModelState",
    "DeployedModelStatus",
    "Deployment",
    "DeploymentSpec",
    "DeploymentState",
    "DeploymentStatus",
    "FineTuningJob",
    "FineTuningJobSpec",
    "FineTuningJobStatus",
    "JobState",
    "KindInfo",
    "Model",
    "ModelKind",
    "ModelSpec",
    "ModelState",
    "ModelStatus",
    "Precision",
    "Resource",
    "Role",
    "ServingEngine",
    "StatusBase",
    "User",
    "UserSpec",
    "UserState",
    "UserStatus",
]
