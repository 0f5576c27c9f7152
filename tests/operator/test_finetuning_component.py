"""Datasets and fine-tuning through the real operator, with the real hearth-trainer.

The emulated API server and the process kubelet run the validation and training Jobs as
local processes; the trainer trains a LoRA on a tiny random llama made here (seconds), so
this covers the operator's side. tests/e2e/ teaches SmolLM2 a fact end to end.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

from hearth_server.models.tiny import build_tiny_model_dir
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]  # runs hearth-trainer processes

CHATS = [
    {
        "messages": [
            {"role": "user", "content": f"What is code {i}?"},
            {"role": "assistant", "content": f"Code {i} means blue."},
        ]
    }
    for i in range(12)
]


@pytest.fixture
def fine_tuning(cluster: Cluster, tmp_path: Path):
    """The cluster with trainer settings, an account, a tiny base model and datasets."""
    pvc = tmp_path / "pvc"
    (pvc / "artifacts" / "datasets").mkdir(parents=True)
    good = pvc / "artifacts" / "datasets" / "codes.jsonl"
    good.write_text("".join(json.dumps(c) + "\n" for c in CHATS))
    bad = pvc / "artifacts" / "datasets" / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "robot", "content": "hi"}]}\nnot json\n')
    tiny = build_tiny_model_dir(tmp_path / "tiny-llama")
    cluster.settings = cluster.settings.with_overrides(
        trainer_command=(sys.executable, "-m", "hearth_trainer.cli"),
        trainer_env={"KUBECONFIG": str(cluster.api.kubeconfig_path), "HF_HUB_OFFLINE": "1"},
        pvc_mount_root=str(pvc),
        model_cache_path=str(tmp_path / "cache"),
        dataset_mount_root=str(tmp_path / "datasets"),
    )
    with (
        ProcessKubelet(
            cluster.api, log_dir=tmp_path / "pod-logs", volume_roots=[tmp_path / "datasets"]
        ) as kubelet,
        cluster.operator(),
    ):
        cluster.apply("""
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec: {quota: {concurrentFineTuningJobs: 2}}
""")
        cluster.wait_state("Account", "acme", "READY", namespace=None)
        cluster.apply(f"""
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {{name: tiny, namespace: acme}}
spec:
  kind: HF_BASE_MODEL
  source: {{uri: "file://{tiny}"}}
