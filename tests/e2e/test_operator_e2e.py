"""End to end: the operator runs the real hearth-server on SmolLM2 and loads a real LoRA.

The Kubernetes API server and kubelet are emulated (tests/harness); the operator (kopf),
the model server, the model, the adapter (made here with peft) and the OpenAI SDK client
are real. The adapter lives where the account's artifact volume is mounted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

from openai import AuthenticationError, OpenAI
from openai.types.chat import ChatCompletionMessageParam

from hearth_server.models import resolve_model
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import emulated_cluster, local_process_settings
from tests.server.conftest import make_adapter

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MANIFESTS = """
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec: {quota: {deployments: 2}}
---
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: smollm2, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: builtin://smollm2-135m-instruct}
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
  acceleratorType: CPU
  minReplicaCount: 1
  enableAddons: true
  numPeftDeviceCached: 2
  numPeftHostCached: 4
  maxPeftRank: 16
---
apiVersion: hearth.dev/v1alpha1
kind: DeployedModel
metadata: {name: pirate-on-smol, namespace: acme}
spec: {model: pirate, deployment: smol}
"""

QUESTION: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "What is the capital of France?"}
]


def test_operator_serves_base_and_lora_from_the_real_server(tmp_path: Path) -> None:
    pvc_root = tmp_path / "pvc"
    # The adapter, on the account's artifact volume (pvc://artifacts/...).
    make_adapter(
        resolve_model("builtin://smollm2-135m-instruct").path,
        pvc_root / "artifacts" / "adapters" / "pirate",
        seed=7,
        rank=8,
        scale=1.6,
    )
    settings = local_process_settings(pvc_root, resync_seconds=2.0)
    with (
        emulated_cluster(settings, tmp_path) as cluster,
        ProcessKubelet(cluster.api, log_dir=tmp_path / "pod-logs") as kubelet,
        cluster.operator(),
    ):
        documents = MANIFESTS.split("\n---\n")
        cluster.apply(documents[0])
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply("\n---\n".join(documents[1:]))
        try:
            cluster.wait_state("Deployment", "smol", "READY", timeout=600)
            dm = cluster.wait_state("DeployedModel", "pirate-on-smol", "DEPLOYED", timeout=300)
        except AssertionError:
            print(kubelet.dump_logs())
            raise
        assert dm["status"]["loadedReplicaCount"] == 1
        pod = cluster.pods("smol")[0]
        base_url = f"http://{pod['status']['podIP']}:8000/v1"
        # The server refuses clients without the Deployment's token.
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
        # Undeploying the LoRA unloads it from the running server.
        cluster.kube.delete("DeployedModel", "pirate-on-smol", "acme")
        eventually(
            lambda: "accounts/acme/models/pirate" not in {m.id for m in client.models.list().data},
            timeout=60,
        )
        assert ask("accounts/acme/models/smollm2") == base
