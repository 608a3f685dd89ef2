"""A locked spec never changes what runs: the digest the operator keeps, and the CRD's
transition rule for 1.25+ servers (evaluated here as the API server's CEL would)."""

from __future__ import annotations

import copy
from typing import Any

import cel
import pytest

from artifact_operator.api.crd import build_crd
from artifact_operator.api.status import ArtifactStatus
from artifact_operator.logic.lock import lock_state, spec_digest

SPEC: dict[str, Any] = {"lifecycle": "locked", "containerGroups": [{"name": "api", "containers": [
    {"name": "app", "imageUri": "img:1", "primary": True, "port": 8080}]}]}


def body(spec: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "a", "namespace": "ns"}, "spec": spec}


def test_first_seen_locked_records_the_digest_and_is_unchanged() -> None:
    state = lock_state(body(SPEC), ArtifactStatus())
    assert (state.locked, state.changed) == (True, False)
    assert state.digest == spec_digest(SPEC) and state.digest.startswith("sha256:")


def test_a_draft_is_not_locked() -> None:
    state = lock_state(body({**SPEC, "lifecycle": "draft"}), ArtifactStatus())
    assert (state.locked, state.digest, state.changed) == (False, None, False)


@pytest.mark.parametrize("change", [
    lambda s: s["containerGroups"][0]["containers"][0].update(imageUri="img:2"),
    lambda s: s.update(lifecycle="draft"),  # unlocking is a change too
    lambda s: s.update(description="edited"),
])
def test_any_change_after_the_lock_counts(change: Any) -> None:
    status = ArtifactStatus(locked_spec_digest=spec_digest(SPEC))
    edited = copy.deepcopy(SPEC)
    change(edited)
    state = lock_state(body(edited), status)
    assert (state.locked, state.changed, state.digest) == (True, True, spec_digest(SPEC))
    assert not lock_state(body(copy.deepcopy(SPEC)), status).changed


def test_defaults_written_out_do_not_count_as_a_change() -> None:
    # What an API server (or a later CRD version) fills in with its default is the same spec.
    defaulted = copy.deepcopy(SPEC)
    defaulted.update(type="service", description="")
    defaulted["containerGroups"][0]["containers"][0]["environmentVars"] = []
    assert spec_digest(defaulted) == spec_digest(SPEC)


def test_an_unreadable_status_keeps_the_lock() -> None:
    digest = spec_digest(SPEC)
    stored = ArtifactStatus.from_wire({"lockedSpecDigest": digest, "phase": "Bogus"})
    assert stored.locked_spec_digest == digest


def _transition_rule() -> str:
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    (rule,) = [r["rule"] for r in spec["x-kubernetes-validations"] if "oldSelf" in r["rule"]]
    return rule


@pytest.mark.parametrize(("old", "new", "allowed"), [
    ({**SPEC, "lifecycle": "draft"}, SPEC, True),  # locking a draft
    ({**SPEC, "lifecycle": "draft"}, {**SPEC, "lifecycle": "draft", "description": "x"}, True),
    (SPEC, SPEC, True),  # a metadata-only update keeps the spec
    (SPEC, {**SPEC, "description": "x"}, False),
    (SPEC, {**SPEC, "lifecycle": "draft"}, False),
])
def test_the_crd_refuses_changes_to_a_locked_spec_on_servers_with_cel(
        old: dict[str, Any], new: dict[str, Any], allowed: bool) -> None:
    assert cel.evaluate(_transition_rule(), {"self": new, "oldSelf": old}) is allowed
