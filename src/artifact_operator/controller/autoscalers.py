"""The HorizontalPodAutoscalers we render (`runtime.<group>.autoscaling`), watched by label
with a list-watch of our own: their API version is the one the server serves (v2, or v2beta2
before 1.23), known only once the operator has asked, after kopf's handlers are registered.
`OwnerIndex` files them by (namespace, artifact) for `ClusterView`, as kopf's indexes do for
the other children."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from artifact_operator.api import naming
from artifact_operator.controller.view import Key, Obj, slim
from artifact_operator.kube.client import Kube
from artifact_operator.kube.watch import ListWatch

KIND = "HorizontalPodAutoscaler"
VERSIONS = ("autoscaling/v2", "autoscaling/v2beta2")


async def served_version(kube: Kube) -> str:
    """autoscaling/v2 where served (1.23+), else v2beta2 (1.20-1.22)."""
    for version in VERSIONS:
        if await kube.serves(version, "horizontalpodautoscalers"):
            return version
    return VERSIONS[-1]


class OwnerIndex(Mapping[Key, list[Obj]]):
    """The watched objects by owning artifact: (namespace, artifact) -> [slim object]."""

    def __init__(self) -> None:
        self._by_owner: dict[Key, dict[str, Obj]] = {}
        self._owner_of: dict[tuple[str, str], Key] = {}

    def note(self, namespace: str, name: str, obj: Obj | None) -> Key | None:
        """Record `obj` (None: gone); return its owner's key, if any."""
        before = self._owner_of.pop((namespace, name), None)
        if before is not None:
            self._by_owner.get(before, {}).pop(name, None)
            if not self._by_owner.get(before):
                self._by_owner.pop(before, None)
        if obj is None:
            return before
        artifact = (obj.get("metadata", {}).get("labels") or {}).get(naming.LABEL_ARTIFACT)
        if not artifact:
            return before
        key = (namespace, str(artifact))
        self._by_owner.setdefault(key, {})[name] = obj
        self._owner_of[(namespace, name)] = key
        return key

    def __getitem__(self, key: Key) -> list[Obj]:
        return list(self._by_owner[key].values())

    def __iter__(self) -> Iterator[Key]:
        return iter(self._by_owner)

    def __len__(self) -> int:
        return len(self._by_owner)


def autoscaler_watch(kube: Kube, version: str, namespaces: list[str] | None,
                     index: OwnerIndex, enqueue: Callable[[Key], None]) -> ListWatch:
    """A list-watch of our HPAs feeding `index`, waking the artifact that owns each change."""
    def typed(body: Mapping[str, Any]) -> Obj:
        # List items come without kind and apiVersion; the view keys children by kind.
        return slim({**body, "apiVersion": version, "kind": KIND})

    watch: ListWatch

    def changed(namespace: str, name: str) -> None:
        owner = index.note(namespace, name, watch.get(namespace, name))
        if owner is not None:
            enqueue(owner)

    watch = ListWatch(kube, version, KIND, f"{naming.LABEL_MANAGED_BY}={naming.MANAGER}",
                      namespaces, typed, changed)
    return watch
