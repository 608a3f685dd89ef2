"""The configuration reference of README.md, generated from `Settings` (a test keeps them equal).

`make settings-doc` prints it.
"""

from __future__ import annotations

import json
from enum import Enum
from typing import Any

from artifact_operator.settings import Settings


def _default(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, Enum):
        return f"`{value.value}`"
    if isinstance(value, list | dict | bool):
        return f"`{json.dumps(value)}`"
    return f"`{value}`"


def reference_table() -> str:
    prefix = Settings.model_config.get("env_prefix", "")
    lines = ["| environment variable | Helm value (`settings.`) | default | meaning |",
             "|---|---|---|---|"]
    for name, field in Settings.model_fields.items():
        head, *rest = name.split("_")
        helm_key = head + "".join(part.capitalize() for part in rest)
        default = field.get_default(call_default_factory=True)
        lines.append(f"| `{prefix}{name.upper()}` | `{helm_key}` | {_default(default)} | "
                     f"{field.description or ''} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(reference_table(), end="")
