"""The test-time images are what they stand for.

The operator image here is not built by Docker, so it is checked against the Dockerfile's final
stage: the same USER, ENTRYPOINT, CMD and ENV (PATH with the base image's PATH for `$PATH`), the
entrypoint found on that PATH in the virtualenv, and pip gone. Read back from the archive
containerd imports, not from the recipe that wrote it.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from dockerfile_parse import DockerfileParser

from ..support import images

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _final_stage() -> dict[str, str]:
    """The last value of each instruction of the Dockerfile's final stage."""
    parser = DockerfileParser(path=str(REPO / "Dockerfile"))
    froms = [i for i, item in enumerate(parser.structure) if item["instruction"] == "FROM"]
    return {item["instruction"]: item["value"] for item in parser.structure[froms[-1]:]}


def _dockerfile_env() -> dict[str, str]:
    # `$PATH` in the Dockerfile is its base image's PATH; here the base is the Debian tree.
    parser = DockerfileParser(path=str(REPO / "Dockerfile"),
                              parent_env={"PATH": images.BASE_PATH})
    return dict(parser.envs)


def _which(command: str, path: str, files: dict[str, object]) -> str | None:
    for directory in path.split(":"):
        candidate = f"{directory.strip('/')}/{command}"
        if candidate in files:
            return candidate
    return None


def test_the_operator_image_agrees_with_the_dockerfile(
        built_images: dict[str, images.BuiltImage]) -> None:
    image = built_images["operator"]
    config = images.archive_config(image.archive)
    final = _final_stage()
    assert config["User"] == final["USER"]
    assert config["Entrypoint"] == json.loads(final["ENTRYPOINT"])
    assert config["Cmd"] == json.loads(final["CMD"])
    env = dict(item.split("=", 1) for item in config["Env"])
    for name, value in _dockerfile_env().items():
        assert env.get(name) == value, name
    # The image is named as the manifests name it.
    assert image.containerd_ref == "docker.io/library/artifact-operator:0.1.0"

    files = images.archive_files(image.archive)
    entrypoint = _which(config["Entrypoint"][0], env["PATH"], files)
    assert entrypoint == "opt/venv/bin/artifact-operator", entrypoint
    assert files[entrypoint].mode & stat.S_IXOTH
    assert "python -m venv /opt/venv" in final["RUN"]
    assert "pip uninstall -y pip setuptools" in final["RUN"]
    assert _which("pip", env["PATH"], files) is None, "pip is removed from the final image"
    # The venv's interpreter is the Debian tree's Python 3.11 (the project's minimum).
    assert files["opt/venv/bin/python3"].linkname == "/usr/bin/python3"
    assert files["usr/bin/python3"].linkname == "python3.11"
    assert files["usr/bin/python3.11"].isfile()


def test_the_workload_image_runs_as_uid_1000_from_a_read_only_tree(
        built_images: dict[str, images.BuiltImage]) -> None:
    image = built_images["web"]
    config = images.archive_config(image.archive)
    assert config["User"] == "1000:1000"
    files = images.archive_files(image.archive)
    assert files["bin/busybox"].mode & stat.S_IXOTH
    assert stat.S_IMODE(files["tmp"].mode) == 0o1777
    for path in ("www/healthz", "www/ready"):
        assert files[path].mode & stat.S_IROTH, path
