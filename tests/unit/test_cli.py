"""hearthctl: validate manifests, explain names, print CRDs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hearth.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_examples_passes(capsys):
    # examples/autoscaling holds HPA and KEDA objects too, which are not Hearth's.
    assert main(["validate", "--ignore-unknown-kinds", str(ROOT / "examples")]) == 0
    assert "Deployment/smollm2-cpu is valid" in capsys.readouterr().out


def test_validate_reports_every_problem_and_fails(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: hearth.dev/v1alpha1\n"
        "kind: Deployment\n"
        "metadata: {name: d}\n"
        "spec: {baseModel: m, minReplicaCount: 2, maxReplicaCount: 1}\n"
        "---\n"
        "apiVersion: v1\n"
        "kind: ConfigMap\n"
        "metadata: {name: c}\n"
    )
    assert main(["validate", str(bad)]) == 1
    err = capsys.readouterr().err
    assert 'The Deployment "d" is invalid' in err
    assert "spec.maxReplicaCount" in err
    assert "no CRD for kind 'ConfigMap'" in err
    assert main(["validate", "--ignore-unknown-kinds", "-q", str(bad)]) == 1


def test_validate_against_crd_files(capsys):
    examples = str(ROOT / "examples")
    assert (
        main(["validate", "--crds", str(ROOT / "crds"), "--ignore-unknown-kinds", "-q", examples])
        == 0
    )


def test_unreadable_yaml(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: [unclosed\n")
    assert main(["validate", str(broken)]) == 1
    assert "cannot read manifests" in capsys.readouterr().err


def test_name_explains_the_kubernetes_object(capsys):
    assert main(["name", "accounts/acme/supervisedFineTuningJobs/job-1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["kind"] == "FineTuningJob"
    assert shown["namespace"] == "acme" and shown["objectName"] == "job-1"
    assert main(["name", "hearth/smollm2#acme/d1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["deployment"]["name"] == "accounts/acme/deployments/d1"
    assert main(["name", "accounts/Acme"]) == 2
    assert "account ID 'Acme'" in capsys.readouterr().err


def test_crds_command_prints_applyable_yaml():
    out = subprocess.run(
        [sys.executable, "-m", "hearth.cli", "crds"], capture_output=True, text=True, check=True
    ).stdout
    documents = [d for d in yaml.safe_load_all(out) if d]
    assert [d["kind"] for d in documents] == ["CustomResourceDefinition"] * 8


JOB = """\
apiVersion: hearth.dev/v1alpha1
kind: FineTuningJob
metadata:
  name: j
  namespace: acme
spec:
  dataset: chats
  baseModel: smollm2
"""


def test_duplicate_keys_are_refused_naming_key_and_lines(tmp_path, capsys):
    manifest = tmp_path / "dup.yaml"
    manifest.write_text(
        JOB.replace("  baseModel: smollm2\n", "  baseModel: smollm2\n  dataset: x\n")
    )
    assert main(["validate", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert 'line 9: mapping key "dataset" already defined at line 7' in err


def test_old_checks_the_update_rules(tmp_path, capsys):
    old = tmp_path / "old.yaml"
    # As `kubectl get -o yaml` prints it: server fields and a status.
    old.write_text(
        JOB.replace("  namespace: acme\n", '  namespace: acme\n  resourceVersion: "7"\n')
        + "  cancelled: true\nstatus:\n  state: JOB_STATE_CANCELLED\n"
    )
    resumed = tmp_path / "resumed.yaml"
    resumed.write_text(JOB + "  epochs: 3\n")
    assert main(["validate", str(resumed)]) == 0  # as a create, nothing to compare with
    capsys.readouterr()
    assert main(["validate", "--old", str(old), str(resumed)]) == 1
    err = capsys.readouterr().err
    assert "spec.cancelled: Invalid value: false: a cancelled job cannot be resumed" in err
    assert 'spec: Invalid value: "object": a FineTuningJob\'s spec is immutable' in err

    still_cancelled = tmp_path / "still.yaml"
    still_cancelled.write_text(JOB.replace("  namespace: acme\n", "") + "  cancelled: true\n")
    assert main(["validate", "--old", str(old), str(still_cancelled)]) == 0
    assert f"FineTuningJob/j is valid as an update of {old}" in capsys.readouterr().out


def test_old_from_stdin_and_objects_it_lacks(tmp_path, capsys, monkeypatch):
    import io

    other = tmp_path / "other.yaml"
    other.write_text(JOB.replace("name: j", "name: k"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(JOB))
    assert main(["validate", "--old", "-", str(other)]) == 0
    assert "FineTuningJob/k is valid as a create (not in standard input)" in capsys.readouterr().out


def test_unreadable_old_file_fails(tmp_path, capsys):
    new = tmp_path / "job.yaml"
    new.write_text(JOB)
    assert main(["validate", "--old", str(tmp_path / "missing.yaml"), str(new)]) == 1
    assert "cannot read the old objects" in capsys.readouterr().err
    old = tmp_path / "old.yaml"
    old.write_text(JOB + "  dataset: again\n")
    assert main(["validate", "--old", str(old), str(new)]) == 1
    assert 'mapping key "dataset" already defined' in capsys.readouterr().err


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("metadata:\n  name: j\n", "metadata:\n  name: 12345\n"),
            "metadata.name: Invalid value: 12345: must be of type string",
        ),
        (
            ("metadata:\n  name: j\n", "metadata:\n  name: Job_1\n"),
            'metadata.name: Invalid value: "Job_1": FineTuningJob IDs are 1-63 characters',
        ),
        (
            ("  baseModel: smollm2\n", "  baseModel: smollm2\n  loraRank: 99999999999999999999\n"),
            "spec.loraRank: Invalid value: 99999999999999999999: must be of type integer",
        ),
    ],
    ids=["name-a-number", "name-not-an-id", "integer-beyond-64-bits"],
)
def test_refusals_name_the_field_never_an_internal_error(tmp_path, capsys, change, expected):
    manifest = tmp_path / "job.yaml"
    manifest.write_text(JOB.replace(*change))
    assert main(["validate", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert "Internal error" not in err and "<root>" not in err


def test_duration_beyond_kubernetes_range_names_field_and_rule(tmp_path, capsys):
    example = (ROOT / "examples" / "quickstart" / "20-deployment.yaml").read_text()
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text(
        example.replace("scaleUpWindow: 30s", "scaleUpWindow: 99999999999999999999h")
    )
    assert main(["validate", str(manifest)]) == 1
    err = capsys.readouterr().err
    assert (
        'spec.autoscalingPolicy.scaleUpWindow: Invalid value: "99999999999999999999h": '
        "duration out of range" in err
    )
    assert "rule \"duration(self) <= duration('1h')\" (scaleUpWindow must be at most 1h)" in err
    assert "Internal error" not in err
