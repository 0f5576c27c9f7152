"""Serving engines in the planners: the vLLM pod, precision flags and refusals, adapter
calls per engine, and the autoscaler reading vLLM's metrics."""

from datetime import UTC, datetime

import httpx
import pytest

from hearth.api import DeploymentSpec, Precision, ServingEngine
from hearth.validation import validate
from hearth_operator.controllers.autoscaler import parse_metrics
from hearth_operator.planning.deployed_model import DeployedModelInputs, load_actions
from hearth_operator.planning.deployment import DeploymentInputs, plan_deployment
from hearth_operator.planning.engines import (
    check_engine,
    load_adapter_call,
    load_fields,
    replica_capacity,
    unload_adapter_call,
    vllm_source,
)
from hearth_operator.planning.vllm import vllm_lora_rank
from hearth_operator.server_client import _error_text
from hearth_operator.settings import Settings
from tests.operator.factories import addon_model, base_model, pod, stored

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SETTINGS = Settings(vllm_image="vllm/vllm-openai:test", vllm_max_num_seqs=128)
HF_BASE = base_model(source={"uri": "hf://HuggingFaceTB/SmolLM2-135M-Instruct"})
H100 = "NVIDIA_H100_80GB"


def deployment(**spec):
    return stored(
        "Deployment",
        "d1",
        {"baseModel": "smollm2", "acceleratorType": "CPU", "minReplicaCount": 1, **spec},
    )


def vllm_deployment(**spec):
    return deployment(servingEngine="VLLM", acceleratorType=H100, **spec)


def plan(dep, base=HF_BASE, settings=SETTINGS, **extra):
    return plan_deployment(
        DeploymentInputs(
            deployment=dep,
            base_model=base,
            pods=[],
            settings=settings,
            now=NOW,
            fresh_api_key="token",
            **extra,
        )
    )


def container_of(made):
    [created] = made.create
    return created, created["spec"]["containers"][0]


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


# -- the vLLM pod -----------------------------------------------------------------------


def test_vllm_pod_runs_vllm_serve_with_flags_from_the_spec():
    dep = vllm_deployment(
        acceleratorCount=4,
        precision="BF16",
        enableAddons=True,
        numPeftDeviceCached=4,
        numPeftHostCached=16,
        maxPeftRank=24,
        maxContextLength=8192,
    )
    made = plan(dep)
    created, container = container_of(made)
    assert container["image"] == "vllm/vllm-openai:test"
    assert container["command"] == ["vllm", "serve"]
    assert container["args"] == [
        "HuggingFaceTB/SmolLM2-135M-Instruct",
        "--served-model-name",
        "accounts/acme/models/smollm2",
        "--host",
        "$(POD_IP)",
        "--port",
        "8000",
        "--tensor-parallel-size",
        "4",
        "--dtype",
        "bfloat16",
        "--max-num-seqs",
        "128",
        "--max-model-len",
        "8192",
        "--enable-lora",
        "--max-loras",
        "4",
        "--max-cpu-loras",
        "16",
        "--max-lora-rank",
        "32",  # 24 rounded up to a rank vLLM accepts
    ]
    env = env_of(container)
    assert env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    # The token reaches vLLM by reference, never in the pod spec.
    assert env["VLLM_API_KEY"] == {"secretKeyRef": {"name": "d1-api-key", "key": "api-key"}}
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    assert env["HF_HOME"] == SETTINGS.model_cache_path
    assert "HEARTH_SERVER_API_KEY" not in env
    # Four GPUs, on H100 nodes, and a memory-backed /dev/shm for its workers.
    assert container["resources"] == {
        "requests": {"nvidia.com/gpu": "4"},
        "limits": {"nvidia.com/gpu": "4"},
    }
    pod_spec = created["spec"]
    assert pod_spec["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert {"name": "dshm", "emptyDir": {"medium": "Memory"}} in pod_spec["volumes"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    # The same probes as hearth-server: vLLM answers /health too.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/health", "port": 8000}
    assert container["startupProbe"]["failureThreshold"] == 900
    # Marked for the DeployedModel reconcile, and selected like every model server.
    assert created["metadata"]["annotations"]["hearth.dev/serving-engine"] == "VLLM"
    assert created["metadata"]["labels"]["app.kubernetes.io/name"] == "hearth-server"
    assert made.service is not None and made.base_deployed_model is not None
    assert made.status["state"] == "CREATING"


