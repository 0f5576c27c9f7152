"""Serving engines: what each one can serve, and how the operator talks to its replicas.

A Deployment's ``servingEngine`` picks the model server its pods run: hearth-server
(``HEARTH``) or vLLM's OpenAI server (``VLLM``). Both speak the same HTTP for what the
operator and the gateway need (OpenAI routes, ``/health``, ``/metrics``, runtime LoRA
loading), so the differences fit in this module's tables: which precisions and accelerator
counts an engine honours, where it reads weights from, its metric names and its capacity.
Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hearth.api import Precision, ServingEngine

from ..constants import ANNOTATION_SERVING_ENGINE
from ..settings import Settings
from .common import Obj


@dataclass(frozen=True)
class ServerProcess:
    """What a replica's container runs: arguments of the engine's command, and env."""

    args: list[str]
    env: list[Obj]


@dataclass(frozen=True)
class Refusal:
    """Why an engine cannot serve a spec: the Ready condition's reason and message."""

    reason: str
    message: str


#: hearth-server's ``--precision`` per Deployment precision. Unset (or
#: PRECISION_UNSPECIFIED) passes no flag: the server's ``auto``.
HEARTH_PRECISION: Mapping[Precision, str] = {
    Precision.FP16: "fp16",
    Precision.BF16: "bf16",
    Precision.INT8: "int8",
    Precision.INT4: "int4",
}
#: vLLM's flags per Deployment precision; unset is ``--dtype auto`` (the checkpoint's dtype).
#: FP8 is vLLM's online FP8 quantisation of the weights.
VLLM_PRECISION: Mapping[Precision | None, tuple[str, ...]] = {
    None: ("--dtype", "auto"),
    Precision.FP16: ("--dtype", "float16"),
    Precision.BF16: ("--dtype", "bfloat16"),
    Precision.FP8: ("--dtype", "auto", "--quantization", "fp8"),
}
#: Precisions HEARTH serves only on CPU replicas (hearth-server's int8 and int4 CPU paths).
CPU_ONLY_PRECISIONS = frozenset({Precision.INT8, Precision.INT4})


def requested_precision(precision: Precision | None) -> Precision | None:
    """The precision asked for; None when the engine is left to choose."""
    return None if precision in (None, Precision.PRECISION_UNSPECIFIED) else precision


def supported_precisions(engine: ServingEngine) -> list[Precision]:
    table = HEARTH_PRECISION if engine == ServingEngine.HEARTH else VLLM_PRECISION
    return [p for p in table if p is not None]


def check_engine(
    engine: ServingEngine,
    precision: Precision | None,
    accelerator_type: str,
    accelerators: int,
) -> Refusal | None:
    """Why ``engine`` cannot serve replicas of this shape, or None when it can.

    Only what the spec alone decides; the CRD already refuses VLLM on CPU.
    """
    if engine == ServingEngine.HEARTH and accelerators > 1:
        return Refusal(
            "UnsupportedAcceleratorCount",
            f"acceleratorCount {accelerators}: hearth-server runs each replica on one "
            f"accelerator; set servingEngine: VLLM to shard the model over {accelerators} "
            "GPUs with tensor parallelism, or set acceleratorCount: 1",
        )
    wanted = requested_precision(precision)
    if wanted is None:
        return None
    supported = supported_precisions(engine)
    if wanted not in supported:
        names = ", ".join(p.value for p in supported)
        return Refusal(
            "UnsupportedPrecision",
            f"precision {wanted.value} is not served by servingEngine {engine.value}, which "
            f"serves {names} (or leave precision unset for the model's own dtype)",
        )
    if wanted in CPU_ONLY_PRECISIONS and accelerator_type != "CPU":
        return Refusal(
            "UnsupportedPrecision",
            f"precision {wanted.value} (weight-only int8) is served by hearth-server on CPU "
            f"replicas only, not on {accelerator_type}; use FP16 or BF16 there, or "
            "servingEngine: VLLM with FP8",
        )
    return None


def hearth_precision_args(precision: Precision | None) -> list[str]:
    """hearth-server's flags for a precision ``check_engine`` accepted."""
    wanted = requested_precision(precision)
    return [] if wanted is None else ["--precision", HEARTH_PRECISION[wanted]]


def vllm_precision_args(precision: Precision | None) -> list[str]:
    """vLLM's flags for a precision ``check_engine`` accepted."""
    return list(VLLM_PRECISION[requested_precision(precision)])


@dataclass(frozen=True)
class VllmSource:
    """Where vLLM loads weights from: a local path or a Hugging Face repository."""

    location: str
    revision: str | None = None


