"""The Usage page in a real browser, over the control plane's usage endpoint and a real
SQLite ledger (no cluster: the page module is rendered with a signed-in context, as the
app does after sign-in; sign-in itself is covered by test_webapp.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import pytest
import uvicorn
from starlette.applications import Starlette

from hearth.ledger import open_ledger
from hearth_gateway.cluster.state import ClusterState
from hearth_gateway.config import GatewayConfig
from hearth_gateway.control import routes as control_routes
from hearth_gateway.control.plane import ControlPlane
from hearth_gateway.gateway import Gateway
from hearth_gateway.web import routes as web_routes
from tests.gateway import factories as f
from tests.gateway.component import free_port
from tests.gateway.test_control_usage import StateOnly, fill
from tests.webapp.conftest import CHROMIUM

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

RENDER = """async ([key, from, to]) => {
  const { Api } = await import('/ui/api.js');
  const usage = await import('/ui/pages/usage.js');
  const view = document.getElementById('main');
  const api = new Api(key, 'acme');
  await usage.render({ api, account: 'acme', every() {}, onLeave() {} }, view);
  document.getElementById('usage-preset').value = 'custom';
  document.getElementById('usage-from').value = from;
  document.getElementById('usage-to').value = to;
}"""


def in_own_loop(make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run a coroutine to the end on a thread of its own: a Playwright sync session left
    open by an earlier test keeps an event loop running on this thread."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(make())).result()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    pytest.importorskip("playwright", reason="playwright is in the dev extra: make install")
    tmp: Path = tmp_path_factory.mktemp("usage-page")
    key_obj, key = f.api_key("acme", "key-ivy", "ivy")
    state = ClusterState.of([f.account("acme"), f.user("acme", "ivy", "inference-user"), key_obj])
    ledger = open_ledger(f"sqlite:///{tmp / 'ledger.sqlite3'}")
    in_own_loop(lambda: fill(ledger))
    gateway = Gateway(GatewayConfig(), cast(Any, StateOnly(state)), ledger, cast(Any, None))
    app = Starlette(routes=[*control_routes, *web_routes])
    app.state.control = ControlPlane(gateway, cast(Any, None), None)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server never started"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", key
    finally:
        server.should_exit = True
        thread.join(30)
        in_own_loop(ledger.close)


def test_usage_tables_chart_and_csv(served: tuple[str, str], browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    url, key = served
    # The package's one Playwright session: a second sync session cannot start while it runs.
    context = browser.new_context(base_url=url, accept_downloads=True)
    try:
        page = context.new_page()
        page.set_default_timeout(30_000)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/")
        expect(page.get_by_label("API key")).to_be_visible()
        page.evaluate(RENDER, [key, "2026-03-01", "2026-03-02"])
        page.get_by_role("button", name="Show").click()
        tokens = page.locator("#usage-tokens tbody tr")
        expect(tokens).to_have_count(2)
        first = page.locator('#usage-tokens tr[data-id="2026-03-01/m"] td')
        expect(first).to_have_text(["2026-03-01", "m", "2", "13", "7"])
        gpu = page.locator("#usage-gpu tbody tr")
        expect(gpu).to_have_count(3)
        expect(page.locator("#usage-summary")).to_contain_text("3 requests, 28 tokens")
        expect(page.locator("#tokens-chart rect.bar")).to_have_count(2)
        expect(page.locator("#gpu-chart rect.bar")).to_have_count(2)
        with page.expect_download() as caught:
            page.locator("#usage-gpu-csv").click()
        download = caught.value
        assert download.suggested_filename == "gpu-seconds-acme-2026-03-01-to-2026-03-02.csv"
        saved = tmp_path / "gpu.csv"
        download.save_as(saved)
        lines = saved.read_text().splitlines()
        assert lines[0] == ("Day (UTC),Deployment,Accelerator,GPU-seconds,Replica-seconds")
        assert lines[1:] == [
            "2026-03-01,accounts/acme/deployments/big,NVIDIA_H100_80GB,10800,5400",
            "2026-03-01,accounts/acme/deployments/cpu,CPU,100,100",
            "2026-03-02,accounts/acme/deployments/big,NVIDIA_H100_80GB,1200,600",
        ]
        # A period with nothing in it says so, and offers no empty CSV.
        page.locator("#usage-from").fill("2026-05-01")
        page.locator("#usage-to").fill("2026-05-03")
        page.get_by_role("button", name="Show").click()
        expect(page.locator("#usage-tokens")).to_contain_text("No requests in this period.")
        expect(page.locator("#usage-tokens-csv")).to_be_disabled()
        assert not errors, errors
    finally:
        context.close()