def test_vllm_without_addons_or_context_length_passes_neither():
    _, container = container_of(plan(vllm_deployment()))
    args = container["args"]
    assert "--enable-lora" not in args and "--max-model-len" not in args
    assert args[args.index("--tensor-parallel-size") + 1] == "1"  # acceleratorCount defaults to 1


@pytest.mark.parametrize(
    ("source", "location", "extra"),
    [
        ("hf://org/model@v2", "org/model", ["--revision", "v2"]),
        ("pvc://weights/llama/8b", "/mnt/pvc/weights/llama/8b", []),
        ("file:///models/llama", "/models/llama", []),
    ],
)
def test_vllm_loads_from_the_sources_it_can_read(source, location, extra):
    created, container = container_of(
        plan(vllm_deployment(), base=base_model(source={"uri": source}))
    )
    assert container["args"][0] == location
    if extra:
        at = container["args"].index(extra[0])
        assert container["args"][at : at + 2] == extra
    else:
        assert "--revision" not in container["args"]
    if source.startswith("pvc://"):  # the claim is mounted where the path points
        assert {
            "name": "claim-1",
            "persistentVolumeClaim": {"claimName": "weights", "readOnly": True},
        } in created["spec"]["volumes"]


def test_vllm_refuses_a_model_bundled_with_hearth_server():
    made = plan(vllm_deployment(), base=base_model())  # builtin://smollm2-135m-instruct
    assert made.create == [] and made.service is None and made.base_deployed_model is None
    assert made.status["state"] == "FAILED"
    ready = next(c for c in made.status["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "UnsupportedModelSource"
    assert "builtin://smollm2-135m-instruct is bundled with hearth-server" in ready["message"]


def test_hearth_pods_of_a_default_spec_carry_no_engine_mark_and_no_precision_flag():
    """Specs that existed before the engine choice keep their pod (and so their hash)."""
    created, container = container_of(plan(deployment(), base=base_model()))
    assert container["command"] == ["hearth-server"]
    assert "--precision" not in container["args"]
    assert "hearth.dev/serving-engine" not in created["metadata"]["annotations"]
    assert "dshm" not in {v["name"] for v in created["spec"]["volumes"]}


def test_switching_engines_rolls_out_new_pods():
    hearth = plan(deployment(acceleratorType=H100, acceleratorCount=1))
    vllm = plan(vllm_deployment(acceleratorCount=1))
    hashes = {
        made.create[0]["metadata"]["labels"]["hearth.dev/spec-hash"] for made in (hearth, vllm)
    }
    assert len(hashes) == 2


@pytest.mark.parametrize(
    ("rank", "expected"), [(4, 8), (8, 8), (9, 16), (16, 16), (33, 64), (64, 64)]
)
def test_lora_rank_rounds_up_to_one_vllm_accepts(rank, expected):
    assert vllm_lora_rank(rank) == expected


# -- precision --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "flags"),
    [
        ({}, None),
        ({"precision": "PRECISION_UNSPECIFIED"}, None),
        ({"precision": "FP16", "acceleratorType": H100, "acceleratorCount": 1}, "fp16"),
        ({"precision": "BF16", "acceleratorType": H100, "acceleratorCount": 1}, "bf16"),
        ({"precision": "BF16"}, "bf16"),
        ({"precision": "INT8"}, "int8"),
        ({"precision": "INT4"}, "int4"),
    ],
)
def test_hearth_precision_becomes_its_precision_flag(spec, flags):
    _, container = container_of(plan(deployment(**spec), base=base_model()))
    args = container["args"]
    if flags is None:
        assert "--precision" not in args  # the server's auto
    else:
        assert args[args.index("--precision") + 1] == flags


@pytest.mark.parametrize(
    ("precision", "flags"),
    [
        (None, ["--dtype", "auto"]),
        ("PRECISION_UNSPECIFIED", ["--dtype", "auto"]),
        ("FP16", ["--dtype", "float16"]),
        ("BF16", ["--dtype", "bfloat16"]),
        ("FP8", ["--dtype", "auto", "--quantization", "fp8"]),
    ],
)
def test_vllm_precision_becomes_dtype_and_quantization(precision, flags):
    spec = {} if precision is None else {"precision": precision}
    _, container = container_of(plan(vllm_deployment(**spec)))
    args = container["args"]
    at = args.index("--dtype")
    assert args[at : at + len(flags)] == flags
    assert ("--quantization" in args) == (precision == "FP8")


@pytest.mark.parametrize(
    ("spec", "reason", "words"),
    [
        (
            {"acceleratorType": H100, "acceleratorCount": 2},
            "UnsupportedAcceleratorCount",
            ["acceleratorCount 2", "servingEngine: VLLM", "tensor parallelism"],
        ),
        (
            {"precision": "FP8"},
            "UnsupportedPrecision",
            ["precision FP8 is not served by servingEngine HEARTH", "FP16, BF16, INT8"],
        ),
        (
            {"precision": "NF4"},
            "UnsupportedPrecision",
            ["precision NF4", "servingEngine HEARTH"],
        ),
        (
            {"precision": "FP4", "acceleratorType": H100, "acceleratorCount": 1},
            "UnsupportedPrecision",
            ["precision FP4", "servingEngine HEARTH"],
        ),
        (
            {"precision": "INT8", "acceleratorType": H100, "acceleratorCount": 1},
            "UnsupportedPrecision",
            ["INT8", "CPU replicas only", H100],
        ),
        (
            {"servingEngine": "VLLM", "acceleratorType": H100, "precision": "INT8"},
            "UnsupportedPrecision",
            ["precision INT8 is not served by servingEngine VLLM", "FP16, BF16, FP8"],
        ),
        (
            {"servingEngine": "VLLM", "acceleratorType": H100, "precision": "FP8_KV"},
            "UnsupportedPrecision",
            ["precision FP8_KV", "servingEngine VLLM"],
        ),
    ],
)
def test_specs_an_engine_cannot_serve_are_refused_and_create_nothing(spec, reason, words):
    made = plan(deployment(**spec))
    assert made.create == [] and made.delete == []
    assert made.service is None and made.base_deployed_model is None
    assert made.api_key_secret is None
    assert made.status["state"] == "FAILED"
    ready = next(c for c in made.status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", reason)
    for word in words:
        assert word in ready["message"]
    assert made.events == [("Warning", reason, ready["message"])]
    # Said once: the next reconcile of the same refusal posts no second event.
    again = plan({**deployment(**spec), "status": made.status})
    assert again.events == []


def test_vllm_serves_several_gpus_per_replica():
    assert check_engine(ServingEngine.VLLM, Precision.FP8, H100, 8) is None
    assert check_engine(ServingEngine.HEARTH, None, H100, 1) is None
    assert check_engine(ServingEngine.HEARTH, Precision.INT8, "CPU", 0) is None
    assert check_engine(ServingEngine.HEARTH, Precision.INT4, "CPU", 0) is None
    refused = check_engine(ServingEngine.HEARTH, Precision.INT4, H100, 1)
    assert refused is not None and "CPU replicas only" in refused.message


def test_vllm_on_cpu_is_refused_by_the_crd():
    result = validate(
        {
            "apiVersion": "hearth.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "d1", "namespace": "acme"},
            "spec": {"baseModel": "smollm2", "acceleratorType": "CPU", "servingEngine": "VLLM"},
        }
    )
    assert not result.ok
    assert "servingEngine VLLM needs a GPU acceleratorType" in result.describe()


def test_serving_engine_defaults_to_hearth():
    assert DeploymentSpec.model_validate({"baseModel": "m"}).serving_engine == ServingEngine.HEARTH


# -- adapters ---------------------------------------------------------------------------


def test_adapter_calls_per_engine():
    hearth = load_adapter_call(
        ServingEngine.HEARTH, "accounts/acme/models/lora", "pvc://artifacts/a", "/mnt/pvc"
    )
    assert (hearth.path, hearth.body) == (
        "/v1/load_lora_adapter",
        {"lora_name": "accounts/acme/models/lora", "lora_path": "pvc://artifacts/a"},
    )
    vllm = load_adapter_call(
        ServingEngine.VLLM, "accounts/acme/models/lora", "pvc://artifacts/a", "/mnt/pvc"
    )
    assert (vllm.path, vllm.body) == (
        "/v1/load_lora_adapter",
        {"lora_name": "accounts/acme/models/lora", "lora_path": "/mnt/pvc/artifacts/a"},
    )
    assert (
        load_adapter_call(ServingEngine.VLLM, "n", "hf://org/lora", "/mnt/pvc").body["lora_path"]
        == "org/lora"
    )
    with pytest.raises(ValueError, match="takes no revision"):
        load_adapter_call(ServingEngine.VLLM, "n", "hf://org/lora@v1", "/mnt/pvc")
    with pytest.raises(ValueError, match="bundled with hearth-server"):
        vllm_source("builtin://smollm2-135m-instruct", "/mnt/pvc")
    unload = unload_adapter_call("accounts/acme/models/lora")
    assert (unload.path, unload.body) == (
        "/v1/unload_lora_adapter",
        {"lora_name": "accounts/acme/models/lora"},
    )


def test_load_actions_know_the_engine_of_each_pod():
    vllm_pod = pod("p1", ip="10.0.0.2", annotations={"hearth.dev/serving-engine": "VLLM"})
    pods = [pod("p0"), vllm_pod]
    lora = stored("DeployedModel", "lora-d1", {"model": "lora", "deployment": "d1"})
    addons = deployment(enableAddons=True)
    actions = load_actions(DeployedModelInputs(lora, addon_model(), addons, pods), port=8000)
    assert [(a.pod, a.engine) for a in actions] == [
        ("p0", ServingEngine.HEARTH),
        ("p1", ServingEngine.VLLM),
    ]
    # Both record the adapter's URI: what the annotation hashes is engine-independent.
    assert {a.lora_path for a in actions} == {"pvc://artifacts/adapters/lora"}


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"error": {"message": "has already been loaded"}}, "has already been loaded"),
        ({"object": "error", "message": "cannot be found", "code": 404}, "cannot be found"),
    ],
)
def test_error_messages_of_both_engines_are_read(body, text):
    assert _error_text(httpx.Response(400, json=body)) == text


