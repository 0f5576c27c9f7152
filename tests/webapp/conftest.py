"""The web app's browser tests: Playwright (sync API) driving Debian's Chromium against the
real gateway in front of the real operator and hearth-server pods on the emulated API.

The cluster is built as in ``tests/gateway/test_gateway_component.py`` (whose manifest
helpers are reused): one account, users of three roles with keys from ApiKey objects (as
an installer applies them), the tiny Llama with a LoRA on one deployment. The gateway is
the ``hearth-gateway`` process, serving the app at ``/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import Cluster, emulated_cluster, local_process_settings

CHROMIUM = Path("/usr/bin/chromium")
#: Without the background-networking flags Chromium keeps calling Google, which this
#: machine's closed network refuses; as root it needs --no-sandbox.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]

#: rex is demoted during a test (a role change the page learns of only through a 403).
ROLES = {"ada": "admin", "uma": "user", "ivy": "inference-user", "rex": "user"}
ACCOUNT = "apiVersion: hearth.dev/v1alpha1\nkind: Account\nmetadata: {name: acme}\nspec: {}\n"


@dataclass
class Stack:
    cluster: Cluster
    url: str
    keys: dict[str, str]
    #: The artifact volume (the tiny model, the pirate adapter's files).
    artifacts: Path


def _setup() -> str:
    from tests.gateway.test_gateway_component import api_key, deployment, model, user

    return "---".join(
        [
            *(user("acme", name, role) for name, role in ROLES.items()),
            *(api_key("acme", f"{name}-key", name) for name in ROLES),
            model("acme", "tiny", "pvc://artifacts/tiny"),
            model("acme", "pirate", "pvc://artifacts/adapters/pirate", addon_of="tiny"),
            deployment(
                "acme", "smol", ", minReplicaCount: 1, maxReplicaCount: 2, enableAddons: true"
            ),
            """
apiVersion: hearth.dev/v1alpha1
kind: DeployedModel
metadata: {name: pirate-on-smol, namespace: acme}
spec: {model: pirate, deployment: smol}
""",
        ]
    )


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    pytest.importorskip("playwright", reason="playwright is in the dev extra: make install")
    pytest.importorskip("torch")
    from hearth_server.models.tiny import build_tiny_model_dir
    from tests.server.conftest import make_adapter

    tmp = tmp_path_factory.mktemp("webapp")
    artifacts = tmp / "pvc" / "artifacts"
    tiny = build_tiny_model_dir(artifacts / "tiny")
    make_adapter(tiny, artifacts / "adapters" / "pirate", seed=5, rank=8, scale=2.0)
    settings = local_process_settings(tmp / "pvc", resync_seconds=1.0)
    with emulated_cluster(settings, tmp) as cluster:
        # The trainer reports progress into the job's status through the emulated API.
        cluster.settings = cluster.settings.with_overrides(
            trainer_env={"KUBECONFIG": str(cluster.api.kubeconfig_path), "HF_HUB_OFFLINE": "1"}
        )
        with (
            ProcessKubelet(cluster.api, log_dir=tmp / "pod-logs", backoff_max=1.0) as kubelet,
            cluster.operator(),
        ):
            yield from _serve(cluster, kubelet, tmp, artifacts)


def _serve(
    cluster: Cluster, kubelet: ProcessKubelet, tmp: Path, artifacts: Path
) -> Iterator[Stack]:
    """Accounts, users, keys and the deployment applied; then the gateway process."""
    from tests.gateway.component import free_port, read_key

    cluster.apply(ACCOUNT)
    cluster.wait_state("Account", "acme", "READY", namespace=None)
    cluster.apply(_setup())
    keys = {name: read_key(cluster, "acme", f"{name}-key") for name in ROLES}
    try:
        cluster.wait_state("Deployment", "smol", "READY", timeout=240)
        cluster.wait_state("DeployedModel", "pirate-on-smol", "DEPLOYED", timeout=120)
    except AssertionError:
        print(kubelet.dump_logs()[-5000:])
        raise
    port = free_port()
    log = (tmp / "gateway.log").open("w")
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "hearth_gateway.cli"),
            *("--kubeconfig", str(cluster.api.kubeconfig_path)),
            *("--host", "127.0.0.1", "--port", str(port)),
            *("--upload-dir", str(artifacts)),
        ],
        env={**os.environ, "HEARTH_GATEWAY_LEDGER_PATH": str(tmp / "ledger.sqlite3")},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(
            lambda: process.poll() is None and httpx.get(f"{url}/health").status_code == 200,
            timeout=60,
            message="the gateway never became healthy",
        )
        yield Stack(cluster, url, keys, artifacts)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
        print((tmp / "gateway.log").read_text()[-5000:])


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One Chromium for the package (Playwright's sync API allows one session per thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        yield chromium
        chromium.close()


#: ``make screenshots`` sets it to docs/screenshots: the tests then leave the pictures of the
#: main pages there (docs/webapp.md shows them). Unset, they go to a temporary folder, so
#: the same calls run in every test run.
SCREENSHOTS_ENV = "HEARTH_SCREENSHOTS_DIR"


@pytest.fixture(scope="package")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = os.environ.get(SCREENSHOTS_ENV)
    folder = Path(target) if target else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page: Any, folder: Path, name: str) -> None:
    """A picture of what ``page`` shows now (the viewport), as ``<folder>/<name>.png``."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path))
    assert path.stat().st_size > 1000, f"{path} is empty"


@pytest.fixture
def page(browser: Any, stack: Stack) -> Iterator[Any]:
    """A fresh browser context (empty session storage) on the gateway's page."""
    context = browser.new_context(base_url=stack.url, viewport={"width": 1280, "height": 800})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=stack.url)
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    yield tab
    context.close()
