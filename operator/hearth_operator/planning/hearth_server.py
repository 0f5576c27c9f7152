"""The hearth-server process of a Deployment with ``servingEngine: HEARTH``: arguments and env.

The counterpart of ``planning/vllm.py``. Pure: no I/O.
"""

from __future__ import annotations

from hearth.api import DeploymentSpec

from ..constants import API_KEY_SECRET_KEY, SERVER_API_KEY_ENV
from ..settings import Settings
from .common import Obj
from .engines import ServerProcess, hearth_precision_args


def hearth_process(
    spec: DeploymentSpec,
    source: str,
    served_model_name: str,
    api_key_secret: str,
    settings: Settings,
) -> ServerProcess:
    """``hearth-server serve <source>`` arguments and the container's env (besides POD_IP).

    hearth-server resolves every source URI scheme itself, so the source goes as it is.
    """
    args = [
        "serve",
        source,
        "--served-model-name",
        served_model_name,
        "--port",
        str(settings.server_port),
    ]
    if spec.enable_addons:
        args += [
            "--max-loras",
            str(spec.num_peft_device_cached),
            "--max-cpu-loras",
            str(spec.num_peft_host_cached),
            "--max-lora-rank",
            str(spec.max_peft_rank),
        ]
    if spec.max_context_length:
        args += ["--max-model-len", str(spec.max_context_length)]
    args += hearth_precision_args(spec.precision)
    env: list[Obj] = [
        # Every route but /health and /metrics requires this token; it comes from the
        # Deployment's Secret, so it never appears in the pod spec.
        {
            "name": SERVER_API_KEY_ENV,
            "valueFrom": {"secretKeyRef": {"name": api_key_secret, "key": API_KEY_SECRET_KEY}},
        },
        {"name": "HEARTH_CACHE_DIR", "value": settings.model_cache_path},
        {"name": "HEARTH_PVC_ROOT", "value": settings.pvc_mount_root},
        *({"name": k, "value": v} for k, v in sorted(settings.server_env.items())),
    ]
    return ServerProcess(args, env)
