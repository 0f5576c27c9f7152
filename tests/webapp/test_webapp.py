"""The console in a real browser: sign in and out, deployments, API keys, playground.

Each test gets a fresh browser context (empty session storage); they share the cluster and
the gateway (``conftest.stack``). Waits are Playwright's auto-waiting assertions, never
sleeps.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.waiting import eventually
from tests.webapp.conftest import Stack, shoot

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

SESSION = "sessionStorage.getItem('hearth.session')"


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def sign_in(page: Any, key: str) -> None:
    page.goto("/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#whoami")).to_be_visible()


def row(page: Any, row_id: str) -> Any:
    return page.locator(f'tr[data-id="{row_id}"]')


def status(stack: Stack, key: str) -> int:
    reply = httpx.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {key}"})
    return reply.status_code


def test_page_is_served_with_its_assets_and_a_strict_policy(stack: Stack) -> None:
    page = httpx.get(f"{stack.url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    script = httpx.get(f"{stack.url}/ui/app.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    roles = httpx.get(f"{stack.url}/ui/roles.json").json()
    assert "create" in roles["contributor"] and "create" not in roles["inference-user"]
    # Unknown paths are still the API's 404, not a page.
    assert httpx.get(f"{stack.url}/v1/nope").status_code == 404


def test_sign_in_names_user_role_and_account_and_sign_out_forgets_the_key(
    stack: Stack, page: Any
) -> None:
    page.goto("/")
    page.get_by_label("API key").fill("hk_not_a_key_at_all")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("HTTP 401")
    assert page.evaluate(SESSION) is None

    sign_in(page, stack.keys["uma"])
    expect(page.locator("#whoami")).to_have_text("uma · user · account acme")
    assert stack.keys["uma"] in page.evaluate(SESSION)
    assert page.evaluate("localStorage.length") == 0 and page.evaluate("document.cookie") == ""
    page.reload()  # the session survives a reload of the tab
    expect(page.locator("#whoami")).to_have_text("uma · user · account acme")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Hearth")).to_be_visible()
    assert page.evaluate(SESSION) is None
    assert page.evaluate("sessionStorage.length") == 0
    page.reload()
    expect(page.get_by_label("API key")).to_have_value("")
    expect(page.locator("#whoami")).to_be_hidden()


def test_deployments_list_and_scale(stack: Stack, page: Any, screenshots: Path) -> None:
    sign_in(page, stack.keys["uma"])
    smol = row(page, "smol")
    expect(smol.locator('[data-col="state"]')).to_have_text("READY")
    shoot(page, screenshots, "deployments")
    expect(smol.locator('[data-col="ready"]')).to_have_text("1")
    expect(smol.locator('[data-col="desired"]')).to_have_text("1")
    expect(smol.locator('[data-col="min"]')).to_have_text("1")
    expect(smol.locator('[data-col="max"]')).to_have_text("2")
    expect(smol).to_contain_text("CPU")

    def scale_to(count: int) -> None:
        smol.get_by_role("button", name="Scale").click()
        page.get_by_role("dialog").get_by_label("Replicas").fill(str(count))
        page.get_by_role("dialog").get_by_role("button", name="Scale").click()
        eventually(
            lambda: (
                (stack.cluster.get("Deployment", "smol") or {})["spec"].get("replicaCount") == count
            ),
            timeout=20,
            message=f"spec.replicaCount {count}",
        )
        # The page refreshes by itself; no reload.
        expect(smol.locator('[data-col="desired"]')).to_have_text(str(count), timeout=60_000)

    scale_to(2)
    expect(smol.locator('[data-col="ready"]')).to_have_text("2", timeout=120_000)
    scale_to(1)

    smol.get_by_role("link", name="smol").click()
    expect(page.get_by_role("heading", name="Deployment smol")).to_be_visible()
    expect(row(page, "pirate-on-smol")).to_contain_text("DEPLOYED")
    shoot(page, screenshots, "deployment")


def test_actions_a_role_may_not_take_are_disabled_with_the_reason(stack: Stack, page: Any) -> None:
    sign_in(page, stack.keys["ivy"])
    smol = row(page, "smol")
    expect(smol.get_by_role("button", name="Scale")).to_be_disabled()
    expect(smol.get_by_role("button", name="Delete")).to_be_disabled()
    expect(smol).to_contain_text("Role inference-user cannot scale resources")
    page.get_by_role("link", name="Models").click()
    expect(row(page, "tiny").get_by_role("button", name="Delete")).to_be_disabled()
    # Its own keys it may manage.
    page.get_by_role("link", name="API keys").click()
    expect(page.get_by_role("button", name="Create key")).to_be_enabled()


def test_a_refusal_the_page_did_not_foresee_is_shown(stack: Stack, page: Any) -> None:
    sign_in(page, stack.keys["rex"])
    smol = row(page, "smol")
    expect(smol.get_by_role("button", name="Scale")).to_be_enabled()
    # An admin demotes rex after it signed in: the page still offers Scale, the API says no.
    stack.cluster.kube.merge_patch("User", "rex", "acme", {"spec": {"role": "inference-user"}})
    try:
        eventually(
            lambda: (
                httpx.post(
                    f"{stack.url}/v1/accounts/acme/deployments/smol:scale",
                    json={"replicaCount": 1},
                    headers={"authorization": f"Bearer {stack.keys['rex']}"},
                ).status_code
                == 403
            ),
            timeout=20,
            message="the gateway sees rex's new role",
        )
        smol.get_by_role("button", name="Scale").click()
        page.get_by_role("dialog").get_by_label("Replicas").fill("1")
        page.get_by_role("dialog").get_by_role("button", name="Scale").click()
        expect(page.locator("#status")).to_contain_text("permission denied")
        expect(page.locator("#whoami")).to_be_visible()  # a 403 does not sign out
    finally:
        stack.cluster.kube.merge_patch("User", "rex", "acme", {"spec": {"role": "user"}})


def test_api_key_is_shown_once_then_revoked(stack: Stack, page: Any, screenshots: Path) -> None:
    sign_in(page, stack.keys["uma"])
    page.get_by_role("link", name="API keys").click()
    page.get_by_label("Display name").fill("ci")
    page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    expect(shown).to_have_value(re.compile(r"^hk_"))
    key = shown.input_value()
    assert status(stack, key) == 200, "the key shown works"
    page.get_by_role("button", name="Copy").click()
    assert page.evaluate("navigator.clipboard.readText()") == key
    new_row = page.locator("tr", has_text="ci")
    expect(new_row).to_contain_text(key[:12])
    page.get_by_role("button", name="Done").click()
    expect(shown).to_have_count(0)
    assert key not in page.content()
    assert key not in (page.evaluate(SESSION) or "")

    page.reload()  # never shown again
    expect(new_row).to_contain_text(key[:12])
    assert key not in page.content()
    shoot(page, screenshots, "api-keys")

    new_row.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(new_row).to_have_count(0)
    eventually(lambda: status(stack, key) == 401, timeout=20, message="the revoked key refused")
    expect(page.locator("#whoami")).to_be_visible()  # another key: the session goes on


def test_revoking_the_session_key_ends_the_session(stack: Stack, page: Any) -> None:
    created = httpx.post(
        f"{stack.url}/v1/accounts/acme/users/uma/apiKeys",
        json={"apiKey": {"displayName": "short-lived"}},
        headers={"authorization": f"Bearer {stack.keys['uma']}"},
        timeout=30,
    ).json()
    key = created["key"]
    sign_in(page, key)
    page.get_by_role("link", name="API keys").click()
    mine = page.locator("tr", has_text="this session")
    expect(mine).to_contain_text("short-lived")
    mine.get_by_role("button", name="Revoke").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_role("heading", name="Sign in to Hearth")).to_be_visible()
    assert page.evaluate(SESSION) is None
    eventually(lambda: status(stack, key) == 401, timeout=20, message="the revoked key refused")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("HTTP 401")


def test_playground_streams_an_answer_and_its_code_runs(
    stack: Stack, page: Any, tmp_path: Path, screenshots: Path
) -> None:
    sign_in(page, stack.keys["uma"])
    page.get_by_role("link", name="Playground").click()
    page.get_by_label("Model").select_option("accounts/acme/models/tiny")
    page.get_by_label("System prompt").fill("You are terse.")
    page.get_by_label("Temperature").fill("0")
    page.get_by_label("Max tokens").fill("8")
    # Count the answer's updates: a streamed answer grows in several steps.
    page.evaluate(
        """() => {
        window.answerUpdates = 0;
        new MutationObserver(() => { window.answerUpdates += 1; }).observe(
            document.getElementById('pg-transcript'),
            {subtree: true, characterData: true, childList: true});
    }"""
    )
    page.get_by_label("Message").fill("hi")
    page.get_by_role("button", name="Send").click()
    answer = page.locator('.msg[data-role="assistant"][data-done="true"] .content')
    expect(answer).to_have_count(1, timeout=60_000)
    assert answer.text_content()
    assert page.evaluate("window.answerUpdates") >= 3, "the answer arrived in pieces"
    shoot(page, screenshots, "playground")

    env = {**os.environ, "HEARTH_API_KEY": stack.keys["uma"]}
    env.pop("SSL_CERT_FILE", None)
    for tab in ("OpenAI SDK (Python)", "Fireworks SDK (Python)"):
        page.get_by_role("tab", name=tab).click()
        code = page.locator("#pg-code").text_content() or ""
        assert '"accounts/acme/models/tiny"' in code and "max_tokens=8" in code
        assert '"You are terse."' in code and "temperature=0" in code
        assert stack.keys["uma"] not in code
        script = tmp_path / "snippet.py"
        script.write_text(code)
        ran = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
        )
        assert ran.returncode == 0, f"{tab}:\n{code}\n{ran.stderr}"
    page.get_by_role("tab", name="curl").click()
    expect(page.locator("#pg-code")).to_contain_text("/inference/v1/chat/completions")


def test_usage_shows_an_inference_just_made(stack: Stack, page: Any, screenshots: Path) -> None:
    answer = httpx.post(
        f"{stack.url}/v1/chat/completions",
        headers={"authorization": f"Bearer {stack.keys['ivy']}"},
        json={
            "model": "accounts/acme/models/tiny",
            "max_tokens": 2,
            "messages": [{"role": "user", "content": "hi"}],
        },
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    sign_in(page, stack.keys["ivy"])
    page.get_by_role("link", name="Usage").click()
    # The ledger write follows the answer; the page refreshes by itself until it is there.
    row = page.locator("#usage-tokens tbody tr", has_text="tiny")
    expect(row.first).to_be_visible(timeout=30_000)
    expect(page.locator("#usage-summary")).to_contain_text("requests")
    shoot(page, screenshots, "usage")


def test_pages_fit_a_phone_screen(stack: Stack, browser: Any) -> None:
    """At 390 px nothing makes the page scroll sideways (wide tables scroll in their box)."""
    context = browser.new_context(base_url=stack.url, viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        sign_in(page, stack.keys["uma"])
        for section in (
            "deployments",
            "models",
            "api-keys",
            "playground",
            "datasets",
            "fine-tuning",
            "usage",
            "users",
        ):
            page.goto(f"/#/{section}")
            expect(page.locator("main h1")).to_be_visible()
            page.locator("main table, main pre, main .muted").first.wait_for()
            # Collapsed create forms (deployments, models) must fit too, once opened.
            page.locator("main details").evaluate_all("all => all.forEach(d => { d.open = true; })")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{section}: the page is {width} px wide"
    finally:
        context.close()
