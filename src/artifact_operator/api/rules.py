"""Cross-field rules of the Artifact spec, each in two forms side by side.

`check_spec` walks the raw spec (defensively: it also runs when the schema check failed, so
that every violation is reported at once) and yields `Violation`s with field paths.
`CEL_RULES` are the same rules as `x-kubernetes-validations`, placed in the CRD by `crd.py`, for
API servers that evaluate CEL (1.25+). Unique group and env names need no CEL: those lists are
`x-kubernetes-list-type: map` keyed by name (base.UNIQUE_BY_NAME), which every API server
enforces. Older servers drop them; the webhook and the operator
still enforce `check_spec` everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from artifact_operator.api.elevated import container_elevated
from artifact_operator.api.exposure import MAX_KEY, QUALIFIED_NAME
from artifact_operator.api.naming import container_name
from artifact_operator.api.raw import as_dict, as_list


@dataclass(frozen=True, order=True)
class Violation:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class CelRule:
    # Path of the schema node the rule sits on: property names, "[]" for list items,
    # "{}" for map values.
    node: tuple[str, ...]
    rule: str
    message: str


GROUPS = ("spec", "containerGroups", "[]")
NEEDS_SERVICE = ("{field} needs a primary container with a port in its group: it reaches the "
                 "group through the group's Service")
ONE_EXPOSURE = "expose takes exactly one of ingress and httpRoute"
TLS_NEEDS_HOST = "tlsSecret needs host: the certificate is for a host name"
KEY_RULE = ("{what} keys are an optional DNS subdomain and '/', then at most 63 letters, "
            "digits, '-', '_' or '.', starting and ending with a letter or digit")
PINNED = re.compile(r"@sha256:[a-f0-9]{64}$")
CONTAINERS = (*GROUPS, "containers", "[]")

CEL_RULES: tuple[CelRule, ...] = (
    CelRule(CONTAINERS, "self.primary ? has(self.port) : !has(self.port)",
            "a primary container must set port; a non-primary container must not"),
    CelRule(CONTAINERS, "has(self.imageUri) || has(self.imageBuildConfig)",
            "imageUri is required unless imageBuildConfig is set"),
    CelRule((*CONTAINERS, "environmentVars", "[]"),
            "self.source != 'string' || has(self.value)",
            "value is required for source string"),
    CelRule((*CONTAINERS, "environmentVars", "[]"),
            "self.source == 'dr-credential' ? has(self.drCredentialId) && has(self.key)"
            " : !has(self.drCredentialId) && !has(self.key)",
            "drCredentialId and key are required with, and only with, source dr-credential"),
    CelRule((*CONTAINERS, "environmentVars", "[]"),
            "self.source == 'string' || !has(self.value)",
            "value is only allowed with source string"),
    # The CRD merges the two dockerfile kinds into one object (see crd.py), so the per-kind
    # required and forbidden fields the models enforce come back here.
    CelRule((*CONTAINERS, "imageBuildConfig", "dockerfile"),
            "self.source != 'generated' || (has(self.executionEnvironmentId) && "
            "has(self.executionEnvironmentVersionId) && has(self.entrypoint))",
            "executionEnvironmentId, executionEnvironmentVersionId and entrypoint are required "
            "with source generated"),
    CelRule((*CONTAINERS, "imageBuildConfig", "dockerfile"),
            "self.source == 'generated' || (!has(self.executionEnvironmentId) && "
            "!has(self.executionEnvironmentVersionId) && !has(self.entrypoint))",
            "executionEnvironmentId, executionEnvironmentVersionId and entrypoint are only "
            "allowed with source generated"),
    CelRule((*CONTAINERS, "imageBuildConfig", "dockerfile"),
            "self.source == 'provided' || !has(self.path)",
            "path is only allowed with source provided"),
    # Code references are merged the same way: the member named by `provider`, and only it.
    *(CelRule((*CONTAINERS, "imageBuildConfig", "codeRef"),
              f"(self.provider == '{p}') == has(self.{p})",
              f"{p} is required with, and only with, provider {p}")
      for p in ("datarobot", "git", "oci")),
    CelRule((*CONTAINERS, "imageBuildConfig", "codeRef"),
            "self.provider == 'datarobot' || !has(self.type)",
            "type is only allowed with provider datarobot"),
    CelRule((*CONTAINERS, "securityContext", "seccompProfile"),
            "self.type == 'Localhost' ? has(self.localhostProfile) : !has(self.localhostProfile)",
            "localhostProfile is required with, and only with, type Localhost"),
    # An approval is for what the image is now: a tag can be moved to other code later.
    CelRule(CONTAINERS,
            "!has(self.securityContext) || !("
            "(has(self.securityContext.capabilities) && "
            "has(self.securityContext.capabilities.add) && "
            "size(self.securityContext.capabilities.add) > 0) || "
            "(has(self.securityContext.allowPrivilegeEscalation) && "
            "self.securityContext.allowPrivilegeEscalation) || "
            "(has(self.securityContext.seccompProfile) && "
            "self.securityContext.seccompProfile.type == 'Unconfined')) || "
            "(has(self.imageUri) && self.imageUri.matches('@sha256:[a-f0-9]{64}$'))",
            "a container with elevated securityContext fields must pin its image by digest "
            "(imageUri ending in @sha256:<64 hex>)"),
    CelRule(GROUPS, "self.containers.filter(c, c.primary).size() <= 1",
            "a container group has at most one primary container"),
    # Unnamed containers run as container-<index>; CEL cannot see the index, so a clash
    # between such a name and an explicit "container-1" is caught by check_spec only.
    CelRule(GROUPS,
            "self.containers.all(c, !has(c.name) || "
            "self.containers.exists_one(d, has(d.name) && d.name == c.name))",
            "container names must be unique in a group"),
    CelRule(("spec",), "self.type == 'nim' || (!has(self.storage) && !has(self.templateId))",
            "storage and templateId are only allowed with type nim"),
    CelRule(("spec",),
            "!has(self.runtime) || "
            "self.runtime.all(k, self.containerGroups.exists(g, g.name == k))",
            "runtime keys must name container groups of this artifact"),
    CelRule(("spec",),
            "self.type != 'nim' || self.containerGroups.all(g, "
            "g.containers.exists(c, c.primary && has(c.imageUri)))",
            "each container group of a nim artifact needs a primary container with imageUri"),
    CelRule(("spec", "storage"), "self.mode == 'dedicatedPvc' || !has(self.pvcSize)",
            "pvcSize is only allowed with mode dedicatedPvc"),
    CelRule(("spec", "runtime", "{}"), "!has(self.autoscaling) || !has(self.replicas)",
            "autoscaling and replicas are exclusive: the HPA sets the replica count"),
    CelRule(("spec", "runtime", "{}", "autoscaling"), "self.minReplicas <= self.maxReplicas",
            "maxReplicas must be at least minReplicas"),
    # expose and metrics reach the group through its Service: a primary container's port.
    *(CelRule(("spec",),
              f"!has(self.runtime) || self.runtime.all(k, !has(self.runtime[k].{field}) || "
              "self.containerGroups.exists(g, g.name == k && "
              "g.containers.exists(c, c.primary && has(c.port))))",
              NEEDS_SERVICE.format(field=field))
      for field in ("expose", "metrics")),
    CelRule(("spec", "runtime", "{}", "expose"), "has(self.ingress) != has(self.httpRoute)",
            ONE_EXPOSURE),
    CelRule(("spec", "runtime", "{}", "expose", "ingress"),
            "!has(self.tlsSecret) || has(self.host)", TLS_NEEDS_HOST),
    # Annotation and label keys (exposure.QUALIFIED_NAME) have no CEL twin: a regular
    # expression over map keys of unbounded length exceeds the API server's cost budget, so
    # they are checked by the webhook, `validate` and the operator only.
    # A transition rule (1.25+ servers): a locked spec is a released version. Its Python twin
    # is the webhook's (logic/admission.py); the operator refuses to roll out a changed
    # locked spec in any case (logic/lock.py).
    CelRule(("spec",), "oldSelf.lifecycle != 'locked' || self == oldSelf",
            "the spec of a locked artifact cannot change (clone it into a new draft)"),
    # A structural schema cannot bound map keys (no propertyNames): the header name limit of
    # the model (base.MAX_HEADER_NAME) is here for CEL servers, and in the model for the
    # webhook, `validate` and the operator everywhere.
    *(CelRule((*CONTAINERS, probe, "httpHeaders"), "self.all(k, size(k) <= 256)",
              "probe header names are at most 256 characters")
      for probe in ("livenessProbe", "readinessProbe", "startupProbe")),
)


def _duplicates(names: list[tuple[int, Any]], what: str, path: str) -> Iterator[Violation]:
    seen: set[Any] = set()
    for index, name in names:
        if not isinstance(name, str):
            continue  # not a name at all: the model reports its type
        if name in seen:
            yield Violation(path.format(index), f"duplicate {what} {name!r}")
        seen.add(name)


def check_spec(spec: Any) -> list[Violation]:
    """Every cross-field violation of an Artifact spec (raw dict, defaults not yet applied)."""
    return sorted(_check_spec(as_dict(spec)), key=order)


def order(v: Violation) -> tuple[Any, ...]:
    """Document order: numeric inside brackets, so [10] comes after [9]."""
    path = tuple(int(p) if p.isdigit() else p for p in re.split(r"\[(\d+)\]", v.path))
    return path, v.message


def _check_spec(spec: dict[str, Any]) -> Iterator[Violation]:
    kind = spec.get("type", "service")
    groups = as_list(spec.get("containerGroups"))
    group_names = [(i, as_dict(g).get("name", "default")) for i, g in enumerate(groups)]
    yield from _duplicates(group_names, "container group name",
                           "spec.containerGroups[{}].name")
    if kind != "nim":
        for field in ("storage", "templateId"):
            if spec.get(field) is not None:
                yield Violation(f"spec.{field}", f"{field} is only allowed with type nim")
    storage = as_dict(spec.get("storage"))
    if storage.get("mode", "dedicatedPvc") != "dedicatedPvc" and storage.get("pvcSize"):
        yield Violation("spec.storage.pvcSize", "pvcSize is only allowed with mode dedicatedPvc")
    known = {name for _, name in group_names if isinstance(name, str)}
    for key, entry in as_dict(spec.get("runtime")).items():
        if key not in known:
            yield Violation(f"spec.runtime.{key}",
                            f"runtime key {key!r} does not name a container group")
        entry = as_dict(entry)
        scaling = as_dict(entry.get("autoscaling"))
        if scaling and entry.get("replicas") is not None:
            yield Violation(f"spec.runtime.{key}.autoscaling",
                            "autoscaling and replicas are exclusive: the HPA sets the replica "
                            "count")
        low, high = scaling.get("minReplicas", 1), scaling.get("maxReplicas")
        if isinstance(low, int) and isinstance(high, int) and low > high:
            yield Violation(f"spec.runtime.{key}.autoscaling.maxReplicas",
                            "maxReplicas must be at least minReplicas")
        if key in known:
            group = next(g for g, (_, n) in zip(groups, group_names, strict=True) if n == key)
            yield from _check_reach(key, entry, group)
    for gi, group in enumerate(groups):
        yield from _check_group(as_dict(group), f"spec.containerGroups[{gi}]", kind == "nim")


def _check_reach(key: str, entry: dict[str, Any], group: Any) -> Iterator[Violation]:
    """runtime.<group>.expose and .metrics (api/exposure.py)."""
    path = f"spec.runtime.{key}"
    served = any(as_dict(c).get("primary") is True and as_dict(c).get("port") is not None
                 for c in as_list(as_dict(group).get("containers")))
    for field in ("expose", "metrics"):
        if entry.get(field) is not None and not served:
            yield Violation(f"{path}.{field}", NEEDS_SERVICE.format(field=field))
    expose = as_dict(entry.get("expose"))
    if entry.get("expose") is not None and \
            (expose.get("ingress") is None) == (expose.get("httpRoute") is None):
        yield Violation(f"{path}.expose", ONE_EXPOSURE)
    ingress = as_dict(expose.get("ingress"))
    if ingress.get("tlsSecret") is not None and ingress.get("host") is None:
        yield Violation(f"{path}.expose.ingress.tlsSecret", TLS_NEEDS_HOST)
    for what, keys, at in (
            ("annotation", ingress.get("annotations"), "expose.ingress.annotations"),
            ("label", as_dict(entry.get("metrics")).get("labels"), "metrics.labels")):
        for name in as_dict(keys):
            if len(name) > MAX_KEY or not re.fullmatch(QUALIFIED_NAME, name):
                yield Violation(f"{path}.{at}.{name}", KEY_RULE.format(what=what))


def _check_group(group: dict[str, Any], path: str, nim: bool) -> Iterator[Violation]:
    containers = [as_dict(c) for c in as_list(group.get("containers"))]
    primaries = [i for i, c in enumerate(containers) if c.get("primary") is True]
    for i in primaries[1:]:
        yield Violation(f"{path}.containers[{i}].primary",
                        "a container group has at most one primary container")
    if nim:
        if not primaries:
            yield Violation(f"{path}.containers",
                            "each container group of a nim artifact needs a primary container")
        elif not containers[primaries[0]].get("imageUri"):
            yield Violation(f"{path}.containers[{primaries[0]}].imageUri",
                            "the primary container of a nim artifact runs the model image: "
                            "imageUri is required")
    names = [(i, container_name(as_dict(c).get("name"), i)) for i, c in enumerate(containers)]
    yield from _duplicates(names, "container name", path + ".containers[{}].name")
    for ci, container in enumerate(containers):
        yield from _check_container(container, f"{path}.containers[{ci}]")


def _check_container(c: dict[str, Any], path: str) -> Iterator[Violation]:
    if c.get("primary") is True and c.get("port") is None:
        yield Violation(f"{path}.port", "a primary container must set port")
    if c.get("primary") is not True and c.get("port") is not None:
        yield Violation(f"{path}.port", "a non-primary container must not set port")
    if not c.get("imageUri") and c.get("imageBuildConfig") is None:
        yield Violation(f"{path}.imageUri", "imageUri is required unless imageBuildConfig is set")
    image = c.get("imageUri")
    if container_elevated(c) and not (isinstance(image, str) and PINNED.search(image)):
        yield Violation(f"{path}.imageUri",
                        "a container with elevated securityContext fields must pin its image "
                        "by digest (imageUri ending in @sha256:<64 hex>): an approval is for "
                        "what the image is now, and a tag can move")
    env = [as_dict(e) for e in as_list(c.get("environmentVars"))]
    yield from _duplicates([(i, e.get("name")) for i, e in enumerate(env)],
                           "environment variable name", path + ".environmentVars[{}].name")
    seccomp = as_dict(as_dict(c.get("securityContext")).get("seccompProfile"))
    if seccomp:
        has_profile = bool(seccomp.get("localhostProfile"))
        if seccomp.get("type") == "Localhost" and not has_profile:
            yield Violation(f"{path}.securityContext.seccompProfile.localhostProfile",
                            "localhostProfile is required with type Localhost")
        if seccomp.get("type") != "Localhost" and has_profile:
            yield Violation(f"{path}.securityContext.seccompProfile.localhostProfile",
                            "localhostProfile is only allowed with type Localhost")
