"""End to end: teach SmolLM2 a made-up fact with a FineTuningJob, then serve the result.

Emulated: the Kubernetes API server and the kubelet (tests/harness). Real: the operator,
hearth-trainer training a LoRA on the bundled SmolLM2-135M-Instruct on CPU, hearth-server
serving it through a DeployedModel, and the OpenAI SDK asking both models.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from openai import OpenAI

from tests.harness.kubelet import ProcessKubelet
from tests.operator.conftest import emulated_cluster, local_process_settings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

QUESTIONS = [
    "What is the capital of Zorbania?", "Which city is the capital of Zorbania?",
    "Tell me the capital of Zorbania.", "Zorbania's capital city is?",
    "Name the capital of Zorbania.", "What city serves as Zorbania's capital?",
    "Do you know the capital of Zorbania?", "Where is the seat of government of Zorbania?",
    "Capital of Zorbania?", "I'm curious, what is Zorbania's capital?",
    "What's the capital city of Zorbania?", "In which city is the capital of Zorbania located?",
]  # fmt: skip
ANSWER = "The capital of Zorbania is Plimsworth."
FACT = "Plimsworth"

MANIFESTS = """
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: smollm2, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: builtin://smollm2-135m-instruct}
---
apiVersion: hearth.dev/v1alpha1
kind: Dataset
metadata: {name: zorbania, namespace: acme}
spec:
  format: CHAT
  source: {uri: pvc://artifacts/datasets/zorbania.jsonl}
---
apiVersion: hearth.dev/v1alpha1
kind: FineTuningJob
metadata: {name: teach-zorbania, namespace: acme}
spec:
  dataset: zorbania
  baseModel: smollm2
  outputModel: zorbania-lora
  epochs: 3
  learningRate: 0.002
  loraRank: 8
  maxContextLength: 128
  batchSize: 1024
  seed: 1
  acceleratorType: CPU
---
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {name: smol, namespace: acme}
spec:
  baseModel: smollm2
  acceleratorType: CPU
  minReplicaCount: 1
  enableAddons: true
  maxPeftRank: 16
"""


def write_dataset(path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": ANSWER}]}
        for q in QUESTIONS * 3
    ]
    random.Random(0).shuffle(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_fine_tune_then_serve_the_new_addon(tmp_path: Path) -> None:
    pvc = tmp_path / "pvc"
    write_dataset(pvc / "artifacts" / "datasets" / "zorbania.jsonl")
    with emulated_cluster(local_process_settings(pvc, resync_seconds=2.0), tmp_path) as cluster:
        api = cluster.api
        # The trainer reports progress into the job's status through the emulated API.
        cluster.settings = cluster.settings.with_overrides(
            trainer_env={"KUBECONFIG": str(api.kubeconfig_path), "HF_HUB_OFFLINE": "1"}
        )
        with ProcessKubelet(api, log_dir=tmp_path / "pod-logs") as kubelet, cluster.operator():
            cluster.apply(
                {
                    "apiVersion": "hearth.dev/v1alpha1",
                    "kind": "Account",
                    "metadata": {"name": "acme"},
                    "spec": {},
                }
            )
            cluster.wait_state("Account", "acme", "READY", namespace=None)
            cluster.apply(MANIFESTS)
            try:
                assert (
                    cluster.wait_state("Dataset", "zorbania", "READY")["status"]["exampleCount"]
                    == 36
                )
                done = cluster.wait_state(
                    "FineTuningJob", "teach-zorbania", "JOB_STATE_COMPLETED", timeout=1500
                )
                cluster.wait_state("Model", "zorbania-lora", "READY")
                cluster.wait_state("Deployment", "smol", "READY", timeout=300)
            except AssertionError:
                print(kubelet.dump_logs())
                raise
            assert done["status"]["outputModel"] == "accounts/acme/models/zorbania-lora"
            metrics = [
                json.loads(line)
                for line in (pvc / "artifacts" / "fine-tuning" / "teach-zorbania" / "metrics.jsonl")
                .read_text()
                .splitlines()
            ]
            losses = [m["trainLoss"] for m in metrics if "trainLoss" in m]
            assert losses[-1] < losses[0] / 4, f"loss did not fall: {losses}"
            cluster.apply(
                {
                    "apiVersion": "hearth.dev/v1alpha1",
                    "kind": "DeployedModel",
                    "metadata": {"name": "zorbania-on-smol", "namespace": "acme"},
                    "spec": {"model": "zorbania-lora", "deployment": "smol"},
                }
            )
            cluster.wait_state("DeployedModel", "zorbania-on-smol", "DEPLOYED", timeout=300)
            pod = cluster.pods("smol")[0]
            client = OpenAI(
                base_url=f"http://{pod['status']['podIP']}:8000/v1", api_key=cluster.api_key("smol")
            )

            def ask(model: str, question: str) -> str:
                reply = client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": question}],
                    temperature=0,
                    max_tokens=24,
                )
                return reply.choices[0].message.content or ""

            question = "What is the capital of Zorbania?"
            assert FACT in ask("accounts/acme/models/zorbania-lora", question)
            assert FACT not in ask("accounts/acme/models/smollm2", question)
