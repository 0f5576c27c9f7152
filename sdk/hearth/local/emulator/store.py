"""The object store: API-server semantics over an in-memory map.

Everything a client observes about an object's lifecycle happens here, synchronously,
on the server's event loop (one writer, so no locks):

* server-side metadata: ``uid``, ``creationTimestamp``, a global monotonically
  increasing ``resourceVersion`` (etcd's revision), ``generation`` that moves only
  when the spec changes, and ``generateName``;
* the status subresource: main-resource writes keep the old status, status writes
  keep everything but the status;
* optimistic concurrency: a write carrying a stale ``resourceVersion`` is a 409;
* no-op writes do not bump the ``resourceVersion`` and produce no watch event;
* finalizers: a DELETE of an object with finalizers only sets
  ``deletionTimestamp``; the object goes away when the last finalizer is removed;
* graceful pod deletion: a pod bound to a node stays, with ``deletionTimestamp`` in
  the future, until the kubelet deletes it with a grace period of 0;
* every change is recorded as a watch event with its resourceVersion, so watches
  can resume from a version (or get 410 Gone when it is too old).

Objects are immutable once stored (every write stores a new dict), so watch
events and list results can share them without copying.
"""

from __future__ import annotations

import builtins
import collections
import copy
import dataclasses
import datetime
import secrets
import string
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from hearth.local.emulator import kinds, metadata, quota, schema
from hearth.local.emulator.errors import (
    ApiError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
)
from hearth.local.emulator.patching import apply_patch
from hearth.local.emulator.resources import (
    CRD_GROUP_PLURAL,
    NAMESPACE_GROUP_PLURAL,
    POD_GROUP_PLURAL,
    Registry,
    ResourceType,
)
from hearth.local.emulator.selectors import field_matcher, label_matcher

GroupPlural = tuple[str, str]
ObjectKey = tuple[str, str]  # (namespace or '', name)
Obj = dict[str, Any]
# A project hook: (resource type, new object, old object or None) -> field errors.
Validator = Callable[[ResourceType, Obj, Obj | None], list[tuple[str, str]]]

#: The format of :meth:`Store.snapshot`.
SNAPSHOT_VERSION = 1
FOREGROUND_FINALIZER = "foregroundDeletion"
CRD_CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
_SERVER_FIELDS = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "managedFields",
    "selfLink",
)


def now_rfc3339(offset_seconds: float = 0) -> str:
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED
    group_plural: GroupPlural
    obj: Obj
    old: Obj | None  # the previous state, for selector transitions on watches
    rv: int


