"""The console's datasets and fine-tuning pages in a real browser (shared stack, see
``conftest``): a bad line reported by its number, a good file READY, a job trained on the
tiny model from the page, its progress and result."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.webapp.conftest import Stack, shoot
from tests.webapp.test_webapp import expect, row, sign_in

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def chat_line(i: int) -> str:
    return json.dumps(
        {
            "messages": [
                {"role": "user", "content": f"question {i}"},
                {"role": "assistant", "content": f"answer {i}"},
            ]
        }
    )


GOOD = "\n".join(chat_line(i) for i in range(4)) + "\n"
BAD = "\n".join([chat_line(0), chat_line(1), '{"messages": [', chat_line(3)]) + "\n"


def upload(page: Any, dataset_id: str, text: str) -> None:
    page.get_by_label("Dataset ID").fill(dataset_id)
    page.get_by_label("JSONL file").set_input_files(
        files=[
            {
                "name": f"{dataset_id}.jsonl",
                "mimeType": "application/jsonl",
                "buffer": text.encode(),
            }
        ]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#ds-progress")).to_have_attribute("value", "100")
    expect(page.locator("#ds-step")).to_contain_text("the gateway validates it")


def test_dataset_upload_reports_a_bad_line_by_number(
    stack: Stack, page: Any, screenshots: Path
) -> None:
    sign_in(page, stack.keys["uma"])
    page.get_by_role("link", name="Datasets").click()
    upload(page, "broken", BAD)
    broken = row(page, "broken")
    expect(broken.locator('[data-col="state"]')).to_have_text("FAILED", timeout=120_000)
    expect(broken.locator('[data-line="3"]')).to_contain_text("Line 3: invalid JSON")

    upload(page, "chat", GOOD)
    chat = row(page, "chat")
    expect(chat.locator('[data-col="state"]')).to_have_text("READY", timeout=120_000)
    expect(chat.locator('[data-col="examples"]')).to_have_text("4")
    shoot(page, screenshots, "datasets")


def test_fine_tuning_job_from_the_page_shows_progress_and_result(
    stack: Stack, page: Any, screenshots: Path
) -> None:
    sign_in(page, stack.keys["uma"])
    page.get_by_role("link", name="Datasets").click()
    if not row(page, "chat").count():
        upload(page, "chat2", GOOD)
        dataset = "chat2"
    else:
        dataset = "chat"
    expect(row(page, dataset).locator('[data-col="state"]')).to_have_text("READY", timeout=120_000)

    page.get_by_role("link", name="Fine-tuning").click()
    page.get_by_label("Dataset (READY)").select_option(f"accounts/acme/datasets/{dataset}")
    page.get_by_label("Base model").select_option("accounts/acme/models/tiny")
    page.get_by_label("Output model ID").fill("tuned")
    page.get_by_label("Epochs").fill("3")
    page.get_by_role("button", name="Create job").click()
    expect(page.get_by_role("heading", name=re.compile(r"^Fine-tuning job \S+$"))).to_be_visible()
    state = page.locator("dl.fields dd").first
    expect(state).to_have_text("COMPLETED", timeout=300_000)
    job_id = page.url.rsplit("/", 1)[-1]
    job = httpx.get(
        f"{stack.url}/v1/accounts/acme/supervisedFineTuningJobs/{job_id}",
        headers={"authorization": f"Bearer {stack.keys['uma']}"},
    ).json()
    assert job["jobProgress"]["percent"] == 100, job
    expect(page.locator("dl.fields progress")).to_have_js_property("value", 100)
    expect(page.locator("dl.fields")).to_contain_text("accounts/acme/models/tuned")
    # The curve is drawn from the reports the page saw (a short job may give it one).
    expect(page.locator("#loss-chart")).to_be_visible()
    expect(page.locator("dl.fields")).to_contain_text("Train loss")
    shoot(page, screenshots, "fine-tuning-job")

    page.get_by_role("link", name="Models").click()
    expect(row(page, "tuned")).to_contain_text("LoRA addon")
    expect(row(page, "tuned")).to_contain_text("tiny")

    # One click on the finished job loads its LoRA onto a deployment of its base model
    # (smol takes addons) and opens the playground on it.
    page.goto(f"/#/fine-tuning/{job_id}")
    page.get_by_role("button", name="Deploy").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Deployment").select_option("accounts/acme/deployments/smol")
    dialog.get_by_role("button", name="Deploy").click()
    expect(page.get_by_role("link", name="Playground")).to_have_attribute("aria-current", "page")
    chosen = page.get_by_label("Model").input_value()
    assert chosen.startswith("accounts/acme/deployedModels/"), chosen
    loaded = httpx.get(
        f"{stack.url}/v1/{chosen}", headers={"authorization": f"Bearer {stack.keys['uma']}"}
    ).json()
    assert loaded["model"] == "accounts/acme/models/tuned", loaded
    assert loaded["deployment"] == "accounts/acme/deployments/smol", loaded
    stack.cluster.wait_state(
        "DeployedModel", chosen.rsplit("/", 1)[-1], "DEPLOYED", namespace="acme", timeout=120
    )
    page.get_by_label("Max tokens").fill("4")
    page.get_by_label("Message").fill("hi")
    page.get_by_role("button", name="Send").click()
    answer = page.locator('.msg[data-role="assistant"][data-done="true"] .content')
    expect(answer).to_have_count(1, timeout=60_000)
    assert page.locator("#pg-transcript .error").count() == 0


def test_loss_chart_draws_train_and_eval_curves(stack: Stack, page: Any) -> None:
    sign_in(page, stack.keys["uma"])
    drawn = page.evaluate(
        """async () => {
        const {lossChart} = await import('/ui/pages/finetuning.js');
        const chart = lossChart([
            {step: 1, train: 2.0, eval: 2.1},
            {step: 5, train: 1.0},
            {step: 9, train: 0.5, eval: 0.9},
        ]);
        return {
            train: chart.querySelector('polyline.train').getAttribute('points').split(' ').length,
            eval: chart.querySelector('polyline.eval').getAttribute('points').split(' ').length,
            label: chart.getAttribute('aria-label'),
            one: lossChart([{step: 1, train: 2.0}]).tagName,
        };
    }"""
    )
    assert drawn["train"] == 3 and drawn["eval"] == 2
    assert drawn["label"] == "Training loss from 2.000 to 0.500 over steps 1 to 9"
    assert drawn["one"] == "P", "one point is not a curve: the page says so instead"
