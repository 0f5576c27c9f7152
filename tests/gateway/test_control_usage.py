"""GET /v1/accounts/{account}/usage: the control-plane routes in an ASGI app over a real
SQLite ledger, the key checked against a cluster state as the gateway does it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from hearth.ledger import AcceleratorSeconds, SqlLedger, UsageRecord, open_ledger
from hearth_gateway.cluster.state import ClusterState
from hearth_gateway.config import GatewayConfig
from hearth_gateway.control import routes as control_routes
from hearth_gateway.control.errors import ApiError
from hearth_gateway.control.plane import ControlPlane
from hearth_gateway.control.usage import month_of, period
from hearth_gateway.gateway import Gateway
from tests.gateway import factories as f

DAY1 = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
DAY2 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)
MARCH = {"startTime": "2026-03-01T00:00:00Z", "endTime": "2026-04-01T00:00:00Z"}


@dataclass
class StateOnly:
    """What the control plane's key check reads of the gateway's cache."""

    state: ClusterState


@dataclass
class Client:
    http: httpx.AsyncClient
    keys: dict[str, str]  # role -> plaintext key of acme; "other" -> a key of globex

    async def usage(self, who: str, account: str = "acme", **query: str) -> httpx.Response:
        return await self.http.get(
            f"/v1/accounts/{account}/usage",
            params=query,
            headers={"authorization": f"Bearer {self.keys[who]}"},
        )


def record(request_id: str, time: datetime, model: str, prompt: int, completion: int, **kw: Any):
    values: dict[str, Any] = {
        "request_id": request_id,
        "time": time,
        "account": "acme",
        "user": "ann",
        "key_id": "k",
        "model": model,
        "deployment": "accounts/acme/deployments/d",
        "serverless": False,
        "prompt_tokens": prompt,
        "cached_tokens": 0,
        "completion_tokens": completion,
        "status": 200,
        "latency_ms": 5.0,
    }
    values.update(kw)
    return UsageRecord(**values)


def replica(pod_uid: str, hour: datetime, seconds: float, **kw: Any) -> AcceleratorSeconds:
    values: dict[str, Any] = {
        "pod_uid": pod_uid,
        "pod": f"pod-{pod_uid}",
        "hour": hour,
        "account": "acme",
        "deployment": "accounts/acme/deployments/big",
        "accelerator_type": "NVIDIA_H100_80GB",
        "accelerator_count": 2,
        "replica_seconds": seconds,
    }
    values.update(kw)
    return AcceleratorSeconds(**values)


async def fill(ledger: SqlLedger) -> None:
    await ledger.record(record("r1", DAY1, "accounts/acme/models/m", 10, 5))
    await ledger.record(record("r2", DAY1 + timedelta(minutes=1), "accounts/acme/models/m", 3, 2))
    await ledger.record(record("r3", DAY2, "accounts/acme/models/m", 7, 1))
    await ledger.record(record("r4", DAY2, "accounts/globex/models/x", 100, 100, account="globex"))
    await ledger.record(record("old", DAY1 - timedelta(days=40), "accounts/acme/models/m", 1, 1))
    h = DAY1.replace(minute=0)
    await ledger.record_accelerator_seconds(
        [
            replica("p1", h, 1800.0),
            replica("p1", h + timedelta(hours=1), 3600.0),  # 23:00, still day 1
            replica("p1", h + timedelta(hours=2), 600.0),  # day 2
            replica(
                "c1",
                h,
                100.0,
                deployment="accounts/acme/deployments/cpu",
                accelerator_type="CPU",
                accelerator_count=0,
            ),
            replica("g1", h, 3600.0, account="globex", deployment="accounts/globex/deployments/g"),
        ]
    )


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[Client]:
    keys: dict[str, str] = {}
    objects = [f.account("acme"), f.account("globex"), f.user("globex", "gus", role="admin")]
    for role in ("admin", "user", "contributor", "inference-user"):
        key_obj, keys[role] = f.api_key("acme", f"key-{role}", role)
        objects += [f.user("acme", role, role=role), key_obj]
    key_obj, keys["other"] = f.api_key("globex", "key-gus", "gus")
    objects.append(key_obj)
    ledger = open_ledger(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    await fill(ledger)
    gateway = Gateway(
        GatewayConfig(), cast(Any, StateOnly(ClusterState.of(objects))), ledger, cast(Any, None)
    )
    app = Starlette(routes=list(control_routes))
    app.state.control = ControlPlane(gateway, cast(Any, None), None)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
            yield Client(http, keys)
    finally:
        await ledger.close()


@pytest.mark.asyncio
async def test_tokens_per_model_and_day_and_gpu_seconds_per_deployment_and_day(
    client: Client,
) -> None:
    answer = await client.usage("admin", **MARCH)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["startTime"], body["endTime"]) == (MARCH["startTime"], MARCH["endTime"])
    assert body["tokens"] == [
        {
            "model": "accounts/acme/models/m",
            "day": "2026-03-01",
            "requests": 2,
            "promptTokens": 13,
            "completionTokens": 7,
        },
        {
            "model": "accounts/acme/models/m",
            "day": "2026-03-02",
            "requests": 1,
            "promptTokens": 7,
            "completionTokens": 1,
        },
    ]
    assert body["acceleratorSeconds"] == [
        {
            "deployment": "accounts/acme/deployments/big",
            "acceleratorType": "NVIDIA_H100_80GB",
            "day": "2026-03-01",
            "gpuSeconds": 10800.0,
            "replicaSeconds": 5400.0,
        },
        {
            "deployment": "accounts/acme/deployments/cpu",
            "acceleratorType": "CPU",
            "day": "2026-03-01",
            "gpuSeconds": 100.0,
            "replicaSeconds": 100.0,
        },
        {
            "deployment": "accounts/acme/deployments/big",
            "acceleratorType": "NVIDIA_H100_80GB",
            "day": "2026-03-02",
            "gpuSeconds": 1200.0,
            "replicaSeconds": 600.0,
        },
    ]


@pytest.mark.asyncio
async def test_the_period_bounds_what_is_summed(client: Client) -> None:
    body = (
        await client.usage(
            "user", startTime="2026-03-02T00:00:00+00:00", endTime="2026-03-02T10:00:00+01:00"
        )
    ).json()
    # 10:00+01:00 is 09:00Z: DAY2's 09:15 record is outside, the 00:00 hour inside.
    assert body["tokens"] == []
    assert [row["gpuSeconds"] for row in body["acceleratorSeconds"]] == [1200.0]


@pytest.mark.asyncio
async def test_every_role_of_the_account_reads_it_no_other_account_does(client: Client) -> None:
    for role in ("admin", "user", "contributor", "inference-user"):
        answer = await client.usage(role, **MARCH)
        assert answer.status_code == 200, (role, answer.text)
        assert len(answer.json()["tokens"]) == 2
    refused = await client.usage("other", **MARCH)
    assert refused.status_code == 403
    assert "may not act in account 'acme'" in refused.json()["message"]
    own = (await client.usage("other", account="globex", **MARCH)).json()
    assert [row["promptTokens"] for row in own["tokens"]] == [100]
    assert client.keys and (await client.http.get("/v1/accounts/acme/usage")).status_code == 401


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("query", "named"),
    [
        ({"startTime": "yesterday"}, "startTime"),
        ({"endTime": "2026-03-01T00:00:00"}, "endTime"),  # no offset
        ({"startTime": "2026-03-02T00:00:00Z", "endTime": "2026-03-01T00:00:00Z"}, "endTime"),
    ],
)
async def test_bad_times_are_400_naming_the_parameter(
    client: Client, query: dict[str, str], named: str
) -> None:
    answer = await client.usage("admin", **query)
    assert answer.status_code == 400
    assert answer.json()["message"].startswith(f"{named}:")


def test_the_default_period_is_the_current_utc_month() -> None:
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert month_of(now) == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert period({}, now) == month_of(now)
    start, end = period({"startTime": "2026-12-15T00:00:00Z"}, now)
    assert (start.day, end) == (15, datetime(2027, 1, 1, tzinfo=UTC))
    with pytest.raises(ApiError):
        period({"startTime": "2027-02-01T00:00:00Z"}, now)  # after the default end
