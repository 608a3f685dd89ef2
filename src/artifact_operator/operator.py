"""`artifact-operator run`: run kopf with our handlers."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

import kopf

from . import admission
from .approval import Approver
from .settings import Settings

log = logging.getLogger(__name__)


def run(*, namespaces: list[str], all_namespaces: bool, verbose: bool,
        extra: argparse.Namespace) -> int:
    from . import handlers  # noqa: F401 - registers the handlers

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    settings = Settings()
    # One approval key for the webhook (signing) and the reconciler (verifying).
    approver = Approver.from_settings()
    admission.register(admission.settings_from_args(extra), approver)
    memo: Any = kopf.Memo(settings=settings, approver=approver)

    clusterwide = all_namespaces or not namespaces
    asyncio.run(kopf.operator(
        clusterwide=clusterwide, namespaces=[] if clusterwide else namespaces,
        standalone=True, memo=memo, liveness_endpoint=extra.liveness,
    ))
    return 0
