"""The controllers of kube-controller-manager that clean up: garbage collector,
namespace lifecycle, and CRD instance cleanup.

They run after writes, asynchronously, like the real ones, so a test observes the
same intermediate states a real cluster shows (an owner gone while its children
still exist for a moment). Each :meth:`GarbageCollector.sweep` does one round of
work through the store's public operations and reports whether it changed anything;
the server repeats sweeps until nothing is left to do.

* Background cascade: when an object is removed, each dependent that has no other
  live owner is deleted (its own finalizers are honoured); dependents that still
  have a live owner only lose the dangling reference. Works across scopes (a
  cluster-scoped owner of namespaced children), because owners are found by uid.
* Dependents created with owner references to objects that do not exist are
  deleted, as the real collector does after it fails to find the owner.
* Foreground: an owner with the `foregroundDeletion` finalizer has its dependents
  deleted first; the finalizer is lifted when no dependent blocks it any more.
* Namespace lifecycle: a terminating namespace has all its content deleted, and is
  removed when it is empty.
* CRD cleanup: a deleted CRD has all its custom resources deleted first.
"""

from __future__ import annotations

from hearth.local.emulator.errors import ApiError
from hearth.local.emulator.resources import CRD_GROUP_PLURAL, NAMESPACE_GROUP_PLURAL
from hearth.local.emulator.store import (
    CRD_CLEANUP_FINALIZER,
    FOREGROUND_FINALIZER,
    GroupPlural,
    Obj,
    Store,
)


class GarbageCollector:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._seen_terminating = False

    def sweep(self) -> bool:
        changed = False
        changed |= self._collect_orphans()
        changed |= self._collect_dangling()
        # Scanning for terminating owners, namespaces and CRDs costs a pass over all
        # objects: do it only while the store says something is being deleted.
        if self.store.terminating:
            self._seen_terminating = False
            changed |= self._foreground()
            changed |= self._namespaces()
            changed |= self._crds()
            if not self._seen_terminating:
                self.store.terminating = False
        return changed

    def _delete(self, gp: GroupPlural, obj: Obj) -> bool:
        if obj["metadata"].get("deletionTimestamp"):
            return False
        rtype = self.store.registry.any_version(*gp)
        if rtype is None:
            return False
        try:
            self.store.delete(
                rtype,
                obj["metadata"].get("namespace"),
                obj["metadata"]["name"],
                {
                    "propagationPolicy": "Background",
                    "preconditions": {"uid": obj["metadata"]["uid"]},
                },
            )
        except ApiError:
            return False  # gone or replaced meanwhile: nothing to collect
        return True

    def _owner_alive(self, dependent: Obj, ref: dict[str, str]) -> bool:
        """As the real collector resolves owners: cluster-scoped owners from anywhere, a
        namespaced owner only in the dependent's own namespace (elsewhere it is absent, and
        the dependent is collected). A cluster-scoped dependent with a namespaced owner is
        unresolvable and never collected (the real collector only reports an event)."""
        found = self.store.by_uid(ref.get("uid", ""))
        dependent_ns = dependent["metadata"].get("namespace")
        if found is None:
            return False
        owner_ns = found[1]["metadata"].get("namespace")
        if owner_ns is not None and dependent_ns is None:
            return True
        return owner_ns is None or owner_ns == dependent_ns

    def _collect_for(self, gp: GroupPlural, obj: Obj) -> bool:
        refs = obj["metadata"].get("ownerReferences") or []
        dangling = {ref.get("uid") for ref in refs if not self._owner_alive(obj, ref)}
        if not dangling:
            return False
        if len(dangling) == len(refs):
            return self._delete(gp, obj)
        self.store.drop_owner_refs(gp, obj, {uid for uid in dangling if uid})
        return True

    def _collect_orphans(self) -> bool:
        changed = False
        while self.store.removed_uids:
            uid = self.store.removed_uids.pop()
            for gp, dependent in self.store.dependents_of(uid):
                changed |= self._collect_for(gp, dependent)
        return changed

    def _collect_dangling(self) -> bool:
        changed = False
        while self.store.created_with_owners:
            found = self.store.by_uid(self.store.created_with_owners.pop())
            if found is not None:
                changed |= self._collect_for(*found)
        return changed

    def _foreground(self) -> bool:
        changed = False
        for gp, obj in self.store.all_objects():
            meta = obj["metadata"]
            if FOREGROUND_FINALIZER not in (meta.get("finalizers") or []):
                continue
            self._seen_terminating = True
            dependents = self.store.dependents_of(meta["uid"])
            for dep_gp, dependent in dependents:
                changed |= self._delete(dep_gp, dependent)
            blocking = [
                d
                for _, d in dependents
                if any(
                    ref.get("uid") == meta["uid"] and ref.get("blockOwnerDeletion")
                    for ref in d["metadata"].get("ownerReferences") or []
                )
            ]
            current = self.store.by_uid(meta["uid"])
            if not blocking and current is not None:
                self.store.remove_finalizer(gp, current[1], FOREGROUND_FINALIZER)
                changed = True
        return changed

    def _namespaces(self) -> bool:
        changed = False
        for ns in self.store.objects_of(NAMESPACE_GROUP_PLURAL):
            if not ns["metadata"].get("deletionTimestamp"):
                continue
            self._seen_terminating = True
            name = ns["metadata"]["name"]
            content = self.store.namespaced_in(name)
            for gp, obj in content:
                changed |= self._delete(gp, obj)
            if not content and ns.get("spec", {}).get("finalizers"):
                self.store.finish_namespace(name)
                changed = True
        return changed

    def _crds(self) -> bool:
        changed = False
        for crd in self.store.objects_of(CRD_GROUP_PLURAL):
            meta = crd["metadata"]
            if CRD_CLEANUP_FINALIZER not in (meta.get("finalizers") or []):
                continue
            self._seen_terminating = True
            gp = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
            instances = self.store.objects_of(gp)
            for obj in instances:
                changed |= self._delete(gp, obj)
            if not instances:
                self.store.remove_finalizer(CRD_GROUP_PLURAL, crd, CRD_CLEANUP_FINALIZER)
                changed = True
        return changed
