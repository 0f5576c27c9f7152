"""A table of manifests checked against the generated CRDs, CEL rules included.

Each invalid case names the field path and the words of the error it must produce, so a
rule that stops firing, or fires for the wrong reason, fails here.
"""

import copy
from pathlib import Path

import pytest

from hearth.validation import Validator, apply_defaults, load_documents, validate

ROOT = Path(__file__).resolve().parents[2]
FILE_VALIDATOR = Validator.from_directory(ROOT / "crds")


def obj(kind, spec, name="x", namespace="acme"):
    metadata = {"name": name}
    if kind != "Account":
        metadata["namespace"] = namespace
    return {"apiVersion": "hearth.dev/v1alpha1", "kind": kind, "metadata": metadata, "spec": spec}


BASE = {"kind": "HF_BASE_MODEL", "source": {"uri": "builtin://smollm2-135m-instruct"}}
ADDON = {
    "kind": "HF_PEFT_ADDON",
    "source": {"uri": "pvc://artifacts/adapters/a"},
    "peftDetails": {"baseModel": "smollm2", "r": 8},
}
DEPLOYMENT = {"baseModel": "smollm2"}
JOB = {"dataset": "chats", "baseModel": "smollm2"}
DATASET = {"format": "CHAT", "source": {"uri": "pvc://artifacts/chats.jsonl"}}
DEPLOYED = {"model": "lora", "deployment": "d1"}
API_KEY = {"user": "alice"}


def with_(base, **changes):
    spec = copy.deepcopy(base)
    spec.update(changes)
    return spec


VALID = [
    ("account-minimal", obj("Account", {}, name="acme")),
    (
        "account-quota",
        obj(
            "Account",
            {"quota": {"gpus": 16, "gpusPerAcceleratorType": {"NVIDIA_H100_80GB": 8}}},
            name="acme",
        ),
    ),
    ("account-63-chars", obj("Account", {}, name="a" * 63)),
    ("user-email", obj("User", {"role": "admin", "email": "a@b.example"})),
    ("user-service-account", obj("User", {"role": "inference-user", "serviceAccount": True})),
    ("api-key-minimal", obj("ApiKey", API_KEY)),
    (
        "api-key-expiring",
        obj("ApiKey", with_(API_KEY, displayName="ci", expireTime="2027-01-31T23:59:59Z")),
    ),
    (
        "api-key-expiring-offset",
        obj("ApiKey", with_(API_KEY, expireTime="2027-01-31T23:59:59.5+02:00")),
    ),
    ("model-base", obj("Model", BASE)),
    ("model-hf", obj("Model", with_(BASE, source={"uri": "hf://HuggingFaceTB/SmolLM2@main"}))),
    ("model-addon", obj("Model", ADDON)),
    (
        "model-addon-full-base-name",
        obj("Model", with_(ADDON, peftDetails={"baseModel": "accounts/hearth/models/s", "r": 64})),
    ),
    ("model-addon-rank-4", obj("Model", with_(ADDON, peftDetails={"baseModel": "b", "r": 4}))),
    ("deployment-minimal", obj("Deployment", DEPLOYMENT)),
    (
        "deployment-cpu-addons",
        obj(
            "Deployment",
            with_(
                DEPLOYMENT,
                acceleratorType="CPU",
                acceleratorCount=0,
                enableAddons=True,
                minReplicaCount=1,
                maxReplicaCount=1,
            ),
        ),
    ),
    (
        "deployment-bf16-addons-gpu",
        obj(
            "Deployment",
            with_(
                DEPLOYMENT,
                acceleratorType="NVIDIA_H100_80GB",
                acceleratorCount=2,
                precision="BF16",
                enableAddons=True,
            ),
        ),
    ),
    (
        "deployment-fp8-without-addons",
        obj("Deployment", with_(DEPLOYMENT, precision="FP8", enableAddons=False)),
    ),
    (
        "deployment-windows",
        obj(
            "Deployment",
            with_(
                DEPLOYMENT,
                autoscalingPolicy={
                    "scaleUpWindow": "1h",
                    "scaleDownWindow": "30m",
                    "scaleToZeroWindow": "5m",
                    "loadTargets": {"default": 0.5, "requests_per_second": 20},
                },
            ),
        ),
    ),
    (
        "deployment-longest-go-duration",
        obj(
            "Deployment",
            with_(DEPLOYMENT, autoscalingPolicy={"scaleToZeroWindow": "2562047h47m16s"}),
        ),
    ),
    ("deployment-max-zero", obj("Deployment", with_(DEPLOYMENT, maxReplicaCount=0))),
    ("deployment-scaled", obj("Deployment", with_(DEPLOYMENT, replicaCount=3))),
    ("deployed-model", obj("DeployedModel", DEPLOYED)),
    (
        "deployed-model-serverless-base",
        obj("DeployedModel", with_(DEPLOYED, serverless=True, modelKind="HF_BASE_MODEL")),
    ),
    ("dataset-uri", obj("Dataset", DATASET)),
    (
        "dataset-configmap",
        obj("Dataset", {"source": {"configMap": {"name": "chats", "key": "train.jsonl"}}}),
    ),
    ("job-base", obj("FineTuningJob", JOB)),
    ("job-warm-start", obj("FineTuningJob", {"dataset": "chats", "warmStartFrom": "lora-v1"})),
    ("job-rank-64", obj("FineTuningJob", with_(JOB, loraRank=64, acceleratorType="CPU"))),
]


