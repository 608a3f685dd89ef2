"""How `kubectl artifact` prints, the way kubectl does: aligned columns, short ages, and
`-o json|yaml` documents."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any


def age(timestamp: str | None, now: datetime) -> str:
    """kubectl's short age: 42s, 5m10s, 3h20m, 4d5h, 400d."""
    if not timestamp:
        return "<unknown>"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = max(0, int((now - then).total_seconds()))
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 120:
        return f"{seconds}s"
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if hours < 3:
        return f"{minutes}m"
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d"


def columns(rows: list[list[str]]) -> str:
    """Rows (the first is the header) as kubectl's space-aligned table."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join("   ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                   .rstrip() + "\n" for row in rows)


def write_document(doc: Any, output: str) -> None:
    """`-o json` (kubectl's 4-space indent) or `-o yaml`, to stdout."""
    import yaml

    sys.stdout.write(json.dumps(doc, indent=4) + "\n" if output == "json"
                     else yaml.safe_dump(doc, sort_keys=False))
