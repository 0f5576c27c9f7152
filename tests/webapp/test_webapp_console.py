"""The console's create forms, users and roles, and paging in a real browser (shared stack,
see ``conftest``): a deployment created from the page with the server's defaults shown, its
validation errors next to their fields, READY with its conditions and events; a LoRA model
from a URI; users added and re-roled by an admin and refused to a user; lists paged with
"More"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness.waiting import eventually
from tests.webapp.conftest import Stack, shoot
from tests.webapp.test_webapp import expect, row, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def api(stack: Stack, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(
        method,
        f"{stack.url}/v1/accounts/acme/{path}",
        headers={"authorization": f"Bearer {stack.keys[who]}"},
        timeout=30,
        **kwargs,
    )


def test_create_deployment_shows_defaults_and_errors_then_becomes_ready(
    stack: Stack, page: Any
) -> None:
    sign_in(page, stack.keys["uma"])
    page.get_by_text("Create a deployment").click()
    # The defaults are the server's: a dry run (validateOnly) of a deployment of one model.
    expect(page.locator("#deployment-create")).to_have_attribute("data-defaults", "server")
    up = page.get_by_label("Scale-up window")
    expect(up).to_have_value("30s")
    expect(page.locator("#dep-autoscalingPolicy-scaleUpWindow-hint")).to_contain_text(
        "Default: 30s."
    )
    expect(page.get_by_label("Scale-down window")).to_have_value("10m")
    expect(page.get_by_label("Scale-to-zero window")).to_have_value("1h")
    expect(page.get_by_label("Load target")).to_have_value("0.8")
    expect(page.get_by_label("Min replicas")).to_have_value("0")
    expect(page.get_by_label("Max replicas")).to_have_value("")
    expect(page.locator("#dep-maxReplicaCount-hint")).to_contain_text("Default: max(min, 1).")
    expect(page.get_by_label("Accelerator type")).to_have_value("NVIDIA_A100_80GB")
    expect(page.get_by_label("Enable LoRA addons")).not_to_be_checked()

    page.get_by_label("Deployment ID").fill("web-dep")
    page.get_by_label("Base model").select_option("accounts/acme/models/tiny")
    page.get_by_label("Accelerator type").select_option("CPU")
    page.get_by_label("Min replicas").fill("2")
    page.get_by_label("Max replicas").fill("1")
    up.fill("2h")
    page.get_by_role("button", name="Create deployment").click()
    # Each error of the API's 400 is shown under the field it names.
    expect(page.locator("#dep-maxReplicaCount-error")).to_contain_text(
        "must be greater than or equal to minReplicaCount"
    )
    expect(page.locator("#dep-autoscalingPolicy-scaleUpWindow-error")).to_contain_text("at most 1h")
    expect(page.get_by_label("Max replicas")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Max replicas")).to_be_focused()
    assert stack.cluster.get("Deployment", "web-dep", "acme") is None

    page.get_by_label("Min replicas").fill("1")
    up.fill("30s")
    page.get_by_role("button", name="Create deployment").click()
    expect(page.get_by_role("heading", name="Deployment web-dep")).to_be_visible()
    spec = (stack.cluster.get("Deployment", "web-dep", "acme") or {})["spec"]
    assert spec["acceleratorType"] == "CPU" and spec["minReplicaCount"] == 1
    assert spec["maxReplicaCount"] == 1 and spec["autoscalingPolicy"]["scaleUpWindow"] == "30s"
    try:
        state = page.locator("dl.fields dd").first
        expect(state).to_have_text("READY", timeout=240_000)
        ready = row(page, "condition-Ready")
        expect(ready.locator('[data-col="status"]')).to_have_text("True")
        # The operator's event on the way to READY, read through :events.
        became_ready = row(page, "event-Ready")
        expect(became_ready.locator('[data-col="type"]')).to_have_text("Normal", timeout=60_000)
    finally:
        page.get_by_role("button", name="Delete").click()
        page.get_by_role("dialog").get_by_role("button", name="Delete").click()
        expect(page.get_by_role("heading", name="Deployments")).to_be_visible()
        eventually(
            lambda: stack.cluster.get("Deployment", "web-dep", "acme") is None,
            timeout=120,
            message="web-dep deleted",
        )


def test_model_from_a_uri_with_its_errors_next_to_the_field(
    stack: Stack, page: Any, screenshots: Path
) -> None:
    sign_in(page, stack.keys["uma"])
    page.get_by_role("link", name="Models").click()
    page.get_by_text("Add a model from a URI").click()
    page.get_by_label("Model ID", exact=True).fill("from-ftp")
    page.get_by_label("Weights URI").fill("ftp://example/weights")
    page.get_by_role("button", name="Create model").click()
    expect(page.locator("#model-uri-error")).to_contain_text("ftp://example/weights")
    expect(page.get_by_label("Weights URI")).to_be_focused()

    page.get_by_label("Model ID", exact=True).fill("pirate-copy")
    page.get_by_label("Kind").select_option("HF_PEFT_ADDON")
    page.get_by_label("Weights URI").fill("pvc://artifacts/adapters/pirate")
    page.get_by_label("Base model of the LoRA").select_option("accounts/acme/models/tiny")
    page.get_by_label("LoRA rank").fill("8")
    page.get_by_role("button", name="Create model").click()
    copy = row(page, "pirate-copy")
    expect(copy).to_contain_text("LoRA addon")
    expect(copy).to_contain_text("tiny")
    spec = (stack.cluster.get("Model", "pirate-copy", "acme") or {})["spec"]
    assert spec["source"]["uri"] == "pvc://artifacts/adapters/pirate"
    assert spec["peftDetails"]["r"] == 8
    assert stack.cluster.get("Model", "from-ftp", "acme") is None
    shoot(page, screenshots, "models")


def test_admin_adds_a_user_and_changes_its_role(stack: Stack, page: Any) -> None:
    sign_in(page, stack.keys["ada"])
    page.get_by_role("link", name="Users").click()
    page.get_by_label("User ID").fill("Not_An_ID")
    page.get_by_label("Email").fill("web@example.com")
    page.get_by_role("button", name="Add user").click()
    expect(page.locator("#user-new-id-error")).to_contain_text("Not_An_ID")

    page.get_by_label("User ID").fill("")
    page.get_by_label("Role", exact=True).select_option("contributor")
    page.get_by_role("button", name="Add user").click()
    # With no user ID the API derives it from the email.
    added = row(page, "web")
    expect(added).to_contain_text("web@example.com")
    expect(added.get_by_label("Role of web")).to_have_value("contributor")

    added.get_by_label("Role of web").select_option("inference-user")
    added.get_by_role("button", name="Change role").click()
    page.get_by_role("dialog").get_by_role("button", name="Change role").click()
    eventually(
        lambda: api(stack, "ada", "GET", "users/web").json().get("role") == "inference-user",
        timeout=20,
        message="web is an inference-user",
    )
    expect(row(page, "web").get_by_label("Role of web")).to_have_value("inference-user")


def test_a_user_sees_roles_but_may_not_change_them(stack: Stack, page: Any) -> None:
    sign_in(page, stack.keys["uma"])
    page.get_by_role("link", name="Users").click()
    expect(row(page, "ada").locator('[data-col="role"]')).to_have_text("admin")
    expect(page.get_by_role("button", name="Add user")).to_be_disabled()
    expect(page.locator("#user-create")).to_contain_text(
        "Role user cannot add users or change roles (needs admin)."
    )
    expect(page.get_by_role("button", name="Change role")).to_have_count(0)


def test_long_lists_page_through_the_api(stack: Stack, page: Any) -> None:
    for name in ("page-a", "page-b", "page-c"):
        made = api(
            stack,
            "uma",
            "POST",
            "models",
            json={
                "modelId": name,
                "model": {"kind": "HF_BASE_MODEL", "source": {"uri": "pvc://artifacts/tiny"}},
            },
        )
        assert made.status_code in (200, 409), made.text
    listed = api(stack, "uma", "GET", "models", params={"pageSize": 200}).json()["models"]
    total = len(listed)
    assert total >= 5

    sign_in(page, stack.keys["uma"])
    page.goto("/#/models?pageSize=2")
    rows = page.locator("main tbody tr")
    expect(rows).to_have_count(2)
    more = page.get_by_role("button", name="More")
    shown = 2
    while shown < total:
        more.click()
        shown = min(shown + 2, total)
        expect(rows).to_have_count(shown)
        if shown < total:
            expect(more).to_be_focused()  # the keyboard stays on the control
    expect(more).to_have_count(0)
    names = [m["name"].split("/")[-1] for m in listed]
    ids = [r.get_attribute("data-id") for r in rows.all()]
    assert ids == names, "every model once, in the API's order"


def test_a_peft_adapter_uploaded_from_the_browser_becomes_a_model(stack: Stack, page: Any) -> None:
    adapter = stack.artifacts / "adapters" / "pirate"  # PEFT's save_pretrained output, r 8
    files = [str(adapter / "adapter_config.json"), str(adapter / "adapter_model.safetensors")]
    sign_in(page, stack.keys["uma"])
    page.get_by_role("link", name="Models").click()
    page.get_by_text("Upload a PEFT LoRA adapter").click()
    page.get_by_label("LoRA model ID").fill("parrot-up")
    page.get_by_label("Base model of the adapter").select_option("accounts/acme/models/tiny")

    # One file only: refused in the page, before anything is created.
    page.get_by_label("Adapter files").set_input_files(files[:1])
    page.get_by_role("button", name="Upload adapter").click()
    expect(page.locator("#up-files-error")).to_contain_text("missing: adapter_model.safetensors")
    assert api(stack, "uma", "GET", "models/parrot-up").status_code == 404

    # The wrong rank: the files go up, and the gateway's check names the file and the rank.
    page.get_by_label("Adapter rank").fill("16")
    page.get_by_label("Adapter files").set_input_files(files)
    page.get_by_role("button", name="Upload adapter").click()
    expect(page.locator("#adapter-upload .error")).to_contain_text(
        "adapter_config.json: r is 8 but model.peftDetails.r is 16"
    )
    assert api(stack, "uma", "GET", "models/parrot-up").json()["state"] == "UPLOADING"

    # Corrected, the same ID is uploaded again and becomes a LoRA addon of tiny.
    page.get_by_label("Adapter rank").fill("8")
    page.get_by_role("button", name="Upload adapter").click()
    expect(page.locator("#up-step")).to_contain_text("created from the uploaded adapter")
    expect(page.locator("#up-progress")).to_have_js_property("value", 100)
    uploaded = row(page, "parrot-up")
    expect(uploaded).to_contain_text("LoRA addon")
    expect(uploaded).to_contain_text("tiny")
    spec = (stack.cluster.get("Model", "parrot-up", "acme") or {})["spec"]
    assert spec["source"]["uri"] == "pvc://artifacts/uploads/acme/models/parrot-up"
    assert spec["peftDetails"]["r"] == 8
    on_volume = stack.artifacts / "uploads" / "acme" / "models" / "parrot-up"
    assert (on_volume / "adapter_model.safetensors").read_bytes() == Path(files[1]).read_bytes()
