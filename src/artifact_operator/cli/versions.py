"""`kubectl artifact lock|versions`: lock an artifact and wait for the version the operator
gives it; list a repository's versions in order."""

from __future__ import annotations

import re
import sys
import time
from datetime import UTC, datetime
from typing import Any

from artifact_operator.api.base import LABEL_VALUE
from artifact_operator.api.naming import LABEL_REPOSITORY
from artifact_operator.cli.cluster import RESOURCE, Cluster, PluginError
from artifact_operator.cli.output import age, columns, write_document

Obj = dict[str, Any]


def _version(obj: Obj) -> int | None:
    version = (obj.get("status") or {}).get("version")
    return version if isinstance(version, int) and version > 0 else None


def _invalid(obj: Obj) -> str | None:
    """The operator's InvalidSpec message once it has seen this generation, else None: an
    invalid artifact never gets a version, so waiting for one is pointless."""
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"].get("generation"):
        return None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "Ready" and cond.get("reason") == "InvalidSpec":
            return str(cond.get("message", ""))
    return None


def wait_for_version(cluster: Cluster, obj: Obj, timeout: float) -> int:
    from kubernetes.client import ApiException

    name = obj["metadata"]["name"]
    deadline = time.monotonic() + timeout
    while True:
        version = _version(obj)
        if version is not None:
            return version
        problem = _invalid(obj)
        if problem is not None:
            raise PluginError(f"error: {name} is locked but its spec is invalid, so it gets "
                              f"no version: {problem}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise PluginError(
                f"error: {name} is locked, but no version was assigned within "
                f"{timeout:g}s; is the artifact-operator running for namespace "
                f"{cluster.namespace}? (kubectl get art {name} shows it when it comes)")
        try:
            for event in cluster.watch(name, obj["metadata"]["resourceVersion"], remaining):
                if event["type"] == "DELETED":
                    raise PluginError(f"error: {name} was deleted while waiting for its version")
                obj = event["object"]
                if _version(obj) is not None or _invalid(obj) is not None:
                    break
        except ApiException as exc:
            if exc.status != 410:
                raise
            obj = cluster.get(name)  # the watch fell too far behind: start from now


def cmd_lock(cluster: Cluster, name: str, *, wait: bool, timeout: float) -> int:
    obj = cluster.merge_patch(name, {"spec": {"lifecycle": "locked"}})
    if not wait:
        print(f"{RESOURCE}/{name} locked")
        return 0
    version = wait_for_version(cluster, obj, timeout)
    print(f"{RESOURCE}/{name} locked: version {version}")
    return 0


def by_version(items: list[Obj]) -> list[Obj]:
    """Versions in order; drafts (no version yet) after them, oldest first."""
    return sorted(items, key=lambda o: (_version(o) is None, _version(o) or 0,
                                        o["metadata"].get("creationTimestamp") or "",
                                        o["metadata"]["name"]))


def table(items: list[Obj], now: datetime) -> str:
    rows = [["NAME", "VERSION", "LIFECYCLE", "PHASE", "AGE"]]
    for o in items:
        spec, status = o.get("spec") or {}, o.get("status") or {}
        version = _version(o)
        rows.append([o["metadata"]["name"], str(version) if version else "<none>",
                     spec.get("lifecycle", "draft"), status.get("phase") or "<none>",
                     age(o["metadata"].get("creationTimestamp"), now)])
    return columns(rows)


def check_repository(repository: str) -> None:
    """Before connecting: a name that cannot be a label value never matches anything."""
    if len(repository) > 63 or not re.match(LABEL_VALUE, repository):
        raise PluginError(f"error: {repository!r} is not a repository: it must be a label "
                          "value (at most 63 letters, digits, '-', '_' or '.', starting and "
                          "ending with a letter or digit)")


def cmd_versions(cluster: Cluster, repository: str, output: str) -> int:
    items = by_version(cluster.list(f"{LABEL_REPOSITORY}={repository}"))
    for o in items:
        o["metadata"].pop("managedFields", None)
    if output in ("json", "yaml"):
        write_document({"apiVersion": "v1", "kind": "List", "items": items}, output)
    elif not items:
        print(f"No artifacts of repository {repository} in namespace "
              f"{cluster.namespace}.", file=sys.stderr)
    else:
        sys.stdout.write(table(items, datetime.now(UTC)))
    return 0
