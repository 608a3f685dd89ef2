"""Elevated fields: the one definition of what only an admin may set.

In `api` (not `logic`) because a rule of the spec needs it: an elevated container must pin
its image by digest (`rules.py`).

`capabilities.add`, `allowPrivilegeEscalation: true`, seccomp `Unconfined`, and a probe
`host` (the kubelet then sends the probe from the node's network to any address, which turns a
probe into a request the pod itself could not make). The webhook (who may set them), the
approval (which groups need one) and the renderer (what runs only with one) all read them
here. Read from the raw spec, defensively, so the webhook can judge a spec that fails
validation and the renderer the same fields of a valid one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from artifact_operator.api.naming import container_name
from artifact_operator.api.raw import as_dict, as_list

PROBES = ("livenessProbe", "readinessProbe", "startupProbe")


def container_elevated(container: Any) -> list[str]:
    """The elevated fields a raw container sets, as paths below the container."""
    sc = as_dict(as_dict(container).get("securityContext"))
    out: list[str] = []
    if as_list(as_dict(sc.get("capabilities")).get("add")):
        out.append("securityContext.capabilities.add")
    if sc.get("allowPrivilegeEscalation") is True:
        out.append("securityContext.allowPrivilegeEscalation")
    if as_dict(sc.get("seccompProfile")).get("type") == "Unconfined":
        out.append("securityContext.seccompProfile.type")
    out += [f"{probe}.host" for probe in PROBES
            if as_dict(as_dict(container).get(probe)).get("host")]
    return out


def _containers(spec: Any) -> Iterator[tuple[int, dict[str, Any], int, dict[str, Any]]]:
    """(group index, group, container index, container) of a raw spec."""
    for gi, group in enumerate(as_list(as_dict(spec).get("containerGroups"))):
        group = as_dict(group)
        for ci, container in enumerate(as_list(group.get("containers"))):
            yield gi, group, ci, as_dict(container)


def elevated_groups(spec: Any) -> dict[str, list[str]]:
    """Group name -> the field paths of its elevated fields, for groups that have any."""
    out: dict[str, list[str]] = {}
    for paths, entry in iter_elevated(spec):
        out.setdefault(str(entry["group"]), []).extend(paths)
    return out


def iter_elevated(spec: Any) -> Iterator[tuple[list[str], dict[str, Any]]]:
    """(field paths, signed entry) per container that sets an elevated field. The entry is
    what the old HMAC annotation signed (verified for migration only), so its shape stays.

    Reads the raw spec defensively, so the webhook can use it on a spec that fails validation.
    """
    for gi, group, ci, container in _containers(spec):
        rels = container_elevated(container)
        if not rels:
            continue
        sc = as_dict(container.get("securityContext"))
        entry: dict[str, Any] = {}
        if "securityContext.capabilities.add" in rels:
            entry["capabilitiesAdd"] = as_list(as_dict(sc.get("capabilities")).get("add"))
        if "securityContext.allowPrivilegeEscalation" in rels:
            entry["allowPrivilegeEscalation"] = True
        if "securityContext.seccompProfile.type" in rels:
            entry["seccompProfile"] = "Unconfined"
        hosts = {probe: as_dict(container.get(probe)).get("host") for probe in PROBES
                 if f"{probe}.host" in rels}
        if hosts:
            entry["probeHosts"] = hosts
        entry.update(group=group.get("name", "default"),
                     container=container_name(container.get("name"), ci),
                     image=container.get("imageUri"))
        yield [f"spec.containerGroups[{gi}].containers[{ci}].{rel}" for rel in rels], entry


def elevated_paths(spec: Any) -> list[str]:
    return [path for paths, _ in iter_elevated(spec) for path in paths]


def elevated_content(spec: Any) -> list[dict[str, Any]]:
    """What an approval covers; empty when the spec asks for nothing elevated."""
    return [entry for _, entry in iter_elevated(spec)]
