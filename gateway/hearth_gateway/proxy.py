"""Forwarding one request to a replica: pick, send, retry once, stream back.

The request goes to the replica with the fewest requests in flight from this gateway
(``routing.choose_replica``). If the replica cannot be reached, answers 502/503/504, or
fails before the first byte of its answer, the request is sent once more to another
replica; once a byte has gone to the client it never is. Streams are passed on event by
event as they arrive (``usage.StreamRewriter``); a client that goes away closes the
upstream request, which makes the server stop generating. A stream that breaks after its
first bytes ends with an error event in the client's dialect (and no ``[DONE]``).

The upstream client is aiohttp: its pool hands out an idle connection in constant time
and learns from the socket itself that a server closed one, where httpx probes every idle
connection of the pool on each request (docs/gateway.md, Performance).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from .auth import Principal
from .config import GatewayConfig
from .errors import Dialect, GatewayError, error_body
from .metrics import Metrics
from .routing import Replica, Route, choose_replica
from .usage import StreamRewriter, Usage, rewrite_body

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({502, 503, 504})
#: Status recorded for a request whose client went away before the answer was complete.
CLIENT_CLOSED = 499
#: An idle upstream connection is closed after this many seconds: below the model
#: server's own keep-alive timeout (uvicorn's default, 5 s), so that the gateway does not
#: send a request on a connection the server is closing.
KEEPALIVE_S = 4.0
LARGE_BODY = 1 << 20
#: What a replica that fails, or a connection to it that breaks, raises.
UPSTREAM_ERRORS: tuple[type[BaseException], ...] = (aiohttp.ClientError, TimeoutError)


@dataclass
class Exchange:
    """One inference request on its way through the gateway."""

    request_id: str
    principal: Principal
    dialect: Dialect
    #: The model string as the client sent it.
    client_model: str
    upstream_path: str
    body: bytes
    stream: bool
    #: The client asked for the usage chunk (OpenAI ``stream_options.include_usage``).
    keep_usage_chunk: bool
    started: float = field(default_factory=time.monotonic)
    #: Headers to add to the answer (rate limits, request id).
    headers: dict[str, str] = field(default_factory=dict)
    #: Its usage and metrics were written (by ``Finish``).
    finished: bool = False


#: Writes an answer's metrics now and returns the task writing its usage record.
Finish = Callable[[Exchange, Route, int, Usage], "asyncio.Future[None]"]


@dataclass
class _Opened:
    replica: Replica
    response: aiohttp.ClientResponse
    chunks: AsyncIterator[bytes]
    first: bytes

    def done(self) -> None:
        """Give the connection back to the pool when the answer was read to its end;
        otherwise close it, which also tells the server to stop generating."""
        if self.response.content.at_eof():
            self.response.release()
        else:
            self.response.close()


class Proxy:
    def __init__(self, config: GatewayConfig, metrics: Metrics) -> None:
        self.metrics = metrics
        self.timeout = aiohttp.ClientTimeout(
            total=None,
            sock_connect=config.upstream_connect_timeout,
            sock_read=config.upstream_read_timeout,
        )
        self._session: aiohttp.ClientSession | None = None
        #: Requests in flight per replica address, from this gateway.
        self.outstanding: dict[str, int] = defaultdict(int)

    @property
    def session(self) -> aiohttp.ClientSession:
        """The upstream client, made on first use (it belongs to the running loop)."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=4096, limit_per_host=0, keepalive_timeout=KEEPALIVE_S
                ),
                timeout=self.timeout,
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _release(self, replica: Replica) -> None:
        self.outstanding[replica.address] -= 1
        if self.outstanding[replica.address] <= 0:
            del self.outstanding[replica.address]

    async def _send(self, ex: Exchange, route: Route, replica: Replica) -> _Opened:
        headers = {
            "content-type": "application/json",
            "x-request-id": ex.request_id,
            "accept": "text/event-stream" if ex.stream else "application/json",
            "accept-encoding": "identity",
        }
        if route.api_token:
            headers["authorization"] = f"Bearer {route.api_token}"
        # aiohttp warns about bytes bodies over 1 MiB; a file-like body is streamed.
        body = ex.body if len(ex.body) <= LARGE_BODY else io.BytesIO(ex.body)
        response = await self.session.post(
            f"http://{replica.address}{ex.upstream_path}", data=body, headers=headers
        )
        chunks = response.content.iter_any()
        try:
            if response.status in RETRY_STATUSES:
                return _Opened(replica, response, chunks, b"")
            # The first bytes (or the end): until they arrive nothing was sent to the
            # client, so a replica that dies now is retried like one that refused.
            first = await anext(chunks, b"")
        except BaseException:
            response.close()
            raise
        return _Opened(replica, response, chunks, first)

    async def _open(self, ex: Exchange, route: Route) -> _Opened:
        tried: set[str] = set()
        failure = "no ready replica"
        for attempt in range(2):
            replica = choose_replica(route.usable, self.outstanding, exclude=tried)
            if replica is None:
                break
            tried.add(replica.pod)
            if attempt:
                self.metrics.retries.inc()
            self.outstanding[replica.address] += 1
            try:
                opened = await self._send(ex, route, replica)
            except UPSTREAM_ERRORS as error:
                self._release(replica)
                failure = f"replica {replica.pod} failed: {type(error).__name__}"
                log.warning("request %s: %s", ex.request_id, failure)
                continue
            except BaseException:
                self._release(replica)
                raise
            retry = attempt == 0 and opened.response.status in RETRY_STATUSES
            if retry and choose_replica(route.usable, self.outstanding, exclude=tried):
                opened.response.close()
                self._release(replica)
                failure = f"replica {replica.pod} answered {opened.response.status}"
                continue
            return opened
        raise GatewayError(502, f"the model server could not be reached ({failure})")

    async def forward(self, ex: Exchange, route: Route, finish: Finish) -> Response:
        opened = await self._open(ex, route)
        response = opened.response
        is_sse = response.headers.get("content-type", "").startswith("text/event-stream")
        if not (ex.stream and is_sse):
            try:
                parts = [opened.first]
                async for chunk in opened.chunks:
                    parts.append(chunk)
            except asyncio.CancelledError:
                finish(ex, route, CLIENT_CLOSED, Usage())
                raise
            except UPSTREAM_ERRORS as error:
                finish(ex, route, 502, Usage())
                raise GatewayError(
                    502,
                    f"the model server's answer broke off: {type(error).__name__}",
                    recorded=True,
                ) from error
            finally:
                opened.done()
                self._release(opened.replica)
            body, usage = rewrite_body(
                b"".join(parts), route.served_name, ex.client_model, ex.dialect
            )
            # The client has the answer only once its usage record is durable: a gateway
            # killed after answering has always recorded what it answered.
            await asyncio.shield(finish(ex, route, response.status, usage))
            return Response(
                body,
                status_code=response.status,
                media_type=response.headers.get("content-type", "application/json"),
                headers={**ex.headers, **_identity(ex, route)},
            )
        rewriter = StreamRewriter(
            ex.dialect, route.served_name, ex.client_model, keep_usage_chunk=ex.keep_usage_chunk
        )

        async def events() -> AsyncIterator[bytes]:
            status = CLIENT_CLOSED
            try:
                out = rewriter.feed(opened.first)
                if out:
                    yield out
                async for chunk in opened.chunks:
                    out = rewriter.feed(chunk)
                    if out:
                        yield out
                out = rewriter.flush()
                if out:
                    yield out
                status = response.status
                # The end event goes out once the usage record is durable (see above).
                await asyncio.shield(finish(ex, route, status, rewriter.usage))
                if rewriter.held:
                    yield rewriter.held
            except UPSTREAM_ERRORS as error:
                # Mid-stream: bytes already went out, so no retry; the client gets an
                # error event instead of the rest (and no [DONE]).
                log.warning(
                    "request %s: stream from %s broke: %s", ex.request_id, opened.replica.pod, error
                )
                status = 502
                yield broken_stream_event(ex, type(error).__name__)
            finally:
                opened.done()
                self._release(opened.replica)
                if not ex.finished:
                    finish(ex, route, status, rewriter.usage)

        return StreamResponse(
            events(),
            status_code=response.status,
            headers={
                **ex.headers,
                **_identity(ex, route),
                "content-type": response.headers.get("content-type", "text/event-stream"),
                "cache-control": "no-cache",
                "x-accel-buffering": "no",
            },
        )


