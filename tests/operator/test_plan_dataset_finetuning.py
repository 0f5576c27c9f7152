"""Dataset and FineTuningJob planning."""

from datetime import UTC, datetime

import pytest

from hearth.api import FineTuningJobSpec
from hearth_operator.planning.common import Ref
from hearth_operator.planning.dataset import plan_dataset, report_from_log
from hearth_operator.planning.finetuning_job import (
    FineTuningInputs,
    log_source,
    plan_finetuning_job,
    running_elsewhere,
    tuned_base_ref,
)
from hearth_operator.settings import Settings
from tests.operator.factories import addon_model, base_model, stored, with_status

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SETTINGS = Settings()
REPORT_OK = {
    "valid": True,
    "exampleCount": 12,
    "estimatedTokenCount": 900,
    "averageTurnCount": 2.5,
    "errorCount": 0,
    "errors": [],
}
REPORT_BAD = {
    "valid": False,
    "exampleCount": 2,
    "estimatedTokenCount": 40,
    "averageTurnCount": 2,
    "errorCount": 2,
    "errors": [
        {"line": 3, "message": "unknown role 'robot'"},
        {"line": None, "message": "too few examples: 2"},
    ],
}


def dataset(**source):
    return stored(
        "Dataset",
        "chats",
        {"format": "CHAT", "source": source or {"uri": "pvc://artifacts/chats.jsonl"}},
    )


def test_uri_dataset_is_validated_in_a_job():
    plan = plan_dataset(dataset(), settings=SETTINGS, now=NOW)
    assert plan.status["state"] == "UPLOADING"
    assert plan.job is not None
    container = plan.job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == [
        "validate",
        "pvc://artifacts/chats.jsonl",
        "--format",
        "CHAT",
        "--json",
    ]
    assert container["volumeMounts"][0]["mountPath"] == "/mnt/pvc/artifacts"
    assert plan.job["metadata"]["ownerReferences"][0]["kind"] == "Dataset"
    running = {"status": {"active": 1}}
    assert plan_dataset(dataset(), settings=SETTINGS, now=NOW, job=running).job is None


def test_finished_validation_reads_the_report_from_the_log():
    done = {"status": {"conditions": [{"type": "Complete", "status": "True"}], "succeeded": 1}}
    log = "loading...\n" + __import__("json").dumps(REPORT_OK, indent=2) + "\nbye\n"
    plan = plan_dataset(dataset(), settings=SETTINGS, now=NOW, job=done, job_log=log)
    assert plan.status["state"] == "READY"
    assert (plan.status["exampleCount"], plan.status["estimatedTokenCount"]) == (12, 900)
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    bad_log = __import__("json").dumps(REPORT_BAD)
    plan = plan_dataset(dataset(), settings=SETTINGS, now=NOW, job=failed, job_log=bad_log)
    assert plan.status["state"] == "FAILED"
    assert plan.status["errors"] == [
        {"line": 3, "message": "unknown role 'robot'"},
        {"line": 0, "message": "too few examples: 2"},
    ]
    assert (
        plan.status["message"] == "2 problem(s): line 3: unknown role 'robot'; too few examples: 2"
    )
    crashed = plan_dataset(
        dataset(),
        settings=SETTINGS,
        now=NOW,
        job=failed,
        job_log="Traceback...\nDatasetSourceError: cannot reach s3",
    )
    assert crashed.status["state"] == "FAILED"
    assert "cannot reach s3" in crashed.status["message"]


def test_configmap_dataset_waits_for_its_configmap():
    ds = dataset(configMap={"name": "chats", "key": "train.jsonl"})
    missing = plan_dataset(ds, settings=SETTINGS, now=NOW)
    assert missing.status["state"] == "UPLOADING" and missing.job is None
    assert "ConfigMap chats does not exist" in missing.status["message"]
    wrong_key = plan_dataset(ds, settings=SETTINGS, now=NOW, config_map={"data": {"x": ""}})
    assert "has no key 'train.jsonl'" in wrong_key.status["message"]
    ok = plan_dataset(
        ds,
        settings=SETTINGS,
        now=NOW,
        config_map={"data": {"train.jsonl": "…"}},
        config_map_report=REPORT_OK,
    )
    assert ok.status["state"] == "READY"