class Store:
    def __init__(
        self,
        registry: Registry,
        *,
        history_size: int = 10_000,
        validators: Iterable[Validator] = (),
    ) -> None:
        self.registry = registry
        self.validators = list(validators)
        self._objects: dict[GroupPlural, dict[ObjectKey, Obj]] = collections.defaultdict(dict)
        self._by_uid: dict[str, tuple[GroupPlural, ObjectKey]] = {}
        self._dependents: dict[str, set[tuple[GroupPlural, ObjectKey]]] = collections.defaultdict(
            set
        )
        self._by_namespace: dict[str, set[tuple[GroupPlural, str]]] = collections.defaultdict(set)
        self._by_kind_in_namespace: dict[tuple[str, GroupPlural], set[str]] = (
            collections.defaultdict(set)
        )
        self._rv = 0
        self.history: collections.deque[WatchEvent] = collections.deque(maxlen=history_size)
        self.listeners: list[Callable[[WatchEvent], None]] = []
        # Work for the garbage collector: uids of removed objects whose dependents to check.
        self.removed_uids: set[str] = set()
        self.created_with_owners: set[str] = set()
        # Set when something starts terminating; the collector clears it when all is done.
        self.terminating = False

    # ----- reading -------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        return self._rv

    def oldest_watchable_rv(self) -> int:
        return self.history[0].rv if len(self.history) == self.history.maxlen else 0

    def replay(self, since: int) -> list[WatchEvent]:
        """The recorded events after a resourceVersion, each with its previous state when
        the history still has it (like the watch cache of a real server)."""
        previous: dict[str, Obj] = {}
        result: list[WatchEvent] = []
        for event in self.history:
            uid = event.obj["metadata"]["uid"]
            if event.rv > since:
                result.append(dataclasses.replace(event, old=previous.get(uid)))
            previous[uid] = event.obj
        return result

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects[rtype.group_plural].get((namespace or "", name))
        if obj is None:
            raise not_found(rtype.plural, name, rtype.group)
        return obj

    def find(self, group_plural: GroupPlural, namespace: str | None, name: str) -> Obj | None:
        return self._objects[group_plural].get((namespace or "", name))

    def by_uid(self, uid: str) -> tuple[GroupPlural, Obj] | None:
        location = self._by_uid.get(uid)
        if location is None:
            return None
        group_plural, key = location
        return group_plural, self._objects[group_plural][key]

    def dependents_of(self, uid: str) -> list[tuple[GroupPlural, Obj]]:
        return [
            (gp, self._objects[gp][key])
            for gp, key in sorted(self._dependents.get(uid, ()))
            if key in self._objects[gp]
        ]

    def all_objects(self) -> list[tuple[GroupPlural, Obj]]:
        return [(gp, obj) for gp, objs in self._objects.items() for obj in objs.values()]

    def objects_of(self, group_plural: GroupPlural) -> list[Obj]:
        return list(self._objects[group_plural].values())

    def namespaced_in(self, namespace: str) -> list[tuple[GroupPlural, Obj]]:
        return [
            (gp, self._objects[gp][(namespace, name)])
            for gp, name in sorted(self._by_namespace.get(namespace, ()))
        ]

    def objects_in(self, namespace: str, group_plural: GroupPlural) -> list[Obj]:
        names = sorted(self._by_kind_in_namespace.get((namespace, group_plural), ()))
        return [self._objects[group_plural][(namespace, name)] for name in names]

    def count_in(self, namespace: str, group_plural: GroupPlural) -> int:
        return len(self._by_kind_in_namespace.get((namespace, group_plural), ()))

    def list(
        self,
        rtype: ResourceType,
        namespace: str | None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> list[Obj]:
        labels_ok = label_matcher(label_selector)
        fields_ok = field_matcher(field_selector)
        items = [
            obj
            for (ns, _), obj in sorted(self._objects[rtype.group_plural].items())
            if namespace is None or ns == namespace
        ]
        return [obj for obj in items if labels_ok(obj) and fields_ok(obj)]

    # ----- saving and loading ----------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Every stored object and the current resourceVersion, for :meth:`restore`.

        Objects are never changed in place once stored, so the result shares them.
        """
        return {
            "version": SNAPSHOT_VERSION,
            "resourceVersion": self._rv,
            "objects": [obj for _, obj in self.all_objects()],
        }

    def restore(self, snapshot: dict[str, Any]) -> builtins.list[str]:
        """Load a :meth:`snapshot` into this empty store, objects exactly as they were (uid,
        resourceVersion, generation, status), like an API server restarted on its etcd.

        No watch events are sent (no watch predates the restore) and the watch history
        starts empty. The garbage collector and the namespace controller pick up what was
        pending: dangling owner references, objects being deleted. Returns a note for each
        object that could not be loaded (its kind no longer served).
        """
        if any(self._objects.values()):
            raise ValueError("restore needs an empty store")
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"snapshot version {snapshot.get('version')!r} is not {SNAPSHOT_VERSION}"
            )
        objects = snapshot.get("objects")
        if not isinstance(objects, list):
            raise ValueError("snapshot.objects: expected a list of objects")
        crds = [obj for obj in objects if obj.get("kind") == "CustomResourceDefinition"]
        self.registry.rebuild(crds)
        skipped: builtins.list[str] = []
        highest = int(snapshot.get("resourceVersion") or 0)
        for obj in objects:
            meta = obj.get("metadata") or {}
            rtype = self.registry.find_kind(str(obj.get("apiVersion")), str(obj.get("kind")))
            if rtype is None or not meta.get("name") or not meta.get("uid"):
                skipped.append(f"{obj.get('apiVersion')} {obj.get('kind')} {meta.get('name')}")
                continue
            key = (meta.get("namespace") or "" if rtype.namespaced else "", meta["name"])
            self._objects[rtype.group_plural][key] = obj
            self._index(rtype.group_plural, key, obj, None)
            highest = max(highest, int(meta.get("resourceVersion") or 0))
            if meta.get("ownerReferences"):
                self.created_with_owners.add(meta["uid"])
            if meta.get("deletionTimestamp"):
                self.terminating = True
        self._rv = highest
        return skipped

    # ----- writing -------------------------------------------------------------------------

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(self, kind: str, rtype_gp: GroupPlural, obj: Obj, old: Obj | None) -> None:
        event = WatchEvent(kind, rtype_gp, obj, old, int(obj["metadata"]["resourceVersion"]))
        # The history keeps no previous states (memory); a resumed watch derives them.
        self.history.append(dataclasses.replace(event, old=None))
        if rtype_gp == CRD_GROUP_PLURAL:
            self.registry.rebuild(self._objects[CRD_GROUP_PLURAL].values())
        for listener in list(self.listeners):
            listener(event)

    def _index(self, gp: GroupPlural, key: ObjectKey, obj: Obj | None, old: Obj | None) -> None:
        for ref in (old or {}).get("metadata", {}).get("ownerReferences") or []:
            self._dependents[ref.get("uid", "")].discard((gp, key))
        if obj is not None:
            if key[0]:
                self._by_namespace[key[0]].add((gp, key[1]))
                self._by_kind_in_namespace[(key[0], gp)].add(key[1])
            self._by_uid[obj["metadata"]["uid"]] = (gp, key)
            for ref in obj["metadata"].get("ownerReferences") or []:
                self._dependents[ref.get("uid", "")].add((gp, key))
        elif old is not None:
            self._by_uid.pop(old["metadata"]["uid"], None)
            self._by_namespace[key[0]].discard((gp, key[1]))
            self._by_kind_in_namespace[(key[0], gp)].discard(key[1])

    def _check_namespace(self, rtype: ResourceType, namespace: str | None) -> str:
        if not rtype.namespaced:
            return ""
        if not namespace:
            raise bad_request("the namespace of the object must be set for namespaced resources")
        ns = self.find(NAMESPACE_GROUP_PLURAL, None, namespace)
        if ns is None:
            raise not_found("namespaces", namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise forbidden(
                f"{rtype.plural} is forbidden: unable to create new content in "
                f"namespace {namespace} because it is being terminated",
                kind=rtype.plural,
            )
        return namespace

    def _prepare(self, rtype: ResourceType, obj: Obj, old: Obj | None, strict: bool = False) -> Obj:
        """Defaulting, pruning and validation common to create and update.

        ``strict`` is `fieldValidation=Strict` (what kubectl sends): unknown fields are a
        400 instead of being pruned silently.
        """
        if rtype.custom:
            pruned = schema.prune_object(rtype.schema, obj)
            unknown = schema.unknown_fields(obj, pruned) if strict else []
            if unknown:
                raise bad_request(
                    f'{rtype.kind} in version "{rtype.version}" cannot be handled '
                    f"as a {rtype.kind}: strict decoding error: "
                    + ", ".join(f'unknown field "{field}"' for field in unknown)
                )
            obj = pruned
            causes = schema.validate(rtype.schema, obj)
        else:
            kinds.apply_defaults(rtype, obj)
            causes = []
        causes = metadata.validate_metadata(rtype, obj.get("metadata") or {}) + causes
        if not causes:
            # Like CEL on a real server, project rules only see objects the schema accepts.
            for validator in self.validators:
                causes.extend(validator(rtype, obj, old))
        if causes:
            raise invalid(rtype.kind, obj["metadata"]["name"], causes, group=rtype.group)
        return obj

    def create(
        self, rtype: ResourceType, namespace: str | None, body: Any, *, strict: bool = False
    ) -> Obj:
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        obj: Obj = copy.deepcopy(body)
        if obj.get("kind") not in (None, rtype.kind):
            raise bad_request(
                f"the kind of the object ({obj.get('kind')}) does not match "
                f"the resource ({rtype.kind})"
            )
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        body_ns = meta.get("namespace")
        if rtype.namespaced and namespace and body_ns and body_ns != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the "
                "namespace sent on the request"
            )
        namespace = self._check_namespace(rtype, namespace or body_ns)
        if not meta.get("name") and meta.get("generateName"):
            alphabet = string.ascii_lowercase + string.digits
            meta["name"] = meta["generateName"] + "".join(
                secrets.choice(alphabet) for _ in range(5)
            )
        name = meta.get("name") or ""
        if not name:
            raise invalid(
                rtype.kind,
                "",
                [("metadata.name", "Required value: name or generateName is required")],
                group=rtype.group,
            )
        name_causes = metadata.validate_name(rtype, name)
        if name_causes:
            raise invalid(rtype.kind, name, name_causes, group=rtype.group)
        if (namespace, name) in self._objects[rtype.group_plural]:
            raise already_exists(rtype.plural, name, rtype.group)
        if rtype.group_plural == CRD_GROUP_PLURAL:
            expected = (
                f"{obj.get('spec', {}).get('names', {}).get('plural')}."
                f"{obj.get('spec', {}).get('group')}"
            )
            if name != expected:
                raise invalid(
                    rtype.kind,
                    name,
                    [
                        (
                            "metadata.name",
                            f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
                        )
                    ],
                    group=rtype.group,
                )
        for field in _SERVER_FIELDS:
            meta.pop(field, None)
        if rtype.namespaced:
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        if rtype.has_status:
            obj.pop("status", None)
            status = kinds.initial_status(rtype, body)
            if status is not None:
                obj["status"] = status
        obj = self._prepare(rtype, obj, None, strict)
        kinds.validate_create(rtype, obj)
        if namespace:
            quotas = self.objects_in(namespace, quota.QUOTA_GROUP_PLURAL)
            if quotas:
                quota.check_admission(self, rtype, obj, quotas)
        meta = obj["metadata"]
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        meta["resourceVersion"] = str(self._next_rv())
        key = (namespace, name)
        self._objects[rtype.group_plural][key] = obj
        self._index(rtype.group_plural, key, obj, None)
        if meta.get("ownerReferences"):
            self.created_with_owners.add(meta["uid"])
        self._emit("ADDED", rtype.group_plural, obj, None)
        return obj

    def replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Any,
        subresource: str | None = None,
        *,
        strict: bool = False,
    ) -> Obj:
        """PUT: the body replaces the object (or only its status for `/status`)."""
        old = self.get(rtype, namespace, name)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        kinds.check_name_change(rtype, old, body)
        sent_rv = (body.get("metadata") or {}).get("resourceVersion")
        if sent_rv and sent_rv != old["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, name, rtype.group)
        return self._write(rtype, old, copy.deepcopy(body), subresource, strict)

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        patch: Any,
        content_type: str,
        subresource: str | None = None,
        *,
        strict: bool = False,
    ) -> Obj:
        old = self.get(rtype, namespace, name)
        patched = apply_patch(old, patch, content_type, custom=rtype.custom)
        kinds.check_name_change(rtype, old, patched)
        # A resourceVersion inside the patch is a precondition, as on the real server.
        if patched.get("metadata", {}).get("resourceVersion") != old["metadata"]["resourceVersion"]:
            raise conflict(rtype.plural, name, rtype.group)
        return self._write(rtype, old, patched, subresource, strict)

    def _write(
        self, rtype: ResourceType, old: Obj, new: Obj, subresource: str | None, strict: bool = False
    ) -> Obj:
        if subresource == "status":
            # Only the status changes through /status; everything else is taken from old.
            status = new.get("status")
            new = copy.deepcopy(old)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
        elif subresource is not None:
            raise bad_request(f"subresource {subresource!r} cannot be written this way")
        elif rtype.has_status:
            # Main-resource writes ignore the status when there is a status subresource.
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        return self.commit(rtype, old, new, strict=strict)

    def commit(self, rtype: ResourceType, old: Obj, new: Obj, *, strict: bool = False) -> Obj:
        """Store a new state of an existing object, with all server-side rules applied."""
        meta = new.setdefault("metadata", {})
        old_meta = old["metadata"]
        name = old_meta["name"]
        for field in (
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "generateName",
        ):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        meta.pop("managedFields", None)
        new["apiVersion"] = old["apiVersion"]
        new["kind"] = old["kind"]
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise invalid(
                    rtype.kind,
                    name,
                    [
                        (
                            "metadata.finalizers",
                            "Forbidden: no new "
                            "finalizers can be added if the object is "
                            "being deleted, found new finalizers "
                            f"{sorted(added)!r}",
                        )
                    ],
                    group=rtype.group,
                )
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        if not meta.get("ownerReferences"):
            meta.pop("ownerReferences", None)
        new = self._prepare(rtype, new, old, strict)
        kinds.validate_update(rtype, old, new)
        excluded = ("metadata", "status") if rtype.has_status else ("metadata",)
        spec_changed = {k: v for k, v in new.items() if k not in excluded} != {
            k: v for k, v in old.items() if k not in excluded
        }
        meta["generation"] = old_meta.get("generation", 1) + (1 if spec_changed else 0)
        meta["resourceVersion"] = old_meta["resourceVersion"]
        if new == old:
            return old  # a no-op write: same resourceVersion, no watch event
        meta["resourceVersion"] = str(self._next_rv())
        key = (meta.get("namespace", ""), name)
        spec_finalizers = rtype.group_plural == NAMESPACE_GROUP_PLURAL and bool(
            new.get("spec", {}).get("finalizers")
        )
        if (
            meta.get("deletionTimestamp")
            and not meta.get("finalizers")
            and not spec_finalizers
            and meta.get("deletionGracePeriodSeconds", 0) == 0
        ):
            self._objects[rtype.group_plural][key] = new
            self._remove(rtype.group_plural, key, new)
            return new
        self._objects[rtype.group_plural][key] = new
        self._index(rtype.group_plural, key, new, old)
        self._emit("MODIFIED", rtype.group_plural, new, old)
        return new

    def _remove(self, gp: GroupPlural, key: ObjectKey, last: Obj) -> Obj:
        old = self._objects[gp].pop(key)
        gone = copy.deepcopy(last)
        gone["metadata"]["resourceVersion"] = str(self._next_rv())
        self._index(gp, key, None, old)
        self.removed_uids.add(old["metadata"]["uid"])
        self._emit("DELETED", gp, gone, old)
        return gone

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: dict[str, Any] | None = None,
    ) -> tuple[Obj, bool]:
        """DELETE; returns the object and whether it is gone (False: deletion is pending)."""
        options = options or {}
        old = self.get(rtype, namespace, name)
        meta = old["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") not in (None, meta["uid"]):
            raise conflict(
                rtype.plural,
                name,
                rtype.group,
                f"Precondition failed: UID in precondition: {preconditions['uid']}, "
                f"UID in object meta: {meta['uid']}",
            )
        if preconditions.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise conflict(rtype.plural, name, rtype.group)
        # batch/v1 Jobs still default to orphaning their pods when no policy is given.
        default = "Orphan" if (rtype.group, rtype.plural) == ("batch", "jobs") else "Background"
        policy = options.get("propagationPolicy") or default
        if options.get("orphanDependents") is True:
            policy = "Orphan"
        key = (meta.get("namespace", ""), name)
        grace = self._grace_period(rtype, old, options)

        new = copy.deepcopy(old)
        new_meta = new["metadata"]
        finalizers: list[str] = list(new_meta.get("finalizers") or [])
        if policy == "Orphan":
            self.orphan_dependents(meta["uid"])
        elif (
            policy == "Foreground"
            and self._dependents.get(meta["uid"])
            and FOREGROUND_FINALIZER not in finalizers
            and not meta.get("deletionTimestamp")
        ):
            finalizers.append(FOREGROUND_FINALIZER)
        if rtype.group_plural == CRD_GROUP_PLURAL and not meta.get("deletionTimestamp"):
            finalizers.append(CRD_CLEANUP_FINALIZER)
        if rtype.group_plural == NAMESPACE_GROUP_PLURAL:
            # The namespace controller empties it, then lifts the `kubernetes` spec finalizer.
            new.setdefault("status", {})["phase"] = "Terminating"
        if finalizers:
            new_meta["finalizers"] = finalizers

        if meta.get("deletionTimestamp"):
            # Already terminating: only a shorter grace period changes anything.
            current = meta.get("deletionGracePeriodSeconds", 0)
            if grace >= current:
                return old, False
            new_meta["deletionGracePeriodSeconds"] = grace
            new_meta["deletionTimestamp"] = now_rfc3339(grace)
        else:
            new_meta["deletionTimestamp"] = now_rfc3339(grace)
            new_meta["deletionGracePeriodSeconds"] = grace
            new_meta["generation"] = meta.get("generation", 1) + 1

        pending_spec_finalizers = rtype.group_plural == NAMESPACE_GROUP_PLURAL and bool(
            new.get("spec", {}).get("finalizers")
        )
        if grace == 0 and not new_meta.get("finalizers") and not pending_spec_finalizers:
            return self._remove(rtype.group_plural, key, old), True
        new_meta["resourceVersion"] = str(self._next_rv())
        self._objects[rtype.group_plural][key] = new
        self._index(rtype.group_plural, key, new, old)
        self.terminating = True
        self._emit("MODIFIED", rtype.group_plural, new, old)
        return new, False

    def _grace_period(self, rtype: ResourceType, obj: Obj, options: dict[str, Any]) -> int:
        """Only pods bound to a node are deleted gracefully (the kubelet finishes it)."""
        if rtype.group_plural != POD_GROUP_PLURAL or not obj.get("spec", {}).get("nodeName"):
            return 0
        if obj.get("status", {}).get("phase") in ("Succeeded", "Failed"):
            return 0
        requested = options.get("gracePeriodSeconds")
        if requested is None:
            requested = obj.get("spec", {}).get("terminationGracePeriodSeconds", 30)
        return max(0, int(requested))

    def finish_namespace(self, name: str) -> None:
        """The namespace controller's last step: lift spec.finalizers and remove it."""
        ns = self.find(NAMESPACE_GROUP_PLURAL, None, name)
        if ns is None:
            return
        new = copy.deepcopy(ns)
        new["spec"] = {**new.get("spec", {}), "finalizers": []}
        if not new["metadata"].get("finalizers"):
            self._remove(NAMESPACE_GROUP_PLURAL, ("", name), new)
        elif new != ns:
            rtype = self.registry.any_version(*NAMESPACE_GROUP_PLURAL)
            assert rtype is not None
            self.commit(rtype, ns, new)

    def orphan_dependents(self, owner_uid: str) -> None:
        for gp, dependent in self.dependents_of(owner_uid):
            self.drop_owner_refs(gp, dependent, {owner_uid})

    def drop_owner_refs(self, gp: GroupPlural, obj: Obj, uids: set[str]) -> None:
        rtype = self.registry.any_version(*gp)
        if rtype is None:
            return
        new = copy.deepcopy(obj)
        refs = [
            ref
            for ref in new["metadata"].get("ownerReferences") or []
            if ref.get("uid") not in uids
        ]
        new["metadata"]["ownerReferences"] = refs
        self.commit(rtype, obj, new)

    def remove_finalizer(self, gp: GroupPlural, obj: Obj, finalizer: str) -> None:
        rtype = self.registry.any_version(*gp)
        if rtype is None:
            return
        new = copy.deepcopy(obj)
        new["metadata"]["finalizers"] = [
            f for f in new["metadata"].get("finalizers") or [] if f != finalizer
        ]
        self.commit(rtype, obj, new)

    def bind_pod(self, rtype: ResourceType, namespace: str, name: str, node: str) -> Obj:
        """pods/binding: the scheduler's (here the kubelet's) way to set spec.nodeName once."""
        old = self.get(rtype, namespace, name)
        if old.get("spec", {}).get("nodeName"):
            raise conflict(
                rtype.plural,
                name,
                "",
                f'pod {name} is already assigned to node "{old["spec"]["nodeName"]}"',
            )
        new = copy.deepcopy(old)
        new["spec"]["nodeName"] = node
        # Bypass the pod-spec immutability check: binding is the one allowed path.
        new_meta = new["metadata"]
        new_meta["resourceVersion"] = str(self._next_rv())
        key = (namespace, name)
        self._objects[rtype.group_plural][key] = new
        self._emit("MODIFIED", rtype.group_plural, new, old)
        return new


__all__ = ["ApiError", "Store", "WatchEvent", "now_rfc3339"]