def broken_stream_event(ex: Exchange, why: str) -> bytes:
    """The SSE event that ends a stream whose server went away, in the client's dialect:
    OpenAI clients get ``data: {"error": ...}`` (the OpenAI SDK raises on it), Anthropic
    clients an ``error`` event, as a model server sends when its engine fails."""
    message = f"the model server's stream broke off ({why}); the answer is incomplete"
    data = json.dumps(error_body(502, message, ex.dialect))
    if ex.dialect is Dialect.ANTHROPIC:
        return f"event: error\ndata: {data}\n\n".encode()
    return f"data: {data}\n\n".encode()


def _identity(ex: Exchange, route: Route) -> dict[str, str]:
    """Which request this was and which deployment answered it."""
    return {"x-request-id": ex.request_id, "x-hearth-deployment": route.deployment}


class StreamResponse(Response):
    """Sends each chunk as it comes, and stops (closing the upstream request through the
    iterator's ``finally``) as soon as the client disconnects, even between chunks."""

    def __init__(
        self, chunks: AsyncIterator[bytes], *, status_code: int, headers: dict[str, str]
    ) -> None:
        self.chunks = chunks
        self.status_code = status_code
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def pump() -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for chunk in self.chunks:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        streaming = asyncio.ensure_future(pump())
        listening = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait({streaming, listening}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streaming, listening):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await streaming
            with contextlib.suppress(asyncio.CancelledError):
                await listening
            # The iterator's finally (close upstream, record usage) runs now at the latest.
            close = getattr(self.chunks, "aclose", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    await close()
        if streaming.done() and not streaming.cancelled() and streaming.exception() is not None:
            raise streaming.exception()  # type: ignore[misc]


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def until_disconnected(receive: Receive, work: Awaitable[Response]) -> Response | None:
    """Run ``work`` while watching the client (whose request body was read); None when
    the client went away first, after cancelling ``work``."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_until_disconnect(receive))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        watcher.cancel()
        raise
    if task.done():
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task
    return None
