"""Image builds, the pure part: plans, the BuildRun and Job they render to, their states."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from artifact_operator.api.status import BuildStatus
from artifact_operator.logic import build_objects, builds
from artifact_operator.logic.render import render
from artifact_operator.settings import BuildEngine, Settings

from ..support.builders import artifact as manifest
from ..support.builders import parsed, primary

UID = "0b7c6d4e-1111-4222-8333-444455556666"
DIGEST = "sha256:" + "ab" * 32
GIT = {"provider": "git", "git": {"url": "https://git.example/app.git", "revision": "v1",
                                  "contextDir": "svc"}}
OCI = {"provider": "oci", "oci": {"image": "reg.example/src@sha256:" + "c" * 64,
                                  "pullSecret": "pull"}}
SETTINGS = Settings(build_output_repository="reg.example/builds", build_push_secret="push")
GENERATED = {"source": "generated", "executionEnvironmentId": "e",
             "executionEnvironmentVersionId": "v", "entrypoint": ["python", "app.py"]}
BASE = "reg.example/ee/python@sha256:" + "e" * 64
WITH_EE = SETTINGS.model_copy(update={"build_execution_environments": {"e/v": BASE}})
OWNER = {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact", "name": "web", "uid": UID,
         "controller": True, "blockOwnerDeletion": True}


def built(code_ref: dict[str, Any] | None = None, annotations: dict[str, str] | None = None,
          **config: Any) -> Any:
    build = {"codeRef": code_ref or GIT, **config}
    app = primary(image=None, imageBuildConfig=build)
    return parsed(manifest("web", {"name": "api", "containers": [app]}, namespace="team-a",
                           uid=UID, generation=1, annotations=annotations))


def plan(art: Any = None, engine: BuildEngine = BuildEngine.shipwright,
         settings: Settings = SETTINGS) -> builds.BuildPlan:
    (only,) = builds.plan_builds(art or built(), settings, engine)
    return only


# -- plans -----------------------------------------------------------------------------------


def test_a_plan_is_named_by_the_digest_of_source_and_dockerfile() -> None:
    p = plan()
    assert (p.group, p.container, p.unresolved) == ("api", "app", None)
    assert p.run == f"web-build-{p.digest[:12]}"
    assert p.output == f"reg.example/builds/team-a/web:{p.digest[:20]}"
    assert builds.image_of(p, DIGEST) == f"reg.example/builds/team-a/web@{DIGEST}"
    # The same spec plans the same run (restarts, other replicas); another revision another.
    assert plan().run == p.run
    other = {"provider": "git", "git": {**GIT["git"], "revision": "v2"}}
    assert plan(built(other)).run != p.run
    assert plan(built(dockerfile={"path": "ci/Dockerfile"})).run != p.run


def test_a_rebuild_request_is_a_new_digest() -> None:
    first = plan(built(annotations={builds.ANNOTATION_BUILD_REQUEST: "t1"}))
    again = plan(built(annotations={builds.ANNOTATION_BUILD_REQUEST: "t1"}))
    second = plan(built(annotations={builds.ANNOTATION_BUILD_REQUEST: "t2"}))
    assert first.run == again.run != second.run != plan().run


def test_containers_with_an_image_need_no_build() -> None:
    art = parsed(manifest("web", {"name": "api", "containers": [primary()]}, namespace="a"))
    assert builds.plan_builds(art, SETTINGS, BuildEngine.job) == []


@pytest.mark.parametrize(("art", "engine", "settings", "fragment"), [
    (built({"datarobot": {"catalogId": "c", "catalogVersionId": "v"}}), BuildEngine.shipwright,
     SETTINGS, "catalog item c/v has no source in ARTIFACT_OPERATOR_BUILD_CATALOG_SOURCES"),
    (built({"datarobot": {"catalogId": "c", "catalogVersionId": "v"}}), BuildEngine.shipwright,
     Settings(build_output_repository="r", build_catalog_sources={"c/v": {"provider": "git"}}),
     "not a valid codeRef"),
    (built(dockerfile=GENERATED), BuildEngine.job, SETTINGS,
     "execution environment e/v has no base image in "
     "ARTIFACT_OPERATOR_BUILD_EXECUTION_ENVIRONMENTS"),
    (built(dockerfile=GENERATED), BuildEngine.shipwright, WITH_EE, "Job engine only"),
    (built(), BuildEngine.shipwright, Settings(), "no build output repository"),
    (built(OCI), BuildEngine.job, SETTINGS, "Shipwright engine only"),
    (built({"provider": "git", "git": {"url": "u", "cloneSecret": "s"}}), BuildEngine.job,
     SETTINGS, "cloneSecret"),
])
def test_what_cannot_be_built_here_says_why(art: Any, engine: BuildEngine, settings: Settings,
                                            fragment: str) -> None:
    unresolved = plan(art, engine, settings).unresolved
    assert unresolved is not None and fragment in unresolved


def test_a_datarobot_catalog_item_builds_from_its_configured_source() -> None:
    datarobot = {"datarobot": {"catalogId": "c", "catalogVersionId": "v"}}
    settings = SETTINGS.model_copy(update={"build_catalog_sources": {"c/v": GIT}})
    p = plan(built(datarobot), settings=settings)
    assert p.unresolved is None and p.source is not None and p.source.dump() == GIT
    run = build_objects.render_buildrun(built(datarobot), p, settings, OWNER)
    assert run["spec"]["build"]["spec"]["source"]["git"]["url"] == GIT["git"]["url"]
    # Mapped elsewhere: another source, another build.
    moved = SETTINGS.model_copy(update={"build_catalog_sources": {"c/v": OCI}})
    assert plan(built(datarobot), settings=moved).run != p.run


def test_needs_build_reads_the_raw_spec() -> None:
    assert builds.needs_build({"containerGroups": [{"containers": [{"imageBuildConfig": {}}]}]})
    assert not builds.needs_build({"containerGroups": [{"containers": [{"imageUri": "x"}]}]})
    assert not builds.needs_build(None)


# -- the BuildRun ----------------------------------------------------------------------------


def test_buildrun_embeds_the_build_spec() -> None:
    art = built()
    p = plan(art)
    run = build_objects.render_buildrun(art, p, SETTINGS, OWNER)
    assert run["apiVersion"] == "shipwright.io/v1beta1" and run["kind"] == "BuildRun"
    meta = run["metadata"]
    assert (meta["name"], meta["namespace"], meta["ownerReferences"]) == (p.run, "team-a",
                                                                        [OWNER])
    assert meta["labels"] | {} == {
        "app.kubernetes.io/name": "web", "app.kubernetes.io/component": "image-build",
        "app.kubernetes.io/managed-by": "artifact-operator", "workload.dev/artifact": "web",
        "workload.dev/build-group": "api", "workload.dev/build-container": "app"}
    assert run["spec"] == {"build": {"spec": {
        "source": {"type": "Git", "contextDir": "svc",
                   "git": {"url": "https://git.example/app.git", "revision": "v1"}},
        "strategy": {"name": "buildkit", "kind": "ClusterBuildStrategy"},
        "paramValues": [{"name": "dockerfile", "value": "./Dockerfile"}],
        "output": {"image": p.output, "pushSecret": "push"},
        "timeout": "1800s"}}}


def test_buildrun_of_an_oci_source() -> None:
    art = built(OCI)
    run = build_objects.render_buildrun(art, plan(art), SETTINGS, OWNER)
    source = run["spec"]["build"]["spec"]["source"]
    assert source == {"type": "OCI", "ociArtifact": {"image": OCI["oci"]["image"],
                                                     "pullSecret": "pull"}}


def _run(status: str | None, reason: str = "", **extra: Any) -> dict[str, Any]:
    conditions = [] if status is None else [
        {"type": "Succeeded", "status": status, "reason": reason, "message": "m"}]
    return {"status": {"conditions": conditions, **extra}}


@pytest.mark.parametrize(("run", "expected"), [
    ({}, builds.BuildState(BuildStatus.pending)),
    (_run("Unknown", "Pending"), builds.BuildState(BuildStatus.pending, message="m")),
    (_run("Unknown", "Running"), builds.BuildState(BuildStatus.in_progress, message="m")),
    (_run("True", "Succeeded", output={"digest": DIGEST}),
     builds.BuildState(BuildStatus.built, DIGEST)),
    (_run("False", "BuildRunCanceled"),
     builds.BuildState(BuildStatus.cancelled, message="BuildRunCanceled: m")),
    (_run("False", "Failed", failureDetails={"reason": "PushFailed", "message": "denied"}),
     builds.BuildState(BuildStatus.failed, message="PushFailed: denied")),
    (_run("False", "BuildRunTimeout"),
     builds.BuildState(BuildStatus.failed, message="BuildRunTimeout: m")),
])
def test_buildrun_state(run: dict[str, Any], expected: builds.BuildState) -> None:
    assert builds.buildrun_state(run) == expected


def test_a_success_without_a_digest_is_a_failure() -> None:
    assert builds.buildrun_state(_run("True", "Succeeded")).status == BuildStatus.failed


# -- the Job ---------------------------------------------------------------------------------


def test_job_runs_rootless_buildkit_once_without_a_token() -> None:
    art = built()
    p = plan(art, BuildEngine.job)
    job = build_objects.render_build_job(art, p, SETTINGS, OWNER)
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 1800
    pod = spec["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"
    (c,) = pod["containers"]
    assert c["image"] == SETTINGS.build_builder_image and "@sha256:" in c["image"]
    assert c["command"][:2] == ["sh", "-c"] and "buildctl-daemonless.sh" in c["command"][2]
    assert "/dev/termination-log" in c["command"][2]
    assert c["args"] == ["build", "--frontend", "dockerfile.v0",
                         "--opt", "context=https://git.example/app.git#v1:svc",
                         "--opt", "filename=./Dockerfile",
                         "--output", f"type=image,name={p.output},push=true"]
    assert {"name": "DOCKER_CONFIG", "value": "/home/user/.docker"} in c["env"]
    assert {"name": "push-secret", "secret": {
        "secretName": "push", "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}} \
        in pod["volumes"]
    assert spec["template"]["metadata"]["labels"]["workload.dev/artifact"] == "web"


def _job(condition: str | None = None, reason: str = "", active: int = 0,
         cancelled: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"active": active} if active else {}
    if condition:
        status["conditions"] = [{"type": condition, "status": "True", "reason": reason}]
    meta = {"annotations": {builds.ANNOTATION_CANCELLED: "true"}} if cancelled else {}
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(("job", "message", "expected"), [
    (_job(), None, BuildStatus.pending),
    (_job(active=1), None, BuildStatus.in_progress),
    (_job("Complete"), DIGEST, BuildStatus.built),
    (_job("Complete"), "", BuildStatus.failed),
    (_job("Failed", "BackoffLimitExceeded"), None, BuildStatus.failed),
    (_job("Failed", "DeadlineExceeded"), None, BuildStatus.failed),
    (_job("Failed", "DeadlineExceeded", cancelled=True), None, BuildStatus.cancelled),
])
def test_job_state(job: dict[str, Any], message: str | None, expected: BuildStatus) -> None:
    state = builds.job_state(job, message)
    assert state.status == expected
    assert state.digest == (DIGEST if expected == BuildStatus.built else None)


def test_termination_message_of_the_builder_container() -> None:
    pod = {"status": {"containerStatuses": [
        {"name": "buildkit", "state": {"terminated": {"exitCode": 0, "message": DIGEST}}}]}}
    assert builds.termination_message(pod) == DIGEST
    assert builds.termination_message({"status": {}}) is None


# -- rendering with a built image ------------------------------------------------------------


def test_a_built_image_is_rendered_by_digest_and_the_spec_is_untouched() -> None:
    art = built()
    assert render(art, SETTINGS).waiting_for_image == {"api": "app"}
    image = f"reg.example/builds/team-a/web@{DIGEST}"
    out = render(art, SETTINGS, images={("api", "app"): image})
    assert out.waiting_for_image == {}
    (deployment,) = out.of_kind("Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == image
    assert art.spec.container_groups[0].containers[0].image_uri is None


# -- kubectl artifact builds / build -------------------------------------------------------


def test_builds_rows_carry_the_seed_status_and_the_image() -> None:
    from artifact_operator.cli.builds import build_rows

    labels = {"workload.dev/build-group": "api", "workload.dev/build-container": "app"}
    run = {"kind": "BuildRun", "metadata": {"name": "web-build-1", "labels": labels,
                                            "creationTimestamp": "2026-01-01T00:00:00Z"},
           **_run("True", "Succeeded", output={"digest": DIGEST})}
    job = {"kind": "Job", "metadata": {"name": "web-build-2", "labels": labels,
                                       "creationTimestamp": "2026-01-02T00:00:00Z"},
           "status": _job("Complete")["status"]}
    image = f"reg/x@{DIGEST}"
    artifact = {"status": {"builds": [{"build": {"artifactImageBuildId": "web-build-2"},
                                       "image": image}]}}
    rows = build_rows([run, job], artifact)
    assert [(r["id"], r["status"], r["container"], r["image"]) for r in rows] == [
        ("web-build-2", "BUILT", "api/app", image), ("web-build-1", "BUILT", "api/app", "")]


def test_build_verbs_parse_like_kubectl() -> None:
    from artifact_operator.cli import plugin
    from artifact_operator.cli.builds import CANCEL_JOB, request_patch

    args = plugin.build_parser().parse_args(["build", "logs", "run-1", "-f", "-n", "team"])
    assert (args.words, args.follow, args.namespace) == (["logs", "run-1"], True, "team")
    assert plugin.build_parser().parse_args(["builds", "web", "-o", "json"]).output == "json"
    assert request_patch("t1") == {"metadata": {"annotations": {
        "workload.dev/build-request": "t1"}}}
    assert CANCEL_JOB["spec"] == {"activeDeadlineSeconds": 1}


def test_build_logs_print_every_container_of_the_build_pods(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """`build logs RUN`: Shipwright's pod label first, then the Job's; init containers (the
    steps) before the others, each under a header."""
    import kubernetes.client

    from artifact_operator.cli import builds as cli

    asked: list[str] = []

    class Items:
        def __init__(self, items: list[dict[str, Any]]) -> None:
            self.items = items

    class Core:
        def __init__(self, _: object) -> None:
            pass

        def list_namespaced_pod(self, namespace: str, label_selector: str,
                                **_: Any) -> Items:
            asked.append(label_selector)
            if not label_selector.startswith("job-name="):
                return Items([])
            return Items([{"metadata": {"name": "run-1-x"}, "spec": {
                "initContainers": [{"name": "clone"}], "containers": [{"name": "buildkit"}]}}])

        def read_namespaced_pod_log(self, pod: str, namespace: str, container: str,
                                    **_: Any) -> str:
            return f"{pod}:{container} says hi\n"

    class Client:
        def sanitize_for_serialization(self, obj: Any) -> Any:
            return obj

    class Custom:
        api_client = Client()

    class FakeCluster:
        namespace = "team-a"
        api = Custom()

    monkeypatch.setattr(kubernetes.client, "CoreV1Api", Core)
    assert cli.cmd_logs(FakeCluster(), "run-1", follow=False) == 0  # type: ignore[arg-type]
    assert asked == ["buildrun.shipwright.io/name=run-1", "job-name=run-1"]
    assert capsys.readouterr().out == (
        "==> run-1-x/clone <==\nrun-1-x:clone says hi\n"
        "==> run-1-x/buildkit <==\nrun-1-x:buildkit says hi\n")


async def test_a_reconcile_never_hangs_on_an_engine_that_cannot_be_listed() -> None:
    """Shipwright chosen but not installed (or the list refused): the artifact says so at
    once, and is reconciled again when the list succeeds."""
    from typing import cast

    from artifact_operator.api.status import ArtifactStatus
    from artifact_operator.controller.builds import Builds
    from artifact_operator.kube.client import Kube
    from artifact_operator.kube.events import EventRecorder

    woken: list[tuple[str, str]] = []
    kube = cast(Kube, object())  # never called: nothing is created before the list
    b = Builds(kube, SETTINGS, EventRecorder(kube, enabled=False), BuildEngine.shipwright,
               None, woken.append)
    b.sync_wait = 0.01
    art = built()
    facts = await b.observe({}, art, ArtifactStatus())
    ((reason, message),) = facts.held["api"]
    assert reason == "ImageNotBuilt" and "BuildRuns cannot be listed yet" in message
    assert facts.images == {} and woken == []
    b.watch.synced.set()
    await asyncio.sleep(0.01)
    assert woken == [("team-a", "web")]


class _Kube:
    """Just what Builds calls before a run exists: create (a 409 after the first)."""

    def __init__(self) -> None:
        self.created: list[dict[str, Any]] = []

    async def create(self, obj: dict[str, Any], *, exists_ok: bool = False) -> Any:
        if any(o["metadata"]["name"] == obj["metadata"]["name"] for o in self.created):
            return None
        self.created.append(obj)
        return obj


def _builds(kube: _Kube, engine: BuildEngine = BuildEngine.shipwright) -> Any:
    from typing import cast

    from artifact_operator.controller.builds import Builds
    from artifact_operator.kube.client import Kube
    from artifact_operator.kube.events import EventRecorder

    k = cast(Kube, kube)
    b = Builds(k, SETTINGS, EventRecorder(k, enabled=False), engine, None, lambda key: None)
    b.watch.synced.set()
    return b


async def test_one_build_per_source_then_the_digest_and_a_locked_artifact_keeps_it() -> None:
    from artifact_operator.api.status import ArtifactStatus

    kube = _Kube()
    b = _builds(kube)
    art = built()
    for _ in range(3):  # resyncs and echoes before the watch shows the run
        facts = await b.observe({}, art, ArtifactStatus())
    (run,) = kube.created
    assert run["kind"] == "BuildRun" and facts.held["api"][0][0] == "Building"
    b.watch.replace([{**run, **_run("True", "Succeeded", output={"digest": DIGEST})}])
    facts = await b.observe({}, art, ArtifactStatus())
    image = f"reg.example/builds/team-a/web@{DIGEST}"
    assert facts.images == {("api", "app"): image} and facts.held == {}
    (entry,) = facts.statuses
    assert (entry.image, entry.build.status if entry.build else None) == (image, "BUILT")

    # Stored, the image outlives its BuildRun; locked, it outlives a source change too.
    stored = ArtifactStatus(builds=facts.statuses)
    b.watch.replace([])
    assert (await b.observe({}, art, stored)).images == {("api", "app"): image}
    other = {"provider": "git", "git": {**GIT["git"], "revision": "v2"}}
    locked = parsed(manifest("web", {"name": "api", "containers": [primary(
        image=None, imageBuildConfig={"codeRef": other})]}, namespace="team-a", uid=UID,
        lifecycle="locked"))
    assert (await b.observe({}, locked, stored)).images == {("api", "app"): image}
    assert len(kube.created) == 1
    # A draft with another revision: a new build, and nothing runs until it is built.
    draft = built(other)
    facts = await b.observe({}, draft, stored)
    assert facts.images == {} and len(kube.created) == 2


# -- the auto engine switching from the Job fallback to Shipwright installed later ----------


class _Served(_Kube):
    """Builds' calls around a switch: is Shipwright served; list and watch its BuildRuns
    (none); the build Job's pods."""

    def __init__(self, served: bool) -> None:
        super().__init__()
        self.served = served
        self.pods: list[dict[str, Any]] = []

    async def serves(self, api_version: str, plural: str) -> bool:
        return self.served and (api_version, plural) == (builds.SHIPWRIGHT_API, "buildruns")

    async def list_pages(self, *_: Any) -> AsyncIterator[tuple[list[Any], str]]:
        yield [], "1"

    async def watch(self, *_: Any) -> Any:
        await asyncio.Event().wait()
        yield  # pragma: no cover

    async def list(self, *_: Any) -> list[dict[str, Any]]:
        return self.pods


