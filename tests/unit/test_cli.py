"""hearthctl: validate manifests, explain names, print CRDs."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from hearth.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_validate_examples_passes(capsys):
    assert main(["validate", str(ROOT / "examples")]) == 0
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
    assert main(["validate", "--crds", str(ROOT / "crds"), "-q", str(ROOT / "examples")]) == 0


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
    assert [d["kind"] for d in documents] == ["CustomResourceDefinition"] * 7