---
apiVersion: hearth.dev/v1alpha1
kind: Dataset
metadata: {{name: codes, namespace: acme}}
spec:
  format: CHAT
  source: {{uri: pvc://artifacts/datasets/codes.jsonl}}
---
apiVersion: hearth.dev/v1alpha1
kind: Dataset
metadata: {{name: bad, namespace: acme}}
spec:
  format: CHAT
  source: {{uri: pvc://artifacts/datasets/bad.jsonl}}
""")
        yield cluster, kubelet, pvc


def job(name: str, **spec) -> dict:
    body = {
        "dataset": "codes",
        "baseModel": "tiny",
        "acceleratorType": "CPU",
        "epochs": 2,
        "learningRate": 0.01,
        "loraRank": 4,
        "maxContextLength": 64,
        "batchSize": 256,
        **spec,
    }
    return {
        "apiVersion": "hearth.dev/v1alpha1",
        "kind": "FineTuningJob",
        "metadata": {"name": name, "namespace": "acme"},
        "spec": body,
    }


def test_datasets_are_validated_in_a_pod(fine_tuning):
    cluster, _, _ = fine_tuning
    good = cluster.wait_state("Dataset", "codes", "READY")
    assert good["status"]["exampleCount"] == 12
    assert good["status"]["averageTurnCount"] == 2
    bad = cluster.wait_state("Dataset", "bad", "FAILED")
    lines = {(e["line"], e["message"].split(":")[0]) for e in bad["status"]["errors"]}
    assert any(line == 1 and "role" in bad["status"]["errors"][0]["message"] for line, _ in lines)
    assert any(e["line"] == 2 for e in bad["status"]["errors"])
    assert "too few examples" in bad["status"]["message"]


def test_configmap_dataset_is_validated_by_the_operator(fine_tuning):
    cluster, _, _ = fine_tuning
    cluster.apply(
        {
            "apiVersion": "hearth.dev/v1alpha1",
            "kind": "Dataset",
            "metadata": {"name": "from-cm", "namespace": "acme"},
            "spec": {"source": {"configMap": {"name": "chats", "key": "train.jsonl"}}},
        }
    )
    waiting = cluster.wait(
        "Dataset",
        "from-cm",
        lambda d: "does not exist" in (d.get("status") or {}).get("message", ""),
    )
    assert waiting["status"]["state"] == "UPLOADING"
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "chats", "namespace": "acme"},
            "data": {"train.jsonl": "".join(json.dumps(c) + "\n" for c in CHATS[:4])},
        }
    )
    ready = cluster.wait_state("Dataset", "from-cm", "READY")
    assert ready["status"]["exampleCount"] == 4
    # Training mounts the ConfigMap into the trainer's pod.
    cluster.apply(job("from-cm-job", dataset="from-cm", epochs=1))
    done = cluster.wait_state("FineTuningJob", "from-cm-job", "JOB_STATE_COMPLETED", timeout=240)
    assert done["status"]["outputModel"] == "accounts/acme/models/from-cm-job"


def test_job_trains_and_publishes_a_loadable_model(fine_tuning):
    cluster, _, pvc = fine_tuning
    cluster.wait_state("Dataset", "codes", "READY")
    cluster.apply(job("tune", outputModel="tiny-codes"))
    done = cluster.wait_state("FineTuningJob", "tune", "JOB_STATE_COMPLETED", timeout=240)
    assert done["status"]["outputModel"] == "accounts/acme/models/tiny-codes"
    progress = done["status"]["jobProgress"]
    assert progress["percent"] == 100 and progress["inputTokens"] > 0
    assert done["status"]["startTime"] <= done["status"]["completedTime"]
    model = cluster.wait_state("Model", "tiny-codes", "READY")
    assert model["spec"]["source"]["uri"] == "pvc://artifacts/fine-tuning/tune/adapter"
    assert model["spec"]["peftDetails"] == {"baseModel": "tiny", "r": 4}
    assert model["status"]["fineTuningJob"] == "accounts/acme/supervisedFineTuningJobs/tune"
    adapter = pvc / "artifacts" / "fine-tuning" / "tune" / "adapter"
    assert (adapter / "adapter_config.json").exists()
    assert (adapter / "adapter_model.safetensors").exists()
    # Deleting the job keeps its model.
    cluster.kube.delete("FineTuningJob", "tune", "acme")
    eventually(lambda: cluster.get("FineTuningJob", "tune") is None, timeout=30)
    assert cluster.get("Model", "tiny-codes") is not None


def test_bad_inputs_fail_without_publishing(fine_tuning):
    cluster, _, _ = fine_tuning
    cluster.wait_state("Dataset", "bad", "FAILED")
    cluster.apply(job("on-bad-data", dataset="bad"))
    failed = cluster.wait_state("FineTuningJob", "on-bad-data", "JOB_STATE_FAILED")
    assert "failed validation" in failed["status"]["message"]
    cluster.apply(job("no-data", dataset="missing"))
    pending = cluster.wait(
        "FineTuningJob",
        "no-data",
        lambda j: "does not exist" in (j.get("status") or {}).get("message", ""),
    )
    assert pending["status"]["state"] == "JOB_STATE_PENDING"
    # A trainer that dies mid-run: its base model's weights are gone from disk.
    cluster.apply("""
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {name: ghost, namespace: acme}
spec:
  kind: HF_BASE_MODEL
  source: {uri: "file:///nonexistent/weights"}
""")
    cluster.wait_state("Model", "ghost", "READY")
    cluster.apply(job("crash", baseModel="ghost"))
    crashed = cluster.wait_state("FineTuningJob", "crash", "JOB_STATE_FAILED", timeout=120)
    assert crashed["status"]["message"]
    assert cluster.get("Model", "crash") is None
    assert [
        p
        for p in cluster.kube.list("Pod", "acme", labels={"hearth.dev/fine-tuning-job": "crash"})
        if p["status"].get("phase") in ("Running", "Pending")
    ] == []


def test_cancel_stops_a_running_job(fine_tuning):
    cluster, _, _ = fine_tuning
    cluster.wait_state("Dataset", "codes", "READY")
    cluster.apply(job("long", epochs=100))
    cluster.wait_state("FineTuningJob", "long", "JOB_STATE_RUNNING", timeout=120)
    cluster.kube.merge_patch("FineTuningJob", "long", "acme", {"spec": {"cancelled": True}})
    cancelled = cluster.wait_state("FineTuningJob", "long", "JOB_STATE_CANCELLED", timeout=120)
    assert cancelled["status"]["conditions"][0]["reason"] == "Cancelled"
    assert cluster.get("Job", "long-train") is None
    assert cluster.get("Model", "long") is None
