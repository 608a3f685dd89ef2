"""`kubectl artifact builds|build`: the seed's build endpoints on the cluster's own objects.

    GET    /artifacts/{id}/builds              kubectl artifact builds NAME
    POST   /artifacts/{id}/builds              kubectl artifact build NAME
    GET    /artifacts/{id}/builds/{build_id}   kubectl artifact builds NAME (one row per build)
    DELETE /artifacts/{id}/builds/{build_id}   kubectl artifact build cancel RUN
    GET    .../builds/{build_id}/logs          kubectl artifact build logs RUN [-f]

A build id is the name of its Shipwright BuildRun or Job. Every request is the user's own
(RBAC decides); the operator is not asked anything: a rebuild is an annotation on the
artifact with a new token (GitOps-safe: the spec does not change), which the operator turns
into a new build of the current source.
"""

from __future__ import annotations

import sys
import uuid
from datetime import UTC, datetime
from typing import Any

from artifact_operator.cli.cluster import RESOURCE, Cluster, PluginError
from artifact_operator.cli.output import age, columns, write_document
from artifact_operator.logic import builds as logic

Obj = dict[str, Any]
SW_GROUP, SW_VERSION, SW_PLURAL = "shipwright.io", "v1beta1", "buildruns"


def build_rows(runs: list[Obj], artifact: Obj) -> list[Obj]:
    """One row per build of the artifact, newest first: what the seed's list returns (id,
    status, createdAt), with the container it builds and the image it made."""
    images = {(b.get("build") or {}).get("artifactImageBuildId"): b.get("image")
              for b in (artifact.get("status") or {}).get("builds") or []}
    rows = []
    for run in runs:
        meta = run["metadata"]
        labels = meta.get("labels") or {}
        if run["kind"] == "BuildRun":
            state = logic.buildrun_state(run)
        else:
            # The Job's digest is in its pod; the operator copied it into status.
            image = images.get(meta["name"])
            state = logic.job_state(run, image.rpartition("@")[2] if image else None)
        rows.append({
            "id": meta["name"], "kind": run["kind"],
            "container": f"{labels.get(logic.LABEL_GROUP, '?')}/"
                         f"{labels.get(logic.LABEL_CONTAINER, '?')}",
            "status": str(state.status), "createdAt": meta.get("creationTimestamp"),
            "image": images.get(meta["name"]) or "", "message": state.message or ""})
    return sorted(rows, key=lambda r: (r["createdAt"] or "", r["id"]), reverse=True)


def rows_table(rows: list[Obj], now: datetime) -> str:
    return columns([["BUILD", "KIND", "CONTAINER", "STATUS", "AGE", "IMAGE"]] + [
        [r["id"], r["kind"], r["container"], r["status"], age(r["createdAt"], now),
         r["image"] or "<none>"] for r in rows])


def _runs(cluster: Cluster, artifact: Obj) -> list[Obj]:
    """The artifact's BuildRuns (where Shipwright is installed) and build Jobs: in its own
    namespace, and in the build namespace its status names, if the operator has one."""
    from kubernetes.client import ApiException, BatchV1Api

    name = artifact["metadata"]["name"]
    selector = f"{logic.build_selector()},workload.dev/artifact={name}"
    elsewhere = {b["buildNamespace"] for b in (artifact.get("status") or {}).get("builds") or []
                 if b.get("buildNamespace")}
    out: list[Obj] = []
    for namespace in [cluster.namespace, *sorted(elsewhere - {cluster.namespace})]:
        scoped = selector if namespace == cluster.namespace else \
            f"{selector},{logic.LABEL_ARTIFACT_NAMESPACE}={cluster.namespace}"
        try:
            got: Any = cluster.api.list_namespaced_custom_object(
                SW_GROUP, SW_VERSION, namespace, SW_PLURAL, label_selector=scoped,
                _request_timeout=30)
            out += [{**r, "kind": "BuildRun"} for r in got.get("items", [])]
        except ApiException as exc:
            if exc.status != 404:  # 404: Shipwright is not installed
                raise
        jobs = BatchV1Api(cluster.api.api_client).list_namespaced_job(
            namespace, label_selector=scoped, _request_timeout=30)
        for job in jobs.items:
            body = cluster.api.api_client.sanitize_for_serialization(job)
            out.append({**body, "kind": "Job"})
    return out


def cmd_builds(cluster: Cluster, args: Any) -> int:
    artifact = cluster.get(args.name)
    rows = build_rows(_runs(cluster, artifact), artifact)
    if args.output in ("json", "yaml"):
        doc = {"totalCount": len(rows), "count": len(rows), "next": None, "previous": None,
               "data": [{"id": r["id"], "name": r["id"], "artifactId": args.name,
                         "status": r["status"], "createdAt": r["createdAt"],
                         "container": r["container"], "image": r["image"] or None,
                         "message": r["message"] or None} for r in rows]}
        write_document(doc, args.output)
    elif not rows:
        print(f"No builds of {args.name} in namespace {cluster.namespace}.", file=sys.stderr)
    else:
        sys.stdout.write(rows_table(rows, datetime.now(UTC)))
    return 0