def test_declared_example_count_must_match():
    ds = stored("Dataset", "chats", {"source": {"uri": "file:///x"}, "exampleCount": 10})
    done = {"status": {"succeeded": 1}}
    plan = plan_dataset(
        ds, settings=SETTINGS, now=NOW, job=done, job_log=__import__("json").dumps(REPORT_OK)
    )
    assert plan.status["state"] == "FAILED"
    assert "spec.exampleCount is 10 but the file has 12" in plan.status["message"]


def test_report_from_log_ignores_noise():
    assert report_from_log("no json here") is None
    assert report_from_log('{"other": 1}\n') is None


def ready_dataset():
    return with_status(dataset(), state="READY")


def ftj(**spec):
    return stored(
        "FineTuningJob",
        "tune",
        {"dataset": "chats", "baseModel": "smollm2", "acceleratorType": "CPU", **spec},
    )


def inputs(job=None, **extra):
    values = {"dataset": ready_dataset(), "base_model": base_model()} | extra
    return FineTuningInputs(job=job or ftj(), settings=SETTINGS, now=NOW, **values)


def test_valid_job_starts_the_trainer():
    plan = plan_finetuning_job(inputs(ftj(epochs=3, loraRank=16, earlyStop=True)))
    assert plan.status["state"] == "JOB_STATE_PENDING"
    assert plan.create_workload is not None
    pod = plan.create_workload["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    assert args[:3] == ["train", "--base-model", "builtin://smollm2-135m-instruct"]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--dataset"] == "pvc://artifacts/chats.jsonl"
    assert flags["--output"] == "/mnt/pvc/artifacts/fine-tuning/tune"
    assert (flags["--epochs"], flags["--lora-rank"]) == ("3", "16")
    assert "--early-stop" in args
    env = {e["name"]: e["value"] for e in pod["containers"][0]["env"]}
    assert (env["HEARTH_JOB_NAMESPACE"], env["HEARTH_JOB_NAME"]) == ("acme", "tune")
    assert pod["restartPolicy"] == "Never"


@pytest.mark.parametrize(
    ("extra", "state", "reason"),
    [
        ({"dataset": None}, "JOB_STATE_PENDING", "DatasetNotFound"),
        ({"dataset": dataset()}, "JOB_STATE_PENDING", "DatasetNotReady"),
        (
            {"dataset": with_status(dataset(), state="FAILED", message="line 3: bad")},
            "JOB_STATE_FAILED",
            "DatasetInvalid",
        ),
        ({"base_model": None}, "JOB_STATE_PENDING", "ModelNotFound"),
        ({"base_model": base_model(ready=False)}, "JOB_STATE_PENDING", "ModelNotReady"),
        ({"base_model": base_model(supportsLora=False)}, "JOB_STATE_FAILED", "NotTunable"),
        ({"output_model": addon_model("tune")}, "JOB_STATE_FAILED", "OutputModelExists"),
        (
            {
                "account": stored(
                    "Account", "acme", {"quota": {"concurrentFineTuningJobs": 1}}, namespace=None
                ),
                "running_elsewhere": 1,
            },
            "JOB_STATE_PENDING",
            "QuotaExceeded",
        ),
    ],
)
def test_checks_before_starting(extra, state, reason):
    plan = plan_finetuning_job(inputs(**extra))
    assert plan.create_workload is None
    assert plan.status["state"] == state
    assert plan.status["conditions"][0]["reason"] == reason


def test_warm_start_trains_on_the_addons_base():
    job = stored(
        "FineTuningJob",
        "tune",
        {"dataset": "chats", "warmStartFrom": "lora", "acceleratorType": "CPU"},
    )
    plan = plan_finetuning_job(inputs(job, warm_start=addon_model("lora")))
    assert plan.create_workload is not None
    args = plan.create_workload["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--warm-start-from") + 1] == "pvc://artifacts/adapters/lora"


def test_the_base_to_fetch_is_the_spec_s_or_the_warm_start_s():
    spec = FineTuningJobSpec.model_validate(ftj()["spec"])
    assert tuned_base_ref(spec, "acme", None) == Ref("acme", "smollm2")
    warm_spec = FineTuningJobSpec.model_validate(
        {"dataset": "chats", "warmStartFrom": "accounts/shared/models/lora"}
    )
    assert tuned_base_ref(warm_spec, "acme", None) is None  # not fetched yet
    # The addon's base is resolved in the addon's account, not the job's.
    shared = addon_model("lora", base="smollm2")
    shared["metadata"]["namespace"] = "shared"
    assert tuned_base_ref(warm_spec, "acme", shared) == Ref("shared", "smollm2")
    # A warm start that is no addon has no base to fetch (check() then says NotAnAddon).
    assert tuned_base_ref(warm_spec, "acme", base_model("lora")) is None


