"""Forwarding against real local HTTP upstreams: retry once before the first byte, never
after it, and each replica's in-flight count back to zero."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import MutableMapping
from typing import Any

from hearth_gateway.auth import Principal
from hearth_gateway.config import GatewayConfig
from hearth_gateway.dialect import Dialect
from hearth_gateway.metrics import Metrics
from hearth_gateway.proxy import Exchange, Finish, Proxy, StreamResponse, broken_stream_event
from hearth_gateway.routing import Replica, Route
from hearth_gateway.usage import Usage


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Upstream:
    """A raw HTTP/1.1 server answering every request with ``status`` and ``body``; with
    ``die_after`` it sends that many bytes of a chunked SSE body and drops the socket."""

    def __init__(
        self,
        status: int = 200,
        body: bytes = b"",
        *,
        die_after: bytes | None = None,
        content_type: str = "application/json",
    ):
        self.status, self.body, self.die_after = status, body, die_after
        self.content_type = content_type
        self.requests: list[bytes] = []
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(
            next(
                line.split(b":")[1]
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
        )
        self.requests.append(await reader.readexactly(length))
        if self.die_after is not None:
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                b"transfer-encoding: chunked\r\n\r\n"
                + f"{len(self.die_after):x}\r\n".encode()
                + self.die_after
                + b"\r\n"
            )
            await writer.drain()
            writer.close()
            return
        writer.write(
            f"HTTP/1.1 {self.status} X\r\ncontent-type: {self.content_type}\r\n"
            f"content-length: {len(self.body)}\r\n\r\n".encode()
            + self.body
        )
        await writer.drain()
        writer.close()


def route(*replicas: Replica) -> Route:
    return Route(
        deployed_model="accounts/acme/deployedModels/x",
        namespace="acme",
        deployment_id="d",
        served_name="accounts/acme/models/m",
        serverless=False,
        addon=False,
        replicas=replicas,
        api_token="tok",
        desired_replicas=1,
        min_replicas=1,
    )


def recording(note: Any) -> Finish:
    """A ``Finish`` that calls ``note(status, usage)`` and whose record is written at once."""

    def finish(ex: Exchange, _route: Route, status: int, usage: Usage) -> asyncio.Future[None]:
        ex.finished = True
        note(status, usage)
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    return finish


def exchange(stream: bool = False) -> Exchange:
    return Exchange(
        request_id="r1",
        principal=Principal("acme", "ann", "k", "user"),
        dialect=Dialect.OPENAI,
        client_model="acme/m#acme/d",
        upstream_path="/v1/chat/completions",
        body=json.dumps({"model": "accounts/acme/models/m", "stream": stream}).encode(),
        stream=stream,
        keep_usage_chunk=False,
    )


OK_BODY = json.dumps(
    {"model": "accounts/acme/models/m", "usage": {"prompt_tokens": 2, "completion_tokens": 3}}
).encode()


def test_a_refused_or_overloaded_replica_is_retried_once_on_another() -> None:
    async def scenario() -> None:
        good, busy = Upstream(200, OK_BODY), Upstream(503, b'{"error": {"message": "full"}}')
        await good.start()
        await busy.start()
        proxy = Proxy(GatewayConfig(), Metrics())
        finished: list[tuple[int, Usage]] = []
        try:
            for bad in (
                Replica("dead", f"127.0.0.1:{closed_port()}"),
                Replica("busy", f"127.0.0.1:{busy.port}"),
            ):
                alive = Replica("alive", f"127.0.0.1:{good.port}")
                # The bad replica looks idle, so it is tried first.
                proxy.outstanding[alive.address] = 1
                answer = await proxy.forward(
                    exchange(), route(bad, alive), recording(lambda s, u: finished.append((s, u)))
                )
                assert answer.status_code == 200
                assert json.loads(bytes(answer.body))["model"] == "acme/m#acme/d"
                proxy.outstanding.pop(alive.address)
                assert dict(proxy.outstanding) == {}, "every in-flight count released"
            assert [(s, u.total) for s, u in finished] == [(200, 5), (200, 5)]
            assert len(good.requests) == 2 and len(busy.requests) == 1
            assert proxy.metrics.retries._value.get() == 2
            # The only replica overloaded: its answer goes to the client as it is.
            answer = await proxy.forward(
                exchange(),
                route(Replica("busy", f"127.0.0.1:{busy.port}")),
                recording(lambda s, u: None),
            )
            assert answer.status_code == 503
        finally:
            await proxy.close()
            await good.stop()
            await busy.stop()

    asyncio.run(scenario())


def test_a_stream_that_breaks_after_its_first_bytes_is_not_retried() -> None:
    async def scenario() -> None:
        first = (
            b'data: {"model": "accounts/acme/models/m", '
            b'"choices": [{"delta": {"content": "a"}}]}\n\n'
        )
        dying, spare = Upstream(die_after=first), Upstream(200, OK_BODY)
        await dying.start()
        await spare.start()
        proxy = Proxy(GatewayConfig(), Metrics())
        finished: list[int] = []
        sent: list[MutableMapping[str, Any]] = []

        async def receive() -> dict:
            await asyncio.Event().wait()  # the client never leaves
            return {}

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        try:
            proxy.outstanding[f"127.0.0.1:{spare.port}"] = 1
            answer = await proxy.forward(
                exchange(stream=True),
                route(
                    Replica("dying", f"127.0.0.1:{dying.port}"),
                    Replica("spare", f"127.0.0.1:{spare.port}"),
                ),
                recording(lambda s, u: finished.append(s)),
            )
            assert isinstance(answer, StreamResponse)
            await answer({"type": "http"}, receive, send)
            body = b"".join(m.get("body", b"") for m in sent)
            assert b'"model": "acme/m#acme/d"' in body
            # It ends with an error event in the client's dialect, never with [DONE].
            last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
            assert last.startswith(b"data: ") and b"[DONE]" not in body
            assert json.loads(last[6:])["error"]["type"] == "bad_gateway"
            assert finished == [502], "recorded as broken"
            assert spare.requests == [], "never retried after bytes went out"
        finally:
            await proxy.close()
            await dying.stop()
            await spare.stop()

    asyncio.run(scenario())


def test_a_broken_stream_ends_with_an_error_event_in_the_callers_dialect() -> None:
    anthropic = exchange(stream=True)
    anthropic.dialect = Dialect.ANTHROPIC
    event = broken_stream_event(anthropic, "ServerDisconnectedError")
    kind, data = event.decode().removesuffix("\n\n").split("\n")
    assert kind == "event: error"
    body = json.loads(data.removeprefix("data: "))
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    assert "ServerDisconnectedError" in body["error"]["message"]
    openai = json.loads(broken_stream_event(exchange(stream=True), "X")[6:])
    assert openai["error"]["code"] == "UNAVAILABLE"


def test_a_body_over_a_mebibyte_is_forwarded_whole() -> None:
    async def scenario() -> None:
        upstream = Upstream(200, OK_BODY)
        await upstream.start()
        proxy = Proxy(GatewayConfig(), Metrics())
        big = exchange()
        big.body = json.dumps({"model": "m", "prompt": "x" * (3 << 20)}).encode()
        try:
            answer = await proxy.forward(
                big, route(Replica("r", f"127.0.0.1:{upstream.port}")), recording(lambda s, u: None)
            )
            assert answer.status_code == 200
            assert upstream.requests == [big.body]
        finally:
            await proxy.close()
            await upstream.stop()

    asyncio.run(scenario())


def test_the_answers_end_waits_for_its_usage_record() -> None:
    """Whole answers return, and streams send their end event, only once the usage record
    is written: a gateway killed after answering has recorded what it answered."""
    stream_body = (
        b'data: {"model": "accounts/acme/models/m", "choices": [{"delta": {"content": "a"}}]}\n\n'
        b'data: {"model": "accounts/acme/models/m", "choices": [], '
        b'"usage": {"prompt_tokens": 2, "completion_tokens": 1}}\n\n'
        b"data: [DONE]\n\n"
    )

    async def scenario() -> None:
        whole = Upstream(200, OK_BODY)
        streamed = Upstream(200, stream_body, content_type="text/event-stream")
        await whole.start()
        await streamed.start()
        proxy = Proxy(GatewayConfig(), Metrics())
        records: list[asyncio.Future[None]] = []

        def finish(ex: Exchange, _route: Route, status: int, usage: Usage) -> asyncio.Future[None]:
            ex.finished = True
            records.append(asyncio.get_running_loop().create_future())
            return records[-1]

        try:
            answering = asyncio.ensure_future(
                proxy.forward(exchange(), route(Replica("w", f"127.0.0.1:{whole.port}")), finish)
            )
            await until_true(lambda: records)
            await asyncio.sleep(0.05)
            assert not answering.done(), "answered before the record was written"
            records[0].set_result(None)
            assert (await answering).status_code == 200

            sent: list[MutableMapping[str, Any]] = []

            async def receive() -> dict:
                await asyncio.Event().wait()
                return {}

            async def send(message: MutableMapping[str, Any]) -> None:
                sent.append(message)

            answer = await proxy.forward(
                exchange(stream=True), route(Replica("s", f"127.0.0.1:{streamed.port}")), finish
            )
            assert isinstance(answer, StreamResponse)
            streaming = asyncio.ensure_future(answer({"type": "http"}, receive, send))
            await until_true(lambda: len(records) == 2)
            await asyncio.sleep(0.05)
            body = b"".join(m.get("body", b"") for m in sent)
            assert b'"content": "a"' in body and b"[DONE]" not in body
            assert not streaming.done()
            records[1].set_result(None)
            await streaming
            body = b"".join(m.get("body", b"") for m in sent)
            assert body.endswith(b"data: [DONE]\n\n")
        finally:
            await proxy.close()
            await whole.stop()
            await streamed.stop()

    asyncio.run(scenario())


async def until_true(predicate: Any, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)
