"""`artifact-operator`: run the operator, or work offline (crd, render, validate)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from artifact_operator.api.base import KIND
from artifact_operator.settings import DEFAULT_CERT_DIR


def _documents(path: str) -> Iterator[Any]:
    if path == "-":
        texts = [sys.stdin.read()]
    elif Path(path).is_dir():
        texts = [p.read_text() for p in sorted(Path(path).glob("*.y*ml"))
                 if p.name != "kustomization.yaml"]
    else:
        texts = [Path(path).read_text()]
    for text in texts:
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                yield doc


def _artifacts(path: str) -> Iterator[Any]:
    for doc in _documents(path):
        if isinstance(doc, dict) and doc.get("kind", KIND) == KIND:
            yield doc


def cmd_crd(args: argparse.Namespace) -> int:
    from artifact_operator.api.crd import crd_files

    files = crd_files()
    if args.output_dir:
        for name, text in files.items():
            out = Path(args.output_dir) / name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text)
            print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write("---\n".join(files.values()))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from artifact_operator.api.validation import validate

    try:
        docs = list(_artifacts(args.filename))
    except (OSError, yaml.YAMLError) as exc:
        print(f"error: cannot read {args.filename}: {exc}", file=sys.stderr)
        return 2
    if not docs:
        # Most likely the wrong file: saying "valid" about nothing would mislead.
        print(f"error: no Artifact in {args.filename}", file=sys.stderr)
        return 2
    failed = False
    for doc in docs:
        meta = doc.get("metadata")
        name = meta.get("name", "<unnamed>") if isinstance(meta, dict) else "<unnamed>"
        violations = validate(doc)
        if violations:
            failed = True
            print(f"Artifact {name}: {len(violations)} violation(s)")
            for v in violations:
                print(f"  {v.path}: {v.message}")
        else:
            print(f"Artifact {name}: valid")
    return 1 if failed else 0


def cmd_render(args: argparse.Namespace) -> int:
    from artifact_operator.api.validation import InvalidArtifact, parse
    from artifact_operator.logic.approval import Decision, Grant, decide
    from artifact_operator.logic.render import render
    from artifact_operator.settings import Settings

    settings = Settings()
    objects: list[dict[str, Any]] = []
    for doc in _artifacts(args.filename):
        doc.setdefault("metadata", {}).setdefault("namespace", args.namespace)
        try:
            artifact = parse(doc)
        except InvalidArtifact as exc:
            print(f"error: Artifact {doc['metadata'].get('name')} is invalid:", file=sys.stderr)
            for v in exc.violations:
                print(f"  {v.path}: {v.message}", file=sys.stderr)
            return 1
        decisions = decide(artifact, [])
        if args.elevated_approved:
            decisions = {g: Decision(Grant.approved, "") for g in decisions}
        rendered = render(artifact, settings, decisions)
        for group, container in rendered.waiting_for_image.items():
            print(f"# group {group} not rendered: container {container} has no imageUri yet",
                  file=sys.stderr)
        for held in rendered.held.values():
            print(f"# {held.message}", file=sys.stderr)
        objects.extend(rendered.objects)
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=False))
    return 0


def _without_client_libraries(client_login: bool) -> None:
    """kopf imports the Kubernetes client libraries whenever they are installed (to accept
    their models in its helpers), ~40 MB the operator never uses: it talks to the API with
    aiohttp and logs in the way kopf does on its own (kube.client.login). The image does not
    carry them; in a development environment (the `plugin` and `dev` extras) they are kept
    out of the operator process here. With ARTIFACT_OPERATOR_CLIENT_LOGIN=true they stay
    importable, for kubeconfigs that need the client library's exec or auth-provider
    plugins."""
    if client_login:
        return
    for name in ("kubernetes", "kubernetes_asyncio", "pykube"):
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]


def cmd_run(args: argparse.Namespace) -> int:
    from artifact_operator.settings import Config

    config = Config.load(webhook_port=args.webhook_port, webhook_cert=args.webhook_cert,
                         webhook_key=args.webhook_key, webhook_host=args.webhook_host,
                         webhook_client_ca=args.webhook_client_ca)
    _without_client_libraries(config.settings.client_login)
    from artifact_operator.app.run import RunOptions, run

    namespaces = [] if args.all_namespaces else args.namespace
    return run(config, RunOptions(
        namespaces=namespaces, verbose=args.verbose, log_format=args.log_format,
        liveness=args.liveness, health_port=args.health_port, metrics_port=args.metrics_port,
        bind_address=args.bind_address, leader_election=args.leader_election,
        leader_election_namespace=args.leader_election_namespace,
        leader_election_id=args.leader_election_id))


def _webhook_arguments(parser: argparse.ArgumentParser) -> None:
    cert_dir = DEFAULT_CERT_DIR
    parser.add_argument("--webhook-port", type=int, default=None,
                        help="serve the admission webhooks on this port (default 9443; 0: off)")
    parser.add_argument("--webhook-cert", default=None,
                        help=f"serving certificate (default {cert_dir}/tls.crt)")
    parser.add_argument("--webhook-key", default=None,
                        help=f"its private key (default {cert_dir}/tls.key)")
    parser.add_argument("--webhook-host", default=None,
                        help="address to listen on for the webhooks (default: all)")
    parser.add_argument("--webhook-client-ca", default=None,
                        help="require client certificates of this CA (mutual TLS; the CA of "
                        "the API server's admission client certificate)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="artifact-operator", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("crd", help="print the CRDs (Artifact, ArtifactApproval) from the models")
    p.add_argument("-o", "--output-dir", help="write the CRD files into this directory")
    p.set_defaults(func=cmd_crd)

    p = sub.add_parser("validate", help="check Artifacts in a file; no cluster needed",
                       description="Print every violation of every Artifact in FILE with its "
                       "field path. Exit 0 when all are valid, 1 on violations, 2 when FILE "
                       "cannot be read or holds no Artifact.")
    p.add_argument("-f", "--filename", required=True,
                   help="YAML file, directory of YAML files, or '-' for stdin")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("render", help="print the objects Artifacts render to; no cluster needed")
    p.add_argument("-f", "--filename", required=True, help="YAML file ('-' for stdin)")
    p.add_argument("-n", "--namespace", default="default",
                   help="namespace for Artifacts that do not name one")
    p.add_argument("--elevated-approved", action="store_true",
                   help="render elevated fields as if an admin approved them")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("run", help="run the operator against the cluster")
    scope = p.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", action="append", default=[],
                       help="watch this namespace (repeatable)")
    scope.add_argument("-A", "--all-namespaces", action="store_true",
                       help="watch all namespaces (the default without --namespace)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--liveness", default=None,
                   help="also serve kopf's own liveness probe on this URL, "
                        "e.g. http://0.0.0.0:8082/healthz")
    p.add_argument("--health-port", type=int, default=8081,
                   help="port of /healthz (liveness) and /readyz (readiness); 0 turns it off")
    p.add_argument("--metrics-port", type=int, default=8080,
                   help="port of the Prometheus /metrics endpoint; 0 turns it off")
    p.add_argument("--bind-address", default="0.0.0.0",
                   help="address the health and metrics servers listen on")
    p.add_argument("--log-format", choices=["text", "json"], default="text",
                   help="json: one JSON object per line (time, level, logger, message, "
                        "namespace, name)")
    p.add_argument("--leader-election", action="store_true",
                   help="only the holder of a Lease reconciles (for more than one replica)")
    p.add_argument("--leader-election-namespace", default=None,
                   help="namespace of the Lease (default: the operator's own namespace from "
                        "POD_NAMESPACE or the service account, else 'default')")
    p.add_argument("--leader-election-id", default="artifact-operator-leader",
                   help="name of the Lease (default: artifact-operator-leader)")
    _webhook_arguments(p)
    p.set_defaults(func=cmd_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))
