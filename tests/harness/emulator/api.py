"""HTTP semantics of the Kubernetes API on top of the :class:`Store`.

URL routing (`/api/v1/...`, `/apis/<group>/<version>/...`, namespaced and
cluster-scoped, subresources), discovery documents, list/watch, the scale
subresource, pod binding and logs, and the mapping of :class:`ApiError` to
`Status` bodies. Everything runs on the server's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import aiohttp.web

from tests.harness.emulator.errors import ApiError, bad_request, gone, method_not_allowed, not_found
from tests.harness.emulator.gc import GarbageCollector
from tests.harness.emulator.patching import apply_patch
from tests.harness.emulator.quota import QuotaController
from tests.harness.emulator.resources import POD_GROUP_PLURAL, VERBS, Registry, ResourceType
from tests.harness.emulator.selectors import field_matcher, label_matcher
from tests.harness.emulator.store import Obj, Store, Validator, WatchEvent

# A hook for `pods/<name>/log`: (namespace, pod, container or None) -> text or None.
LogSource = Callable[[str, str, str | None], str | None]

SERVER_VERSION = {
    'major': '1', 'minor': '33', 'gitVersion': 'v1.33.0+hearth-emulator',
    'gitCommit': '0000000000000000000000000000000000000000', 'gitTreeState': 'clean',
    'buildDate': '2026-01-01T00:00:00Z', 'goVersion': 'go1.24', 'compiler': 'gc',
    'platform': 'linux/amd64',
}
_VERSION_RE = re.compile(r'^v(\d+)(?:(alpha|beta)(\d+))?$')


def version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes' version order: GA > beta > alpha, then by number (higher first)."""
    match = _VERSION_RE.match(version)
    if match is None:
        return (3, 0, 0)
    major, stage, minor = match.groups()
    rank = {None: 0, 'beta': 1, 'alpha': 2}[stage]
    return (rank, -int(major), -int(minor or 0))


@dataclasses.dataclass
class Route:
    group: str
    version: str
    plural: str | None = None
    namespace: str | None = None
    name: str | None = None
    subresource: str | None = None


def parse_route(path: str) -> Route | None:
    parts = [p for p in path.split('/') if p]
    if len(parts) >= 2 and parts[0] == 'api':
        route, rest = Route('', parts[1]), parts[2:]
    elif len(parts) >= 3 and parts[0] == 'apis':
        route, rest = Route(parts[1], parts[2]), parts[3:]
    else:
        return None
    if len(rest) >= 3 and rest[0] == 'namespaces' and rest[2] not in ('status', 'finalize'):
        route.namespace, rest = rest[1], rest[2:]
    if rest:
        route.plural = rest[0]
    if len(rest) >= 2:
        route.name = rest[1]
    if len(rest) >= 3:
        route.subresource = '/'.join(rest[2:])
    return route


def _get_path(obj: Any, path: str) -> Any:
    for key in path.strip('.').split('.'):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _set_path(obj: dict[str, Any], path: str, value: Any) -> None:
    keys = path.strip('.').split('.')
    for key in keys[:-1]:
        obj = obj.setdefault(key, {})
    obj[keys[-1]] = value


def _json(body: Any, status: int = 200) -> aiohttp.web.Response:
    return aiohttp.web.Response(body=json.dumps(body).encode(), status=status,
                                content_type='application/json')


def _present(rtype: ResourceType, obj: Obj) -> Obj:
    """Objects of any served version share storage; show the requested apiVersion."""
    if obj.get('apiVersion') == rtype.api_version:
        return obj
    return {**obj, 'apiVersion': rtype.api_version}