@pytest.mark.parametrize(("case", "manifest"), VALID, ids=[c for c, _ in VALID])
def test_valid_manifests(case, manifest):
    result = validate(manifest)
    assert result.errors == (), result.describe()
    # The committed files say the same as the in-memory models.
    assert FILE_VALIDATOR.validate(manifest).errors == ()


# (case, manifest, [(path, words), ...])
INVALID = [
    (
        "account-reserved-kube",
        obj("Account", {}, name="kube-system"),
        [("metadata.name", "may not take a system namespace")],
    ),
    (
        "account-reserved-default",
        obj("Account", {}, name="default"),
        [("metadata.name", "system namespace")],
    ),
    ("account-64-chars", obj("Account", {}, name="a" * 64), [("metadata.name", "1-63 characters")]),
    (
        "account-leading-digit",
        obj("Account", {}, name="1acme"),
        [("metadata.name", "starting with a")],
    ),
    (
        "account-gpu-key",
        obj("Account", {"quota": {"gpusPerAcceleratorType": {"TPU_V5": 4}}}, name="acme"),
        [("spec.quota.gpusPerAcceleratorType", "must be GPU acceleratorType values")],
    ),
    (
        "account-negative-quota",
        obj("Account", {"quota": {"deployments": -1}}, name="acme"),
        [("spec.quota.deployments", "greater than or equal to 0")],
    ),
    (
        "user-bad-role",
        obj("User", {"role": "owner", "email": "a@b.c"}),
        [("spec.role", 'Unsupported value: "owner"')],
    ),
    ("user-no-email", obj("User", {"role": "user"}), [("spec.email", "needs an email")]),
    (
        "user-service-account-with-email",
        obj("User", {"serviceAccount": True, "email": "a@b.c"}),
        [("spec.email", "must not have one")],
    ),
    ("api-key-no-user", obj("ApiKey", {}), [("spec.user", "Required value")]),
    (
        "api-key-user-full-name",
        obj("ApiKey", {"user": "accounts/acme/users/alice"}),
        [("spec.user", "should match")],
    ),
    (
        "api-key-expire-not-a-time",
        obj("ApiKey", with_(API_KEY, expireTime="tomorrow")),
        [("spec.expireTime", 'Invalid value: "tomorrow": should be an RFC 3339 date-time')],
    ),
    (
        "api-key-expire-without-zone",
        obj("ApiKey", with_(API_KEY, expireTime="2027-01-31T23:59:59")),
        [("spec.expireTime", "RFC 3339 date-time")],
    ),
    (
        "api-key-expire-month-13",
        obj("ApiKey", with_(API_KEY, expireTime="2027-13-01T00:00:00Z")),
        [("spec.expireTime", "RFC 3339 date-time")],
    ),
    (
        "api-key-status-field-in-spec",
        obj("ApiKey", with_(API_KEY, keyHash="sha256:00")),
        [("spec.keyHash", 'unknown field "spec.keyHash"')],
    ),
    (
        "api-key-bad-name",
        obj("ApiKey", API_KEY, name="Key_1"),
        [("metadata.name", "ApiKey IDs are 1-63 characters")],
    ),
    (
        "model-addon-without-peft",
        obj("Model", with_(ADDON, peftDetails=None) | {"peftDetails": None}),
        [("spec.peftDetails", "must be of type object")],
    ),
    (
        "model-default-kind-is-addon",
        obj("Model", {"source": {"uri": "hf://org/repo"}}),
        [("spec.peftDetails", "needs peftDetails with baseModel and r")],
    ),
    (
        "model-addon-missing-base",
        obj("Model", with_(ADDON, peftDetails={"r": 8})),
        [("spec.peftDetails.baseModel", "Required value")],
    ),
    (
        "model-rank-too-low",
        obj("Model", with_(ADDON, peftDetails={"baseModel": "b", "r": 3})),
        [("spec.peftDetails.r", "LoRA rank must be between 4 and 64")],
    ),
    (
        "model-rank-too-high",
        obj("Model", with_(ADDON, peftDetails={"baseModel": "b", "r": 128})),
        [("spec.peftDetails.r", "LoRA rank must be between 4 and 64")],
    ),
    (
        "model-base-with-peft",
        obj("Model", with_(BASE, peftDetails={"baseModel": "b", "r": 8})),
        [("spec.peftDetails", "only for HF_PEFT_ADDON")],
    ),
    (
        "model-bad-scheme",
        obj("Model", with_(BASE, source={"uri": "ftp://weights"})),
        [("spec.source.uri", "should match")],
    ),
    ("model-no-source", obj("Model", {"kind": "HF_BASE_MODEL"}), [("spec.source", "Required")]),
    (
        "model-unknown-kind",
        obj("Model", with_(BASE, kind="FLUMINA_BASE_MODEL")),
        [("spec.kind", "Unsupported value")],
    ),
    (
        "model-bad-name",
        obj("Model", BASE, name="My_Model"),
        [("metadata.name", "Model IDs are 1-63 characters")],
    ),
    (
        "deployment-missing-base",
        obj("Deployment", {"minReplicaCount": 1}),
        [("spec.baseModel", "Required value")],
    ),
    (
        "deployment-max-below-min",
        obj("Deployment", with_(DEPLOYMENT, minReplicaCount=3, maxReplicaCount=2)),
        [("spec.maxReplicaCount", "greater than or equal to minReplicaCount")],
    ),
    (
        "deployment-negative-min",
        obj("Deployment", with_(DEPLOYMENT, minReplicaCount=-1)),
        [("spec.minReplicaCount", "greater than or equal to 0")],
    ),
    (
        "deployment-scale-to-zero-too-short",
        obj("Deployment", with_(DEPLOYMENT, autoscalingPolicy={"scaleToZeroWindow": "4m59s"})),
        [("spec.autoscalingPolicy.scaleToZeroWindow", "at least 5m")],
    ),
    (
        "deployment-scale-up-too-long",
        obj("Deployment", with_(DEPLOYMENT, autoscalingPolicy={"scaleUpWindow": "61m"})),
        [("spec.autoscalingPolicy.scaleUpWindow", "at most 1h")],
    ),
    (
        "deployment-window-not-a-duration",
        obj("Deployment", with_(DEPLOYMENT, autoscalingPolicy={"scaleDownWindow": "ten minutes"})),
        [("spec.autoscalingPolicy.scaleDownWindow", "should match")],
    ),
    (
        "deployment-load-target-key",
        obj("Deployment", with_(DEPLOYMENT, autoscalingPolicy={"loadTargets": {"gpu": 0.5}})),
        [("spec.autoscalingPolicy.loadTargets", "loadTargets keys are")],
    ),
    (
        "deployment-load-target-fraction",
        obj("Deployment", with_(DEPLOYMENT, autoscalingPolicy={"loadTargets": {"default": 1.5}})),
        [("spec.autoscalingPolicy.loadTargets", "between 0 and 1")],
    ),
    (
        "deployment-accelerator-enum",
        obj("Deployment", with_(DEPLOYMENT, acceleratorType="TPU_V5")),
        [("spec.acceleratorType", 'Unsupported value: "TPU_V5"')],
    ),
    (
        "deployment-cpu-with-count",
        obj("Deployment", with_(DEPLOYMENT, acceleratorType="CPU", acceleratorCount=1)),
        [("spec.acceleratorCount", "must be 0 for acceleratorType CPU")],
    ),
    (
        "deployment-gpu-with-zero",
        obj("Deployment", with_(DEPLOYMENT, acceleratorType="NVIDIA_L4_24GB", acceleratorCount=0)),
        [("spec.acceleratorCount", "at least 1 for a GPU type")],
    ),
    (
        "deployment-addons-fp8",
        obj("Deployment", with_(DEPLOYMENT, enableAddons=True, precision="FP8")),
        [("spec.enableAddons", "quantized precisions")],
    ),
    (
        "deployment-addons-fp4",
        obj("Deployment", with_(DEPLOYMENT, enableAddons=True, precision="FP4")),
        [("spec.enableAddons", "quantized precisions")],
    ),
    (
        "deployment-lora-cache-smaller-than-slots",
        obj("Deployment", with_(DEPLOYMENT, numPeftDeviceCached=16, numPeftHostCached=8)),
        [("spec.numPeftHostCached", "must be at least numPeftDeviceCached")],
    ),
    (
        "deployment-max-peft-rank",
        obj("Deployment", with_(DEPLOYMENT, maxPeftRank=128)),
        [("spec.maxPeftRank", "less than or equal to 64")],
    ),
    (
        "deployment-unknown-field",
        obj("Deployment", with_(DEPLOYMENT, minReplicas=1)),
        [("spec.minReplicas", 'unknown field "spec.minReplicas"')],
    ),
    (
        "deployment-wrong-type",
        obj("Deployment", with_(DEPLOYMENT, minReplicaCount="one")),
        [("spec.minReplicaCount", "must be of type integer")],
    ),
    (
        "deployment-base-model-name",
        obj("Deployment", with_(DEPLOYMENT, baseModel="accounts/acme/deployments/d")),
        [("spec.baseModel", "should match")],
    ),
    (
        "deployed-model-serverless-addon",
        obj("DeployedModel", with_(DEPLOYED, serverless=True, modelKind="HF_PEFT_ADDON")),
        [("spec.serverless", "never deployed serverless")],
    ),
    (
        "deployed-model-missing-deployment",
        obj("DeployedModel", {"model": "lora"}),
        [("spec.deployment", "Required value")],
    ),
    (
        "dataset-no-source",
        obj("Dataset", {"format": "CHAT", "source": {}}),
        [("spec.source", "exactly one of source.uri and source.configMap")],
    ),
    (
        "dataset-two-sources",
        obj(
            "Dataset",
            {"source": {"uri": "file:///x.jsonl", "configMap": {"name": "c", "key": "k"}}},
        ),
        [("spec.source", "exactly one of")],
    ),
    (
        "dataset-format",
        obj("Dataset", with_(DATASET, format="DPO")),
        [("spec.format", "Unsupported value")],
    ),
    (
        "job-base-and-warm-start",
        obj("FineTuningJob", with_(JOB, warmStartFrom="lora")),
        [("spec", "exactly one of baseModel and warmStartFrom")],
    ),
    (
        "job-neither-base-nor-warm-start",
        obj("FineTuningJob", {"dataset": "chats"}),
        [("spec", "exactly one of baseModel and warmStartFrom")],
    ),
    (
        "job-rank-out-of-range",
        obj("FineTuningJob", with_(JOB, loraRank=2)),
        [("spec.loraRank", "LoRA rank must be between 4 and 64")],
    ),
    (
        "job-epochs-zero",
        obj("FineTuningJob", with_(JOB, epochs=0)),
        [("spec.epochs", "greater than or equal to 1")],
    ),
    (
        "job-learning-rate-zero",
        obj("FineTuningJob", with_(JOB, learningRate=0)),
        [("spec.learningRate", "should be greater than 0")],
    ),
    (
        "job-output-model-name",
        obj("FineTuningJob", with_(JOB, outputModel="accounts/acme/models/x")),
        [("spec.outputModel", "should match")],
    ),
    # Values no rule can evaluate are refused by field and rule, never as an internal error.
    (
        "deployment-window-overflows",
        obj("Deployment", with_(DEPLOYMENT, autoscalingPolicy={"scaleUpWindow": "9" * 20 + "h"})),
        [
            (
                "spec.autoscalingPolicy.scaleUpWindow",
                "duration out of range: Kubernetes durations are at most 2562047h47m16.854775807s,"
                " so rule \"duration(self) <= duration('1h')\" (scaleUpWindow must be at most 1h)",
            )
        ],
    ),
    (
        # cel-python would hold this one; Kubernetes' CEL (Go durations) cannot.
        "deployment-window-just-past-go-durations",
        obj("Deployment", with_(DEPLOYMENT, autoscalingPolicy={"scaleToZeroWindow": "2562048h"})),
        [("spec.autoscalingPolicy.scaleToZeroWindow", "scaleToZeroWindow must be at least 5m")],
    ),
    (
        "name-a-number",
        obj("Model", BASE, name=12345),
        [("metadata.name", "must be of type string")],
    ),
    ("name-null", obj("Model", BASE, name=None), [("metadata.name", "Required value")]),
    ("name-empty", obj("Model", BASE, name=""), [("metadata.name", "Required value")]),
    (
        "namespace-a-list",
        obj("Model", BASE, namespace=["acme"]),
        [("metadata.namespace", 'Invalid value: "array": must be of type string')],
    ),
    (
        "metadata-a-string",
        {**obj("Model", BASE), "metadata": "x"},
        [("metadata", 'Invalid value: "x": must be of type object')],
    ),
    (
        "label-a-number",
        {**obj("Model", BASE), "metadata": {"name": "m", "labels": {"tier": 1}}},
        [("metadata.labels[tier]", "Invalid value: 1: must be of type string")],
    ),
    (
        "integer-beyond-64-bits",
        obj("Deployment", with_(DEPLOYMENT, maxReplicaCount=2**70)),
        [("spec.maxReplicaCount", "must be of type integer (a 64-bit integer)")],
    ),
    (
        "account-name-bad-chars-shows-the-name",
        obj("Account", {}, name="Acme_Corp"),
        [("metadata.name", 'Invalid value: "Acme_Corp": Account IDs are 1-63 characters')],
    ),
    (
        "text-with-a-lone-surrogate",
        obj("User", {"displayName": "\ud800", "email": "a@b.c"}),
        [
            (
                "spec.displayName",
                "must be valid Unicode text (it contains the lone surrogate U+D800)",
            )
        ],
    ),
    (
        "name-with-a-lone-surrogate",
        obj("Model", BASE, name="m\udfff"),
        [("metadata.name", "must be valid Unicode text")],
    ),
    (
        "missing-spec",
        {"apiVersion": "hearth.dev/v1alpha1", "kind": "Model", "metadata": {"name": "m"}},
        [("spec", "Required value")],
    ),
]


