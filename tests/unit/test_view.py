"""ClusterView: the child indexes (plain dicts here, keyed by `view.child_keys` as the
watches key them), the Artifacts as last seen, and our own writes laid over both until the
watch catches up."""

from __future__ import annotations

from typing import Any

from artifact_operator.api import naming
from artifact_operator.controller.view import ClusterView, child_keys, slim, spec_unanswered

Obj = dict[str, Any]
NS = "team-a"
KEY = (NS, "web")
OWNER_UID = "uid-web"


def child(kind: str, name: str, rv: int, *, artifact: str = "web", uid: str | None = None,
          **extra: Any) -> Obj:
    api_version = "apps/v1" if kind == "Deployment" else "v1"
    meta: Obj = {"name": name, "namespace": NS, "resourceVersion": str(rv),
                 "uid": uid or f"uid-{name}",
                 "labels": naming.labels(artifact, "api", "service"),
                 "ownerReferences": [naming.owner_reference(
                     "workload.dev/v1alpha1", "Artifact", artifact, OWNER_UID)]}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **extra}


def cache_claim(name: str, rv: int) -> Obj:
    labels = {naming.LABEL_MANAGED_BY: naming.MANAGER,
              naming.LABEL_CACHE: naming.cache_hash_of_claim(name)}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "namespace": NS, "resourceVersion": str(rv),
                         "uid": f"uid-{name}", "labels": labels}}


class Indexes:
    """The watches' indexes as plain dicts: kind -> key -> [bodies], keyed by `child_keys`."""

    def __init__(self) -> None:
        self.by_kind: dict[str, dict[Any, list[Obj]]] = {
            k: {} for k in ("Deployment", "Service", "PersistentVolumeClaim", "Secret")}

    def show(self, *objs: Obj) -> None:
        """The watch delivers `objs` (replacing what it showed of the same objects)."""
        for obj in objs:
            self.hide(obj)
            for key in child_keys(obj):
                self.by_kind[obj["kind"]].setdefault(key, []).append(slim(obj))

    def hide(self, obj: Obj) -> None:
        """The watch delivers the deletion of `obj`."""
        for index in self.by_kind.values():
            for key in list(index):
                index[key] = [o for o in index[key]
                              if (o["kind"], o["metadata"]["name"]) !=
                              (obj["kind"], obj["metadata"]["name"])]
                if not index[key]:
                    del index[key]


def view_with(indexes: Indexes) -> ClusterView:
    view = ClusterView()
    view.bind(indexes.by_kind)
    return view


def names(children: dict[tuple[str, str], Obj]) -> dict[tuple[str, str], str]:
    """(kind, name) -> resourceVersion of each child."""
    return {ref: obj["metadata"]["resourceVersion"] for ref, obj in children.items()}


# -- children by owner ------------------------------------------------------------------------


def test_children_come_from_the_indexes_by_owner() -> None:
    indexes = Indexes()
    indexes.show(child("Deployment", "web-api", 5), child("Service", "web-api", 6),
                 child("Deployment", "other-api", 7, artifact="other"))
    view = view_with(indexes)
    assert names(view.children(KEY)) == {("Deployment", "web-api"): "5",
                                         ("Service", "web-api"): "6"}
    assert names(view.children((NS, "other"))) == {("Deployment", "other-api"): "7"}
    assert view.children((NS, "nobody")) == {}
    assert view.children(("elsewhere", "web")) == {}


def test_a_view_without_indexes_yet_has_no_children() -> None:
    assert ClusterView().children(KEY) == {}


# -- our writes over the indexes --------------------------------------------------------------


def test_our_write_is_seen_before_the_watch_delivers_it() -> None:
    indexes = Indexes()
    view = view_with(indexes)
    view.note_written(child("Deployment", "web-api", 10))
    assert names(view.children(KEY)) == {("Deployment", "web-api"): "10"}


def test_our_write_overlays_an_older_indexed_object_until_the_index_catches_up() -> None:
    indexes = Indexes()
    indexes.show(child("Deployment", "web-api", 5, spec={"replicas": 1}))
    view = view_with(indexes)
    view.note_written(child("Deployment", "web-api", 9, spec={"replicas": 3}))

    assert view.children(KEY)[("Deployment", "web-api")]["spec"] == {"replicas": 3}

    # The watch shows our write, then someone else's newer change: the index wins from now on.
    indexes.show(child("Deployment", "web-api", 9, spec={"replicas": 3}))
    assert names(view.children(KEY)) == {("Deployment", "web-api"): "9"}
    indexes.show(child("Deployment", "web-api", 12, spec={"replicas": 5}))
    assert view.children(KEY)[("Deployment", "web-api")]["spec"] == {"replicas": 5}