class _Watch:
    def __init__(self, rtype: ResourceType, namespace: str | None,
                 matches: Callable[[Obj], bool]) -> None:
        self.rtype = rtype
        self.namespace = namespace
        self.matches = matches
        self.queue: asyncio.Queue[WatchEvent | None] = asyncio.Queue()

    def translate(self, event: WatchEvent) -> dict[str, Any] | None:
        """The event as this watch sees it: selector transitions become ADDED/DELETED."""
        if event.group_plural != self.rtype.group_plural:
            return None
        if self.namespace is not None and \
                event.obj['metadata'].get('namespace') != self.namespace:
            return None
        new_ok = self.matches(event.obj)
        old_ok = event.old is not None and self.matches(event.old)
        kind: str | None
        if event.type == 'ADDED':
            kind = 'ADDED' if new_ok else None
        elif event.type == 'DELETED':
            kind = 'DELETED' if new_ok or old_ok else None
        else:
            kind = ('MODIFIED' if new_ok and old_ok else 'ADDED' if new_ok
                    else 'DELETED' if old_ok else None)
        if kind is None:
            return None
        return {'type': kind, 'object': _present(self.rtype, event.obj)}


class KubeEmulator:
    """The API server: a :class:`Store`, its controllers, and the HTTP surface."""

    def __init__(self, *, validators: list[Validator] | None = None,
                 history_size: int = 50_000) -> None:
        self.registry = Registry()
        self.store = Store(self.registry, history_size=history_size,
                           validators=validators or [])
        self.gc = GarbageCollector(self.store)
        self.quotas = QuotaController(self.store)
        self.log_source: LogSource | None = None
        self._watches: set[_Watch] = set()
        self._gc_wakeup: asyncio.Event | None = None
        self.store.listeners.append(self._on_event)

    # ----- lifecycle (on the server loop) ---------------------------------------------------

    async def run_controllers(self) -> None:
        """The garbage collector / namespace / CRD cleanup loop, woken by every write."""
        self._gc_wakeup = asyncio.Event()
        while True:
            await self._gc_wakeup.wait()
            self._gc_wakeup.clear()
            # Sweep until there is nothing left to do, yielding between sweeps so that API
            # requests interleave with the collection as they do with a real collector.
            changed = True
            while changed:
                changed = self.gc.sweep()
                changed |= self.quotas.sweep()
                await asyncio.sleep(0)

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

    async def _dispatch(self, raw: aiohttp.web.BaseRequest,
                        data: Any) -> aiohttp.web.StreamResponse:
        path, method, query = raw.path, raw.method, raw.query
        if query.get('dryRun') and method in ('POST', 'PUT', 'PATCH', 'DELETE'):
            # Refused rather than silently persisted: a dry run must never change state.
            raise bad_request('dryRun is not supported by the emulated API server')
        if method == 'GET':
            static = self._static(path)
            if static is not None:
                return static
        route = parse_route(path)
        if route is None:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        if route.plural is None:
            if method != 'GET':
                raise method_not_allowed()
            return _json(self._resource_list(route.group, route.version))
        rtype = self.registry.find(route.group, route.version, route.plural)
        if rtype is None:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        if route.namespace is not None and not rtype.namespaced:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        if route.subresource is not None and route.subresource not in rtype.subresources:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')

        if route.name is None:
            return await self._collection(raw, rtype, route, method, dict(query), data)
        if route.subresource == 'scale':
            return self._scale(rtype, route, method, raw.content_type, data)
        if route.subresource == 'binding':
            return self._binding(rtype, route, method, data)
        if route.subresource == 'log':
            return self._log(route, dict(query))
        if method == 'GET' and query.get('watch') in ('true', '1'):
            # Legacy watch of a single object by URL: same as a fieldSelector on the name.
            fields = f'metadata.name={route.name}'
            return await self._watch(raw, rtype, route.namespace,
                                     {**query, 'fieldSelector': fields})
        store, ns, name = self.store, route.namespace, route.name
        if method == 'GET':
            return _json(_present(rtype, store.get(rtype, ns, name)))
        if method == 'PUT':
            return _json(_present(rtype, store.replace(rtype, ns, name, data, route.subresource)))
        if method == 'PATCH':
            obj = store.patch(rtype, ns, name, data, raw.content_type, route.subresource)
            return _json(_present(rtype, obj))
        if method == 'DELETE' and route.subresource is None:
            obj, gone_now = store.delete(rtype, ns, name, data if isinstance(data, dict) else
                                         self._delete_options(dict(query)))
            if gone_now and not rtype.custom and rtype.group_plural != POD_GROUP_PLURAL:
                return _json(self._success(rtype, obj))
            return _json(_present(rtype, obj))
        raise method_not_allowed()

    @staticmethod
    def _delete_options(query: dict[str, str]) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if 'gracePeriodSeconds' in query:
            options['gracePeriodSeconds'] = int(query['gracePeriodSeconds'])
        if 'propagationPolicy' in query:
            options['propagationPolicy'] = query['propagationPolicy']
        return options

    @staticmethod
    def _success(rtype: ResourceType, obj: Obj) -> dict[str, Any]:
        return {'kind': 'Status', 'apiVersion': 'v1', 'metadata': {}, 'status': 'Success',
                'details': {'name': obj['metadata']['name'], 'group': rtype.group,
                            'kind': rtype.plural, 'uid': obj['metadata']['uid']}}

    async def _collection(self, raw: aiohttp.web.BaseRequest, rtype: ResourceType, route: Route,
                          method: str, query: dict[str, str], data: Any
                          ) -> aiohttp.web.StreamResponse:
        if method == 'GET' and query.get('watch') in ('true', '1'):
            return await self._watch(raw, rtype, route.namespace, query)
        if method == 'GET':
            return _json(self._list(rtype, route.namespace, query))
        if method == 'POST':
            if rtype.namespaced and route.namespace is None:
                raise method_not_allowed('the server does not allow this method on the '
                                         'requested resource (namespaced, use the namespace)')
            return _json(_present(rtype, self.store.create(rtype, route.namespace, data)), 201)
        if method == 'DELETE':
            items = self.store.list(rtype, route.namespace,
                                    label_selector=query.get('labelSelector'),
                                    field_selector=query.get('fieldSelector'))
            deleted = []
            for item in items:
                obj, _ = self.store.delete(rtype, item['metadata'].get('namespace'),
                                           item['metadata']['name'],
                                           data if isinstance(data, dict) else
                                           self._delete_options(query))
                deleted.append(_present(rtype, obj))
            return _json({'kind': f'{rtype.kind}List', 'apiVersion': rtype.api_version,
                          'metadata': {'resourceVersion': str(self.store.resource_version)},
                          'items': deleted})
        raise method_not_allowed()

    def _list(self, rtype: ResourceType, namespace: str | None,
              query: dict[str, str]) -> dict[str, Any]:
        items = self.store.list(rtype, namespace, label_selector=query.get('labelSelector'),
                                field_selector=query.get('fieldSelector'))
        metadata: dict[str, Any] = {'resourceVersion': str(self.store.resource_version)}
        offset = 0
        if query.get('continue'):
            try:
                token = json.loads(base64.b64decode(query['continue']))
                offset, metadata['resourceVersion'] = int(token['offset']), token['rv']
            except (ValueError, KeyError) as exc:
                raise bad_request('invalid continue token') from exc
        limit = int(query.get('limit') or 0)
        if limit > 0 and len(items) > offset + limit:
            token = {'offset': offset + limit, 'rv': metadata['resourceVersion']}
            metadata['continue'] = base64.b64encode(json.dumps(token).encode()).decode()
            metadata['remainingItemCount'] = len(items) - offset - limit
            items = items[offset:offset + limit]
        else:
            items = items[offset:]
        return {'kind': f'{rtype.kind}List', 'apiVersion': rtype.api_version,
                'metadata': metadata, 'items': [_present(rtype, obj) for obj in items]}

    async def _watch(self, raw: aiohttp.web.BaseRequest, rtype: ResourceType,
                     namespace: str | None, query: dict[str, str]) -> aiohttp.web.StreamResponse:
        labels_ok = label_matcher(query.get('labelSelector'))
        fields_ok = field_matcher(query.get('fieldSelector'))
        watch = _Watch(rtype, namespace, lambda obj: labels_ok(obj) and fields_ok(obj))
        since = query.get('resourceVersion') or ''
        initial: list[dict[str, Any]] = []
        # No await between computing the backlog and subscribing: no event can slip between.
        if since in ('', '0'):
            for obj in self.store.list(rtype, namespace):
                if watch.matches(obj):
                    initial.append({'type': 'ADDED', 'object': _present(rtype, obj)})
        elif not since.isdigit():
            raise bad_request(f'invalid resourceVersion: {since!r}')
        elif int(since) < self.store.oldest_watchable_rv():
            expired = gone(f'too old resource version: {since} '
                           f'({self.store.oldest_watchable_rv()})')
            initial.append({'type': 'ERROR', 'object': expired.status_body()})
        else:
            for event in self.store.history:
                if event.rv > int(since) and (translated := watch.translate(event)):
                    initial.append(translated)
        expired_only = bool(initial) and initial[-1]['type'] == 'ERROR'
        if not expired_only:
            self._watches.add(watch)
        response = aiohttp.web.StreamResponse(status=200)
        response.content_type = 'application/json'
        response.enable_chunked_encoding()
        timeout = float(query['timeoutSeconds']) if query.get('timeoutSeconds') else None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout is not None else None
        try:
            await response.prepare(raw)
            for item in initial:
                await response.write(json.dumps(item).encode() + b'\n')
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
                    await response.write(json.dumps(translated).encode() + b'\n')
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away (kopf cancels its watches on shutdown)
        finally:
            self._watches.discard(watch)
        return response

    # ----- subresources ---------------------------------------------------------------------

    def _scale_of(self, rtype: ResourceType, obj: Obj) -> dict[str, Any]:
        assert rtype.scale is not None
        meta = obj['metadata']
        status: dict[str, Any] = {
            'replicas': _get_path(obj, rtype.scale.status_replicas_path) or 0}
        if rtype.scale.label_selector_path:
            selector = _get_path(obj, rtype.scale.label_selector_path)
            if selector is not None:
                status['selector'] = selector
        return {
            'kind': 'Scale', 'apiVersion': 'autoscaling/v1',
            'metadata': {k: meta[k] for k in ('name', 'namespace', 'uid', 'resourceVersion',
                                              'creationTimestamp') if k in meta},
            'spec': {'replicas': _get_path(obj, rtype.scale.spec_replicas_path) or 0},
            'status': status,
        }

    def _scale(self, rtype: ResourceType, route: Route, method: str, content_type: str,
               data: Any) -> aiohttp.web.Response:
        assert rtype.scale is not None and route.name is not None
        obj = self.store.get(rtype, route.namespace, route.name)
        current = self._scale_of(rtype, obj)
        if method == 'GET':
            return _json(current)
        if method == 'PUT':
            desired = data
        elif method == 'PATCH':
            desired = apply_patch(current, data, content_type, custom=False)
        else:
            raise method_not_allowed()
        if not isinstance(desired, dict):
            raise bad_request('the body of the request must be a Scale object')
        sent_rv = (desired.get('metadata') or {}).get('resourceVersion')
        if sent_rv and sent_rv != obj['metadata']['resourceVersion']:
            from tests.harness.emulator.errors import conflict
            raise conflict(rtype.plural, route.name, rtype.group)
        replicas = (desired.get('spec') or {}).get('replicas')
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            from tests.harness.emulator.errors import invalid
            raise invalid('Scale', route.name, [('spec.replicas', f'Invalid value: {replicas!r}: '
                                                 'must be greater than or equal to 0')],
                          group='autoscaling')
        new = json.loads(json.dumps(obj))
        _set_path(new, rtype.scale.spec_replicas_path, replicas)
        return _json(self._scale_of(rtype, self.store.commit(rtype, obj, new)))

    def _binding(self, rtype: ResourceType, route: Route, method: str,
                 data: Any) -> aiohttp.web.Response:
        if method != 'POST' or route.namespace is None or route.name is None:
            raise method_not_allowed()
        node = ((data or {}).get('target') or {}).get('name')
        if not node:
            raise bad_request('binding target name is required')
        self.store.bind_pod(rtype, route.namespace, route.name, node)
        return _json({'kind': 'Status', 'apiVersion': 'v1', 'metadata': {},
                      'status': 'Success', 'code': 201}, 201)

    def _log(self, route: Route, query: dict[str, str]) -> aiohttp.web.Response:
        assert route.namespace is not None and route.name is not None
        pod = self.store.find(POD_GROUP_PLURAL, route.namespace, route.name)
        if pod is None:
            raise not_found('pods', route.name)
        text = self.log_source(route.namespace, route.name, query.get('container')) \
            if self.log_source is not None else None
        if text is None:
            raise bad_request(f'container logs of pod "{route.name}" are not available')
        return aiohttp.web.Response(text=text, content_type='text/plain')

    # ----- discovery ------------------------------------------------------------------------

    def _static(self, path: str) -> aiohttp.web.Response | None:
        path = path.rstrip('/') or '/'
        if path == '/version':
            return _json(SERVER_VERSION)
        if path in ('/healthz', '/livez', '/readyz'):
            return aiohttp.web.Response(text='ok')
        if path == '/api':
            return _json({'kind': 'APIVersions', 'versions': ['v1'],
                          'serverAddressByClientCIDRs': []})
        if path == '/apis':
            return _json({'kind': 'APIGroupList', 'apiVersion': 'v1',
                          'groups': [self._group(g) for g in sorted(self._groups()) if g]})
        if path.startswith('/apis/') and path.count('/') == 2:
            group = path.split('/')[2]
            if group not in self._groups():
                raise ApiError(404, 'NotFound', 'the server could not find the requested '
                                                'resource')
            return _json({**self._group(group), 'kind': 'APIGroup', 'apiVersion': 'v1'})
        if path == '/':
            paths = ['/api', '/api/v1', '/apis', '/version', '/healthz']
            for group, versions in self._groups().items():
                if group:
                    paths.append(f'/apis/{group}')
                    paths.extend(f'/apis/{group}/{v}' for v in versions)
            return _json({'paths': sorted(paths)})
        return None

    def _groups(self) -> dict[str, list[str]]:
        return {group: sorted(versions, key=version_priority)
                for group, versions in self.registry.group_versions().items()}

    def _group(self, group: str) -> dict[str, Any]:
        versions = self._groups()[group]
        entries = [{'groupVersion': f'{group}/{v}', 'version': v} for v in versions]
        return {'name': group, 'versions': entries, 'preferredVersion': entries[0]}

    def _resource_list(self, group: str, version: str) -> dict[str, Any]:
        types = [t for t in self.registry.all() if t.group == group and t.version == version]
        if not types:
            raise ApiError(404, 'NotFound', 'the server could not find the requested resource')
        resources: list[dict[str, Any]] = []
        for rtype in sorted(types, key=lambda t: t.plural):
            entry: dict[str, Any] = {
                'name': rtype.plural, 'singularName': rtype.singular,
                'namespaced': rtype.namespaced, 'kind': rtype.kind, 'verbs': list(VERBS),
            }
            if rtype.short_names:
                entry['shortNames'] = list(rtype.short_names)
            if rtype.categories:
                entry['categories'] = list(rtype.categories)
            resources.append(entry)
            for sub in rtype.subresources:
                sub_entry: dict[str, Any] = {
                    'name': f'{rtype.plural}/{sub}', 'singularName': '',
                    'namespaced': rtype.namespaced, 'kind': rtype.kind,
                    'verbs': ['get', 'patch', 'update'],
                }
                if sub == 'scale':
                    sub_entry.update(group='autoscaling', version='v1', kind='Scale')
                elif sub == 'binding':
                    sub_entry.update(kind='Binding', verbs=['create'])
                elif sub == 'log':
                    sub_entry.update(verbs=['get'])
                resources.append(sub_entry)
        return {'kind': 'APIResourceList', 'apiVersion': 'v1',
                'groupVersion': f'{group}/{version}' if group else version,
                'resources': resources}