def vllm_source(uri: str, pvc_mount_root: str) -> VllmSource:
    """The model source URI as vLLM takes it; ValueError (with the fix) when it cannot.

    hearth-server resolves every URI scheme itself; vLLM takes a path or a repository ID,
    so ``pvc://claim/path`` becomes the claim's mount in the pod and ``hf://org/repo@rev``
    the repository and its revision.
    """
    scheme, _, rest = uri.partition("://")
    if scheme == "pvc" and rest:
        return VllmSource(f"{pvc_mount_root.rstrip('/')}/{rest}")
    if scheme == "file" and rest.startswith("/"):
        return VllmSource(rest)
    if scheme == "hf" and rest:
        repository, _, revision = rest.partition("@")
        return VllmSource(repository, revision or None)
    if scheme == "builtin":
        raise ValueError(
            f"{uri} is bundled with hearth-server, not vLLM; for servingEngine VLLM give the "
            "model as hf://org/repo, pvc://claim/path or file:///path"
        )
    raise ValueError(f"{uri}: vLLM loads hf://, pvc:// and file:/// sources only")


def engine_of_pod(pod: Obj) -> ServingEngine:
    """The engine a model-server pod runs (pods without the annotation run hearth-server)."""
    value = (pod["metadata"].get("annotations") or {}).get(ANNOTATION_SERVING_ENGINE)
    return ServingEngine.VLLM if value == ServingEngine.VLLM.value else ServingEngine.HEARTH


@dataclass(frozen=True)
class AdapterCall:
    """One HTTP call to a replica: ``POST <path>`` with a JSON body."""

    path: str
    body: dict[str, str]


def load_adapter_call(
    engine: ServingEngine, lora_name: str, source_uri: str, pvc_mount_root: str
) -> AdapterCall:
    """Both engines take ``POST /v1/load_lora_adapter {lora_name, lora_path}``; they differ
    in the path: hearth-server resolves the URI, vLLM wants a local path or a repository.
    ValueError when vLLM cannot load from that source."""
    if engine == ServingEngine.HEARTH:
        path = source_uri
    else:
        source = vllm_source(source_uri, pvc_mount_root)
        if source.revision is not None:
            raise ValueError(
                f"{source_uri}: vLLM's load_lora_adapter takes no revision; publish the "
                "adapter on a volume (pvc://) or drop the @revision"
            )
        path = source.location
    return AdapterCall("/v1/load_lora_adapter", {"lora_name": lora_name, "lora_path": path})


def unload_adapter_call(lora_name: str) -> AdapterCall:
    """The same call for both engines (each answers 404 for an adapter it does not hold)."""
    return AdapterCall("/v1/unload_lora_adapter", {"lora_name": lora_name})


#: Each load field of the autoscaler's Scrape and the metrics that carry it, in order of
#: preference: hearth-server's names (which follow vLLM's), then vLLM's. vLLM before 0.10
#: called the cache gauge ``gpu_cache_usage_perc``; a server exporting both is read once.
LOAD_METRICS: Mapping[str, tuple[str, ...]] = {
    "running": ("hearth:num_requests_running", "vllm:num_requests_running"),
    "waiting": ("hearth:num_requests_waiting", "vllm:num_requests_waiting"),
    "kv_cache_usage": (
        "hearth:kv_cache_usage_perc",
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
    ),
    "generation_tokens": ("hearth:generation_tokens_total", "vllm:generation_tokens_total"),
    "requests_finished": ("hearth:request_success_total", "vllm:request_success_total"),
}
LOAD_METRIC_NAMES = frozenset(name for names in LOAD_METRICS.values() for name in names)


def load_fields(totals: Mapping[str, float]) -> dict[str, float] | None:
    """Load fields from metric totals (each summed over its label sets); None without a
    running-requests gauge (a server that cannot say its load is not idle either)."""
    if not any(name in totals for name in LOAD_METRICS["running"]):
        return None
    return {
        field: next((totals[name] for name in names if name in totals), 0.0)
        for field, names in LOAD_METRICS.items()
    }


def replica_capacity(engine: ServingEngine, settings: Settings) -> int:
    """Requests one replica runs at once: what the ``default`` load target is a share of."""
    if engine == ServingEngine.VLLM:
        return settings.vllm_max_num_seqs
    return settings.autoscaler_replica_concurrency


@dataclass(frozen=True)
class ProbePaths:
    """HTTP paths of a replica's probes (the startup probe uses the readiness path)."""

    readiness: str
    liveness: str


#: Both engines answer /health: 200 while serving, 503 once their engine has died (vLLM
#: starts listening only after loading the weights, hearth-server answers 503 until then).
PROBE_PATHS: Mapping[ServingEngine, ProbePaths] = {
    ServingEngine.HEARTH: ProbePaths("/health", "/health"),
    ServingEngine.VLLM: ProbePaths("/health", "/health"),
}
