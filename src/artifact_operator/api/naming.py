"""Names, labels, selectors and owner references of rendered objects. Pure."""

from __future__ import annotations

import hashlib
from typing import Any

MANAGER = "artifact-operator"
PREFIX = "workload.dev"

LABEL_ARTIFACT = f"{PREFIX}/artifact"
LABEL_GROUP = f"{PREFIX}/container-group"
LABEL_TYPE = f"{PREFIX}/type"
LABEL_REPOSITORY = f"{PREFIX}/repository"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_CACHE = f"{PREFIX}/nim-cache"
# A Secret opts in to being read by artifacts' `dr-credential` env vars with this label "true".
LABEL_USABLE = f"{PREFIX}/usable-by-artifacts"
ANNOTATION_CACHE_IMAGE = f"{PREFIX}/nim-cache-image"
# On each child we apply: the digest of what we applied (logic/compare.py).
ANNOTATION_APPLIED = f"{PREFIX}/applied"
CACHE_CLAIM_PREFIX = "nim-cache-"

MAX_NAME = 63


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def fit(name: str, limit: int = MAX_NAME) -> str:
    """`name` if it fits, else a cut prefix plus a stable hash of the whole name.

    The hash keeps two long names that share a prefix distinct; the cut never leaves a
    trailing '-' before the hash separator doubles up.
    """
    if len(name) <= limit:
        return name
    digest = short_hash(name)
    head = name[: limit - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def group_object_name(artifact: str, group: str) -> str:
    return fit(f"{artifact}-{group}")


def dedicated_claim_name(artifact: str) -> str:
    return fit(f"{artifact}-model-store")


def container_name(name: str | None, index: int) -> str:
    """The name a container runs under: its own, or `container-<index>` when omitted."""
    return name if isinstance(name, str) and name else f"container-{index}"


def cache_hash(image: str) -> str:
    """What names an image's shared cache: the first 12 hex digits of its sha256."""
    return hashlib.sha256(image.encode()).hexdigest()[:12]


def cache_claim_name(image: str) -> str:
    return cache_claim_of_hash(cache_hash(image))


def cache_claim_of_hash(digest: str) -> str:
    """The shared cache claim of a cache hash (the `LABEL_CACHE` value of its users)."""
    return CACHE_CLAIM_PREFIX + digest


def cache_hash_of_claim(claim: str) -> str:
    return claim.removeprefix(CACHE_CLAIM_PREFIX)


def token_secret_name(artifact: str) -> str:
    return fit(f"{artifact}-api-token")


def selector(artifact: str, group: str) -> dict[str, str]:
    # Only these two: a Deployment's selector is immutable, so it must not carry anything
    # that can change over the artifact's life (such as its type).
    return {LABEL_ARTIFACT: artifact, LABEL_GROUP: group}


def labels(artifact: str, group: str, kind: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": artifact,
        "app.kubernetes.io/component": group,
        LABEL_MANAGED_BY: MANAGER,
        **selector(artifact, group),
        LABEL_TYPE: kind,
    }


def owner_reference(api_version: str, kind: str, name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}
