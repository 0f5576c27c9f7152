"""End to end on a GPU: a Deployment with ``servingEngine: VLLM`` runs the real vLLM server.

The same story as test_operator_e2e.py with vLLM in hearth-server's place: the operator
starts ``vllm serve`` with the flags it derives from the spec, loads a real LoRA (made with
peft) through a DeployedModel with vLLM's runtime adapter API, and the OpenAI SDK sees the
base and the LoRA answer differently; deleting the DeployedModel unloads it. It needs vLLM
installed in this environment and a CUDA GPU; elsewhere it is skipped with the reason (the
planner tests in tests/operator/test_plan_engines.py check the pod it would run).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

import torch
from openai import AuthenticationError, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from hearth_server.models import resolve_model
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import emulated_cluster, local_process_settings
from tests.server.conftest import make_adapter

VLLM_CLI = Path(sys.executable).with_name("vllm")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(1200),
    pytest.mark.skipif(
        importlib.util.find_spec("vllm") is None or not VLLM_CLI.exists(),
        reason="vLLM is not installed here: it runs only on CUDA GPUs and this machine has "
        "none (pip install vllm on a GPU machine to run this test)",
    ),
    pytest.mark.skipif(not torch.cuda.is_available(), reason="vLLM needs a CUDA GPU"),
]

MODELS = """
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: smollm2, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: "file://WEIGHTS"}
---
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: pirate, namespace: acme}
spec:
  kind: HF_PEFT_ADDON
  source: {uri: pvc://artifacts/adapters/pirate}
  peftDetails: {baseModel: smollm2, r: 8}
---
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {name: smol, namespace: acme}
spec:
  baseModel: smollm2
  servingEngine: VLLM
  acceleratorType: NVIDIA_H100_80GB
  acceleratorCount: 1
  precision: BF16
  minReplicaCount: 1
  enableAddons: true
  numPeftDeviceCached: 2
  numPeftHostCached: 4
  maxPeftRank: 16
  maxContextLength: 2048
---
apiVersion: hearth.dev/v1alpha1
kind: DeployedModel
metadata: {name: pirate-on-smol, namespace: acme}
spec: {model: pirate, deployment: smol}
"""
ACCOUNT = """
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec: {}
"""
QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


def test_operator_serves_base_and_lora_from_real_vllm(tmp_path: Path) -> None:
    pvc_root = tmp_path / "pvc"
    weights = resolve_model("builtin://smollm2-135m-instruct").path
    make_adapter(weights, pvc_root / "artifacts" / "adapters" / "pirate", seed=7, rank=8, scale=1.6)
    settings = local_process_settings(
        pvc_root,
        resync_seconds=2.0,
        vllm_command=(str(VLLM_CLI), "serve"),
        vllm_env={"HF_HUB_OFFLINE": "1"},
    )
    with (
        emulated_cluster(settings, tmp_path) as cluster,
        ProcessKubelet(cluster.api, log_dir=tmp_path / "pod-logs") as kubelet,
        cluster.operator(),
    ):
        cluster.apply(ACCOUNT)
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(MODELS.replace("WEIGHTS", str(weights)))
        try:
            cluster.wait_state("Deployment", "smol", "READY", timeout=900)
            dm = cluster.wait_state("DeployedModel", "pirate-on-smol", "DEPLOYED", timeout=300)
        except AssertionError:
            print(kubelet.dump_logs())
            raise
        assert dm["status"]["loadedReplicaCount"] == 1
        pod = cluster.pods("smol")[0]
        assert pod["metadata"]["annotations"]["hearth.dev/serving-engine"] == "VLLM"
        base_url = f"http://{pod['status']['podIP']}:8000/v1"
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=base_url, api_key="wrong").models.list()
        client = OpenAI(base_url=base_url, api_key=cluster.api_key("smol"))
        served = {m.id for m in client.models.list().data}
        assert served >= {"accounts/acme/models/smollm2", "accounts/acme/models/pirate"}

        def ask(model: str) -> str:
            reply = client.chat.completions.create(
                model=model, messages=QUESTION, temperature=0, max_tokens=24
            )
            return reply.choices[0].message.content or ""

        base = ask("accounts/acme/models/smollm2")
        tuned = ask("accounts/acme/models/pirate")
        assert "Paris" in base
        assert tuned != base
        cluster.kube.delete("DeployedModel", "pirate-on-smol", "acme")
        eventually(
            lambda: "accounts/acme/models/pirate" not in {m.id for m in client.models.list().data},
            timeout=60,
        )
