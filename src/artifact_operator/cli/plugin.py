"""`kubectl artifact`: clone, lock, approve, list the versions of, import and build Artifacts.

A kubectl plugin (the console script `kubectl-artifact`). It talks to the cluster with the
user's own kubeconfig, context and namespace, so the API server's RBAC and the operator's
admission webhook judge each request as the user's. `import` needs no cluster.

Exit codes: 0 on success, 1 on any error (usage, not found, forbidden, invalid, timeout),
as kubectl's own commands do.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

from artifact_operator.api.base import API_GROUP, API_VERSION, KIND
from artifact_operator.api.naming import LABEL_REPOSITORY
from artifact_operator.cli.cluster import RESOURCE, Cluster, PluginError, server_error

Obj = dict[str, Any]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # kubectl exits 1 on a usage error too; 0/1 is the whole contract.
        self.print_usage(sys.stderr)
        self.exit(1, f"error: {message}\n")


# -- the commands ----------------------------------------------------------------------

def clone_manifest(source: Obj, new_name: str, display_name: str | None) -> Obj:
    """A draft copy of `source`'s spec named `new_name`: no status, labels or annotations of
    its own (the operator labels it; an admin's approval of elevated fields belongs to the
    source, so the clone needs its own)."""
    spec = json.loads(json.dumps(source.get("spec") or {}))
    spec["lifecycle"] = "draft"
    # Like the workload API's clone, the copy gets a name of its own: the one given, else
    # its object name, so that two artifacts never show the same display name by accident.
    spec.pop("displayName", None)
    if display_name:
        spec["displayName"] = display_name
    metadata: Obj = {"name": new_name}
    if spec.get("repository"):
        metadata["labels"] = {LABEL_REPOSITORY: spec["repository"]}
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND, "metadata": metadata,
            "spec": spec}


def cmd_clone(args: argparse.Namespace) -> int:
    from artifact_operator.api.validation import validate

    cluster = connect(args)
    source = cluster.get(args.source)
    body = clone_manifest(source, args.new, args.display_name)
    body["metadata"]["namespace"] = cluster.namespace
    violations = validate(body)
    if violations:
        raise PluginError("error: the clone would be invalid:\n" + "\n".join(
            f"  {v.path}: {v.message}" for v in violations))
    if args.dry_run:
        sys.stdout.write(yaml.safe_dump(body, sort_keys=False))
        return 0
    cluster.create(body)
    print(f"{RESOURCE}/{args.new} created (a draft clone of {args.source})")
    return 0


def approval_manifest(artifact: Obj, existing: Obj | None) -> Obj:
    """The ArtifactApproval approving every elevated group of `artifact` as it is now: named
    after it, bound to its uid, owned by it (garbage collected with it; not a controller
    reference, and no blockOwnerDeletion, which would need rights on the artifact's
    finalizers)."""
    from artifact_operator.api.approval import APPROVAL_KIND
    from artifact_operator.api.validation import parse
    from artifact_operator.logic.approval import approval_spec

    parsed = parse(artifact)  # raises InvalidArtifact: an invalid spec is not approved
    meta = artifact["metadata"]
    metadata: Obj = {
        "name": meta["name"],
        "ownerReferences": [{"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": KIND,
                             "name": meta["name"], "uid": meta["uid"]}],
    }
    if existing is not None:
        metadata["resourceVersion"] = existing["metadata"]["resourceVersion"]
    return {"apiVersion": f"{API_GROUP}/{API_VERSION}", "kind": APPROVAL_KIND,
            "metadata": metadata, "spec": approval_spec(parsed)}


def cmd_approve(args: argparse.Namespace) -> int:
    from artifact_operator.api.validation import InvalidArtifact

    cluster = connect(args)
    artifact = cluster.get(args.name)
    try:
        body = approval_manifest(artifact, None)
    except InvalidArtifact as exc:
        raise PluginError(f"error: {args.name} is invalid, not approving it: {exc}") from exc
    groups = body["spec"]["groups"]
    if not groups:
        print(f"{RESOURCE}/{args.name} has no elevated securityContext fields: nothing to "
              "approve")
        return 0
    # The request is the user's own: the API server's RBAC decides whether they may approve
    # (the shipped artifact-admin role may; editors and viewers may not).
    existing = cluster.get_approval(args.name)
    if existing is None:
        cluster.create_approval(body)
    else:
        cluster.replace_approval(args.name, approval_manifest(artifact, existing))
    for group in groups:
        print(f"artifactapprovals.{API_GROUP}/{args.name}: group {group['name']} approved "
              f"({', '.join(group['elevated'])}) at {group['digest'][:19]}")
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    from artifact_operator.cli import versions

    return versions.cmd_lock(connect(args), args.name, wait=args.wait, timeout=args.timeout)


def cmd_versions(args: argparse.Namespace) -> int:
    from artifact_operator.cli import versions

    versions.check_repository(args.repository)
    return versions.cmd_versions(connect(args), args.repository, args.output)


def cmd_import(args: argparse.Namespace) -> int:
    from artifact_operator.api.validation import validate
    from artifact_operator.cli.importer import NotAnArtifact, to_manifest

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        doc = json.loads(text)
    except (OSError, ValueError) as exc:
        raise PluginError(f"error: cannot read {args.file}: {exc}") from exc
    try:
        imported = to_manifest(doc, name=args.name, namespace=getattr(args, "namespace", None))
    except NotAnArtifact as exc:
        raise PluginError(f"error: {args.file}: {exc}") from exc
    for note in imported.notes:
        print(f"note: {note}", file=sys.stderr)
    manifest = imported.manifest
    if not manifest["metadata"]["name"]:
        raise PluginError(f"error: {args.file}: no usable name (neither 'name' nor 'id' has "
                          "letters or digits); give one with --name")
    violations = validate(manifest)
    if violations:
        raise PluginError(
            f"error: {args.file} does not make a valid Artifact "
            f"{manifest['metadata']['name']}: {len(violations)} violation(s)\n" + "\n".join(
                f"  {v.path}: {v.message}" for v in violations))
    sys.stdout.write(yaml.safe_dump(manifest, sort_keys=False))
    return 0


def cmd_builds(args: argparse.Namespace) -> int:
    from artifact_operator.cli import builds

    return builds.cmd_builds(connect(args), args)


def cmd_build(args: argparse.Namespace) -> int:
    from artifact_operator.cli import builds

    return builds.cmd_build_words(connect(args), args)


# -- arguments -------------------------------------------------------------------------

def duration(text: str) -> float:
    """Seconds from `90`, `90s`, `2m` or `1h` (kubectl's --timeout style)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(s|m|h)?", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} (e.g. 60s, 2m)")
    return float(match[1]) * {"s": 1, "m": 60, "h": 3600}[match[2] or "s"]


def kubectl_booleans(argv: Sequence[str]) -> list[str]:
    """kubectl spells boolean flags `--wait=false`; argparse spells it `--no-wait`."""
    out = []
    for arg in argv:
        flag, _, value = arg.partition("=")
        if flag == "--wait" and value.lower() in ("true", "false"):
            arg = "--wait" if value.lower() == "true" else "--no-wait"
        out.append(arg)
    return out


def connect(args: argparse.Namespace) -> Cluster:
    return Cluster(getattr(args, "kubeconfig", None), getattr(args, "context", None),
                   getattr(args, "namespace", None))


def build_parser() -> argparse.ArgumentParser:
    # kubectl's flags go before or after the command; SUPPRESS keeps a subcommand's unset
    # copy from overwriting a value given before it.
    common = Parser(add_help=False)
    common.add_argument("--kubeconfig", default=argparse.SUPPRESS,
                        help="path to the kubeconfig file (default: $KUBECONFIG or "
                        "~/.kube/config)")
    common.add_argument("--context", default=argparse.SUPPRESS,
                        help="the kubeconfig context to use")
    common.add_argument("-n", "--namespace", default=argparse.SUPPRESS,
                        help="namespace (default: the context's, else 'default')")

    parser = Parser(prog="kubectl artifact", parents=[common],
                    description="Clone, lock, list and import workload.dev Artifacts.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    p = sub.add_parser("clone", parents=[common], help="create a draft copy of an artifact",
                       description="Create NEW, a draft Artifact with SRC's spec (same "
                       "repository, containers and settings; no status).")
    p.add_argument("source", metavar="SRC")
    p.add_argument("new", metavar="NEW")
    p.add_argument("--display-name", help="spec.displayName of the clone (default: none, "
                   "so it shows as NEW)")
    p.add_argument("--dry-run", action="store_true",
                   help="print the clone's manifest instead of creating it")
    p.set_defaults(func=cmd_clone)

    p = sub.add_parser("lock", parents=[common], help="lock an artifact and print its version",
                       description="Set spec.lifecycle: locked, then wait until the operator "
                       "has given the artifact its status.version and print it.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--wait", action=argparse.BooleanOptionalAction, default=True,
                   help="wait for the version (default; --no-wait or --wait=false returns "
                   "at once)")
    p.add_argument("--timeout", type=duration, default=60.0,
                   help="how long to wait for the version (default 60s)")
    p.set_defaults(func=cmd_lock)

    p = sub.add_parser("approve", parents=[common],
                       help="approve an artifact's elevated container groups as they are now "
                       "(admins)",
                       description="Create or update the ArtifactApproval of NAME: the digest "
                       "of each container group with elevated securityContext fields, bound "
                       "to NAME's uid. The operator runs those fields only while it matches.")
    p.add_argument("name")
    p.set_defaults(func=cmd_approve)

    p = sub.add_parser("versions", parents=[common], help="list the versions of a repository",
                       description="List the artifacts labelled workload.dev/repository="
                       "REPOSITORY in the namespace, by status.version (drafts last).")
    p.add_argument("repository", metavar="REPOSITORY")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.set_defaults(func=cmd_versions)

    p = sub.add_parser("import", parents=[common],
                       help="print the Artifact manifest of a workload API artifact JSON",
                       description="Turn a workload API artifact (JSON, as the API returns "
                       "it) into an Artifact manifest on stdout. Needs no cluster. Exits 1 "
                       "with every violation when the result would not be valid.")
    p.add_argument("file", metavar="FILE.json", help="the JSON file ('-' for stdin)")
    p.add_argument("--name", help="metadata.name (default: made from the artifact's name)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("builds", parents=[common], help="list the image builds of an artifact",
                       description="The BuildRuns or Jobs that built NAME's images, newest "
                       "first, with the seed's build status (PENDING, IN_PROGRESS, BUILT, "
                       "CANCELLED, FAILED, UNKNOWN) and the image each made.")
    p.add_argument("name", metavar="NAME")
    p.add_argument("-o", "--output", choices=("table", "json", "yaml"), default="table")
    p.set_defaults(func=cmd_builds)

    p = sub.add_parser("build", parents=[common],
                       help="request a build (NAME), cancel one (cancel RUN), or print its "
                       "logs (logs RUN [-f])",
                       usage="kubectl artifact build NAME | build cancel RUN | "
                       "build logs RUN [-f]",
                       description="build NAME: annotate NAME with a new build request token; "
                       "the operator builds its current source again (drafts only). build "
                       "cancel RUN: stop a BuildRun (spec.state BuildRunCanceled) or a build "
                       "Job (its deadline). build logs RUN: the logs of every container of "
                       "the build's pods.")
    p.add_argument("words", nargs="+", metavar="NAME | cancel RUN | logs RUN")
    p.add_argument("-f", "--follow", action="store_true", help="with logs: follow them")
    p.set_defaults(func=cmd_build)
    return parser


MISSING_EXTRA = ("error: kubectl artifact needs the Kubernetes client library: "
                 "pip install 'artifact-operator[plugin]'")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(
        kubectl_booleans(sys.argv[1:] if argv is None else argv))
    try:
        from kubernetes.client import ApiException
        from urllib3.exceptions import HTTPError
    except ImportError:
        # The operator image and a plain install leave it out (the `plugin` extra).
        print(MISSING_EXTRA, file=sys.stderr)
        return 1

    try:
        return int(args.func(args))
    except PluginError as exc:
        print(exc, file=sys.stderr)
    except (ApiException, HTTPError) as exc:
        print(server_error(exc), file=sys.stderr)
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