def test_once_the_index_caught_up_our_old_write_never_comes_back() -> None:
    indexes = Indexes()
    view = view_with(indexes)
    view.note_written(child("Service", "web-api", 4))
    indexes.show(child("Service", "web-api", 4))
    assert names(view.children(KEY)) == {("Service", "web-api"): "4"}
    # Someone deletes it: the index drops it, and our write must not resurrect it.
    indexes.hide(child("Service", "web-api", 4))
    assert view.children(KEY) == {}


def test_a_deletion_right_after_the_watch_caught_up_with_our_write_shows() -> None:
    """Someone deletes our child just after the watch has shown our write, before any
    reconcile looked: the write must not stand in for the deleted object (it did, and the
    child was not put back)."""
    indexes = Indexes()
    view = view_with(indexes)
    view.note_written(child("Service", "web-api", 4))
    echo = child("Service", "web-api", 4)
    indexes.show(echo)
    view.watched(slim(echo))  # the reconciler tells the view of each child event
    indexes.hide(echo)
    assert view.children(KEY) == {}


def test_a_deletion_after_the_watch_overtook_the_answer_to_our_write_shows() -> None:
    """The watch event of our write can come before the write's own answer: the deletion
    that follows must show all the same."""
    indexes = Indexes()
    view = view_with(indexes)
    echo = child("Service", "web-api", 4)
    indexes.show(echo)
    view.watched(slim(echo))  # nothing of ours held yet
    view.note_written(child("Service", "web-api", 4))  # the answer comes after
    indexes.hide(echo)
    assert view.children(KEY) == {}


def test_the_watch_showing_an_older_version_keeps_our_write() -> None:
    indexes = Indexes()
    view = view_with(indexes)
    view.note_written(child("Service", "web-api", 9, spec={"ports": [1]}))
    older = child("Service", "web-api", 5)
    indexes.show(older)
    view.watched(slim(older))
    assert view.children(KEY)[("Service", "web-api")]["spec"] == {"ports": [1]}


def test_a_deletion_we_made_hides_the_object_while_the_index_still_shows_it() -> None:
    indexes = Indexes()
    deployment = child("Deployment", "web-old", 5)
    indexes.show(deployment, child("Service", "web-api", 6))
    view = view_with(indexes)
    view.note_deleted(deployment)

    assert names(view.children(KEY)) == {("Service", "web-api"): "6"}
    indexes.hide(deployment)  # the watch delivers the deletion
    assert names(view.children(KEY)) == {("Service", "web-api"): "6"}
    # Re-created by us: our write shows.
    view.note_written(child("Deployment", "web-old", 20, uid="uid-new"))
    assert names(view.children(KEY)) == {("Deployment", "web-old"): "20",
                                         ("Service", "web-api"): "6"}


def test_a_deletion_we_made_stops_hiding_once_the_watch_delivered_it() -> None:
    indexes = Indexes()
    deployment = child("Deployment", "web-old", 5)
    indexes.show(deployment)
    view = view_with(indexes)
    view.note_deleted(deployment)
    indexes.hide(deployment)  # the watch delivers the deletion
    assert view.children(KEY) == {}
    indexes.show(child("Deployment", "web-old", 20, uid="uid-new"))  # re-created elsewhere
    assert names(view.children(KEY)) == {("Deployment", "web-old"): "20"}


def test_writes_of_one_artifact_do_not_show_under_another() -> None:
    view = view_with(Indexes())
    view.note_written(child("Deployment", "other-api", 3, artifact="other"))
    assert view.children(KEY) == {}
    assert list(view.children((NS, "other"))) == [("Deployment", "other-api")]


# -- the artifacts as last seen ---------------------------------------------------------------


def artifact_body(rv: int, uid: str = OWNER_UID, **status: Any) -> Obj:
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": "web", "namespace": NS, "uid": uid,
                         "resourceVersion": str(rv), "generation": 1,
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {}, "status": status}


def test_note_artifact_ignores_an_older_event_overtaken_by_our_status_write() -> None:
    view = ClusterView()
    assert view.note_artifact(artifact_body(10, phase="Ready"))  # our status write's answer
    assert not view.note_artifact(artifact_body(8, phase="Progressing"))  # the watch, late
    assert not view.note_artifact(artifact_body(10, phase="Ready"))  # the write's echo
    assert view.artifacts[KEY]["status"] == {"phase": "Ready"}
    assert view.note_artifact(artifact_body(11, phase="Degraded"))  # newer: taken
    assert view.artifacts[KEY]["status"] == {"phase": "Degraded"}


def test_note_artifact_takes_a_recreated_artifact_whatever_its_resource_version() -> None:
    view = ClusterView()
    view.note_artifact(artifact_body(10, phase="Ready"))
    assert view.note_artifact(artifact_body(3, uid="uid-recreated"))
    assert view.artifacts[KEY]["metadata"]["uid"] == "uid-recreated"
    assert view.artifacts[KEY]["status"] == {}



