"""HTTP semantics of the Kubernetes API on top of the :class:`Store`.

URL routing (`/api/v1/...`, `/apis/<group>/<version>/...`, namespaced and
cluster-scoped, subresources), list/watch (with selectors, resume and 410 Gone),
pod binding and logs, and the mapping of :class:`ApiError` to `Status` bodies; the
discovery documents and the scale subresource are in their own modules. Everything
runs on the server's event loop, the only place the store is touched.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
from collections.abc import Callable
from typing import Any

import aiohttp.web

from hearth.local.emulator import discovery
from hearth.local.emulator.errors import (
    ApiError,
    bad_request,
    gone,
    invalid,
    method_not_allowed,
    not_found,
)
from hearth.local.emulator.gc import GarbageCollector
from hearth.local.emulator.patching import apply_patch
from hearth.local.emulator.quota import QuotaController
from hearth.local.emulator.resources import POD_GROUP_PLURAL, Registry, ResourceType
from hearth.local.emulator.selectors import field_matcher, label_matcher
from hearth.local.emulator.store import Obj, Store, Validator, WatchEvent
from hearth.local.emulator.subresources import scale_of, write_scale

# A hook for `pods/<name>/log`: (namespace, pod, container or None) -> text or None.
LogSource = Callable[[str, str, str | None], str | None]


@dataclasses.dataclass
class Route:
    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_route(path: str) -> Route | None:
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api":
        route, rest = Route("", parts[1]), parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        route, rest = Route(parts[1], parts[2]), parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        route.namespace, rest = rest[1], rest[2:]
    if rest:
        route.plural = rest[0]
    if len(rest) >= 2:
        route.name = rest[1]
    if len(rest) >= 3:
        route.subresource = "/".join(rest[2:])
    return route


def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(
        body=json.dumps(body).encode(), status=status, content_type="application/json"
    )


def _present(rtype: ResourceType, obj: Obj) -> Obj:
    """Objects of any served version share storage; show the requested apiVersion."""
    if obj.get("apiVersion") == rtype.api_version:
        return obj
    return {**obj, "apiVersion": rtype.api_version}


def _initial_events_end(rtype: ResourceType, resource_version: int) -> dict[str, Any]:
    """The bookmark after the initial events of a streaming list."""
    return {
        "type": "BOOKMARK",
        "object": {
            "kind": rtype.kind,
            "apiVersion": rtype.api_version,
            "metadata": {
                "resourceVersion": str(resource_version),
                "annotations": {"k8s.io/initial-events-end": "true"},
            },
        },
    }


class _Watch:
    def __init__(
        self, rtype: ResourceType, namespace: str | None, matches: Callable[[Obj], bool]
    ) -> None:
        self.rtype = rtype
        self.namespace = namespace
        self.matches = matches
        self.queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

    def translate(self, event: WatchEvent) -> dict[str, Any] | None:
        """The event as this watch sees it: selector transitions become ADDED/DELETED."""
        if event.group_plural != self.rtype.group_plural:
            return None
        if self.namespace is not None and event.obj["metadata"].get("namespace") != self.namespace:
            return None
        new_ok = self.matches(event.obj)
        # An unknown previous state (older than the history) is taken to match as now does.
        old_ok = self.matches(event.old) if event.old is not None else new_ok
        kind: str | None
        if event.type == "ADDED":
            kind = "ADDED" if new_ok else None
        elif event.type == "DELETED":
            kind = "DELETED" if new_ok or old_ok else None
        else:
            kind = (
                "MODIFIED"
                if new_ok and old_ok
                else "ADDED"
                if new_ok
                else "DELETED"
                if old_ok
                else None
            )
        if kind is None:
            return None
        return {"type": kind, "object": _present(self.rtype, event.obj)}


class KubeEmulator:
    """The API server: a :class:`Store`, its controllers, and the HTTP surface."""

    def __init__(
        self, *, validators: list[Validator] | None = None, history_size: int = 10_000
    ) -> None:
        self.registry = Registry()
        self.store = Store(self.registry, history_size=history_size, validators=validators or [])
        self.gc = GarbageCollector(self.store)
        self.quotas = QuotaController(self.store)
        self.log_source: LogSource | None = None
        self._watches: set[_Watch] = set()
        self._gc_wakeup: asyncio.Event | None = None
        self.store.listeners.append(self._on_event)

    # ----- lifecycle (on the server loop) ---------------------------------------------------

    async def run_controllers(self, quota_batch_seconds: float = 0.05) -> None:
        """The garbage collector / namespace / CRD cleanup loop, woken by every write.

        Quota usage is recomputed after a short pause, so that a burst of writes in a
        namespace costs one status update (the real controller batches too).
        """
        self._gc_wakeup = asyncio.Event()
        if self.store.terminating or self.store.created_with_owners:
            self._gc_wakeup.set()  # work restored from a snapshot
        while True:
            await self._gc_wakeup.wait()
            self._gc_wakeup.clear()
            # Sweep until there is nothing left to do, yielding between sweeps so that API
            # requests interleave with the collection as they do with a real collector.
            changed = True
            while changed:
                changed = self.gc.sweep()
                await asyncio.sleep(0)
            if self.quotas.pending():
                await asyncio.sleep(quota_batch_seconds)
                self.quotas.sweep()

    def close_watches(self) -> None:
        for watch in list(self._watches):
            watch.queue.put_nowait(None)

    def _on_event(self, event: WatchEvent) -> None:
        for watch in self._watches:
            watch.queue.put_nowait(event)
        if self._gc_wakeup is not None:
            self._gc_wakeup.set()

    # ----- HTTP -----------------------------------------------------------------------------

    async def handle(self, raw: aiohttp.web.BaseRequest, data: Any) -> aiohttp.web.StreamResponse:
        try:
            return await self._dispatch(raw, data)
        except ApiError as exc:
            return _json(exc.status_body(), exc.code)

    async def _dispatch(
        self, raw: aiohttp.web.BaseRequest, data: Any
    ) -> aiohttp.web.StreamResponse:
        path, method, query = raw.path, raw.method, raw.query
        if "protobuf" in raw.content_type and data is None:
            # Typed Go clients send protobuf bodies; only Secrets, ConfigMaps and DeleteOptions
            # are decoded (protobuf.py), so say so plainly for the rest.
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the emulated API server accepts JSON bodies, and protobuf only for Secrets, "
                f"ConfigMaps and DeleteOptions, not this {raw.content_type} body",
            )
        if query.get("dryRun") and method in ("POST", "PUT", "PATCH", "DELETE"):
            # Refused rather than silently persisted: a dry run must never change state.
            raise bad_request("dryRun is not supported by the emulated API server")
        if method == "GET":
            if path.rstrip("/") in ("/healthz", "/livez", "/readyz"):
                return aiohttp.web.Response(text="ok")
            document = discovery.static_document(self.registry, path)
            if document is None and path.startswith("/openapi/v3"):
                document = discovery.openapi_v3_document(self.registry, path)
            if document is not None:
                return _json(document)
        route = parse_route(path)
        if route is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.plural is None:
            if method != "GET":
                raise method_not_allowed()
            return _json(discovery.resource_list(self.registry, route.group, route.version))
        rtype = self.registry.find(route.group, route.version, route.plural)
        if rtype is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.namespace is not None and not rtype.namespaced:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if route.subresource is not None and route.subresource not in rtype.subresources:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")

        if route.name is None:
            return await self._collection(raw, rtype, route, method, dict(query), data)
        if route.subresource == "scale":
            return self._scale(rtype, route, method, raw.content_type, data)
        if route.subresource == "binding":
            return self._binding(rtype, route, method, data)
        if route.subresource == "log":
            return self._log(route, dict(query))
        if method == "GET" and query.get("watch") in ("true", "1"):
            # Legacy watch of a single object by URL: same as a fieldSelector on the name.
            fields = f"metadata.name={route.name}"
            return await self._watch(
                raw, rtype, route.namespace, {**query, "fieldSelector": fields}
            )
        store, ns, name = self.store, route.namespace, route.name
        strict = query.get("fieldValidation") == "Strict"
        if method == "GET":
            return _json(_present(rtype, store.get(rtype, ns, name)))
        if method == "PUT":
            obj = store.replace(rtype, ns, name, data, route.subresource, strict=strict)
            return _json(_present(rtype, obj))
        if method == "PATCH":
            obj = store.patch(
                rtype, ns, name, data, raw.content_type, route.subresource, strict=strict
            )
            return _json(_present(rtype, obj))
        if method == "DELETE" and route.subresource is None:
            obj, gone_now = store.delete(
                rtype,
                ns,
                name,
                data if isinstance(data, dict) else self._delete_options(dict(query)),
            )
            if gone_now and not rtype.custom and rtype.group_plural != POD_GROUP_PLURAL:
                return _json(self._success(rtype, obj))
            return _json(_present(rtype, obj))
        raise method_not_allowed()

    @staticmethod
    def _delete_options(query: dict[str, str]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if "gracePeriodSeconds" in query:
            options["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        if "propagationPolicy" in query:
            options["propagationPolicy"] = query["propagationPolicy"]
        return options

    @staticmethod
    def _success(rtype: ResourceType, obj: Obj) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": obj["metadata"]["name"],
                "group": rtype.group,
                "kind": rtype.plural,
                "uid": obj["metadata"]["uid"],
            },
        }

    async def _collection(
        self,
        raw: aiohttp.web.BaseRequest,
        rtype: ResourceType,
        route: Route,
        method: str,
        query: dict[str, str],
        data: Any,
    ) -> aiohttp.web.StreamResponse:
        if method == "GET" and query.get("watch") in ("true", "1"):
            return await self._watch(raw, rtype, route.namespace, query)
        if method == "GET":
            return _json(self._list(rtype, route.namespace, query))
        if method == "POST":
            if rtype.namespaced and route.namespace is None:
                raise method_not_allowed(
                    "the server does not allow this method on the "
                    "requested resource (namespaced, use the namespace)"
                )
            strict = query.get("fieldValidation") == "Strict"
            obj = self.store.create(rtype, route.namespace, data, strict=strict)
            return _json(_present(rtype, obj), 201)
        if method == "DELETE":
            items = self.store.list(
                rtype,
                route.namespace,
                label_selector=query.get("labelSelector"),
                field_selector=query.get("fieldSelector"),
            )
            deleted = []
            for item in items:
                obj, _ = self.store.delete(
                    rtype,
                    item["metadata"].get("namespace"),
                    item["metadata"]["name"],
                    data if isinstance(data, dict) else self._delete_options(query),
                )
                deleted.append(_present(rtype, obj))
            return _json(
                {
                    "kind": f"{rtype.kind}List",
                    "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(self.store.resource_version)},
                    "items": deleted,
                }
            )
        raise method_not_allowed()

    def _list(
        self, rtype: ResourceType, namespace: str | None, query: dict[str, str]
    ) -> dict[str, Any]:
        items = self.store.list(
            rtype,
            namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
        )
        metadata: dict[str, Any] = {"resourceVersion": str(self.store.resource_version)}
        offset = 0
        if query.get("continue"):
            try:
                token = json.loads(base64.b64decode(query["continue"]))
                offset, metadata["resourceVersion"] = int(token["offset"]), token["rv"]
            except (ValueError, KeyError) as exc:
                raise bad_request("invalid continue token") from exc
        limit = int(query.get("limit") or 0)
        if limit > 0 and len(items) > offset + limit:
            token = {"offset": offset + limit, "rv": metadata["resourceVersion"]}
            metadata["continue"] = base64.b64encode(json.dumps(token).encode()).decode()
            metadata["remainingItemCount"] = len(items) - offset - limit
            items = items[offset : offset + limit]
        else:
            items = items[offset:]
        return {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": metadata,
            "items": [_present(rtype, obj) for obj in items],
        }

    async def _watch(
        self,
        raw: aiohttp.web.BaseRequest,
        rtype: ResourceType,
        namespace: str | None,
        query: dict[str, str],
    ) -> aiohttp.web.StreamResponse:
        labels_ok = label_matcher(query.get("labelSelector"))
        fields_ok = field_matcher(query.get("fieldSelector"))
        watch = _Watch(rtype, namespace, lambda obj: labels_ok(obj) and fields_ok(obj))
        since = query.get("resourceVersion") or ""
        initial: list[dict[str, Any]] = []
        # No await between computing the backlog and subscribing: no event can slip between.
        if query.get("sendInitialEvents") == "true":
            # A streaming list (client-go's WatchList, what kubectl wait uses): the current
            # objects as ADDED, a bookmark marking their end, then the changes.
            if query.get("resourceVersionMatch") != "NotOlderThan":
                cause = (
                    "sendInitialEvents",
                    "Forbidden: sendInitialEvents is forbidden for watch unless "
                    "resourceVersionMatch is set to NotOlderThan",
                )
                raise invalid("ListOptions", "", [cause], group="meta.k8s.io")
            for obj in self.store.list(rtype, namespace):
                if watch.matches(obj):
                    initial.append({"type": "ADDED", "object": _present(rtype, obj)})
            initial.append(_initial_events_end(rtype, self.store.resource_version))
        elif since in ("", "0"):
            for obj in self.store.list(rtype, namespace):
                if watch.matches(obj):
                    initial.append({"type": "ADDED", "object": _present(rtype, obj)})
        elif not since.isdigit():
            raise bad_request(f"invalid resourceVersion: {since!r}")
        elif int(since) < self.store.oldest_watchable_rv():
            expired = gone(
                f"too old resource version: {since} ({self.store.oldest_watchable_rv()})"
            )
            initial.append({"type": "ERROR", "object": expired.status_body()})
        else:
            for event in self.store.replay(int(since)):
                if translated := watch.translate(event):
                    initial.append(translated)
        expired_only = bool(initial) and initial[-1]["type"] == "ERROR"
        if not expired_only:
            self._watches.add(watch)
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = "application/json"
        response.enable_chunked_encoding()
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        try:
            await response.prepare(raw)
            for item in initial:
                await response.write(json.dumps(item).encode() + b"\n")
            while not expired_only:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    live = await asyncio.wait_for(watch.queue.get(), remaining)
                except TimeoutError:
                    break
                if live is None:
                    break
                translated = watch.translate(live)
                if translated is not None:
                    await response.write(json.dumps(translated).encode() + b"\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away (kopf cancels its watches on shutdown)
        finally:
            self._watches.discard(watch)
        return response

    # ----- subresources ---------------------------------------------------------------------

    def _scale(
        self, rtype: ResourceType, route: Route, method: str, content_type: str, data: Any
    ) -> aiohttp.web.Response:
        assert route.name is not None
        obj = self.store.get(rtype, route.namespace, route.name)
        current = scale_of(rtype, obj)
        if method == "GET":
            return _json(current)
        if method == "PUT":
            return _json(write_scale(self.store, rtype, obj, data))
        if method == "PATCH":
            desired = apply_patch(current, data, content_type, custom=False)
            return _json(write_scale(self.store, rtype, obj, desired))
        raise method_not_allowed()

    def _binding(
        self, rtype: ResourceType, route: Route, method: str, data: Any
    ) -> aiohttp.web.Response:
        if method != "POST" or route.namespace is None or route.name is None:
            raise method_not_allowed()
        node = ((data or {}).get("target") or {}).get("name")
        if not node:
            raise bad_request("binding target name is required")
        self.store.bind_pod(rtype, route.namespace, route.name, node)
        return _json(
            {
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "code": 201,
            },
            201,
        )

    def _log(self, route: Route, query: dict[str, str]) -> aiohttp.web.Response:
        assert route.namespace is not None and route.name is not None
        pod = self.store.find(POD_GROUP_PLURAL, route.namespace, route.name)
        if pod is None:
            raise not_found("pods", route.name)
        text = (
            self.log_source(route.namespace, route.name, query.get("container"))
            if self.log_source is not None
            else None
        )
        if text is None:
            raise bad_request(f'container logs of pod "{route.name}" are not available')
        return aiohttp.web.Response(text=text, content_type="text/plain")
