"""kopf wiring of the controller: the Artifacts and the ArtifactApprovals. Handlers only route
events to the reconciler; they hold no business logic. Objects are built in app/context.py,
not here. Our children are not watched through kopf but by our own lean watches
(kube/watch.py, wired in app/context.py): kopf's per-event machinery cost about half of the
operator's CPU for the ~5 events each artifact's children produce (docs/benchmarks.md).

Only level-based kopf features are used (`on.event`, `index`), so kopf itself writes
nothing to Artifacts: no finalizer, no progress or diff-base annotations.
"""

from __future__ import annotations

from typing import Any, cast

import kopf

from artifact_operator.api import naming
from artifact_operator.api.approval import APPROVAL_PLURAL
from artifact_operator.api.base import API_GROUP, API_VERSION, PLURAL
from artifact_operator.controller.reconcile import Reconciler
from artifact_operator.controller.view import slim


class NoDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf builds a diff base of every event (a deep copy of the whole body, managedFields
    included) for on.create/on.update handlers. We register none, so there is nothing to
    diff: skipping it spares ~5% of the operator's CPU under load (docs/benchmarks.md)."""

    def build(self, *, body: Any, extra_fields: Any = None) -> kopf.BodyEssence:
        return cast(kopf.BodyEssence, {})

    def fetch(self, *, body: Any) -> kopf.BodyEssence | None:
        return None


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # Our handlers are level-based and keep no state in objects; keep kopf's storage (unused
    # by on.event/index) under our own prefix all the same, so nothing lands under kopf's.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.PREFIX)
    settings.persistence.diffbase_storage = NoDiffBase(
        prefix=naming.PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = f"{naming.PREFIX}/finalizer"
    # We post our own Events; kopf's own posting of handler logs stays off.
    settings.posting.enabled = False
    # kopf keeps a worker per Artifact, holding its last event's body, until the object has
    # been quiet this long (5 s by default): in a burst of creations, thousands at once, whose
    # memory the process keeps after they go. Our handlers only note the body and wake the
    # work queue, so a worker is cheap to start again (A/B at N=1000: peak RSS -2.3 MB).
    settings.batching.idle_timeout = 0.5
    # Namespaces and CRDs are not discovered at runtime: the CRD is installed with the
    # operator, which spares a cluster-wide watch on CRDs.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


def reconciler_of(memo: Any) -> Reconciler:
    """The Reconciler the composition root (app/context.py) put into kopf's memo."""
    reconciler = memo.reconciler
    assert isinstance(reconciler, Reconciler), "the operator started without a Reconciler"
    return reconciler


def _approval_key(body: Any, namespace: str | None) -> tuple[str, str] | None:
    artifact = (body.get("spec") or {}).get("artifact") or {}
    name = artifact.get("name") if isinstance(artifact, dict) else None
    return (namespace, str(name)) if namespace and name else None


# ArtifactApprovals by the artifact they name. Only read: whether one holds is decided per
# reconcile (logic/approval.decide), and the uid in it is checked there.
@kopf.index(API_GROUP, API_VERSION, APPROVAL_PLURAL)
async def approvals(body: Any, namespace: str | None, **_: Any) -> Any:
    key = _approval_key(body, namespace)
    return {key: slim(body)} if key is not None else {}


def _bind(memo: Any, kwargs: dict[str, Any]) -> Reconciler:
    reconciler = reconciler_of(memo)
    if reconciler.view.approval_index is None:  # kopf hands its indexes only to handlers
        reconciler.view.bind({}, approvals=kwargs["approvals"])
    return reconciler


@kopf.on.event(API_GROUP, API_VERSION, PLURAL)
async def artifact_event(type: str, body: Any, namespace: str | None, name: str, memo: Any,
                         **kwargs: Any) -> None:
    assert namespace is not None  # Artifacts are namespaced
    reconciler = _bind(memo, kwargs)
    if type == "DELETED":
        reconciler.view.forget_artifact((namespace, name))
        reconciler.caches.artifact_gone(namespace, body)
    elif not reconciler.view.note_artifact(body):
        # Our own write coming back: its answer was noted, and a change of someone else's
        # in it queued (reconcile.py `_noted`); a reconcile now would find nothing to do.
        return
    reconciler.enqueue((namespace, name))


@kopf.on.event(API_GROUP, API_VERSION, APPROVAL_PLURAL)
async def approval_event(body: Any, namespace: str | None, memo: Any, **kwargs: Any) -> None:
    """An approval given, changed or withdrawn: the artifact it names decides again."""
    reconciler = _bind(memo, kwargs)
    key = _approval_key(body, namespace)
    if key is not None and key in reconciler.view.artifacts:
        reconciler.enqueue(key)