async def test_without_shipwright_served_the_job_engine_stays() -> None:
    b = _builds(_Served(served=False), BuildEngine.job)
    assert await b.take_up_shipwright() is False
    assert b.engine == BuildEngine.job and list(b.watches) == [BuildEngine.job]


async def test_once_shipwright_is_served_new_builds_are_buildruns_and_jobs_in_flight_end(
        ) -> None:
    """A Job started before the switch is followed to its end (no BuildRun of its name
    beside it), a container already built keeps its image, and a new source (a rebuild
    request) is a BuildRun."""
    from artifact_operator.api.status import ArtifactStatus

    kube = _Served(served=True)
    b = _builds(kube, BuildEngine.job)
    running = asyncio.get_running_loop().create_task(b.run())
    await asyncio.sleep(0.01)  # the Jobs listed (none): the test plays them from here
    in_flight, done = built(), built(annotations={builds.ANNOTATION_BUILD_REQUEST: "old"})
    await b.observe({}, in_flight, ArtifactStatus())
    (job,) = kube.created
    assert job["kind"] == "Job"
    b.watch.deliver("MODIFIED", {
        **job, "status": _job(active=1)["status"]})
    # Built before the switch: its image is in status.
    stored = ArtifactStatus(builds=(await _built_by_job(b, kube, done)).statuses)
    assert len(kube.created) == 2

    assert await b.take_up_shipwright() is True
    assert b.engine == BuildEngine.shipwright and b.watch.kind == "BuildRun"
    facts = await b.observe({}, in_flight, ArtifactStatus())
    assert len(kube.created) == 2  # no BuildRun beside the Job
    ((reason, message),) = facts.held["api"]
    assert reason == "Building" and f"kubectl logs job/{job['metadata']['name']}" in message
    assert (await b.observe({}, done, stored)).images == {
        ("api", "app"): f"reg.example/builds/team-a/web@{DIGEST}"}
    assert len(kube.created) == 2  # built: not again

    # The Job ends: its digest read as before.
    b.watches[BuildEngine.job].deliver("MODIFIED", {
        **job, "status": _job("Complete")["status"]})
    kube.pods = [{"status": {"containerStatuses": [
        {"name": "buildkit", "state": {"terminated": {"exitCode": 0, "message": DIGEST}}}]}}]
    assert (await b.observe({}, in_flight, ArtifactStatus())).images == {
        ("api", "app"): f"reg.example/builds/team-a/web@{DIGEST}"}

    # A rebuild request: a new source, so a BuildRun.
    again = built(annotations={builds.ANNOTATION_BUILD_REQUEST: "new"})
    await b.observe({}, again, ArtifactStatus())
    assert [o["kind"] for o in kube.created] == ["Job", "Job", "BuildRun"]
    running.cancel()


