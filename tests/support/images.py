"""Container images for the e2e tier, built at test time: no Docker, no builder, no registry.

An image is a directory tree (its root filesystem) that ../shared/k8s/node/oci_image.py turns
into a single-layer OCI archive, which `ctr -n k8s.io images import` loads into the node's
containerd (or a registry receives with `skopeo copy`, for a cluster elsewhere). Pods then run it
with the default pull policy, by the name their manifests use.

- `operator`: the operator image as the Dockerfile builds it, on Debian bookworm (a
  `debootstrap --variant=minbase` root filesystem; bookworm's python3 is 3.11): a wheel of the
  working tree and wheels of its dependencies (the Dockerfile's builder stage, here on the
  host), installed into the virtualenv /opt/venv with `--no-index`, then pip and setuptools
  removed; the Dockerfile's USER, ENTRYPOINT, CMD and ENV. `tests/e2e/test_images.py` checks
  that the two agree.
- `web`: a workload from Debian's `busybox-static`: `busybox httpd` serving /healthz and /ready
  on 8080, runnable as uid 1000 with a read-only root filesystem and no capabilities.
- `sample`: what deploy/samples/ runs in place of its service images (busybox; a `python`
  stand-in for the sample's entrypoints); `nim`: a NIM-like model server that writes its cache
  under $NIM_CACHE_PATH before it reports ready (tests/e2e/test_pods.py), and ships a
  `download-to-cache` as NIM images do (the warm-up Job of the `make demo` cache sample).
- `nim-warm`: a NIM-like image for the model cache warm-up (tests/e2e/test_warmup.py): its
  `download-to-cache` writes the model into $NIM_CACHE_PATH (refusing a key NGC would
  refuse), and its server does not start without it.
- `builder`: a stand-in for rootless BuildKit that builds nothing (tests/e2e/test_builds.py);
  `builder-real`: buildah behind BuildKit's command line, and `ee`, an execution environment
  for generated Dockerfiles: a real build pushed to a real registry
  (tests/e2e/test_real_build.py).

To add an image: a `BusyboxImage` with other files and entrypoint, or a `DebianImage` with
other packages, in IMAGES. The debootstrap root filesystems and the busybox package are cached
outside the repository (ARTIFACT_E2E_CACHE, default ~/.cache/artifact-operator-e2e), keyed by
what goes into them; the images themselves are rebuilt every run (the operator from the
working tree).

    python -m tests.support.images build --out DIR [NAME...]   # writes DIR/images.json

Building needs root (debootstrap, chroot) and the package registries, so it runs before the
tests enter the private network namespace (`make e2e` does both).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .controlplane import default_assets

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
# Docker's default PATH, which a Debian base image has and `ENV PATH=...:$PATH` extends.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Bump when the way a cached root filesystem is made changes, so old caches are not reused.
_RECIPE_REVISION = "1"


def node_dir() -> Path:
    """../shared/k8s/node: oci_image.py, node.sh, netns.sh (ARTIFACT_E2E_NODE_DIR overrides)."""
    env = os.environ.get("ARTIFACT_E2E_NODE_DIR")
    if env:
        return Path(env)
    assets = default_assets()
    if assets is None:
        raise FileNotFoundError("no ../shared/k8s: set KUBEBUILDER_ASSETS or ARTIFACT_E2E_NODE_DIR")
    return assets.parent / "node"


def cache_dir() -> Path:
    env = os.environ.get("ARTIFACT_E2E_CACHE")
    base = Path(env) if env else Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "artifact-operator-e2e"
    base.mkdir(parents=True, exist_ok=True)
    return base


def containerd_name(ref: str) -> str:
    """The fully qualified name containerd (and the kubelet) use for an image reference:
    `artifact-operator:0.1.0` is `docker.io/library/artifact-operator:0.1.0`."""
    first, _, rest = ref.partition("/")
    if not rest:
        return f"docker.io/library/{ref}"
    if "." in first or ":" in first or first == "localhost":
        return ref
    return f"docker.io/{ref}"


def short_name(ref: str) -> str:
    """The reference without its registry, as it goes under another registry."""
    full = containerd_name(ref)
    _, _, path = full.partition("/")
    return path.removeprefix("library/") if full.startswith("docker.io/") else path


@dataclass(frozen=True)
class ImageConfig:
    """The OCI image config fields a Dockerfile sets (USER, ENTRYPOINT, CMD, ENV, WORKDIR)."""

    user: str
    entrypoint: list[str]
    cmd: list[str] = field(default_factory=list)
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None

    def oci(self) -> dict[str, Any]:
        config: dict[str, Any] = {"User": self.user, "Entrypoint": self.entrypoint,
                                  "Env": [f"{k}={v}" for k, v in self.env.items()]}
        if self.cmd:
            config["Cmd"] = self.cmd
        if self.workdir:
            config["WorkingDir"] = self.workdir
        return config


@dataclass(frozen=True)
class BuiltImage:
    name: str          # the key in IMAGES
    ref: str           # as manifests name it, e.g. artifact-operator:0.1.0
    archive: Path      # the OCI archive for `ctr images import`
    seconds: float     # how long it took to build

    @property
    def containerd_ref(self) -> str:
        return containerd_name(self.ref)


class ImageBuildError(RuntimeError):
    pass


def _run(args: Sequence[str | Path], log: Path, **kwargs: Any) -> None:
    with open(log, "ab") as out:
        out.write(f"$ {' '.join(map(str, args))}\n".encode())
        out.flush()
        done = subprocess.run([str(a) for a in args], stdout=out, stderr=subprocess.STDOUT,
                              **kwargs)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise ImageBuildError(f"{args[0]} exited with {done.returncode}; log {log}:\n{tail}")


def _oci_archive(rootfs: Path, ref: str, out: Path, config: ImageConfig) -> None:
    """oci_image.py's build(), called with the whole config (its command line always puts a
    PATH of its own first in Env, which would shadow the image's)."""
    spec = importlib.util.spec_from_file_location("oci_image", node_dir() / "oci_image.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.build(str(rootfs), containerd_name(ref), str(out), config.oci())


@dataclass(frozen=True)
class OciArchive:
    """The image of an OCI archive, read as containerd reads it (index -> manifest -> config):
    its manifest's digest, the manifest, and the image config blob."""

    path: Path
    manifest_digest: str        # `sha256:...`: what `repo@sha256:...` names
    manifest: dict[str, Any]
    config: dict[str, Any]      # the config blob; its "config" has User, Entrypoint, Env...

    @classmethod
    def read(cls, archive: Path) -> OciArchive:
        with tarfile.open(archive) as tar:
            index = _json_member(tar, "index.json")
            digest = str(index["manifests"][0]["digest"])
            manifest = _json_member(tar, _blob_name(digest))
            config = _json_member(tar, _blob_name(manifest["config"]["digest"]))
        return cls(archive, digest, manifest, config)

    def files(self) -> dict[str, tarfile.TarInfo]:
        """Path -> entry of the image's single layer."""
        with tarfile.open(self.path) as tar:
            layer = tar.extractfile(_blob_name(self.manifest["layers"][0]["digest"]))
            assert layer is not None
            with tarfile.open(fileobj=layer, mode="r:gz") as inner:
                return {m.name: m for m in inner.getmembers()}


def _blob_name(digest: str) -> str:
    return f"blobs/sha256/{digest.removeprefix('sha256:')}"


def _json_member(tar: tarfile.TarFile, name: str) -> Any:
    member = tar.extractfile(name)
    assert member is not None, name
    return json.load(member)


def archive_config(archive: Path) -> dict[str, Any]:
    """The image config inside an OCI archive (User, Entrypoint, Cmd, Env, ...)."""
    config: dict[str, Any] = OciArchive.read(archive).config["config"]
    return config


def archive_files(archive: Path) -> dict[str, tarfile.TarInfo]:
    """Path -> entry of the archive's single layer."""
    return OciArchive.read(archive).files()


# -- bases ------------------------------------------------------------------------------------


def debian_rootfs(packages: Sequence[str], log: Path) -> Path:
    """A `debootstrap --variant=minbase --include=PACKAGES bookworm` tree, cached by what goes
    into it. Built from scratch when missing (about a minute), then reused as is."""
    mirror = os.environ.get("ARTIFACT_E2E_DEBIAN_MIRROR")  # unset: debootstrap's default
    key = hashlib.sha256(json.dumps(
        [_RECIPE_REVISION, SUITE, "minbase", sorted(packages), mirror]).encode()).hexdigest()[:16]
    target = cache_dir() / f"rootfs-{SUITE}-{key}"
    if (target / "usr" / "bin").is_dir():
        return target
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is missing: apt-get install debootstrap "
                              "(`make e2e-setup` does)")
    building = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=cache_dir()))
    try:
        _run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}", SUITE,
              building, *([mirror] if mirror else [])], log)
        # What a slim base image leaves out: package caches and lists, docs, translations.
        for junk in ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
                     "usr/share/locale", "usr/share/info"):
            _empty(building / junk)
        building.rename(target)  # atomic: a half-built tree is never found as the cache
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target


