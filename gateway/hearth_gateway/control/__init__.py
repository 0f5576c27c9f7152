"""The control plane: Fireworks' REST API v1 (``/v1/accounts/...``) over Hearth's CRDs.

One module per resource translates between the custom resource and Fireworks' JSON
(pure); ``listing`` holds the list semantics, ``authz`` the role table, ``kube`` the calls
to the Kubernetes API, ``plane`` the operations, ``staged`` those of datasets and models
whose files come through the gateway (with ``uploads``, ``model_files``, ``multipart``
and ``downloads``), and ``routes`` the HTTP layer. See docs/gateway.md, "Control plane".
"""

from __future__ import annotations

import logging
import secrets

from ..cluster import load_configuration
from ..config import GatewayConfig
from ..gateway import Gateway
from .kube import ControlKube
from .plane import ControlPlane
from .routes import routes
from .uploads import UploadStore

__all__ = ["ControlPlane", "open_control", "routes"]

log = logging.getLogger(__name__)


def open_control(config: GatewayConfig, gateway: Gateway) -> ControlPlane:
    configuration, _ = load_configuration(config.kubeconfig, in_cluster=config.in_cluster)
    uploads = None
    if config.upload_dir:
        secret = config.upload_secret
        if not secret:
            log.warning(
                "no upload signing secret configured: using a random one, so upload URLs "
                "work only on this replica until it restarts"
            )
            secret = secrets.token_hex(32)
        uploads = UploadStore(config.upload_dir, secret.encode(), config.upload_max_bytes)
    log.info(
        "control plane on /v1/accounts; uploads %s",
        f"to {config.upload_dir} (max {config.upload_max_bytes} bytes)"
        if uploads
        else "disabled (no --upload-dir)",
    )
    return ControlPlane(
        gateway,
        ControlKube(configuration),
        uploads,
        requests_per_minute=config.control_requests_per_minute,
    )
