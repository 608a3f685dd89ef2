"""Reading objects as the API server stores them (JSON), before or without validation.

The webhook judges specs that may not validate, and the controller reads stored objects it
did not parse: a field of the wrong type reads as empty rather than raising.
"""

from __future__ import annotations

from typing import Any


def as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
