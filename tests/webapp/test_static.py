"""The web app's files and how the gateway serves them, without a browser or a cluster.

These run everywhere (no Chromium needed): the page and its modules are served with the
security headers, every module an app file imports exists, the role table is
``hearth.roles``'s, and the first page stays under the issue's 300 KB.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from hearth.roles import Permission, allows
from hearth_gateway.web import ASSETS_PATH, STATIC, role_table, routes

IMPORT = re.compile(
    r"""(?:^|\n)\s*import\s[^"']*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)"""
)


def client() -> TestClient:
    return TestClient(Starlette(routes=list(routes)))


def imports(path: Path) -> list[Path]:
    """The files ``path`` imports (static and dynamic), resolved."""
    found = []
    for static, dynamic in IMPORT.findall(path.read_text()):
        target = static or dynamic
        assert target.startswith("."), f"{path.name} imports {target!r}: only relative modules"
        found.append((path.parent / target).resolve())
    return found


def test_the_page_and_its_files_are_served_with_a_strict_policy() -> None:
    with client() as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert '<script type="module" src="/ui/app.js">' in page.text
        script = http.get(f"{ASSETS_PATH}/app.js")
        assert script.status_code == 200
        assert script.headers["content-type"].startswith("text/javascript")
        assert script.headers["content-security-policy"] == policy
        assert script.headers["x-content-type-options"] == "nosniff"
        again = http.get(f"{ASSETS_PATH}/app.js", headers={"if-none-match": script.headers["etag"]})
        assert again.status_code == 304
        assert http.get(f"{ASSETS_PATH}/nope.js").status_code == 404
        assert http.get(f"{ASSETS_PATH}/../__init__.py").status_code == 404


def test_role_table_is_hearth_roles() -> None:
    with client() as http:
        served = http.get(f"{ASSETS_PATH}/roles.json").json()
    assert served == role_table()
    for role, granted in served.items():
        for permission in Permission:
            assert (permission.value in granted) == allows(role, permission), (role, permission)


def test_every_imported_module_exists() -> None:
    files = sorted(STATIC.rglob("*.js"))
    assert files
    for path in files:
        for target in imports(path):
            assert target.is_file(), f"{path.relative_to(STATIC)} imports a missing {target}"


def test_first_page_is_under_300_kb() -> None:
    """index.html, the stylesheet, app.js and what it imports statically (pages load later)."""
    html = (STATIC / "index.html").read_text()
    assets = re.findall(r'(?:href|src)="/ui/([^"]+)"', html)
    seen: set[Path] = set()
    todo = [STATIC / name for name in assets]
    while todo:
        path = todo.pop().resolve()
        if path in seen:
            continue
        seen.add(path)
        if path.suffix == ".js":
            static_only = re.findall(
                r"""(?:^|\n)\s*import\s[^"'(]*["']([^"']+)["']""", path.read_text()
            )
            todo += [(path.parent / target) for target in static_only]
    total = len(html.encode()) + sum(p.stat().st_size for p in seen)
    assert {p.name for p in seen} >= {"app.css", "app.js", "api.js", "dom.js"}
    assert total < 300_000, f"first page {total} bytes"