async def test_started_on_shipwright_in_auto_mode_a_job_from_before_a_restart_is_followed(
        ) -> None:
    """Auto mode, Shipwright served at start, a build Job still in flight from before the
    restart (started on the Job fallback): no BuildRun of its name beside it; it is followed
    to its end and its digest is the image."""
    from typing import cast

    from artifact_operator.api.status import ArtifactStatus
    from artifact_operator.controller.builds import Builds
    from artifact_operator.kube.client import Kube
    from artifact_operator.kube.events import EventRecorder
    from artifact_operator.logic.build_objects import render_build_job

    kube = _Served(served=True)
    k = cast(Kube, kube)
    b = Builds(k, SETTINGS, EventRecorder(k, enabled=False), BuildEngine.shipwright, None,
               lambda key: None, earlier=[BuildEngine.job])
    assert set(b.watches) == {BuildEngine.shipwright, BuildEngine.job}
    art = built()
    job_plan = plan(art, BuildEngine.job)
    job = render_build_job(art, job_plan, SETTINGS, None)
    for watch in b.watches.values():
        watch.synced.set()
    b.watches[BuildEngine.job].deliver("ADDED", {**job, "status": _job(active=1)["status"]})

    facts = await b.observe({}, art, ArtifactStatus())
    assert kube.created == []  # no BuildRun beside the Job
    ((reason, message),) = facts.held["api"]
    assert reason == "Building" and f"job/{job_plan.run}" in message

    b.watches[BuildEngine.job].deliver("MODIFIED", {**job, "status": _job("Complete")["status"]})
    kube.pods = [{"status": {"containerStatuses": [
        {"name": "buildkit", "state": {"terminated": {"exitCode": 0, "message": DIGEST}}}]}}]
    facts = await b.observe({}, art, ArtifactStatus())
    assert facts.images == {("api", "app"): f"reg.example/builds/team-a/web@{DIGEST}"}
    assert kube.created == []


