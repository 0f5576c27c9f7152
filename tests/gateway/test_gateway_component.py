"""The real gateway process in front of the real operator and real hearth-server pods.

One cluster for the module: the emulated API server, kopf running the operator, and the
process kubelet running hearth-server on a tiny random Llama (and a LoRA of it) for
three accounts plus the platform account. The gateway runs as ``hearth-gateway`` would
(``python -m hearth_gateway.cli``), reading everything through its list+watch caches.
Users and API keys are made by the operator from ApiKey objects, as with kubectl.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import httpx
import openai
import pytest

from hearth_operator.constants import user_api_key_secret_name
from hearth_operator.planning.api_key import key_from_secret

# Stack, read_key and gateway_process are shared with the other component tests.
from tests.gateway.component import Stack, gateway_process, read_key
from tests.harness.kubelet import ProcessKubelet
from tests.harness.waiting import eventually
from tests.operator.conftest import Cluster, emulated_cluster, local_process_settings

pytest.importorskip("torch")
from hearth_server.models.tiny import build_tiny_model_dir
from tests.server.conftest import make_adapter

# The gateway's flag for the scale-from-zero tests: long enough for a replica to start.
SCALE_FROM_ZERO = ("--scale-from-zero-timeout", "120")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

NOT_FOUND = "Model not found, inaccessible, and/or not deployed"

ACCOUNTS = """
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: hearth}
spec: {}
---
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: acme}
spec: {}
---
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: beta}
spec: {}
---
apiVersion: hearth.dev/v1alpha1
kind: Account
metadata: {name: gamma}
spec: {quota: {serverlessRequestsPerMinute: 2}}
"""


def user(namespace: str, name: str, role: str) -> str:
    return f"""
apiVersion: hearth.dev/v1alpha1
kind: User
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{role: {role}, email: {name}@{namespace}.example}}
"""


def api_key(namespace: str, name: str, user_id: str, expire: str | None = None) -> str:
    expiry = f", expireTime: '{expire}'" if expire else ""
    return f"""
apiVersion: hearth.dev/v1alpha1
kind: ApiKey
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{user: {user_id}{expiry}}}
"""


def model(namespace: str, name: str, uri: str, addon_of: str | None = None) -> str:
    if addon_of:
        kind = f"kind: HF_PEFT_ADDON, peftDetails: {{baseModel: {addon_of}, r: 8}}"
    else:
        kind = "kind: HF_BASE_MODEL"
    return f"""
apiVersion: hearth.dev/v1alpha1
kind: Model
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{{kind}, source: {{uri: '{uri}'}}}}
"""


def deployment(namespace: str, name: str, extra: str = "") -> str:
    return f"""
apiVersion: hearth.dev/v1alpha1
kind: Deployment
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{baseModel: tiny, acceleratorType: CPU, maxPeftRank: 16{extra}}}
"""


RESOURCES = "---".join(
    [
        user("acme", "ann", "inference-user"),
        user("acme", "dan", "user"),
        user("beta", "bea", "user"),
        user("gamma", "gus", "user"),
        api_key("acme", "ann-key", "ann"),
        api_key("acme", "dan-key", "dan"),
        api_key("acme", "old-key", "ann", expire="2020-01-01T00:00:00Z"),
        api_key("beta", "bea-key", "bea"),
        api_key("gamma", "gus-key", "gus"),
        model("hearth", "tiny", "pvc://artifacts/tiny"),
        model("acme", "tiny", "pvc://artifacts/tiny"),
        model("acme", "pirate", "pvc://artifacts/adapters/pirate", addon_of="tiny"),
        model("beta", "tiny", "pvc://artifacts/tiny"),
        deployment("hearth", "shared", ", serverless: true, minReplicaCount: 1"),
        deployment("acme", "smol", ", minReplicaCount: 1, enableAddons: true"),
        deployment("beta", "bsmol", ", minReplicaCount: 1"),
        """