@pytest.mark.parametrize(("case", "manifest", "expected"), INVALID, ids=[c for c, *_ in INVALID])
def test_invalid_manifests(case, manifest, expected):
    result = validate(manifest)
    assert not result.ok, f"{case} was accepted"
    rendered = [str(error) for error in result.errors]
    for path, words in expected:
        matching = [e for e in result.errors if (e.path or "<root>") == path and words in e.message]
        assert matching, f"expected {path}: ...{words}... in {rendered}"
    # Nothing else fails: every error is one the case expects.
    assert len(result.errors) == len(expected), rendered
    assert [str(e) for e in FILE_VALIDATOR.validate(manifest).errors] == rendered


# (case, old, new, expected error or None)
UPDATES = [
    ("dataset-unchanged", obj("Dataset", DATASET), obj("Dataset", DATASET), None),
    (
        "dataset-new-source",
        obj("Dataset", DATASET),
        obj("Dataset", with_(DATASET, source={"uri": "pvc://artifacts/other.jsonl"})),
        ("spec", "Dataset spec is immutable"),
    ),
    (
        "dataset-new-format",
        obj("Dataset", DATASET),
        obj("Dataset", with_(DATASET, format="COMPLETION")),
        ("spec", "Dataset spec is immutable"),
    ),
    (
        "dataset-adds-example-count",
        obj("Dataset", DATASET),
        obj("Dataset", with_(DATASET, exampleCount=10)),
        ("spec", "Dataset spec is immutable"),
    ),
    (
        "job-cancel",
        obj("FineTuningJob", JOB),
        obj("FineTuningJob", with_(JOB, cancelled=True)),
        None,
    ),
    (
        "job-uncancel",
        obj("FineTuningJob", with_(JOB, cancelled=True)),
        obj("FineTuningJob", JOB),
        ("spec.cancelled", "cannot be resumed"),
    ),
    (
        "job-change-epochs",
        obj("FineTuningJob", JOB),
        obj("FineTuningJob", with_(JOB, epochs=2)),
        ("spec", "immutable except cancelled"),
    ),
    (
        "job-add-evaluation-dataset",
        obj("FineTuningJob", JOB),
        obj("FineTuningJob", with_(JOB, evaluationDataset="held-out")),
        ("spec", "immutable except cancelled"),
    ),
    (
        "job-explicit-default-is-no-change",
        obj("FineTuningJob", JOB),
        obj("FineTuningJob", with_(JOB, epochs=1, loraRank=8)),
        None,
    ),
    (
        "deployed-model-move",
        obj("DeployedModel", DEPLOYED),
        obj("DeployedModel", with_(DEPLOYED, deployment="d2")),
        ("spec.deployment", "deployment is immutable"),
    ),
    (
        "deployed-model-swap-model",
        obj("DeployedModel", DEPLOYED),
        obj("DeployedModel", with_(DEPLOYED, model="other")),
        ("spec.model", "model is immutable"),
    ),
    (
        "deployed-model-make-default",
        obj("DeployedModel", DEPLOYED),
        obj("DeployedModel", with_(DEPLOYED, default=True)),
        None,
    ),
    (
        "api-key-other-user",
        obj("ApiKey", API_KEY),
        obj("ApiKey", {"user": "bob"}),
        ("spec.user", "user is immutable"),
    ),
    (
        "api-key-new-expiry",
        obj("ApiKey", API_KEY),
        obj("ApiKey", with_(API_KEY, expireTime="2027-01-01T00:00:00Z", displayName="ci")),
        None,
    ),
    (
        "deployment-scale",
        obj("Deployment", DEPLOYMENT),
        obj("Deployment", with_(DEPLOYMENT, replicaCount=2, maxReplicaCount=4)),
        None,
    ),
]