async def _built_by_job(b: Any, kube: _Served, art: Any) -> Any:
    from artifact_operator.api.status import ArtifactStatus

    await b.observe({}, art, ArtifactStatus())
    job = kube.created[-1]
    b.watch.deliver("MODIFIED", {
        **job, "status": _job("Complete")["status"]})
    kube.pods = [{"status": {"containerStatuses": [
        {"name": "buildkit", "state": {"terminated": {"exitCode": 0, "message": DIGEST}}}]}}]
    facts = await b.observe({}, art, ArtifactStatus())
    kube.pods = []
    b.watch.deliver("DELETED", job)  # the Job may go: status keeps it
    return facts


# -- generated Dockerfiles, output repositories, unknown digests ------------------------------


def test_a_generated_dockerfile_comes_from_the_execution_environment_table() -> None:
    art = built(dockerfile=GENERATED)
    p = plan(art, BuildEngine.job, WITH_EE)
    assert p.unresolved is None
    assert p.generated == ("# Generated by artifact-operator from execution environment e/v\n"
                           f"FROM {BASE}\nWORKDIR /opt/code\nCOPY . /opt/code\n"
                           'CMD ["python", "app.py"]\n')
    job = build_objects.render_build_job(art, p, WITH_EE, OWNER)
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert {"name": "ARTIFACT_DOCKERFILE", "value": p.generated} in c["env"]
    assert {"name": "dockerfile", "mountPath": "/tmp/dockerfile"} in c["volumeMounts"]
    assert {"name": "dockerfile", "emptyDir": {}} in pod["volumes"]
    assert "--local dockerfile=/tmp/dockerfile" in c["command"][2]
    assert "filename=Dockerfile" in c["args"]
    # Another base image for the same execution environment is another build.
    moved = SETTINGS.model_copy(update={"build_execution_environments": {
        "e/v": "reg.example/ee/python@sha256:" + "f" * 64}})
    assert plan(art, BuildEngine.job, moved).run != p.run
    # A provided Dockerfile adds nothing of this.
    provided = build_objects.render_build_job(built(), plan(built(), BuildEngine.job), SETTINGS,
                                              OWNER)
    (plain,) = provided["spec"]["template"]["spec"]["containers"]
    assert "ARTIFACT_DOCKERFILE" not in {e["name"] for e in plain["env"]}
    assert "dockerfile" not in {m["name"] for m in plain["volumeMounts"]}


def test_the_execution_environment_table_takes_only_images_pinned_by_digest() -> None:
    with pytest.raises(ValueError, match="build_execution_environments"):
        Settings(build_execution_environments={"e/v": "reg.example/ee/python:3.11"})


def test_a_namespace_may_have_its_own_output_repository() -> None:
    settings = SETTINGS.model_copy(update={"build_output_repositories": {
        "team-a": "reg.team-a.example/images"}})
    p = plan(built(), settings=settings)
    assert p.output.startswith("reg.team-a.example/images/team-a/web:")
    other = parsed(manifest("web", {"name": "api", "containers": [
        primary(image=None, imageBuildConfig={"codeRef": GIT})]}, namespace="team-b", uid=UID))
    (q,) = builds.plan_builds(other, settings, BuildEngine.shipwright)
    assert q.output.startswith("reg.example/builds/team-b/web:")


def test_a_complete_job_whose_pod_is_gone_has_an_unknown_digest() -> None:
    state = builds.job_state(_job("Complete"), None, pod_found=False)
    assert state.status == BuildStatus.unknown and "pod is gone" in (state.message or "")
    assert builds.job_state(_job("Complete"), None, pod_found=True).status == BuildStatus.failed
