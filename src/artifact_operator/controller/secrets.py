"""What a reconcile needs to know of the Secrets its artifact reads, and nothing more.

Credential Secrets come from the watch of the Secrets that opt in (by label; `kube/watch.py`),
which keeps key names and never values: no request per reconcile. The artifact's token Secret
is read (one GET) only while our index does not hold it as this artifact's.
"""

from __future__ import annotations

from collections.abc import Mapping

from artifact_operator.api import naming
from artifact_operator.api.artifact import Artifact
from artifact_operator.api.status import Reason
from artifact_operator.controller.view import Obj, Ref, controlled_by
from artifact_operator.kube.client import Kube
from artifact_operator.kube.watch import ListWatch
from artifact_operator.logic.credentials import (
    SecretFacts,
    credential_refs,
    referenced_secrets,
    usable,
    uses_api_token,
)


class CredentialFacts:
    def __init__(self, kube: Kube, credentials: ListWatch | None) -> None:
        self.kube = kube
        # None only where nothing watches them: then every referenced Secret is unusable.
        self.credentials = credentials

    async def facts(self, body: Obj, live: Mapping[Ref, Obj]) -> SecretFacts:
        """Which referenced credential Secrets are not usable, and whether the token Secret
        is someone else's.

        Credential Secrets come from the watch of opted-in Secrets: no request per reconcile.
        The token Secret is read (one GET) only when our index does not hold it as this
        artifact's: before it is created, and while another object holds its name, so a
        conflict costs a read per reconcile and never a write.
        """
        meta = body["metadata"]
        namespace, spec = str(meta["namespace"]), body.get("spec")
        not_usable = frozenset(
            name for name in referenced_secrets(spec)
            if self.credentials is None or not usable(self.credentials.get(namespace, name)))
        return SecretFacts(not_usable=not_usable,
                           token_conflict=await self.token_conflict(body, live))

    async def token_conflict(self, body: Obj, live: Mapping[Ref, Obj]) -> bool:
        meta = body["metadata"]
        if not uses_api_token(body.get("spec")):
            return False
        name = naming.token_secret_name(str(meta["name"]))
        current = live.get(("Secret", name))
        if current is None:
            current = await self.kube.get("v1", "Secret", str(meta["namespace"]), name)
            if current is None:
                return False  # ours to create
        # Never adopted: a Secret someone else made (with a token they know) is not ours,
        # whatever its labels say.
        return not controlled_by(current, meta.get("uid"))

    def missing_keys(self, artifact: Artifact) -> list[tuple[Reason, str]]:
        """Keys that usable credential Secrets lack, named (never a value). Read from the
        watch, which keeps key names only. Unusable Secrets are not asked about here: their
        groups are held back, and the status says no more about them (logic/credentials.py).
        """
        if self.credentials is None:
            return []
        out: list[tuple[Reason, str]] = []
        for ref in credential_refs(artifact.spec.dump()):
            secret = self.credentials.get(artifact.namespace, ref.secret)
            if usable(secret) and ref.key not in (secret or {}).get("dataKeys", []):
                out.append((Reason.secret_missing,
                            f"Secret {ref.secret} has no key {ref.key} ({ref.user()})"))
        return out