def trainer_job(job, finished=None):
    status = {"conditions": [{"type": finished, "status": "True"}]} if finished else {"active": 1}
    labels = {"hearth.dev/fine-tuning-job": job}
    return {"metadata": {"name": f"{job}-train", "labels": labels}, "status": status}


def test_running_elsewhere_counts_other_unfinished_trainer_jobs():
    jobs = [
        trainer_job("tune"),  # this job's own trainer
        trainer_job("a"),
        trainer_job("b", finished="Complete"),
        trainer_job("c", finished="Failed"),
        trainer_job("d"),
        {"metadata": {"name": "unrelated"}, "status": {"active": 1}},
    ]
    assert running_elsewhere(jobs, "tune") == 2


def test_the_result_is_read_from_the_newest_pod_once_the_job_finished():
    def trainer_pod(name, created):
        return {"metadata": {"name": name, "creationTimestamp": created}}

    pods = [trainer_pod("t-2", "2026-11-25T11:00:00Z"), trainer_pod("t-1", "2026-11-25T10:00:00Z")]
    assert log_source(trainer_job("tune"), pods) is None  # still running
    assert log_source(None, pods) is None
    assert log_source(trainer_job("tune", finished="Failed"), pods) == "t-2"
    assert log_source(trainer_job("tune", finished="Complete"), []) is None


def workload(condition=None):
    status = (
        {
            "conditions": [
                {
                    "type": condition,
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ]
        }
        if condition
        else {"active": 1}
    )
    return {"metadata": {"name": "tune-train"}, "status": status}


def test_progress_through_completion():
    running_pod = {
        "metadata": {"name": "p"},
        "status": {"phase": "Running", "startTime": "2026-11-25T11:00:00Z"},
    }
    plan = plan_finetuning_job(inputs(workload=workload(), pods=[running_pod]))
    assert plan.status["state"] == "JOB_STATE_RUNNING"
    assert plan.status["startTime"] == "2026-11-25T11:00:00Z"
    result = '{"status": "completed", "stoppedEarly": false, "truncatedExampleCount": 2}'
    writing = plan_finetuning_job(inputs(workload=workload("Complete"), log=result))
    assert writing.status["state"] == "JOB_STATE_WRITING_RESULTS"
    model = writing.create_model
    assert model is not None
    assert model["spec"] == {
        "kind": "HF_PEFT_ADDON",
        "displayName": "Fine-tuned by tune",
        "source": {"uri": "pvc://artifacts/fine-tuning/tune/adapter"},
        "peftDetails": {"baseModel": "smollm2", "r": 8},
    }
    assert model["metadata"]["labels"]["hearth.dev/fine-tuning-job"] == "tune"
    assert "ownerReferences" not in model["metadata"]  # the model outlives the job
    made = with_status(stored("Model", "tune", model["spec"]), state="UPLOADING")
    made["metadata"]["labels"] = model["metadata"]["labels"]
    done = plan_finetuning_job(inputs(workload=workload("Complete"), log=result, output_model=made))
    assert done.status["state"] == "JOB_STATE_COMPLETED"
    assert done.status["outputModel"] == "accounts/acme/models/tune"
    assert done.status["truncatedExampleCount"] == 2
    # A finished job stays as it ended.
    again = plan_finetuning_job(inputs(with_status(ftj(), **done.status), workload=None))
    assert again.status["state"] == "JOB_STATE_COMPLETED" and again.create_workload is None


def test_failed_trainer_is_reported_and_publishes_nothing():
    log = "step 3 loss 2.1\nRuntimeError: out of memory in forward\n"
    plan = plan_finetuning_job(inputs(workload=workload("Failed"), log=log))
    assert plan.status["state"] == "JOB_STATE_FAILED"
    assert "RuntimeError: out of memory" in plan.status["message"]
    assert plan.create_model is None
    silent = plan_finetuning_job(inputs(workload=workload("Failed"), log=""))
    assert "backoff limit" in silent.status["message"]


def test_cancel_stops_the_trainer_then_reports_cancelled():
    plan = plan_finetuning_job(inputs(ftj(cancelled=True), workload=workload()))
    assert plan.delete_workload and plan.status["state"] == "JOB_STATE_CANCELLING"
    plan = plan_finetuning_job(inputs(ftj(cancelled=True), workload=None))
    assert plan.status["state"] == "JOB_STATE_CANCELLED" and plan.create_workload is None
