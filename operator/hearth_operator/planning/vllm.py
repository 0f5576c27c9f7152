"""The vLLM server process of a Deployment with ``servingEngine: VLLM``: arguments and env.

vLLM's OpenAI server takes the same job as hearth-server in the pod: the flags come from the
same spec fields (served model name, LoRA slots and rank, context length), plus what only
vLLM has: tensor parallelism over ``acceleratorCount`` and FP8. Pure: no I/O.
"""

from __future__ import annotations

from hearth.api import DeploymentSpec

from ..constants import API_KEY_SECRET_KEY, VLLM_API_KEY_ENV
from ..settings import Settings
from .common import Obj
from .engines import ServerProcess, VllmSource, vllm_precision_args

#: The LoRA ranks vLLM accepts for --max-lora-rank (its MaxLoRARanks); a spec's
#: maxPeftRank (4-64) is rounded up to the next one.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


def vllm_lora_rank(rank: int) -> int:
    """The smallest rank vLLM accepts that holds adapters of ``rank``."""
    return next((r for r in VLLM_LORA_RANKS if r >= rank), VLLM_LORA_RANKS[-1])


def vllm_process(
    spec: DeploymentSpec,
    source: VllmSource,
    served_model_name: str,
    accelerators: int,
    api_key_secret: str,
    settings: Settings,
) -> ServerProcess:
    """``vllm serve <model>`` arguments and the container's env (besides POD_IP)."""
    args = [
        source.location,
        "--served-model-name",
        served_model_name,
        # $(POD_IP) is expanded by the kubelet: the server listens on the pod's address,
        # as hearth-server does.
        "--host",
        "$(POD_IP)",
        "--port",
        str(settings.server_port),
        "--tensor-parallel-size",
        str(max(accelerators, 1)),
        *vllm_precision_args(spec.precision),
        "--max-num-seqs",
        str(settings.vllm_max_num_seqs),
    ]
    if source.revision:
        args += ["--revision", source.revision]
    if spec.max_context_length:
        args += ["--max-model-len", str(spec.max_context_length)]
    if spec.enable_addons:
        args += [
            "--enable-lora",
            "--max-loras",
            str(spec.num_peft_device_cached),
            "--max-cpu-loras",
            str(spec.num_peft_host_cached),
            "--max-lora-rank",
            str(vllm_lora_rank(spec.max_peft_rank)),
        ]
    env: list[Obj] = [
        # vLLM requires this token on its /v1 routes (load_lora_adapter included), not on
        # /health and /metrics: the same contract as hearth-server's.
        {
            "name": VLLM_API_KEY_ENV,
            "valueFrom": {"secretKeyRef": {"name": api_key_secret, "key": API_KEY_SECRET_KEY}},
        },
        # DeployedModels load adapters into running replicas.
        {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"},
        # Hub downloads land on the model-cache volume.
        {"name": "HF_HOME", "value": settings.model_cache_path},
        *({"name": k, "value": v} for k, v in sorted(settings.vllm_env.items())),
    ]
    return ServerProcess(args, env)


#: vLLM's workers share tensors through /dev/shm, which a container gets only 64 MiB of.
SHM_VOLUME: Obj = {"name": "dshm", "emptyDir": {"medium": "Memory"}}
SHM_MOUNT: Obj = {"name": "dshm", "mountPath": "/dev/shm"}
