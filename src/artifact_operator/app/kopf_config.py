"""What kopf does for us, and how it is set up.

kopf runs the operator's lifecycle (startup, cleanup, signals) and serves the admission
webhook. It watches nothing: the Artifacts, the ArtifactApprovals and our children come
through our own lean watches (kube/watch.py, wired in app/context.py). kopf's per-event
machinery (a worker, a memory and a diff base per object, handler selection per event) cost
about half of the operator's CPU when it delivered the children's events, and most of the
rest of its share for the Artifacts' (docs/benchmarks.md). So kopf itself writes nothing to
Artifacts either: no finalizer, no progress or diff-base annotations.
"""

from __future__ import annotations

import kopf

from artifact_operator.api import naming


def configure_kopf(settings: kopf.OperatorSettings) -> None:
    # kopf keeps no state in objects for us; its storage stays under our own prefix all the
    # same, so that nothing ever lands under kopf's.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=naming.PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=naming.PREFIX, key="last-handled-configuration")
    settings.persistence.finalizer = f"{naming.PREFIX}/finalizer"
    # We post our own Events; kopf's own posting of handler logs stays off.
    settings.posting.enabled = False
    # Namespaces and CRDs are not discovered at runtime: the CRD is installed with the
    # operator, which spares a cluster-wide watch on CRDs.
    settings.scanning.disabled = True
    settings.networking.request_timeout = 60