# -- the autoscaler's view ---------------------------------------------------------------

#: What a vLLM replica's /metrics holds (names and label sets as vLLM exports them).
VLLM_METRICS = """\
# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 5.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="m"} 2.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="m"} 0.25
# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage (deprecated name).
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{engine="0",model_name="m"} 0.25
# HELP vllm:generation_tokens_total Number of generation tokens processed.
# TYPE vllm:generation_tokens_total counter
vllm:generation_tokens_total{engine="0",model_name="m"} 4096.0
vllm:generation_tokens_created{engine="0",model_name="m"} 1.7e9
# HELP vllm:request_success_total Count of successfully processed requests.
# TYPE vllm:request_success_total counter
vllm:request_success_total{engine="0",finished_reason="stop",model_name="m"} 30.0
vllm:request_success_total{engine="0",finished_reason="length",model_name="m"} 12.0
"""


def test_the_autoscaler_reads_vllm_metrics():
    scrape = parse_metrics(VLLM_METRICS, NOW)
    assert scrape is not None
    assert (scrape.running, scrape.waiting) == (5.0, 2.0)
    assert scrape.kv_cache_usage == 0.25  # read once, not once per name
    assert scrape.generation_tokens == 4096.0
    assert scrape.requests_finished == 42.0  # summed over finish reasons


def test_older_vllm_cache_gauge_counts_when_the_new_one_is_absent():
    fields = load_fields({"vllm:num_requests_running": 1.0, "vllm:gpu_cache_usage_perc": 0.5})
    assert fields is not None and fields["kv_cache_usage"] == 0.5
    assert load_fields({"vllm:num_requests_waiting": 3.0}) is None  # no running gauge


def test_a_vllm_replica_holds_its_own_number_of_requests():
    assert replica_capacity(ServingEngine.VLLM, SETTINGS) == 128
    assert (
        replica_capacity(ServingEngine.HEARTH, SETTINGS) == SETTINGS.autoscaler_replica_concurrency
    )
