"""List+watch caches of the cluster objects the gateway routes and authenticates with."""

from .cache import RESOURCES, ClusterCache
from .client import ConnectionInfo, KubeClient, KubeError, load_configuration
from .state import ClusterState, Store

__all__ = [
    "RESOURCES",
    "ClusterCache",
    "ClusterState",
    "ConnectionInfo",
    "KubeClient",
    "KubeError",
    "Store",
    "load_configuration",
]
