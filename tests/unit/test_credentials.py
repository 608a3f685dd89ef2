"""Which Secrets an artifact may read (logic/credentials.py), and the elevated probe host."""

from __future__ import annotations

from typing import Any

import pytest

from artifact_operator.api.elevated import elevated_content, elevated_paths
from artifact_operator.logic.credentials import credential_refs, new_refs, not_usable, usable

OPT_IN = {"workload.dev/usable-by-artifacts": "true"}


def secret(labels: dict[str, str] | None = None, type_: str = "Opaque",
           owners: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "s", "labels": labels or {}}
    if owners:
        meta["ownerReferences"] = owners
    return {"metadata": meta, "type": type_}


@pytest.mark.parametrize(("body", "expected"), [
    (secret(OPT_IN), True),
    (secret(), False),  # does not opt in
    (secret({"workload.dev/usable-by-artifacts": "yes"}), False),
    (None, False),  # missing
    (secret(OPT_IN, "kubernetes.io/service-account-token"), False),
    (secret({**OPT_IN, "app.kubernetes.io/managed-by": "artifact-operator"}), False),
    (secret(OPT_IN, owners=[{"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
                             "name": "a", "uid": "u"}]), False),  # an artifact's token
    (secret(OPT_IN, owners=[{"apiVersion": "v1", "kind": "ConfigMap", "name": "c",
                             "uid": "u"}]), True),
])
def test_a_secret_is_usable_only_when_it_opts_in_and_is_no_token(
        body: dict[str, Any] | None, expected: bool) -> None:
    assert usable(body) is expected


def _spec(*secrets: str) -> dict[str, Any]:
    return {"containerGroups": [{"name": "api", "containers": [{"name": "app", "environmentVars": [
        {"name": f"E{i}", "source": "dr-credential", "drCredentialId": s, "key": "k"}
        for i, s in enumerate(secrets)] + [{"name": "X", "value": "v"}]}]}]}


def test_references_carry_their_field_path_and_only_new_ones_are_judged_on_update() -> None:
    refs = list(credential_refs(_spec("a", "b")))
    assert [(r.path, r.secret, r.env) for r in refs] == [
        ("spec.containerGroups[0].containers[0].environmentVars[0]", "a", "E0"),
        ("spec.containerGroups[0].containers[0].environmentVars[1]", "b", "E1")]
    assert [r.secret for r in new_refs(None, _spec("a", "b"))] == ["a", "b"]
    assert [r.secret for r in new_refs(_spec("a"), _spec("a", "b"))] == ["b"]


def test_the_message_does_not_tell_missing_from_not_opted_in() -> None:
    # One sentence for both: it depends on the name only.
    assert not_usable("first-one").replace("first-one", "") == \
        not_usable("second").replace("second", "")


def test_a_probe_host_is_elevated_and_covered_by_the_approval() -> None:
    spec = {"containerGroups": [{"name": "api", "containers": [
        {"name": "app", "imageUri": "i", "readinessProbe": {"path": "/", "host": "h"}}]}]}
    assert elevated_paths(spec) == ["spec.containerGroups[0].containers[0].readinessProbe.host"]
    other = {"containerGroups": [{"name": "api", "containers": [
        {"name": "app", "imageUri": "i", "readinessProbe": {"path": "/", "host": "h2"}}]}]}
    assert elevated_content(spec) != elevated_content(other)  # a new host needs a new approval
