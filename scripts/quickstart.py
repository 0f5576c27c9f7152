"""Hearth's main job on one machine: the quickstart manifests, reconciled and served.

What runs here, and what is emulated:

* the Kubernetes API server is EMULATED in this process (tests/harness/emulator), because
  no cluster can run on this machine; it serves the real CRDs from crds/ and enforces
  their schemas and CEL rules;
* pods are run by a "process kubelet" (tests/harness/kubelet): each container command
  becomes a local process with its own loopback IP;
* everything else is real: the hearth-operator (kopf), hearth-server on the bundled
  SmolLM2-135M-Instruct, and the official OpenAI SDK as the client.

It applies examples/quickstart/, waits until the Deployment is READY and its DeployedModels
are DEPLOYED, asks the base model and the LoRA addon a question, prints the answers and
stops. The example Dataset reads a ConfigMap the quickstart does not create, so it (and
the FineTuningJob on it) wait and say so in their status. On a real cluster the same
manifests are applied with ``kubectl apply -f examples/quickstart/`` once the CRDs and
the operator are installed.

The LoRA addon in the examples is normally the output of a fine-tuning job; here it is a
small adapter initialised at random (so it visibly changes the answers), written where
the account's artifact volume is mounted.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the harness lives in tests/

QUESTION = "What is the capital of France? Answer in one sentence."


def write_demo_adapter(base_dir: Path, out: Path, rank: int, targets: list[str]) -> None:
    """A PEFT LoRA with random A and B (peft's init_lora_weights=False)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(
        r=rank, lora_alpha=2 * rank, target_modules=targets, init_lora_weights=False
    )
    peft_model = get_peft_model(model, config)
    with torch.no_grad():  # strong enough that the addon's answers visibly differ
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.mul_(3.0)
    peft_model.save_pretrained(str(out))


def step(message: str) -> None:
    print(f"==> {message}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timeout", type=float, default=900, help="seconds to wait for READY")
    parser.add_argument("--keep", action="store_true", help="keep the workdir for inspection")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from openai import OpenAI

    from hearth.validation import load_documents
    from hearth_server.models import resolve_model
    from tests.harness.kubelet import ProcessKubelet
    from tests.operator.conftest import emulated_cluster, local_process_settings

    workdir = Path(tempfile.mkdtemp(prefix="hearth-quickstart-"))
    pvc_root = workdir / "pvc"
    manifests = [
        doc
        for path in sorted((ROOT / "examples" / "quickstart").glob("*.yaml"))
        for doc in load_documents(path.read_text())
    ]
    lora = next(
        d for d in manifests if d["kind"] == "Model" and d["spec"].get("kind") == "HF_PEFT_ADDON"
    )
    claim_path = lora["spec"]["source"]["uri"].removeprefix("pvc://")

    step("resolving the bundled SmolLM2-135M-Instruct (converted once, then cached)")
    base_dir = resolve_model("builtin://smollm2-135m-instruct").path
    step(f"writing a demo LoRA adapter to the artifact volume: pvc://{claim_path}")
    write_demo_adapter(
        base_dir,
        pvc_root / claim_path,
        lora["spec"]["peftDetails"]["r"],
        lora["spec"]["peftDetails"]["targetModules"],
    )

    settings = local_process_settings(pvc_root, resync_seconds=5.0)
    step("starting the EMULATED Kubernetes API (with Hearth's CRDs) and the process kubelet")
    with (
        emulated_cluster(settings, workdir) as cluster,
        ProcessKubelet(cluster.api, log_dir=workdir / "pod-logs"),
    ):
        step("starting hearth-operator (kopf)")
        with cluster.operator():
            account = next(d for d in manifests if d["kind"] == "Account")
            step("kubectl apply -f examples/quickstart/")
            cluster.apply(account)
            cluster.wait_state("Account", account["metadata"]["name"], "READY", namespace=None)
            for doc in manifests:
                if doc is not account:
                    cluster.apply(doc)
                    print(f"    {doc['kind'].lower()}.hearth.dev/{doc['metadata']['name']} created")
            namespace = account["metadata"]["name"]
            deployment = next(d for d in manifests if d["kind"] == "Deployment")
            name = deployment["metadata"]["name"]
            started = time.monotonic()
            step(f"waiting for Deployment {name} to be READY (the server loads the model)")
            cluster.wait_state(
                "Deployment", name, "READY", namespace=namespace, timeout=args.timeout
            )
            for dm in cluster.kube.list("DeployedModel", namespace):
                dm_name = dm["metadata"]["name"]
                cluster.wait_state(
                    "DeployedModel", dm_name, "DEPLOYED", namespace=namespace, timeout=args.timeout
                )
            step(f"READY after {time.monotonic() - started:.0f} s")
            for kind in ("Model", "Deployment", "DeployedModel", "Dataset", "FineTuningJob"):
                for obj in cluster.kube.list(kind, namespace):
                    status = obj.get("status") or {}
                    note = f"  ({status['message']})" if status.get("message") else ""
                    print(f"    {kind}/{obj['metadata']['name']}: {status.get('state')}{note}")
            pod = cluster.pods(name, namespace)[0]
            url = f"http://{pod['status']['podIP']}:{settings.server_port}/v1"
            client = OpenAI(base_url=url, api_key=cluster.api_key(name, namespace))
            step(f"OpenAI SDK -> {url}")
            for model in (
                f"accounts/{namespace}/models/{deployment['spec']['baseModel']}",
                f"accounts/{namespace}/models/{lora['metadata']['name']}",
            ):
                reply = client.chat.completions.create(
                    model=model,
                    messages=[{"role": "user", "content": QUESTION}],
                    temperature=0,
                    max_tokens=40,
                )
                print(
                    f"    model={model}\n    > {QUESTION}\n    < {reply.choices[0].message.content}"
                )
            step("stopping")
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    else:
        print(f"workdir kept: {workdir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
