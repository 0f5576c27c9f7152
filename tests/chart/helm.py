"""Running the real helm binary (from ``make tools``) on charts/hearth, for the chart tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.tools import ROOT, helm_path, missing_reason

CHART = ROOT / "charts" / "hearth"
VALUES = Path(__file__).parent / "values"
RELEASE = "hearth"
NAMESPACE = "hearth-system"
HELM = helm_path()

needs_helm = pytest.mark.skipif(HELM is None, reason=missing_reason("helm"))

Obj = dict[str, Any]


def helm(*args: str, kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run helm; the caller checks the return code (failures are expected in some tests)."""
    assert HELM is not None, missing_reason("helm")
    config = ["--kubeconfig", str(kubeconfig)] if kubeconfig else []
    return subprocess.run(
        [str(HELM), *config, *args], capture_output=True, text=True, timeout=60, check=False
    )


def value_args(values: list[Path] | None = None, sets: list[str] | None = None) -> list[str]:
    args: list[str] = []
    for path in values or []:
        args += ["--values", str(path)]
    for item in sets or []:
        args += ["--set", item]
    return args


def render(
    values: list[Path] | None = None,
    sets: list[str] | None = None,
    *,
    include_crds: bool = False,
) -> list[Obj]:
    """`helm template` the chart into the objects it would create (raises on failure)."""
    extra = ["--include-crds"] if include_crds else []
    done = helm(
        "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
        *extra, *value_args(values, sets),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def find(objects: list[Obj], kind: str, name: str) -> Obj:
    matches = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(matches) == 1, f"{len(matches)} {kind} named {name} in {names(objects)}"
    return matches[0]


def names(objects: list[Obj]) -> list[str]:
    return sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)


def container(deployment: Obj) -> Obj:
    containers: list[Obj] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env_of(deployment: Obj) -> dict[str, Any]:
    """name -> value, or name -> valueFrom for the variables read from elsewhere."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}
