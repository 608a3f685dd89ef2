"""Applying and pruning an artifact's children: the only place that writes them.

An object is applied (server-side apply, our field manager) only when the live one does not
already hold every rendered field (`covers`), so a restart or resync writes nothing. Objects
found by name that another owner holds are never taken over. The token Secret is created once
with a random token and never written again. Children no longer rendered are deleted with a
uid precondition, so an object re-created meanwhile is spared.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from artifact_operator import metrics
from artifact_operator.api import naming
from artifact_operator.api.status import Reason
from artifact_operator.controller.caches import SharedCaches
from artifact_operator.controller.view import ClusterView, Obj, Ref, controlled_by, slim
from artifact_operator.kube.client import ApiError, Kube, permanent
from artifact_operator.kube.events import EventRecorder
from artifact_operator.logic.claims import dedicated_update, is_cache_claim
from artifact_operator.logic.compare import rekeyed, stamped, up_to_date
from artifact_operator.logic.containers import TOKEN_KEY
from artifact_operator.logic.render import Rendered
from artifact_operator.logic.status import Observed

log = logging.getLogger(__name__)


class Applier:
    def __init__(self, kube: Kube, view: ClusterView, events: EventRecorder,
                 caches: SharedCaches) -> None:
        self.kube = kube
        self.view = view
        self.events = events
        self.caches = caches

    async def ensure(self, body: Obj, obj: Obj, live: dict[Ref, Obj], obs: Observed) -> None:
        """Make the live object hold `obj`'s fields; what was refused goes to `obs.errors`.
        `live` is updated with what was written."""
        ref: Ref = (obj["kind"], obj["metadata"]["name"])
        current = live.get(ref)
        if is_cache_claim(obj):
            claim = await self.caches.ensure(body, obj, obs)  # created once, never applied over
            if claim is not None:
                live[ref] = slim(claim)
            return
        if obj["kind"] == "PersistentVolumeClaim":
            update = dedicated_update(current, obj, obs)  # grows, never shrinks
            if update is None:
                return
            obj = update
        if obj["kind"] == "Secret":
            if current is None:
                await self._create_token_secret(body, obj, live)
            return
        if current is not None and up_to_date(current, obj):
            return
        if current is None:
            # Not ours by our watch: someone else's, or ours without our label. The watch
            # cache answers (no etcd read, 5% of creation time at N=1000): it has at least
            # what our watch, which it feeds, has shown us.
            existing = await self.kube.get(obj["apiVersion"], obj["kind"],
                                           obj["metadata"]["namespace"], ref[1], cached=True)
            if existing is not None and not self._may_take(existing, obj):
                obs.errors.append((Reason.apply_failed,
                                   f"{ref[0]} {ref[1]} already exists and is not managed by "
                                   "this artifact; refusing to take it over"))
                return
            if existing is not None:
                current = slim(existing)
                live[ref] = current
                if up_to_date(current, obj):
                    return
        try:
            if current is not None and (ops := rekeyed(current, obj)):
                # A port's number or a mount's path edited by hand: put it back, or the
                # apply adds a second item of that name beside it (logic/compare.py).
                await self.kube.json_patch(obj, ops)
                metrics.WRITES.labels(verb="patch", kind=ref[0]).inc()
            applied = await self.kube.apply(stamped(obj))
        except ApiError as exc:
            message = (f"{ref[0]} {ref[1]} was rejected by the API server: "
                       f"{permanent(exc).message}")
            obs.errors.append((Reason.apply_failed, message))
            self.events.post(body, "Warning", Reason.apply_failed.value, message)
            return
        metrics.WRITES.labels(verb="apply", kind=ref[0]).inc()
        self.view.note_written(applied)
        live[ref] = slim(applied)
        verb = "Created" if current is None else "Updated"
        self.events.post(body, "Normal", verb, f"{verb} {ref[0]} {ref[1]}")

    @staticmethod
    def _may_take(existing: Obj, desired: Obj) -> bool:
        """An object we find by name is ours to apply over only if it is owned by the same
        artifact, or is a shared cache claim we manage."""
        owners = desired["metadata"].get("ownerReferences") or []
        if owners:
            return controlled_by(existing, owners[0]["uid"])
        labels = existing.get("metadata", {}).get("labels", {})
        return bool(labels.get(naming.LABEL_MANAGED_BY) == naming.MANAGER)

    async def _create_token_secret(self, body: Obj, obj: Obj, live: dict[Ref, Obj]) -> None:
        # Created once with a random token and never written again: not on resync, not on a
        # spec change. The token is never logged, posted or put in status.
        secret = {**obj, "stringData": {TOKEN_KEY: secrets.token_urlsafe(32)}}
        created = await self.kube.create(secret, exists_ok=True)
        if created is None:
            return  # it exists; the watch will show it
        metrics.WRITES.labels(verb="create", kind="Secret").inc()
        self.view.note_written(created)
        live[("Secret", obj["metadata"]["name"])] = slim(created)
        self.events.post(body, "Normal", "Created", f"Created Secret {obj['metadata']['name']}")

    async def prune(self, body: Obj, uid: str | None, rendered: Rendered,
                    live: Mapping[Ref, Obj]) -> None:
        """Delete the children this artifact controls that are no longer rendered, except the
        groups held back (waiting for a build, a current approval, a usable Secret, their token
        Secret), which keep running what they ran: never rolled without what they need."""
        wanted = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
        keep_groups = rendered.held_groups
        for ref, obj in list(live.items()):
            if ref in wanted or not controlled_by(obj, uid):
                continue
            if obj["metadata"].get("labels", {}).get(naming.LABEL_GROUP) in keep_groups:
                continue
            try:
                deleted = await self.kube.delete(obj, uid=obj["metadata"].get("uid"))
            except ApiError as exc:
                log.warning("could not delete %s %s: %s", *ref, permanent(exc))
                continue
            if not deleted:
                continue  # gone already, or replaced by someone else meanwhile
            metrics.WRITES.labels(verb="delete", kind=ref[0]).inc()
            self.view.note_deleted(obj)
            self.events.post(body, "Normal", "Deleted", f"Deleted {ref[0]} {ref[1]}")