def test_a_spec_is_unanswered_while_new_or_ahead_of_the_observed_generation() -> None:
    """What puts an artifact in the work queue's urgent lane: a user waits on it."""
    new = artifact_body(1)
    assert spec_unanswered(new), "never reconciled"
    answered = artifact_body(2, observedGeneration=1, phase="Ready")
    assert not spec_unanswered(answered)
    edited = artifact_body(3, observedGeneration=1, phase="Ready")
    edited["metadata"]["generation"] = 2
    assert spec_unanswered(edited)
    edited["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not spec_unanswered(edited), "being deleted: nothing to answer"
    assert not spec_unanswered(None)

def test_forget_artifact() -> None:
    view = ClusterView()
    view.note_artifact(artifact_body(1))
    view.forget_artifact(KEY)
    view.forget_artifact(KEY)  # twice is fine
    assert view.artifacts == {}


# -- slim --------------------------------------------------------------------------------------


def test_slim_drops_managed_fields_and_keeps_spec_and_status() -> None:
    body = artifact_body(4, phase="Ready")
    out = slim(body)
    assert "managedFields" not in out["metadata"]
    assert out["metadata"]["uid"] == OWNER_UID
    assert out["spec"] == {} and out["status"] == {"phase": "Ready"}
    assert "managedFields" in body["metadata"], "the input is not changed"


def test_slim_keeps_only_the_key_names_of_a_secret() -> None:
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "web-api-token", "namespace": NS, "managedFields": []},
              "data": {"token": "c2VjcmV0", "b": "eA=="}, "stringData": {"x": "plain"}}
    out = slim(secret)
    assert out == {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"name": "web-api-token", "namespace": NS},
                   "dataKeys": ["b", "token"]}
    assert "c2VjcmV0" not in repr(out) and "plain" not in repr(out)


# -- cache claims by name ----------------------------------------------------------------------


def test_claim_is_looked_up_by_name_with_our_writes_over_the_index() -> None:
    name = naming.cache_claim_name("nvcr.io/nim/x:1")
    indexes = Indexes()
    view = view_with(indexes)
    assert view.claim(NS, name) is None

    view.note_written(cache_claim(name, 3))  # we created it; the watch has not shown it
    found = view.claim(NS, name)
    assert found is not None and found["metadata"]["resourceVersion"] == "3"

    indexes.show(cache_claim(name, 3))
    indexes.show(cache_claim(name, 7))
    found = view.claim(NS, name)
    assert found is not None and found["metadata"]["resourceVersion"] == "7"
    assert view.claim("elsewhere", name) is None

    view.note_deleted(cache_claim(name, 7))
    assert view.claim(NS, name) is None, "our deletion hides it while the index shows it"


def artifact_reading(name: str, rv: int, *secrets: str, namespace: str = NS) -> Obj:
    env = [{"name": f"E{i}", "source": "dr-credential", "drCredentialId": s, "key": "k"}
           for i, s in enumerate(secrets)]
    return {"apiVersion": "workload.dev/v1alpha1", "kind": "Artifact",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                         "resourceVersion": str(rv)},
            "spec": {"containerGroups": [{"name": "api", "containers": [
                {"name": "app", "imageUri": "x", "environmentVars": env}]}]}}


def test_the_readers_of_a_secret_follow_the_artifacts_specs() -> None:
    view = ClusterView()
    view.note_artifact(artifact_reading("web", 1, "db", "cache"))
    view.note_artifact(artifact_reading("api", 2, "db"))
    view.note_artifact(artifact_reading("other", 3, "db", namespace="team-b"))
    assert view.secret_readers(NS, "db") == {KEY, (NS, "api")}
    assert view.secret_readers(NS, "cache") == {KEY}
    assert view.secret_readers("team-b", "db") == {("team-b", "other")}
    view.note_artifact(artifact_reading("web", 4, "cache"))  # no longer reads db
    assert view.secret_readers(NS, "db") == {(NS, "api")}
    view.forget_artifact((NS, "api"))
    assert view.secret_readers(NS, "db") == set()
    assert view.secret_readers(NS, "nothing") == set()


def test_a_secret_change_costs_its_readers_not_every_artifact(
        monkeypatch: Any) -> None:
    """Each opted-in Secret of the initial listing asks for its readers: with a scan of every
    artifact's spec, S Secrets and N artifacts cost S x N spec walks."""
    from artifact_operator.controller import view as view_module
    walks = 0
    original = view_module.referenced_secrets

    def counted(spec: Any) -> set[str]:
        nonlocal walks
        walks += 1
        return original(spec)

    monkeypatch.setattr(view_module, "referenced_secrets", counted)
    view = ClusterView()
    n = 500
    for i in range(n):
        view.note_artifact(artifact_reading(f"a{i}", 1, f"s{i}"))
    for i in range(n):
        view.note_artifact({**artifact_reading(f"a{i}", 2, f"s{i}"),
                            "status": {"phase": "Ready"}})  # a status write: same spec
    for i in range(n):
        assert view.secret_readers(NS, f"s{i}") == {(NS, f"a{i}")}
    assert walks == n, "the spec is walked once per change of it, not per Secret or event"
