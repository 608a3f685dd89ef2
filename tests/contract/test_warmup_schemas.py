"""The model cache warm-up Job (logic/warmup.py) validates, strictly, against the Kubernetes
schemas of the oldest and newest versions `kubernetes-validate` ships, like every rendered
object (test_k8s_schemas.py): for both storage modes, long names, credentials, runtime
overrides and a tightened security context."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes_validate import utils as kv

from artifact_operator.logic import warmup
from artifact_operator.logic.render import render
from artifact_operator.settings import Settings

from ..support.builders import nim_artifact, parsed
from .test_k8s_schemas import LONG_NAME, NEWEST, OLDEST

CLAIM_UID = "6f1c1a2e-0000-4000-8000-000000000009"


def _variants() -> list[tuple[str, dict[str, Any]]]:
    env = [{"name": "NGC_API_KEY", "source": "dr-credential", "drCredentialId": "ngc-api",
            "key": "NGC_API_KEY"}, {"name": "TOKEN", "source": "dr-api-token"},
           {"name": "NIM_LOG_LEVEL", "value": "INFO"}]
    runtime = {"llm": {"nodeSelector": {"nvidia.com/gpu.present": "true"},
                       "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists",
                                        "effect": "NoSchedule"}],
                       "resources": {"limits": {"nvidia.com/gpu": 1}}}}
    tightened = {"readOnlyRootFilesystem": True,
                 "seccompProfile": {"type": "Localhost", "localhostProfile": "nim.json"}}
    out = []
    for name in ("llm", LONG_NAME):
        for mode in ("nimCache", "dedicatedPvc"):
            doc = nim_artifact(name, namespace="team-a", uid="6f1c1a2e-0000-4000-8000-0000000000aa",
                               generation=1, env=env, runtime=runtime,
                               storage={"mode": mode, "warmUp": True})
            doc["spec"]["containerGroups"][0]["containers"][0]["securityContext"] = tightened
            out.append((f"{mode}-{len(name)}", doc))
    return out


def _jobs() -> list[Any]:
    params = []
    settings = Settings(cache_warm_up_command=["download-to-cache", "--all"])
    for label, doc in _variants():
        artifact = parsed(doc)
        for plan in warmup.plans(artifact, render(artifact, settings), settings):
            job = warmup.render_job(artifact, plan, settings, CLAIM_UID)
            params.append(pytest.param(job, id=label))
    return params


def test_every_variant_renders_a_job() -> None:
    jobs = [p.values[0] for p in _jobs()]
    assert len(jobs) == 4 and any(len(j["metadata"]["name"]) == 63 for j in jobs)
    pods = [j["spec"]["template"]["spec"] for j in jobs]
    assert all(p.get("nodeSelector") and p.get("tolerations") for p in pods)
    assert all(p["containers"][0]["env"][0]["valueFrom"] for p in pods)


@pytest.mark.parametrize("version", [OLDEST, NEWEST])
@pytest.mark.parametrize("job", _jobs())
def test_the_warm_up_job_validates_against_kubernetes_schema(job: dict[str, Any],
                                                             version: str) -> None:
    try:
        kv.validate(job, version, strict=True)
    except kv.ValidationError as exc:
        pytest.fail(f"Job {job['metadata']['name']} is invalid for Kubernetes {version}: "
                    f"{exc.message} at {'.'.join(map(str, exc.path))}")