@pytest.mark.parametrize(("case", "old", "new", "expected"), UPDATES, ids=[c for c, *_ in UPDATES])
def test_updates(case, old, new, expected):
    result = validate(new, old)
    if expected is None:
        assert result.ok, result.describe()
        return
    path, words = expected
    assert [(e.path, words in e.message) for e in result.errors] == [(path, True)], (
        result.describe()
    )


def test_an_ill_typed_old_object_is_reported_not_evaluated():
    # Only a hand-written old object (hearthctl validate --old) can be ill-typed.
    old = obj("FineTuningJob", with_(JOB, cancelled="yes", epochs=2**64))
    result = validate(obj("FineTuningJob", JOB), old)
    assert sorted(str(e) for e in result.errors) == [
        'spec.cancelled: Invalid value: "yes": must be of type boolean (in the old object)',
        f"spec.epochs: Invalid value: {2**64}: must be of type integer (a 64-bit integer) "
        "(in the old object)",
    ]


def test_transition_rules_do_not_run_on_create():
    # The same object is fine as a create: immutability needs an old object.
    assert validate(obj("Dataset", with_(DATASET, exampleCount=10))).ok


def test_defaults_are_applied_as_the_api_server_would():
    stored = validate(obj("Deployment", DEPLOYMENT)).defaulted["spec"]
    assert stored["minReplicaCount"] == 0
    assert "maxReplicaCount" not in stored  # max(min, 1) is computed by the operator
    assert stored["autoscalingPolicy"] == {
        "scaleUpWindow": "30s",
        "scaleDownWindow": "10m",
        "scaleToZeroWindow": "1h",
        "loadTargets": {"default": 0.8},
    }
    assert stored["acceleratorType"] == "NVIDIA_A100_80GB"
    assert stored["enableAddons"] is False
    job = validate(obj("FineTuningJob", JOB)).defaulted["spec"]
    assert (job["epochs"], job["loraRank"], job["maxContextLength"], job["batchSize"]) == (
        1,
        8,
        8192,
        32768,
    )
    assert job["earlyStop"] is False
    assert validate(obj("Model", {"source": BASE["source"], "kind": "HF_BASE_MODEL"})).ok


