"""The Dockerfiles (images/<image>/Dockerfile), the operator's default images and commands, the
chart's defaults and the CI workflow that builds the images agree. No container engine runs
here: this reads the Dockerfiles; .github/workflows/images.yml builds them."""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from hearth_operator.settings import Settings
from tests.chart.helm import CHART, Obj, container, env_of, find, needs_helm, render
from tests.harness.tools import ROOT

IMAGES = ROOT / "images"
NAMES = ["hearth-gateway", "hearth-operator", "hearth-server", "hearth-trainer"]
UID = 10001
BUILD_TOOLS = re.compile(r"\b(apt-get|apk|yum|dnf|gcc|g\+\+|make|build-essential|pip)\b")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for key, args in self.instructions if key == keyword]

    def exec_form(self, keyword: str) -> list[str]:
        [args] = self.all(keyword)
        value = json.loads(args)  # exec form: a JSON array, no shell in between
        assert isinstance(value, list)
        return [str(v) for v in value]

    def env(self) -> dict[str, str]:
        pairs: dict[str, str] = {}
        for args in self.all("ENV"):
            for name, value in re.findall(r"(\w+)=(\S+)", args):
                pairs[name] = value
        return pairs


def stages(path: Path) -> list[Stage]:
    """The stages of a Dockerfile: continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result: list[Stage] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            parts = args.split()
            result.append(Stage(parts[0], parts[2] if len(parts) == 3 else None))
        elif result:
            result[-1].instructions.append((keyword, args))
    return result


def final(name: str) -> Stage:
    return stages(IMAGES / name / "Dockerfile")[-1]


def project() -> dict[str, object]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert isinstance(data, dict)
    return data


def test_one_dockerfile_per_image() -> None:
    assert sorted(p.parent.name for p in IMAGES.glob("*/Dockerfile")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_multi_stage_non_root_no_build_tools_at_run_time(name: str) -> None:
    all_stages = stages(IMAGES / name / "Dockerfile")
    assert len(all_stages) >= 2 and all_stages[0].name == "build"
    run = all_stages[-1]
    assert run.all("USER") == [f"{UID}:{UID}"]  # numeric: runAsNonRoot can verify it
    assert run.base == all_stages[0].base  # the venv is copied to the same Python
    assert [a for a in run.all("COPY") if "--from=build" in a] == [
        "--from=build /opt/hearth /opt/hearth"
    ]
    for command in run.all("RUN"):
        assert not BUILD_TOOLS.search(command), f"{name}: run stage installs tools: {command}"
    build_runs = " ".join(all_stages[0].all("RUN"))
    assert "pip uninstall --yes pip" in build_runs  # not even pip is left in the venv


@pytest.mark.parametrize("name", NAMES)
def test_entry_point_is_the_console_script(name: str) -> None:
    scripts = project()["scripts"]
    assert isinstance(scripts, dict)
    assert final(name).exec_form("ENTRYPOINT") == [name]
    assert name in scripts, f"pyproject.toml [project.scripts] has no {name}"


def test_operator_defaults_match_the_images() -> None:
    """The operator writes these images and commands into pod specs: they must be the images'
    names, the chart's version and the images' entry points."""
    settings = Settings()
    version = project()["version"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version == chart["version"]
    assert settings.server_image == f"ghcr.io/hearth-dev/hearth-server:{version}"
    assert settings.trainer_image == f"ghcr.io/hearth-dev/hearth-trainer:{version}"
    assert list(settings.server_command) == final("hearth-server").exec_form("ENTRYPOINT")
    assert list(settings.trainer_command) == final("hearth-trainer").exec_form("ENTRYPOINT")


@pytest.mark.parametrize("name", ["hearth-server", "hearth-trainer"])
def test_model_cache_is_a_volume_where_the_operator_mounts_it(name: str) -> None:
    run = final(name)
    cache = Settings().model_cache_path
    assert run.all("VOLUME") == [cache]
    assert run.env()["HEARTH_CACHE_DIR"] == cache
    assert run.env()["HF_HOME"].startswith(cache + "/")


def test_server_default_command_serves_on_the_operators_port() -> None:
    cmd = final("hearth-server").exec_form("CMD")
    assert cmd[:2] == ["serve", "builtin://smollm2-135m-instruct"]
    assert cmd[cmd.index("--port") + 1] == str(Settings().server_port)


@needs_helm
def test_chart_runs_the_images_entry_points() -> None:
    objects = render()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for name in ("hearth-operator", "hearth-gateway"):
        deployment: Obj = find(objects, "Deployment", name)
        spec = container(deployment)
        assert spec["image"] == f"ghcr.io/hearth-dev/{name}:{project()['version']}"
        assert "command" not in spec  # the ENTRYPOINT runs; the chart passes arguments
        pod = deployment["spec"]["template"]["spec"]
        assert (
            pod["securityContext"]["runAsUser"] == UID == values["podSecurityContext"]["runAsUser"]
        )
    gateway = find(objects, "Deployment", "hearth-gateway")
    ledger = final("hearth-gateway").env()["HEARTH_GATEWAY_LEDGER_PATH"]
    assert env_of(gateway)["HEARTH_GATEWAY_LEDGER_PATH"] == ledger
    assert final("hearth-gateway").all("VOLUME") == [str(Path(ledger).parent)]


def test_workflow_builds_every_image_and_flavor() -> None:
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "images.yml").read_text())
    job = workflow["jobs"]["build"]
    built = {(m["image"], m["flavor"], m["suffix"]) for m in job["strategy"]["matrix"]["include"]}
    assert built == {
        ("hearth-operator", "cpu", ""),
        ("hearth-gateway", "cpu", ""),
        ("hearth-server", "cpu", ""),
        ("hearth-server", "cuda", "-cuda"),
        ("hearth-trainer", "cpu", ""),
        ("hearth-trainer", "cuda", "-cuda"),
    }
    steps = [s for s in job["steps"] if s.get("uses", "").startswith("docker/build-push-action")]
    for step in steps:
        assert step["with"]["file"] == "images/${{ matrix.image }}/Dockerfile"
        assert step["with"]["build-args"] == "FLAVOR=${{ matrix.flavor }}"


@needs_helm
def test_chart_cuda_flavor_is_the_tag_the_workflow_pushes() -> None:
    objects = render(sets=["images.server.flavor=cuda"])
    config = find(objects, "ConfigMap", "hearth-operator-config")["data"]["settings.yaml"]
    assert yaml.safe_load(config)["server_image"] == (
        f"ghcr.io/hearth-dev/hearth-server:{project()['version']}-cuda"
    )