def debian_package(name: str, log: Path) -> Path:
    """One Debian package's files, unpacked (cached by name and version)."""
    candidate = _candidate(name)
    if candidate is None:
        _run(["apt-get", "update", "-qq"], log)  # a fresh machine may have no package lists
        candidate = _candidate(name)
        if candidate is None:
            raise ImageBuildError(f"Debian package {name} is not available from apt")
    target = cache_dir() / f"deb-{name}-{candidate.replace(':', '_')}"
    if target.is_dir():
        return target
    building = Path(tempfile.mkdtemp(prefix=f"{target.name}.", dir=cache_dir()))
    try:
        _run(["apt-get", "download", f"{name}={candidate}"], log, cwd=building)
        (deb,) = building.glob("*.deb")
        _run(["dpkg-deb", "-x", deb, building / "files"], log)
        building.rename(target)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return target


def _candidate(name: str) -> str | None:
    out = subprocess.run(["apt-cache", "policy", name], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if line.strip().startswith("Candidate:"):
            version = line.split()[-1]
            return None if version == "(none)" else version
    return None


def _empty(path: Path) -> None:
    if path.is_dir():
        for child in path.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()


# -- recipes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BusyboxImage:
    """A static busybox in an otherwise empty tree, plus `files` (path -> text); `/bin/sh` is
    busybox, `/tmp` has mode 1777 as in real images."""

    ref: str
    config: ImageConfig
    files: Mapping[str, str] = field(default_factory=dict)
    scripts: Mapping[str, str] = field(default_factory=dict)  # like files, mode 755

    def fill(self, rootfs: Path, log: Path) -> None:
        busybox = debian_package("busybox-static", log) / "files" / "bin" / "busybox"
        (rootfs / "bin").mkdir()
        shutil.copy2(busybox, rootfs / "bin" / "busybox")
        (rootfs / "bin" / "sh").symlink_to("busybox")
        (rootfs / "tmp").mkdir()
        (rootfs / "tmp").chmod(0o1777)
        for mode, texts in ((0o644, self.files), (0o755, self.scripts)):
            for path, text in texts.items():
                target = rootfs / path.lstrip("/")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                target.chmod(mode)
        for directory in [rootfs, *(p for p in rootfs.rglob("*") if p.is_dir())]:
            if directory.name != "tmp":
                directory.chmod(0o755)  # mkdtemp's 700 would lock out uid 1000


@dataclass(frozen=True)
class DebianImage:
    """A Debian bookworm tree with `packages`, then `steps(rootfs, log)` run on a copy."""

    ref: str
    config: ImageConfig
    packages: tuple[str, ...]
    steps: Callable[[Path, Path], None]

    def fill(self, rootfs: Path, log: Path) -> None:
        base = debian_rootfs(self.packages, log)
        rootfs.rmdir()
        _run(["cp", "-a", "--reflink=auto", base, rootfs], log)
        self.steps(rootfs, log)
        _empty(rootfs / "dev")  # an image has an empty /dev; the runtime fills it
        _empty(rootfs / "var" / "log")


def _project_version() -> str:
    return str(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"])


def _chroot(rootfs: Path, *args: str) -> list[str]:
    # A clean environment: nothing of the host's pip configuration reaches the image.
    return ["chroot", str(rootfs), "/usr/bin/env", "-i", f"PATH={BASE_PATH}", "HOME=/root",
            *args]


def _install_operator(rootfs: Path, log: Path) -> None:
    """The Dockerfile's two stages. Builder (here on the host, with network): a wheel of what
    .dockerignore lets in (pyproject.toml, README.md, src/) and wheels of every dependency.
    Final: a venv at /opt/venv, the wheels installed without an index, pip removed."""
    with tempfile.TemporaryDirectory(prefix="operator-build-") as tmp:
        context, dist = Path(tmp) / "context", Path(tmp) / "dist"
        context.mkdir()
        for name in ("pyproject.toml", "README.md"):
            shutil.copy2(REPO / name, context / name)
        shutil.copytree(REPO / "src", context / "src",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        pip = [sys.executable, "-m", "pip"]
        _run([*pip, "wheel", "-q", "--no-deps", "--wheel-dir", dist, context], log)
        (wheel,) = dist.glob("artifact_operator-*.whl")
        _run([*pip, "wheel", "-q", "--wheel-dir", dist, wheel], log)
        shutil.copytree(dist, rootfs / "dist")
    _run(_chroot(rootfs, "python3", "-m", "venv", "/opt/venv"), log)
    _run(_chroot(rootfs, "/opt/venv/bin/pip", "install", "-q", "--no-cache-dir", "--no-index",
                 "--find-links=/dist", "artifact-operator"), log)
    _run(_chroot(rootfs, "/opt/venv/bin/python", "-m", "pip", "uninstall", "-q", "-y", "pip",
                 "setuptools"), log)
    shutil.rmtree(rootfs / "dist")


# The Dockerfile's final stage, in the terms of the test-time image (test_images.py compares).
OPERATOR = DebianImage(
    ref=f"artifact-operator:{_project_version()}",
    config=ImageConfig(
        user="65532:65532",
        entrypoint=["artifact-operator"],
        cmd=["run", "--all-namespaces"],
        # The Dockerfile's ENV, and LANG as its python:3.11-slim base sets it.
        env={"PATH": f"/opt/venv/bin:{BASE_PATH}", "PYTHONDONTWRITEBYTECODE": "1",
             "PYTHONUNBUFFERED": "1", "LANG": "C.UTF-8"},
    ),
    packages=("python3", "python3-venv", "ca-certificates"),
    steps=_install_operator,
)

WEB_PORT = 8080
WEB = BusyboxImage(
    ref="localhost/artifact-e2e-web:1",
    config=ImageConfig(
        user="1000:1000",
        entrypoint=["/bin/busybox", "httpd", "-f", "-v", "-p", str(WEB_PORT), "-h", "/www"],
        env={"PATH": "/bin"},
    ),
    files={"www/healthz": "ok\n", "www/ready": "ready\n", "www/index.html": "artifact e2e\n"},
)

# Runs PROGRAM in the background and exits as soon as SIGTERM comes: a shell or httpd as a
# container's pid 1 ignores SIGTERM, and its pod would take the whole grace period to go.
_SUPERVISE = """#!/bin/sh
"$@" & child=$!
trap 'kill $child; exit 0' TERM INT
wait $child
"""

# What deploy/samples/ run, with no registry: imageUri of both service sample images (and the
# sample's own entrypoints, `python -m shop.api` and `python -m shop.worker`) work on it.
# `python` is a stand-in: `-m shop.api` serves /healthz and /ready on 8080 from the (read-only)
# image, `-m shop.worker` and the default entrypoint (the log shipper) idle.
SAMPLE_PORT = 8080
SAMPLE = BusyboxImage(
    ref="localhost/artifact-e2e-sample:1",
    config=ImageConfig(user="1000:1000", entrypoint=["/bin/supervise", "/bin/busybox", "sleep",
                                                      "infinity"],
                       env={"PATH": "/usr/local/bin:/bin"}),
    files={"www/healthz": "ok\n", "www/ready": "ready\n", "www/index.html": "shop\n"},
    scripts={
        "bin/supervise": _SUPERVISE,
        "usr/local/bin/python": f"""#!/bin/sh
# A stand-in for the sample's `python -m shop.api` and `python -m shop.worker`.
case "$*" in
  "-m shop.api") exec /bin/supervise /bin/busybox httpd -f -p {SAMPLE_PORT} -h /www ;;
  "-m shop.worker") exec /bin/supervise /bin/busybox sleep infinity ;;
  *) echo "python stand-in: no $*" >&2; exit 2 ;;
esac
""",
    },
)

# A NIM-like model server: at every start it records itself in $NIM_CACHE_PATH/boots and
# writes $NIM_CACHE_PATH/model.bin when missing (the "download"), then serves NIM's health
# paths on 8000, and the boots file as /boots: ready only once the cache is written.
NIM_PORT = 8000
NIM = BusyboxImage(
    ref="localhost/artifact-e2e-nim:1",
    config=ImageConfig(user="1000:1000", entrypoint=["/bin/nim"], env={"PATH": "/bin"}),
    scripts={
        "bin/supervise": _SUPERVISE,
        # What the operator's warm-up Job runs (a NIM image's own download command).
        "bin/download-to-cache": """#!/bin/sh
set -eu
cache="${NIM_CACHE_PATH:?NIM_CACHE_PATH is not set}"
[ -f "$cache/model.bin" ] || echo "weights fetched by $(busybox hostname)" > "$cache/model.bin"
""",
        "bin/nim": f"""#!/bin/sh
set -eu
cache="${{NIM_CACHE_PATH:?NIM_CACHE_PATH is not set}}"
echo "$(busybox hostname) uid=$(busybox id -u)" >> "$cache/boots"
[ -f "$cache/model.bin" ] || echo "weights fetched by $(busybox hostname)" > "$cache/model.bin"
www=/tmp/www
busybox mkdir -p $www/v1/health
busybox cp "$cache/boots" $www/boots
echo live > $www/v1/health/live
echo ready > $www/v1/health/ready
exec /bin/supervise /bin/busybox httpd -f -p {NIM_PORT} -h $www
""",
    },
)

# A NIM-like image for the model cache warm-up (tests/e2e/test_warmup.py). `download-to-cache`,
# which the operator's warm-up Job runs as a NIM image's own, writes the "weights" (naming the
# pod and the sha256 of the NGC_API_KEY it got) into $NIM_CACHE_PATH and records the download;
# it refuses a missing key or one starting with "invalid", as NGC would (exit 1). The server,
# the image's entrypoint, exits when the weights are not there; else it serves NIM's health
# paths and the cache's /model and /downloads on 8000.
NIM_WARM = BusyboxImage(
    ref="localhost/artifact-e2e-nim-warm:1",
    config=ImageConfig(user="1000:1000", entrypoint=["/bin/nim-server"], env={"PATH": "/bin"}),
    scripts={
        "bin/supervise": _SUPERVISE,
        "bin/download-to-cache": """#!/bin/sh
set -eu
cache="${NIM_CACHE_PATH:?NIM_CACHE_PATH is not set}"
echo "download-to-cache: $(busybox hostname) uid=$(busybox id -u) into $cache"
case "${NGC_API_KEY:-}" in
  ""|invalid*) echo "error: 401 Unauthorized: NGC_API_KEY was rejected" >&2; exit 1 ;;
esac
key=$(printf %s "$NGC_API_KEY" | busybox sha256sum | busybox cut -c1-64)
echo "weights fetched by $(busybox hostname) with key sha256:$key" > "$cache/model.bin.part"
busybox mv "$cache/model.bin.part" "$cache/model.bin"
busybox hostname >> "$cache/downloads"
echo "download-to-cache: done"
""",
        "bin/nim-server": f"""#!/bin/sh
set -eu
cache="${{NIM_CACHE_PATH:?NIM_CACHE_PATH is not set}}"
if [ ! -f "$cache/model.bin" ]; then
  echo "nim-server: no model in $cache (was the cache warmed up?)" >&2
  exit 1
fi
www=/tmp/www
busybox mkdir -p $www/v1/health
busybox cp "$cache/model.bin" $www/model
busybox cp "$cache/downloads" $www/downloads
echo live > $www/v1/health/live
echo ready > $www/v1/health/ready
exec /bin/supervise /bin/busybox httpd -f -p {NIM_PORT} -h $www
""",
    },
)

# A stand-in for rootless BuildKit in the Job build engine (logic/builds.py): the operator's
# Job script runs it as `buildctl-daemonless.sh build ... --opt context=URL#REVISION ...
# --metadata-file F`. There is no registry here, so it "builds" nothing: it prints its
# arguments and the Dockerfile it is given apart from the context, if any (the build's log),
# and reports as the pushed digest `sha256:<REVISION>`, which the
# test makes a commit id equal to an image digest that containerd holds under the output
# repository's name (as if the push had landed there).
BUILDER = BusyboxImage(
    ref="localhost/artifact-e2e-builder:1",
    config=ImageConfig(user="1000:1000", entrypoint=["/bin/sh"],
                       env={"PATH": "/usr/local/bin:/bin"}),
    scripts={
        **{f"bin/{applet}": f'#!/bin/sh\nexec /bin/busybox {applet} "$@"\n'
           for applet in ("grep", "head", "tr", "cat", "sed")},
        "usr/local/bin/buildctl-daemonless.sh": """#!/bin/sh
set -eu
echo "buildctl $*"
meta="" revision=""
while [ $# -gt 0 ]; do
  case "$1" in
    --metadata-file) meta="$2"; shift ;;
    --local) case "$2" in dockerfile=*) echo "Dockerfile:"; cat "${2#dockerfile=}/Dockerfile" ;;
             esac; shift ;;
    context=*) revision="${1#*#}"; revision="${revision%%:*}" ;;
  esac
  shift
done
case "$revision" in slow*) echo "building slowly"; /bin/busybox sleep 600 ;; esac
echo "built revision $revision"
printf '{"containerimage.digest": "sha256:%s"}' "$revision" > "$meta"
""",
    },
)

# The address the real builder pushes to in place of the output repository's registry
# (tests/e2e/test_real_build.py): the test registry listens on the node, which containerd
# pulls from as `localhost:5000` (plain HTTP, as its resolver treats localhost) and pods reach
# as the node IP (their own localhost is the pod's).
REAL_BUILDER_REGISTRY_ALIAS = "localhost:5000=10.200.0.1:5000"

# A real builder in place of rootless BuildKit for the Job build engine: buildah, behind a
# `buildctl-daemonless.sh` that takes the arguments the operator's Job passes BuildKit
# (`build --frontend dockerfile.v0 --opt context=URL#REV:SUBDIR --opt filename=F
# [--local dockerfile=DIR] --output type=image,name=REPO:TAG,push=true --metadata-file F`),
# clones the revision with git, builds the Dockerfile with `buildah bud` (vfs storage, chroot
# isolation: no daemon, no privileges, no OCI runtime for a Dockerfile without RUN), pushes
# over plain HTTP (--tls-verify=false: the test registry has no TLS) and writes the pushed
# manifest's digest where BuildKit writes it (`containerimage.digest` in the metadata file).
# The user is BuildKit rootless image's (`user`, uid 1000, home /home/user), with the
# subordinate ids of /etc/subuid and /etc/subgid that rootless buildah maps where it can. In
# the operator's Job it cannot: Debian's newuidmap is setuid root, opens the id map as root,
# and the kernel then wants CAP_SYS_ADMIN, which the pod's bounding set (the runtime's default
# capabilities) lacks; newuidmap with file capabilities would do, but oci_image.py keeps no
# extended attributes. buildah then maps uid 1000 alone (as 0): a build may only make files
# of root's, which a Dockerfile without RUN, `USER` or `--chown` does.
_REAL_BUILDCTL = r"""#!/bin/bash
# buildctl-daemonless.sh for the e2e tier: BuildKit's command line, built with buildah.
set -euo pipefail
echo "buildctl-daemonless.sh (buildah $(buildah --version | cut -d' ' -f3)) $*"
[ "${1:-}" = build ] || { echo "only 'build' is supported" >&2; exit 2; }
shift
context="" filename=Dockerfile dockerfile_dir="" output="" metadata=""
while [ $# -gt 0 ]; do
  case "$1=${2:-}" in
    --frontend=dockerfile.v0) ;;
    --opt=context=*) context="${2#context=}" ;;
    --opt=filename=*) filename="${2#filename=}" ;;
    --local=dockerfile=*) dockerfile_dir="${2#dockerfile=}" ;;
    --output=*) output="$2" ;;
    --metadata-file=*) metadata="$2" ;;
    *) echo "unsupported argument: $1 ${2:-}" >&2; exit 2 ;;
  esac
  shift 2
done
# BuildKit's git context: URL#REVISION:SUBDIR (the fragment optional, and each part of it).
url="${context%%#*}" fragment="" subdir=""
[ "$url" = "$context" ] || fragment="${context#*#}"
revision="${fragment%%:*}"
case "$fragment" in *:*) subdir="${fragment#*:}" ;; esac
# --output type=image,name=REPO:TAG,push=true
name="" push=""
IFS=, read -r -a fields <<< "$output"
for field in "${fields[@]}"; do
  case "$field" in name=*) name="${field#name=}" ;; push=true) push=1 ;; esac
done
[ -n "$name" ] && [ -n "$push" ] && [ -n "$metadata" ] || {
  echo "need --output type=image,name=...,push=true and --metadata-file" >&2; exit 2; }
target="$name"
if [ -n "${REGISTRY_ALIAS:-}" ]; then  # FROM=TO: push to TO what is named under FROM
  from="${REGISTRY_ALIAS%%=*}" to="${REGISTRY_ALIAS#*=}"
  case "$name" in "$from"/*) target="$to/${name#"$from"/}" ;; esac
fi

work=$(mktemp -d)
echo "+ git clone $url (revision ${revision:-default})"
git clone --quiet "$url" "$work/src"
[ -z "$revision" ] || git -C "$work/src" -c advice.detachedHead=false checkout --quiet "$revision"
echo "commit $(git -C "$work/src" rev-parse HEAD)"
contextdir="$work/src/$subdir"
dockerfile="$contextdir/$filename"
[ -z "$dockerfile_dir" ] || dockerfile="$dockerfile_dir/$filename"
echo "user namespace: $(buildah unshare cat /proc/self/uid_map | tr -s ' \n' ' ')"
set -x
buildah bud --tls-verify=false --layers=false -f "$dockerfile" -t "$name" "$contextdir"
buildah push --tls-verify=false --digestfile "$work/digest" "$name" "docker://$target"
set +x
printf '{"containerimage.digest": "%s", "image.name": "%s"}\n' "$(cat "$work/digest")" "$name" \
  > "$metadata"
echo "pushed $target@$(cat "$work/digest")"
"""


def _install_real_builder(rootfs: Path, log: Path) -> None:
    _run(_chroot(rootfs, "useradd", "--uid", "1000", "--user-group", "--create-home",
                 "--home-dir", "/home/user", "--shell", "/bin/bash", "user"), log)
    for ids in ("subuid", "subgid"):  # useradd adds them only where login.defs says so
        (rootfs / "etc" / ids).write_text("user:100000:65536\n")
    # oci_image.py makes every file root's: the home directory and the parents of where
    # buildah keeps its images (and the Job mounts BuildKit's state) must be writable to all.
    for directory in ("home/user", "home/user/.local", "home/user/.local/share",
                      "home/user/.local/share/containers", "home/user/.config"):
        (rootfs / directory).mkdir(exist_ok=True)
        (rootfs / directory).chmod(0o1777)
    shim = rootfs / "usr" / "local" / "bin" / "buildctl-daemonless.sh"
    shim.write_text(_REAL_BUILDCTL)
    shim.chmod(0o755)


BUILDER_REAL = DebianImage(
    ref="localhost/artifact-e2e-builder-real:1",
    config=ImageConfig(
        user="1000:1000",
        entrypoint=["/usr/local/bin/buildctl-daemonless.sh"],
        env={"PATH": BASE_PATH, "HOME": "/home/user", "STORAGE_DRIVER": "vfs",
             "BUILDAH_ISOLATION": "chroot", "REGISTRY_ALIAS": REAL_BUILDER_REGISTRY_ALIAS},
        workdir="/home/user",
    ),
    # netavark: the container-network-stack that containers-common depends on, named
    # because debootstrap does not resolve virtual packages (never used: no RUN here).
    packages=("buildah", "netavark", "git", "ca-certificates"),
    steps=_install_real_builder,
)

# An execution environment for generated Dockerfiles (tests/e2e/test_real_build.py): busybox,
# no ENTRYPOINT, so that the generated `CMD <entrypoint>` is what runs, and no USER, as
# python:3.11-slim (the pods run as the operator's runAsUser anyway). With a USER, the
# generated WORKDIR would be made that user's, which `builder-real` cannot do (one uid only).
EXECUTION_ENVIRONMENT = BusyboxImage(
    ref="localhost/artifact-e2e-ee:1",
    config=ImageConfig(user="", entrypoint=[], cmd=["/bin/sh"], env={"PATH": "/bin"}),
)

IMAGES: dict[str, DebianImage | BusyboxImage] = {"operator": OPERATOR, "web": WEB,
                                                 "sample": SAMPLE, "nim": NIM,
                                                 "builder": BUILDER, "nim-warm": NIM_WARM,
                                                 "builder-real": BUILDER_REAL,
                                                 "ee": EXECUTION_ENVIRONMENT}


# -- build, load, push ------------------------------------------------------------------------


def build(names: Sequence[str], out: Path) -> dict[str, BuiltImage]:
    """Build the named images into `out` (archives and images.json); return them."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "build.log"
    built = load(out) if (out / "images.json").exists() else {}
    for name in names:
        recipe = IMAGES[name]
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"image-{name}-", dir=cache_dir()) as tmp:
            rootfs = Path(tmp) / "rootfs"
            rootfs.mkdir()
            recipe.fill(rootfs, log)
            archive = out / f"{name}.tar"
            _oci_archive(rootfs, recipe.ref, archive, recipe.config)
        built[name] = BuiltImage(name, recipe.ref, archive, round(time.monotonic() - started, 1))
    (out / "images.json").write_text(json.dumps(
        {k: {**asdict(v), "archive": str(v.archive)} for k, v in built.items()}, indent=2))
    return built


def load(out: Path) -> dict[str, BuiltImage]:
    """The images a previous `build` wrote to `out`."""
    data = json.loads((out / "images.json").read_text())
    return {k: BuiltImage(**{**v, "archive": Path(v["archive"])}) for k, v in data.items()}


def manifest_digest(archive: Path) -> str:
    """The digest of the image's manifest (`sha256:...`): what `repo@sha256:...` names."""
    return OciArchive.read(archive).manifest_digest


def pinned(ref: str, digest: str) -> str:
    """`ref` by digest: its repository (tag dropped) and the manifest digest."""
    repo, slash, last = ref.rpartition("/")
    name = last.split(":", 1)[0]
    return f"{repo}{slash}{name}@{digest}"


def import_into_containerd(image: BuiltImage, socket: Path) -> None:
    """Load an image into a node's containerd, where the kubelet finds it (namespace k8s.io),
    under its tag and by digest: `ctr import` names it by tag only, and the CRI resolves an
    image reference only through the names containerd holds (a pull makes both)."""
    ctr = ["ctr", "--address", str(socket), "-n", "k8s.io", "images"]
    done = subprocess.run([*ctr, "import", str(image.archive)], capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"ctr import of {image.archive} failed: {done.stderr}")
    by_digest = pinned(image.containerd_ref, manifest_digest(image.archive))
    done = subprocess.run([*ctr, "tag", "--force", image.containerd_ref, by_digest],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"ctr tag {by_digest} failed: {done.stderr}")


def tag_in_containerd(socket: Path, source: str, target: str) -> None:
    """Name an imported image `target` too (e.g. `repo@sha256:...`), as a push to `repo`
    followed by a pull would."""
    done = subprocess.run(["ctr", "--address", str(socket), "-n", "k8s.io", "images", "tag",
                           "--force", source, target], capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"ctr tag {target} failed: {done.stderr}")


def push(image: BuiltImage, registry: str, tls_verify: bool = True) -> str:
    """Copy an image to `registry` (skopeo; for a cluster that pulls from there); return the
    reference pods then use. `tls_verify=False` for a registry on plain HTTP."""
    ref = f"{registry.rstrip('/')}/{short_name(image.ref)}"
    done = subprocess.run(["skopeo", "copy", *([] if tls_verify else ["--dest-tls-verify=false"]),
                           f"oci-archive:{image.archive}", f"docker://{ref}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageBuildError(f"skopeo copy to {ref} failed: {done.stderr}")
    return ref


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="build the e2e tier's images")
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build images into a directory")
    b.add_argument("--out", type=Path, required=True)
    b.add_argument("names", nargs="*", help=f"some of {', '.join(IMAGES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.names) - set(IMAGES)
    if unknown:
        parser.error(f"unknown images: {', '.join(sorted(unknown))}")
    started = time.monotonic()
    for image in build(args.names or list(IMAGES), args.out).values():
        size = image.archive.stat().st_size / 2**20
        print(f"{image.name}: {image.containerd_ref} {image.archive} ({size:.0f} MiB, "
              f"{image.seconds:.1f} s)")
    print(f"images built in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
