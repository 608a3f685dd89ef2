"""The image build part of a container's spec (`imageBuildConfig`): where the source code is
and which Dockerfile builds it. The build itself is `logic/builds.py`."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, Tag

from artifact_operator.api.base import DNS_SUBDOMAIN, MAX_ARGS, Model, tagged_by


class DataRobotCodeRef(Model):
    catalog_id: str
    catalog_version_id: str


class DataRobotSource(Model):
    """The seed's code reference: a files API catalog item. A cluster cannot fetch it by
    itself; the operator reports `SourceUnresolved` for it (see README "Image builds")."""

    datarobot: DataRobotCodeRef
    provider: Literal["datarobot"] = "datarobot"
    type: Literal["datarobot"] = "datarobot"


def _context_dir(inside: str) -> Any:
    return Field(None, min_length=1, max_length=1024,
                 description=f"Directory of the build context inside {inside}.")


def _secret(purpose: str) -> Any:
    return Field(None, pattern=DNS_SUBDOMAIN, max_length=253,
                 description=f"Secret in the artifact's namespace with the credentials {purpose}.")


class GitRef(Model):
    url: str = Field(
        min_length=1, max_length=2048,
        description="URL of the Git repository (https:// or ssh).")
    revision: str | None = Field(
        None, min_length=1, max_length=256,
        description="Branch, tag or commit; the repository's default branch when omitted.")
    context_dir: str | None = _context_dir("the repository")
    clone_secret: str | None = _secret("to clone")


class GitSource(Model):
    """Source code in a Git repository (fetched by the build engine)."""

    provider: Literal["git"]
    git: GitRef


class OciRef(Model):
    image: str = Field(
        pattern=r"^[^@\s]+@sha256:[a-f0-9]{64}$", max_length=1024,
        description="Image holding the source code, pinned by digest (repo@sha256:<64 hex>).")
    context_dir: str | None = _context_dir("the image")
    pull_secret: str | None = _secret("to pull it")


class OciSource(Model):
    """Source code in an OCI image (a Shipwright source bundle), pinned by digest."""

    provider: Literal["oci"]
    oci: OciRef


# `provider` tells them apart; untagged means the seed's `datarobot` shape.
CodeRef = Annotated[
    Annotated[DataRobotSource, Tag("datarobot")]
    | Annotated[GitSource, Tag("git")]
    | Annotated[OciSource, Tag("oci")],
    tagged_by("provider", "datarobot"),
]


class ProvidedDockerfile(Model):
    """The Dockerfile is part of the source code."""

    source: Literal["provided"] = "provided"
    path: str = Field("./Dockerfile", description="Path of the Dockerfile in the source code.")


class GeneratedDockerfile(Model):
    """A Dockerfile generated from an execution environment."""

    source: Literal["generated"] = "generated"
    execution_environment_id: str
    execution_environment_version_id: str
    entrypoint: list[str] = Field(min_length=1, max_length=MAX_ARGS)


Dockerfile = Annotated[
    Annotated[ProvidedDockerfile, Tag("provided")]
    | Annotated[GeneratedDockerfile, Tag("generated")],
    tagged_by("source", "provided"),
]


class ImageBuildConfig(Model):
    """Server-side image build from source code, on the cluster's build engine (a Shipwright
    BuildRun, else a Job running rootless BuildKit). The built image is reported in status,
    never written back here."""

    code_ref: CodeRef | None = Field(
        None, description="Source code reference; required before a build or lock.")
    dockerfile: Dockerfile = Field(default_factory=ProvidedDockerfile)

