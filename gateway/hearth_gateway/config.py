"""The gateway's settings (from the command line, see ``cli.py``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GatewayConfig:
    #: The account whose serverless DeployedModels every account may call.
    platform_account: str = "hearth"
    #: A kubeconfig file; None uses the in-cluster service account, else ~/.kube/config.
    kubeconfig: str | None = None
    #: True: only the in-cluster service account; False: only a kubeconfig.
    in_cluster: bool | None = None
    #: None: SQLite at $HEARTH_GATEWAY_LEDGER_PATH; "postgresql://..." for several replicas.
    ledger_url: str | None = None
    #: None: rate limits in memory; "redis://..." to share them across replicas.
    redis_url: str | None = None
    #: How long a request waits for a ready replica (scale from zero) before a 503.
    scale_from_zero_timeout: float = 300.0
    #: Retry-After on that 503, in seconds.
    retry_after_seconds: int = 30
    #: Largest request body accepted (413 above).
    max_body_bytes: int = 32 * 1024 * 1024
    upstream_connect_timeout: float = 5.0
    #: Longest wait for the next bytes from a model server.
    upstream_read_timeout: float = 600.0
    #: How long startup waits for the first list of every kind.
    cache_sync_timeout: float = 60.0
    #: The URL clients reach the gateway at (for upload URLs); None: from each request.
    public_url: str | None = None
    #: Where dataset and model uploads are written and downloads read (the accounts'
    #: artifact storage as mounted here; ``{account}`` is replaced by the account); None
    #: disables uploads.
    upload_dir: str | None = None
    #: HMAC key of upload URLs (shared by replicas); None: random per process.
    upload_secret: str | None = None
    #: Largest file accepted by an upload URL.
    upload_max_bytes: int = 1024 * 1024 * 1024
    #: Control-plane requests per account and minute (0: unlimited).
    control_requests_per_minute: int = 0