def test_defaulting_leaves_absent_optional_objects_absent():
    schema = {
        "type": "object",
        "properties": {
            "outer": {
                "type": "object",
                "properties": {"inner": {"type": "integer", "default": 3}},
            }
        },
    }
    assert apply_defaults({}, schema) == {}
    assert apply_defaults({"outer": {}}, schema) == {"outer": {"inner": 3}}


def test_unknown_kind_is_reported():
    with pytest.raises(LookupError, match="no CRD for kind 'Gadget'"):
        validate({"apiVersion": "hearth.dev/v1alpha1", "kind": "Gadget", "metadata": {}})


def test_missing_name_is_reported():
    manifest = obj("Model", BASE)
    del manifest["metadata"]["name"]
    assert "metadata.name: Required value" in validate(manifest).describe()


EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))


def test_there_are_examples_of_every_kind():
    kinds = {d["kind"] for p in EXAMPLES for d in load_documents(p.read_text())}
    assert kinds >= {
        "Account",
        "User",
        "ApiKey",
        "Model",
        "Deployment",
        "DeployedModel",
        "Dataset",
        "FineTuningJob",
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_are_valid(path):
    documents = load_documents(path.read_text())
    assert documents
    for document in documents:
        if not document["apiVersion"].startswith("hearth.dev/"):
            continue  # HPA and KEDA objects: tests/operator/test_autoscaling_examples.py
        result = FILE_VALIDATOR.validate(document)
        assert result.ok, f"{path}: {result.describe()}"