def test_usage_page_is_in_the_nav_and_reads_the_usage_endpoint() -> None:
    app = (STATIC / "app.js").read_text()
    assert re.search(
        r'path: "usage", title: "Usage", load: \(\) => import\("\./pages/usage\.js"\)', app
    )
    page = (STATIC / "pages" / "usage.js").read_text()
    assert "export async function render(ctx, view)" in page
    assert 'ctx.api.acct("usage")' in page
    with client() as http:
        served = http.get(f"{ASSETS_PATH}/pages/usage.js")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/javascript")


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="node is not installed (only this check needs it)")
def test_usage_page_periods_and_csv(tmp_path: Path) -> None:
    """The page's pure helpers, run by Node: UTC-day periods and CSV quoting."""
    script = tmp_path / "check.mjs"
    script.write_text(
        f"""
const m = await import({json.dumps((STATIC / "pages" / "usage.js").as_uri())});
const columns = [{{title: "model", value: (r) => r.a}}, {{title: "n", value: (r) => r.n}}];
console.log(JSON.stringify({{
  month: m.presetDays("this-month", new Date("2026-12-15T10:00:00Z")),
  lastMonth: m.presetDays("last-month", new Date("2026-01-15T10:00:00Z")),
  week: m.presetDays("7-days", new Date("2026-03-02T10:00:00Z")),
  query: m.periodQuery("2026-12-01", "2026-12-31"),
  csv: m.toCsv(columns, [{{a: "=cmd()", n: -3}}, {{a: 'x,"y"', n: 1.5}}]),
}}));
"""
    )
    assert NODE is not None
    ran = subprocess.run([NODE, str(script)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    got = json.loads(ran.stdout)
    assert got["month"] == ["2026-12-01", "2026-12-31"]
    assert got["lastMonth"] == ["2025-12-01", "2025-12-31"]
    assert got["week"] == ["2026-02-24", "2026-03-02"]
    assert got["query"] == {"startTime": "2026-12-01T00:00:00Z", "endTime": "2027-01-01T00:00:00Z"}
    assert got["csv"] == 'model,n\r\n\'=cmd(),-3\r\n"x,""y""",1.5\r\n'


def run_node(tmp_path: Path, script: str) -> Any:
    """Run an ES module with Node; its stdout is one JSON value."""
    path = tmp_path / "check.mjs"
    path.write_text(script)
    assert NODE is not None
    ran = subprocess.run([NODE, str(path)], capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0, ran.stderr
    return json.loads(ran.stdout)


def module(name: str) -> str:
    return json.dumps((STATIC / name).as_uri())


@pytest.mark.skipif(NODE is None, reason="node is not installed (only this check needs it)")
def test_api_errors_are_split_into_the_fields_they_name(tmp_path: Path) -> None:
    """The control plane's 400 messages, as hearth.validation and the translations word them."""
    got = run_node(
        tmp_path,
        f"""
const {{ fieldErrors }} = await import({module("forms.js")});
const known = {{minReplicaCount: "min", maxReplicaCount: "max", baseModel: "base",
  "autoscalingPolicy.scaleUpWindow": "up", "autoscalingPolicy.loadTargets.default": "load",
  "metadata.name": "id", deploymentId: "id"}};
console.log(JSON.stringify([
  "Deployment 'd' is invalid: spec.maxReplicaCount: Invalid value: 1: maxReplicaCount must be "
    + "greater than or equal to minReplicaCount; spec.autoscalingPolicy.scaleUpWindow: Invalid "
    + 'value: "2h": scaleUpWindow must be at most 1h',
  "deployment.baseModel: required, e.g. accounts/<a>/models/<m>",
  "Deployment 'd' is invalid: spec.autoscalingPolicy.loadTargets.default: Invalid value: 2: "
    + "should be less than or equal to 1",
  "deployment.foo: not supported by Hearth; supported fields: a, b",
  "permission denied: role user may not",
].map((message) => fieldErrors(message, known))));
""",
    )
    assert got == [
        {
            "fields": {
                "max": "Invalid value: 1: maxReplicaCount must be greater than or equal to "
                "minReplicaCount",
                "up": 'Invalid value: "2h": scaleUpWindow must be at most 1h',
            },
            "rest": "",
        },
        {"fields": {"base": "required, e.g. accounts/<a>/models/<m>"}, "rest": ""},
        {"fields": {"load": "Invalid value: 2: should be less than or equal to 1"}, "rest": ""},
        {"fields": {}, "rest": "deployment.foo: not supported by Hearth; supported fields: a, b"},
        {"fields": {}, "rest": "permission denied: role user may not"},
    ]


@pytest.mark.skipif(NODE is None, reason="node is not installed (only this check needs it)")
def test_create_requests_leave_out_empty_fields(tmp_path: Path) -> None:
    got = run_node(
        tmp_path,
        f"""
const dep = await import({module("pages/deployment_create.js")});
const models = await import({module("pages/models.js")});
const users = await import({module("pages/users.js")});
const defaults = {{minReplicaCount: 0, autoscalingPolicy: {{scaleUpWindow: "30s"}},
  enableAddons: false}};
const field = (key) => dep.FIELDS.find((f) => f.key === key);
console.log(JSON.stringify({{
  deployment: dep.deploymentBody({{baseModel: "accounts/acme/models/tiny", minReplicaCount: "1",
    maxReplicaCount: " ", "autoscalingPolicy.scaleUpWindow": "2h",
    "autoscalingPolicy.loadTargets.default": "0.5", acceleratorCount: "two",
    enableAddons: true, precision: ""}}),
  hints: ["autoscalingPolicy.scaleUpWindow", "maxReplicaCount", "enableAddons", "precision"]
    .map((key) => dep.hintFor(field(key), defaults)),
  lora: models.modelRequest({{modelId: " m ", kind: "HF_PEFT_ADDON", uri: "pvc://a",
    displayName: "", baseModel: "accounts/acme/models/tiny", rank: "16"}}),
  base: models.modelRequest({{modelId: "b", kind: "HF_BASE_MODEL", uri: "hf://o/r",
    displayName: "B", baseModel: "x", rank: "8"}}),
  files: [["adapter_config.json", "adapter_model.safetensors"], ["adapter_config.json"],
    ["adapter_config.json", "adapter_model.safetensors", "model.bin"]]
    .map(models.adapterFilesProblem),
  user: users.userRequest({{userId: "", email: "a@b.c", displayName: " ", role: "admin"}}),
}}));
""",
    )
    assert got["deployment"] == {
        "baseModel": "accounts/acme/models/tiny",
        "acceleratorCount": "two",  # sent as typed: the API names the field
        "minReplicaCount": 1,
        "autoscalingPolicy": {"scaleUpWindow": "2h", "loadTargets": {"default": 0.5}},
        "enableAddons": True,
    }
    assert got["hints"] == [
        "Default: 30s. A duration, at most 1h.",
        "Default: max(min, 1). At least min.",
        "Default: off. Serve LoRAs of the base model (multi-LoRA).",
        "Default: the model's default. LoRA addons need BF16, FP16, INT8 or INT4.",
    ]
    assert got["lora"] == {
        "modelId": "m",
        "model": {
            "kind": "HF_PEFT_ADDON",
            "source": {"uri": "pvc://a"},
            "peftDetails": {"baseModel": "accounts/acme/models/tiny", "r": 16},
        },
    }
    assert got["base"] == {
        "modelId": "b",
        "model": {"kind": "HF_BASE_MODEL", "source": {"uri": "hf://o/r"}, "displayName": "B"},
    }
    assert got["user"] == {"query": {}, "body": {"role": "admin", "email": "a@b.c"}}
    assert got["files"] == [
        "",
        "Choose adapter_config.json and adapter_model.safetensors; missing: "
        "adapter_model.safetensors.",
        "Only adapter_config.json and adapter_model.safetensors are uploaded; remove model.bin.",
    ]


@pytest.mark.skipif(NODE is None, reason="node is not installed (only this check needs it)")
def test_fine_tuning_eta(tmp_path: Path) -> None:
    """Remaining = (100 - percent) / rate; the rate from what the page saw, else since creation."""
    got = run_node(
        tmp_path,
        f"""
const {{ eta, duration }} = await import({module("pages/finetuning.js")});
const created = Date.parse("2026-01-01T00:00:00Z");
const job = (state, percent) => ({{state, createTime: "2026-01-01T00:00:00Z",
  jobProgress: {{percent}}}});
const seen = {{first: {{t: created + 100_000, percent: 20}},
  last: {{t: created + 130_000, percent: 30}}}};
console.log(JSON.stringify({{
  sinceCreation: eta(job("JOB_STATE_RUNNING", 25), undefined, created + 100_000),
  seenHere: eta(job("JOB_STATE_RUNNING", 30), seen, created + 140_000),
  notMovedHere: eta(job("JOB_STATE_RUNNING", 20), {{first: {{t: 1, percent: 20}}}},
    created + 100_000),
  completed: eta(job("JOB_STATE_COMPLETED", 100), undefined, created + 100_000),
  noProgress: eta(job("JOB_STATE_RUNNING", 0), undefined, created + 100_000),
  text: [42, 185, 7500].map(duration),
}}));
""",
    )
    # 25 % in 100 s: 4 s a percent, 75 % left.
    assert got["sinceCreation"] == {"seconds": 300, "basis": "progress since the job was created"}
    # 10 % in 30 s seen here: 3 s a percent, 70 % left, 10 s of it gone since the last report.
    assert got["seenHere"] == {"seconds": 200, "basis": "progress seen on this page"}
    assert got["notMovedHere"] == {"seconds": 400, "basis": "progress since the job was created"}
    assert got["completed"] is None and got["noProgress"] is None
    assert got["text"] == ["42 s", "3 min 5 s", "2 h 5 min"]


def test_deployment_json_carries_its_conditions() -> None:
    """A Hearth extension: the Deployment CR's conditions, which the detail page shows."""
    from hearth_gateway.control import deployments
    from hearth_gateway.control.common import Directory

    ready = {"type": "Ready", "status": "True", "reason": "ReplicasReady", "message": "1/1"}
    obj = {
        "metadata": {"name": "d", "namespace": "acme"},
        "spec": {"baseModel": "tiny"},
        "status": {"state": "READY", "conditions": [ready]},
    }
    out = deployments.to_json(obj, Directory())
    assert out["conditions"] == [ready]
    assert "conditions" in deployments.DEPLOYMENTS.fields  # readMask may name it
    # A client sending a read Deployment back is not refused for the output-only field.
    created = deployments.create("acme", "e", {"baseModel": "tiny", "conditions": [ready]}, "u")
    assert "conditions" not in created["spec"]
