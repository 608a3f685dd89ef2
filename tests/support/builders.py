"""Test artifacts, built one way for every tier.

Builders return plain manifests (dicts, as `kubectl apply` would send them); `parsed(...)`
turns one into the model. Names and defaults follow the samples: a service artifact has one
group `api` whose primary container `app` runs `nginx:1.27` on port 8080; a NIM artifact has
one group `llm` whose primary container `nim` serves a model image on port 8000.

Anything a builder does not name can be passed through: `**spec` lands in `spec` as given
(camelCase keys), `**fields` in the container.
"""

from __future__ import annotations

import copy
from typing import Any

from artifact_operator.api.artifact import Artifact
from artifact_operator.api.validation import parse

Obj = dict[str, Any]

API_VERSION = "workload.dev/v1alpha1"
KIND = "Artifact"
IMAGE = "nginx:1.27"
# Containers with elevated securityContext fields must run an image pinned by digest.
PINNED_IMAGE = "nginx@sha256:" + "0" * 64
NIM_IMAGE = "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.3"
OTHER_NIM_IMAGE = "nvcr.io/nim/mistralai/mistral-7b-instruct-v0.3:1.3.0"


def container(name: str = "app", image: str | None = IMAGE, **fields: Any) -> Obj:
    """A container; `image=None` leaves imageUri out (one waiting for a build)."""
    out: Obj = {"name": name}
    if image is not None:
        out["imageUri"] = image
    out.update(fields)
    return out


def primary(name: str = "app", image: str | None = IMAGE, port: int = 8080,
            **fields: Any) -> Obj:
    """The primary container of a group: it serves on `port`."""
    return container(name, image, primary=True, port=port, **fields)


def group(name: str = "api", *containers: Obj) -> Obj:
    """A container group; without containers, one `primary()`."""
    return {"name": name, "containers": list(containers) or [primary()]}


def artifact(name: str = "web", *groups: Obj, namespace: str | None = None,
             uid: str | None = None, generation: int | None = None,
             labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
             **spec: Any) -> Obj:
    """An Artifact manifest with these container groups (none: `containerGroups` is left out
    unless given in `spec`). Metadata fields the server sets (uid, generation) only when
    given, for tests of code that reads them."""
    meta: Obj = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if uid is not None:
        meta["uid"] = uid
    if generation is not None:
        meta["generation"] = generation
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    body: Obj = {}
    if groups:
        body["containerGroups"] = list(groups)
    body.update(spec)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": meta,
            "spec": copy.deepcopy(body)}


def service_artifact(name: str = "web", image: str | None = IMAGE, *,
                     replicas: int | None = None, env: list[Obj] | None = None,
                     security: Obj | None = None, app: Obj | None = None,
                     namespace: str | None = None, uid: str | None = None,
                     generation: int | None = None, annotations: dict[str, str] | None = None,
                     **spec: Any) -> Obj:
    """A service: group `api`, primary container `app` on 8080, with a Service. `app`
    replaces that container whole (then `image`, `env` and `security` are not used)."""
    if app is None:
        fields: Obj = {}
        if env is not None:
            fields["environmentVars"] = env
        if security is not None:
            fields["securityContext"] = security
        app = primary(image=image, **fields)
    if replicas is not None:
        spec.setdefault("runtime", {"api": {"replicas": replicas}})
    return artifact(name, group("api", app), namespace=namespace, uid=uid,
                    generation=generation, annotations=annotations, **spec)


def nim_artifact(name: str = "llm", image: str = NIM_IMAGE, *, mode: str | None = None,
                 size: str | None = None, groups: tuple[str, ...] = ("llm",),
                 env: list[Obj] | None = None, namespace: str | None = None,
                 uid: str | None = None, generation: int | None = None,
                 **spec: Any) -> Obj:
    """A NIM artifact: each of `groups` serves `image` from container `nim` on 8000, with
    model-weight storage in `mode` (dedicatedPvc when None) of `size`."""
    storage: Obj = {}
    if mode is not None:
        storage["mode"] = mode
    if size is not None:
        storage["pvcSize"] = size
    if storage:
        spec.setdefault("storage", storage)
    fields: Obj = {} if env is None else {"environmentVars": env}
    return artifact(name, *(group(g, primary("nim", image, port=8000, **fields))
                            for g in groups),
                    namespace=namespace, uid=uid, generation=generation, type="nim", **spec)


def in_namespace(manifest: Obj, namespace: str, *, uid: str | None = None,
                 generation: int | None = None) -> Obj:
    """`manifest` placed in `namespace` (and given a uid and generation, as stored)."""
    out = copy.deepcopy(manifest)
    out["metadata"]["namespace"] = namespace
    if uid is not None:
        out["metadata"]["uid"] = uid
    if generation is not None:
        out["metadata"]["generation"] = generation
    return out


def parsed(manifest: Obj) -> Artifact:
    """The model of `manifest` (validated, as the operator parses it)."""
    return parse(manifest)
