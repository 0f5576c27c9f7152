"""Model uploads, downloads, ``datasets:upload`` and ``supervisedFineTuningJobs:resume``
with the official ``fireworks-ai`` SDK against the real gateway, operator, trainer and
hearth-server pods on the emulated API (the stack of ``test_control_sdk``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import fireworks
import httpx
import openai
import pytest

from hearth_operator.constants import LABEL_FINE_TUNING_JOB
from tests.gateway.test_control_sdk import CHAT, CPU, Stack, refused, stack, state_of
from tests.harness.waiting import eventually

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
__all__ = ["stack"]  # the module-scoped fixture, one stack for this module

ADAPTER_FILES = ["adapter_config.json", "adapter_model.safetensors"]


def greedy(stack: Stack, model: str) -> str:
    client = openai.OpenAI(base_url=f"{stack.url}/inference/v1", api_key=stack.keys["ivy"])
    stack.clients.append(client)
    answer = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": "hello there"}],
        max_tokens=8,
        temperature=0,
    )
    return str(answer.choices[0].message.content)


def hearthctl(stack: Stack, who: str, *args: str) -> subprocess.CompletedProcess[str]:
    """hearthctl through its entry point, its settings from the environment only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTH_", "FIREWORKS_"))}
    env.update(
        HEARTH_CONFIG=os.devnull,
        HEARTH_BASE_URL=stack.url,
        HEARTH_ACCOUNT_ID="acme",
        HEARTH_API_KEY=stack.keys[who],
    )
    return subprocess.run(
        [sys.executable, "-m", "hearth.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def trainer_pid(stack: Stack, job: str) -> int:
    """The trainer's process, from the ID the process kubelet reports (``process://<pid>``)."""
    pods = stack.cluster.kube.list("Pod", "acme", labels={LABEL_FINE_TUNING_JOB: job})
    started = [p for p in pods if (p.get("status") or {}).get("containerStatuses")]
    (status,) = started[-1]["status"]["containerStatuses"]
    return int(status["containerID"].removeprefix("process://"))


def sigterm_pending(pid: int) -> bool:
    """Whether SIGTERM waits in the (stopped) process's pending signals (Linux /proc)."""
    bit = 1 << (signal.SIGTERM - 1)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("ShdPnd:", "SigPnd:")) and int(line.split()[1], 16) & bit:
            return True
    return False


def test_uploaded_adapter_serves_as_the_same_files_on_the_volume_do(
    stack: Stack, tmp_path: Path
) -> None:
    uma = stack.sdk("uma")
    source = stack.artifacts / "adapters" / "pirate"
    peft: Any = {"base_model": "accounts/acme/models/tiny", "r": 8}
    uri = "pvc://artifacts/adapters/pirate"
    # The reference: the same adapter files, named where they lie.
    uma.models.create(
        model_id="pirate",
        model=cast(Any, {"kind": "HF_PEFT_ADDON", "peft_details": peft, "source": {"uri": uri}}),
    )
    created = uma.models.create(
        model_id="parrot", model={"kind": "HF_PEFT_ADDON", "peft_details": peft}
    )
    assert created.state == "UPLOADING"
    sizes = {name: str((source / name).stat().st_size) for name in ADAPTER_FILES}
    endpoint = uma.models.get_upload_endpoint("parrot", filename_to_size=sizes)
    urls = endpoint.filename_to_signed_urls or {}
    assert sorted(urls) == ADAPTER_FILES
    with httpx.Client() as http:  # a signed URL takes no API key
        for name, url in urls.items():
            http.put(url, content=(source / name).read_bytes()).raise_for_status()
    assert uma.models.validate_upload("parrot").warnings == []
    ready = state_of(lambda: uma.models.get("parrot"), "READY")
    assert ready.to_dict()["source"] == {"uri": "pvc://artifacts/uploads/acme/models/parrot"}

    uma.deployments.create(
        base_model="accounts/acme/models/tiny",
        deployment_id="sail",
        min_replica_count=1,
        max_replica_count=1,
        enable_addons=True,
        extra_body={**CPU, "maxPeftRank": 16},
    )
    state_of(lambda: uma.deployments.get("sail"), "READY", timeout=240)
    loaded = []
    for model in ("parrot", "pirate"):
        lora = uma.lora.load(
            model=f"accounts/acme/models/{model}", deployment="accounts/acme/deployments/sail"
        )
        assert lora.name
        loaded.append(lora.name.split("/")[-1])
    for name in loaded:
        state_of(lambda name=name: uma.lora.get(name), "DEPLOYED", timeout=120)
    on = "#accounts/acme/deployments/sail"
    parrot = greedy(stack, f"accounts/acme/models/parrot{on}")
    assert parrot == greedy(stack, f"accounts/acme/models/pirate{on}")
    assert parrot != greedy(stack, f"accounts/acme/models/tiny{on}"), "the adapter changes it"

    # The uploaded files come back through signed download URLs.
    downloads = uma.models.get_download_endpoint("parrot").filename_to_signed_urls or {}
    with httpx.Client() as http:
        for name in ADAPTER_FILES:
            assert http.get(downloads[name]).content == (source / name).read_bytes()
    # ... and through hearthctl (as an inference-user: every role may read).
    result = hearthctl(stack, "ivy", "download", "model", "parrot", str(tmp_path / "got"))
    assert result.returncode == 0, result.stderr
    for name in ADAPTER_FILES:
        assert (tmp_path / "got" / name).read_bytes() == (source / name).read_bytes()
    missing = hearthctl(stack, "ivy", "download", "model", "nope", str(tmp_path / "none"))
    assert missing.returncode != 0 and "not found" in missing.stderr
    for name in loaded:
        uma.lora.unload(name)
    uma.deployments.delete("sail")


def test_dataset_upload_then_a_cancelled_job_resumes_from_its_checkpoint(stack: Stack) -> None:
    uma, cody = stack.sdk("uma"), stack.sdk("cody")
    rows = "\n".join([CHAT] * 10) + "\n"  # 40 examples: 80 steps of one example
    uma.datasets.create(dataset_id="notes", dataset={"user_uploaded": {}})
    uploaded = uma.datasets.upload("notes", file=("notes.jsonl", rows.encode()))
    assert uploaded.filename == "notes.jsonl" and uploaded.bytes == len(rows.encode())
    ready = state_of(lambda: uma.datasets.get("notes"), "READY", timeout=120)
    assert ready.example_count == "40"

    jobs = uma.supervised_fine_tuning_jobs
    jobs.create(
        dataset="accounts/acme/datasets/notes",
        base_model="accounts/acme/models/tiny",
        output_model="noted",
        supervised_fine_tuning_job_id="learn",
        epochs=2,
        extra_body={**CPU, "batchSizeSamples": 1, "evalAutoCarveout": False},
    )
    with pytest.raises(fireworks.APIStatusError, match="only a failed or cancelled job") as early:
        jobs.resume("learn", body={})
    assert early.value.status_code == 412

    # The trainer appends a line to metrics.jsonl per optimizer step. Once it has taken
    # one, it is frozen until the cancel's SIGTERM is waiting for it, so that the run
    # cannot finish first however fast the machine is; then it handles the SIGTERM
    # (a checkpoint after the step it is in) and exits.
    output = stack.artifacts / "fine-tuning" / "learn"
    metrics = output / "metrics.jsonl"
    eventually(
        lambda: metrics.is_file() and metrics.stat().st_size > 0,
        timeout=240,
        message="the trainer never took a step",
    )
    pid = trainer_pid(stack, "learn")
    os.kill(pid, signal.SIGSTOP)
    try:
        jobs.cancel("learn", body={})
        eventually(lambda: sigterm_pending(pid), timeout=120, message="no SIGTERM came")
    finally:
        os.kill(pid, signal.SIGCONT)
    cancelled = state_of(lambda: jobs.get("learn"), "JOB_STATE_CANCELLED", timeout=120)
    assert not (output / "result.json").exists(), "cancelled before the run finished"
    eventually(lambda: (output / "checkpoints" / "latest").is_file(), timeout=60)
    with pytest.raises(fireworks.PermissionDeniedError, match="only resources it created"):
        cody.supervised_fine_tuning_jobs.resume("learn", body={})

    resumed = jobs.resume("learn", body={})
    assert resumed.state in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING", "JOB_STATE_UNSPECIFIED")
    assert resumed.to_dict()["createdBy"] == cancelled.to_dict()["createdBy"]
    done = state_of(lambda: jobs.get("learn"), "JOB_STATE_COMPLETED", timeout=600)
    assert done.output_model == "accounts/acme/models/noted"
    result = json.loads((output / "result.json").read_text())
    assert result["resumed"] is True, "the second run continued from the checkpoint"

    # The fine-tuned adapter downloads from the artifact volume.
    state_of(lambda: uma.models.get("noted"), "READY")
    urls = uma.models.get_download_endpoint("noted").filename_to_signed_urls or {}
    assert set(ADAPTER_FILES) <= set(urls)
    with httpx.Client() as http:
        config = http.get(urls["adapter_config.json"]).json()
    assert config["r"] == 8
    with pytest.raises(fireworks.APIStatusError, match="only a failed or cancelled job"):
        jobs.resume("learn", body={})
    jobs.delete("learn")
    eventually(lambda: refused(lambda: jobs.get("learn"), fireworks.NotFoundError), timeout=30)
