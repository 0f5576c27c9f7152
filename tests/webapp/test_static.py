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