def request_patch(token: str) -> Obj:
    return {"metadata": {"annotations": {logic.ANNOTATION_BUILD_REQUEST: token}}}


def cmd_build(cluster: Cluster, name: str) -> int:
    artifact = cluster.get(name)
    if (artifact.get("spec") or {}).get("lifecycle") == "locked":
        # As the seed: a locked artifact's images never change.
        raise PluginError(f"error: {name} is locked: its images are not rebuilt (clone it "
                          "into a draft: kubectl artifact clone)")
    token = uuid.uuid4().hex[:12]
    cluster.merge_patch(name, request_patch(token))
    print(f"{RESOURCE}/{name}: build requested ({logic.ANNOTATION_BUILD_REQUEST}={token}); "
          f"kubectl artifact builds {name} lists it once the operator has started it")
    return 0


CANCEL_BUILDRUN: Obj = {"spec": {"state": "BuildRunCanceled"}}
# A Job has no cancel: its deadline, now, stops its pod; the annotation tells the operator
# the stop was asked for (CANCELLED), not a timeout (FAILED).
CANCEL_JOB: Obj = {"metadata": {"annotations": {logic.ANNOTATION_CANCELLED: "true"}},
                   "spec": {"activeDeadlineSeconds": 1}}


def cmd_cancel(cluster: Cluster, run: str) -> int:
    from kubernetes.client import ApiException, BatchV1Api

    try:
        found = cluster.api.get_namespaced_custom_object(
            SW_GROUP, SW_VERSION, cluster.namespace, SW_PLURAL, run, _request_timeout=30)
    except ApiException as exc:
        if exc.status != 404:
            raise
        found = None
    if found is not None:
        cluster.api.patch_namespaced_custom_object(
            SW_GROUP, SW_VERSION, cluster.namespace, SW_PLURAL, run, CANCEL_BUILDRUN,
            _request_timeout=30)
        print(f"buildruns.shipwright.io/{run} cancel requested")
        return 0
    batch = BatchV1Api(cluster.api.api_client)
    try:
        batch.read_namespaced_job(run, cluster.namespace, _request_timeout=30)
    except ApiException as exc:
        if exc.status == 404:
            raise PluginError(f"error: no build {run} (BuildRun or Job) in namespace "
                              f"{cluster.namespace}") from exc
        raise
    batch.patch_namespaced_job(run, cluster.namespace, CANCEL_JOB, _request_timeout=30)
    print(f"jobs.batch/{run} cancel requested")
    return 0


def pod_selectors(run: str) -> list[str]:
    """The pods of a build: Shipwright's label on its BuildRun's pods, the Job's on its own."""
    return [f"{logic.SHIPWRIGHT_RUN_LABEL}={run}", f"job-name={run}"]


def cmd_logs(cluster: Cluster, run: str, follow: bool) -> int:
    from kubernetes.client import CoreV1Api

    client = cluster.api.api_client
    core: Any = CoreV1Api(client)  # the log calls return str or a raw stream: untyped here
    pods: list[Obj] = []
    for selector in pod_selectors(run):
        found = core.list_namespaced_pod(cluster.namespace, label_selector=selector,
                                         _request_timeout=30)
        pods = [client.sanitize_for_serialization(p) for p in found.items]
        if pods:
            break
    if not pods:
        raise PluginError(f"error: build {run} has no pods in namespace {cluster.namespace} "
                          "(not started yet, or already cleaned up)")
    for pod in pods:
        name, spec = pod["metadata"]["name"], pod.get("spec") or {}
        containers = [c["name"] for c in (spec.get("initContainers") or [])] + \
            [c["name"] for c in spec.get("containers") or []]
        for container in containers:  # every step of the build, in order
            print(f"==> {name}/{container} <==", flush=True)
            if follow:
                stream = core.read_namespaced_pod_log(
                    name, cluster.namespace, container=container, follow=True,
                    _preload_content=False)
                for chunk in stream.stream():
                    sys.stdout.write(chunk.decode(errors="replace"))
                    sys.stdout.flush()
            else:
                sys.stdout.write(str(core.read_namespaced_pod_log(
                    name, cluster.namespace, container=container, _request_timeout=30)))
    return 0


def cmd_build_words(cluster: Cluster, args: Any) -> int:
    """`build NAME`, `build cancel RUN`, `build logs RUN [-f]`."""
    words = list(args.words)
    if len(words) == 2 and words[0] == "cancel":
        return cmd_cancel(cluster, words[1])
    if len(words) == 2 and words[0] == "logs":
        return cmd_logs(cluster, words[1], args.follow)
    if len(words) == 1:
        return cmd_build(cluster, words[0])
    raise PluginError("error: usage: kubectl artifact build NAME | build cancel RUN | "
                      "build logs RUN [-f]")
