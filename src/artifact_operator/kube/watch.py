"""A list-then-watch of one kind by label selector, for what kopf cannot watch for us.

kopf opens one watch per resource with one label selector; Secrets are watched by kopf for
our own children (managed-by), so the users' Secrets that opt in to artifacts (another label)
need a watch of their own. This keeps a dict of slim objects per (namespace, name), relists
after a 410 or an error (with backoff), and calls `changed(namespace, name)` for each object
that appears, changes or goes. `synced` is set once every namespace has been listed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Any

from artifact_operator.kube.client import ApiError, Kube

log = logging.getLogger(__name__)

Obj = dict[str, Any]


class ListWatch:
    def __init__(self, kube: Kube, api_version: str, kind: str, label_selector: str,
                 namespaces: list[str] | None, slim: Callable[[Mapping[str, Any]], Obj],
                 changed: Callable[[str, str], None]) -> None:
        self.kube = kube
        self.api_version = api_version
        self.kind = kind
        self.selector = label_selector
        self.namespaces: list[str | None] = list(namespaces) if namespaces else [None]
        self.slim = slim
        self.changed = changed
        self.objects: dict[tuple[str, str], Obj] = {}
        self.synced = asyncio.Event()
        self._listed: set[str | None] = set()

    def get(self, namespace: str, name: str) -> Obj | None:
        return self.objects.get((namespace, name))

    async def run(self) -> None:
        await asyncio.gather(*(self._run(ns) for ns in self.namespaces))

    async def _run(self, namespace: str | None) -> None:
        backoff = 1.0
        while True:
            try:
                version = await self._list(namespace)
                backoff = 1.0
                while True:  # the server ends each watch after its timeout: resume
                    async for kind, obj in self.kube.watch(
                            self.api_version, self.kind, namespace, self.selector, version):
                        meta = obj.get("metadata") or {}
                        version = str(meta.get("resourceVersion") or version)
                        if kind != "BOOKMARK":
                            self._note(kind, obj)
            except ApiError as exc:
                if exc.status == 410:
                    continue  # our resourceVersion is too old: relist at once
                log.warning("watch of %s (%s) in %s failed, relisting in %.0fs: %s",
                            self.kind, self.selector, namespace or "all namespaces",
                            backoff, exc)
            except Exception:
                # Never let the task die: reconciles wait for `synced`, and a dead watch
                # would leave the Secrets' picture stale for good.
                log.exception("watch of %s (%s) in %s failed, relisting in %.0fs",
                              self.kind, self.selector, namespace or "all namespaces", backoff)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def _list(self, namespace: str | None) -> str:
        items, version = await self.kube.list_with_version(
            self.api_version, self.kind, namespace, self.selector)
        fresh = {(str(o["metadata"]["namespace"]), str(o["metadata"]["name"])): self.slim(o)
                 for o in items}
        stale = {key for key in self.objects if namespace is None or key[0] == namespace}
        for key in stale - fresh.keys():
            del self.objects[key]
            self.changed(*key)
        for key, obj in fresh.items():
            if self.objects.get(key) != obj:
                self.objects[key] = obj
                self.changed(*key)
        self._listed.add(namespace)
        if len(self._listed) == len(self.namespaces):
            self.synced.set()
        return version

    def _note(self, kind: str, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        if kind == "DELETED":
            self.objects.pop(key, None)
        else:
            self.objects[key] = self.slim(obj)
        self.changed(*key)