apiVersion: hearth.dev/v1alpha1
kind: DeployedModel
metadata: {name: pirate-on-smol, namespace: acme}
spec: {model: pirate, deployment: smol}
""",
    ]
)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("gateway")
    artifacts = tmp / "pvc" / "artifacts"
    tiny = build_tiny_model_dir(artifacts / "tiny")
    make_adapter(tiny, artifacts / "adapters" / "pirate", seed=5, rank=8, scale=2.0)
    settings = local_process_settings(tmp / "pvc", resync_seconds=1.0)
    with (
        emulated_cluster(settings, tmp) as cluster,
        ProcessKubelet(cluster.api, log_dir=tmp / "pod-logs", backoff_max=1.0) as kubelet,
        cluster.operator(),
    ):
        cluster.apply(ACCOUNTS)
        for account in ("hearth", "acme", "beta", "gamma"):
            cluster.wait_state("Account", account, "READY", namespace=None)
        cluster.apply(RESOURCES)
        try:
            for namespace, name in (("hearth", "shared"), ("acme", "smol"), ("beta", "bsmol")):
                cluster.wait_state("Deployment", name, "READY", namespace=namespace, timeout=240)
            cluster.wait_state("DeployedModel", "pirate-on-smol", "DEPLOYED", timeout=120)
        except AssertionError:
            print(kubelet.dump_logs())
            raise
        keys = {
            name: read_key(cluster, namespace, f"{name}-key")
            for namespace, name in (
                ("acme", "ann"),
                ("acme", "dan"),
                ("beta", "bea"),
                ("gamma", "gus"),
            )
        }
        keys["old"] = (
            key_from_secret(cluster.get("Secret", user_api_key_secret_name("old-key"), "acme"))
            or ""
        )
        with gateway_process(cluster, tmp, *SCALE_FROM_ZERO) as (url, ledger_path, _):
            yield Stack(cluster, url, keys, ledger_path)


def base_dm(cluster: Cluster, namespace: str, deployment_name: str) -> str:
    found = cluster.kube.list(
        "DeployedModel", namespace, labels={"hearth.dev/deployment": deployment_name}
    )
    names = [d["metadata"]["name"] for d in found if d["spec"]["model"] == "tiny"]
    assert len(names) == 1, found
    return names[0]


def test_every_model_form_reaches_the_right_deployment(stack: Stack) -> None:
    ann, bea = stack.keys["ann"], stack.keys["bea"]
    acme_dm = base_dm(stack.cluster, "acme", "smol")
    cases = [
        (ann, "accounts/acme/models/tiny", "accounts/acme/deployments/smol"),
        (
            ann,
            "accounts/acme/models/tiny#accounts/acme/deployments/smol",
            "accounts/acme/deployments/smol",
        ),
        (ann, "acme/tiny#acme/smol", "accounts/acme/deployments/smol"),
        (ann, f"accounts/acme/deployedModels/{acme_dm}", "accounts/acme/deployments/smol"),
        (ann, "accounts/acme/models/pirate", "accounts/acme/deployments/smol"),
        (bea, "accounts/beta/models/tiny", "accounts/beta/deployments/bsmol"),
        (bea, "beta/tiny#beta/bsmol", "accounts/beta/deployments/bsmol"),
    ]
    for key, name, expected in cases:
        reply = stack.chat(key, name)
        assert reply.status_code == 200, (name, reply.text)
        assert reply.headers["x-hearth-deployment"] == expected, name
        assert reply.json()["model"] == name, "the client's name comes back"
        assert reply.json()["usage"]["completion_tokens"] > 0
    # The Fireworks base path and the completions route.
    reply = stack.post(
        "/inference/v1/completions",
        ann,
        {"model": "accounts/acme/models/tiny", "prompt": "hi", "max_tokens": 3},
    )
    assert reply.status_code == 200 and reply.json()["object"] == "text_completion"


def test_embeddings_pass_through_and_are_metered(stack: Stack) -> None:
    body = {"model": "accounts/acme/models/tiny", "input": ["hi", "there"], "dimensions": 8}
    reply = stack.post("/inference/v1/embeddings", stack.keys["ann"], body)
    assert reply.status_code == 200, reply.text
    data = reply.json()
    assert data["model"] == body["model"], "the client's name comes back"
    assert [len(d["embedding"]) for d in data["data"]] == [8, 8]
    assert data["usage"]["prompt_tokens"] > 0


UNIT = {
    "type": "object",
    "properties": {"unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["unit"],
    "additionalProperties": False,
}


def test_structured_output_passes_through_in_both_dialects(stack: Stack) -> None:
    """A json_schema answer (constrained decoding) through the gateway with the official
    SDKs, whole and streamed: the gateway rewrites the model name and nothing else. (Tool
    calls are not tried here: the default tools prompt is longer than the tiny model's
    256-token context; tests/server/test_tools_sdk.py runs them on SmolLM2.)"""
    model = "accounts/acme/models/tiny"
    ask = [{"role": "user", "content": "weather?"}]
    schema = {"type": "json_schema", "json_schema": {"name": "w", "schema": UNIT, "strict": True}}
    # Any: the SDKs' overloads do not take the request as a dict of keyword arguments.
    client: Any = openai.OpenAI(
        base_url=f"{stack.url}/v1", api_key=stack.keys["ann"], max_retries=0
    )
    common: dict = {"model": model, "messages": ask, "max_tokens": 160, "temperature": 0}
    answer = client.chat.completions.create(**common, response_format=schema)
    assert answer.model == model
    whole = answer.choices[0].message.content or ""
    assert json.loads(whole)["unit"] in ("c", "f"), whole
    streamed = "".join(
        choice.delta.content or ""
        for chunk in client.chat.completions.create(**common, response_format=schema, stream=True)
        for choice in chunk.choices
    )
    assert streamed == whole

    claude: Any = anthropic.Anthropic(base_url=stack.url, api_key=stack.keys["ann"], max_retries=0)
    message = claude.messages.create(
        model=model,
        max_tokens=160,
        messages=ask,
        extra_body={"output_format": {"type": "json_schema", "schema": UNIT}},
    )
    assert message.model == model
    text = "".join(block.text for block in message.content if block.type == "text")
    assert json.loads(text)["unit"] in ("c", "f"), text


def test_other_accounts_models_are_404_like_missing_ones(stack: Stack) -> None:
    bea = stack.keys["bea"]
    for name in (
        "accounts/acme/models/tiny",
        "acme/tiny#acme/smol",
        "accounts/acme/models/pirate",
        "accounts/acme/models/nope",
    ):
        reply = stack.chat(bea, name)
        assert reply.status_code == 404
        assert reply.json()["error"]["message"] == NOT_FOUND


def test_serverless_from_another_account_is_billed_to_the_caller(stack: Stack) -> None:
    from hearth_gateway.ledger import open_ledger

    reply = stack.chat(stack.keys["bea"], "accounts/hearth/models/tiny")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-hearth-deployment"] == "accounts/hearth/deployments/shared"
    ledger = open_ledger(None, environ={"HEARTH_GATEWAY_LEDGER_PATH": str(stack.ledger_path)})

    def billed() -> list:
        import asyncio

        now = datetime.now(UTC)
        totals = asyncio.run(
            ledger.totals("beta", now - timedelta(days=1), now + timedelta(days=1))
        )
        return [
            t
            for t in totals
            if t.model == "accounts/hearth/models/tiny" and t.completion_tokens > 0
        ]

    try:
        assert eventually(billed, timeout=20)
    finally:
        import asyncio

        asyncio.run(ledger.close())


def test_keys_roles_expiry_and_deleted_users(stack: Stack) -> None:
    ann = stack.keys["ann"]
    assert stack.chat(ann, "accounts/acme/models/tiny").status_code == 200  # inference-user
    for bad in ("hk_" + "x" * 43, stack.keys["old"], None):
        reply = (
            stack.chat(bad, "accounts/acme/models/tiny")
            if bad
            else stack.chat("", "accounts/acme/models/tiny")
        )
        assert reply.status_code == 401, reply.text
        assert reply.json()["error"]["type"] == "authentication_error"
    dan = stack.keys["dan"]
    assert stack.chat(dan, "accounts/acme/models/tiny").status_code == 200
    stack.cluster.kube.delete("User", "dan", "acme")
    eventually(lambda: stack.chat(dan, "accounts/acme/models/tiny").status_code == 401, timeout=30)


def test_a_suspended_account_gets_412(stack: Stack) -> None:
    gus = stack.keys["gus"]
    stack.cluster.kube.merge_patch(
        "Account", "gamma", None, {"spec": {"suspendState": "CREDIT_DEPLETED"}}
    )
    try:

        def refused() -> httpx.Response | None:
            reply = stack.chat(gus, "accounts/hearth/models/tiny")
            return reply if reply.status_code == 412 else None

        assert "suspended" in eventually(refused, timeout=20).json()["error"]["message"]
    finally:
        stack.cluster.kube.merge_patch(
            "Account", "gamma", None, {"spec": {"suspendState": "UNSUSPENDED"}}
        )


def test_serverless_requests_per_minute_limit_is_429_with_headers(stack: Stack) -> None:
    gus = stack.keys["gus"]
    eventually(
        lambda: stack.chat(gus, "accounts/hearth/models/tiny").status_code != 412, timeout=20
    )
    replies = [stack.chat(gus, "accounts/hearth/models/tiny") for _ in range(3)]
    limited = [r for r in replies if r.status_code == 429]
    assert limited, [r.status_code for r in replies]
    headers = limited[0].headers
    assert headers["x-ratelimit-limit-requests"] == "2"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert int(headers["retry-after"]) >= 1
    assert limited[0].json()["error"]["type"] == "rate_limit_error"
    # Dedicated deployments have no limit.
    assert stack.chat(stack.keys["ann"], "accounts/acme/models/tiny").status_code == 200


def test_streams_pass_through_with_usage_only_when_asked(stack: Stack) -> None:
    ann = stack.keys["ann"]
    name = "acme/tiny#acme/smol"
    for include_usage in (False, True):
        extra: dict[str, object] = {"stream": True, "max_tokens": 6}
        if include_usage:
            extra["stream_options"] = {"include_usage": True}
        body = {"model": name, "messages": [{"role": "user", "content": "hi"}], **extra}
        events = []
        with httpx.stream(
            "POST",
            f"{stack.url}/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {ann}"},
            timeout=60,
        ) as reply:
            assert reply.status_code == 200
            assert reply.headers["content-type"].startswith("text/event-stream")
            for line in reply.iter_lines():
                if line.startswith("data: "):
                    events.append(line.removeprefix("data: "))
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert {c["model"] for c in chunks} == {name}
        with_usage = [c for c in chunks if c.get("usage")]
        assert bool(with_usage) == include_usage


def test_official_sdks_get_answers(stack: Stack) -> None:
    ann = stack.keys["ann"]
    client = openai.OpenAI(base_url=f"{stack.url}/inference/v1", api_key=ann)
    reply = client.chat.completions.create(
        model="accounts/acme/models/tiny",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=5,
    )
    assert reply.choices[0].message.content is not None and reply.usage is not None
    with pytest.raises(openai.NotFoundError):
        openai.OpenAI(
            base_url=f"{stack.url}/inference/v1", api_key=stack.keys["bea"]
        ).chat.completions.create(
            model="accounts/acme/models/tiny",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=5,
        )
    ids = {m.id for m in client.models.list().data}
    assert {
        "accounts/acme/models/tiny",
        "accounts/acme/models/pirate",
        "accounts/hearth/models/tiny",
    } <= ids
    assert not any(i.startswith("accounts/beta/") for i in ids)

    claude = anthropic.Anthropic(base_url=f"{stack.url}/inference", api_key=ann)
    message = claude.messages.create(
        model="accounts/acme/models/pirate",
        max_tokens=5,
        messages=[{"role": "user", "content": "hi"}],
    )
    assert message.model == "accounts/acme/models/pirate" and message.usage.output_tokens > 0
    with claude.messages.stream(
        model="accounts/hearth/models/tiny",
        max_tokens=5,
        messages=[{"role": "user", "content": "hi"}],
    ) as stream:
        final = stream.get_final_message()
    assert final.usage.output_tokens > 0
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(
            base_url=f"{stack.url}/inference", api_key="hk_" + "y" * 43
        ).messages.create(
            model="accounts/acme/models/tiny",
            max_tokens=5,
            messages=[{"role": "user", "content": "hi"}],
        )


def test_scale_from_zero_holds_the_request_until_a_replica_serves(stack: Stack) -> None:
    stack.cluster.apply(deployment("acme", "lazy", ", minReplicaCount: 0"))
    stack.cluster.wait(
        "Deployment", "lazy", lambda d: (d.get("status") or {}).get("desiredReplicaCount") == 0
    )
    eventually(lambda: base_dm_or_none(stack.cluster, "acme", "lazy"), timeout=30)
    assert not stack.cluster.pods("lazy")
    reply = stack.chat(stack.keys["ann"], "acme/tiny#acme/lazy")
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-hearth-deployment"] == "accounts/acme/deployments/lazy"
    lazy = stack.cluster.get("Deployment", "lazy")
    assert lazy is not None and lazy["spec"]["replicaCount"] == 1, "the gateway scaled it"


def base_dm_or_none(cluster: Cluster, namespace: str, deployment_name: str) -> str | None:
    try:
        return base_dm(cluster, namespace, deployment_name)
    except AssertionError:
        return None
